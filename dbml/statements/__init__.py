"""dbml's ML statements, in one table.

Each statement is one file of this package declaring a :class:`Statement`: its head
keywords, how it parses, its node, its handler, its Python twins, its result columns
and the words the shell completes. Everything else derives from the table
:data:`STATEMENTS`:

* the dialect (:mod:`dbml.dialect`) parses a statement by its row and prints its node;
* the script splitter (:mod:`dbml.script`) tells dbml's statements from DuckDB's by
  the heads, and finds those nested in a query;
* the shell completes the heads and keywords;
* ``Connection`` gets one method per twin (``con.forecast(...)``).

A new statement is a new file here plus one line in :data:`STATEMENTS`, or, from
outside the package, a call to :func:`register` (or an entry point in the group
``dbml.statements`` naming a :class:`Statement`). A handler gets a
:class:`~dbml.statements.context.Context`, never the connection.

Importing this package loads sqlglot only: handlers import what they need when they run.
"""

from __future__ import annotations

from typing import Any

from dbml.errors import DbmlError
from dbml.statements import alter, card, describe, drop, evaluate, explain, export, forecast, import_, monitor, show, train
from dbml.statements import recommend
from dbml.statements.base import (
    MLStatement, Statement, option_value, options_of, rows_relation, source_query, version_of,
)  # fmt: skip
from dbml.statements.context import Context

__all__ = [
    "STATEMENTS", "Statement", "MLStatement", "Context", "register", "unregister", "statement_of", "heads", "keywords", "twins",
    "source_query", "rows_relation", "options_of", "option_value", "version_of", "run_statement",
]  # fmt: skip

# The table. Order matters only where one head starts another (EXPORT MODEL CARD before
# EXPORT MODEL): longer heads are tried first whatever the order here.
STATEMENTS: dict[str, Statement] = {
    s.name: s
    for s in (
        train.STATEMENT,
        evaluate.STATEMENT,
        explain.STATEMENT,
        monitor.STATEMENT,
        forecast.STATEMENT,
        show.STATEMENT,
        describe.STATEMENT,
        drop.STATEMENT,
        alter.STATEMENT,
        export.STATEMENT,
        card.STATEMENT,
        import_.STATEMENT,
        recommend.STATEMENT,
    )
}

# what the connection does when the table changes: check a statement's twins (before
# anything changes), add them to Connection, take them away
_checks: list = []
_listeners: list = []
_removers: list = []

# the first words of DuckDB's own statements: a head starting with one must go on with
# MODEL or MODELS, so that DuckDB keeps every statement it has
_DUCKDB_FIRST = {
    "SELECT", "WITH", "FROM", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER",
    "COPY", "EXPORT", "IMPORT", "SHOW", "DESCRIBE", "SUMMARIZE", "EXPLAIN", "PRAGMA", "SET", "RESET", "CALL",
    "ATTACH", "DETACH", "USE", "LOAD", "INSTALL", "FORCE", "BEGIN", "START", "COMMIT", "END", "ROLLBACK",
    "ABORT", "VACUUM", "ANALYZE", "CHECKPOINT", "PREPARE", "EXECUTE", "DEALLOCATE", "PIVOT", "UNPIVOT", "COMMENT",
}  # fmt: skip


def register(statement: Statement, *, replace: bool = False) -> Statement:
    """Add a statement to the table (from a plug-in or a test): the dialect parses it, the
    splitter and the shell know its head, and ``Connection`` gets its twins.

    ``replace``: a statement of the same name or head (and its twins) gives way to this one.

    Raises:
        DbmlError: a name, head or twin that is taken (unless ``replace``), or a head that
            would take a statement from DuckDB (its first word starts one of DuckDB's
            statements and the second is not MODEL or MODELS). Nothing changes then.
    """
    if not isinstance(statement, Statement):
        raise DbmlError(f"register() takes a dbml.statements.Statement, got {type(statement).__name__}")
    head = tuple(str(w).upper() for w in statement.head)
    if not head or not all(w.isidentifier() for w in head):
        raise DbmlError(f"statement '{statement.name}' needs a head of one or more words, got {statement.head!r}")
    if head[0] in _DUCKDB_FIRST and (len(head) < 2 or head[1] not in ("MODEL", "MODELS")):
        raise DbmlError(
            f"statement '{statement.name}' has the head {' '.join(head)}, which starts DuckDB's own statements: "
            f"a head starting with {head[0]} goes on with MODEL or MODELS"
        )
    if not isinstance(statement.node, type) or not issubclass(statement.node, MLStatement):
        raise DbmlError(f"the node of statement '{statement.name}' must subclass dbml.statements.MLStatement")
    if head != statement.head:
        statement = Statement(**{**statement.__dict__, "head": head})
    old = [s for s in STATEMENTS.values() if s.name == statement.name or s.head == head]
    if old and not replace:
        raise DbmlError(f"statement '{statement.name}' ({' '.join(head)}) is registered already; pass replace=True "
                        "to replace it")  # fmt: skip
    for check in _checks:  # e.g. a twin named like a Connection method: refused before anything changes
        check(statement, old)
    for s in old:
        _drop(s)
    STATEMENTS[statement.name] = statement
    for listener in _listeners:
        listener(statement)
    return statement


def unregister(name: str) -> Statement:
    """Remove a statement (a built-in one too) and its twins; returns it."""
    if not isinstance(name, str) or name not in STATEMENTS:
        raise DbmlError(f"no statement is registered as {name!r}; the registered ones are {', '.join(sorted(STATEMENTS))}")
    statement = STATEMENTS[name]
    _drop(statement)
    return statement


def _drop(statement: Statement) -> None:
    STATEMENTS.pop(statement.name, None)
    for remover in _removers:
        remover(statement)


def _load_entry_points() -> None:
    from dbml import plugins

    plugins.load_entry_points("dbml.statements", STATEMENTS, register)


_load_entry_points()


def by_head() -> list[Statement]:
    """The statements, longest head first (the order they are tried in)."""
    return sorted(STATEMENTS.values(), key=lambda s: -len(s.head))


def heads() -> set[tuple[str, ...]]:
    """Every statement's head, as upper-case words."""
    return {s.head for s in STATEMENTS.values()}


def keywords() -> set[str]:
    """The words and phrases the shell completes: the heads and each statement's keywords."""
    out: set[str] = set()
    for s in STATEMENTS.values():
        out.add(" ".join(s.head))
        out.update(s.head)
        out.update(s.keywords)
        out.update(w for k in s.keywords for w in k.split())
    return out


def twins() -> dict[str, tuple[Statement, Any]]:
    """{Connection method name: (statement, function)} of every Python twin."""
    return {name: (s, fn) for s in STATEMENTS.values() for name, fn in s.twins.items()}


def statement_of(node: Any) -> Statement | None:
    """The row of a parsed node's statement."""
    for s in STATEMENTS.values():
        if type(node) is s.node:
            return s
    return None


def run_statement(ctx: Context, node: MLStatement):
    """Run a parsed ML statement with its handler (the model name checked first)."""
    from sqlglot import exp

    from dbml.names import check_model_name

    statement = statement_of(node)
    if statement is None:  # pragma: no cover - the splitter only sends known heads here
        raise DbmlError(f"no handler for statement {type(node).__name__}")
    if isinstance(node.args.get("this"), exp.Identifier):
        check_model_name(node.this.name)
    return statement.run(ctx, node)
