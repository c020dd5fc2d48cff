"""Numbers, booleans and dates: one FLOAT input per column, imputed and standardised
together in the ``numbers`` tensor."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dbml.options import Option
from dbml.errors import FeatureError
from dbml.kinds import Claim, Kind, Phrase, Shape, clock
from dbml.kinds.arrow import NUMBERS, doubles, finite_floats, is_number, plain
from dbml.kinds.common import FLOAT_MAX, QUANTILES, once, refusal, refuse
from dbml.sqltext import quote as _q

if TYPE_CHECKING:
    import duckdb

# sqlglot is imported where SQL is built (sql()), so Arrow scoring runs without it

__all__ = [
    "ScalarKind", "NumericKind", "BooleanKind", "DatetimeKind", "NUMERIC_TYPES", "DATETIME_TYPES", "histogram",
    "is_number_type", "histogram_bins", "check_numbers_profile", "numbers_card",
]  # fmt: skip

NUMERIC_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
    "FLOAT", "DOUBLE", "REAL",
}  # fmt: skip
DATETIME_TYPES = {
    "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS",
}  # fmt: skip


def is_number_type(sql_type: str) -> bool:
    """A DuckDB type of plain numbers (an integer, a float or a DECIMAL; not a list of them)."""
    t = sql_type.upper()
    return t in NUMERIC_TYPES or (t.startswith("DECIMAL") and not t.endswith("]"))


_STORED_DECIMAL = re.compile(r"^DECIMAL(\(\d{1,3}(, ?\d{1,3})?\))?$")


NUMERIC_ENCODING = Option(
    "numeric_encoding", "str", "auto",
    "how the network sees a number: standard (standardised), quantile (standardised, plus a piecewise-linear "
    "encoding over its training deciles), or auto (quantile for an mlp's classification and regression, else standard)",
    choices=("auto", "standard", "quantile"),
)  # fmt: skip


class ScalarKind(Kind):
    """A column that becomes one FLOAT (NULL and NaN: missing, imputed in the graph)."""

    shape = Shape.FLAT
    group_order = 0  # the numbers tensor comes first
    options = (NUMERIC_ENCODING,)

    def check_profile(self, check, entry, at):
        return check_numbers_profile(check, entry, at)

    def card_shape(self, profile):
        return numbers_card(profile)

    def udf_type(self, feature):
        from duckdb import sqltypes

        return sqltypes.FLOAT

    def feed(self, feature, values: pa.Array) -> np.ndarray:
        if not pa.types.is_float32(values.type):
            values = values.cast(pa.float32())
        return values.to_numpy(zero_copy_only=False).reshape(-1, 1)  # NULL becomes NaN

    def profile(self, con, table, features, options):
        aggs = []
        for f in features:
            c = _q(f.name)
            aggs += [f"count({c})", f"avg({c})", f"stddev_pop({c})", f"min({c})", f"max({c})", f"quantile_cont({c}, {QUANTILES})"]
        row = con.execute(f"SELECT count(*), {', '.join(aggs)} FROM {table}").fetchall()[0]
        total, out = row[0], {}
        for i, f in enumerate(features):
            cnt, mean, std, lo, hi, qs = row[1 + 6 * i : 7 + 6 * i]
            if any(v is not None and not math.isfinite(v) for v in (mean, std, lo, hi)):
                raise FeatureError(  # the encoding's check refuses such values first; a guard
                    f"column '{f.name}' has statistics that are not finite (mean {mean}, std {std}); "
                    f"filter its extreme values (WHERE isfinite({_q(f.name)})) in the source query"
                )
            quantiles = [float(q) for q in qs] if qs is not None else []
            out[f.name] = {
                "kind": f.kind, "count": total, "nulls": total - cnt,
                "mean": float(mean) if mean is not None else 0.0, "std": float(std) if std is not None else 0.0,
                "min": float(lo) if lo is not None else None, "max": float(hi) if hi is not None else None,
                "quantiles": quantiles,
            }  # fmt: skip
        # the training shares of each column's decile bins (drift's basis), every column in one scan
        for f, hist in zip(features, histograms(con, table, [(_q(f.name), out[f.name]["quantiles"]) for f in features])):
            out[f.name]["histogram"] = hist
        return out

    def group_key(self, feature) -> str:
        return "numbers"

    def tensor(self, features, columns, profile) -> np.ndarray:
        cols = [pc.fill_null(c.cast(pa.float32()), float("nan")).to_numpy(zero_copy_only=False) for c in columns]
        x = np.column_stack(cols) if cols else np.zeros((0, 0), np.float32)
        if np.isinf(x).any():  # the encoding's check refuses them first; a guard
            bad = features[int(np.argmax(np.isinf(x).any(axis=0)))].name
            raise FeatureError(f"column '{bad}' has infinite values; filter them (WHERE isfinite({_q(bad)})) in the source query")
        return np.ascontiguousarray(x, np.float32)

    def front(self, features, profile, out, prefix) -> list:
        from onnx import helper  # here: plain SQL and the shell never load onnx

        return [helper.make_node("Concat", [f.name for f in features], [out], axis=1, name=prefix + "concat_numeric")]

    def width(self, features, profile) -> int:
        return sum(1 + (profile[f.name].get("nulls", 0) > 0) for f in features)

    def encoder(self, features, profile, options):
        from dbml.kinds.encoders import NumberEncoder

        return NumberEncoder(features, profile, bins=options.get("numeric_encoding") == "quantile")


class NumericKind(ScalarKind):
    name = "numeric"

    def claim(self, column):
        return Claim(column.sql_type) if is_number_type(column.sql_type) else None

    def valid_type(self, sql_type):
        return sql_type in NUMERIC_TYPES or bool(_STORED_DECIMAL.match(sql_type))

    def foreign_type(self, dtype):
        # cast to DOUBLE in SQL, to the input's own dtype in the UDF
        return "DOUBLE" if dtype in ("float32", "float64", "int64", "int32", "bool") else None

    def udf_type(self, feature):
        from duckdb import sqltypes

        return sqltypes.DOUBLE if feature.onnx_input is not None else sqltypes.FLOAT  # an imported input: see sql

    def sql(self, feature, column, model):
        from sqlglot import exp

        if feature.onnx_input is not None:  # an imported model's input: its sql_type (DOUBLE), converted by the UDF
            return exp.cast(column, exp.DataType.build(feature.sql_type, dialect="duckdb"))
        # through DOUBLE, which holds every value of every numeric type
        return once(exp.cast(column, exp.DataType.build("DOUBLE")), lambda value: exp.Case(
            ifs=[
                exp.If(
                    this=exp.LTE(this=exp.func("abs", value.copy()), expression=exp.Literal.number(repr(FLOAT_MAX))),
                    true=exp.cast(value.copy(), exp.DataType.build("FLOAT")),
                ),
                exp.If(this=exp.or_(exp.Is(this=value.copy(), expression=exp.Null()), exp.func("isnan", value.copy())), true=exp.Null()),
            ],
            default=refuse(feature, value, model, _FINITE),
        ))  # fmt: skip

    arrow_needs = NUMBERS

    def takes(self, feature, arrow_type):
        return is_number(arrow_type)

    def arrow(self, feature, values, model, timezone="UTC"):
        values = plain(values, pa.float64())
        x, nulls = doubles(values)
        if feature.onnx_input is not None:  # CAST(x AS DOUBLE), nothing refused (see sql)
            return pa.array(x, type=pa.float64(), mask=nulls if nulls.any() else None)
        out, missing = finite_floats(feature, x, nulls, model, _FINITE)
        return pa.array(out, type=pa.float32(), mask=missing if missing.any() else None)


_FINITE = "a finite FLOAT (+-3.4e38)"


class BooleanKind(ScalarKind):
    name = "boolean"

    def claim(self, column):
        return Claim(column.sql_type) if column.sql_type == "BOOLEAN" else None

    def valid_type(self, sql_type):
        return sql_type == "BOOLEAN"

    def sql(self, feature, column, model):
        from sqlglot import exp

        return exp.cast(exp.cast(column, exp.DataType.build("BOOLEAN")), exp.DataType.build("FLOAT"))

    arrow_needs = "booleans (or integers: 0 is false, anything else true, as DuckDB casts them)"

    def takes(self, feature, arrow_type):
        return pa.types.is_boolean(arrow_type) or pa.types.is_integer(arrow_type)

    def arrow(self, feature, values, model, timezone="UTC"):
        values = plain(values, pa.bool_())
        if not pa.types.is_boolean(values.type):
            values = pc.not_equal(values, pa.scalar(0, values.type))
        return pc.cast(values, pa.float32())


class DatetimeKind(ScalarKind):
    """Days since 1970-01-01, fractional for timestamps."""

    name = "datetime"
    reads_timezone = True  # where a time zone and a wall clock meet (see clock)

    def claim(self, column):
        return Claim(column.sql_type) if column.sql_type in DATETIME_TYPES else None

    def valid_type(self, sql_type):
        return sql_type in DATETIME_TYPES

    def sql(self, feature, column, model):
        from sqlglot import exp

        typed = exp.cast(column, exp.DataType.build(feature.sql_type, dialect="duckdb"))
        return once(typed, lambda value: exp.Case(
            ifs=[
                exp.If(
                    this=exp.func("isfinite", value.copy()),
                    true=exp.cast(exp.Div(this=exp.func("epoch", value.copy()), expression=exp.Literal.number("86400.0")), exp.DataType.build("FLOAT")),
                ),
                exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()), true=exp.Null()),
            ],
            default=refuse(feature, value, model, _FINITE_TIME),
        ))  # fmt: skip

    arrow_needs = "dates or timestamps (date32, date64, or timestamp of any unit, with or without a time zone)"

    def takes(self, feature, arrow_type):
        return clock.takes(arrow_type, feature.sql_type.upper())

    def arrow(self, feature, values, model, timezone="UTC"):
        values = plain(values, pa.date32())

        def fail(rows: np.ndarray, wanted: str) -> None:
            if rows.any():
                raise FeatureError(refusal(feature, _shown_time(values, int(np.argmax(rows))), model, wanted))

        moments = clock.read(values, fail)
        if moments.infinite.any():
            row = int(np.argmax(moments.infinite))
            raise FeatureError(refusal(feature, _shown_time(values, row), model, _FINITE_TIME))
        days = clock.encode_days(moments, feature.sql_type.upper(), timezone, fail)
        nulls = moments.null
        return pa.array(days.astype(np.float32), type=pa.float32(), mask=nulls if nulls.any() else None)


_FINITE_TIME = "a finite date or time"


def _shown_time(values: pa.Array, row: int) -> str:
    """A refused date or time as DuckDB shows it (infinity, -infinity), else Arrow's text."""
    t = values.type
    raw = values.view(pa.int32() if pa.types.is_date32(t) else pa.int64())[row].as_py()
    if not pa.types.is_date64(t) and abs(raw) == (clock.DATE_INFINITY if pa.types.is_date32(t) else clock.INFINITY):
        return "infinity" if raw > 0 else "-infinity"
    try:
        return str(values[row].as_py())
    except (ValueError, OverflowError):  # beyond Python's datetime
        return f"{raw} ({t})"


def bin_sql(column: str, edges: list[float]) -> str:
    """SQL for the histogram bin of a value: the number of edges below it (0..len(edges));
    the same rule as :func:`bin_index`."""
    return f"len(list_filter({[float(e) for e in edges]}::DOUBLE[], lambda e: e < {column}))"


def bin_index(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Histogram bins of values, by the rule of :func:`bin_sql`."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")


def histogram(con: duckdb.DuckDBPyConnection, table: str, value_sql: str, quantiles: list[float]) -> dict[str, Any]:
    """Training shares of the bins cut at the distinct deciles (the basis of drift's PSI)."""
    edges = sorted(set(quantiles))
    rows = con.execute(
        f"SELECT {bin_sql(value_sql, edges)}, count(*) FROM {table} WHERE {value_sql} IS NOT NULL GROUP BY ALL"
    ).fetchall()
    total = sum(n for _, n in rows)
    shares = [0.0] * (len(edges) + 1)
    for b, n in rows:
        shares[int(b)] = n / total if total else 0.0
    return {"edges": edges, "shares": shares}


def histograms(con: duckdb.DuckDBPyConnection, table: str, values: list[tuple[str, list[float]]]) -> list[dict[str, Any]]:
    """:func:`histogram` of several values (``(value SQL, quantiles)``), in one scan."""
    if not values:
        return []
    cuts = [sorted(set(q)) for _, q in values]
    aggs = [f"histogram({bin_sql(v, e)}) FILTER (WHERE {v} IS NOT NULL)" for (v, _), e in zip(values, cuts)]
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {table}").fetchall()[0]
    out = []
    for counts, edges in zip(row, cuts):
        counts = dict(counts or {})
        total = sum(counts.values())
        shares = [0.0] * (len(edges) + 1)
        for b, n in counts.items():
            shares[int(b)] = n / total if total else 0.0
        out.append({"edges": edges, "shares": shares})
    return out


def histogram_bins(hist: dict[str, Any] | None, value: str) -> tuple[list[tuple] | None, str | None]:
    """MONITOR's bins of a stored histogram ([(bin, training share, low, high, None)]) and
    the SQL of the bin of ``value`` (:func:`bin_sql`); (None, None) without one."""
    if not hist or hist.get("edges") is None or hist.get("shares") is None:
        return None, None
    edges = [float(e) for e in hist["edges"]]
    shares = [float(s) for s in hist["shares"]]
    if len(shares) != len(edges) + 1:
        raise ValueError(f"a histogram needs len(edges) + 1 shares, got {len(edges)} edges and {len(shares)} shares")
    bins = [
        (k, shares[k], edges[k - 1] if k > 0 else None, edges[k] if k < len(edges) else None, None)
        for k in range(len(shares))
    ]
    return bins, bin_sql(value, edges)


def check_histogram(check: Any, value: Any, path: str) -> dict[str, Any]:
    """A stored histogram, checked: sorted edges and one share more than edges."""
    if not isinstance(value, dict):
        raise check.fail(path, value, "an object {edges, shares}")
    edges = check.numbers(value.get("edges"), f"{path}.edges", 1_000)
    shares = check.numbers(value.get("shares"), f"{path}.shares", 1_001)
    if len(shares) != len(edges) + 1 or edges != sorted(edges):
        raise check.fail(path, value, "sorted edges and one share more than edges")
    return {**value, "edges": edges, "shares": shares}


def check_numbers_profile(check: Any, entry: dict[str, Any], at: str) -> dict[str, Any]:
    """A stored profile of numbers (or of an array's elements), checked: mean, std and
    nulls required; min, max, quantiles and histogram where present."""
    clean = dict(entry)
    for key in ("mean", "std"):
        clean[key] = check.number(entry.get(key), f"{at}.{key}")
    clean["nulls"] = check.integer(entry.get("nulls"), f"{at}.nulls")
    for key in ("min", "max"):
        if key in entry:
            clean[key] = check.number(entry[key], f"{at}.{key}", none=True)
    if "quantiles" in entry:
        clean["quantiles"] = check.numbers(entry["quantiles"], f"{at}.quantiles", 1_000)
    if entry.get("histogram") is not None:
        clean["histogram"] = check_histogram(check, entry["histogram"], f"{at}.histogram")
    return clean


def numbers_card(profile: dict[str, Any]) -> list[Phrase]:
    """The card's words for a profile of numbers: mean, std and range."""
    if profile.get("mean") is None and profile.get("std") is None:
        return []
    out = [Phrase("mean {}, std {}", (profile.get("mean"), profile.get("std")))]
    if profile.get("min") is not None:
        out.append(Phrase(", range {} .. {}", (profile.get("min"), profile.get("max"))))
    return out
