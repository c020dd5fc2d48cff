"""The ``dbml`` shell: DuckDB's CLI, with dbml's statements.

``dbml [FILE] [-c SQL] [-f script.sql] [-readonly] [-bail] [-echo] [-box|-csv|-json|
-jsonlines|-line|-markdown|-list]``. Without FILE the database is in memory. On a
terminal it is interactive (prompt_toolkit, from the ``shell`` extra); otherwise it runs
the script on standard input. As DuckDB's CLI (2.0 docs, "Command Line" troubleshooting),
the default output mode is box whether or not output is piped; a script goes on after a
failed statement unless -bail is given, and exits 1 if any statement failed.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

import duckdb

from dbml.errors import DbmlError
from dbml.integrations.render import MODES, render
from dbml.script import mask, split_script

__all__ = ["Shell", "SqlCompleter", "KEYWORDS", "is_complete", "main"]

EXTRA_HINT = "dbml: for line editing, history and completion install the shell extra: pip install 'dbml[shell]'"

KEYWORDS = sorted(
    set(
        """SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT OFFSET JOIN LEFT RIGHT INNER OUTER FULL CROSS ON USING
        AS AND OR NOT NULL IS IN LIKE ILIKE BETWEEN CASE WHEN THEN ELSE END DISTINCT UNION ALL EXCEPT INTERSECT
        WITH RECURSIVE INSERT INTO VALUES UPDATE SET DELETE CREATE TABLE VIEW SCHEMA DROP ALTER ADD COLUMN
        REPLACE IF EXISTS PRIMARY KEY DESCRIBE SHOW SUMMARIZE EXPLAIN ANALYZE COPY TO ATTACH DETACH PRAGMA
        CAST TRUE FALSE ASC DESC QUALIFY WINDOW OVER PARTITION
        TRAIN MODEL MODELS TARGET PREDICT PREDICT_PROBA EMBED ANOMALY_SCORE IS_ANOMALY FORECAST EVALUATE
        EXPORT IMPORT MONITOR VERSION""".split()
    )
    | {"TRAIN MODEL", "EVALUATE MODEL", "SHOW MODELS", "DESCRIBE MODEL", "DROP MODEL", "ALTER MODEL",
       "EXPORT MODEL", "IMPORT MODEL", "EXPLAIN MODEL", "MONITOR MODEL", "FORECAST MODEL"}
)  # fmt: skip

# scoring functions: .timer reports rows/s for the queries that call one
_SCORING = ("PREDICT", "PREDICT_PROBA", "EMBED", "ANOMALY_SCORE", "IS_ANOMALY")

HELP = """\
.bail on|off        stop at the first error (default: off)
.echo on|off        print each statement before running it
.exit, .quit        leave the shell
.help               this text
.mode MODE          output mode: box, csv, json, jsonlines, line, markdown, list
.models             the models in the registry (SHOW MODELS)
.once FILE          write the next result to FILE
.output [FILE]      write results to FILE; without FILE, back to standard output
.read FILE          run the statements in FILE
.schema [TABLE]     the CREATE statements of the tables and views (or of TABLE)
.tables [PATTERN]   the tables and views, or those whose name is LIKE PATTERN
.timer on|off       print the time each statement takes (and rows/s of scoring queries)
.versions MODEL     the versions of MODEL (DESCRIBE MODEL)
"""


def is_complete(text: str) -> bool:
    """Whether typed text is ready to run: blank, a dot command, or SQL whose last
    significant character is a ``;`` outside strings, quoted names and comments."""
    if not text.strip() or text.lstrip().startswith("."):
        return True
    return mask(text).rstrip().endswith(";")


class _Quit(Exception):
    pass


class Shell:
    """Runs statements and dot commands on one connection and writes their results.

    Args:
        con: a ``dbml.connection.Connection``.
        mode: the output mode, one of ``MODES``.
        bail: stop at the first error.
        echo: print each statement before running it.
        out: where results go (standard output by default).
        err: where errors go (standard error by default).
    """

    def __init__(self, con: Any, mode: str = "box", bail: bool = False, echo: bool = False,
                 out: IO[str] | None = None, err: IO[str] | None = None):  # fmt: skip
        self.con, self.mode, self.bail, self.echo = con, mode, bail, echo
        self.stdout = out or sys.stdout
        self.out: IO[str] = self.stdout
        self.err = err or sys.stderr
        self.timer = False
        self.failed = False  # any statement failed
        self._once: IO[str] | None = None

    # -- input ---------------------------------------------------------------------

    def run_lines(self, lines: Iterable[str]) -> bool:
        """Run a script line by line: dot commands on lines of their own, SQL to each
        ``;``. Returns False where it stopped at an error under bail (or at .quit)."""
        buffer = ""
        try:
            for line in lines:
                if not buffer.strip() and line.lstrip().startswith("."):
                    buffer = ""
                    if not self.dot(line.strip()) and self.bail:
                        return False
                    continue
                buffer += line if line.endswith("\n") else line + "\n"
                if is_complete(buffer):
                    ok = self.run_sql(buffer)
                    buffer = ""
                    if not ok and self.bail:
                        return False
            if mask(buffer).strip():  # a last statement without its ;
                return self.run_sql(buffer) or not self.bail
        except _Quit:
            return False
        return True

    def run_text(self, text: str) -> bool:
        """``run_lines`` over a text."""
        return self.run_lines(text.splitlines(keepends=True))

    # -- SQL -----------------------------------------------------------------------

    def run_sql(self, text: str) -> bool:
        """Run the statements of ``text``; False if one failed."""
        ok = True
        for stmt in split_script(text):
            if self.echo:
                self._write(stmt.text.strip() + "\n")
            if not self._one(stmt):
                ok = False
                self.failed = True
                if self.bail:
                    break
        return ok

    def _one(self, stmt: Any) -> bool:
        start = time.perf_counter()
        try:
            rel = self.con.sql(stmt.text)
            table = rel.arrow().read_all() if rel is not None else None
            types = [str(t) for t in rel.types] if rel is not None else None
        except KeyboardInterrupt:
            self._interrupt()
            return False
        except duckdb.InterruptException:
            self.err.write("Interrupted\n")
            return False
        except (DbmlError, duckdb.Error) as error:
            self.error(error)
            return False
        except Exception as error:  # noqa: BLE001 - one line, never a traceback
            # duckdb's own SIGINT handler ends a running query with "Query interrupted"
            if "interrupted" in str(error).lower():
                self.err.write("Interrupted\n")
            else:
                self.error(f"{type(error).__name__}: {error}")
            return False
        elapsed = time.perf_counter() - start
        if table is not None:
            self._write(render(table, self.mode, self.width(), types), result=True)
        if self.timer:
            note = f"Run Time (s): real {elapsed:.3f}"
            if table is not None and _scores(stmt):
                rate = table.num_rows / elapsed if elapsed > 0 else float("inf")
                note += f"  ({table.num_rows} rows, {rate:,.0f} rows/s)"
            self._write(note + "\n")
        return True

    def _interrupt(self) -> None:
        try:
            self.con.duckdb.interrupt()
        except Exception:  # noqa: BLE001, S110 - nothing running any more
            pass
        self.err.write("Interrupted\n")

    def error(self, error: Any) -> None:
        """Write one line ``Error: ...`` (DuckDB's first line of a DuckDB error)."""
        lines = [x for x in str(error).strip().splitlines() if x.strip()] or [type(error).__name__]
        self.err.write(f"Error: {lines[0]}\n")
        self.err.flush()

    def width(self) -> int:
        """The terminal's width (120 where output is not a terminal)."""
        return shutil.get_terminal_size((120, 40)).columns

    def _write(self, text: str, result: bool = False) -> None:
        target = self._once if (result and self._once is not None) else self.out
        target.write(text)
        target.flush()
        if result and self._once is not None:
            self._once.close()
            self._once = None

    # -- dot commands ----------------------------------------------------------------

    def dot(self, line: str) -> bool:
        """Run one dot command; False if it failed."""
        words = line.split()
        name, args = words[0].lower(), words[1:]
        if name in (".quit", ".exit"):
            raise _Quit
        if name == ".help":
            self._write(HELP)
            return True
        handler = {
            ".mode": self._mode, ".timer": self._flag("timer"), ".bail": self._flag("bail"),
            ".echo": self._flag("echo"), ".tables": self._tables, ".schema": self._schema,
            ".models": self._models, ".versions": self._versions, ".read": self._read,
            ".output": self._output, ".once": self._once_to,
        }.get(name)  # fmt: skip
        if handler is None:
            self.error(f"unknown command '{words[0]}'; .help lists the commands")
            self.failed = True
            return False
        try:
            ok = handler(args)
        except OSError as error:
            self.error(f"{words[0]}: {error.strerror or error}: '{error.filename}'" if error.filename else error)
            ok = False
        except (DbmlError, duckdb.Error) as error:
            self.error(error)
            ok = False
        except Exception as error:  # noqa: BLE001 - one line, never a traceback
            self.error(f"{type(error).__name__}: {error}")
            ok = False
        if not ok:
            self.failed = True
        return ok

    def _mode(self, args: list[str]) -> bool:
        if not args:
            self._write(f"current output mode: {self.mode}\n")
            return True
        mode = {"duckbox": "box"}.get(args[0].lower(), args[0].lower())
        if mode not in MODES:
            self.error(f"unknown output mode '{args[0]}'; use one of {', '.join(MODES)}")
            return False
        self.mode = mode
        return True

    def _flag(self, attr: str):
        def set_flag(args: list[str]) -> bool:
            if len(args) != 1 or args[0].lower() not in ("on", "off", "1", "0", "true", "false"):
                self.error(f".{attr} takes on or off")
                return False
            setattr(self, attr, args[0].lower() in ("on", "1", "true"))
            return True

        return set_flag

    def _query(self, sql: str, params: list[Any] | None = None) -> bool:
        try:
            rel = self.con.duckdb.sql(sql, params=params)
            self._write(render(rel.arrow().read_all(), self.mode, self.width(), [str(t) for t in rel.types]), True)
        except duckdb.Error as error:
            self.error(error)
            return False
        return True

    def _names(self, pattern: str | None) -> list[tuple[str, str, str | None]]:
        """(schema, name, sql) of the user's tables and views, dbml's registry left out."""
        sql = """
            SELECT schema_name, table_name, sql FROM duckdb_tables() WHERE schema_name <> 'dbml'
            UNION ALL
            SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal AND schema_name <> 'dbml'
            ORDER BY 1, 2"""
        rows = self.con.duckdb.execute(sql).fetchall()
        if pattern is None:
            return rows
        keep = {
            r[0] for r in self.con.duckdb.execute("SELECT n FROM unnest(?::VARCHAR[]) AS u(n) WHERE n LIKE ?",
                                                    [[r[1] for r in rows], pattern]).fetchall()
        }  # fmt: skip
        return [r for r in rows if r[1] in keep]

    def _tables(self, args: list[str]) -> bool:
        rows = self._names(args[0] if args else None)
        self._write("".join((n if s == "main" else f"{s}.{n}") + "\n" for s, n, _ in rows))
        return True

    def _schema(self, args: list[str]) -> bool:
        rows = self._names(args[0] if args else None)
        self._write("".join((sql or "").rstrip(";") + ";\n" for _, _, sql in rows))
        return True

    def _models(self, args: list[str]) -> bool:
        return self.run_sql("SHOW MODELS;")

    def _versions(self, args: list[str]) -> bool:
        if len(args) != 1:
            self.error(".versions takes a model name: .versions churn")
            return False
        try:
            rel = self.con.describe_model(args[0])  # the name is checked there, never pasted into SQL
            table = rel.arrow().read_all()
        except (DbmlError, duckdb.Error) as error:
            self.error(error)
            return False
        wanted = ["version", "aliases", "metric", "score", "task", "architecture", "row_count", "epochs",
                  "train_seconds", "size", "created_by", "created_at"]  # fmt: skip
        table = table.select([c for c in wanted if c in table.column_names])
        self._write(render(table, self.mode, self.width(), [str(t) for t in table.schema.types]), True)
        return True

    def _read(self, args: list[str]) -> bool:
        if len(args) != 1:
            self.error(".read takes a file name")
            return False
        before = self.failed
        self.failed = False
        with open(args[0], encoding="utf-8") as f:
            self.run_lines(f)
        ok = not self.failed
        self.failed = before or self.failed
        return ok

    def _output(self, args: list[str]) -> bool:
        if self.out is not self.stdout:
            self.out.close()
        self.out = open(args[0], "w", encoding="utf-8") if args else self.stdout  # noqa: SIM115
        return True

    def _once_to(self, args: list[str]) -> bool:
        if len(args) != 1:
            self.error(".once takes a file name")
            return False
        self._once = open(args[0], "w", encoding="utf-8")  # noqa: SIM115
        return True

    def close(self) -> None:
        """Close files opened by .output and .once."""
        if self.out is not self.stdout:
            self.out.close()
            self.out = self.stdout
        if self._once is not None:
            self._once.close()
            self._once = None


def _scores(stmt: Any) -> bool:
    upper = (stmt.masked or stmt.text).upper()
    return stmt.kind == "predict" or any(f"{name}(" in upper.replace(" (", "(") for name in _SCORING)


# -- completion ------------------------------------------------------------------------


def _completer_base() -> type:
    try:
        from prompt_toolkit.completion import Completer
    except ImportError:  # no extra: a plain base, the completer is not used
        return object
    return Completer


class SqlCompleter(_completer_base()):  # type: ignore[misc]
    """Completes SQL and dbml keywords, table, column and model names (prompt_toolkit).

    Args:
        con: a ``dbml.connection.Connection``; its catalog is read by ``refresh``.
    """

    def __init__(self, con: Any):
        self.con = con
        self.tables: list[str] = []
        self.columns: list[str] = []
        self.models: list[str] = []
        self.refresh()

    def refresh(self) -> None:
        """Read table, column and model names from the catalog again."""
        db = self.con.duckdb
        try:
            self.tables = sorted({r[0] for r in db.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name <> 'dbml' UNION "
                "SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name <> 'dbml'").fetchall()})
            self.columns = sorted({r[0] for r in db.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name <> 'dbml'").fetchall()})
        except duckdb.Error:
            pass
        try:
            exists = db.execute(
                "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'dbml' AND view_name = 'models'"
            ).fetchall()[0][0]
            rel = db.sql("SELECT * FROM dbml.models") if exists else None
            if rel is not None:
                col = "model" if "model" in rel.columns else rel.columns[0]
                self.models = sorted({str(r[0]) for r in rel.select(duckdb.ColumnExpression(col)).fetchall()})
        except duckdb.Error:
            pass

    def words(self) -> list[tuple[str, str]]:
        """(word, what it is) pairs on offer."""
        return ([(m, "model") for m in self.models] + [(t, "table") for t in self.tables]
                + [(c, "column") for c in self.columns] + [(k, "keyword") for k in KEYWORDS])  # fmt: skip

    def get_completions(self, document: Any, complete_event: Any):
        from prompt_toolkit.completion import Completion

        text = document.text_before_cursor
        start = len(text)
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_"):
            start -= 1
        word = text[start:]
        # after TRAIN/EVALUATE/... MODEL a keyword may be two words ("TRAIN MO")
        two = text[: start].rstrip().split()[-1:] if word else []
        seen = set()
        for candidate, what in self.words():
            for prefix in [word, (two[0] + " " + word) if two else None]:
                if prefix and candidate.lower().startswith(prefix.lower()) and candidate.lower() != prefix.lower():
                    if (candidate, what) in seen:
                        continue
                    seen.add((candidate, what))
                    yield Completion(candidate, start_position=-len(prefix), display_meta=what)


# -- the program -------------------------------------------------------------------------


def _interactive(shell: Shell) -> None:
    try:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.application import get_app
        from prompt_toolkit.filters import Condition
        from prompt_toolkit.history import FileHistory
    except ImportError:
        _plain_interactive(shell)
        return
    completer = SqlCompleter(shell.con)
    history = os.environ.get("DBML_HISTORY") or os.path.expanduser("~/.dbml_history")
    session = PromptSession(
        history=FileHistory(history),
        completer=completer,
        multiline=Condition(lambda: not is_complete(get_app().current_buffer.text)),
        prompt_continuation=lambda width, line, soft: "· ".rjust(width),
    )
    while True:
        try:
            text = session.prompt("D ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            return
        if not shell.run_text(text) and _quitting(text):
            return
        completer.refresh()


def _quitting(text: str) -> bool:
    return any(line.strip().lower().split()[:1] in ([".quit"], [".exit"]) for line in text.splitlines())


def _plain_interactive(shell: Shell) -> None:
    sys.stderr.write(EXTRA_HINT + "\n")
    buffer = ""
    while True:
        try:
            line = input("D " if not buffer else "· ")
        except KeyboardInterrupt:
            buffer = ""
            print()
            continue
        except EOFError:
            return
        buffer += line + "\n"
        if is_complete(buffer):
            text, buffer = buffer, ""
            if not shell.run_text(text) and _quitting(text):
                return


USAGE = """\
usage: dbml [FILE] [OPTIONS]
  FILE          a DuckDB database file (default: an in-memory database)
  -c SQL        run SQL (statements and dot commands) and exit
  -f FILE       run the script in FILE and exit
  -readonly     open the database read-only
  -bail         stop at the first error
  -echo         print each statement before running it
  -box -csv -json -jsonlines -line -markdown -list   the output mode
  -help         this text
"""


def main(argv: list[str] | None = None) -> int:
    """Run the shell; returns the exit status (the console script's entry point)."""
    args = list(sys.argv[1:] if argv is None else argv)
    path, commands, mode, bail, echo, read_only = None, [], None, False, False, False
    i = 0
    while i < len(args):
        arg = args[i]
        flag = arg[1:].lstrip("-").lower() if arg.startswith("-") and arg != "-" else None
        if flag is None:
            if path is not None:
                sys.stderr.write(f"Error: a second database file '{arg}'; give one\n")
                return 1
            path = arg
        elif flag in ("c", "f", "cmd"):
            if i + 1 >= len(args):
                sys.stderr.write(f"Error: {arg} needs an argument\n")
                return 1
            commands.append((flag, args[i + 1]))
            i += 1
        elif flag in MODES or flag == "duckbox":
            mode = "box" if flag == "duckbox" else flag
        elif flag == "readonly":
            read_only = True
        elif flag == "bail":
            bail = True
        elif flag == "echo":
            echo = True
        elif flag in ("help", "h"):
            sys.stdout.write(USAGE)
            return 0
        else:
            sys.stderr.write(f"Error: unknown option '{arg}'; dbml -help lists the options\n")
            return 1
        i += 1

    import dbml

    try:
        con = dbml.connect(path, read_only=read_only)
    except (DbmlError, duckdb.Error) as error:
        Shell(None).error(error)
        return 1
    shell = Shell(con, mode=mode or "box", bail=bail, echo=echo)
    try:
        if any(kind in ("c", "f") for kind, _ in commands):
            for kind, value in commands:
                if kind == "f":
                    try:
                        with open(value, encoding="utf-8") as f:
                            ok = shell.run_lines(f)
                    except OSError as error:
                        shell.error(f"cannot read '{value}': {error.strerror}")
                        return 1
                else:
                    shell.bail = True if kind == "c" else shell.bail  # -c stops at its first error
                    ok = shell.run_text(value)
                    shell.bail = bail
                if not ok and shell.failed:
                    return 1
            return 1 if shell.failed else 0
        for _, value in commands:  # -cmd: before reading standard input
            shell.run_text(value)
        if sys.stdin.isatty():
            _interactive(shell)
            return 0
        shell.run_lines(sys.stdin)
        return 1 if shell.failed else 0
    finally:
        shell.close()
        con.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
