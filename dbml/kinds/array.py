"""Arrays and sequences of numbers, one tensor per column.

* ``array``: a FLOAT[n] (ARRAY) or LIST of numbers whose rows all have one length,
  found at training (an image's pixels, a signal window). ONNX input float [N, n];
  the UDF takes FLOAT[n]. A row of another length, or a NULL array, stops the query
  with a dbml error naming the column.
* ``sequence``: a LIST of numbers whose rows may differ in length (a customer's last
  amounts), for recurrent networks: the last ``max_length`` values are kept (found at
  training), and shorter rows are padded at the front. ONNX input float [N, L]; the
  UDF takes FLOAT[] and pads.
* ``covariate``: a forecaster's known covariate (a price, a promotion flag, a calendar
  number) over a window and its horizon, FLOAT[window + horizon], read as one flat
  vector that joins the network beside the history's state. No column is detected as
  one: the forecasting task names them. ONNX input float [N, window + horizon].

Elements: NULL and NaN are missing (imputed: 0 after standardisation, and sequences
carry a "present" channel); infinite or out-of-FLOAT-range elements are refused.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dbml.errors import FeatureError
from dbml.kinds import Claim, Kind, Shape
from dbml.kinds.arrow import doubles, finite_floats, is_number, plain
from dbml.kinds.common import FLOAT_MAX, QUANTILES, once, refusal, refuse
from dbml.kinds.scalar import check_numbers_profile, histogram, is_number_type, numbers_card
from dbml.sqltext import quote as _q

if TYPE_CHECKING:
    from sqlglot import exp  # imported where SQL is built, so Arrow scoring runs without sqlglot

__all__ = ["ArrayKind", "SequenceKind", "CovariateKind", "list_element", "MAX_LENGTH"]

MAX_LENGTH = 1_000_000  # elements per row
_LIST = re.compile(r"^(.+?)(\[(\d*)\])$")
_STORED = re.compile(r"FLOAT\[(\d{1,7})\]")


def list_element(sql_type: str) -> tuple[str, int | None] | None:
    """(element type, fixed length or None) of a DuckDB ARRAY or LIST type of numbers, else None."""
    m = _LIST.match(sql_type.strip().upper())
    if not m:
        return None
    element = m.group(1).strip()
    if not is_number_type(element):
        return None
    return element, (int(m.group(3)) if m.group(3) else None)


_ELEMENT = ("a finite FLOAT element (+-3.4e38)", "NULL and NaN elements are imputed, infinite ones refused: clip them")


def _null_row(feature, needed: str) -> tuple[str, str]:
    """(wanted, fix) of the refusal of a NULL row (``needed``: what each row needs)."""
    name = feature.name.replace('"', '""')
    tail = " or use []" if needed == _A_LIST else ""
    return "is NULL in a row", f'{needed}: filter the row (WHERE "{name}" IS NOT NULL){tail}'


_A_LIST = "a list of numbers is needed (it may be empty)"


def _wrong_length(n: int) -> tuple[str, str]:
    return f"length {n}", f"every row needs {n} elements, as at training (lengths are the value shown)"


def _elements(feature, column: exp.Expression, model: str | None) -> exp.Expression:
    """``column`` as FLOAT[] (a LIST), each element checked: NULL and NaN become NULL,
    infinite and out-of-range elements stop the query."""
    from sqlglot import exp

    name = "dbml_e"
    e = exp.column(name)
    body = exp.Case(
        ifs=[
            exp.If(this=exp.LTE(this=exp.func("abs", e.copy()), expression=exp.Literal.number(repr(FLOAT_MAX))),
                   true=exp.cast(e.copy(), exp.DataType.build("FLOAT"))),
            exp.If(this=exp.or_(exp.Is(this=e.copy(), expression=exp.Null()), exp.func("isnan", e.copy())), true=exp.Null()),
        ],
        default=refuse(feature, e, model, *_ELEMENT),
    )  # fmt: skip
    fn = exp.Lambda(this=body, expressions=[exp.to_identifier(name)])
    return exp.func("list_transform", exp.cast(column, exp.DataType.build("DOUBLE[]")), fn)


class _ListKind(Kind):
    arrow_needs = "lists of numbers (list, large_list or fixed_size_list of integers, floats, decimals or booleans)"
    group_order = 2  # after numbers and categories, one group per column
    refuses_null_rows = True

    def valid_type(self, sql_type):
        m = _STORED.fullmatch(sql_type)
        return bool(m) and 1 <= int(m.group(1)) <= MAX_LENGTH

    def check_profile(self, check, entry, at):
        return check_numbers_profile(check, entry, at)  # the elements' statistics

    def card_shape(self, profile):
        return numbers_card(profile)

    def takes(self, feature, arrow_type):
        t = arrow_type
        lists = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        return lists and is_number(t.value_type)

    def group_key(self, feature) -> str:
        return "array:" + feature.name

    def profile(self, con, table, features, options):
        out = {}
        for f in features:
            c = _q(f.name)
            row = con.execute(
                f"SELECT count(*), count({c}), min(len({c})), max(len({c})), "
                f"(SELECT count(*) - count(x) FROM (SELECT unnest({c}) AS x FROM {table})) FROM {table}"
            ).fetchall()[0]
            total, present, shortest, longest, null_elements = row
            stats = con.execute(
                f"SELECT count(x), avg(x), stddev_pop(x), min(x), max(x) FROM (SELECT unnest({c}) AS x FROM {table})"
            ).fetchall()[0]
            means = f"list_avg({c})"  # MONITOR bins a row's mean
            qs = con.execute(f"SELECT quantile_cont({means}, {QUANTILES}) FROM {table}").fetchall()[0][0]
            quantiles = [float(q) for q in qs] if qs is not None else []
            out[f.name] = {
                "kind": f.kind, "count": total, "nulls": total - present, "null_elements": int(null_elements or 0),
                "min_length": int(shortest or 0), "max_length": int(longest or 0),
                "elements": int(stats[0] or 0), "mean": float(stats[1] or 0.0), "std": float(stats[2] or 0.0),
                "min": float(stats[3]) if stats[3] is not None else None, "max": float(stats[4]) if stats[4] is not None else None,
                "quantiles": quantiles, "histogram": histogram(con, table, means, quantiles),
            }  # fmt: skip
        return out

    def monitor_sql(self, value_sql: str) -> str:
        return f"list_avg({value_sql})"

    def settle(self, feature, profile):
        return replace(feature, sql_type=f"FLOAT[{max(1, profile[feature.name]['max_length'])}]")

    def check_rows(self, model, feature, values: pa.Array, options) -> None:
        """The checks of :meth:`check` over every row (held-out ones too), from Arrow."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        lengths = pc.list_value_length(values)
        self.check(model, feature, {feature.name: {
            "nulls": values.null_count, "min_length": pc.min(lengths).as_py() or 0, "max_length": pc.max(lengths).as_py() or 0,
        }}, options)  # fmt: skip

    def check(self, model, feature, profile, options) -> None:
        p = profile[feature.name]
        if p["nulls"]:
            raise FeatureError(
                f"column '{feature.name}' of model '{model}' has {p['nulls']:,} NULL {self.name}(s); "
                f"every row needs one: filter them (WHERE {_q(feature.name)} IS NOT NULL) or fill them"
            )
        if p["max_length"] > MAX_LENGTH:
            raise FeatureError(
                f"column '{feature.name}' of model '{model}' has rows of {p['max_length']:,} elements; "
                f"the most a row may have is {MAX_LENGTH:,}"
            )
        if p["max_length"] == 0:
            raise FeatureError(f"column '{feature.name}' of model '{model}' has only empty {self.name}s")

    def front(self, features, profile, out, prefix) -> list:
        from onnx import helper  # here: plain SQL and the shell never load onnx

        return [helper.make_node("Identity", [features[0].name], [out], name=prefix + "array_" + features[0].name)]

    def width(self, features, profile) -> int:
        return self.length(features[0])

    def tensor_shape(self, features, profile=None) -> tuple:
        return (self.length(features[0]),)

    def input_shape(self, feature) -> list:
        return ["N", self.length(feature)]

    def length(self, feature) -> int:
        return int(list_element(feature.sql_type)[1])


class ArrayKind(_ListKind):
    """Fixed-length arrays; ``sql_type`` is FLOAT[n]."""

    name = "array"
    shape = Shape.FIXED

    def claim(self, column):
        found = list_element(column.sql_type)
        if found is None:
            return None
        return Claim("FLOAT[]" if found[1] is None else f"FLOAT[{found[1]}]")  # a LIST's length is found at training

    def sql(self, feature, column, model):
        from sqlglot import exp

        n = list_element(feature.sql_type)[1]
        if n is None:  # at training, before the length is known: the checked list
            return _elements(feature, column, model)
        return once(column, lambda value: exp.Case(
            ifs=[
                exp.If(this=exp.EQ(this=exp.func("len", value.copy()), expression=exp.Literal.number(n)),
                       true=exp.cast(_elements(feature, value.copy(), model), exp.DataType.build(f"FLOAT[{n}]"))),
                exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()),
                       true=refuse(feature, None, model, *_null_row(feature, f"an array of {n} numbers is needed"))),
            ],
            default=refuse(feature, exp.func("len", value.copy()), model, *_wrong_length(n)),
        ), name="dbml_a")  # fmt: skip

    def arrow(self, feature, values, model, timezone="UTC"):
        values = plain(values, pa.list_(pa.float64()))
        n = list_element(feature.sql_type)[1]
        if n is None:  # at training, before the length is known: the checked list
            return _arrow_elements(feature, values, model)[0]
        _refuse_null_rows(feature, values, model, f"an array of {n} numbers is needed")
        lengths = _lengths(values)
        wrong = lengths != n
        if wrong.any():
            raise FeatureError(refusal(feature, str(int(lengths[np.argmax(wrong)])), model, *_wrong_length(n)))
        return pa.FixedSizeListArray.from_arrays(_arrow_elements(feature, values, model)[1], n)

    def udf_type(self, feature):
        import duckdb
        from duckdb import sqltypes

        return duckdb.array_type(sqltypes.FLOAT, self.length(feature))

    def check(self, model, feature, profile, options) -> None:
        super().check(model, feature, profile, options)
        p = profile[feature.name]
        if p["min_length"] != p["max_length"]:
            raise FeatureError(
                f"column '{feature.name}' of model '{model}' has arrays of different lengths "
                f"({p['min_length']:,} to {p['max_length']:,}); every row needs the same length: pad or cut them in "
                "the query (list_resize), or use USING lstm or gru, which take sequences of any length"
            )

    def feed(self, feature, values: pa.Array) -> np.ndarray:
        return _fixed(values, self.length(feature))

    def tensor(self, features, columns, profile) -> np.ndarray:
        return _fixed(columns[0], self.length(features[0]))

    def encoder(self, features, profile, options):
        from dbml.kinds.encoders import ArrayEncoder

        p = profile[features[0].name]
        return ArrayEncoder(self.length(features[0]), p["mean"], p["std"], channels=1)


class SequenceKind(_ListKind):
    """Variable-length lists for recurrent networks; ``sql_type`` is FLOAT[L] with L
    the longest row at training (rows keep their last L values, padded in front)."""

    name = "sequence"
    shape = Shape.STEPS  # [L, 2]: values and a "present" channel

    def claim(self, column):
        # the same columns as array (of the same priority): the architecture's shapes choose
        return Claim("FLOAT[]") if list_element(column.sql_type) is not None else None

    def sql(self, feature, column, model):
        from sqlglot import exp, parse_one

        checked = once(column, lambda value: exp.Case(
            ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()),
                        true=refuse(feature, None, model, *_null_row(feature, _A_LIST)))],
            default=_elements(feature, value.copy(), model),
        ), name="dbml_s")  # fmt: skip
        found = list_element(feature.sql_type)
        if found is None or found[1] is None:
            return checked
        return parse_one(f"list_slice(x, -{found[1]}, -1)", read="duckdb").transform(
            lambda node: checked.copy() if isinstance(node, exp.Column) and node.name == "x" else node
        )

    def arrow(self, feature, values, model, timezone="UTC"):
        values = plain(values, pa.list_(pa.float64()))
        _refuse_null_rows(feature, values, model, _A_LIST)
        checked, flat = _arrow_elements(feature, values, model)
        found = list_element(feature.sql_type)
        if found is None or found[1] is None:
            return checked
        # list_slice(x, -L, -1): the last L values of each row
        lengths = _lengths(values)
        kept = np.minimum(lengths, found[1])
        ends = np.cumsum(lengths)
        offsets = np.concatenate([[0], np.cumsum(kept)])
        index = np.repeat(ends - kept - offsets[:-1], kept) + np.arange(offsets[-1])
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat.take(pa.array(index, pa.int64())))

    def udf_type(self, feature):
        import duckdb
        from duckdb import sqltypes

        return duckdb.list_type(sqltypes.FLOAT)

    def feed(self, feature, values: pa.Array) -> np.ndarray:
        return _padded(values, self.length(feature))

    def tensor(self, features, columns, profile) -> np.ndarray:
        return _padded(columns[0], self.length(features[0]))

    def encoder(self, features, profile, options):
        from dbml.kinds.encoders import ArrayEncoder

        p = profile[features[0].name]
        return ArrayEncoder(self.length(features[0]), p["mean"], p["std"], channels=2, instance=bool(options.get("time")))


class CovariateKind(ArrayKind):
    """A forecaster's covariate over a window and its horizon (``sql_type`` FLOAT[n]):
    standardised by the training elements' mean and spread (not each window's own, so a
    price keeps its level), missing elements 0, flattened beside the other inputs
    (:class:`dbml.tasks.forecast.Forecast` names these features; detection never does)."""

    name = "covariate"
    shape = Shape.FLAT

    def claim(self, column):
        return None

    def group_key(self, feature) -> str:
        return "covariate:" + feature.name


def _lengths(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False), np.int64)


def _refuse_null_rows(feature, values: pa.Array, model: str | None, what: str) -> None:
    if values.null_count:
        raise FeatureError(refusal(feature, None, model, *_null_row(feature, what)))


def _arrow_elements(feature, values: pa.Array, model: str | None) -> tuple[pa.Array, pa.Array]:
    """(the column as list<float> the way :func:`_elements` makes it, its elements):
    NULL and NaN elements NULL, infinite or out-of-range ones refused; NULL rows stay NULL."""
    x, nulls = doubles(values.flatten())
    out, missing = finite_floats(feature, x, nulls, model, *_ELEMENT)
    flat = pa.array(out, type=pa.float32(), mask=missing if missing.any() else None)
    offsets = pa.array(np.concatenate([[0], np.cumsum(_lengths(values))]), pa.int32())
    mask = values.is_null() if values.null_count else None
    return pa.ListArray.from_arrays(offsets, flat, mask=mask), flat


def _flat(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(float32 elements with NULL as NaN, offsets) of a list or fixed-size list array."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.null_count:
        raise ValueError("dbml: an array or sequence column is NULL in a row")
    if pa.types.is_fixed_size_list(values.type):
        n, width = len(values), values.type.list_size
        flat = values.flatten()
        offsets = np.arange(0, n * width + 1, width, dtype=np.int64)
    else:
        flat = values.flatten()
        offsets = np.asarray(values.offsets.to_numpy(), dtype=np.int64)
        offsets = offsets - offsets[0]
    flat = pc.fill_null(flat.cast(pa.float32()), float("nan")).to_numpy(zero_copy_only=False)
    return np.asarray(flat, np.float32), offsets


def _fixed(values: pa.Array, n: int) -> np.ndarray:
    flat, offsets = _flat(values)
    rows = len(offsets) - 1
    if flat.size != rows * n or (rows and not np.all(np.diff(offsets) == n)):
        raise ValueError(f"dbml: an array column has rows whose length is not {n}")
    return np.ascontiguousarray(flat.reshape(rows, n))


def _padded(values: pa.Array, n: int) -> np.ndarray:
    """Rows as [N, n]: the last n values of each, NaN-padded in front."""
    flat, offsets = _flat(values)
    rows = len(offsets) - 1
    out = np.full((rows, n), np.nan, np.float32)
    lengths = np.minimum(np.diff(offsets), n)
    if rows:
        ends = offsets[1:]
        # element j of the window of row i is flat[ends[i] - n + j] when that is inside the row
        j = np.arange(n)
        src = ends[:, None] - n + j[None, :]
        inside = j[None, :] >= (n - lengths)[:, None]
        out[inside] = flat[src[inside]]
    return out
