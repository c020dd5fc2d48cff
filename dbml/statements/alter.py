"""ALTER MODEL ... SET / UNSET ALIAS: deploy a version under a name, or roll back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbml.statements.base import MLStatement, Statement, rows_relation, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["AlterModel", "STATEMENT", "set_alias", "unset_alias"]


class AlterModel(MLStatement):
    """``ALTER MODEL m SET ALIAS a = n`` (version None: ``UNSET ALIAS a``)."""

    arg_types = {"this": True, "alias": True, "version": False}


def parse(r) -> AlterModel:
    name = r.model_name()
    if r.match("SET", "ALIAS"):
        alias = r.identifier("Expected SET ALIAS name = version")
        if not r.match("="):
            r.error("Expected SET ALIAS name = version")
        return r.finish(AlterModel(this=name, alias=alias, version=r.version(required=True)))
    if r.match("UNSET", "ALIAS"):
        return r.finish(AlterModel(this=name, alias=r.identifier("Expected an alias name after UNSET ALIAS")))
    r.error("Expected SET ALIAS or UNSET ALIAS")


def generate(gen, e: AlterModel) -> str:
    alias = gen.sql(e.args["alias"])
    what = f"SET ALIAS {alias} = {e.args['version'].name}" if e.args.get("version") else f"UNSET ALIAS {alias}"
    return f"ALTER MODEL {gen.sql(e.this)} {what}"


def run(ctx: "Context", node: AlterModel):
    return _alias(ctx, node.this.name, node.args["alias"].name, version_of(node))


def set_alias(ctx: "Context", model: str, alias: str, version: int):
    """``ALTER MODEL model SET ALIAS alias = version``: deploy, or roll back."""
    return _alias(ctx, model, alias, version)


def unset_alias(ctx: "Context", model: str, alias: str):
    """``ALTER MODEL model UNSET ALIAS alias``."""
    return _alias(ctx, model, alias, None)


def _alias(ctx: "Context", model: str, alias: str, version: int | None):
    """The model name, the alias name (an identifier, like model names) and the version (a
    whole number, not a bool or a string) are checked before anything is written."""
    import pyarrow as pa

    from dbml.names import check_alias_name, check_model_name, check_version

    name, alias = check_model_name(model), check_alias_name(alias)
    if version is not None:
        version = check_version(version, f"the version of alias '{alias}' of model '{name}'")
    previous = ctx.registry.set_alias(name, alias, version)
    schema = pa.schema([("model", pa.string()), ("alias", pa.string()), ("version", pa.int32()), ("previous_version", pa.int32())])
    return rows_relation(ctx.db(), [{"model": name, "alias": alias, "version": version, "previous_version": previous}], schema)


STATEMENT = Statement(
    name="alter", head=("ALTER", "MODEL"), node=AlterModel, parse=parse, generate=generate, run=run,
    twins={"set_alias": set_alias, "unset_alias": unset_alias}, columns=("model", "alias", "version", "previous_version"),
    keywords=("SET ALIAS", "UNSET ALIAS"), summary="point an alias at a version (deploy, roll back), or remove it",
)  # fmt: skip
