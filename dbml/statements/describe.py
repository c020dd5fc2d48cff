"""DESCRIBE MODEL: one row per version of a model, with its schema, metrics, sizes and lineage."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dbml.statements.base import MLStatement, Statement

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["DescribeModel", "STATEMENT", "describe_model"]


class DescribeModel(MLStatement):
    """``DESCRIBE MODEL m``."""

    arg_types = {"this": True}


def parse(r) -> DescribeModel:
    return r.finish(DescribeModel(this=r.model_name()))


def run(ctx: "Context", node: DescribeModel):
    return describe_model(ctx, node.this.name)


def describe_model(ctx: "Context", model: str):
    """``DESCRIBE MODEL model``: one row per version with its schema, metrics, sizes and lineage."""
    from dbml.names import check_model_name
    from dbml.outputs import offered
    from dbml.summary import headline, human_size, versus

    name = check_model_name(model)
    ctx.registry.get(name)  # raises for an unknown model
    facts = []  # per version: the SQL functions it offers (from its graph's outputs), its headline metric, its size
    for version in ctx.registry.versions(name):
        rec = ctx.registry.get(name, version)
        metric, score = headline(rec["task"], rec["metrics"])
        facts.append({"version": version, "functions": list(offered(ctx.version_info(rec))), "metric": metric,
                      "score": score, "baseline": versus(rec["task"], rec["metrics"]), "size": human_size(rec["onnx_size"]),
                      "base_model": rec.get("base_model"), "base_version": rec.get("base_version")})  # fmt: skip
    return ctx.registry.describe(ctx.db(), name, facts)


def _accept(rest: str) -> bool:
    # DESCRIBE MODEL churn, not DESCRIBE model (a table) nor DESCRIBE model.t (a schema's table)
    return bool(re.fullmatch(r'(?:[A-Za-z_][\w$]*|"x*")', rest.strip()))


STATEMENT = Statement(
    name="describe", head=("DESCRIBE", "MODEL"), node=DescribeModel, parse=parse,
    generate=lambda gen, e: f"DESCRIBE MODEL {gen.sql(e.this)}", run=run, twins={"describe_model": describe_model},
    returns_rows=True, accept=_accept,
    columns=("version", "aliases", "metric", "score", "task", "architecture", "target", "functions", "row_count",
             "train_rows", "validation_rows", "epochs", "train_seconds", "device", "target_type", "labels", "features",
             "metrics", "options", "onnx_size", "onnx_sha256", "parity_error", "source_sql", "source_tables",
             "data_fingerprint", "library_versions", "parent_version", "base_model", "base_version", "size", "created_by", "created_at", "baseline"),
    summary="one row per version of a model: schema, metrics, sizes, lineage",
)  # fmt: skip
