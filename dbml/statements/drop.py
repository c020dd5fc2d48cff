"""DROP MODEL: a model's versions (or one version) go, with their blobs and logs; the
audit row stays. A deployed version (one an alias points at) goes only with CASCADE,
which drops its aliases too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbml.errors import DbmlError
from dbml.statements.base import MLStatement, Statement, rows_relation, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["DropModel", "STATEMENT", "drop_model"]


class DropModel(MLStatement):
    """``DROP MODEL [IF EXISTS] m [VERSION n] [CASCADE]``."""

    arg_types = {"this": True, "exists": False, "version": False, "cascade": False}


def parse(r) -> DropModel:
    exists = r.match("IF", "EXISTS")
    name = r.model_name()
    version = r.version()
    cascade = r.match("CASCADE")
    return r.finish(DropModel(this=name, exists=exists, version=version, cascade=cascade))


def generate(gen, e: DropModel) -> str:
    return ("DROP MODEL " + ("IF EXISTS " if e.args.get("exists") else "") + gen.sql(e.this)
            + (f" VERSION {e.args['version'].name}" if e.args.get("version") else "")
            + (" CASCADE" if e.args.get("cascade") else ""))  # fmt: skip


def run(ctx: "Context", node: DropModel):
    return drop_model(ctx, node.this.name, version=version_of(node), if_exists=bool(node.args.get("exists")),
                      cascade=bool(node.args.get("cascade")))  # fmt: skip


def drop_model(ctx: "Context", model: str, version: int | None = None, if_exists: bool = False, cascade: bool = False):
    """``DROP MODEL [IF EXISTS] model [VERSION n] [CASCADE]``: blobs and rows go, the audit
    row stays; ``cascade`` also drops the aliases that point at the versions dropped."""
    import pyarrow as pa

    from dbml.names import check_model_name

    name = check_model_name(model)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise DbmlError(f"version must be a whole number, got {version!r}")
    dropped = ctx.registry.drop(name, version, if_exists, cascade=cascade)
    ctx.forget_functions(name, dropped)
    schema = pa.schema([("model", pa.string()), ("version", pa.int32()), ("status", pa.string())])
    return rows_relation(ctx.db(), [{"model": name, "version": v, "status": "dropped"} for v in dropped], schema)


STATEMENT = Statement(
    name="drop", head=("DROP", "MODEL"), node=DropModel, parse=parse, generate=generate, run=run,
    twins={"drop_model": drop_model}, columns=("model", "version", "status"), keywords=("IF EXISTS", "VERSION", "CASCADE"),
    summary="drop a model, or one version (CASCADE: with the aliases that point at it)",
)  # fmt: skip
