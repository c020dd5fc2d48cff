"""Deploy and roll back with aliases, export and import through fsspec, integrity, audit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import registry_counts

import dbml
from dbml.errors import TransferError, VersionNotFoundError

O = "epochs = 3, progress = false"


@pytest.fixture
def two_versions(con, mixed):
    con.sql(f"TRAIN MODEL churn FROM (SELECT age, plan, churned FROM {mixed}) TARGET churned WITH ({O}, seed = 1)")
    con.sql(f"TRAIN MODEL churn FROM (SELECT age, plan, member, churned FROM {mixed}) TARGET churned WITH ({O}, seed = 2)")
    return con


def _scores(con, ref):
    return con.sql(f"SELECT list(PREDICT_PROBA('{ref}', *).yes ORDER BY id) FROM mixed").fetchall()[0][0]


def test_aliases_deploy_roll_back_and_audit(two_versions):
    con = two_versions
    v1, v2 = _scores(con, "churn:1"), _scores(con, "churn:2")
    assert v1 != v2
    assert _scores(con, "churn") == v2  # bare name: the latest
    assert con.sql("ALTER MODEL churn SET ALIAS production = 1").fetchall() == [("churn", "production", 1, None)]
    assert _scores(con, "churn@production") == v1
    con.sql("ALTER MODEL churn SET ALIAS default = 1")
    assert _scores(con, "churn") == v1  # bare name: the default alias
    assert con.sql("ALTER MODEL churn SET ALIAS production = 2").fetchall() == [("churn", "production", 2, 1)]
    assert con.sql("ALTER MODEL churn SET ALIAS production = 1").fetchall()[0][3] == 2  # roll back
    con.sql("ALTER MODEL churn UNSET ALIAS default")
    assert _scores(con, "churn") == v2
    show = con.sql("SHOW MODELS")
    row = dict(zip(show.columns, show.fetchall()[0]))
    assert row["aliases"] == {"production": 1} and row["default_version"] == 2
    history = con.sql(
        "SELECT detail->>'alias', version, (detail->>'previous')::INT FROM dbml.audit_log WHERE action = 'ALTER' ORDER BY id"
    ).fetchall()
    assert history == [("production", 1, None), ("default", 1, None), ("production", 2, 1), ("production", 1, 2), ("default", None, 1)]
    # what was live is a query over the audit log
    live = con.sql(
        "SELECT version FROM dbml.audit_log WHERE action = 'ALTER' AND detail->>'alias' = 'production' ORDER BY id DESC LIMIT 1"
    ).fetchall()
    assert live == [(1,)]


def test_alias_errors_leave_the_registry_as_it_was(two_versions):
    con = two_versions
    before = registry_counts(con)
    with pytest.raises(VersionNotFoundError, match="model 'churn' has no version 7"):
        con.sql("ALTER MODEL churn SET ALIAS production = 7")
    with pytest.raises(VersionNotFoundError, match="no alias 'staging'"):
        con.sql("ALTER MODEL churn UNSET ALIAS staging")
    with pytest.raises(VersionNotFoundError, match="no alias 'staging'"):
        con.sql("SELECT PREDICT('churn@staging', *) FROM mixed")
    assert registry_counts(con) == before
    con.sql("ALTER MODEL churn SET ALIAS production = 1")
    before = registry_counts(con)
    with pytest.raises(dbml.DbmlError, match="version 1 is deployed under alias production"):
        con.sql("DROP MODEL churn VERSION 1")
    assert registry_counts(con) == before


def test_export_import_round_trip_keeps_predictions_and_lineage(two_versions, tmp_path):
    con = two_versions
    path = tmp_path / "churn.onnx"
    out = con.sql(f"EXPORT MODEL churn VERSION 1 TO 'file://{path}'").fetchall()[0]
    assert out[:3] == ("churn", 1, f"file://{path}") and out[3] == path.stat().st_size
    con.sql("EXPORT MODEL churn TO 'memory://exports/churn.onnx'")
    imported = con.sql(f"IMPORT MODEL churn_copy FROM '{path}'").fetchall()[0]
    assert imported == ("churn_copy", 1, str(path), "churn:1")
    assert _scores(con, "churn_copy") == _scores(con, "churn:1")
    cols = "source_sql, source_tables, data_fingerprint, row_count, metrics, profile, features, labels, task"
    original = con.sql(f"SELECT {cols} FROM dbml.model_versions WHERE model = 'churn' AND version = 1").fetchall()
    copy = con.sql(f"SELECT {cols} FROM dbml.model_versions WHERE model = 'churn_copy'").fetchall()
    assert [json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v for v in original[0]] == [
        json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v for v in copy[0]
    ]
    # the memory:// copy imports too, into another database
    other = dbml.connect()
    other.sql("IMPORT MODEL churn FROM 'memory://exports/churn.onnx'")
    assert other.sql("SELECT version, source_tables FROM dbml.model_versions").fetchall() == [(1, ["mixed"])]
    actions = [r[0] for r in con.sql("SELECT action FROM dbml.audit_log ORDER BY id").fetchall()]
    assert actions == ["TRAIN", "TRAIN", "EXPORT", "EXPORT", "IMPORT"]


def test_bad_export_and_import(two_versions, tmp_path):
    con = two_versions
    before = registry_counts(con)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(TransferError, match="cannot write '.*notes.txt/x.onnx'"):
        con.sql(f"EXPORT MODEL churn TO '{tmp_path}/notes.txt/x.onnx'")
    with pytest.raises(TransferError, match="is not a valid ONNX model"):
        con.sql(f"IMPORT MODEL x FROM '{tmp_path}/notes.txt'")
    con.sql(f"EXPORT MODEL churn TO '{tmp_path}/c.onnx'")
    before = registry_counts(con)
    with pytest.raises(TransferError, match="over the import limit of 1,000"):
        con.sql(f"IMPORT MODEL x FROM '{tmp_path}/c.onnx' WITH (max_size = 1000)")
    with pytest.raises(TransferError, match="cannot read"):
        con.sql(f"IMPORT MODEL x FROM '{tmp_path}/missing.onnx'")
    with pytest.raises(TransferError, match="written by dbml.*leave out option inputs"):
        con.sql(f"IMPORT MODEL x FROM '{tmp_path}/c.onnx' WITH (inputs = ['a'])")
    assert registry_counts(con) == before


def test_tampered_and_truncated_blobs_are_refused(tmp_path):
    path = str(tmp_path / "t.duckdb")
    with dbml.connect(path) as con:
        con.sql("CREATE TABLE t AS SELECT i % 10 AS a, i % 10 > 4 AS y FROM range(100) r(i)")
        con.sql(f"TRAIN MODEL t FROM t TARGET y WITH ({O})")
        con.sql(f"TRAIN MODEL t FROM t TARGET y WITH ({O}, seed = 5)")
        con.duckdb.execute(
            "UPDATE dbml.model_blobs SET onnx = (SELECT onnx FROM dbml.model_blobs WHERE version = 2) WHERE version = 1"
        )
        con.duckdb.execute("UPDATE dbml.model_blobs SET onnx = onnx[1:100] WHERE version = 2")
    script = textwrap.dedent(
        f"""
        import dbml
        con = dbml.connect({path!r})
        for ref in ("t:1", "t:2"):
            try:
                con.sql(f"SELECT PREDICT('{{ref}}', *) FROM t").fetchall()
            except dbml.IntegrityError as err:
                print(err)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "model 't' version 1 has sha256" in out and "model 't' version 2 has 100 bytes" in out


def test_fine_tune_continues_from_the_parent(con):
    con.sql("CREATE TABLE f AS SELECT i::DOUBLE % 50 AS x, (i % 3)::VARCHAR AS c, x * 2 + 1 AS r, x > 25 AS y FROM range(300) r(i)")
    con.sql("TRAIN MODEL reg FROM (SELECT x, c, r FROM f) TARGET r WITH (epochs = 20, progress = false)")
    # a near-zero learning rate: the child must score like its parent (weights and preprocessing carried over)
    row = con.sql(
        "TRAIN MODEL reg FROM (SELECT x, c, r FROM f WHERE x < 20) TARGET r WITH (from_version = 1, epochs = 1, lr = 1e-9, progress = false)"
    ).fetchall()[0]
    assert row[1] == 2
    gap = con.sql("SELECT max(abs(PREDICT('reg:1', *) - PREDICT('reg:2', *))) FROM f").fetchall()[0][0]
    assert gap < 1e-3
    assert con.sql("SELECT version, parent_version FROM dbml.model_versions WHERE model = 'reg' ORDER BY version").fetchall() == [(1, None), (2, 1)]
    parent_profile, child_profile = [r[0] for r in con.sql("SELECT profile FROM dbml.model_versions WHERE model = 'reg' ORDER BY version").fetchall()]
    assert json.loads(parent_profile) == json.loads(child_profile)
    # warm start on new rows improves a weak classifier
    con.sql("TRAIN MODEL clf FROM (SELECT x, c, y FROM f) TARGET y WITH (epochs = 1, progress = false)")
    con.train("clf", "SELECT x, c, y FROM f", target="y", warm_start=True, epochs=40, progress=False)
    acc1, acc2 = con.sql("SELECT avg((PREDICT('clf:1', *) = y)::DOUBLE), avg((PREDICT('clf:2', *) = y)::DOUBLE) FROM f").fetchall()[0]
    assert acc2 >= acc1 and acc2 > 0.9


def test_fine_tune_refuses_incompatible_data(con):
    from dbml.errors import FeatureError, OptionError, TargetError

    con.sql("CREATE TABLE g AS SELECT i % 10 AS x, (i % 3)::VARCHAR AS c, ['a', 'b'][1 + i % 2] AS y FROM range(100) r(i)")
    con.sql("TRAIN MODEL g FROM g TARGET y WITH (epochs = 1, progress = false)")
    before = registry_counts(con)
    cases = [
        ("SELECT x, y FROM g", FeatureError, "features differ \\(missing c\\)"),
        ("SELECT x, c, 1 AS extra, y FROM g", FeatureError, "new extra"),
        ("SELECT x, c, CASE WHEN x > 5 THEN 'z' ELSE y END AS y FROM g", TargetError, "label\\(s\\) \\['z'\\]"),
    ]
    for source, error, words in cases:
        with pytest.raises(error, match=words):
            con.sql(f"TRAIN MODEL g FROM ({source}) TARGET y WITH (warm_start = true, progress = false)")
    with pytest.raises(OptionError, match="'hidden' cannot change"):
        con.sql("TRAIN MODEL g FROM g TARGET y WITH (warm_start = true, hidden = [4])")
    with pytest.raises(VersionNotFoundError, match="no version 9"):
        con.sql("TRAIN MODEL g FROM g TARGET y WITH (from_version = 9)")
    assert registry_counts(con) == before


def test_evaluate_statement_errors_and_audit(two_versions):
    from dbml.errors import OptionError, TargetError

    con = two_versions
    row = con.sql("EVALUATE MODEL churn VERSION 1 ON (SELECT * FROM mixed)")
    metrics = dict(zip(row.columns, row.fetchall()[0]))
    assert metrics["rows"] == 300 and 0 <= metrics["accuracy"] <= 1
    assert con.sql("SELECT action, version FROM dbml.audit_log WHERE action = 'EVALUATE'").fetchall() == [("EVALUATE", 1)]
    before = registry_counts(con)
    with pytest.raises(TargetError, match="target column 'churned' of model 'churn' is not in \\(query\\)"):
        con.sql("EVALUATE MODEL churn ON (SELECT age, plan, member FROM mixed)")
    with pytest.raises(TargetError, match="by column 'nope'"):
        con.sql("EVALUATE MODEL churn ON mixed WITH (by = nope)")
    with pytest.raises(OptionError, match="unknown option 'bye'"):
        con.sql("EVALUATE MODEL churn ON mixed WITH (bye = plan)")
    with pytest.raises(VersionNotFoundError, match="no version 5"):
        con.sql("EVALUATE MODEL churn VERSION 5 ON mixed")
    assert registry_counts(con) == before
    by_plan = con.evaluate("churn", "mixed", by="plan").fetchall()
    assert len(by_plan) == 4  # basic, plus, pro and NULL
