"""jupysql's %sql with a dbml Connection: TRAIN MODEL and PREDICT through its DB-API path
(``conn.cursor().execute(...)``, then ``fetchmany``/``description``/``df``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import dbml


def _import_jupysql():
    """jupysql's ``sql`` package. A checkout of dbml has a top-level ``sql/`` package of
    its own (the registry DDL, shipped as ``dbml.sql``), which shadows jupysql's while the
    checkout's root is on sys.path; and jupysql 0.11 imports pyspark.sql.connect when
    pyspark is present, which fails without grpcio (it only catches ModuleNotFoundError)."""
    root = Path(dbml.__file__).resolve().parents[1]
    loaded = sys.modules.get("sql")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve().is_relative_to(root):
        for name in [n for n in sys.modules if n == "sql" or n.startswith("sql.")]:
            del sys.modules[name]
    try:
        import grpc  # noqa: F401
    except ImportError:
        sys.modules.setdefault("pyspark.sql.connect.dataframe", None)  # an import of it raises ModuleNotFoundError
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != root]
    try:
        return pytest.importorskip("sql.magic")
    finally:
        sys.path[:] = saved


@pytest.fixture(scope="module")
def shell():
    pytest.importorskip("IPython")
    _import_jupysql()
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "sql")
    sh.run_line_magic("config", "SqlMagic.displaylimit = 50")
    c = dbml.connect(user="tester")
    c.sql("CREATE TABLE t AS SELECT i::DOUBLE AS x, (i % 2 = 0) AS y FROM range(60) r(i)")
    sh.user_ns["con"] = c
    sh.run_line_magic("sql", "con")
    yield sh, c
    from sql.connection import ConnectionManager

    ConnectionManager.close_all()  # now, quietly: at exit jupysql would report it to a shell already gone


def test_train_and_predict_through_sql_magic(shell):
    sh, con = shell
    result = sh.run_cell("%sql TRAIN MODEL m FROM t TARGET y WITH (epochs = 2, seed = 5, verbose = 0)")
    assert result.success, result.error_in_exec
    trained = result.result.DataFrame()
    assert trained[["model", "version", "status"]].values.tolist() == [["m", 1, "trained"]]
    assert con.sql("SELECT count(*) FROM dbml.model_versions WHERE model = 'm'").fetchall() == [(1,)]

    result = sh.run_cell("%sql SELECT x, PREDICT(m, x) AS p, PREDICT_PROBA(m, x) AS q FROM t ORDER BY x LIMIT 7")
    assert result.success, result.error_in_exec
    expected = con.sql("SELECT x, PREDICT(m, x) AS p, PREDICT_PROBA(m, x) AS q FROM t ORDER BY x LIMIT 7").fetchall()
    assert [tuple(r) for r in result.result] == expected
    frame = result.result.DataFrame()  # jupysql re-runs the SELECT on the cursor and reads .df()
    assert list(frame.itertuples(index=False, name=None)) == expected


def test_dbml_statements_and_saving_results(shell):
    sh, con = shell
    sh.run_cell("%sql TRAIN MODEL s FROM t TARGET y WITH (epochs = 2, verbose = 0)")
    result = sh.run_cell("%sql SHOW MODELS")
    assert result.success, result.error_in_exec
    assert "s" in set(result.result.DataFrame()["model"])
    result = sh.run_cell("%sql kept << SELECT x, PREDICT(s, x) AS p FROM t WHERE x < 3 ORDER BY x")
    assert result.success
    assert [tuple(r) for r in sh.user_ns["kept"]] == con.sql(
        "SELECT x, PREDICT(s, x) AS p FROM t WHERE x < 3 ORDER BY x"
    ).fetchall()


def test_errors_reach_the_cell(shell, capsys):
    sh, _ = shell
    result = sh.run_cell("%sql TRAIN MODEL bad FROM t TARGET nope")
    assert not result.success
    shown = capsys.readouterr()
    assert "dbml: target column 'nope' is not in the source t" in shown.out + shown.err  # jupysql shows it its own way


def test_cursor_reads_like_duckdbs(shell):
    _, con = shell
    con.sql("TRAIN MODEL IF NOT EXISTS c FROM t TARGET y WITH (epochs = 2, verbose = 0)")  # whatever ran before
    cur = con.cursor()
    assert cur.execute("SELECT 1 AS a UNION ALL SELECT 2 ORDER BY a").fetchmany(1) == [(1,)]
    assert cur.fetchall() == [(2,)]
    cur.execute("SHOW MODELS")  # a dbml statement: a relation, read once
    assert cur.description[0][0] == "model"
    first = cur.fetchone()
    assert first is not None and first[0] in {"c", "m", "s"}
    con.commit()  # a commit elsewhere leaves the cursor's pending result alone
    cur.execute("SELECT 3 AS c")
    con.commit()
    assert cur.fetchall() == [(3,)]
    cur.execute("CREATE TABLE made_by_cursor AS SELECT 1 AS a")
    assert con.sql("SELECT * FROM made_by_cursor").fetchall() == [(1,)]  # the same database
    cur.close()
