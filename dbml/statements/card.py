"""EXPORT MODEL CARD: the HTML model card of a version, written to a path or URL.
(``EXPORT MODEL card TO 'url'`` still exports a model named card.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbml.statements.base import MLStatement, Statement, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["ExportModelCard", "STATEMENT", "model_card"]


class ExportModelCard(MLStatement):
    """``EXPORT MODEL CARD m [VERSION n] TO 'url'``: the version's HTML model card."""

    arg_types = {"this": True, "version": False, "url": True}


def _guard(r) -> bool:
    """CARD followed by a name: the model card, not a model named card (``EXPORT MODEL
    card TO ...``, ``EXPORT MODEL card VERSION 2 TO ...``)."""
    nxt = r.peek()
    return nxt is not None and nxt not in ("TO", "VERSION")


def parse(r) -> ExportModelCard:
    name = r.model_name()
    version = r.version()
    if not r.match("TO"):
        r.error("Expected TO 'url' after the model")
    return r.finish(ExportModelCard(this=name, version=version, url=r.string("Expected TO 'url' after the model")))


def generate(gen, e) -> str:
    version = f" VERSION {e.args['version'].name}" if e.args.get("version") else ""
    return f"EXPORT MODEL CARD {gen.sql(e.this)}{version} TO {gen.sql(e.args['url'])}"


def run(ctx: "Context", node: ExportModelCard):
    from dbml.integrations.card import export_card

    return export_card(ctx, node.this.name, version_of(node), node.args["url"].this)


def model_card(ctx: "Context", model: str, path: str | None = None, version: int | None = None) -> str:
    """``EXPORT MODEL CARD model [VERSION n] TO 'path'``: the HTML model card of a version
    (default: the one a bare name scores with), written to ``path`` (a file path or any
    fsspec URL; an existing file is replaced, as EXPORT MODEL does). Returns the path
    written, or the HTML itself when ``path`` is None."""
    from dbml.integrations import card

    if path is None:
        return card.model_card(ctx, model, version)
    card.export_card(ctx, model, version, path)
    return path


STATEMENT = Statement(
    name="card", head=("EXPORT", "MODEL", "CARD"), node=ExportModelCard, parse=parse, generate=generate, run=run,
    twins={"model_card": model_card}, columns=("model", "version", "url", "bytes"), keywords=("VERSION", "TO"),
    guard=_guard, summary="write a version's HTML model card to a path or URL",
)  # fmt: skip
