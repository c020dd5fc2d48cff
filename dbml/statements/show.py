"""SHOW MODELS: one row per model, read as a person reads it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbml.statements.base import MLStatement, Statement, rows_relation

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["ShowModels", "STATEMENT", "show_models", "SHOW_SCHEMA"]


class ShowModels(MLStatement):
    """``SHOW MODELS``."""

    arg_types: dict[str, bool] = {}


def parse(r) -> ShowModels:
    return r.finish(ShowModels())


def run(ctx: "Context", node: ShowModels):
    return show_models(ctx)


def show_models(ctx: "Context"):
    """``SHOW MODELS``: one row per model: the default version's headline metric and size;
    the full metrics stay in the registry and DESCRIBE MODEL."""
    from dbml.summary import headline, human_size, versus

    out = []
    for m in ctx.registry.summary():
        metric, score = headline(m["task"], m["metrics"])
        updated = m["updated_at"]
        out.append({"model": m["model"], "task": m["task"], "metric": metric, "score": score,
                    "baseline": versus(m["task"], m["metrics"]),
                    "versions": m["versions"], "default_version": m["default_version"], "aliases": m["aliases"],
                    "size": human_size(m["onnx_size"]), "rows": m["row_count"], "architecture": m["architecture"],
                    "target": m["target"], "latest_version": m["latest_version"],
                    "updated_at": updated.replace(microsecond=0) if updated else None})  # fmt: skip
    return rows_relation(ctx.db(), out, _schema())


def _schema():
    import pyarrow as pa

    return pa.schema([
        ("model", pa.string()), ("task", pa.string()), ("metric", pa.string()), ("score", pa.float64()),
        ("versions", pa.int64()), ("default_version", pa.int32()), ("aliases", pa.map_(pa.string(), pa.int32())),
        ("size", pa.string()), ("rows", pa.int64()), ("architecture", pa.string()), ("target", pa.string()),
        ("latest_version", pa.int32()), ("updated_at", pa.timestamp("us")), ("baseline", pa.string()),
    ])  # fmt: skip


def __getattr__(name: str):
    if name == "SHOW_SCHEMA":  # pyarrow loads on first use
        return _schema()
    raise AttributeError(name)


def _accept(rest: str) -> bool:
    return rest.strip() == ""  # SHOW MODELS exactly; SHOW models.t is DuckDB's


STATEMENT = Statement(
    name="show", head=("SHOW", "MODELS"), node=ShowModels, parse=parse, generate=lambda gen, e: "SHOW MODELS", run=run,
    twins={"show_models": show_models}, returns_rows=True, accept=_accept,
    columns=("model", "task", "metric", "score", "versions", "default_version", "aliases", "size", "rows",
             "architecture", "target", "latest_version", "updated_at", "baseline"),
    summary="one row per model: its task, headline metric, versions, aliases and size",
)  # fmt: skip
