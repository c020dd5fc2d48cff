"""DuckDB's dates and timestamps in numpy: how its Arrow scan reads an Arrow date or
timestamp column, the casts between its types and ``epoch()``, for the datetime kind's
Arrow encoding (days since 1970 as FLOAT, the same bits as its SQL encoding).

Measured on DuckDB 2.0.1 (tests/kinds/test_kinds_arrow.py holds the cases):

* The Arrow scan reads date32 as DATE, date64 as DATE (milliseconds cut toward zero to
  days), naive timestamp[s/ms/us/ns] as TIMESTAMP_S/_MS/TIMESTAMP/TIMESTAMP_NS, and a
  timestamp with a time zone as TIMESTAMPTZ (s and ms scaled to microseconds) or, for
  ns, TIMESTAMPTZ_NS; the zone's name is dropped (a timestamp with a zone is an
  instant). The largest int64 (negated: the smallest but one) is infinity in every
  unit, int32's for DATE.
* A cast to a coarser unit rounds half away from zero, except to DATE, which floors;
  TIMESTAMP_NS -> TIMESTAMP_S is no cast DuckDB has.
* Between an instant (TIMESTAMPTZ) and a wall clock (DATE, TIMESTAMP...) DuckDB uses
  its TimeZone setting; here the ``timezone`` argument. A wall-clock time that a
  change to summer time skips is read with the offset before the change (02:30 becomes
  03:30), one that the change back repeats as its later instant (ICU's defaults).
* ``epoch()`` is microseconds / 1e6 for TIMESTAMP; for TIMESTAMPTZ it is ICU's
  milliseconds / 1000 plus the remaining microseconds / 1e6 (not always the same
  double); TIMESTAMP_S and TIMESTAMP_MS go through TIMESTAMP_NS, so outside
  1677-09-21 .. 2262-04-11 DuckDB stops with a conversion error (refused here);
  TIMESTAMP_NS floors to microseconds.
* A fixed offset as TimeZone: DuckDB (ICU) reads ``GMT+2``, ``GMT-05:30`` and
  ``GMT+0230`` as that offset east of UTC (Java and Spark too), but ``UTC+01:30`` as
  ``Etc/GMT-1``, without its minutes; it refuses ``+02:00`` and ``Z``, which Spark takes.
  Here every such spelling is its offset, and a ``UTC`` one with minutes is refused
  (the two engines would disagree).
* A class target of DATE or TIMESTAMP (``_S``, ``_MS``, ``_NS``) keeps its labels as
  DuckDB's VARCHAR text of them (``2024-01-31``, ``0045-03-15 (BC)``, ``infinity``,
  ``2024-01-31 08:00:00.5``); :func:`label_values` reads them as ``CAST(label AS type)``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "Moments", "read", "encode_days", "check_timezone", "TYPES", "takes", "LABEL_TYPES", "label_values", "label_value",
]  # fmt: skip

INFINITY = 2**63 - 1  # DuckDB's infinite timestamp in every unit; -INFINITY is -infinity
DATE_INFINITY = 2**31 - 1
DAY_US = 86_400 * 10**6
_UNIT = {"s": 10**6, "ms": 10**3, "us": 1}  # microseconds per unit
_NAIVE = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}
_TARGET_NS = {"TIMESTAMP_S": 10**9, "TIMESTAMP_MS": 10**6}  # epoch() of these goes through TIMESTAMP_NS
_UTC = {"UTC", "ETC/UTC", "GMT", "ETC/GMT", "UCT", "ETC/UCT", "ZULU", "ETC/ZULU", "UNIVERSAL", "ETC/UNIVERSAL", "Z",
        "+00:00", "-00:00"}  # fmt: skip
TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")

# fail(mask, reason): refuse the rows of mask (raises when any is set)
Fail = Callable[[np.ndarray, str], None]


@dataclass
class Moments:
    """A column as DuckDB holds it after its Arrow scan.

    Attributes:
        type: DATE, TIMESTAMP_S, TIMESTAMP_MS, TIMESTAMP, TIMESTAMP_NS, TIMESTAMPTZ or TIMESTAMPTZ_NS.
        value: int64 in the type's unit (days for DATE); 0 where NULL or infinite.
        null: NULL rows.
        infinite: rows that are infinity or -infinity.
    """

    type: str
    value: np.ndarray
    null: np.ndarray
    infinite: np.ndarray

    @property
    def live(self) -> np.ndarray:
        return ~self.null & ~self.infinite


def takes(arrow_type: pa.DataType, target: str) -> bool:
    """Whether DuckDB casts a column of this Arrow type to the feature's type."""
    if pa.types.is_date32(arrow_type) or pa.types.is_date64(arrow_type):
        return True
    if not pa.types.is_timestamp(arrow_type):
        return False
    # DuckDB has no cast TIMESTAMP_NS -> TIMESTAMP_S ("Unimplemented type for cast")
    return not (arrow_type.unit == "ns" and arrow_type.tz is None and target == "TIMESTAMP_S")


def check_timezone(timezone: str) -> str:
    """The zone itself when the IANA database has it or it is a fixed offset (``+02:00``,
    ``-05``, ``GMT+2``, ``UTC-05:00``, ``Z``); a ValueError naming it otherwise."""
    try:
        _zone(timezone)
    except _OffsetError as err:
        raise ValueError(f"time zone {timezone!r} {err}") from None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {timezone!r}: give an IANA name such as 'UTC' or 'Europe/Paris', or a fixed offset "
            "such as '+02:00'"
        ) from None
    return timezone


class _OffsetError(ValueError):
    pass


# +h, +hh, +hh:mm, +hhmm, +hh:mm:ss, +hhmmss (Java's ZoneOffset), optionally after GMT, UTC or UT
_OFFSET = re.compile(r"^(GMT|UTC|UT)?([+-])(\d{1,2})(?:(:?)(\d{2})(?:\4(\d{2}))?)?$", re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _zone(timezone: str) -> dt.tzinfo:
    """The tzinfo of a zone name: a fixed offset as ``datetime.timezone``, else the IANA zone."""
    if not isinstance(timezone, str):
        raise TypeError(timezone)
    if timezone.upper() in _UTC:
        return dt.timezone.utc
    m = _OFFSET.match(timezone)
    if m:
        prefix, sign, hours, _, minutes, seconds = m.groups()
        if len(hours) == 1 and minutes and not m.group(4):  # +hmm: neither ICU's nor Java's spelling
            raise ValueError(timezone)
        h, mi, se = int(hours), int(minutes or 0), int(seconds or 0)
        if mi > 59 or se > 59 or h > 23:
            raise _OffsetError("is out of range: an offset has at most 23 hours, 59 minutes and 59 seconds")
        if prefix and prefix.upper() == "UTC" and (mi or se):
            raise _OffsetError(
                f"is ambiguous: DuckDB reads it as {prefix}{sign}{h:02d} (Etc/GMT{'-' if sign == '+' else '+'}{h}), "
                f"dropping the minutes, where Spark reads {sign}{h:02d}:{mi:02d}: write '{sign}{h:02d}:{mi:02d}' or "
                f"'GMT{sign}{h:02d}:{mi:02d}'"
            )
        offset = dt.timedelta(hours=h, minutes=mi, seconds=se)
        return dt.timezone(-offset if sign == "-" else offset)
    return zoneinfo.ZoneInfo(timezone)


# -- class labels of a date or time target ------------------------------------------------

# the Arrow type PREDICT gives for a class target of each type (DuckDB's export of its CAST)
LABEL_TYPES: dict[str, pa.DataType] = {
    "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"), "TIMESTAMP_S": pa.timestamp("s"),
    "TIMESTAMP_MS": pa.timestamp("ms"), "TIMESTAMP_NS": pa.timestamp("ns"),
}  # fmt: skip
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DIGITS = {"TIMESTAMP": 6, "TIMESTAMP_S": 0, "TIMESTAMP_MS": 3, "TIMESTAMP_NS": 9}  # of a second, at most
_DATE_TEXT = re.compile(r"^(\d{4,7})-(\d{2})-(\d{2})( \(BC\))?$")
_TIME_TEXT = re.compile(r"^(\d{4,7})-(\d{2})-(\d{2})( \(BC\))? (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")


def label_values(labels: list[str], sql_type: str) -> pa.Array:
    """``CAST(label AS sql_type)`` of each label text, as DuckDB's Arrow export gives it,
    for the types of :data:`LABEL_TYPES`; only the text DuckDB writes for a value of the
    type (``CAST(x AS VARCHAR)``) is read.

    Raises:
        ValueError: naming the first label that is not such a text.
    """
    t = sql_type.upper()
    arrow = LABEL_TYPES[t]
    values = [label_value(label, t) for label in labels]
    return pa.array(values, pa.int32() if t == "DATE" else pa.int64()).view(arrow)


def label_value(label: str, sql_type: str) -> int:
    """DuckDB's stored integer of one label text (see :func:`label_values`): days since
    1970 for DATE, seconds, milli-, micro- or nanoseconds for the TIMESTAMP types."""
    t = sql_type.upper()
    if t == "DATE":
        if label in ("infinity", "-infinity"):
            return DATE_INFINITY if label == "infinity" else -DATE_INFINITY
        m = _DATE_TEXT.match(label) if isinstance(label, str) else None
        days = _days(*m.groups()) if m else None
        if days is None or not abs(days) < DATE_INFINITY:
            raise ValueError(f"{label!r} is not a DATE as DuckDB writes one (such as '2024-01-31' or '0045-03-15 (BC)')")
        return days
    digits = _DIGITS[t]
    per_second = 10**digits
    if label in ("infinity", "-infinity"):
        return INFINITY if label == "infinity" else -INFINITY
    m = _TIME_TEXT.match(label) if isinstance(label, str) else None
    days = _days(*m.groups()[:4]) if m else None
    hh, mm, ss, fraction = (m.groups()[4:] if m else (None,) * 4)
    if days is None or int(hh) > 23 or int(mm) > 59 or int(ss) > 59 or len(fraction or "") > digits:
        shown = "2024-01-31 08:00:00" + (".25" if digits else "")
        raise ValueError(f"{label!r} is not a {t} as DuckDB writes one (such as '{shown}')")
    value = ((days * 24 + int(hh)) * 60 + int(mm)) * 60 + int(ss)
    value = value * per_second + int((fraction or "").ljust(digits, "0") or 0)
    if not abs(value) < INFINITY:
        raise ValueError(f"{label!r} is beyond the range of {t}")
    return value


def _days(year: str, month: str, day: str, bc: str | None) -> int | None:
    """Days since 1970-01-01 of a proleptic Gregorian date (year 1 BC is year 0), or None."""
    y, m, d = int(year), int(month), int(day)
    if bc:
        if y == 0:
            return None
        y = 1 - y
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if not 1 <= m <= 12 or not 1 <= d <= (29 if m == 2 and leap else _MONTH_DAYS[m - 1]):
        return None
    # days_from_civil (H. Hinnant): exact for every year, negative ones included
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def read(values: pa.Array, fail: Fail) -> Moments:
    """A date32, date64 or timestamp column as DuckDB's Arrow scan reads it."""
    t = values.type
    null = values.is_null().to_numpy(zero_copy_only=False) if values.null_count else np.zeros(len(values), bool)
    if pa.types.is_date32(t):
        raw = _ints(values, pa.int32())
        infinite = np.abs(raw) == DATE_INFINITY
        return Moments("DATE", np.where(infinite, 0, raw), null, infinite & ~null)
    if pa.types.is_date64(t):
        ms = _ints(values, pa.int64())
        days = _toward_zero(ms, 86_400_000)
        # DuckDB wraps days beyond DATE's range into garbage dates; they are refused here
        fail(~null & (np.abs(days) >= DATE_INFINITY), "a date within DATE's range (5877642 BC to 5881580 AD)")
        return Moments("DATE", np.where(np.abs(days) >= DATE_INFINITY, 0, days), null, np.zeros(len(values), bool))
    raw = _ints(values, pa.int64())
    infinite = (np.abs(raw) == INFINITY) & ~null
    raw = np.where(infinite, 0, raw)
    if t.tz is None:
        return Moments(_NAIVE[t.unit], raw, null, infinite)
    if t.unit == "ns":
        return Moments("TIMESTAMPTZ_NS", raw, null, infinite)
    live = ~null & ~infinite
    return Moments("TIMESTAMPTZ", _scaled(raw, _UNIT[t.unit], live, fail, "a time within TIMESTAMPTZ's range"), null, infinite)


def encode_days(m: Moments, target: str, timezone: str, fail: Fail) -> np.ndarray:
    """``epoch(CAST(x AS target)) / 86400.0`` as float64, for the live rows of ``m``
    (infinite rows are the caller's to refuse; NULL rows give 0)."""
    live = m.live
    target = "TIMESTAMPTZ" if target == "TIMESTAMP WITH TIME ZONE" else target
    if target == "DATE":
        days = _to_date(m, timezone, fail)
        return (days * 86_400).astype(np.float64) / 86400.0
    if target == "TIMESTAMPTZ":
        us = _instant_us(m, timezone, fail)
        seconds = np.floor_divide(us, 1000).astype(np.float64) / 1000 + np.mod(us, 1000).astype(np.float64) / 1e6
        return seconds / 86400.0
    if target == "TIMESTAMP_NS":
        ns = _to_ns(m, timezone, fail)
        return np.floor_divide(ns, 1000).astype(np.float64) / 1e6 / 86400.0
    if target == "TIMESTAMP":
        return _wall_us(m, timezone, fail).astype(np.float64) / 1e6 / 86400.0
    # TIMESTAMP_S / TIMESTAMP_MS
    per = _TARGET_NS[target]
    value = _to_coarse(m, target, timezone, fail)
    first, last = "1677-09-21", "2262-04-11"
    fail(live & (np.abs(value) > (INFINITY - 1) // per), f"a time between {first} and {last} (DuckDB's epoch() of {target} "
         "goes through TIMESTAMP_NS and stops outside it)")  # fmt: skip
    value = np.where(live & (np.abs(value) <= (INFINITY - 1) // per), value, 0)
    return (value * (per // 1000)).astype(np.float64) / 1e6 / 86400.0


# -- the casts -------------------------------------------------------------------------


def _to_date(m: Moments, timezone: str, fail: Fail) -> np.ndarray:
    if m.type == "DATE":
        return m.value
    if m.type in ("TIMESTAMPTZ", "TIMESTAMPTZ_NS"):  # TIMESTAMPTZ_NS floors to microseconds here
        us = m.value if m.type == "TIMESTAMPTZ" else np.floor_divide(m.value, 1000)
        return np.floor_divide(_local(us, timezone), DAY_US)
    return np.floor_divide(_naive_us(m, fail), DAY_US)  # through TIMESTAMP (TIMESTAMP_S overflows there)


def _naive_us(m: Moments, fail: Fail) -> np.ndarray:
    """A wall-clock column (DATE, TIMESTAMP_*) as TIMESTAMP microseconds."""
    what = "a time within TIMESTAMP's range (290309 BC to 294247 AD)"
    if m.type == "DATE":
        return _scaled(m.value, DAY_US, m.live, fail, what)
    if m.type == "TIMESTAMP_NS":
        return _round(m.value, 1000)
    unit = {"TIMESTAMP_S": "s", "TIMESTAMP_MS": "ms", "TIMESTAMP": "us"}[m.type]
    return _scaled(m.value, _UNIT[unit], m.live, fail, what)


def _instant_us(m: Moments, timezone: str, fail: Fail) -> np.ndarray:
    """CAST(x AS TIMESTAMPTZ): microseconds since 1970 UTC."""
    if m.type == "TIMESTAMPTZ":
        return m.value
    if m.type == "TIMESTAMPTZ_NS":
        return _round(m.value, 1000)
    return _from_local(_naive_us(m, fail), timezone)


def _wall_us(m: Moments, timezone: str, fail: Fail) -> np.ndarray:
    """CAST(x AS TIMESTAMP): wall-clock microseconds."""
    if m.type in ("TIMESTAMPTZ", "TIMESTAMPTZ_NS"):
        return _local(_instant_us(m, timezone, fail), timezone)
    return _naive_us(m, fail)


def _to_coarse(m: Moments, target: str, timezone: str, fail: Fail) -> np.ndarray:
    """CAST(x AS TIMESTAMP_S or TIMESTAMP_MS), in the target's unit."""
    per = 10**6 if target == "TIMESTAMP_S" else 1000  # microseconds
    if m.type == "DATE":
        return _scaled(m.value, DAY_US // per, m.live, fail, f"a time within {target}'s range")
    if m.type == target:
        return m.value
    if m.type == "TIMESTAMP_S":  # to TIMESTAMP_MS
        return _scaled(m.value, 1000, m.live, fail, f"a time within {target}'s range")
    if m.type == "TIMESTAMP_NS":  # to TIMESTAMP_MS (no cast to TIMESTAMP_S: see takes)
        return _round(m.value, 10**6)
    if m.type == "TIMESTAMP_MS":  # to TIMESTAMP_S
        return _round(m.value, 1000)
    if m.type == "TIMESTAMPTZ_NS":  # the instant's own unit changes: no time zone here
        return _round(m.value, per * 1000)
    return _round(_wall_us(m, timezone, fail), per)


def _to_ns(m: Moments, timezone: str, fail: Fail) -> np.ndarray:
    what = "a time within TIMESTAMP_NS's range (1677-09-21 to 2262-04-11)"
    if m.type == "TIMESTAMP_NS":
        return m.value
    if m.type == "TIMESTAMPTZ_NS":
        offset = _local(np.floor_divide(m.value, 1000), timezone) - np.floor_divide(m.value, 1000)
        return m.value + offset * 1000
    return _scaled(_wall_us(m, timezone, fail), 1000, m.live, fail, what)


# -- arithmetic --------------------------------------------------------------------------


def _ints(values: pa.Array, as_type: pa.DataType) -> np.ndarray:
    raw = values.view(as_type) if values.type.bit_width == as_type.bit_width else values.cast(as_type)
    if raw.null_count:
        raw = pc.fill_null(raw, 0)
    return np.asarray(raw.to_numpy(zero_copy_only=False)).astype(np.int64)


def _round(x: np.ndarray, d: int) -> np.ndarray:
    """x / d rounded half away from zero (DuckDB's cast to a coarser unit)."""
    q, r = np.divmod(np.abs(x), d)
    q = q + (2 * r >= d)
    return np.where(x < 0, -q, q)


def _toward_zero(x: np.ndarray, d: int) -> np.ndarray:
    q = np.abs(x) // d
    return np.where(x < 0, -q, q)


def _scaled(x: np.ndarray, factor: int, live: np.ndarray, fail: Fail, what: str) -> np.ndarray:
    """x * factor, refusing the live rows where it leaves int64 (DuckDB's conversion error)."""
    over = live & (np.abs(x) > (INFINITY - 1) // factor)
    fail(over, what)
    return np.where(over | ~live, 0, x) * factor


def _utc(timezone: str) -> bool:
    zone = _zone(timezone)
    return isinstance(zone, dt.timezone) and not zone.utcoffset(None)


def _local(us: np.ndarray, timezone: str) -> np.ndarray:
    """Wall-clock microseconds in ``timezone`` of instants (microseconds since 1970 UTC)."""
    if _utc(timezone) or not len(us):
        return us
    return us + _offsets(us, timezone)


def _from_local(wall: np.ndarray, timezone: str) -> np.ndarray:
    """Instants of wall-clock microseconds in ``timezone``, as ICU reads them: a wall
    time that occurs twice is its later instant; one that a change skips takes the
    offset from before the change."""
    if _utc(timezone) or not len(wall):
        return wall
    wall = np.clip(wall, -(INFINITY - 4 * DAY_US), INFINITY - 4 * DAY_US)
    before = _offsets(wall - DAY_US, timezone)  # the offsets a day either side
    after = _offsets(wall + DAY_US, timezone)
    early, late = wall - before, wall - after
    early_ok = _offsets(early, timezone) == before
    late_ok = _offsets(late, timezone) == after
    return np.where(early_ok & late_ok, np.maximum(early, late), np.where(early_ok, early, np.where(late_ok, late, early)))


# -- time zones ----------------------------------------------------------------------------
# The offsets of a zone come from Python's zoneinfo (the IANA database, with its rule for
# the years after the last listed change, as ICU applies it); Arrow's own conversion stops
# applying summer time after 2037 (measured). A zone's changes are found once per year
# and kept. From 2800 on, years repeat those of 2400 .. 2799 (the 400-year Gregorian
# cycle, with which the weekday rules of summer time repeat; no zone lists changes that
# late); instants before year 2 take year 2's offset (the zone's local mean time).

_YEAR_2 = -62_104_060_800 * 10**6  # 0002-01-01 UTC, in microseconds
_YEAR_2400 = 13_569_465_600 * 10**6
_YEAR_2800 = 26_192_246_400 * 10**6
_CYCLE = 146_097 * DAY_US  # 400 Gregorian years
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_WEEK = 7 * 86_400


def _offsets(us: np.ndarray, timezone: str) -> np.ndarray:
    """The UTC offsets (microseconds) of ``timezone`` at instants (microseconds since 1970 UTC)."""
    zone = _zone(timezone)
    if isinstance(zone, dt.timezone):  # a fixed offset
        return np.full(len(us), int(zone.utcoffset(None) // dt.timedelta(microseconds=1)), np.int64)
    at = np.clip(us, _YEAR_2, None)
    late = at >= _YEAR_2800
    if late.any():
        at = np.where(late, at - ((at - _YEAR_2400) // _CYCLE) * _CYCLE, at)
    years = at.astype("datetime64[us]").astype("datetime64[Y]").astype(np.int64) + 1970
    starts, offsets = [], []
    for year in np.unique(years).tolist():
        for start, offset in _changes(timezone, int(year)):
            starts.append(start)
            offsets.append(offset)
    index = np.searchsorted(np.asarray(starts, np.int64) * 10**6, at, side="right") - 1
    return np.asarray(offsets, np.int64)[index] * 10**6


def _offset(zone: zoneinfo.ZoneInfo, seconds: int) -> int:
    return int((_EPOCH + dt.timedelta(seconds=seconds)).astimezone(zone).utcoffset().total_seconds())


def _seconds(year: int) -> int:
    return int((dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc) - _EPOCH).total_seconds())


@functools.lru_cache(maxsize=8192)
def _changes(timezone: str, year: int) -> tuple[tuple[int, int], ...]:
    """(second since 1970 UTC, offset in seconds from then on) at the start of ``year``
    and at each change of the zone's offset within it."""
    zone = zoneinfo.ZoneInfo(timezone)
    start, end = _seconds(year), _seconds(year + 1)
    out = [(start, _offset(zone, start))]
    t = start
    while t < end:
        step = min(t + _WEEK, end)
        if _offset(zone, step) == out[-1][1]:
            t = step
            continue
        lo, hi = t, step  # the offset is out[-1][1] at lo, another at hi: find the change
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _offset(zone, mid) == out[-1][1] else (lo, mid)
        out.append((hi, _offset(zone, hi)))
        t = hi
    return tuple(out)
