"""Pure SQL-to-SQL functions: split a script into statements, spot dbml's statements,
and rewrite PREDICT / PREDICT_PROBA calls into calls of per-version UDFs.

Nothing here touches a database. The rewriter learns what a model looks like from a
``resolve`` callable (model reference -> :class:`ModelSignature`), so golden tests run
it with a fixed table of signatures.

Only the text of each PREDICT call is replaced; the rest of the user's SQL reaches
DuckDB byte for byte, so DuckDB keeps its own behaviour and error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlglot import exp
from sqlglot.errors import ParseError

from dbml.dialect import PREDICT_FUNCTIONS, PredictProba, parse_statement
from dbml.errors import DbmlSyntaxError, FeatureError, ModelNotFoundError
from dbml.features import FeatureSpec, feature_sql
from dbml.script import Statement, mask, predict_calls, split_script

__all__ = ["ModelSignature", "Statement", "split_statements", "rewrite_predict", "contains_predict"]


@dataclass(frozen=True)
class ModelSignature:
    """What the rewriter needs to know of one model version."""

    model: str
    version: int
    features: tuple[FeatureSpec, ...]
    predict_function: str
    predict_type: str  # SQL type the predict UDF returns
    label_type: str  # SQL type PREDICT must give (the target's own type)
    proba_function: str | None = None  # None: the model has no class probabilities


def split_statements(sql: str) -> list[Statement]:
    """Split a script at the semicolons DuckDB splits at (see :mod:`dbml.script`)."""
    return split_script(sql)


def contains_predict(sql: str) -> bool:
    """True if the SQL calls dbml's PREDICT or PREDICT_PROBA anywhere."""
    return bool(predict_calls(mask(sql)))


def _model_reference(arg: exp.Expression, func: str) -> str:
    if isinstance(arg, exp.Literal) and arg.is_string:
        return arg.this
    if isinstance(arg, exp.Column) and not arg.table and isinstance(arg.this, exp.Identifier):
        return arg.name
    raise ModelNotFoundError(
        f"the first argument of {func} must be a model name or a 'model:version' string, "
        f"got {arg.sql(dialect='duckdb')}"
    )


def _argument_name(arg: exp.Expression) -> str | None:
    if isinstance(arg, exp.Alias):
        return arg.alias
    if isinstance(arg, exp.PropertyEQ):  # x + 1 AS age, inside a function call
        return arg.this.name
    if isinstance(arg, exp.Column) and isinstance(arg.this, exp.Identifier):
        return arg.name
    return None


def _feature_inputs(sig: ModelSignature, args: list[exp.Expression], func: str) -> list[exp.Expression]:
    """Map PREDICT's arguments after the model onto the model's features, in feature order."""
    names = [f.name for f in sig.features]
    label = f"model '{sig.model}' (version {sig.version})"
    if len(args) == 1 and isinstance(args[0], exp.Star):
        return [exp.column(n, quoted=True) for n in names]
    if len(args) == 1 and isinstance(args[0], exp.Column) and isinstance(args[0].this, exp.Star):
        table = args[0].args.get("table")
        return [exp.column(n, table=table.copy(), quoted=True) for n in names]
    if not args:
        raise FeatureError(f"{func} of {label} needs its feature columns: write {func}({sig.model}, *)")
    if any(isinstance(a, exp.Star) or (isinstance(a, exp.Column) and isinstance(a.this, exp.Star)) for a in args):
        raise FeatureError(f"{func} of {label} takes either * alone or a list of columns, not both")
    arg_names = [_argument_name(a) for a in args]
    lowered = {n.lower(): a for n, a in zip(arg_names, args) if n is not None}
    if all(n is not None for n in arg_names) and len(lowered) == len(args):
        missing = [n for n in names if n.lower() not in lowered]
        if not missing:
            ordered = [lowered[n.lower()] for n in names]
            unnamed = any(not p.this for a in args for p in a.find_all(exp.Placeholder))
            if ordered != args and unnamed:
                raise FeatureError(
                    f"{func} of {label} names its columns in another order than the model's "
                    f"({', '.join(names)}) and has ? parameters, which bind by position: "
                    "list them in the model's order or use $name parameters"
                )
            return [_unalias(a) for a in ordered]
        if len(args) != len(names):
            raise FeatureError(
                f"{func} of {label} is missing feature column(s) {', '.join(missing)}; "
                f"the model's features are {', '.join(names)}"
            )
    if len(args) == len(names):
        return [_unalias(a) for a in args]
    raise FeatureError(
        f"{func} of {label} got {len(args)} column(s) but the model has {len(names)} "
        f"feature(s): {', '.join(names)}"
    )


def _unalias(arg: exp.Expression) -> exp.Expression:
    if isinstance(arg, exp.Alias):
        return arg.this
    if isinstance(arg, exp.PropertyEQ):
        return arg.expression
    return arg


def _rewrite_call(
    text: str, resolve: Callable[[str], ModelSignature | None], keep: Callable[[], bool] | None
) -> str | None:
    node = parse_statement(text)
    if not isinstance(node, tuple(PREDICT_FUNCTIONS.values())):
        raise DbmlSyntaxError(f"could not read the PREDICT call {text!r}")
    func = "PREDICT_PROBA" if isinstance(node, PredictProba) else "PREDICT"
    try:
        reference = _model_reference(node.this, func)
    except ModelNotFoundError:
        if keep is not None and keep():
            return None
        raise
    sig = resolve(reference)
    if sig is None:  # not a model: the user's own function of that name
        return None
    inputs = _feature_inputs(sig, list(node.expressions), func)
    args = [feature_sql(f, col, sig.model) for f, col in zip(sig.features, inputs)]
    if func == "PREDICT_PROBA":
        if sig.proba_function is None:
            raise FeatureError(
                f"PREDICT_PROBA needs a classification model; model '{sig.model}' "
                f"(version {sig.version}) predicts a value: use PREDICT"
            )
        call: exp.Expression = exp.Anonymous(this=sig.proba_function, expressions=args)
    else:
        call = exp.Anonymous(this=sig.predict_function, expressions=args)
        if sig.label_type.upper() != sig.predict_type.upper():
            call = exp.cast(call, exp.DataType.build(sig.label_type, dialect="duckdb"))
    return call.sql(dialect="duckdb", normalize_functions=False)


def rewrite_predict(
    sql: str, resolve: Callable[[str], ModelSignature | None], keep: Callable[[], bool] | None = None
) -> str:
    """Rewrite every PREDICT / PREDICT_PROBA call of ``sql``; the rest is left as typed.

    Args:
        sql: one statement or a whole script.
        resolve: maps a model reference ('churn', 'churn:3') to its signature; raises
            a dbml error for an unknown model or version, or returns None to leave the
            call as typed (a user's own function named predict).
        keep: asked when a call's first argument is no model reference; True leaves
            the call as typed (the user has a function named predict).
    """
    masked = mask(sql)
    out = sql
    for start, end in reversed(predict_calls(masked)):
        text = sql[start : end + 1]
        if masked[end] != ")":
            line = sql.count("\n", 0, start) + 1
            col = start - (sql.rfind("\n", 0, start) + 1) + 1
            name = text.split("(", 1)[0].strip()
            raise DbmlSyntaxError(
                f"syntax error at line {line}, column {col} near '{name}': {name.upper()}( is never closed"
            )
        try:
            replacement = _rewrite_call(text, resolve, keep)
        except ParseError as err:  # pragma: no cover - parse_statement converts these
            raise DbmlSyntaxError(str(err)) from None
        if replacement is not None:
            out = out[:start] + replacement + out[end + 1 :]
    return out
