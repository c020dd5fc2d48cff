"""Pure SQL-to-SQL functions: split a script into statements, spot dbml's statements,
and rewrite calls of the scoring functions (PREDICT, PREDICT_PROBA, EMBED,
ANOMALY_SCORE, IS_ANOMALY: the table :data:`dbml.outputs.OUTPUTS`) into calls of
per-version UDFs.

Nothing here touches a database. The rewriter learns what a model looks like from a
``resolve`` callable (model reference -> :class:`ModelSignature`), so golden tests run
it with a fixed table of signatures.

Only the text of each scoring call is replaced; the rest of the user's SQL reaches
DuckDB byte for byte, so DuckDB keeps its own behaviour and error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from sqlglot import exp
from sqlglot.errors import ParseError

from dbml.dialect import PREDICT_FUNCTIONS, parse_statement
from dbml.errors import DbmlSyntaxError, FeatureError, ModelNotFoundError
from dbml.features import FeatureSpec, feature_sql
from dbml.outputs import not_offered
from dbml.script import Statement, mask, predict_calls, split_script, unnamed_item

__all__ = ["ModelSignature", "Statement", "split_statements", "rewrite_predict", "contains_predict", "listing", "missing_feature"]


@dataclass(frozen=True)
class ModelSignature:
    """What the rewriter needs to know of one model version.

    Attributes:
        functions: SQL function name ('PREDICT', 'EMBED', ...) -> the per-version UDF
            name, for exactly the functions this version offers.
        task: the version's task (its name, for messages).
        predict_type: the SQL type the PREDICT UDF returns.
        label_type: the SQL type PREDICT must give; when it differs from
            ``predict_type`` the call is wrapped in ``CAST(... AS label_type)``.
    """

    model: str
    version: int
    features: tuple[FeatureSpec, ...]
    functions: Mapping[str, str]
    task: str | None = None
    predict_type: str | None = None
    label_type: str | None = None


# The one function whose result takes the target's own type: ModelSignature's
# predict_type and label_type describe it, and only its calls get the CAST.
_LABELLED = "PREDICT"
_FUNCTION_OF = {cls: name for name, cls in PREDICT_FUNCTIONS.items()}


def split_statements(sql: str) -> list[Statement]:
    """Split a script at the semicolons DuckDB splits at (see :mod:`dbml.script`)."""
    return split_script(sql)


def contains_predict(sql: str) -> bool:
    """True if the SQL calls any of dbml's scoring functions (PREDICT, EMBED, ...) anywhere."""
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
    """Map a scoring call's arguments after the model onto the model's features, in
    feature order (the same for every function)."""
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
                    f"({listing(names)}) and has ? parameters, which bind by position: "
                    "list them in the model's order or use $name parameters"
                )
            return [_unalias(a) for a in ordered]
        if len(args) != len(names):
            raise FeatureError(
                f"{func} of {label} is missing feature column(s) {listing(missing)}; "
                f"the model's features are {listing(names)}"
            )
    if len(args) == len(names):
        return [_unalias(a) for a in args]
    raise FeatureError(
        f"{func} of {label} got {len(args)} column(s) but the model has {len(names)} "
        f"feature(s): {listing(names)}"
    )


def listing(names: list[str], limit: int = 20) -> str:
    """Names for a message, at most ``limit`` of them: a model may have thousands of features."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])}, ... ({len(names) - limit:,} more: DESCRIBE MODEL lists them)"


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
    func = _FUNCTION_OF.get(type(node))
    if func is None:
        raise DbmlSyntaxError(f"could not read the {text.split('(', 1)[0].strip().upper()} call {text!r}")
    try:
        reference = _model_reference(node.this, func)
    except ModelNotFoundError:
        if keep is not None and keep():
            return None
        raise
    sig = resolve(reference)
    if sig is None:  # not a model: the user's own function of that name
        return None
    udf = sig.functions.get(func)
    if udf is None:
        raise not_offered(func, f"model '{sig.model}' (version {sig.version})", sig.task, sig.functions)
    inputs = _feature_inputs(sig, list(node.expressions), func)
    args = [feature_sql(f, col, sig.model) for f, col in zip(sig.features, inputs)]
    call: exp.Expression = exp.Anonymous(this=udf, expressions=args)
    if (
        func == _LABELLED
        and sig.label_type is not None
        and sig.predict_type is not None
        and sig.label_type.upper() != sig.predict_type.upper()
    ):
        call = exp.cast(call, exp.DataType.build(sig.label_type, dialect="duckdb"))
    return call.sql(dialect="duckdb", normalize_functions=False)


def rewrite_predict(
    sql: str, resolve: Callable[[str], ModelSignature | None], keep: Callable[[], bool] | None = None
) -> str:
    """Rewrite every call of a scoring function (PREDICT, PREDICT_PROBA, EMBED, ...)
    of ``sql``; the rest is left as typed.

    Args:
        sql: one statement or a whole script.
        resolve: maps a model reference ('churn', 'churn:3') to its signature; raises
            a dbml error for an unknown model or version, or returns None to leave the
            call as typed (a user's own function named predict, embed, ...).
        keep: asked when a call's first argument is no model reference; True leaves
            the call as typed (the user has a function of one of those names).

    Raises:
        FeatureError: for a function the model's version does not offer, or feature
            arguments that do not fit the model.
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
            if unnamed_item(masked, start, end):  # the column is headed as the user wrote the call
                replacement += " AS " + exp.to_identifier(" ".join(text.split()), quoted=True).sql(dialect="duckdb")
            out = out[:start] + replacement + out[end + 1 :]
    return out


def missing_feature(err: Exception, used: list[ModelSignature]) -> FeatureError | None:
    """A dbml error naming the model and column when DuckDB could not find a feature column."""
    match = re.search(r'Referenced column "([^"]+)" not found|does not have a column named "([^"]+)"', str(err))
    if not match:
        return None
    named = match.group(1) or match.group(2)
    column = named.lower()
    for sig in used:
        if column in {f.name.lower() for f in sig.features}:
            return FeatureError(
                f"model '{sig.model}' (version {sig.version}) needs feature column '{named}', "
                f"which the query does not have; its features are {listing([f.name for f in sig.features])}"
            )
    return None
