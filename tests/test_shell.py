"""The dbml shell: python -m dbml as a subprocess, the renderer and the completer in process,
and one interactive session under a pseudo-terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import select
import subprocess
import sys
import time

import pyarrow as pa
import pytest

import dbml
from dbml.integrations.render import render
from dbml.integrations.shell import Shell, SqlCompleter, is_complete, main

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = """SELECT 1 AS id, NULL::INTEGER AS n, 'a,"b' AS s, {'k': 2, 'v': 'x'} AS st, [1, 2] AS l,
    DATE '2024-01-02' AS d, 1.5::DECIMAL(4, 2) AS dec"""
EXPECTED = {"id": 1, "n": None, "s": 'a,"b', "st": {"k": 2, "v": "x"}, "l": [1, 2], "d": "2024-01-02", "dec": 1.5}


def shell(*args: str, stdin: str = "", cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DBML_HISTORY": os.devnull}
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
    assert text.count("\n") == 40 + 6  # 40 rows, the · row, 3 rules, header, footer


def test_c_with_two_statements_and_f(tmp_path):
    (tmp_path / "s.sql").write_text("CREATE TABLE q AS SELECT 7 AS v;\n.mode csv\nSELECT v FROM q;\n")
    r = shell("-list", "-c", "SELECT 1 AS a; SELECT 'x;y' AS b;", "-f", str(tmp_path / "s.sql"))
    assert r.returncode == 0 and r.stdout == "a\n1\nb\nx;y\nv\n7\n"


def test_errors_are_one_line_and_bail_sets_the_exit_code():
    script = "SELECT * FROM nope;\nDESCRIBE MODEL ghost;\n.frob\nSELECT 'after' AS a;\n"
    r = shell("-list", stdin=script)
    assert r.returncode == 1 and r.stdout == "a\nafter\n"  # without -bail the script goes on
    lines = r.stderr.splitlines()
    assert len(lines) == 3 and all(x.startswith("Error: ") for x in lines)
    assert lines[0] == "Error: Catalog Error: Table with name nope does not exist!"
    assert "ghost" in lines[1] and lines[2] == "Error: unknown command '.frob'; .help lists the commands"
    r = shell("-list", "-bail", stdin=script)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1


def test_dot_command_names_never_reach_sql():
    script = "CREATE TABLE keep(i INT);\n.versions x\";DROP TABLE keep;--\nSELECT count(*) AS n FROM keep;\n"
    r = shell("-list", stdin=script)
    assert r.returncode == 1 and r.stdout == "n\n0\n"  # the table is still there
    (line,) = r.stderr.splitlines()
    assert line.startswith("Error: ") and "model name" in line and "Traceback" not in r.stderr


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
    assert got.out == "a\n1\n" and got.err.count("\n") == 1
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
    assert "version|aliases|metric|score|task|architecture|row_count|epochs|train_seconds|size|created_by|created_at" in out
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
