"""ML statements that give rows compose with SQL wherever DuckDB takes a query: a
subquery in FROM, a CTE, CREATE TABLE AS, INSERT INTO ... SELECT, COPY (...) TO, a join;
a view's body is refused with the reason. Parameters reach their sources and options."""

from __future__ import annotations

import csv

import pytest

import dbml
from dbml.errors import DbmlError, OptionError


@pytest.fixture(scope="module")
def fc():
    """A small forecaster and classifier on one in-memory database (trained once for the module)."""
    con = dbml.connect(user="tester")
    con.sql(
        """
        CREATE TABLE sales AS
        SELECT s AS store, DATE '2024-01-01' + to_days(i) AS day,
               10 * s + 5 * sin(i / 7 * 2 * pi()) + (i % 3) AS amount
        FROM range(2) AS a(s), range(60) AS b(i);
        CREATE TABLE t AS
        SELECT i AS id, (i % 10)::DOUBLE AS x, (i % 7)::DOUBLE AS z, (i % 10 > 4) AS y FROM range(200) AS r(i);
        """
    )
    con.sql("TRAIN MODEL f USING lstm FROM sales TARGET amount "
            "WITH (time = 'day', series = ['store'], horizon = 3, window = 14, epochs = 2, seed = 1)")  # fmt: skip
    con.sql("TRAIN MODEL c FROM (SELECT x, z, y FROM t) TARGET y WITH (epochs = 3, seed = 1)")
    yield con
    con.close()


def test_forecast_as_a_subquery_a_table_and_a_cte(fc):
    direct = fc.sql("FORECAST MODEL f HORIZON 4").fetchall()
    assert len(direct) == 8  # 2 series x 4 steps
    fc.sql("CREATE OR REPLACE TABLE fc AS FROM (FORECAST MODEL f HORIZON 4)")
    assert sorted(fc.sql("SELECT * FROM fc").fetchall()) == sorted(direct)
    n = fc.sql("WITH f AS (FORECAST MODEL f HORIZON 4) SELECT count(*) FROM f WHERE lower <= forecast AND forecast <= upper")
    assert n.fetchall() == [(8,)]
    per_store = fc.sql("SELECT store, count(*) FROM (FORECAST MODEL f HORIZON 4) GROUP BY store ORDER BY store").fetchall()
    assert per_store == [(0, 4), (1, 4)]


def test_insert_select_and_a_join(fc):
    fc.sql("CREATE OR REPLACE TABLE runs (store BIGINT, day DATE, forecast DOUBLE, lower DOUBLE, upper DOUBLE)")
    fc.sql("INSERT INTO runs SELECT * FROM (FORECAST MODEL f HORIZON 2)")
    fc.sql("INSERT INTO runs SELECT * FROM (FORECAST MODEL f HORIZON 2)")
    assert fc.sql("SELECT count(*) FROM runs").fetchall() == [(8,)]
    joined = fc.sql(
        "SELECT s.model, d.version FROM (SHOW MODELS) AS s JOIN (DESCRIBE MODEL c) AS d ON s.latest_version = d.version "
        "WHERE s.model = 'c'"
    ).fetchall()
    assert joined == [("c", 1)]


def test_copy_to_a_file(fc, tmp_path):
    out = tmp_path / "fc.csv"
    fc.sql(f"COPY (FORECAST MODEL f HORIZON 3) TO '{out}' (HEADER)")
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and set(rows[0]) == {"store", "day", "forecast", "lower", "upper"}


def test_evaluate_explain_monitor_in_queries(fc):
    acc = fc.sql("SELECT accuracy FROM (EVALUATE MODEL c ON t)").fetchall()[0][0]
    assert 0.5 < acc <= 1.0
    top = fc.sql("SELECT feature FROM (EXPLAIN MODEL c ON t WITH (repeats = 2)) ORDER BY importance DESC LIMIT 1")
    assert top.fetchall()[0][0] in ("x", "z")
    drifted = fc.sql("SELECT count(*) FROM (MONITOR MODEL c ON (SELECT * FROM t WHERE x > 5)) WHERE drift")
    assert drifted.fetchall()[0][0] >= 1  # x moved


def test_rows_of_a_nested_statement_are_gone_afterwards(fc):
    fc.sql("CREATE OR REPLACE TABLE s1 AS FROM (SHOW MODELS)")
    names = fc.sql("SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()").fetchall()
    assert not [n for (n,) in names if n.startswith("__dbml_rows_")]
    shown = fc.duckdb.sql("SELECT name FROM (SHOW ALL TABLES)").fetchall()
    assert not [n for (n,) in shown if n.startswith("__dbml_rows_")]


def test_parameters_reach_the_source_and_the_options(fc):
    whole = fc.sql("SELECT rows FROM (EVALUATE MODEL c ON t)").fetchall()[0][0]
    assert whole == 200
    some = fc.execute("SELECT rows FROM (EVALUATE MODEL c ON (SELECT * FROM t WHERE id < ?))", [50]).fetchall()
    assert some == [(50,)]
    named = fc.sql("EVALUATE MODEL c ON (SELECT * FROM t WHERE id >= $lo AND id < $hi)", params={"lo": 10, "hi": 30})
    assert named.fetchall()[0][0] == 20
    numbered = fc.sql("EVALUATE MODEL c ON (SELECT * FROM t WHERE id < $1 OR id > $2)", params=[5, 194])
    assert numbered.fetchall()[0][0] == 10
    # an option bound to a parameter takes its value, and a bad value is named as the user gave it
    explained = fc.sql("EXPLAIN MODEL c ON (SELECT * FROM t WHERE id < ?) WITH (repeats = ?)", params=[100, 1]).fetchall()
    assert len(explained) == 2
    with pytest.raises(OptionError, match=r"option 'repeats'.*\[1, 2\]"):
        fc.sql("EXPLAIN MODEL c ON t WITH (repeats = $r)", params={"r": [1, 2]})
    with pytest.raises(OptionError, match=r"option 'repeats' is bound to a set"):
        fc.sql("EXPLAIN MODEL c ON t WITH (repeats = $r)", params={"r": {1}})


def test_a_view_is_refused_with_the_reason(fc):
    before = fc.sql("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall()
    with pytest.raises(DbmlError, match=r"a view cannot hold FORECAST MODEL.*CREATE TABLE \.\.\. AS"):
        fc.sql("CREATE VIEW v AS FROM (FORECAST MODEL f HORIZON 2)")
    assert fc.sql("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall() == before


def test_statements_that_act_are_refused_inside_a_query(fc):
    with pytest.raises(DbmlError, match="DROP MODEL cannot be used inside a query"):
        fc.sql("SELECT * FROM (DROP MODEL c)")
    assert fc.sql("SELECT count(*) FROM (DESCRIBE MODEL c)").fetchall() == [(1,)]  # still there


def test_nested_statements_share_one_resolution(fc):
    """Both references to c in one statement score with one version."""
    rows = fc.sql(
        "SELECT a.version = b.version FROM (DESCRIBE MODEL c) a, (DESCRIBE MODEL c) b"
    ).fetchall()
    assert rows == [(True,)]


def test_the_python_twin_of_forecast(fc):
    assert len(fc.forecast("f", 2).fetchall()) == 4
    assert len(fc.forecast("f", 2, "SELECT * FROM sales WHERE store = 1").fetchall()) == 2
    assert "confidence" in dbml.Connection.forecast.__doc__


ROWS_STATEMENTS = {
    "FORECAST": "FORECAST MODEL f HORIZON 2",
    "EVALUATE": "EVALUATE MODEL c ON t",
    "EXPLAIN": "EXPLAIN MODEL c ON t WITH (repeats = 1)",
    "MONITOR": "MONITOR MODEL c ON t",
    "SHOW": "SHOW MODELS",
    "DESCRIBE": "DESCRIBE MODEL c",
}
FORMS = {
    "subquery": "SELECT count(*) FROM ({s})",
    "cte": "WITH x AS ({s}) SELECT count(*) FROM x",
    "create table as": "CREATE OR REPLACE TABLE composed AS FROM ({s}); SELECT count(*) FROM composed",
    "insert select": "CREATE OR REPLACE TABLE composed AS FROM ({s}) LIMIT 0; INSERT INTO composed SELECT * FROM ({s}); "
                     "SELECT count(*) FROM composed",
    "copy": "COPY ({s}) TO '{path}' (HEADER); SELECT count(*) FROM read_csv('{path}')",
}


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("name", list(ROWS_STATEMENTS))
def test_every_statement_that_gives_rows_composes_in_every_form(fc, tmp_path, name, form):
    statement = ROWS_STATEMENTS[name]
    direct = len(fc.sql(statement).fetchall())
    assert direct > 0
    got = fc.sql(FORMS[form].format(s=statement, path=tmp_path / "out.csv")).fetchall()
    assert got == [(direct,)]


def _registered(con) -> list[str]:
    return [n for (n,) in con.duckdb.sql("SELECT view_name FROM duckdb_views() WHERE view_name LIKE '__dbml_rows_%'").fetchall()]


def test_nested_rows_go_on_every_path(fc):
    """Failures, execute(), a nested statement inside a statement's source, the twins: no
    temporary name stays registered, and what was returned is read whole first."""
    with pytest.raises(Exception):
        fc.sql("SELECT * FROM (SHOW MODELS), (EVALUATE MODEL nosuch ON t)")
    with pytest.raises(Exception):
        fc.sql("SELECT PREDICT(nosuch, *) FROM (SHOW MODELS)")
    assert fc.execute("SELECT count(*) FROM (SHOW MODELS)").fetchall() == [(2,)]
    explained = fc.sql("EXPLAIN MODEL c ON (SELECT t.* FROM t, (SHOW MODELS) s WHERE s.model = 'c') WITH (repeats = 1)")
    assert len(explained.fetchall()) == 2  # read after the statement ended: held in memory
    assert len(fc.explain("c", "SELECT t.* FROM t, (SHOW MODELS) s WHERE s.model = 'c'", repeats=1).fetchall()) == 2
    cur = fc.cursor()
    for _ in range(3):
        cur.execute("SELECT count(*) FROM (FORECAST MODEL f HORIZON 2)")
        assert cur.fetchall() == [(4,)]
    assert _registered(fc) == []


def test_a_syntax_error_stops_before_a_nested_statement_runs_and_names_its_place(fc):
    runs = fc.sql("SELECT count(*) FROM dbml.evaluation_runs").fetchall()
    with pytest.raises(Exception, match="syntax error"):
        fc.sql("SELECT * FROM (EVALUATE MODEL c ON t) WHERE AND")
    assert fc.sql("SELECT count(*) FROM dbml.evaluation_runs").fetchall() == runs  # nothing ran
    with pytest.raises(DbmlError, match=r"at line 3, column 32 near 'x'"):
        fc.sql("SELECT *\nFROM range(3) s\nJOIN (FORECAST MODEL f HORIZON x) f ON true")
    with pytest.raises(DbmlError, match="a prepared statement cannot hold SHOW MODELS"):
        fc.sql("PREPARE p AS SELECT count(*) FROM (SHOW MODELS)")


def test_parameters_number_as_duckdb_numbers_them_and_dml_gives_none(fc):
    assert fc.sql("SELECT $1 AS a, ? AS b FROM (SHOW MODELS) LIMIT 1", params=[1, 2]).fetchall() == [(1, 2)]
    fc.sql("CREATE OR REPLACE TABLE counted (n BIGINT)")
    assert fc.sql("INSERT INTO counted SELECT count(*) FROM (SHOW MODELS)") is None
    assert fc.sql("(SHOW MODELS) LIMIT 1").fetchall()[0][0] in ("c", "f")


def test_a_missing_feature_column_is_named_by_explain_and_monitor(fc):
    from dbml.errors import FeatureError

    for statement in ("EXPLAIN", "MONITOR", "EVALUATE"):
        with pytest.raises(FeatureError, match="model 'c' \\(version 1\\) needs feature column 'z'"):
            fc.sql(f"{statement} MODEL c ON (SELECT x, y FROM t)")


def test_the_registry_keeps_the_source_as_written(fc):
    fc.sql("TRAIN MODEL c2 FROM (SELECT t.x, t.z, t.y FROM t, (SHOW MODELS) s WHERE s.model = 'c') TARGET y "
           "WITH (epochs = 1, seed = 1)")  # fmt: skip
    stored = fc.sql("SELECT source_sql FROM (DESCRIBE MODEL c2)").fetchall()[0][0]
    assert "(SHOW MODELS)" in stored and "__dbml_rows" not in stored
    fc.sql("DROP MODEL c2")
