"""SIGKILL inside the registry's own transaction (version row and blob written, audit row
next, COMMIT not reached), during TRAIN MODEL and during IMPORT MODEL: afterwards the
file holds no trace of that version, and the same statement then gives version 1."""

from __future__ import annotations

import textwrap

import pytest
from conftest import kill_when_ready

import dbml

CHILD = textwrap.dedent(
    """
    import pathlib, sys, time
    import dbml
    from dbml.registry import Registry

    path, marker, action, export = sys.argv[1:5]
    real_audit = Registry._audit

    def audit(self, cur, what, model, version, detail):
        real_audit(self, cur, what, model, version, detail)
        if what in ("TRAIN", "IMPORT") and model == "victim":
            pathlib.Path(marker).write_text("ready")  # rows written, COMMIT not yet run
            time.sleep(60)  # killed here

    Registry._audit = audit
    con = dbml.connect(path)
    if action == "train":
        con.sql("TRAIN MODEL victim FROM t TARGET y WITH (epochs = 2, progress = false)")
    else:
        con.sql(f"IMPORT MODEL victim FROM '{export}'")
    """
)


@pytest.fixture
def database(tmp_path):
    path = str(tmp_path / "crash.duckdb")
    export = str(tmp_path / "k.onnx")
    with dbml.connect(path) as con:
        con.sql("CREATE TABLE t AS SELECT i % 10 AS a, (i * 7) % 13 AS b, i % 10 > 4 AS y FROM range(300) r(i)")
        con.sql("TRAIN MODEL k FROM t TARGET y WITH (epochs = 2, progress = false)")
        con.sql(f"EXPORT MODEL k TO '{export}'")
    return path, export


def _counts(con) -> dict[str, int]:
    tables = ("model_versions", "model_blobs", "training_log", "aliases", "audit_log")
    return {t: con.duckdb.execute(f"SELECT count(*) FROM dbml.{t} WHERE model = 'victim'").fetchall()[0][0] for t in tables}


@pytest.mark.parametrize("action", ["train", "import"])
def test_sigkill_inside_the_registry_transaction_writes_nothing(database, tmp_path, action):
    path, export = database
    marker = tmp_path / "ready"
    kill_when_ready(CHILD, [path, str(marker), action, export], marker, "the registry transaction")
    with dbml.connect(path) as con:
        assert _counts(con) == dict.fromkeys(_counts(con), 0)
        assert con.sql("SELECT count(*) FROM dbml.model_versions WHERE model = 'k'").fetchall() == [(1,)]
        again = f"IMPORT MODEL victim FROM '{export}'" if action == "import" else (
            "TRAIN MODEL victim FROM t TARGET y WITH (epochs = 2, progress = false)")
        assert con.sql(again).fetchall()[0][1] == 1
        assert len(con.sql("SELECT PREDICT(victim, *) FROM t").fetchall()) == 300
