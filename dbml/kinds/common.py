"""SQL pieces the kinds share: a value used several times but evaluated once, and the
``error()`` that stops a query on a value no model takes (whose message the Arrow
encodings raise too: :func:`refusal`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sqlglot import exp  # imported where SQL is built, so Arrow scoring runs without sqlglot

    from dbml.features import FeatureSpec

__all__ = ["FLOAT_MAX", "once", "refuse", "refusal", "QUANTILES"]

FLOAT_MAX = 3.4028234663852886e38  # the largest finite FLOAT
QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
_LAMBDA_VALUE = "dbml_v"


def once(value: exp.Expression, body: Callable[[exp.Expression], exp.Expression], name: str = _LAMBDA_VALUE) -> exp.Expression:
    """``body(value)``, where ``body`` may repeat its argument. A column, a literal or a
    named parameter is repeated as it is (DuckDB evaluates it cheaply and alike); any
    other expression (a ``?`` parameter, which would become several parameters, or
    ``random()``, which would draw several values) is evaluated once, through
    ``list_transform([value], lambda v: body(v))[1]``."""
    from sqlglot import exp

    inner = value.this if isinstance(value, exp.Cast) else value
    if isinstance(inner, (exp.Column, exp.Literal, exp.Null)) or (
        isinstance(inner, exp.Placeholder) and inner.this
    ):
        return body(value)
    v = exp.column(name)
    fn = exp.Lambda(this=body(v), expressions=[exp.to_identifier(name)])
    return exp.Bracket(
        this=exp.func("list_transform", exp.Array(expressions=[value]), fn),
        expressions=[exp.Literal.number(1)],
        offset=1,
    )


def _message(feature: FeatureSpec, model: str | None, wanted: str, fix: str | None, shown: bool) -> tuple[str, str]:
    """(text before the value, text after it) of a refusal; the whole message in the
    first when no value is shown."""
    of = f" of model '{model}'" if model else ""
    name = feature.name.replace('"', '""')
    fix = fix or (
        "NULL and NaN are imputed, infinite and out-of-range values refused; "
        f'filter them (WHERE isfinite("{name}")) or clip them'
    )
    if not shown:
        return f"dbml: column '{feature.name}'{of} {wanted}: {fix}", ""
    return f"dbml: column '{feature.name}'{of} has the value ", f", not {wanted}: {fix}"


def refusal(feature: FeatureSpec, shown: str | None, model: str | None, wanted: str, fix: str | None = None) -> str:
    """The message :func:`refuse` stops a query with, for the Arrow encodings
    (:meth:`dbml.kinds.Kind.arrow`), which raise it as a FeatureError."""
    head, tail = _message(feature, model, wanted, fix, shown is not None)
    return head if shown is None else f"{head}{shown}{tail}"


def refuse(feature: FeatureSpec, shown: exp.Expression | None, model: str | None, wanted: str, fix: str | None = None) -> exp.Expression:
    """``error('dbml: ...')`` naming the column, the model and the value (only evaluated
    for the rows that reach it)."""
    from sqlglot import exp

    head, tail = _message(feature, model, wanted, fix, shown is not None)
    if shown is None:
        return exp.Anonymous(this="error", expressions=[exp.Literal.string(head)])
    text = exp.DPipe(
        this=exp.DPipe(this=exp.Literal.string(head), expression=exp.cast(shown.copy(), exp.DataType.build("VARCHAR"))),
        expression=exp.Literal.string(tail),
    )
    return exp.Anonymous(this="error", expressions=[text])
