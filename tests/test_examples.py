"""The example notebooks run top to bottom on a real kernel, as a reader runs them: a
broken example fails the build. Each notebook checks its own headline figure (accuracy
well above chance, a forecast within 10%), and here every picture cell must have drawn."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dbml

ROOT = Path(dbml.__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"penguins.ipynb", "families.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_example_notebook_runs(path, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    pytest.importorskip("palmerpenguins")
    pytest.importorskip("matplotlib")
    # the kernel (jupyter_client starts sys.executable) imports this checkout's dbml
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith("dbml.plot."):
            kinds = {k for o in cell.outputs for k in o.get("data", {})}
            assert "image/png" in kinds, f"{path.name}: no picture from {cell.source!r}"
        if cell.cell_type == "code":
            text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
            assert "Traceback" not in text and "Warning" not in text, f"{path.name}: {cell.source!r} printed {text[-500:]!r}"
    if path.name == "penguins.ipynb":
        assert (tmp_path / "sex_card.html").stat().st_size > 10_000
