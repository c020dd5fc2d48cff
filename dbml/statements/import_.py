"""IMPORT MODEL: an ONNX file becomes the next version of a model.

A file written by EXPORT MODEL keeps its lineage, metrics and profile; a foreign ONNX
file (no dbml metadata) becomes a version of architecture and task ``imported`` (see
:mod:`dbml.registry.foreign`). The file's metadata is data, never trusted:
:func:`dbml.registry.modelfile.describe_file` checks its ``dbml.record`` keys
(:func:`dbml.registry.records.check_imported_facts`: unknown identifier-shaped keys are
dropped, named in a warning and in the audit row; any other key is refused), the record
IMPORT builds against the declared schema (:func:`dbml.registry.records.validate_record`)
and against the graph (inputs, outputs, label count), all before anything is written.
Scoring outside DuckDB (:func:`dbml.score`) runs the same checks.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from dbml.statements.base import MLStatement, Statement, options_of, rows_relation, with_sql

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["ImportModel", "STATEMENT", "import_model", "IMPORT_OPTIONS"]


class ImportModel(MLStatement):
    """``IMPORT MODEL m FROM 'url' [WITH (...)]``."""

    arg_types = {"this": True, "url": True, "options": False}


def parse(r) -> ImportModel:
    name = r.model_name()
    if not r.match("FROM"):
        r.error("Expected FROM 'url' after the model name")
    url = r.string("Expected FROM 'url' after the model name")
    return r.finish(ImportModel(this=name, url=url, options=r.options()))


def generate(gen, e) -> str:
    with_ = with_sql(gen, e)
    return f"IMPORT MODEL {gen.sql(e.this)} FROM {gen.sql(e.args['url'])}{with_}"


def run(ctx: "Context", node: ImportModel):
    return _import(ctx, node.this.name, node.args["url"].this, options_of(node, ctx.params))


def _options():
    from dbml.options import Option
    from dbml.registry.transfer import MAX_IMPORT_BYTES

    return (
        Option("max_size", "int", MAX_IMPORT_BYTES, "largest file accepted, in bytes", lambda v: v > 0, "positive"),
        Option("inputs", "str_list", None, "foreign ONNX: the feature column names, one per graph column, in graph order"),
    )


def __getattr__(name: str):
    if name == "IMPORT_OPTIONS":  # fsspec and onnx load on first use
        return _options()
    raise AttributeError(name)


def import_model(ctx: "Context", model: str, url: str, **options: Any):
    """``IMPORT MODEL model FROM 'url' [WITH (max_size = ..., inputs = [...])]``."""
    return _import(ctx, model, url, options)


def _import(ctx: "Context", model: str, url: str, options: dict[str, Any]):
    import pyarrow as pa

    from dbml.names import check_model_name
    from dbml.options import validate_options
    from dbml.registry.modelfile import describe_file, open_session
    from dbml.registry.transfer import read_url

    name = check_model_name(model)
    opts = validate_options(options, _options(), f"IMPORT MODEL {name}")
    blob = read_url(url, opts["max_size"])
    session = open_session(blob, url)
    described = describe_file(blob, url, session, name, opts["inputs"], warn=_warn)
    detail = {"url": url, "exported_from": described.origin,
              **({"dropped_facts": described.dropped} if described.dropped else {})}  # fmt: skip
    version = ctx.registry.add_version(described.record, blob, [], action="IMPORT", detail=detail)
    schema = pa.schema([("model", pa.string()), ("version", pa.int32()), ("url", pa.string()), ("exported_from", pa.string())])
    return rows_relation(ctx.db(), [{"model": name, "version": version, "url": url, "exported_from": described.origin}], schema)


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=6)


STATEMENT = Statement(
    name="import", head=("IMPORT", "MODEL"), node=ImportModel, parse=parse, generate=generate, run=run,
    twins={"import_model": import_model}, columns=("model", "version", "url", "exported_from"), keywords=("FROM", "WITH"),
    summary="a new version from an ONNX file (one EXPORT MODEL wrote, or a foreign one)",
)  # fmt: skip
