"""EVALUATE MODEL: the metrics of a version on the rows of a source, stored as a run.

``EVALUATE MODEL m [VERSION n] ON <table | 'file' | (query)> [WITH (by = col, confusion = true)]``; the source's
parameters and the options' bind as in any statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbml.statements.base import OnSource, Statement, generate_on_source, options_of, parse_on_source, source_query, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["evaluate_model", "EvaluateModel", "STATEMENT", "evaluate"]


class EvaluateModel(OnSource):
    """``EVALUATE MODEL m [VERSION n] ON <source> [WITH (by = col, confusion = true)]``: the metrics of a version on the rows of a source, stored as a run."""


parse = parse_on_source(EvaluateModel)
generate = generate_on_source("EVALUATE MODEL")


def run(ctx: "Context", node: EvaluateModel):
    return _run(ctx, node.this.name, version_of(node), node.args["source"], node.args.get("source_sql"),
                options_of(node, ctx.params))


def _run(ctx: "Context", model: str, version: int | None, source, source_sql: str | None, options: dict[str, Any]):
    sql, label = source_query(source, source_sql)
    return evaluate_model(ctx, model, version, ctx.rewrite(sql), label, options, written_sql=sql)


def _options():
    """The statement's WITH options."""
    from dbml.options import Option

    return (
        Option("by", "str", None, "a column: one row of metrics per value"),
        Option("label", "str", None, "anomaly models: a BOOLEAN (or 0/1) column, TRUE for a known anomaly, "
               "to score ANOMALY_SCORE (roc_auc) and IS_ANOMALY (precision, recall, f1) against"),
        Option("confusion", "bool", False, "return the confusion matrix as (actual, predicted, count) rows"),
        Option("positive", "any", None, "the positive class of a binary model (default: the last label)"),
        Option("curves", "bool", True, "store the data of the run's pictures (ROC, calibration, residuals, ...) "
               "with it; false skips the second pass over the rows this costs"),
    )


def evaluate_model(
    ctx: "Context", model: str, version: int | None, source_sql: str, source_label: str, options: dict[str, Any],
    written_sql: str | None = None,
) -> duckdb.DuckDBPyRelation:
    """EVALUATE MODEL: metrics (or the confusion matrix) computed by DuckDB over PREDICT, as
    the version's task computes them (:meth:`dbml.tasks.Task.evaluation`: ANOMALY_SCORE
    and IS_ANOMALY for an anomaly model; for a forecaster, a backtest over every complete
    window of the source's series), stored as a run with its pictures' data.

    ``ctx``: the handler context (``db()``, ``scoped()``, ``registry``, ``rewrite()``,
    ``session()``)."""
    from dbml.options import validate_options
    from dbml.tasks import get_task

    opts = validate_options(options, _options(), f"EVALUATE MODEL {model}")
    rec = ctx.record(model, version)
    run = get_task(rec["task"]).evaluation(ctx, rec, source_sql, source_label, opts)
    table = ctx.scoped().sql(ctx.rewrite(run.sql)).to_arrow_table()
    given = {k: opts[k] for k in (str(o).lower() for o in options) if k in opts}  # as written, not the defaults
    keeps = opts["curves"] and run.curves is not None and not opts["by"] and not opts["confusion"]
    curves = run.curves() if keeps else None
    ctx.registry.add_evaluation_run(rec["model"], rec["version"], rec["task"], written_sql or source_sql, given, table.to_pylist(), curves)
    return ctx.db().from_arrow(table)


def evaluate(
    ctx: "Context", model: str, source: str, *, version: int | None = None, by: str | None = None,
    confusion: bool = False, positive: Any = None, **options: Any,
):  # fmt: skip
    """``EVALUATE MODEL model [VERSION n] ON source WITH (by = ..., confusion = ...)``."""
    given = {k: v for k, v in {"by": by, "confusion": confusion, "positive": positive}.items() if v is not None}
    return _run(ctx, model, version, source, None, {**given, **options})


STATEMENT = Statement(
    name="evaluate", head=("EVALUATE", "MODEL"), node=EvaluateModel, parse=parse, generate=generate, run=run,
    twins={"evaluate": evaluate}, returns_rows=True, keywords=("VERSION", "ON", "WITH"),
    columns=(),  # the task's metrics: rows, then accuracy, f1, ... or mae, rmse, r2, ... (see dbml.evaluate)
    summary="the metrics of a version on the rows of a source (per group with by; the confusion matrix)",
)  # fmt: skip
