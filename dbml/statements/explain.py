"""EXPLAIN MODEL: permutation importance of each feature on the rows of a source.

``EXPLAIN MODEL m [VERSION n] ON <table | 'file' | (query)> [WITH (repeats = 5, seed = 0)]``; the source's
parameters and the options' bind as in any statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbml.statements.base import MLStatement, Statement, options_of, source_query, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["ExplainModel", "STATEMENT", "explain"]


class ExplainModel(MLStatement):
    """``EXPLAIN MODEL m [VERSION n] ON <source> [WITH (repeats = 5, seed = 0)]``: permutation importance of each feature on the rows of a source."""

    arg_types = {"this": True, "version": False, "source": True, "source_sql": False, "options": False}


def parse(r) -> ExplainModel:
    name = r.model_name()
    version = r.version()
    if not r.match("ON"):
        r.error("Expected ON (query) after the model")
    source, source_sql = r.source("ON")
    return r.finish(ExplainModel(this=name, version=version, source=source, source_sql=source_sql, options=r.options()))


def generate(gen, e: ExplainModel) -> str:
    version = f" VERSION {e.args['version'].name}" if e.args.get("version") else ""
    source = f"({e.args['source_sql']})" if e.args.get("source_sql") else gen.sql(e.args["source"])
    options = e.args.get("options") or []
    with_ = " WITH (" + ", ".join(f"{gen.sql(o.this)} = {gen.sql(o.expression)}" for o in options) + ")" if options else ""
    return f"EXPLAIN MODEL {gen.sql(e.this)}{version} ON {source}{with_}"


def run(ctx: "Context", node: ExplainModel):
    return _run(ctx, node.this.name, version_of(node), node.args["source"], node.args.get("source_sql"),
                options_of(node, ctx.params))


def _run(ctx: "Context", model: str, version: int | None, source, source_sql: str | None, options: dict[str, Any]):
    from dbml import lifecycle

    sql, label = source_query(source, source_sql)
    return lifecycle.explain_model(ctx, model, version, ctx.rewrite(sql), label, options)


def explain(ctx: "Context", model: str, source: str, *, version: int | None = None, repeats: int = 5, seed: int = 0):
    """``EXPLAIN MODEL model [VERSION n] ON source``: permutation importance per feature."""
    return _run(ctx, model, version, source, None, {"repeats": repeats, "seed": seed})


STATEMENT = Statement(
    name="explain", head=("EXPLAIN", "MODEL"), node=ExplainModel, parse=parse, generate=generate, run=run,
    twins={"explain": explain}, returns_rows=True, keywords=("VERSION", "ON", "WITH"),
    columns=("feature", "importance", "importance_std", "baseline", "metric", "rank"),
    summary="permutation importance of each feature, measured with PREDICT on the rows of a source",
)  # fmt: skip
