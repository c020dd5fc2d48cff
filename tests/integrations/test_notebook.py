"""The Jupyter extension (%dbml, %%dbml) in an in-process IPython shell, TRAIN's verbose
option, and real notebooks run by nbclient on an ipykernel."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

import dbml

pytest.importorskip("IPython")

ROWS = "CREATE TABLE t AS SELECT i::DOUBLE AS x, (i % 2 = 0) AS y, 'n' || i AS name FROM range(60) r(i)"
TRAIN = "TRAIN MODEL m FROM (SELECT x, y FROM t) TARGET y WITH (epochs = 2, seed = 3, verbose = 0)"


@pytest.fixture(scope="module")
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "dbml")
    yield sh
    sh.run_line_magic("unload_ext", "dbml")


@pytest.fixture
def magics(shell):
    m = shell.magics_manager.registry["DbmlMagics"]
    m.connection, m.displaylimit = None, 20
    yield m
    m.connection = None


@pytest.fixture(scope="module")
def trained():
    """A dbml connection with table t and model m, for tests that only read."""
    c = dbml.connect(user="tester")
    c.sql(ROWS)
    c.sql(TRAIN)
    yield c
    c.close()


def run(shell, text):
    result = shell.run_cell(text)
    return result


def test_without_a_connection_the_magic_says_to_connect(shell, magics, capsys):
    result = run(shell, "%dbml SHOW MODELS")
    err = capsys.readouterr().err
    assert not result.success
    assert "UsageError: no dbml connection: run %dbml connect" in err
    assert "Traceback" not in err


def test_a_cell_runs_dbml_statements_and_shows_the_last_result(shell, magics, capsys):
    run(shell, "%dbml connect :memory:")
    assert "dbml: connected to :memory:" in capsys.readouterr().out
    result = run(shell, f"%%dbml\n{ROWS};\n{TRAIN}")
    assert result.success, result.error_in_exec
    trained = result.result  # TRAIN's summary row, as a DataFrame
    assert list(trained[["model", "version"]].itertuples(index=False, name=None)) == [("m", 1)]
    result = run(shell, "%dbml SELECT x, PREDICT(m, x) AS p FROM t ORDER BY x")
    frame = result.result
    assert len(frame) == 20 and list(frame.columns) == ["x", "p"]  # capped at displaylimit
    assert "dbml: 60 rows, the first 20 shown" in capsys.readouterr().out
    expected = magics.connection.sql("SELECT x, PREDICT(m, x) AS p FROM t ORDER BY x LIMIT 20").fetchall()
    assert list(frame.itertuples(index=False, name=None)) == expected


def test_capture_stores_a_relation_that_stays_valid(shell, magics, trained):
    shell.user_ns["con"] = trained
    run(shell, "%dbml connect con")
    result = run(shell, "%%dbml scores <<\nSELECT x, PREDICT(m, x) AS p FROM t WHERE x < 5 ORDER BY x")
    assert result.success and result.result is None
    run(shell, "%dbml CREATE TABLE other AS SELECT 1 AS a")  # more cells run on the connection
    scores = shell.user_ns["scores"]
    expected = trained.sql("SELECT x, PREDICT(m, x) AS p FROM t WHERE x < 5 ORDER BY x").fetchall()
    assert list(scores.df().itertuples(index=False, name=None)) == expected
    assert scores.to_arrow_table().num_rows == 5  # a relation: .df(), .pl() (with polars), Arrow
    result = run(shell, "%dbml shown << SELECT count(*) AS n FROM t")  # the line form
    assert result.success and shell.user_ns["shown"].fetchall() == [(60,)]


def test_placeholders_bind_values_and_quote_identifiers(shell, magics, trained):
    shell.user_ns.update(con=trained, low=55, evil="n1'; DROP TABLE t; --", column='na"me', table="t")
    run(shell, "%dbml connect con")
    trained.sql('CREATE OR REPLACE TABLE quoted AS SELECT 1 AS "na""me"')
    result = run(shell, "%%dbml\nSELECT x FROM t WHERE x > {{low}} OR name = {{evil}} ORDER BY x")
    assert result.success, result.error_in_exec
    assert result.result["x"].tolist() == [56.0, 57.0, 58.0, 59.0]
    assert trained.sql("SELECT count(*) FROM t").fetchall() == [(60,)]  # the table survives
    shell.user_ns["evil"] = "n7"
    result = run(shell, "%dbml SELECT x FROM {{ident:table}} WHERE name = {{evil}}")
    assert result.result["x"].tolist() == [7.0]
    result = run(shell, "%%dbml\nSELECT {{ident:column}} AS v FROM quoted;\nSELECT {{low}} + 1 AS v")  # one statement each
    assert result.result["v"].tolist() == [56]
    assert run(shell, "%dbml SELECT {{ident:column}} AS v FROM quoted").result["v"].tolist() == [1]


def test_placeholder_mistakes_are_named(shell, magics, trained, capsys):
    shell.user_ns.update(con=trained, number=3)
    run(shell, "%dbml connect con")
    capsys.readouterr()
    assert not run(shell, "%dbml SELECT {{missing}}").success
    assert "no variable 'missing' in the notebook" in capsys.readouterr().err
    assert not run(shell, "%dbml SELECT * FROM {{ident:number}}").success
    assert "{{ident:number}} must name a table or column as a non-empty string, got 3" in capsys.readouterr().err
    for quoted in ("SELECT '{{number}}' AS s", "SELECT 1 -- {{number}}"):  # would bind what DuckDB never sees
        assert not run(shell, f"%%dbml\n{quoted}").success
        assert "{{number}} is inside a quoted string or a comment" in capsys.readouterr().err


def test_an_identifier_that_reads_like_a_parameter_leaves_the_binding_alone(shell, magics, trained):
    shell.user_ns.update(con=trained, x="x$dbml_1", y="y$dbml_2", v=3, w="four")
    run(shell, "%dbml connect con")
    result = run(shell, "%%dbml\nCREATE OR REPLACE TABLE idents AS SELECT 1 AS {{ident:x}};\nSELECT {{v}} AS v")
    assert result.success, result.error_in_exec
    assert result.result["v"].tolist() == [3]
    result = run(shell, "%%dbml\nSELECT {{v}} AS a, 2 AS {{ident:y}};\nSELECT {{w}} AS b, {{ident:x}} FROM idents")
    assert result.success, result.error_in_exec
    assert result.result.to_dict("list") == {"b": ["four"], "x$dbml_1": [1]}
    sql, params = dbml.integrations.notebook.bind("SELECT {{ident:y}}, {{v}}", shell.user_ns)
    assert sql == 'SELECT "y$dbml_2", $dbml_1' and params == {"dbml_1": 3}


def test_values_that_cannot_be_bound_are_refused_before_anything_runs(shell, magics, trained, capsys):
    import numpy as np
    import pandas as pd

    class Thing:
        pass

    shell.user_ns.update(con=trained, frame=pd.DataFrame({"x": [1.0]}), chosen={1, 2}, nested=[1, {2}],
                         thing=Thing(), n=np.int64(4), flags=np.array([True, False]))  # fmt: skip
    run(shell, "%dbml connect con")
    capsys.readouterr()
    expected = {
        "frame": "{{frame}} is a pandas DataFrame, which cannot be bound as a value: use it by name in FROM "
                 "(SELECT * FROM frame)",
        "chosen": "{{chosen}} is a set, which cannot be bound as a value: bind a list instead (chosen = sorted(chosen))",
        "nested": "{{nested}}[1] is a set, which cannot be bound as a value: put a list in its place",
        "thing": "Thing, which cannot be bound as a value: bind a real number, a string",
    }  # fmt: skip
    for name, message in expected.items():
        cell = f"%%dbml\nCREATE TABLE ran_{name} AS SELECT 1 AS a;\nSELECT {{{{{name}}}}} AS v"
        assert not run(shell, cell).success
        assert message in capsys.readouterr().err, name
        assert not trained.sql(f"SELECT * FROM duckdb_tables() WHERE table_name = 'ran_{name}'").fetchall()
    result = run(shell, "%dbml SELECT {{n}} + 1 AS n, {{flags}} AS f")  # numpy's values bind as Python's
    assert result.success and result.result["n"].tolist() == [5]
    assert list(result.result["f"][0]) == [True, False]


def test_current_hands_the_cells_connection_to_python(shell, magics, trained, tmp_path):
    from dbml.integrations.notebook import current

    with pytest.raises(dbml.DbmlError, match="no dbml connection: run %dbml connect"):
        current()
    run(shell, f"%dbml connect {tmp_path / 'shop.duckdb'}")
    assert current() is magics.connection
    # the README's example: train in a cell, draw from Python on the same connection
    assert run(shell, f"%%dbml\n{ROWS};\n{TRAIN}").success
    result = run(shell, "import dbml.plot\nfrom dbml.integrations.notebook import current\n"
                        "dbml.plot.training_curves(current(), 'm')")  # fmt: skip
    assert result.success, result.error_in_exec
    assert type(result.result).__name__ == "Figure" and result.result.axes[0].get_lines()
    current().close()


def test_errors_show_the_message_without_a_traceback(shell, magics, trained, capsys):
    shell.user_ns["con"] = trained
    run(shell, "%dbml connect con")
    capsys.readouterr()
    result = run(shell, "%%dbml\nTRAIN MODEL bad FROM t TARGET nope")
    err = capsys.readouterr().err
    assert not result.success
    assert "UsageError: dbml: target column 'nope' is not in the source t" in err
    assert "Traceback" not in err and "dbml/" not in err
    result = run(shell, "%dbml SELECT * FROM no_such_table")
    err = capsys.readouterr().err
    assert not result.success and "CatalogException" in err and "no_such_table" in err and "Traceback" not in err
    assert not run(shell, "%%dbml junk\nSELECT 1").success
    assert "%%dbml takes nothing or 'name <<'" in capsys.readouterr().err


def test_connect_adopts_a_duckdb_connection_and_replaces_the_last(shell, magics, capsys):
    import duckdb

    raw = duckdb.connect()
    raw.execute("CREATE TABLE mine AS SELECT 42 AS answer")
    shell.user_ns.update(raw=raw, text="not a connection", number=5)
    run(shell, "%dbml connect raw")
    assert run(shell, "%dbml SELECT answer FROM mine").result["answer"].tolist() == [42]
    run(shell, "%dbml connect :memory:")  # a new one replaces it
    capsys.readouterr()
    assert not run(shell, "%dbml SELECT answer FROM mine").success
    assert not run(shell, "%dbml connect number").success
    assert "variable 'number' is a int; %dbml connect takes a DuckDB or dbml connection" in capsys.readouterr().err
    run(shell, "%dbml")
    assert "dbml: connected to :memory:" in capsys.readouterr().out


def test_python_frames_of_the_notebook_are_visible_to_sql(shell, magics, trained):
    import pandas as pd

    shell.user_ns.update(con=trained, fresh=pd.DataFrame({"x": [0.0, 1.0, 2.0]}))
    run(shell, "%dbml connect con")
    result = run(shell, "%dbml SELECT x, PREDICT(m, x) AS p FROM fresh ORDER BY x")
    assert result.success, result.error_in_exec
    expected = trained.sql("SELECT x, PREDICT(m, x) AS p FROM t WHERE x < 3 ORDER BY x").fetchall()
    assert list(result.result.itertuples(index=False, name=None)) == expected


# -- verbose ---------------------------------------------------------------------------------


def test_verbose_levels_print_to_stderr(trained, capsys):
    capsys.readouterr()
    trained.sql("TRAIN MODEL v FROM (SELECT x, y FROM t) TARGET y WITH (epochs = 3, verbose = 2, refit = true)")
    lines = capsys.readouterr().err.strip().splitlines()
    first = [line for line in lines if not line.startswith("refit ")]
    assert len(first) == 3
    pattern = r"epoch {}/3 - train_loss \d\.\d{{4}} - val_loss \d\.\d{{4}} - val_metric \d\.\d{{4}} - \d+\.\ds"
    for i, line in enumerate(first, 1):
        assert re.fullmatch(pattern.format(i), line), line
    refit = lines[len(first):]  # then the run on every training row: the epochs validation chose, no validation figures
    epochs = trained.sql("SELECT metrics->>'$.refit.epochs' FROM dbml.model_versions WHERE model = 'v'").fetchall()[0][0]
    assert len(refit) == int(epochs) >= 1
    for i, line in enumerate(refit, 1):
        assert re.fullmatch(rf"refit epoch {i}/{epochs} - train_loss \d\.\d{{4}} - \d+\.\ds", line), line
    trained.sql("TRAIN MODEL v FROM (SELECT x, y FROM t) TARGET y WITH (epochs = 2, verbose = 1)")
    err = capsys.readouterr().err
    assert "train v" in err and "2/2" in err and "val_metric=" in err and "train_loss=" in err
    for quiet in (", verbose = 0", ", progress = false", ""):  # the last: no terminal, no kernel, so 0
        trained.sql(f"TRAIN MODEL v FROM (SELECT x, y FROM t) TARGET y WITH (epochs = 2{quiet})")
        assert capsys.readouterr().err == ""
    stored = trained.sql("SELECT options FROM dbml.model_versions WHERE model = 'v'").fetchall()
    assert all('"verbose"' not in row[0] and '"progress"' not in row[0] for row in stored)  # display only


def test_verbose_is_validated(trained):
    with pytest.raises(dbml.OptionError, match=r"option 'verbose' must be 0, 1 or 2, got 3"):
        trained.sql("TRAIN MODEL w FROM t TARGET y WITH (verbose = 3)")
    with pytest.raises(dbml.OptionError, match=r"options 'verbose' = 2 and 'progress' = false disagree"):
        trained.sql("TRAIN MODEL w FROM t TARGET y WITH (verbose = 2, progress = false)")
    assert trained.sql("SELECT count(*) FROM dbml.model_versions WHERE model = 'w'").fetchall() == [(0,)]


# -- real notebooks on a kernel ----------------------------------------------------------------


def test_a_notebook_trains_predicts_and_fails_at_a_broken_cell(tmp_path, monkeypatch):
    """One kernel (a start costs seconds): the working cells' outputs, then a failing
    %%dbml cell that stops the run with dbml's message, as a CI run of the notebook would."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    root = str(Path(dbml.__file__).resolve().parents[1])
    # the kernel imports this checkout's dbml (jupyter_client starts "python" as sys.executable)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    cells = [
        "%load_ext dbml",
        "%dbml connect shop.duckdb",
        f"%%dbml\n{ROWS};\nTRAIN MODEL m FROM (SELECT x, y FROM t) TARGET y WITH (epochs = 2, seed = 3)",
        "%%dbml scores <<\nSELECT x, PREDICT(m, x) AS p FROM t ORDER BY x",
        "import dbml\nprint(dbml.__file__)\nprint(len(scores.df()), scores.df()['p'].dtype)",
        "%%dbml\nTRAIN MODEL m2 FROM t TARGET nope",
        "print('never reached')",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    with pytest.raises(nbclient.exceptions.CellExecutionError) as caught:
        client.execute()
    assert "dbml: target column 'nope' is not in the source t" in str(caught.value)
    assert nb.cells[6].outputs == []  # the run stopped at the failing cell
    assert (tmp_path / "shop.duckdb").exists()
    train_outputs = nb.cells[2].outputs
    bar = "".join(o.get("text", "") for o in train_outputs if o.get("name") == "stderr")
    widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in train_outputs)
    assert widget or "train m" in bar  # verbose defaults to 1 in a kernel: a bar (a widget where ipywidgets is)
    shown = "".join(o.get("data", {}).get("text/html", "") for o in train_outputs)
    assert "<table" in shown and "trained" in shown  # TRAIN's row, as an HTML table
    printed = nb.cells[4].outputs[0]["text"].splitlines()
    assert printed[0].startswith(str(Path(dbml.__file__).resolve().parent))
    assert printed[1] == "60 bool"


def test_import_dbml_stays_light():
    import subprocess

    code = "import dbml, sys; print(sorted(m for m in ('IPython', 'duckdb', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_cursor_is_shaped_like_duckdbs(trained):
    with trained.cursor() as k:
        assert k.sql("SELECT 41 + 1 AS n").fetchall() == [(42,)]
        assert k.execute("SELECT count(*) FROM t").fetchall() == trained.sql("SELECT count(*) FROM t").fetchall()
        k.executemany("SELECT ? * 2", [[1], [2]])
        assert k.fetchall() == [(4,)]
        with k.cursor() as inner:
            assert inner.sql("SELECT 'inner'").fetchall() == [("inner",)]
    assert trained.sql("SELECT 1").fetchall() == [(1,)]  # closing the cursor leaves the connection open
