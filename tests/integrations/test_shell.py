"""The dbml shell: python -m dbml as a subprocess, the renderer and the completer in process,
and one interactive session under a pseudo-terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import re
import select
import subprocess
import sys
import time

import pyarrow as pa
import pytest

import dbml
from dbml.integrations.render import render
from dbml.integrations.shell import Shell, SqlCompleter, is_complete, main

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = """SELECT 1 AS id, NULL::INTEGER AS n, 'a,"b' AS s, {'k': 2, 'v': 'x'} AS st, [1, 2] AS l,
    DATE '2024-01-02' AS d, 1.5::DECIMAL(4, 2) AS dec"""
EXPECTED = {"id": 1, "n": None, "s": 'a,"b', "st": {"k": 2, "v": "x"}, "l": [1, 2], "d": "2024-01-02", "dec": 1.5}


def shell(*args: str, stdin: str = "", cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    # the width the shell renders for is its fallback of 120 columns: pytest-xdist's workers carry COLUMNS=80,
    # which made box mode fold a row that fits in 120
    env = {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}, "PYTHONPATH": str(ROOT),
           "DBML_HISTORY": os.devnull}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "dbml", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)  # fmt: skip


def test_every_output_mode_in_one_process(tmp_path):
    script = "".join(f".mode {m}\n{SAMPLE};\n" for m in ["csv", "json", "jsonlines", "line", "markdown", "list", "box"])
    r = shell(stdin=script)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    rows = list(csv.reader(io.StringIO(out.split("[{")[0])))
    assert rows == [list(EXPECTED), ["1", "", 'a,"b', "{'k': 2, 'v': x}", "[1, 2]", "2024-01-02", "1.50"]]
    json_part = out[out.index("[{") : out.index("]\n", out.index("[{")) + 2]
    assert json.loads(json_part) == [EXPECTED]
    line = out[out.index("]\n", out.index("[{")) + 2 :].splitlines()[0]
    assert json.loads(line) == EXPECTED
    assert " st = {'k': 2, 'v': x}" in out and "  n = NULL" in out
    assert "| id | n | s | st | l | d | dec |" in out and "|---:|---:|---|---|---|---|---:|" in out
    assert "id|n|s|st|l|d|dec\n1|NULL|a,\"b|{'k': 2, 'v': x}|[1, 2]|2024-01-02|1.50\n" in out
    assert "│ id      │" not in out and "┌" in out and "│    NULL │" in out


def test_json_modes_with_maps_nan_and_no_rows():
    t = pa.table({"m": pa.array([[("a", 1)]], pa.map_(pa.string(), pa.int64())), "f": [float("nan")]})
    assert json.loads(render(t, "json")) == [{"m": {"a": 1}, "f": None}]
    assert render(t.slice(0, 0), "json") == "" and render(t.slice(0, 0), "jsonlines") == ""


def test_box_shows_first_and_last_rows_and_cuts_wide_tables():
    t = pa.table({f"col{i}": [("v" * 30)] * 100 for i in range(10)} | {"id": list(range(100))})
    text = render(t, "box", width=100)
    lines = text.splitlines()
    assert all(len(x) <= 100 for x in lines)
    assert "100 rows (40 shown)" in text and "11 columns (" in text and " … " in text
    assert "│ ·" in text  # the row standing for the rows left out
    assert "col0" in text and "id" in text  # the first and last columns stay
    hidden = text[text.index("hidden: ") :]
    assert all(f"col{i}" in hidden for i in range(2, 10)) and ".mode line shows every column" in hidden
    footer = text.split("┘\n")[1]
    assert text.count("\n") == 40 + 5 + footer.count("\n")  # 40 rows, the · row, 3 rules, header, footer


def test_c_with_two_statements_and_f(tmp_path):
    (tmp_path / "s.sql").write_text("CREATE TABLE q AS SELECT 7 AS v;\n.mode csv\nSELECT v FROM q;\n")
    r = shell("-list", "-c", "SELECT 1 AS a; SELECT 'x;y' AS b;", "-f", str(tmp_path / "s.sql"))
    assert r.returncode == 0 and r.stdout == "a\n1\nb\nx;y\nv\n7\n"


def test_errors_have_no_traceback_and_bail_sets_the_exit_code():
    script = "SELECT * FROM nope;\nDESCRIBE MODEL ghost;\n.frob\nSELECT 'after' AS a;\n"
    r = shell("-list", stdin=script)
    assert r.returncode == 1 and r.stdout == "a\nafter\n"  # without -bail the script goes on
    errors = ["Error: " + x for x in re.split("^Error: ", r.stderr, flags=re.M)[1:]]
    assert len(errors) == 3 and "Traceback" not in r.stderr
    assert errors[0].startswith("Error: Catalog Error: Table with name nope does not exist!\n")  # and DuckDB's hint
    assert "ghost" in errors[1] and errors[2] == "Error: unknown command '.frob'; .help lists the commands\n"
    r = shell("-list", "-bail", stdin=script)
    assert r.returncode == 1 and r.stdout == "" and len(re.findall("^Error: ", r.stderr, flags=re.M)) == 1


def test_dot_command_names_never_reach_sql():
    script = "CREATE TABLE keep(i INT);\n.versions x\";DROP/**/TABLE/**/keep;--\n.versions x\";DROP TABLE keep;--\n" \
             "SELECT count(*) AS n FROM keep;\n"  # fmt: skip
    r = shell("-list", stdin=script)
    assert r.returncode == 1 and r.stdout == "n\n0\n"  # the table is still there
    first, second = r.stderr.splitlines()
    assert first.startswith("Error: ") and "model name" in first and "Traceback" not in r.stderr
    assert second.startswith("Error: .versions: extra arguments 'TABLE', 'keep;--'")


def test_a_file_another_process_holds_is_one_line(tmp_path):
    held = dbml.connect(str(tmp_path / "held.duckdb"))
    try:
        r = shell(str(tmp_path / "held.duckdb"), "-c", "SELECT 1")
    finally:
        held.close()
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1
    assert r.stderr.startswith("Error: ") and "held.duckdb" in r.stderr and f"process {os.getpid()}" in r.stderr


def test_main_in_process_c_stops_at_its_first_error(capsys):
    assert main(["-c", "SELECT 1 AS a; SELECT * FROM nope; SELECT 2;", "-list"]) == 1
    got = capsys.readouterr()
    assert got.out == "a\n1\n" and len(re.findall("^Error: ", got.err, flags=re.M)) == 1 and "nope" in got.err
    assert main(["-nonsense"]) == 1 and "-nonsense" in capsys.readouterr().err


def test_timer_dot_commands_and_files(tmp_path):
    (tmp_path / "more.sql").write_text("CREATE VIEW v AS SELECT x FROM t;\n")
    script = """CREATE TABLE t AS SELECT i::DOUBLE AS x, (i % 2 = 0) AS y, 'a;b' AS s FROM range(60) r(i); -- ; here
TRAIN MODEL m FROM t TARGET y WITH (epochs = 2);
SELECT x, PREDICT(m, *) AS p
  FROM t ORDER BY x LIMIT 5;
.mode list
.timer on
SELECT PREDICT(m, *) AS p FROM t;
.timer off
.read more.sql
.tables
.tables v%
.schema t
.models
.versions m
.output out.txt
SELECT 'to the file' AS f;
.output
.once once.txt
SELECT 'once' AS o;
SELECT 'back' AS b;
"""
    r = shell("-csv", str(tmp_path / "db.duckdb"), stdin=script, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # the PREDICT query's csv parses, and no progress bar text is anywhere
    assert "s/epoch" not in out + r.stderr and "epoch/s" not in out + r.stderr and "\r" not in out + r.stderr
    head = out[out.index("x,p\n") : out.index("p\n", out.index("x,p\n") + 4)]
    rows = list(csv.DictReader(io.StringIO(head)))
    assert [float(row["x"]) for row in rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert {row["p"] for row in rows} <= {"true", "false"}
    assert "Run Time (s): real " in out and "(60 rows, " in out and "p\n" in out and " rows/s)" in out
    assert "t\nv\nv\n" in out  # .tables, then .tables v%
    assert "CREATE TABLE t(x DOUBLE, y BOOLEAN, s VARCHAR);\n" in out
    assert "model|task|metric|score|versions|default_version|aliases|size|rows|architecture|target" in out
    assert "\nm|classification|accuracy|" in out
    assert "version|aliases|metric|score|baseline|task|architecture|row_count|epochs|train_seconds|size|created_by|created_at" in out
    assert (tmp_path / "out.txt").read_text() == "f\nto the file\n"
    assert (tmp_path / "once.txt").read_text() == "o\nonce\n"
    assert out.endswith("b\nback\n") and "to the file" not in out and "once" not in out
    r = shell(str(tmp_path / "db.duckdb"), "-readonly", "-list", "-c",
              "SELECT count(*) AS n FROM t; INSERT INTO t VALUES (1, true, 'z'); SELECT 'not reached';")  # fmt: skip
    assert r.returncode == 1 and r.stdout == "n\n60\n"
    assert "read-only" in r.stderr and r.stderr.count("\n") == 1


def test_completion_offers_tables_columns_models_and_keywords():
    from prompt_toolkit.document import Document

    con = dbml.connect()
    con.sql("CREATE TABLE customers AS SELECT i::DOUBLE AS tenure, (i % 2 = 0) AS churned FROM range(40) r(i)")
    completer = SqlCompleter(con)
    con.sql("TRAIN MODEL churn_model FROM customers TARGET churned WITH (epochs = 2)")
    completer.refresh()  # the shell refreshes after each statement

    def offered(text: str) -> set[str]:
        return {c.text for c in completer.get_completions(Document(text), None)}

    assert "customers" in offered("SELECT * FROM cust")
    assert "tenure" in offered("SELECT ten")
    assert "churn_model" in offered("SELECT PREDICT(churn_")
    assert {"PREDICT", "PREDICT_PROBA"} <= offered("SELECT PRED")
    assert "TRAIN MODEL" in offered("TRAIN MO")
    assert "model_versions" not in offered("SELECT * FROM model_")  # dbml's registry stays out
    con.close()


def test_statement_completeness():
    assert is_complete("SELECT 1;") and is_complete(".tables") and is_complete("  ")
    assert not is_complete("SELECT ';") and not is_complete("SELECT 1 -- ;")
    assert not is_complete("SELECT $x$ ; $x$") and is_complete("SELECT $x$ ; $x$;")
    assert not is_complete('SELECT 1 AS "a;"')


def test_shell_in_process_keeps_going_after_an_error():
    out, err = io.StringIO(), io.StringIO()
    sh = Shell(dbml.connect(), mode="csv", out=out, err=err)
    assert sh.run_text("SELECT * FROM nope;\nSELECT 3 AS x;\n")
    assert err.getvalue().startswith("Error: Catalog Error") and out.getvalue() == "x\n3\n" and sh.failed


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_interactive_session_under_a_pty(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    env = {**os.environ, "PYTHONPATH": str(ROOT), "DBML_HISTORY": str(tmp_path / "hist"), "TERM": "xterm",
           "PROMPT_TOOLKIT_NO_CPR": "1"}  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # the child: the shell on the terminal
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        os.execve(sys.executable, [sys.executable, "-m", "dbml"], env)
    seen = b""

    def read_until(marker: bytes, timeout: float = 60) -> bytes:
        nonlocal seen
        end = time.time() + timeout
        while marker not in seen and time.time() < end:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
        return seen

    try:
        read_until(b"D")
        os.write(fd, b"SELECT 41 + 1 AS answer,\r")
        time.sleep(0.3)
        os.write(fd, b"'x' AS s;\r")
        read_until("┘".encode())
        screen = seen.decode("utf-8", "replace")
        assert "answer" in screen and "42 │" in screen and "┌" in screen and "integer" in screen
        os.write(fd, b".quit\r")
        end = time.time() + 30
        while time.time() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            read_until(b"\x00", 0.5)
        assert done == pid and os.waitstatus_to_exitcode(status) == 0
        assert (tmp_path / "hist").read_text().count("SELECT 41 + 1") == 1
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.close(fd)


def test_without_prompt_toolkit_plain_lines_and_one_hint(monkeypatch, capsys):
    from dbml.integrations import shell as shell_module

    monkeypatch.setitem(sys.modules, "prompt_toolkit", None)  # import fails as if not installed
    monkeypatch.setattr(sys, "stdin", io.StringIO("SELECT 1\n AS a;\n.quit\nSELECT 2 AS b;\n"))
    con = dbml.connect()
    shell_module._interactive(Shell(con, mode="list"))
    got = capsys.readouterr()
    assert "a\n1\n" in got.out and "b\n2" not in got.out  # .quit ends it
    assert got.err.count("pip install 'dbml[shell]'") == 1
    con.close()


# -- errors, wide results, dot commands, files ------------------------------------------------


def in_process(mode: str = "list", width: int = 120, **kw) -> tuple[Shell, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    sh = Shell(dbml.connect(), mode=mode, out=out, err=err, **kw)
    sh.width = lambda: width  # as a terminal of that width
    return sh, out, err


def test_duckdb_errors_are_shown_whole_with_their_hints():
    sh, out, err = in_process()
    sh.run_text("CREATE TABLE titanic(age INT, name VARCHAR);\nSELECT * FROM titanc;\nSELECT agee FROM titanic;\n"
                "SELECT * FRM titanic;\nDESCRIBE MODEL ghost;\n")  # fmt: skip
    text = err.getvalue()
    assert 'Error: Catalog Error: Table with name titanc does not exist!\nDid you mean "titanic"?\n' in text
    assert 'Error: Binder Error: Referenced column "agee" not found in FROM clause!\nCandidate bindings: "age"' in text
    assert "Error: Parser Error: syntax error at or near \"titanic\"\n\nLINE 1: SELECT * FRM titanic" in text
    pointer = text.splitlines()[text.splitlines().index("LINE 1: SELECT * FRM titanic;") + 1]
    assert pointer.strip() == "^^^^^^^" and pointer.index("^") == len("LINE 1: SELECT * FRM ")
    assert text.endswith("Error: dbml: model 'ghost' does not exist; SHOW MODELS lists the models\n")
    assert "Traceback" not in text and out.getvalue() == ""
    sh.con.close()


@pytest.fixture(scope="module")
def wide_results():
    """TRAIN, EVALUATE, DESCRIBE MODEL and SHOW MODELS results of one tiny model, as
    (name, arrow table, DuckDB types)."""
    con = dbml.connect()
    con.sql("CREATE TABLE t AS SELECT i::DOUBLE AS x, (i * 7 % 5)::DOUBLE AS z, 'c' || (i % 3) AS cat, "
            "(i % 2 = 0) AS y FROM range(40) r(i)")  # fmt: skip
    results = []
    for name, sql in [("train", "TRAIN MODEL m FROM t TARGET y WITH (epochs = 2, seed = 1, verbose = 0)"),
                      ("evaluate", "EVALUATE MODEL m ON (SELECT * FROM t)"), ("describe", "DESCRIBE MODEL m"),
                      ("show", "SHOW MODELS")]:  # fmt: skip
        rel = con.sql(sql)
        results.append((name, rel.arrow().read_all(), [str(t) for t in rel.types]))
    yield con, results
    con.close()


@pytest.mark.parametrize("width", [80, 120])
def test_wide_one_row_results_fold_to_one_column_per_line(wide_results, width):
    _, results = wide_results
    for name, table, types in results:
        text = render(table, "box", width, types)
        assert max(len(x) for x in text.splitlines()) <= width, name
        first_cells = [x.split("│")[1].strip() for x in text.splitlines() if x.startswith("│")]
        assert first_cells[1:] == table.column_names, name  # every column, in order, none hidden
        assert text.splitlines()[1].split("│")[1].strip() == "column" and "hidden" not in text
        if name == "evaluate":
            assert {"recall", "f1", "roc_auc"} <= set(first_cells)
        if name == "train":
            assert {"rows", "metrics", "epochs"} <= set(first_cells)
            assert f"too wide for {width} characters" in text
    narrow = render(pa.table({"a": [1], "b": ["x"]}), "box", 80, ["INTEGER", "VARCHAR"])
    assert "│       1 │ x       │" in narrow and "column" not in narrow  # what fits keeps its rows across


def test_wide_results_with_many_rows_name_the_hidden_columns(wide_results):
    _, results = wide_results
    _, table, types = next(r for r in results if r[0] == "describe")
    four = pa.concat_tables([table] * 4)
    text = render(four, "box", 80, types)
    assert max(len(x) for x in text.splitlines()) <= 80 and " … " in text
    footer = " ".join(text.split("┘\n")[1].split())
    shown = {c.strip() for c in text.splitlines()[1].split("│")} - {"", "…"}
    hidden = footer[footer.index("hidden: ") + 8 : footer.index(";", footer.index("hidden: "))].split(", ")
    assert set(hidden) | shown == set(table.column_names) and not set(hidden) & shown
    assert ".mode line shows every column" in footer


def test_versions_shows_duckdb_types(tmp_path):
    sh, out, err = in_process(mode="box", width=400)
    sh.run_text("CREATE TABLE t AS SELECT i::DOUBLE AS x, (i % 2 = 0) AS y FROM range(30) r(i);\n"
                "TRAIN MODEL m FROM t TARGET y WITH (epochs = 1, verbose = 0);\n.mode box\n")  # fmt: skip
    out.seek(0), out.truncate()
    assert sh.dot(".versions m"), err.getvalue()
    header_types = out.getvalue().splitlines()[2]
    assert "varchar[]" in header_types and "integer" in header_types and "timestamp" in header_types
    assert "int32" not in header_types and "list<" not in header_types and "string" not in header_types
    sh.con.close()


def test_schema_of_a_missing_table_is_an_error():
    sh, out, err = in_process()
    sh.run_text("CREATE TABLE here(i INT);\n")
    assert not sh.dot(".schema nosuch") and sh.failed
    assert err.getvalue() == "Error: .schema nosuch: no table or view is named like 'nosuch'; .tables lists them\n"
    assert sh.dot(".schema here") and out.getvalue() == "CREATE TABLE here(i INTEGER);\n"
    sh.con.close()
    assert main(["-c", ".schema nosuch"]) == 1


def test_dot_commands_refuse_extra_arguments(tmp_path):
    sh, out, err = in_process()
    for line, extra in [(f".output {tmp_path / 'a'} {tmp_path / 'b'}", f"'{tmp_path / 'b'}'"),
                        (f".once {tmp_path / 'a'} more", "'more'"), (".mode csv json", "'json'"),
                        (".timer on off", "'off'"), (".tables a b c", "'b', 'c'"), (".schema a b", "'b'"),
                        (".models x", "'x'"), (".versions m n", "'n'"), (".read a b", "'b'"),
                        (".help me", "'me'"), (".quit now", "'now'")]:  # fmt: skip
        err.seek(0), err.truncate()
        assert not sh.dot(line), line
        assert err.getvalue().startswith(f"Error: {line.split()[0]}: extra argument") and extra in err.getvalue(), line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing was opened
    assert sh.mode == "list" and not sh.timer
    assert not sh.dot(".read") and "an argument is missing; write it as .read FILE" in err.getvalue()
    sh.con.close()


def test_an_output_file_that_cannot_be_opened_leaves_output_on_stdout(tmp_path):
    script = f".output {tmp_path / 'first.txt'}\nSELECT 1 AS a;\n.output {tmp_path / 'no' / 'x.txt'}\n" \
             "SELECT 2 AS b;\n.once /nonexistent/once.txt\nSELECT 3 AS c;\n"  # fmt: skip
    r = shell("-list", stdin=script)
    assert r.returncode == 1 and r.stdout == "b\n2\nc\n3\n" and "Traceback" not in r.stderr
    assert (tmp_path / "first.txt").read_text() == "a\n1\n"
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and all(x.startswith("Error: ") for x in lines)
    assert "x.txt: cannot open the file for writing: No such file or directory" in lines[0]
    r = shell("-list", "-bail", stdin=script)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_output_is_one_error_and_output_comes_back():
    script = ".output /dev/full\nSELECT 1 AS a;\nSELECT 2 AS b;\n.once /dev/full\nSELECT 3 AS c;\nSELECT 4 AS d;\n"
    r = shell("-list", stdin=script)
    assert r.returncode == 1 and r.stdout == "b\n2\nd\n4\n" and "Traceback" not in r.stderr
    lost = "Error: cannot write to '/dev/full': No space left on device; output goes to standard output again\n"
    assert r.stderr == 2 * lost
    r = shell("-list", "-bail", stdin=script)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1


def test_a_script_that_is_not_utf8_is_one_error(tmp_path):
    (tmp_path / "latin1.sql").write_bytes("SELECT 'café' AS s;\n".encode("latin-1"))
    (tmp_path / "ok.sql").write_text("SELECT 'ok' AS s;\n")
    r = shell("-list", "-f", "latin1.sql", "-f", "ok.sql", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == "s\nok\n" and "Traceback" not in r.stderr  # the next script runs
    assert r.stderr == ("Error: -f latin1.sql: the file is not UTF-8 (byte 0xe9 on line 1); convert it, "
                        "for example: iconv -f latin1 -t utf-8 latin1.sql\n")  # fmt: skip
    r = shell("-list", "-bail", "-f", "latin1.sql", "-f", "ok.sql", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1
    r = shell("-list", stdin=".read latin1.sql\nSELECT 1 AS after;\n", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == "after\n1\n" and r.stderr.startswith("Error: .read latin1.sql: the file")
    env_strict = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8:strict"}
    r = subprocess.run([sys.executable, "-m", "dbml", "-list"], input="SELECT 'café';\n".encode("latin-1"),
                       capture_output=True, env=env_strict, timeout=120)  # fmt: skip
    assert r.returncode == 1 and r.stderr.decode().startswith("Error: standard input is not UTF-8 (byte 0xe9)")
    assert b"Traceback" not in r.stderr


def test_a_script_that_reads_itself_is_refused_before_it_runs_again(tmp_path):
    (tmp_path / "self.sql").write_text("CREATE TABLE IF NOT EXISTS t(i INT);\nINSERT INTO t VALUES (1);\n"
                                       ".read ./self.sql\nSELECT count(*) AS n FROM t;\n")  # fmt: skip
    r = shell("-list", "-f", "self.sql", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == "n\n1\n"  # one INSERT, one SELECT
    real = os.path.realpath(tmp_path / "self.sql")
    assert r.stderr == (f"Error: .read ./self.sql: '{real}' is already being read ({real} -> {real}); "
                        "a script cannot read itself\n")  # fmt: skip
    (tmp_path / "a.sql").write_text("SELECT 'a' AS a;\n.read b.sql\n")
    (tmp_path / "b.sql").write_text("SELECT 'b' AS b;\n.read a.sql\n")
    (tmp_path / "link.sql").symlink_to(tmp_path / "a.sql")
    r = shell("-list", stdin=".read link.sql\n.read a.sql\n", cwd=tmp_path)  # a link is the file it points to
    assert r.returncode == 1 and r.stdout == "a\na\nb\nb\na\na\nb\nb\n" and r.stderr.count("\n") == 2
    a, b = os.path.realpath(tmp_path / "a.sql"), os.path.realpath(tmp_path / "b.sql")
    assert r.stderr.count(f"Error: .read a.sql: '{a}' is already being read ({a} -> {b} -> {a})") == 2


def test_read_takes_in_at_most_the_script_limit(tmp_path, monkeypatch):
    from dbml.integrations import shell as shell_module

    monkeypatch.setattr(shell_module, "MAX_SCRIPT", 40)
    monkeypatch.setattr(shell_module, "_CHUNK", 16)
    (tmp_path / "small.sql").write_text("SELECT 1 AS n;\n")  # 15 bytes
    (tmp_path / "big.sql").write_text("SELECT 1 AS n;\n" * 3)  # 45 bytes
    sh, out, err = in_process()
    assert sh.dot(f".read {tmp_path / 'small.sql'}") and out.getvalue() == "n\n1\n"
    assert not sh.dot(f".read {tmp_path / 'big.sql'}") and out.getvalue() == "n\n1\n"  # nothing of it ran
    assert err.getvalue().startswith(f"Error: .read {tmp_path / 'big.sql'}: the file is larger than ")
    assert err.getvalue().count("\n") == 1
    sh.con.close()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_read_of_an_endless_file_is_refused_at_64_mib():
    r = shell("-list", stdin=".read /dev/zero\nSELECT 'after' AS a;\n")
    assert r.returncode == 1 and r.stdout == "a\nafter\n"
    assert r.stderr.startswith("Error: .read /dev/zero: the file is larger than 64 MiB") and r.stderr.count("\n") == 1


def test_plain_sql_loads_neither_onnx_nor_torch_nor_arrow():
    """dbml -c "SELECT 1" starts in about the time of import duckdb, sqlglot
    (benchmarks/startup.py measures it): plain SQL loads no model machinery."""
    import subprocess
    import sys

    probe = (
        "import sys, runpy\n"
        "sys.argv = ['dbml', '-c', 'SELECT 1 AS x']\n"
        "try:\n    runpy.run_module('dbml', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch', 'pyarrow', 'numpy', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "│ 1 │" in out.stdout.replace("  ", " ") or "1" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"
