"""The wheel carries dbml/, sql/ and udfs/, and the registry DDL loads from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is needed to build the wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (found,) = out.glob("dbml-*.whl")
    return found


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "dbml/sql/001_registry.sql" in names
    assert {"dbml/udfs/__init__.py", "dbml/udfs/predict.py", "dbml/architectures/mlp.py", "dbml/connection.py"} <= names
    # every module of the source tree, subpackages included (an editable install's finder would
    # hide a missing one from the installed-wheel test below)
    sources = {f"dbml/{p.relative_to(ROOT / 'dbml').as_posix()}" for p in (ROOT / "dbml").rglob("*.py")}
    missing = sorted(sources - names)
    assert not missing, missing


def test_installed_wheel_creates_the_registry(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    script = textwrap.dedent(
        f"""
        import importlib.resources, dbml
        assert dbml.__file__.startswith({str(site)!r}), dbml.__file__
        sql_dir = importlib.resources.files("dbml.sql")
        assert str(sql_dir).startswith({str(site)!r}), sql_dir
        con = dbml.connect()
        con.sql("SHOW MODELS")  # the first dbml statement creates the registry
        print(con.sql("SELECT max(version) FROM dbml.schema_version").fetchall()[0][0])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    from dbml.registry import SCHEMA_VERSION

    assert out.stdout.strip() == str(SCHEMA_VERSION)
