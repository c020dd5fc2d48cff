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

from importlib.metadata import entry_points
from typing import Any

from dbml.errors import DbmlError
from dbml.statements import alter, card, describe, drop, evaluate, explain, export, forecast, import_, monitor, show, train
from dbml.statements.base import (
    MLStatement, Statement, option_value, options_of, rows_relation, source_query, version_of,
)  # fmt: skip
from dbml.statements.context import Context

__all__ = [
    "STATEMENTS", "Statement", "MLStatement", "Context", "register", "statement_of", "heads", "keywords", "twins",
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
    )
}

_listeners: list = []  # called with each statement registered after import (Connection adds its twins)


def register(statement: Statement, *, replace: bool = False) -> Statement:
    """Add a statement to the table (from a plug-in or a test): the dialect parses it, the
    splitter and the shell know its head, and ``Connection`` gets its twins.

    Raises:
        DbmlError: a name or head that is taken (unless ``replace``), or a head that does
            not end in MODEL or MODELS' shape of two words or more.
    """
    if not isinstance(statement, Statement):
        raise DbmlError(f"register() takes a dbml.statements.Statement, got {type(statement).__name__}")
    head = tuple(w.upper() for w in statement.head)
    if len(head) < 2 or not all(w.isidentifier() for w in head):
        raise DbmlError(f"statement '{statement.name}' needs a head of two or more words, got {statement.head!r}")
    if not issubclass(statement.node, MLStatement):
        raise DbmlError(f"the node of statement '{statement.name}' must subclass dbml.statements.MLStatement")
    taken = [s.name for s in STATEMENTS.values() if s.name != statement.name and s.head == head]
    if not replace and (statement.name in STATEMENTS or taken):
        raise DbmlError(f"statement '{statement.name}' ({' '.join(head)}) is registered already")
    if head != statement.head:
        statement = Statement(**{**statement.__dict__, "head": head})
    STATEMENTS[statement.name] = statement
    for listener in _listeners:
        listener(statement)
    return statement


def _load_entry_points() -> None:
    try:
        found = entry_points(group="dbml.statements")
    except TypeError:  # pragma: no cover - Python < 3.10 API
        found = entry_points().get("dbml.statements", [])
    for ep in found:
        statement = ep.load()
        if isinstance(statement, Statement) and statement.name not in STATEMENTS:
            STATEMENTS[statement.name] = statement


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
