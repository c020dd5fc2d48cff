"""The Arrow encoding of every kind against its SQL encoding in DuckDB, over the same
rows: DuckDB runs ``feature_sql`` on a table made from an Arrow table, dbml runs
``feature_arrow`` on that Arrow table, and the encoded columns must be equal (float32
values bit for bit, NULLs in the same rows), or both must refuse the rows (with the same
dbml message where DuckDB's refusal is dbml's own ``error()``)."""

from __future__ import annotations

import datetime as dt
import decimal
import re

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from sqlglot import exp

from dbml.errors import FeatureError
from dbml.features import FeatureSpec, feature_arrow, feature_sql

MODEL = "m"
INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def duck():
    con = duckdb.connect()
    yield con
    con.close()


def duck_encode(con, feature: FeatureSpec, column: pa.Array, timezone: str = "UTC"):
    """The encoded column DuckDB's SQL gives, or ('error', message)."""
    con.execute(f"SET TimeZone = '{timezone}'")
    source = pa.table({feature.name: column})
    con.register("arrow_source", source)
    sql = feature_sql(feature, exp.column(feature.name, quoted=True), MODEL).sql(dialect="duckdb")
    try:  # the Arrow scan itself refuses some values (an overflow to microseconds)
        con.execute("CREATE OR REPLACE TEMP TABLE source AS SELECT * FROM arrow_source")
        return con.sql(f"SELECT {sql} AS v FROM source").arrow().read_all().column(0).combine_chunks()
    except duckdb.Error as err:
        return "error", str(err)
    finally:
        try:
            con.unregister("arrow_source")
        except duckdb.Error:  # a database a FATAL error ended
            pass


def arrow_encode(feature: FeatureSpec, column: pa.Array, timezone: str = "UTC"):
    try:
        return feature_arrow(feature, column, MODEL, timezone)
    except FeatureError as err:
        return "error", str(err)


def _floats(a: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(bit patterns with NULL rows 0, NULL mask) of a float32 or float64 array."""
    nulls = a.is_null().to_numpy(zero_copy_only=False)
    values = a.fill_null(0).to_numpy(zero_copy_only=False)
    bits = values.view(np.uint32 if values.dtype == np.float32 else np.uint64).copy()
    bits[nulls] = 0
    return bits, nulls


def assert_same(got, want, what: str) -> None:
    if isinstance(want, tuple) or isinstance(got, tuple):
        assert isinstance(got, tuple) and isinstance(want, tuple), f"{what}: DuckDB gave {want!r:.300}, Arrow {got!r:.300}"
        if "dbml:" in want[1]:  # dbml's own error(): the same message
            assert got[1] in want[1], f"{what}: {got[1]!r} is not DuckDB's {want[1]!r}"
        return
    assert len(got) == len(want), what
    t = want.type
    if pa.types.is_floating(t):
        assert got.type == t, f"{what}: type {got.type}, DuckDB's {t}"
        gb, gn = _floats(got)
        wb, wn = _floats(want)
        assert (gn == wn).all(), f"{what}: NULLs differ in rows {np.flatnonzero(gn != wn)[:10]}"
        bad = np.flatnonzero(gb != wb)
        assert not len(bad), f"{what}: {len(bad)} rows differ, first {bad[:5]}: {got.take(bad[:5])} vs {want.take(bad[:5])}"
    elif pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        assert got.to_pylist() is not None
        assert (got.is_null().to_pylist()) == want.is_null().to_pylist(), what
        lengths = lambda a: [None if v is None else len(v) for v in a.to_pylist()]  # noqa: E731
        assert lengths(got) == lengths(want), what
        assert pa.types.is_fixed_size_list(got.type) == pa.types.is_fixed_size_list(t), f"{what}: {got.type} vs {t}"
        assert_same(got.flatten(), want.flatten(), what + " (elements)")
    else:
        assert got.cast(pa.string()).to_pylist() == want.cast(pa.string()).to_pylist(), what


def check(con, feature: FeatureSpec, column: pa.Array, timezone: str = "UTC", duck_column: pa.Array | None = None):
    """Both encodings of ``column``; ``duck_column``: the same values in a type DuckDB
    reads, for Arrow types it does not (float16, decimal256)."""
    want = duck_encode(con, feature, column if duck_column is None else duck_column, timezone)
    got = arrow_encode(feature, column, timezone)
    assert_same(got, want, f"{feature} on {column.type} (TimeZone {timezone})")
    return got


# -- numbers -----------------------------------------------------------------------------

FLOAT_MAX = float(np.finfo(np.float32).max)
_rng = np.random.default_rng(7)


def _doubles() -> list[float]:
    """Doubles at the edges of FLOAT: its largest value and the doubles next to it that
    still round to it, tiny and subnormal values, signed zeros, NaN, and random values of
    every magnitude."""
    edges = [0.0, -0.0, 1.0, -1.5, FLOAT_MAX, -FLOAT_MAX, np.nextafter(FLOAT_MAX, 0), 1e-45, 1.4e-45, 7e-46, 1e-40, -1e-39,
             1e-310, 2.0**-149, 2.0**-150, 2.0**-150 * 1.0000001, 0.1, 1 / 3, 16777217.0, 2.0**60 + 1, float("nan")]  # fmt: skip
    rand = (_rng.standard_normal(3000) * 10.0 ** _rng.integers(-44, 38, 3000)).tolist()
    return edges + rand


def test_numbers_of_every_float_width(duck):
    f = FeatureSpec("x", "numeric", "DOUBLE")
    values = _doubles() + [None]
    check(duck, f, pa.array(values, pa.float64()))
    f32 = pa.array(values, pa.float64()).cast(pa.float32(), safe=False)
    check(duck, f, f32)
    # DuckDB has no Arrow float16: it reads the same values widened to float32 (exact)
    f16 = pa.array(np.array([0, -0.0, 1.5, 65504, -65504, 6e-8, np.nan, 1000.5], np.float16))
    check(duck, f, f16, duck_column=f16.cast(pa.float32()))


@pytest.mark.parametrize("arrow_type", [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
                                        pa.uint64()])  # fmt: skip
def test_integers_of_every_width(duck, arrow_type):
    info = np.iinfo(arrow_type.to_pandas_dtype())
    lo, hi = int(info.min), int(info.max)
    values = [lo, hi, 0, 1, lo + 1, hi - 1, None, 2**24 + 1 if hi > 2**24 else hi // 3, 2**53 + 1 if hi > 2**53 else hi // 7]
    values += _rng.integers(lo, hi, 500, dtype=np.int64 if lo < 0 else np.uint64, endpoint=True).tolist()
    for f in (FeatureSpec("x", "numeric", "BIGINT"), FeatureSpec("x", "numeric", "DOUBLE", onnx_input="x")):
        check(duck, f, pa.array(values, arrow_type))


def _decimals(precision: int, scale: int, n: int = 1500) -> list[decimal.Decimal | None]:
    with decimal.localcontext(prec=80):
        return _decimal_values(precision, scale, n)


def _decimal_values(precision: int, scale: int, n: int) -> list[decimal.Decimal | None]:
    rng = np.random.default_rng(precision * 100 + scale)
    out: list[decimal.Decimal | None] = [None, decimal.Decimal(0), decimal.Decimal(10**precision - 1).scaleb(-scale),
                                         decimal.Decimal(-(10**precision - 1)).scaleb(-scale)]  # fmt: skip
    for _ in range(n):
        digits = int(rng.integers(1, precision + 1))
        unscaled = int(rng.integers(0, 10**min(digits, 18))) * 10 ** max(0, digits - 18) + int(rng.integers(0, 10**min(digits, 18)))
        unscaled = min(unscaled, 10**precision - 1) * (1 if rng.random() < 0.5 else -1)
        out.append(decimal.Decimal(unscaled).scaleb(-scale))
    return out


@pytest.mark.parametrize("precision,scale", [(5, 2), (9, 0), (18, 4), (18, 17), (19, 3), (30, 5), (38, 10), (38, 37)])
def test_decimals_round_as_duckdb_does(duck, precision, scale):
    values = _decimals(precision, scale)
    for f in (FeatureSpec("x", "numeric", f"DECIMAL({precision},{scale})"), FeatureSpec("x", "numeric", "DOUBLE", onnx_input="x")):
        check(duck, f, pa.array(values, pa.decimal128(precision, scale)))
        # DuckDB reads no decimal256: it reads the same values as decimal128
        wide = pa.array(values, pa.decimal256(precision, scale))
        check(duck, f, wide, duck_column=pa.array(values, pa.decimal128(precision, scale)))


def test_booleans_as_numbers_and_as_booleans(duck):
    column = pa.array([True, False, None, True])
    check(duck, FeatureSpec("x", "numeric", "INTEGER"), column)
    check(duck, FeatureSpec("x", "boolean", "BOOLEAN"), column)
    for t in (pa.int8(), pa.int64(), pa.uint16()):
        check(duck, FeatureSpec("x", "boolean", "BOOLEAN"), pa.array([0, 1, 2, None, 100], t))


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), 1e39, -3.5e38, np.nextafter(FLOAT_MAX, np.inf),
                                   FLOAT_MAX * (1 + 2**-25)])  # fmt: skip
def test_numbers_refused_alike(duck, value):
    got = check(duck, FeatureSpec("x", "numeric", "DOUBLE"), pa.array([1.0, value, None]))
    assert isinstance(got, tuple) and "column 'x' of model 'm' has the value" in got[1]


def test_imported_numbers_pass_infinity(duck):
    """An imported model's numeric input is a plain CAST to DOUBLE: nothing is refused."""
    check(duck, FeatureSpec("x", "numeric", "DOUBLE", onnx_input="x"), pa.array([float("inf"), -1e300, float("nan"), None, 2.5]))


# -- text ----------------------------------------------------------------------------------


def test_text_of_every_string_type(duck):
    values = ["a", "", None, "Ünïcødé", "x" * 300, "with 'quote'", "tab\tnew\nline", "a"]
    f = FeatureSpec("plan", "category", "VARCHAR")
    for column in (pa.array(values, pa.string()), pa.array(values, pa.large_string()), pa.array(values, pa.string_view()),
                   pa.array(values).dictionary_encode(), pa.array(values, pa.large_string()).dictionary_encode()):  # fmt: skip
        check(duck, f, column)
    check(duck, f, pa.array([-5, 0, None, 2**63 - 1], pa.int64()))
    check(duck, f, pa.array([True, None, False]))
    check(duck, f, pa.array([None, None], pa.null()))


# -- dates and times ---------------------------------------------------------------------

TARGETS = ["DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"]
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
US = {"s": 10**6, "ms": 10**3, "us": 1}


def _instants_us() -> np.ndarray:
    """Microseconds since 1970 inside TIMESTAMP_NS's range (1677-09-22 .. 2262-04-10),
    crowded at the edges of units and around changes of clocks."""
    points = [0, dt.datetime(2024, 3, 10, 7, 0), dt.datetime(2024, 11, 3, 6, 0), dt.datetime(2024, 10, 6, 15, 30),
              dt.datetime(2024, 4, 6, 15, 0), dt.datetime(1800, 1, 1), dt.datetime(1883, 11, 18, 17, 0), dt.datetime(1677, 9, 23),
              dt.datetime(2262, 4, 10), dt.datetime(1969, 12, 31, 23, 59, 59), dt.datetime(2038, 1, 19, 3, 14, 8),
              # wall clocks that summer time skips or repeats (New York, Lord Howe), far ahead too
              dt.datetime(2024, 3, 10, 2, 30), dt.datetime(2024, 11, 3, 1, 30), dt.datetime(2024, 10, 6, 2, 15),
              dt.datetime(2024, 4, 7, 1, 45), dt.datetime(2150, 3, 8, 2, 30), dt.datetime(1883, 11, 18, 12, 3, 58)]  # fmt: skip
    epoch = dt.datetime(1970, 1, 1)
    base = [p if isinstance(p, int) else int((p - epoch) / dt.timedelta(microseconds=1)) for p in points]
    deltas = [0, 1, -1, 499, 500, 501, -499, -500, -501, 999, -999, 500_000, -500_000, 499_999, -500_001, 3_600_000_000,
              -3_600_000_000, 1_800_000_000, -1_800_000_000, 86_400_000_000 - 1, -86_400_000_000 + 1]  # fmt: skip
    edges = [b + d for b in base for d in deltas]
    lo, hi = -9_200_000_000_000_000, 9_200_000_000_000_000
    rand = _rng.integers(lo, hi, 400).tolist() + _rng.integers(-10**12, 10**12, 200).tolist()
    return np.array(edges + rand, dtype=np.int64)


def _columns() -> dict[str, pa.Array]:
    """The same instants as every Arrow date and time type (a NULL in each)."""
    us = _instants_us()
    ns = us * 1000 + _rng.integers(-999, 1000, len(us))
    ns[: len(us) // 2] = us[: len(us) // 2] * 1000 + np.tile([0, 1, -1, 500, -500, 499, -501], len(us))[: len(us) // 2]
    mask = np.zeros(len(us), bool)
    mask[3] = True
    out = {}
    for tz in (None, "UTC", "Asia/Tokyo"):
        for unit, scale in (("s", 10**6), ("ms", 10**3), ("us", 1)):
            values = np.floor_divide(us, scale) + (us % 7 == 0) * (us % scale != 0)
            out[f"{unit}/{tz}"] = pa.array(values, pa.timestamp(unit, tz), mask=mask)
        out[f"ns/{tz}"] = pa.array(ns, pa.timestamp("ns", tz), mask=mask)
    days = np.floor_divide(us, 86_400_000_000)
    out["date32"] = pa.array(days.astype(np.int32), pa.date32(), mask=mask)
    out["date64"] = pa.array(np.floor_divide(us, 1000) + (us % 3 == 0) * 7, pa.date64(), mask=mask)  # not whole days
    return out


_COLUMNS = _columns()


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("target", TARGETS)
def test_times_of_every_arrow_type(duck, target, zone):
    f = FeatureSpec("t", "datetime", target)
    for name, column in _COLUMNS.items():
        if name.startswith("ns/None") and target == "TIMESTAMP_S":
            continue  # DuckDB has no such cast: test_times_refused_alike
        check(duck, f, column, zone)


def _wide() -> dict[str, pa.Array]:
    """Values beyond TIMESTAMP_NS's range that TIMESTAMP still holds (years -290000 .. 294000)."""
    us = np.concatenate([_rng.integers(-9_000_000_000_000_000_000, 9_000_000_000_000_000_000, 300),
                         np.array([-(10**17), 10**17, -62135596800000000, 253402300799999999])])  # fmt: skip
    out = {f"{u}/{tz}": pa.array(np.floor_divide(us, US[u]) + (u != "us"), pa.timestamp(u, tz)) for u in US for tz in (None, "UTC")}
    out["date32"] = pa.array(np.floor_divide(us, 86_400_000_000).astype(np.int32), pa.date32())
    return out


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
@pytest.mark.parametrize("target", ["DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"])
def test_times_beyond_nanoseconds(duck, target, zone):
    f = FeatureSpec("t", "datetime", target)
    for column in _wide().values():
        check(duck, f, column, zone)


_REFUSED = [
    ("infinity", pa.array([0, INT64_MAX], pa.timestamp("us"))),
    ("-infinity", pa.array([0, -INT64_MAX], pa.timestamp("ms", "UTC"))),
    ("infinity", pa.array([INT64_MAX, None], pa.timestamp("ns"))),
    ("infinity", pa.array([INT64_MAX], pa.timestamp("s"))),
    ("infinity", pa.array([2**31 - 1], pa.date32())),
    ("-infinity", pa.array([-(2**31 - 1)], pa.date32())),
    ("year 3000", pa.array([dt.date(3000, 1, 1)], pa.date32())),
    ("year 1000", pa.array([dt.datetime(1000, 1, 1)], pa.timestamp("us"))),
    ("far date", pa.array([2**31 - 2], pa.date32())),
    ("far seconds", pa.array([2**62], pa.timestamp("s"))),
    ("far seconds with a zone", pa.array([2**62], pa.timestamp("s", "UTC"))),
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name,column", _REFUSED, ids=[n for n, _ in _REFUSED])
def test_times_refused_alike(target, name, column):
    """Infinite values and values outside what the cast or epoch() takes: DuckDB stops
    the query, and so does the Arrow encoding (for infinities with dbml's own message);
    what DuckDB still encodes, both encode the same."""
    # a fresh database each time: CAST(TIMESTAMP_S 2**62 AS TIMESTAMPTZ) is a FATAL error in
    # DuckDB 2.0.1 ("Unrecognized type for ConvertToString INT64"), which ends the database
    con = duckdb.connect()
    f = FeatureSpec("t", "datetime", target)
    got = check(con, f, column)
    con.close()
    if name.endswith("infinity") and f.kind and (column.type.tz is None if pa.types.is_timestamp(column.type) else True) \
            and not (target == "TIMESTAMP_S" and column.type == pa.timestamp("ns")):  # fmt: skip
        assert isinstance(got, tuple) and f"has the value {name}, not a finite date or time" in got[1]


def test_nanoseconds_to_seconds_is_no_cast(duck):
    f = FeatureSpec("t", "datetime", "TIMESTAMP_S")
    column = pa.array([1], pa.timestamp("ns"))
    assert isinstance(duck_encode(duck, f, column), tuple)
    with pytest.raises(FeatureError, match=r"column 't' of model 'm' has type timestamp\[ns\].*trained as TIMESTAMP_S"):
        feature_arrow(f, column, MODEL)


def test_date64_beyond_dates_is_refused():
    """DuckDB wraps date64 values beyond DATE's range into other dates (measured:
    int64's largest millisecond reads as 1701533-04-06 BC); the Arrow encoding refuses them."""
    with pytest.raises(FeatureError, match=r"column 't' of model 'm' has the value .* within DATE's range"):
        feature_arrow(FeatureSpec("t", "datetime", "DATE"), pa.array([INT64_MAX], pa.date64()), MODEL)


# -- arrays and sequences -------------------------------------------------------------------


def _lists(n: int | None, element: pa.DataType, rows: int = 200) -> list:
    rng = np.random.default_rng(3)
    out = []
    for i in range(rows):
        length = n if n is not None else int(rng.integers(0, 9))
        row = [float(v) for v in rng.standard_normal(length) * 10.0 ** rng.integers(-40, 38)]
        if pa.types.is_integer(element):
            row = [int(v) % 100 for v in rng.integers(-1000, 1000, length)]
        if length and i % 5 == 0:
            row[0] = None
        if length > 1 and i % 7 == 0 and pa.types.is_floating(element):
            row[1] = float("nan")
        out.append(row)
    return out


@pytest.mark.parametrize("element", [pa.float64(), pa.float32(), pa.int16(), pa.uint64(), pa.decimal128(10, 3)])
def test_arrays_of_every_list_type(duck, element):
    f = FeatureSpec("a", "array", "FLOAT[4]")
    rows = _lists(4, element)
    if pa.types.is_decimal(element):
        rows = [[None if v is None or v != v else decimal.Decimal(v % 1000).quantize(decimal.Decimal("0.001")) for v in r] for r in rows]
    if pa.types.is_float32(element):
        rows = [[v if v is None or abs(v) < FLOAT_MAX else 1.0 for v in r] for r in rows]
    for column in (pa.array(rows, pa.list_(element)), pa.array(rows, pa.large_list(element)), pa.array(rows, pa.list_(element, 4))):
        check(duck, f, column)
        check(duck, FeatureSpec("a", "array", "FLOAT[]"), column)  # at training, before the length is known


@pytest.mark.parametrize("length", [None, 3, 12])
def test_sequences_keep_their_last_values(duck, length):
    f = FeatureSpec("s", "sequence", "FLOAT[]" if length is None else f"FLOAT[{length}]")
    rows = _lists(None, pa.float64()) + [[]]
    for column in (pa.array(rows, pa.list_(pa.float64())), pa.array(rows, pa.large_list(pa.float64())),
                   pa.array([r[:4] + [0.0] * (4 - len(r[:4])) for r in rows], pa.list_(pa.float64(), 4))):  # fmt: skip
        check(duck, f, column)
        check(duck, f, column.slice(7, 50))


@pytest.mark.parametrize("kind,sql_type", [("array", "FLOAT[3]"), ("sequence", "FLOAT[5]")])
@pytest.mark.parametrize("rows", [[[1.0, 2.0, 3.0], None], [[1.0, float("inf"), 2.0]], [[1.0, -1e39, 2.0]], [[1.0, 2.0]],
                                  [[1.0, 2.0, 3.0, 4.0]]])  # fmt: skip
def test_arrays_refused_alike(duck, kind, sql_type, rows):
    check(duck, FeatureSpec("a", kind, sql_type), pa.array(rows, pa.list_(pa.float64())))


# -- types no kind takes -----------------------------------------------------------------------


@pytest.mark.parametrize("feature,column,needs", [
    (FeatureSpec("age", "numeric", "INTEGER"), pa.array(["1"]), "numbers"),
    (FeatureSpec("age", "numeric", "INTEGER"), pa.array([dt.date(2024, 1, 1)]), "numbers"),
    (FeatureSpec("member", "boolean", "BOOLEAN"), pa.array([1.5]), "booleans"),
    (FeatureSpec("seen", "datetime", "TIMESTAMP"), pa.array(["2024-01-01"]), "dates or timestamps"),
    (FeatureSpec("plan", "category", "VARCHAR"), pa.array([1.5]), "text"),
    (FeatureSpec("pixels", "array", "FLOAT[2]"), pa.array([["a", "b"]]), "lists of numbers"),
    (FeatureSpec("history", "sequence", "FLOAT[2]"), pa.array([1.0]), "lists of numbers"),
])  # fmt: skip
def test_a_type_the_kind_cannot_take(feature, column, needs):
    wanted = f"column '{feature.name}' of model 'm' has type {column.type}, but the model's {feature.kind} feature " \
             f"'{feature.name}' (trained as {feature.sql_type}) takes {needs}"  # fmt: skip
    with pytest.raises(FeatureError, match=re.escape(wanted)):
        feature_arrow(feature, column, MODEL)


def test_all_null_columns_of_the_null_type(duck):
    column = pa.array([None, None], pa.null())
    for f in (FeatureSpec("x", "numeric", "DOUBLE"), FeatureSpec("x", "boolean", "BOOLEAN"), FeatureSpec("x", "datetime", "DATE"),
              FeatureSpec("x", "category", "VARCHAR")):  # fmt: skip
        check(duck, f, column)
