"""The ``dbml`` shell: DuckDB's CLI, with dbml's statements.

``dbml [FILE] [-c SQL] [-f script.sql] [-readonly] [-bail] [-echo] [-box|-csv|-json|
-jsonlines|-line|-markdown|-list]``. Without FILE the database is in memory. On a
terminal it is interactive (prompt_toolkit, from the ``shell`` extra); otherwise it runs
the script on standard input. As DuckDB's CLI (2.0 docs, "Command Line" troubleshooting),
the default output mode is box whether or not output is piped; a script goes on after a
failed statement unless -bail is given, and exits 1 if any statement failed. A DuckDB error
is shown whole (its ``Did you mean``, ``Candidate bindings`` and ``LINE 1: ... ^`` lines
are the useful part); the shell's own errors are one line; none is a traceback.
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

__all__ = ["Shell", "SqlCompleter", "KEYWORDS", "keywords", "is_complete", "main"]

EXTRA_HINT = "dbml: for line editing, history and completion install the shell extra: pip install 'dbml[shell]'"

_SQL_WORDS = frozenset(
    """SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT OFFSET JOIN LEFT RIGHT INNER OUTER FULL CROSS ON USING
    AS AND OR NOT NULL IS IN LIKE ILIKE BETWEEN CASE WHEN THEN ELSE END DISTINCT UNION ALL EXCEPT INTERSECT
    WITH RECURSIVE INSERT INTO VALUES UPDATE SET DELETE CREATE TABLE VIEW SCHEMA DROP ALTER ADD COLUMN
    REPLACE IF EXISTS PRIMARY KEY DESCRIBE SHOW SUMMARIZE EXPLAIN ANALYZE COPY TO ATTACH DETACH PRAGMA
    CAST TRUE FALSE ASC DESC QUALIFY WINDOW OVER PARTITION""".split()
)


def keywords() -> list[str]:
    """What the shell completes: DuckDB's common words, the scoring functions, and every
    ML statement's head and keywords from the statements table (a statement registered
    later is completed too)."""
    from dbml.outputs import FUNCTION_NAMES
    from dbml.statements import keywords as statement_words

    return sorted(_SQL_WORDS | set(FUNCTION_NAMES) | statement_words())


def __getattr__(name: str):
    if name == "KEYWORDS":  # the list as it is now (statements may be registered after import)
        return keywords()
    if name == "SqlCompleter":
        return _completer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _scoring() -> tuple[str, ...]:
    """The scoring functions: .timer reports rows/s for the queries that call one."""
    from dbml.outputs import FUNCTION_NAMES

    return FUNCTION_NAMES


HELP = """\
.bail on|off        stop at the first error (default: off)
.echo on|off        print each statement before running it
.exit, .quit        leave the shell
.help               this text
.mode MODE          output mode: box, csv, json, jsonlines, line, markdown, list
.models             the models in the registry (SHOW MODELS)
.once FILE          write the next result to FILE
.output [FILE]      write results to FILE; without FILE, back to standard output
.read FILE          run the statements in FILE (UTF-8, at most 64 MiB, never a file already being read)
.schema [TABLE]     the CREATE statements of the tables and views (or of TABLE)
.tables [PATTERN]   the tables and views, or those whose name is LIKE PATTERN
.timer on|off       print the time each statement takes (and rows/s of scoring queries)
.versions MODEL     the versions of MODEL (DESCRIBE MODEL)
"""

# (fewest, most) arguments of each dot command, and how it is written: extra words are
# refused, never dropped (".output a b" must not quietly write to a)
_ARITY = {
    ".bail": (1, 1, ".bail on|off"), ".echo": (1, 1, ".echo on|off"), ".timer": (1, 1, ".timer on|off"),
    ".exit": (0, 0, ".exit"), ".quit": (0, 0, ".quit"), ".help": (0, 0, ".help"),
    ".mode": (0, 1, ".mode [MODE]"), ".models": (0, 0, ".models"), ".once": (1, 1, ".once FILE"),
    ".output": (0, 1, ".output [FILE]"), ".read": (1, 1, ".read FILE"), ".schema": (0, 1, ".schema [TABLE]"),
    ".tables": (0, 1, ".tables [PATTERN]"), ".versions": (1, 1, ".versions MODEL"),
}  # fmt: skip

MAX_SCRIPT = 64 * 1024 * 1024  # the most bytes .read and -f take in: a script, not a data file
_CHUNK = 1024 * 1024


def is_complete(text: str) -> bool:
    """Whether typed text is ready to run: blank, a dot command, or SQL whose last
    significant character is a ``;`` outside strings, quoted names and comments."""
    if not text.strip() or text.lstrip().startswith("."):
        return True
    return mask(text).rstrip().endswith(";")


class _Quit(Exception):
    pass


class _OutputLost(Exception):
    """Control flow, never shown: a write to the output failed, was reported, and
    output went back to standard output; the statement or command that wrote fails."""


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
        self._reading: list[str] = []  # real paths of the scripts being read, outermost first

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

    def run_file(self, path: str, how: str = "-f") -> bool:
        """Run the script in ``path`` (for -f, or ``.read``): at most ``MAX_SCRIPT`` bytes of
        UTF-8, and never a script already being read. A file that cannot be run is one
        error, counted as a failed statement. Returns False where it stopped under bail."""
        real = os.path.realpath(path)
        if real in self._reading:
            chain = " -> ".join([*self._reading, real])
            self.error(f"{how} {path}: '{real}' is already being read ({chain}); a script cannot read itself")
            self.failed = True
            return not self.bail
        text = self._script(path, how)
        if text is None:
            self.failed = True
            return not self.bail
        self._reading.append(real)
        try:
            return self.run_text(text)
        finally:
            self._reading.pop()

    def _script(self, path: str, how: str) -> str | None:
        """The text of a script file, or None after writing why it cannot be run. Read in
        chunks, so an endless file (/dev/zero) is refused at the limit, not held whole."""
        chunks, size = [], 0
        try:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    size += len(chunk)
                    if size > MAX_SCRIPT:
                        self.error(f"{how} {path}: the file is larger than {MAX_SCRIPT // 2**20} MiB, the most a "
                                   "script may be; split it, or load data with COPY or read_csv instead")  # fmt: skip
                        return None
                    chunks.append(chunk)
        except OSError as error:
            self.error(f"{how} {path}: cannot read the file: {error.strerror or error}")
            return None
        data = b"".join(chunks)
        try:
            return data.decode("utf-8-sig")  # a leading byte-order mark is not SQL
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            self.error(f"{how} {path}: the file is not UTF-8 (byte 0x{data[error.start]:02x} on line {line}); "
                       f"convert it, for example: iconv -f latin1 -t utf-8 {path}")  # fmt: skip
            return None

    # -- SQL -----------------------------------------------------------------------

    def run_sql(self, text: str) -> bool:
        """Run the statements of ``text``; False if one failed."""
        ok = True
        for stmt in split_script(text):
            if not self._echo(stmt) or not self._one(stmt):
                ok = False
                self.failed = True
                if self.bail:
                    break
        return ok

    def _echo(self, stmt: Any) -> bool:
        if self.echo:
            try:
                self._write(stmt.text.strip() + "\n")
            except _OutputLost:
                return False
        return True

    def _one(self, stmt: Any) -> bool:
        start = time.perf_counter()
        try:
            rel = self.con.sql(stmt.text)
            table = rel.materialize() if rel is not None else None  # read once, rendered by DuckDB
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
        try:
            if table is not None:
                self._write(render(table, self.mode, self.width(), types), result=True)
            if self.timer:
                note = f"Run Time (s): real {elapsed:.3f}"
                if table is not None and _scores(stmt):
                    rows = table.shape[0]
                    rate = rows / elapsed if elapsed > 0 else float("inf")
                    note += f"  ({rows} rows, {rate:,.0f} rows/s)"
                self._write(note + "\n")
        except _OutputLost:
            return False
        return True

    def _interrupt(self) -> None:
        try:
            self.con.duckdb.interrupt()
        except Exception:  # noqa: BLE001, S110 - nothing running any more
            pass
        self.err.write("Interrupted\n")

    def error(self, error: Any) -> None:
        """Write ``Error: ...``: a DuckDB or dbml error whole, so DuckDB's hints stay (``Did
        you mean "titanic"?``, ``Candidate bindings``, the ``LINE 1: ... ^`` pointer);
        anything else (a message of the shell's own) on one line."""
        if isinstance(error, duckdb.Error | DbmlError):
            text = str(error).strip("\n").rstrip() or type(error).__name__
        else:
            lines = [x for x in str(error).strip().splitlines() if x.strip()] or [type(error).__name__]
            text = lines[0]
        self.err.write(f"Error: {text}\n")
        self.err.flush()

    def width(self) -> int:
        """The terminal's width (120 where output is not a terminal)."""
        return shutil.get_terminal_size((120, 40)).columns

    def _write(self, text: str, result: bool = False) -> None:
        once = result and self._once is not None
        target = self._once if once else self.out
        try:
            target.write(text)
            target.flush()
        except OSError as error:  # a full disk, /dev/full, a closed pipe: report, go back to stdout
            where = "standard output" if target is self.stdout else f"'{getattr(target, 'name', '?')}'"
            self._drop(target)
            self.error(f"cannot write to {where}: {error.strerror or error}"
                       + ("" if target is self.stdout else "; output goes to standard output again"))  # fmt: skip
            self.failed = True
            raise _OutputLost from None
        if once:
            self._drop(target)

    def _drop(self, target: IO[str]) -> None:
        """Close a file of .output or .once (never standard output) and forget it."""
        if target is not self.stdout:
            try:
                target.close()
            except OSError:  # its unwritten buffer fails again: already reported
                pass
        if target is self._once:
            self._once = None
        if target is self.out:
            self.out = self.stdout

    # -- dot commands ----------------------------------------------------------------

    def dot(self, line: str) -> bool:
        """Run one dot command; False if it failed."""
        words = line.split()
        name, args = words[0].lower(), words[1:]
        fewest, most, usage = _ARITY.get(name, (0, len(args), ""))
        if not fewest <= len(args) <= most:
            extra = args[most:]
            why = (f"extra argument{'s' if len(extra) > 1 else ''} {', '.join(repr(a) for a in extra)}" if extra
                   else "an argument is missing")  # fmt: skip
            self.error(f"{words[0]}: {why}; write it as {usage}")
            self.failed = True
            return False
        if name in (".quit", ".exit"):
            raise _Quit
        handler = {
            ".help": self._help, ".mode": self._mode, ".timer": self._flag("timer"), ".bail": self._flag("bail"),
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
        except _OutputLost:
            ok = False
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

    def _help(self, args: list[str]) -> bool:
        self._write(HELP)
        return True

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
            self._write(render(rel.materialize(), self.mode, self.width(), [str(t) for t in rel.types]), True)
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
        if args and not rows:
            self.error(f".schema {args[0]}: no table or view is named like '{args[0]}'; .tables lists them")
            return False
        self._write("".join((sql or "").rstrip(";") + ";\n" for _, _, sql in rows))
        return True

    def _models(self, args: list[str]) -> bool:
        return self.run_sql("SHOW MODELS;")

    def _versions(self, args: list[str]) -> bool:
        wanted = ["version", "aliases", "metric", "score", "baseline", "task", "architecture", "row_count", "epochs",
                  "train_seconds", "size", "created_by", "created_at"]  # fmt: skip
        try:
            rel = self.con.describe_model(args[0])  # the name is checked there, never pasted into SQL
            rel = rel.select(*[duckdb.ColumnExpression(c) for c in wanted if c in rel.columns])
            table, types = rel.materialize(), [str(t) for t in rel.types]  # DuckDB's types, as DESCRIBE MODEL
        except (DbmlError, duckdb.Error) as error:
            self.error(error)
            return False
        self._write(render(table, self.mode, self.width(), types), True)
        return True

    def _read(self, args: list[str]) -> bool:
        before = self.failed
        self.failed = False
        self.run_file(args[0], ".read")
        ok = not self.failed
        self.failed = before or self.failed
        return ok

    def _output(self, args: list[str]) -> bool:
        # as DuckDB's CLI: the old file is closed first, and a new one that cannot be
        # opened leaves output on standard output
        self._drop(self.out)
        if args:
            self.out = self._open(".output", args[0])
        return self.out is not self.stdout or not args

    def _once_to(self, args: list[str]) -> bool:
        if self._once is not None:
            self._drop(self._once)
        opened = self._open(".once", args[0])
        self._once = None if opened is self.stdout else opened
        return self._once is not None

    def _open(self, how: str, path: str) -> IO[str]:
        """``path`` opened for writing, or standard output after writing why not."""
        try:
            return open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by _drop
        except OSError as error:
            self.error(f"{how} {path}: cannot open the file for writing: {error.strerror or error}; "
                       "output goes to standard output")  # fmt: skip
            return self.stdout

    def close(self) -> None:
        """Close files opened by .output and .once."""
        self._drop(self.out)
        if self._once is not None:
            self._drop(self._once)


def _scores(stmt: Any) -> bool:
    upper = (stmt.masked or stmt.text).upper()
    return stmt.kind == "predict" or any(f"{name}(" in upper.replace(" (", "(") for name in _scoring())


# -- completion ------------------------------------------------------------------------


class _SqlCompleterBody:
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
        from dbml.registry.store import Registry

        self.models = Registry(db).model_names()  # read only: completing never creates the registry

    def words(self) -> list[tuple[str, str]]:
        """(word, what it is) pairs on offer."""
        return ([(m, "model") for m in self.models] + [(t, "table") for t in self.tables]
                + [(c, "column") for c in self.columns] + [(k, "keyword") for k in keywords()])  # fmt: skip

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


def _completer_class() -> type:
    """SqlCompleter on prompt_toolkit's Completer (imported here, not at start-up: a
    script or -c never completes); a plain class without the extra."""
    global _COMPLETER
    if _COMPLETER is None:
        try:
            from prompt_toolkit.completion import Completer
        except ImportError:  # no extra: a plain base, the completer is not used
            Completer = object
        _COMPLETER = type("SqlCompleter", (_SqlCompleterBody, Completer), {"__module__": __name__,
                                                                         "__doc__": _SqlCompleterBody.__doc__})  # fmt: skip
    return _COMPLETER


_COMPLETER: type | None = None


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
    completer = _completer_class()(shell.con)
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
                    ok = shell.run_file(value)
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
        try:
            shell.run_lines(sys.stdin)
        except UnicodeDecodeError as error:  # a stream cannot be read on past a bad byte
            shell.error(f"standard input is not UTF-8 (byte 0x{error.object[error.start]:02x}); convert it, "
                        "for example: iconv -f latin1 -t utf-8")  # fmt: skip
            return 1
        return 1 if shell.failed else 0
    finally:
        shell.close()
        con.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
