"""MONITOR MODEL: drift of the inputs and predictions on the rows of a source against training, stored as a run.

``MONITOR MODEL m [VERSION n] ON <table | 'file' | (query)> [WITH (threshold = 0.2)]``; the source's
parameters and the options' bind as in any statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbml.statements.base import OnSource, Statement, generate_on_source, options_of, parse_on_source, source_query, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["monitor_model", "MonitorModel", "STATEMENT", "monitor"]


class MonitorModel(OnSource):
    """``MONITOR MODEL m [VERSION n] ON <source> [WITH (threshold = 0.2)]``: drift of the inputs and predictions on the rows of a source against training, stored as a run."""


parse = parse_on_source(MonitorModel)
generate = generate_on_source("MONITOR MODEL")


def run(ctx: "Context", node: MonitorModel):
    return _run(ctx, node.this.name, version_of(node), node.args["source"], node.args.get("source_sql"),
                options_of(node, ctx.params))


def _run(ctx: "Context", model: str, version: int | None, source, source_sql: str | None, options: dict[str, Any]):
    sql, label = source_query(source, source_sql)
    return monitor_model(ctx, model, version, ctx.rewrite(sql), label, options, written_sql=sql)


def _options():
    """The statement's WITH options."""
    from dbml.options import Option

    return (
        Option("threshold", "float", 0.2, "PSI above which a feature counts as drifted", lambda v: v > 0, "positive"),
    )


def monitor_model(
    ctx: "Context", model: str, version: int | None, source_sql: str, source_label: str, options: dict[str, Any],
    written_sql: str | None = None,
) -> duckdb.DuckDBPyRelation:
    """MONITOR MODEL: drift of the features and predictions against the training profile,
    stored as a run in the registry's monitor runs and results.

    The version's task says which rows are scored (:meth:`dbml.tasks.Task.monitor_rows`):
    a forecaster's source is its series (time, keys, target), checked as at training, and
    what is monitored is their complete windows (those EVALUATE backtests): the feature
    ``history`` by each window's mean, the prediction by the first forecast value."""
    import pyarrow as pa

    import dbml.monitor as monitor
    from dbml.tasks.statement import require_columns

    from dbml.options import validate_options
    from dbml.tasks import get_task

    opts = validate_options(options, _options(), f"MONITOR MODEL {model}")
    rec = ctx.record(model, version)
    require_columns(ctx, rec, source_sql, source_label, {}, "monitor")
    scored = get_task(rec["task"]).monitor_rows(ctx, rec, source_sql, source_label)
    sql = monitor.drift_sql(scored, f"{rec['model']}:{rec['version']}", rec, threshold=opts["threshold"])
    table = ctx.scoped().sql(ctx.rewrite(sql)).to_arrow_table()
    run_id = ctx.registry.add_monitor_run(rec["model"], rec["version"], written_sql or source_sql, opts["threshold"], table.to_pylist())
    run = pa.array([run_id] * table.num_rows, type=pa.int64())
    return ctx.db().from_arrow(table.add_column(0, "run_id", run))


def monitor(ctx: "Context", model: str, source: str, *, version: int | None = None, threshold: float = 0.2):
    """``MONITOR MODEL model [VERSION n] ON source``: drift against the training profile (stored)."""
    return _run(ctx, model, version, source, None, {"threshold": threshold})


STATEMENT = Statement(
    name="monitor", head=("MONITOR", "MODEL"), node=MonitorModel, parse=parse, generate=generate, run=run,
    twins={"monitor": monitor}, returns_rows=True, keywords=("VERSION", "ON", "WITH"),
    columns=("run_id", "feature", "kind", "psi", "null_rate_train", "null_rate_now", "null_rate_change", "detail", "rows", "drift"),
    summary="drift of each feature and of the prediction against the training profile (PSI), stored as a run",
)  # fmt: skip
