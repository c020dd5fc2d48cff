"""TRAIN MODEL: a new version of a model, trained on the rows of a source.

``TRAIN MODEL [IF NOT EXISTS] m [USING arch] FROM src [TARGET a, b] [WITH (k = v)]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbml.errors import TargetError
from dbml.statements.base import MLStatement, Statement, options_of, rows_relation, source_query

if TYPE_CHECKING:
    from dbml.statements.context import Context
    from dbml.training.loop import Callback

__all__ = ["TrainModel", "STATEMENT", "train"]


class TrainModel(MLStatement):
    """``TRAIN MODEL [IF NOT EXISTS] m [USING arch] FROM src [TARGET a, b] [WITH (k = v)]``.

    ``source`` is a Table, a string Literal (a file path) or a Subquery; ``source_sql``
    keeps the user's own text of a subquery, untouched.
    """

    arg_types = {"this": True, "exists": False, "using": False, "source": True, "source_sql": False, "targets": False,
                 "options": False}  # fmt: skip


def parse(r) -> TrainModel:
    exists = r.match("IF", "NOT", "EXISTS")
    name = r.model_name()
    using = r.identifier("Expected an architecture name after USING", any_token=True) if r.match("USING") else None
    if not r.match("FROM"):
        r.error("Expected FROM after the model name")
    source, source_sql = r.source("FROM")
    targets = r.identifiers("Expected a column name after TARGET") if r.match("TARGET") else []
    options = r.options()
    return r.finish(TrainModel(this=name, exists=exists, using=using, source=source, source_sql=source_sql,
                               targets=targets, options=options))  # fmt: skip


def generate(gen, e: TrainModel) -> str:
    parts = ["TRAIN MODEL"]
    if e.args.get("exists"):
        parts.append("IF NOT EXISTS")
    parts.append(gen.sql(e.this))
    if e.args.get("using"):
        parts.append(f"USING {gen.sql(e.args['using'])}")
    source = e.args["source"]
    parts.append(f"FROM ({e.args['source_sql']})" if e.args.get("source_sql") else f"FROM {gen.sql(source)}")
    if e.args.get("targets"):
        parts.append("TARGET " + ", ".join(gen.sql(t) for t in e.args["targets"]))
    if e.args.get("options"):
        parts.append("WITH (" + ", ".join(f"{gen.sql(o.this)} = {gen.sql(o.expression)}" for o in e.args["options"]) + ")")
    return " ".join(parts)


def run(ctx: "Context", node: TrainModel):
    using = node.args.get("using")
    return _train(
        ctx, node.this.name, node.args["source"], node.args.get("source_sql"),
        targets=[t.name for t in node.args.get("targets") or []], using=using.name if using is not None else None,
        if_not_exists=bool(node.args.get("exists")), options=options_of(node, ctx.params), params=_source_params(ctx, node),
    )  # fmt: skip


def _source_params(ctx: "Context", node: TrainModel):
    """The statement's parameters that its source uses (its options take theirs by value)."""
    from dbml.script import mask
    from dbml.statements.base import parameters_for

    return parameters_for(mask(source_query(node.args["source"], node.args.get("source_sql"))[0]), ctx.params)


def train(
    ctx: "Context",
    model: str,
    source: str,
    target: str | list[str] | None = None,
    *,
    using: str | None = None,
    if_not_exists: bool = False,
    params: list[Any] | None = None,
    callbacks: "list[Callback] | None" = None,
    **options: Any,
):
    """``TRAIN MODEL model [USING using] FROM source TARGET target WITH (options)``.

    Args:
        model: the model name.
        source: a table or view name, a file path, or a query.
        target: the target column.
        using: the architecture (default chosen from the data).
        if_not_exists: skip training when the model has a version.
        params: values for ``?`` parameters of a source query.
        callbacks: training-loop callbacks (see :class:`dbml.training.Callback`).
        **options: training and architecture options, e.g. ``epochs=30``.
    """
    targets = [target] if isinstance(target, str) else target or []
    if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
        raise TargetError(f"target must be a column name or a list of them, got {target!r}")
    return _train(ctx, model, source, None, targets=list(targets), using=using, if_not_exists=if_not_exists,
                  options=options, params=params, callbacks=callbacks)  # fmt: skip


def _train(ctx: "Context", model: str, source, source_sql: str | None, *, targets: list[str], using: str | None,
           if_not_exists: bool, options: dict[str, Any], params: Any, callbacks=None):  # fmt: skip
    from dbml.request import TrainRequest
    from dbml.training.pipeline import train as run_pipeline  # torch loads when something trains

    sql, label = source_query(source, source_sql)
    request = TrainRequest(
        model=model, source_sql=ctx.rewrite(sql), source_label=label, targets=targets, architecture=using,
        options=options, if_not_exists=if_not_exists, params=params, callbacks=list(callbacks or []), written_sql=sql,
    )  # fmt: skip
    row = run_pipeline(ctx.scoped(), ctx.registry, request)
    return rows_relation(ctx.db(), [row])


STATEMENT = Statement(
    name="train", head=("TRAIN", "MODEL"), node=TrainModel, parse=parse, generate=generate, run=run,
    twins={"train": train},
    columns=("model", "version", "status", "task", "architecture", "rows", "train_rows", "validation_rows", "metrics",
             "epochs", "seconds", "device", "size", "metric", "score", "baseline"),
    keywords=("IF NOT EXISTS", "USING", "FROM", "TARGET", "WITH"),
    summary="train a new version of a model on the rows of a source",
)  # fmt: skip
