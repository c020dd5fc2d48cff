"""Upgrades and forward compatibility of the registry.

Databases written by the released schemas (fixtures made with the release's own code by
tests/fixtures/make_registry_fixtures.py) still score, with the same answers, read-only
as they are and after the current code migrates them; a newer registry is refused
naming both versions; ensure() is idempotent, cheap once done, and safe when several
connections race to create the registry; read-only databases are never migrated."""

from __future__ import annotations

import gzip
import json
import shutil
import threading
from pathlib import Path

import duckdb
import pytest

import dbml
from dbml.errors import RegistrySchemaError
from dbml.registry import SCHEMA_VERSION, Registry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _fixture(name: str, folder: Path) -> tuple[str, dict]:
    path = folder / f"registry_{name}.duckdb"
    with gzip.open(FIXTURES / f"registry_{name}.duckdb.gz", "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return str(path), json.loads((FIXTURES / f"registry_{name}.json").read_text())


def _answers(con) -> dict:
    return {
        "clf": con.sql("SELECT list(PREDICT('clf:1', *) ORDER BY id) FROM rows").fetchall()[0][0],
        "clf_proba": con.sql("SELECT list(PREDICT_PROBA('clf@production', *)['true'] ORDER BY id) FROM rows").fetchall()[0][0],
        "reg": con.sql("SELECT list(PREDICT(reg, *) ORDER BY id) FROM rows").fetchall()[0][0],
    }  # fmt: skip


def _same(got: dict, expected: dict) -> None:
    assert got["clf"] == expected["clf"]
    assert got["clf_proba"] == pytest.approx(expected["clf_proba"], abs=1e-6)
    assert got["reg"] == pytest.approx(expected["reg"], abs=1e-5)


def _versions(path: str) -> list[int]:
    raw = duckdb.connect(path, read_only=True)
    try:
        return [r[0] for r in raw.execute("SELECT version FROM dbml.schema_version ORDER BY version").fetchall()]
    finally:
        raw.close()


@pytest.mark.parametrize("name, released", [("v1", 1), ("v2", 2)])
def test_released_registries_score_the_same_read_only_and_after_migration(tmp_path, name, released):
    path, expected = _fixture(name, tmp_path)
    assert expected["schema_version"] == released
    with dbml.connect(path, read_only=True) as con:  # read as it is: nothing migrated
        _same(_answers(con), expected)
        assert con.sql("SHOW MODELS").fetchall()
    assert _versions(path) == list(range(1, released + 1))
    with dbml.connect(path) as con:  # read-write: migrated to the current schema
        _same(_answers(con), expected)
        con.sql("ALTER MODEL clf SET ALIAS production = 1")
        con.sql("TRAIN MODEL clf FROM (SELECT a, c, b, y FROM rows) TARGET y WITH (epochs = 1, progress = false, hidden = [4])")
        assert con.sql("SELECT max(version) FROM dbml.model_versions WHERE model = 'clf'").fetchall() == [(2,)]
    assert _versions(path) == list(range(1, SCHEMA_VERSION + 1))
    with dbml.connect(path) as con:
        _same(_answers(con), expected)  # the alias still serves version 1; reg is untouched


def test_a_newer_registry_is_refused_naming_both_versions(tmp_path):
    path = str(tmp_path / "future.duckdb")
    with dbml.connect(path) as con:
        con.registry.ensure()
        con.duckdb.execute("INSERT INTO dbml.schema_version (version) VALUES (99)")
    words = f"schema version 99; this dbml knows up to {SCHEMA_VERSION}: upgrade dbml"
    raw = duckdb.connect(path)
    try:
        with pytest.raises(RegistrySchemaError, match=words):
            Registry(raw).check_compatible()
        with pytest.raises(RegistrySchemaError, match=words):
            Registry(raw).ensure()
        # nothing was migrated or written by the refusals
        assert raw.execute("SELECT max(version) FROM dbml.schema_version").fetchall() == [(99,)]
    finally:
        raw.close()
    with pytest.raises(RegistrySchemaError, match=words):
        with dbml.connect(path) as con:
            con.sql("SHOW MODELS")


def test_ensure_is_idempotent_and_cheap_once_done(tmp_path):
    raw = duckdb.connect(str(tmp_path / "e.duckdb"))
    registry = Registry(raw)
    assert registry.check_compatible() == 0  # no registry yet, and checking creates none
    assert raw.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'dbml'").fetchall() == [(0,)]
    registry.ensure()
    assert registry.schema_version == SCHEMA_VERSION and registry.check_compatible() == SCHEMA_VERSION

    class Closed:
        def cursor(self):
            raise AssertionError("ensure() ran a query after its first success")

    registry.con = Closed()
    registry.ensure()  # cached: no query at all
    registry.con = raw
    Registry(raw).ensure()  # a second object finds the registry done
    assert [r[0] for r in raw.execute("SELECT version FROM dbml.schema_version ORDER BY 1").fetchall()] == list(
        range(1, SCHEMA_VERSION + 1)
    )
    raw.close()


def test_connections_racing_to_create_the_registry(tmp_path):
    path = str(tmp_path / "race.duckdb")
    first = duckdb.connect(path)  # one database instance, shared by the connections below
    connections = [duckdb.connect(path) for _ in range(6)] + [first.cursor() for _ in range(2)]
    barrier = threading.Barrier(len(connections))
    errors: list[BaseException] = []

    def run(con):
        try:
            barrier.wait()
            Registry(con).ensure()
        except BaseException as err:  # collected for the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(c,)) for c in connections]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert [r[0] for r in first.execute("SELECT version FROM dbml.schema_version ORDER BY 1").fetchall()] == list(
        range(1, SCHEMA_VERSION + 1)
    )
    for c in connections:
        c.close()
    first.close()


def test_read_only_databases(tmp_path):
    plain = str(tmp_path / "plain.duckdb")
    raw = duckdb.connect(plain)
    raw.execute("CREATE TABLE t AS SELECT 1 AS a")
    raw.close()
    ro = duckdb.connect(plain, read_only=True)
    try:
        with pytest.raises(RegistrySchemaError, match="open read-only and has no dbml registry"):
            Registry(ro).ensure()
        assert Registry(ro).check_compatible() == 0
    finally:
        ro.close()
    path, _ = _fixture("v1", tmp_path)
    ro = duckdb.connect(path, read_only=True)
    try:
        registry = Registry(ro)
        registry.ensure()  # an older registry on a read-only database: read as it is
        assert registry.schema_version == 1
        assert registry.get("clf", alias="production")["version"] == 1
    finally:
        ro.close()
    assert _versions(path) == [1]


def test_ensure_carries_on_when_another_connection_migrates_meanwhile(tmp_path):
    """A connection outside dbml's process-wide turn-taking (say, another dbml copy in the
    process) holds migration 001 in an open transaction: ensure() meets the conflict,
    waits, reads the version the other committed and applies the rest."""
    from dbml.registry import _migrations

    path = str(tmp_path / "other.duckdb")
    other = duckdb.connect(path)
    mine = duckdb.connect(path)
    number, _, script = _migrations()[0]
    other.execute("BEGIN TRANSACTION")
    other.execute(script)
    other.execute("INSERT INTO dbml.schema_version (version) VALUES (?)", [number])
    timer = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    timer.start()
    try:
        registry = Registry(mine)
        registry.ensure()
    finally:
        timer.join()
    assert registry.schema_version == SCHEMA_VERSION
    assert [r[0] for r in mine.execute("SELECT version FROM dbml.schema_version ORDER BY 1").fetchall()] == list(
        range(1, SCHEMA_VERSION + 1)
    )
    other.close()
    mine.close()
