"""EXPORT MODEL: a version's ONNX blob, checked, with its registry facts in the metadata,
written to any fsspec URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbml.statements.base import MLStatement, Statement, rows_relation, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["ExportModel", "STATEMENT", "export_model"]


class ExportModel(MLStatement):
    """``EXPORT MODEL m [VERSION n] TO 'url'``."""

    arg_types = {"this": True, "version": False, "url": True}


def parse(r) -> ExportModel:
    name = r.model_name()
    version = r.version()
    if not r.match("TO"):
        r.error("Expected TO 'url' after the model")
    return r.finish(ExportModel(this=name, version=version, url=r.string("Expected TO 'url' after the model")))


def generate(gen, e) -> str:
    version = f" VERSION {e.args['version'].name}" if e.args.get("version") else ""
    return f"EXPORT MODEL {gen.sql(e.this)}{version} TO {gen.sql(e.args['url'])}"


def run(ctx: "Context", node: ExportModel):
    return export_model(ctx, node.this.name, node.args["url"].this, version_of(node))


def export_model(ctx: "Context", model: str, url: str, version: int | None = None):
    """``EXPORT MODEL model [VERSION n] TO 'url'`` (any fsspec URL or path)."""
    import hashlib

    import pyarrow as pa

    from dbml.registry.transfer import with_metadata, write_url
    from dbml.runtime import verify_blob

    rec = ctx.registry.get(model, version)
    what = f"model '{rec['model']}' version {rec['version']}"
    blob = verify_blob(ctx.registry.blob(rec["model"], rec["version"]), rec["onnx_sha256"], rec["onnx_size"], what)
    data = with_metadata(blob, rec, what)
    write_url(url, data)
    digest = hashlib.sha256(data).hexdigest()
    ctx.registry.audit("EXPORT", rec["model"], rec["version"], {"url": url, "sha256": digest, "bytes": len(data)})
    schema = pa.schema([("model", pa.string()), ("version", pa.int32()), ("url", pa.string()), ("bytes", pa.int64()),
                        ("sha256", pa.string())])  # fmt: skip
    row = {"model": rec["model"], "version": rec["version"], "url": url, "bytes": len(data), "sha256": digest}
    return rows_relation(ctx.db(), [row], schema)


STATEMENT = Statement(
    name="export", head=("EXPORT", "MODEL"), node=ExportModel, parse=parse, generate=generate, run=run,
    twins={"export_model": export_model}, columns=("model", "version", "url", "bytes", "sha256"),
    keywords=("VERSION", "TO"), summary="write a version's ONNX file (with its registry facts) to a path or URL",
)  # fmt: skip
