"""Plain SQL through a dbml connection gives what raw DuckDB gives: rows, values, types,
errors; dbml takes a name only in its own forms; statements fuzzed raise only dbml or
DuckDB errors."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dbml


def both(script: str, setup: str = ""):
    """(dbml's answer, raw DuckDB's answer) to ``script``: rows and column types."""
    out = []
    for con in (dbml.connect(), duckdb.connect()):
        if setup:
            con.sql(setup)
        rel = con.sql(script)
        out.append(None if rel is None else (rel.fetchall(), [str(t) for t in rel.types]))
    return out


@pytest.mark.parametrize(
    "script",
    [
        "CREATE TABLE a(x INT); SELECT 340282366920938463463374607431768211455::UHUGEINT AS u",
        "CREATE TABLE a(x INT); SELECT '101'::BIT AS b, 170141183460469231731687303715884105727::HUGEINT AS h",
        "CREATE TABLE a(x INT); SELECT '12:00:00+02'::TIMETZ AS t, INTERVAL 3 DAY AS i, '{\"k\": 1}'::JSON AS j",
        "CREATE TYPE mood AS ENUM ('calm', 'wild'); SELECT 'wild'::mood AS m",
        "CREATE TABLE s AS SELECT INTERVAL (i) HOUR AS d FROM range(3) r(i); SUMMARIZE s",
        "SELECT 1 AS `a;b`; SELECT $$x;y$$ AS s, E'q\\';' AS e /* ; /* ; */ */",
        "PREPARE p AS SELECT $1 + $2; EXECUTE p(1, 2)",
    ],
)
def test_scripts_give_duckdbs_values_and_types(script):
    mine, raw = both(script)
    assert mine == raw


def test_returning_rows_and_returned_files_are_kept(tmp_path):
    setup = "CREATE TABLE t AS SELECT range AS a FROM range(3)"
    merge = "MERGE INTO t USING (SELECT 1 AS a) s ON t.a = s.a WHEN MATCHED THEN UPDATE SET a = 10 RETURNING *"
    mine, raw = both(merge, setup)
    assert mine == raw and mine[0] == [(10,)]
    copy = f"COPY t TO '{tmp_path / 'x.parquet'}' (RETURN_FILES)"
    mine, raw = both(copy, setup)
    assert mine == raw and mine[0][0][0] == 3
    con = dbml.connect()
    con.sql(setup)
    assert con.sql("INSERT INTO t VALUES (7) RETURNING a * 2 AS b").fetchall() == [(14,)]
    assert con.sql("INSERT INTO t VALUES (8)") is None  # DML that only counts stays None
    assert con.sql(f"COPY t TO '{tmp_path / 'y.csv'}'") is None


def test_export_and_import_database_keep_models_that_score(tmp_path):
    src = dbml.connect()
    src.sql("CREATE TABLE t AS SELECT i AS x, i % 2 = 0 AS y FROM range(60) r(i)")
    src.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1, progress = false)")
    expected = src.sql("SELECT PREDICT(m, *) FROM t ORDER BY x").fetchall()
    src.sql(f"EXPORT DATABASE '{tmp_path / 'backup'}'")
    dst = dbml.connect(str(tmp_path / "restored.duckdb"))
    dst.sql(f"IMPORT DATABASE '{tmp_path / 'backup'}'")
    assert dst.sql("SELECT model, versions FROM dbml.models").fetchall() == [("m", 1)]
    assert dst.sql("SELECT PREDICT(m, *) FROM t ORDER BY x").fetchall() == expected
    dst.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1, progress = false)")  # the sequence came along
    assert dst.sql("SELECT max(version) FROM dbml.model_versions").fetchall() == [(2,)]


def test_copy_from_database_twice_as_duckdb_does(tmp_path):
    con = dbml.connect()
    con.sql("CREATE TABLE t AS SELECT 1 AS a")
    for k in range(2):
        con.sql(f"ATTACH '{tmp_path / f'c{k}.duckdb'}' AS c{k}; COPY FROM DATABASE memory TO c{k}")
    assert con.sql("SELECT count(*) FROM c1.t").fetchall() == [(1,)]


def test_names_dbml_takes_only_in_its_own_forms(con):
    con.sql("CREATE MACRO predict(a) AS a + 1")
    assert con.sql("SELECT predict(41) AS v").fetchall() == [(42,)]
    con.sql("CREATE OR REPLACE MACRO predict(a, b) AS a + b")
    assert con.sql("SELECT predict(1, 2)").fetchall() == [(3,)]
    con.sql("CREATE TABLE pair AS SELECT 1 AS x, 2 AS y")
    assert con.sql("SELECT * FROM pair AS predict(p, q)").fetchall() == [(1, 2)]
    assert con.sql("WITH predict(x, y) AS (SELECT 1, 2) SELECT * FROM predict").fetchall() == [(1, 2)]
    con.sql("CREATE SCHEMA s; CREATE TABLE s.predict(x INT, y INT); INSERT INTO s.predict(x, y) VALUES (4, 5)")
    assert con.sql("SELECT * FROM s.predict").fetchall() == [(4, 5)]
    con.sql("CREATE SCHEMA model; CREATE TABLE model.t(a INT); CREATE TABLE models(b INT)")
    assert con.sql("DESCRIBE model.t").fetchall()[0][0] == "a"
    con.sql("CREATE TABLE model.model(c INT)")
    assert con.sql("SELECT * FROM main.models").fetchall() == []
    assert con.sql("SHOW MODELS; PREPARE p AS SELECT $1 + $2; EXECUTE p(2, 3)").fetchall() == [(5,)]


def test_duckdbs_own_errors_come_back(con):
    raw = duckdb.connect()
    for sql in ["CONNECT foo", "CREATE EXTERNAL RESOURCE x", "SELECT 1 +", "SELECT nope"]:
        with pytest.raises(duckdb.Error) as mine:
            con.sql(sql)
        with pytest.raises(duckdb.Error) as theirs:
            raw.sql(sql)
        assert type(mine.value) is type(theirs.value) and str(mine.value) == str(theirs.value), sql
    with pytest.raises(duckdb.Error) as theirs:
        raw.sql("SELECT '\udcff'")
    with pytest.raises(duckdb.Error) as mine:
        con.sql("SELECT '\udcff'")
    assert str(mine.value) == str(theirs.value)


# -- statements fuzzed: only dbml's or DuckDB's errors escape -----------------------------

_PIECES = [
    "TRAIN MODEL", "SHOW MODELS", "DESCRIBE MODEL", "DROP MODEL", "EVALUATE MODEL", "ALTER MODEL", "EXPORT MODEL",
    "IMPORT MODEL", "EXPLAIN MODEL", "MONITOR MODEL", "m", "t", "'m:1'", "'m@prod'", "FROM", "TARGET", "y", "WITH",
    "(", ")", ",", "=", ";", "*", "epochs", "1", "0", "-1", "1e309", "'x'", "''", "USING", "mlp", "ON", "VERSION",
    "SET ALIAS", "UNSET ALIAS", "TO", "'memory://f.onnx'", "PREDICT(", "PREDICT_PROBA(", "SELECT", "x", "$1", "?",
    "[", "]", "true", "NULL", "--", "/*", "*/", "$$", "\"", "`", ".", "IF NOT EXISTS", "IF EXISTS", "hidden",
]  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_con():
    c = dbml.connect()
    c.sql("CREATE TABLE t AS SELECT i AS x, i % 2 = 0 AS y FROM range(40) r(i)")
    c.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1, progress = false)")
    yield c
    c.close()


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=12))
def test_fuzzed_statements_raise_only_dbml_or_duckdb_errors(fuzz_con, pieces):
    sql = " ".join(pieces)
    try:
        rel = fuzz_con.sql(sql)
        if rel is not None:
            rel.limit(5).fetchall()
    except (dbml.DbmlError, duckdb.Error):
        pass


def test_mixed_scripts_keep_the_latest_rows_with_their_types(con):
    con.sql("CREATE TABLE t AS SELECT i AS x, i % 2 = 0 AS y FROM range(40) r(i)")
    con.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1, progress = false)")
    assert con.sql("BEGIN; SELECT count(PREDICT(m, *)) FROM t; COMMIT").fetchall() == [(40,)]
    assert con.sql("SELECT PREDICT(m, *) FROM t LIMIT 1; SELECT 1").fetchall() == [(1,)]
    rel = con.sql(
        "SELECT PREDICT(m, *) AS p, 340282366920938463463374607431768211455::UHUGEINT AS u, '101'::BIT AS b "
        "FROM t LIMIT 1; CREATE TABLE later AS SELECT 1 AS a; DELETE FROM t"
    )
    assert [str(t) for t in rel.types] == ["BOOLEAN", "UHUGEINT", "BIT"]
    assert rel.fetchall()[0][1:] == (2**128 - 1, "101")
    assert con.sql("SELECT count(*) FROM t").fetchall() == [(0,)]  # the DELETE ran after the rows were held
