"""What the kinds' Arrow encodings share (:meth:`dbml.kinds.Kind.arrow`): a raw Arrow
column made plain, numbers as DuckDB's ``CAST(x AS DOUBLE)`` gives them, the FLOAT
range check of the SQL encodings, and the refusal of an Arrow type a kind cannot take.

The Arrow encodings give, for engines that are not DuckDB (:func:`dbml.score`,
:mod:`dbml.integrations.spark`), the column each kind's SQL encoding (:meth:`dbml.kinds.Kind.sql`)
gives inside DuckDB, to the float32 bit; tests/kinds/test_kinds_arrow.py runs both over the
same rows. DuckDB's PREDICT keeps the SQL encoding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dbml.errors import FeatureError
from dbml.kinds.common import FLOAT_MAX, refusal

if TYPE_CHECKING:
    from dbml.features import FeatureSpec

__all__ = ["plain", "is_number", "doubles", "finite_floats", "shown_double", "type_error", "NUMBERS"]

NUMBERS = "numbers (an integer, floating-point, decimal or boolean column)"


def plain(values: pa.Array | pa.ChunkedArray, natural: pa.DataType) -> pa.Array:
    """One Arrow array of the column: chunks combined, a dictionary decoded, a column of
    Arrow's null type (all NULL, as pandas and dicts of None give) as ``natural``."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_null(values.type):
        values = pa.nulls(len(values), natural)
    return values


def is_number(t: pa.DataType) -> bool:
    """An Arrow type DuckDB casts to DOUBLE as a number."""
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)


def nulls_of(values: pa.Array) -> np.ndarray:
    if not values.null_count:
        return np.zeros(len(values), dtype=bool)
    return values.is_null().to_numpy(zero_copy_only=False)


def doubles(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, NULL mask) of a number column, as DuckDB's ``CAST(x AS DOUBLE)``.

    Integers round to the nearest double, as C's conversion does. DuckDB's DECIMAL ->
    DOUBLE is correctly rounded, and Arrow's own decimal cast is not (measured on random
    DECIMAL(18,4) values: 72% equal); the decimal's exact text read back by Arrow's
    parser, which rounds correctly, equals DuckDB's in every case measured."""
    t = values.type
    nulls = nulls_of(values)
    if pa.types.is_decimal(t):
        values = pc.cast(pc.cast(values, pa.string()), pa.float64())
    elif pa.types.is_boolean(t):
        values = pc.cast(values, pa.uint8())
    if values.null_count:
        values = pc.fill_null(values, 0)
    return np.asarray(values.to_numpy(zero_copy_only=False)).astype(np.float64, copy=False), nulls


def shown_double(value: float) -> str:
    """A DOUBLE as DuckDB's CAST(... AS VARCHAR) shows the values it refuses (inf, 1e+39)."""
    return repr(float(value))


def finite_floats(feature: FeatureSpec, x: np.ndarray, nulls: np.ndarray, model: str | None, wanted: str,
                  fix: str | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(float32 values, missing mask) of doubles as the SQL encodings make them: NULL
    and NaN missing, |x| <= the largest FLOAT cast to FLOAT (round to nearest), anything
    else (infinite, out of FLOAT's range) refused with the SQL encoding's message."""
    missing = nulls | np.isnan(x)
    with np.errstate(invalid="ignore"):
        bad = ~missing & ~(np.abs(x) <= FLOAT_MAX)
    if bad.any():
        raise FeatureError(refusal(feature, shown_double(x[int(np.argmax(bad))]), model, wanted, fix))
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(np.float32), missing


def type_error(feature: FeatureSpec, shown: str, model: str | None, needs: str) -> FeatureError:
    """The refusal of a column whose type the feature's kind cannot take."""
    of = f" of model '{model}'" if model else ""
    return FeatureError(
        f"column '{feature.name}'{of} has type {shown}, but the model's {feature.kind} feature "
        f"'{feature.name}' (trained as {feature.sql_type}) takes {needs}: cast the column"
    )
