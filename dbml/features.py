"""Feature columns: their kinds, the SQL that encodes them, and their profile.

One function, :func:`feature_sql`, says how a raw column becomes a model input; the
training query and every rewritten PREDICT call use it, so a column is encoded the
same way at training and at scoring. The profile (means, spreads, null counts,
quantiles, vocabularies) is computed by DuckDB with SQL aggregates.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from dbml.errors import FeatureError
from dbml.sqltext import quote as _q

__all__ = [
    "FeatureSpec",
    "feature_kind",
    "feature_sql",
    "FLOAT_MAX",
    "profile_features",
    "encode_features",
    "QUANTILES",
    "bin_sql",
    "bin_index",
]

NUMERIC_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
    "FLOAT", "DOUBLE", "REAL",
}  # fmt: skip
DATETIME_TYPES = {
    "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS",
}  # fmt: skip
QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

# Kinds and the ONNX input each one takes.
ONNX_INPUT = {"numeric": "float", "boolean": "float", "datetime": "float", "category": "string"}


@dataclass(frozen=True)
class FeatureSpec:
    """One raw feature column as the model sees it.

    Attributes:
        name: the column name (the ONNX input has the same name).
        kind: numeric, boolean, datetime or category.
        sql_type: the column's DuckDB type at training; scoring casts to it.
        onnx_input: for a model imported from a foreign ONNX file (architecture
            'imported'), the graph input this column feeds; its numbers then reach the
            UDF as DOUBLE (cast to ``sql_type``) and take the input's own dtype there.
            None for dbml's own graphs: one FLOAT or VARCHAR input per column, named after it.
    """

    name: str
    kind: str
    sql_type: str
    onnx_input: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = asdict(self)
        if out["onnx_input"] is None:
            del out["onnx_input"]  # dbml's own features keep their three keys
        return out

    @property
    def onnx_type(self) -> str:
        return ONNX_INPUT[self.kind]


def feature_kind(column: str, sql_type: str) -> tuple[str, str]:
    """Classify a DuckDB column type; returns (kind, the type scoring casts to).

    Raises:
        FeatureError: for a type no tabular model takes, naming the column.
    """
    t = sql_type.upper()
    if t in NUMERIC_TYPES or t.startswith("DECIMAL"):
        return "numeric", t
    if t == "BOOLEAN":
        return "boolean", t
    if t in DATETIME_TYPES:
        return "datetime", t
    if t == "VARCHAR" or t.startswith("ENUM"):
        return "category", "VARCHAR"
    raise FeatureError(
        f"column '{column}' has type {sql_type}, which a tabular model cannot take; "
        f"leave it out with SELECT * EXCLUDE ({column}) or cast it"
    )


FLOAT_MAX = 3.4028234663852886e38  # the largest finite FLOAT


def feature_sql(feature: FeatureSpec, column: exp.Expression, model: str | None = None) -> exp.Expression:
    """The SQL expression that turns a raw column into the model's input.

    Numbers, booleans and dates become FLOAT (dates as days since 1970-01-01,
    fractional for timestamps); categories become VARCHAR with NULL as ''. The numbers
    of an imported model's input become its ``sql_type`` (DOUBLE): the UDF converts
    them to the graph input's own dtype, so no value goes through FLOAT on the way.

    One rule for values, the same at training and at scoring (this expression is used
    by both): NULL and NaN are missing (NaN becomes NULL here; the graph imputes it);
    an infinite value, a number outside FLOAT's range or an infinite date stops the
    query with DuckDB's ``error()``, whose message names the column (and ``model``
    when given), the value and the fix. Numbers are checked whatever their type (a
    scoring query may pass a DOUBLE where training saw an INTEGER), through DOUBLE;
    the check is a CASE whose first branch is the plain CAST, and ``error()`` runs
    only for the rows that reach it.
    """
    as_float = exp.DataType.build("FLOAT")
    if feature.kind == "numeric" and feature.onnx_input is not None:
        return exp.cast(column, exp.DataType.build(feature.sql_type, dialect="duckdb"))
    if feature.kind == "numeric":  # through DOUBLE, which holds every value of every numeric type
        return _once(exp.cast(column, exp.DataType.build("DOUBLE")), lambda value: exp.Case(
            ifs=[
                exp.If(
                    this=exp.LTE(this=exp.func("abs", value.copy()), expression=exp.Literal.number(repr(FLOAT_MAX))),
                    true=exp.cast(value.copy(), as_float),
                ),
                exp.If(this=exp.or_(exp.Is(this=value.copy(), expression=exp.Null()), exp.func("isnan", value.copy())), true=exp.Null()),
            ],
            default=_refuse(feature, value, model, "a finite FLOAT (+-3.4e38)"),
        ))  # fmt: skip
    typed = exp.cast(column, exp.DataType.build(feature.sql_type, dialect="duckdb"))
    if feature.kind == "category":
        return exp.func("COALESCE", typed, exp.Literal.string(""))
    if feature.kind == "datetime":
        return _once(typed, lambda value: exp.Case(
            ifs=[
                exp.If(
                    this=exp.func("isfinite", value.copy()),
                    true=exp.cast(exp.Div(this=exp.func("epoch", value.copy()), expression=exp.Literal.number("86400.0")), as_float),
                ),
                exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()), true=exp.Null()),
            ],
            default=_refuse(feature, value, model, "a finite date or time"),
        ))  # fmt: skip
    return exp.cast(typed, as_float)


_LAMBDA_VALUE = "dbml_v"


def _once(value: exp.Expression, body: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
    """``body(value)``, where ``body`` may repeat its argument. A column, a literal or a
    named parameter is repeated as it is (DuckDB evaluates it cheaply and alike); any
    other expression (a ``?`` parameter, which would become several parameters, or
    ``random()``, which would draw several values) is evaluated once, through
    ``list_transform([value], lambda v: body(v))[1]``."""
    inner = value.this if isinstance(value, exp.Cast) else value
    if isinstance(inner, (exp.Column, exp.Literal, exp.Null)) or (
        isinstance(inner, exp.Placeholder) and inner.this
    ):
        return body(value)
    v = exp.column(_LAMBDA_VALUE)
    fn = exp.Lambda(this=body(v), expressions=[exp.to_identifier(_LAMBDA_VALUE)])
    return exp.Bracket(
        this=exp.func("list_transform", exp.Array(expressions=[value]), fn),
        expressions=[exp.Literal.number(1)],
        offset=1,
    )


def _refuse(feature: FeatureSpec, column: exp.Expression, model: str | None, wanted: str) -> exp.Expression:
    """``error('dbml: ...')`` naming the column, the model and the value (only evaluated
    for the rows that reach it)."""
    of = f" of model '{model}'" if model else ""
    name = feature.name.replace('"', '""')
    head = f"dbml: column '{feature.name}'{of} has the value "
    tail = (
        f", not {wanted}: NULL and NaN are imputed, infinite and out-of-range values refused; "
        f'filter them (WHERE isfinite("{name}")) or clip them'
    )
    text = exp.DPipe(
        this=exp.DPipe(this=exp.Literal.string(head), expression=exp.cast(column.copy(), exp.DataType.build("VARCHAR"))),
        expression=exp.Literal.string(tail),
    )
    return exp.Anonymous(this="error", expressions=[text])


def profile_features(
    con: duckdb.DuckDBPyConnection, table: str, features: list[FeatureSpec], max_categories: int
) -> dict[str, dict[str, Any]]:
    """Profile encoded feature columns of ``table`` with SQL aggregates.

    Args:
        con: a connection where ``table`` holds the encoded training rows.
        table: the (already quoted-safe) name of that table.
        features: the features to profile.
        max_categories: vocabulary size cap per category column (most frequent first).
    """
    profile: dict[str, dict[str, Any]] = {}
    numeric = [f for f in features if f.kind != "category"]
    if numeric:
        aggs = []
        for f in numeric:
            c = _q(f.name)
            aggs += [
                f"count({c})",
                f"avg({c})",
                f"stddev_pop({c})",
                f"min({c})",
                f"max({c})",
                f"quantile_cont({c}, {QUANTILES})",
            ]
        row = con.execute(f"SELECT count(*), {', '.join(aggs)} FROM {table}").fetchall()[0]
        total = row[0]
        for i, f in enumerate(numeric):
            cnt, mean, std, lo, hi, qs = row[1 + 6 * i : 7 + 6 * i]
            if any(v is not None and not math.isfinite(v) for v in (mean, std, lo, hi)):
                raise FeatureError(  # feature_sql refuses such values first; a guard
                    f"column '{f.name}' has statistics that are not finite (mean {mean}, std {std}); "
                    f"filter its extreme values (WHERE isfinite({_q(f.name)})) in the source query"
                )
            profile[f.name] = {
                "kind": f.kind,
                "count": total,
                "nulls": total - cnt,
                "mean": float(mean) if mean is not None else 0.0,
                "std": float(std) if std is not None else 0.0,
                "min": float(lo) if lo is not None else None,
                "max": float(hi) if hi is not None else None,
                "quantiles": [float(q) for q in qs] if qs is not None else [],
            }
            profile[f.name]["histogram"] = _histogram(con, table, f.name, profile[f.name]["quantiles"])
    for f in features:
        if f.kind != "category":
            continue
        c = _q(f.name)
        rows = con.execute(
            f"SELECT {c} AS v, count(*) AS n FROM {table} GROUP BY ALL ORDER BY n DESC, v LIMIT ?",
            [max_categories],
        ).fetchall()
        total, distinct = con.execute(f"SELECT count(*), approx_count_distinct({c}) FROM {table}").fetchall()[0]
        profile[f.name] = {
            "kind": f.kind,
            "count": total,
            "nulls": int(sum(n for v, n in rows if v == "")),
            "distinct": int(distinct),
            "vocabulary": [v for v, _ in rows],
            "frequencies": [n / total for _, n in rows] if total else [],
        }
    return profile


def bin_sql(column: str, edges: list[float]) -> str:
    """SQL for the histogram bin of a value: the number of edges below it (0..len(edges));
    the same rule as :func:`bin_index`."""
    return f"len(list_filter({[float(e) for e in edges]}::DOUBLE[], lambda e: e < {column}))"


def bin_index(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Histogram bins of values, by the rule of :func:`bin_sql`."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")


def _histogram(con: duckdb.DuckDBPyConnection, table: str, name: str, quantiles: list[float]) -> dict[str, Any]:
    """Training shares of the bins cut at the distinct deciles (the basis of drift's PSI)."""
    edges = sorted(set(quantiles))
    c = _q(name)
    rows = con.execute(
        f"SELECT {bin_sql(c, edges)}, count(*) FROM {table} WHERE {c} IS NOT NULL GROUP BY ALL"
    ).fetchall()
    total = sum(n for _, n in rows)
    shares = [0.0] * (len(edges) + 1)
    for b, n in rows:
        shares[int(b)] = n / total if total else 0.0
    return {"edges": edges, "shares": shares}


def encode_features(
    table: pa.Table, features: list[FeatureSpec], profile: dict[str, dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """Encoded Arrow columns -> (float32 [N, numeric], int64 [N, category]) arrays.

    Numbers keep NULL as NaN (the preprocessing imputes it); categories become
    1-based vocabulary codes with 0 for unknown values. Columnar, no per-row objects.
    """
    n = table.num_rows
    num_cols, cat_cols = [], []
    for f in features:
        col = table.column(f.name)
        if f.kind == "category":
            vocab = pa.array(profile[f.name]["vocabulary"], type=pa.string())
            idx = pc.index_in(col.cast(pa.string()), value_set=vocab)
            cat_cols.append(pc.add(pc.fill_null(idx, -1), 1).to_numpy().astype(np.int64))
        else:
            values = pc.fill_null(col.cast(pa.float32()), float("nan"))
            num_cols.append(values.to_numpy().astype(np.float32, copy=False))
    x_num = np.column_stack(num_cols) if num_cols else np.zeros((n, 0), np.float32)
    x_cat = np.column_stack(cat_cols) if cat_cols else np.zeros((n, 0), np.int64)
    return np.ascontiguousarray(x_num, np.float32), np.ascontiguousarray(x_cat, np.int64)

