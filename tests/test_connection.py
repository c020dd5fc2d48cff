"""The connection: scripts, parameters, plain SQL passthrough, install(), the registry schema."""

from __future__ import annotations

import duckdb
import pytest

import dbml
from dbml.registry import SCHEMA_VERSION


def test_plain_sql_gives_duckdbs_results(con):
    raw = duckdb.connect()
    setup = "CREATE TABLE t AS SELECT i, i % 3 AS g, 'x' || i AS s FROM range(100) r(i)"
    con.sql(setup)
    raw.sql(setup)
    for query in [
        "SELECT g, count(*), sum(i) FROM t GROUP BY g ORDER BY g",
        "SELECT * EXCLUDE (s) FROM t WHERE i > 90 ORDER BY i",
        "PIVOT (SELECT g, i % 2 AS odd FROM t) ON g USING count(*) ORDER BY ALL",
        "SELECT list(s ORDER BY i)[1:3] FROM t",
        "DESCRIBE t",
        "SHOW TABLES",
        "SUMMARIZE SELECT i FROM t",
    ]:
        assert con.sql(query).fetchall() == raw.sql(query).fetchall(), query


def test_scripts_return_what_their_last_statement_gives(con):
    rel = con.sql("CREATE TABLE a(x INT); INSERT INTO a VALUES (1), (2); SELECT sum(x) AS s FROM a")
    assert rel.fetchall() == [(3,)]
    # as DuckDB: a script gives the rows of its latest statement that gave rows
    assert con.sql("SELECT 1; CREATE TABLE b(y INT)").fetchall() == [(1,)]
    assert con.sql("SELECT 1; SHOW MODELS; SELECT 2").fetchall() == [(2,)]
    assert con.sql("SELECT 7; SHOW MODELS; CREATE TABLE d(w INT)").fetchall() == []  # SHOW MODELS gave (no) rows
    assert con.sql("CREATE TABLE e(v INT); DROP TABLE e") is None
    assert con.sql("INSERT INTO a VALUES (3) RETURNING x AS Count").fetchall() == [(3,)]
    assert con.sql("CREATE TABLE c(z INT); INSERT INTO c VALUES (5)") is None
    assert con.sql("  ") is None
    assert con.sql("-- only a comment") is None


def test_execute_binds_parameters(con):
    con.sql("CREATE TABLE t AS SELECT i AS x, i % 2 = 0 AS even FROM range(50) r(i)")
    assert con.execute("SELECT count(*) FROM t WHERE x < ?", [10]).fetchall() == [(10,)]
    assert con.execute("SELECT count(*) FROM t WHERE x < $n", {"n": 5}).fetchall() == [(5,)]
    con.train("p", "SELECT * FROM t WHERE x < ?", target="even", params=[40], epochs=1, progress=False)
    assert con.sql("SELECT row_count FROM dbml.model_versions").fetchall() == [(40,)]
    rows = con.execute("SELECT PREDICT(p, *) FROM t WHERE x >= ?", [45]).fetchall()
    assert len(rows) == 5 and all(isinstance(r[0], bool) for r in rows)
    with pytest.raises(dbml.DbmlError, match="one statement at a time"):
        con.execute("SELECT ?; SELECT ?", [1])


def test_install_is_idempotent_and_shares_the_database():
    raw = duckdb.connect()
    first = dbml.install(raw)
    assert dbml.install(raw) is first and first.duckdb is raw
    raw.sql("CREATE TABLE t AS SELECT i AS x, i % 3 = 0 AS y FROM range(60) r(i)")
    first.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1, progress = false)")
    assert raw.sql("SELECT model FROM dbml.models").fetchall() == [("m",)]


def test_registry_schema_is_versioned_and_created_once(tmp_path):
    path = str(tmp_path / "r.duckdb")
    with dbml.connect(path) as con:
        con.sql("CREATE TABLE t(a INT)")  # plain SQL leaves no dbml schema behind
        assert con.sql("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'dbml'").fetchall() == [(0,)]
        con.sql("SHOW MODELS")  # the first dbml statement creates the registry
    with dbml.connect(path) as con:
        rows = con.sql("SELECT version FROM dbml.schema_version").fetchall()
        assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        tables = {r[0] for r in con.sql("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'dbml'").fetchall()}
        assert tables >= {"model_versions", "model_blobs", "training_log", "audit_log", "aliases", "schema_version"}
        assert con.sql("SELECT count(*) FROM duckdb_views() WHERE schema_name = 'dbml' AND view_name = 'models'").fetchall() == [(1,)]


def test_an_older_registry_is_migrated_in_place(tmp_path):
    path = str(tmp_path / "old.duckdb")
    with dbml.connect(path) as con:
        con.sql("CREATE TABLE t AS SELECT i AS x, i % 2 = 0 AS y FROM range(40) r(i)")
        con.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1, progress = false)")
        # take the database back to schema version 1
        con.sql("DROP TABLE dbml.monitor_results; DROP TABLE dbml.monitor_runs; DROP SEQUENCE dbml.monitor_run_id")
        con.sql("DROP TABLE dbml.evaluation_runs; DROP SEQUENCE dbml.evaluation_run_id")
        con.sql("DELETE FROM dbml.schema_version WHERE version > 1")
    with dbml.connect(path) as con:
        assert con.sql("SELECT max(version) FROM dbml.schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert con.sql("SELECT count(*) FROM dbml.monitor_runs").fetchall() == [(0,)]
        con.sql("EVALUATE MODEL m ON (SELECT * FROM t)")  # stored in the table the migration made
        assert con.sql("SELECT model, version, rows FROM dbml.evaluation_runs").fetchall() == [("m", 1, 40)]
        assert con.sql("SELECT count(*) FROM dbml.model_versions").fetchall() == [(1,)]


def test_show_models_on_an_empty_registry(con):
    assert con.sql("SHOW MODELS").fetchall() == []
