"""EXPLAIN MODEL: permutation importance of each feature on the rows of a source.

``EXPLAIN MODEL m [VERSION n] ON <table | 'file' | (query)> [WITH (repeats = 5, seed = 0)]``; the source's
parameters and the options' bind as in any statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbml.statements.base import OnSource, Statement, generate_on_source, options_of, parse_on_source, source_query, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["explain_model", "ExplainModel", "STATEMENT", "explain"]


class ExplainModel(OnSource):
    """``EXPLAIN MODEL m [VERSION n] ON <source> [WITH (repeats = 5, seed = 0)]``: permutation importance of each feature on the rows of a source."""


parse = parse_on_source(ExplainModel)
generate = generate_on_source("EXPLAIN MODEL")


def run(ctx: "Context", node: ExplainModel):
    return _run(ctx, node.this.name, version_of(node), node.args["source"], node.args.get("source_sql"),
                options_of(node, ctx.params))


def _run(ctx: "Context", model: str, version: int | None, source, source_sql: str | None, options: dict[str, Any]):
    sql, label = source_query(source, source_sql)
    return explain_model(ctx, model, version, ctx.rewrite(sql), label, options)


def _options():
    """The statement's WITH options."""
    from dbml.options import Option

    return (
        Option("repeats", "int", 5, "shuffles per feature", lambda v: 1 <= v <= 100, "between 1 and 100"),
        Option("seed", "int", 0, "seed of the shuffles", lambda v: v >= 0, "a non-negative integer"),
    )


def explain_model(
    ctx: "Context", model: str, version: int | None, source_sql: str, source_label: str, options: dict[str, Any]
) -> duckdb.DuckDBPyRelation:
    """EXPLAIN MODEL: permutation importance per feature, computed with PREDICT in DuckDB,
    of the measure of the version's task (:meth:`dbml.tasks.Task.explain_measure`: for an
    anomaly model the rise of the mean ANOMALY_SCORE); refused for a task without one."""
    import dbml.explain as explain
    from dbml.tasks.statement import require_columns

    from dbml.options import validate_options
    from dbml.tasks import get_task

    opts = validate_options(options, _options(), f"EXPLAIN MODEL {model}")
    rec = ctx.record(model, version)
    task = get_task(rec["task"])
    if task.explain_measure() is None:
        raise task.refusal("EXPLAIN MODEL", f"model '{rec['model']}' version {rec['version']}", rec["model"])
    require_columns(ctx, rec, source_sql, source_label, {"target": rec["target"]}, "explain")
    sql = explain.permutation_importance_sql(
        source_sql, f"{rec['model']}:{rec['version']}", rec["target"], task,
        [f["name"] for f in rec["features"]], repeats=opts["repeats"], seed=opts["seed"],
    )  # fmt: skip
    return ctx.scoped().sql(ctx.rewrite(sql))


def explain(ctx: "Context", model: str, source: str, *, version: int | None = None, repeats: int = 5, seed: int = 0):
    """``EXPLAIN MODEL model [VERSION n] ON source``: permutation importance per feature."""
    return _run(ctx, model, version, source, None, {"repeats": repeats, "seed": seed})


STATEMENT = Statement(
    name="explain", head=("EXPLAIN", "MODEL"), node=ExplainModel, parse=parse, generate=generate, run=run,
    twins={"explain": explain}, returns_rows=True, keywords=("VERSION", "ON", "WITH"),
    columns=("feature", "importance", "importance_std", "baseline", "metric", "rank"),
    summary="permutation importance of each feature, measured with PREDICT on the rows of a source",
)  # fmt: skip
