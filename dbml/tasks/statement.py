"""What a task's statement code (EVALUATE, EXPLAIN, MONITOR) runs on: the handler context.

The context ``ctx`` is what a statement handler gets (``ctx.db()``, ``ctx.scoped()``,
``ctx.registry``, ``ctx.rewrite(sql)``, ``ctx.session(rec)``); :class:`dbml.Connection`
has the same methods, so these helpers take either. Nothing here imports the connection.
"""

from __future__ import annotations

from typing import Any

import duckdb

from dbml.errors import OptionError, TargetError

__all__ = ["columns", "require_columns", "Rewriting", "session", "supervised_source"]


def columns(ctx, rec: dict[str, Any], source_sql: str, label: str, needed: dict[str, str | None],
            doing: str) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
    """(the source's columns by lower-case name, their SQL types by name); a dbml error naming
    any needed column that is missing."""
    try:
        relation = ctx.scoped().sql(f"SELECT * FROM (\n{source_sql}\n) AS src LIMIT 0")
    except duckdb.Error as err:
        raise TargetError(f"cannot read {label} to {doing} model '{rec['model']}': {err}") from None
    names = relation.columns
    lowered = {c.lower(): c for c in names}
    for what, column in needed.items():
        if column is not None and column.lower() not in lowered:
            raise TargetError(
                f"the {what} column '{column}' of model '{rec['model']}' is not in {label}; "
                f"its columns are {', '.join(names)}"
            )
    return lowered, {c: str(t) for c, t in zip(names, relation.types)}


def require_columns(ctx, rec: dict[str, Any], source_sql: str, label: str, needed: dict[str, str | None],
                    doing: str) -> dict[str, str]:  # fmt: skip
    """The source's columns by lower-case name; a dbml error naming any needed one that is missing."""
    return columns(ctx, rec, source_sql, label, needed, doing)[0]


class Rewriting:
    """What the curves builders run their SQL on: the context, PREDICT calls rewritten."""

    def __init__(self, ctx):
        self.ctx = ctx

    def sql(self, text: str) -> duckdb.DuckDBPyRelation:
        return self.ctx.scoped().sql(self.ctx.rewrite(text))


def session(ctx, rec: dict[str, Any]):
    """The verified onnxruntime session of a version (``ctx.session``; ``_session`` on a
    Connection of before the rename)."""
    get = getattr(ctx, "session", None)
    return get(rec) if callable(get) else ctx._session(rec)


def supervised_source(ctx, rec: dict[str, Any], source_sql: str, source_label: str,
                      opts: dict[str, Any]) -> tuple[dict[str, str], str | None]:  # fmt: skip
    """EVALUATE of a model with a target: the source's columns by lower-case name (the
    target and ``by`` checked to be there) and ``by`` as the source spells it; refuses
    ``label`` (an anomaly model's option)."""
    if opts["label"] is not None:
        raise OptionError(
            f"label applies to anomaly models (USING autoencoder); model '{rec['model']}' is a {rec['task']} model, "
            f"evaluated against its target '{rec['target']}': leave label out"
        )
    lowered = require_columns(ctx, rec, source_sql, source_label, {"target": rec["target"], "by": opts["by"]}, "evaluate")
    return lowered, (lowered[opts["by"].lower()] if opts["by"] else None)
