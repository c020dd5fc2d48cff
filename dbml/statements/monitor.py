"""MONITOR MODEL: drift of the inputs and predictions on the rows of a source against training, stored as a run.

``MONITOR MODEL m [VERSION n] ON <table | 'file' | (query)> [WITH (threshold = 0.2)]``; the source's
parameters and the options' bind as in any statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbml.statements.base import MLStatement, Statement, options_of, source_query, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["MonitorModel", "STATEMENT", "monitor"]


class MonitorModel(MLStatement):
    """``MONITOR MODEL m [VERSION n] ON <source> [WITH (threshold = 0.2)]``: drift of the inputs and predictions on the rows of a source against training, stored as a run."""

    arg_types = {"this": True, "version": False, "source": True, "source_sql": False, "options": False}


def parse(r) -> MonitorModel:
    name = r.model_name()
    version = r.version()
    if not r.match("ON"):
        r.error("Expected ON (query) after the model")
    source, source_sql = r.source("ON")
    return r.finish(MonitorModel(this=name, version=version, source=source, source_sql=source_sql, options=r.options()))


def generate(gen, e: MonitorModel) -> str:
    version = f" VERSION {e.args['version'].name}" if e.args.get("version") else ""
    source = f"({e.args['source_sql']})" if e.args.get("source_sql") else gen.sql(e.args["source"])
    options = e.args.get("options") or []
    with_ = " WITH (" + ", ".join(f"{gen.sql(o.this)} = {gen.sql(o.expression)}" for o in options) + ")" if options else ""
    return f"MONITOR MODEL {gen.sql(e.this)}{version} ON {source}{with_}"


def run(ctx: "Context", node: MonitorModel):
    return _run(ctx, node.this.name, version_of(node), node.args["source"], node.args.get("source_sql"),
                options_of(node, ctx.params))


def _run(ctx: "Context", model: str, version: int | None, source, source_sql: str | None, options: dict[str, Any]):
    from dbml import lifecycle

    sql, label = source_query(source, source_sql)
    return lifecycle.monitor_model(ctx, model, version, ctx.rewrite(sql), label, options)


def monitor(ctx: "Context", model: str, source: str, *, version: int | None = None, threshold: float = 0.2):
    """``MONITOR MODEL model [VERSION n] ON source``: drift against the training profile (stored)."""
    return _run(ctx, model, version, source, None, {"threshold": threshold})


STATEMENT = Statement(
    name="monitor", head=("MONITOR", "MODEL"), node=MonitorModel, parse=parse, generate=generate, run=run,
    twins={"monitor": monitor}, returns_rows=True, keywords=("VERSION", "ON", "WITH"),
    columns=("run_id", "feature", "kind", "psi", "null_rate_train", "null_rate_now", "null_rate_change", "detail", "rows", "drift"),
    summary="drift of each feature and of the prediction against the training profile (PSI), stored as a run",
)  # fmt: skip
