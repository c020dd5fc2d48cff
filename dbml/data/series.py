"""Time series for forecasters: the checks of a series, its step, the training windows
(built by DuckDB with window functions and list aggregation), the series' ends, the times
that follow them, the rolling of a forecast beyond the trained horizon and the
split-conformal intervals. FORECAST MODEL itself is a statement.

A forecaster reads a window of the target's last ``window`` values (the feature
``history``, a sequence) and gives the next ``horizon`` values (the graph output
``forecast``). Each window is scaled by its own mean and spread inside the graph, so
series of any level share one network. Nothing here imports torch.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from statistics import NormalDist
from typing import Any

import duckdb
import numpy as np

from dbml.errors import DbmlError, FeatureError, RecordError, TargetError
from dbml.kinds.common import FLOAT_MAX
from dbml.sqltext import quote as _q

__all__ = ["Series", "series_facts", "check_series", "describe_series", "windows_sql", "last_windows", "ends", "season_length",
           "stored_starts", "key_type", "plain_key", "time_sql", "roll", "scales_of", "half_widths", "conformal", "HISTORY",
           "MAX_AUTO_WINDOW", "LEVELS", "TIME_TYPES", "INT_TYPES"]

HISTORY = "history"  # the forecaster's one feature: the window of past values
TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")  # a period number
_NAMED = {3_600_000_000: "hourly", 86_400_000_000: "daily", 604_800_000_000: "weekly"}
_SEASON = {"hourly": 24, "daily": 7, "weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}
MAX_STORED_SERIES_BYTES = 512 * 1024
MAX_AUTO_WINDOW = max(8, 2 * max(_SEASON.values()))  # the longest window window = 0 picks
# a series key is one of these types (an ENUM is read as its text); DECIMAL(p,s) too
_KEY_TYPES = ("BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
              "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "VARCHAR", *TIME_TYPES)
# the confidence levels whose split-conformal half-widths a version keeps, per step (others interpolate)
LEVELS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999)


class Series:
    """What the planner learnt of the series of a source: each series' step and, where
    the facts pass read them, its end (``ends``: key -> (last time, last values)) and its
    scale (``scales``, the size of its changes, which its interval half-widths are in units of)."""

    def __init__(self, time: str, time_type: str, keys: list[str], target: str, steps: dict[tuple, dict[str, Any]],
                 ends: dict[tuple, tuple[Any, list[float]]] | None = None, scales: dict[tuple, float | None] | None = None,
                 covariates: list[str] | None = None):  # fmt: skip
        self.time, self.time_type, self.keys, self.target, self.steps = time, time_type, keys, target, steps
        self.ends = ends or {}
        self.scales = scales or {}  # key -> the series' mean absolute change from one value to the next
        self.covariates = list(covariates or [])  # known covariates: each window reads them over window + horizon


def season_length(frequency: str) -> int:
    return _SEASON.get(frequency, 1)


def _frequency(step: dict[str, Any]) -> str:
    if step["unit"] == "months":
        return {1: "monthly", 3: "quarterly", 12: "yearly"}.get(step["n"], f"every {step['n']} months")
    if step["unit"] == "micros":
        return _NAMED.get(step["n"], f"every {step['n'] / 1e6:g} seconds")
    return f"every {step['n']}"


def _keys_sql(keys: list[str], alias: str = "") -> str:
    return ", ".join(f"{alias}{_q(k)}" for k in keys)


def key_type(sql_type: str | None) -> str | None:
    """The type a series key keeps (a version stores it, FORECAST casts its keys back to
    it): a number, a boolean, a text (an ENUM's is its text), a DATE or a TIMESTAMP;
    None for any other type (a list, a struct, ...), which a key cannot be."""
    t = re.sub(r"\s+", " ", str(sql_type or "").strip().upper())
    if t in _KEY_TYPES:
        return t
    if re.fullmatch(r"DECIMAL\(\d{1,2}, ?\d{1,2}\)", t):
        return t.replace(" ", "")
    if t.startswith("ENUM(") or re.fullmatch(r"VARCHAR\(\d+\)", t):
        return "VARCHAR"
    return None


def plain_key(value: Any) -> Any:
    """A series key's value as JSON keeps it (a version's ``series_end``): numbers, text,
    booleans and NULL as they are; a date, a time or a DECIMAL as its text, which
    FORECAST casts back to the key's type (:func:`key_type`)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return str(value)


def series_facts(con, source_sql: str, params, model: str, time: str, keys: list[str], target: str,
                 types: dict[str, str], last: int = 0) -> dict[str, Any]:  # fmt: skip
    """The facts pass of a forecaster: one query over ``source_sql`` that gives, per
    series (in key order), its rows, its steps, its values, its NULL times, its first
    time with more than one row, its last time and its last ``last`` values.

    Raises:
        FeatureError: a time or key column of a type a forecaster cannot take (before any query).
    """
    time_type = types[time].upper()
    if time_type not in TIME_TYPES and time_type not in INT_TYPES:
        raise FeatureError(
            f"time column '{time}' of model '{model}' has type {types[time]}; a forecaster's time is a DATE, a TIMESTAMP "
            "or an integer (a period number)"
        )
    for k in keys:  # a key a version keeps (as JSON) and FORECAST gives back in its type
        if key_type(types[k]) is None:
            raise FeatureError(
                f"series key column '{k}' of model '{model}' has type {types[k]}; a series key is a number, a text, a "
                f"boolean, a DATE or a TIMESTAMP: cast it (SELECT CAST({_q(k)} AS VARCHAR) AS {_q(k)}, ...)"
            )
    t, part = _q(time), _keys_sql(keys)
    by = f"PARTITION BY {part} " if keys else ""
    group = f"{part}, " if keys else ""
    if time_type in INT_TYPES:
        diff, months = f"({t} - __dbml_prev)", "NULL"
        month_ok = "FALSE"
    else:
        diff = f"(epoch_us(CAST({t} AS TIMESTAMP)) - epoch_us(CAST(__dbml_prev AS TIMESTAMP)))"
        months = f"date_diff('month', CAST(__dbml_prev AS TIMESTAMP), CAST({t} AS TIMESTAMP))"
        month_ok = f"CAST(__dbml_prev AS TIMESTAMP) + to_months(CAST({months} AS INTEGER)) = CAST({t} AS TIMESTAMP)"
    month_end = "FALSE" if time_type in INT_TYPES else f"CAST({t} AS DATE) = last_day(CAST({t} AS DATE))"
    ends = f"max_by({{'v': CAST({_q(target)} AS DOUBLE)}}, {t}, {int(last)})" if last > 0 else "NULL"
    # the last time as DuckDB writes it (a time past Python's year 9999 too); FORECAST casts it back
    end = f"max({t})" if time_type in INT_TYPES else f"CAST(max({t}) AS VARCHAR)"
    # a value a FLOAT cannot hold (infinite, or past FLOAT's range); NaN is a missing value
    y = f"CAST({_q(target)} AS DOUBLE)"
    huge = f"NOT isnan({y}) AND abs({y}) > {FLOAT_MAX!r}"
    try:
        rows = con.execute(
            f"SELECT {group}count(*), count(DISTINCT __dbml_d), min(__dbml_d), count(DISTINCT __dbml_m), min(__dbml_m), "
            f"bool_and(__dbml_mok), bool_and(__dbml_mend), count({_q(target)}), count(*) FILTER (WHERE {t} IS NULL), "
            f"min({t}) FILTER (WHERE __dbml_k > 1), arg_min(__dbml_k, {t}) FILTER (WHERE __dbml_k > 1), {end}, "
            f"count(*) FILTER (WHERE {huge}), CAST(min({t}) FILTER (WHERE {huge}) AS VARCHAR), "
            f"arg_min({y}, {t}) FILTER (WHERE {huge}), fsum(abs({y} - __dbml_py)) FILTER (WHERE NOT isnan({y} - __dbml_py)), "
            f"count(*) FILTER (WHERE NOT isnan({y} - __dbml_py)), "
            f"{ends} FROM ("
            f"SELECT *, {diff} AS __dbml_d, {months} AS __dbml_m, {month_ok} AS __dbml_mok, {month_end} AS __dbml_mend FROM ("
            f"SELECT *, lag({t}) OVER ({by}ORDER BY {t}) AS __dbml_prev, count(*) OVER (PARTITION BY {group}{t}) AS __dbml_k, "
            f"lag({y}) OVER ({by}ORDER BY {t}) AS __dbml_py "
            f"FROM ({source_sql})) s) w GROUP BY ALL ORDER BY ALL",
            params,
        ).fetchall()  # fmt: skip
    except duckdb.ConversionException:
        if time_type != "DATE":
            raise
        # a DATE past TIMESTAMP's range (years -290308 to 294247), in which the steps are measured
        far = con.execute(f"SELECT CAST({t} AS VARCHAR) FROM ({source_sql}) WHERE {t} IS NOT NULL AND "
                          f"TRY_CAST({t} AS TIMESTAMP) IS NULL LIMIT 1", params).fetchall()  # fmt: skip
        if not far:
            raise
        raise FeatureError(
            f"time column '{time}' of model '{model}' holds {far[0][0]}, past the range of dates a forecaster measures "
            "its steps in (TIMESTAMP's, years -290308 to 294247): leave those rows out or shift the dates"
        ) from None
    out = []
    for row in rows:
        key = tuple(row[: len(keys)])
        n, nd, d, nm, m, mok, mend, values, nulls, dup_at, dup_rows, end, huge, huge_at, huge_value, change, changes, tail = row[len(keys) :]
        # the mean absolute change, to 12 digits: a sum over threads may differ in its last bits from run to run
        scale = float(f"{change / changes:.12g}") if changes and change is not None and math.isfinite(change) else None
        history = [float("nan") if v["v"] is None else float(v["v"]) for v in reversed(tail)] if tail else []
        out.append({"key": key, "rows": n, "steps": (nd, d, nm, m, mok, mend), "values": values, "null_times": nulls,
                    "duplicate": (dup_at, dup_rows) if dup_at is not None else None, "last": end, "history": history,
                    "huge": (huge, huge_at, huge_value) if huge else None, "scale": scale})  # fmt: skip
    return {"time": time, "time_type": time_type, "keys": keys, "target": target, "series": out}


def check_series(facts: dict[str, Any], model: str, window: int, horizon: int) -> Series:
    """The :class:`Series` of the facts of :func:`series_facts`, checked.

    Refused, naming the series and the times: a NULL time, two rows at one time in a
    series, an irregular step, a series shorter than ``window + horizon``."""
    time, time_type, keys, target = facts["time"], facts["time_type"], facts["keys"], facts["target"]
    group = f"{_keys_sql(keys)}, " if keys else ""
    nulls = sum(s["null_times"] for s in facts["series"])
    if nulls:
        raise FeatureError(f"time column '{time}' of model '{model}' is NULL in {nulls:,} row(s); every row needs its time")
    dup = next((s for s in facts["series"] if s["duplicate"]), None)
    if dup is not None:
        where = f" of series {dict(zip(keys, dup['key']))}" if keys else ""
        at, count = dup["duplicate"]
        raise FeatureError(
            f"time column '{time}' of model '{model}' has {count} rows at {at}{where}; a series has one row "
            f"per time: aggregate them first (GROUP BY {group}{_q(time)})"
        )
    for s in facts["series"]:
        bad = next((k for k, v in zip(keys, s["key"]) if isinstance(v, float) and not math.isfinite(v)), None)
        if bad is not None:
            raise FeatureError(
                f"series key column '{bad}' of model '{model}' holds {s['key'][keys.index(bad)]}, which names no series a "
                f"version can keep (NaN equals no value; JSON has neither): replace it in the source "
                f"(CASE WHEN isfinite({_q(bad)}) THEN {_q(bad)} END AS {_q(bad)}) or leave those rows out"
            )
    huge = next((s for s in facts["series"] if s["huge"]), None)
    if huge is not None:
        count, at, value = huge["huge"]
        where = f" in series {dict(zip(keys, huge['key']))}" if keys else ""
        raise TargetError(
            f"target column '{target}' of model '{model}' has {count:,} value(s) that are infinite or past FLOAT's range "
            f"(±{FLOAT_MAX:.4g}){where}, the first {value!r} at {at}; a forecaster reads and gives FLOAT values: make them "
            f"missing values (CASE WHEN abs({_q(target)}) <= {FLOAT_MAX:.7g} THEN {_q(target)} END AS {_q(target)}) "
            "or scale the target down"
        )
    steps, ends = {}, {}
    for s in facts["series"]:
        key = s["key"]
        n, values = s["rows"], s["values"]
        nd, d, nm, m, mok, mend = s["steps"]
        name = f"series {dict(zip(keys, key))}" if keys else "the series"
        if n < window + horizon:
            raise FeatureError(
                f"{name} of model '{model}' has {n} rows; a forecaster with window = {window}"
                + (f" and horizon = {horizon}" if horizon else "")
                + f" needs at least {window + horizon}" + (": lower window or horizon, or leave the series out" if horizon else "")
            )
        if values == 0:
            raise FeatureError(f"{name} of model '{model}' has no value of '{target}' that is not NULL; leave it out")
        if nd == 1 and d is not None and d > 0:
            step = {"unit": "micros" if time_type not in INT_TYPES else "integer", "n": int(d)}
        elif time_type not in INT_TYPES and nm == 1 and m and (mok or mend):
            step = {"unit": "months", "n": int(m), **({"month_end": True} if mend and not mok else {})}
        else:
            raise FeatureError(
                f"{name} of model '{model}' has an irregular step in time column '{time}'; a forecaster needs one row "
                "per step (hourly, daily, weekly, monthly, quarterly, ...): fill the gaps (a calendar table and a LEFT JOIN) "
                "or aggregate to a coarser step"
            )
        step["frequency"] = _frequency(step)
        steps[key] = step
        if s["history"]:
            ends[key] = (s["last"], s["history"])
    scales = {s["key"]: s["scale"] for s in facts["series"]}
    return Series(time, time_type, keys, target, steps, ends, scales)


def describe_series(con, source_sql: str, params, model: str, time: str, keys: list[str], target: str,
                    types: dict[str, str], window: int, horizon: int) -> Series:  # fmt: skip
    """Check the series of ``source_sql`` and find each one's step, in one pass that also
    reads each series' last ``window`` values (what :func:`last_windows` gives).

    Refused, naming the series and the times: a NULL time, two rows at one time in a
    series, an irregular step, a series shorter than ``window + horizon``."""
    facts = series_facts(con, source_sql, params, model, time, keys, target, types, last=window)
    return check_series(facts, model, window, horizon)


def windows_sql(source_sql: str, s: Series, window: int, horizon: int, carry: dict[str, str] | None = None) -> str:
    """One row per complete window: ``history`` (the last ``window`` values, DOUBLE[]),
    ``__dbml_future__`` (the next ``horizon``), ``__dbml_order__`` (the window's end
    time, as a number) and ``__dbml_series__`` (a series number), for the split by time;
    and each of the series' covariates under its own name, over the window and the
    horizon (``window + horizon`` values, DOUBLE[]; a NULL is a missing value).

    ``carry``: {column: window aggregate over the source's rows} computed in the same
    pass and given on every window (TRAIN's fingerprint of the rows it reads)."""
    t, y = _q(s.time), _q(s.target)
    carried = "".join(f", {sql} AS {name}" for name, sql in (carry or {}).items())
    kept = "".join(f", {name}" for name in (carry or {}))
    by = f"PARTITION BY {_keys_sql(s.keys)} " if s.keys else ""
    order = t if s.time_type in INT_TYPES else f"epoch(CAST({t} AS TIMESTAMP))"
    rank = f"dense_rank() OVER (ORDER BY {_keys_sql(s.keys)})" if s.keys else "1"
    covs = "".join(f", {_q(c)}" for c in s.covariates)
    spans = "".join(f"list(CAST({_q(c)} AS DOUBLE)) OVER (w ROWS BETWEEN {window - 1} PRECEDING AND {horizon} FOLLOWING) "
                    f"AS {_q(c)}, " for c in s.covariates)  # fmt: skip
    whole = "".join(f"AND len({_q(c)}) = {window + horizon} " for c in s.covariates)
    return (
        f"SELECT history, __dbml_future__, __dbml_order__, __dbml_series__{covs}{kept} FROM ("
        f"SELECT list(CAST({y} AS DOUBLE)) OVER (w ROWS BETWEEN {window - 1} PRECEDING AND CURRENT ROW) AS history, "
        f"list(CAST({y} AS DOUBLE)) OVER (w ROWS BETWEEN 1 FOLLOWING AND {horizon} FOLLOWING) AS __dbml_future__, {spans}"
        f"CAST({order} AS DOUBLE) AS __dbml_order__, {rank} AS __dbml_series__{carried} "
        f"FROM ({source_sql}) WINDOW w AS ({by}ORDER BY {t})) "
        f"WHERE len(history) = {window} AND len(__dbml_future__) = {horizon} {whole}"
        f"AND len(list_filter(history, lambda v: v IS NOT NULL AND NOT isnan(v))) > 0 "
        f"AND len(list_filter(__dbml_future__, lambda v: v IS NOT NULL AND NOT isnan(v))) = {horizon}"
    )


def last_windows(con, source_sql: str, params, s: Series, window: int) -> list[dict[str, Any]]:
    """Each series' last ``window`` values and last time (what a forecast starts from),
    from the facts pass where it read them (:attr:`Series.ends`), else in one query."""
    if s.steps and set(s.ends) == set(s.steps) and all(len(h) >= window for _, h in s.ends.values()):
        return ends(s, window)
    t, y = _q(s.time), _q(s.target)
    part = _keys_sql(s.keys)
    by = f"PARTITION BY {part} " if s.keys else ""
    group = f"{part}, " if s.keys else ""
    last = f"max({t})" if s.time_type in INT_TYPES else f"CAST(max({t}) AS VARCHAR)"
    rows = con.execute(
        f"SELECT {group}list(CAST({y} AS DOUBLE) ORDER BY {t}) AS h, {last} AS last FROM ("
        f"SELECT *, row_number() OVER ({by}ORDER BY {t} DESC) AS __dbml_r FROM ({source_sql})) WHERE __dbml_r <= {window} GROUP BY ALL "
        f"ORDER BY ALL",
        params,
    ).fetchall()  # fmt: skip
    out = []
    for row in rows:
        key = tuple(row[: len(s.keys)])
        if all(v is None or v != v for v in row[-2]):
            name = f"series {dict(zip(s.keys, key))}" if s.keys else "the series"
            raise FeatureError(f"{name} has no value of '{s.target}' that is not NULL in its last {window} rows; a forecast needs its history")
        out.append({"key": [plain_key(v) for v in key], "history": [float("nan") if v is None else float(v) for v in row[-2]],
                    "last": row[-1], "step": s.steps[key], "scale": s.scales.get(key)})  # fmt: skip
    return out


def ends(s: Series, window: int) -> list[dict[str, Any]]:
    """Each series' last ``window`` values and last time, from :attr:`Series.ends`, as
    :func:`last_windows` gives them."""
    out = []
    for key, (last, history) in s.ends.items():  # in key order, as the facts pass gave them
        history = history[-window:]
        if all(v != v for v in history):
            name = f"series {dict(zip(s.keys, key))}" if s.keys else "the series"
            raise FeatureError(f"{name} has no value of '{s.target}' that is not NULL in its last {window} rows; a forecast needs its history")
        out.append({"key": [plain_key(v) for v in key], "history": list(history), "last": last, "step": s.steps[key],
                    "scale": s.scales.get(key)})  # fmt: skip
    return out


def time_sql(last: str, k: str, step: dict[str, Any], time_type: str) -> str:
    """SQL of the time ``k`` steps after ``last`` (both SQL expressions: ``last`` a
    series' last time, as text or a period number, ``k`` a whole number), in the time's
    own type. A period number adds ``k`` periods; a step of microseconds adds them (a
    TIMESTAMP WITH TIME ZONE keeps the instant's step, not the local clock's); a step of
    months adds months (the day kept, or the month's last day for a month-end series).
    DuckDB raises an error past the type's range: :func:`dbml.statements.forecast` finds
    the first step that fails before it returns any row."""
    if time_type not in TIME_TYPES and time_type not in INT_TYPES:
        raise DbmlError(f"a forecaster's time has type {time_type!r}, which is not a DATE, a TIMESTAMP or an integer type")
    n = int(step["n"])
    if step["unit"] == "integer":
        return f"CAST(CAST({last} AS HUGEINT) + CAST({k} AS HUGEINT) * {n} AS {time_type})"
    day = 86_400_000_000
    if step["unit"] == "micros" and time_type == "DATE" and n % day == 0:  # whole days: DATE arithmetic, DATE's range
        return f"(CAST({last} AS DATE) + CAST(CAST({k} AS BIGINT) * {n // day} AS INTEGER))"
    base = "TIMESTAMP WITH TIME ZONE" if time_type == "TIMESTAMP WITH TIME ZONE" else "TIMESTAMP"
    at = f"CAST(CAST({last} AS {time_type}) AS {base})"
    if step["unit"] == "micros":
        moved = f"({at} + to_microseconds(CAST({k} AS BIGINT) * {n}))"
    else:
        moved = f"({at} + to_months(CAST(CAST({k} AS BIGINT) * {n} AS INTEGER)))"
        if step.get("month_end"):  # the month's last day, at the same time of day
            moved = f"({moved} + to_days(CAST(last_day(CAST({moved} AS DATE)) - CAST({moved} AS DATE) AS INTEGER)))"
    return f"CAST({moved} AS {time_type})"


def roll(session, history: np.ndarray, horizon: int, trained: int, window: int, what: str = "the forecaster",
         covariates: dict[str, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """Forecasts of ``horizon`` steps from each window ([N, horizon]), feeding forecasts
    back in beyond the trained horizon (:func:`half_widths` gives their intervals).

    ``covariates``: {name: [N, window + horizon]}, each covariate over the windows and the
    steps to forecast; each round reads ``window + trained`` of them from where it starts
    (past the last step, the last value repeats: those rounds' forecasts are not kept)."""
    from dbml.runtime import run_bounded

    n = history.shape[0]
    out = np.zeros((n, horizon), np.float64)
    current = history.copy()
    covariates = covariates or {}
    rounds = -(-horizon // trained)
    padded = {}
    for name, values in covariates.items():
        short = window + rounds * trained - values.shape[1]
        padded[name] = np.concatenate([values, np.repeat(values[:, -1:], short, axis=1)], axis=1) if short > 0 else values
    done = 0
    while done < horizon:
        feeds = {HISTORY: current, **{c: v[:, done : done + window + trained].astype(np.float32) for c, v in padded.items()}}
        got = run_bounded(session, ["forecast"], feeds, what)[0].astype(np.float64)
        take = min(trained, horizon - done)
        out[:, done : done + take] = got[:, :take]
        current = np.concatenate([current, got[:, :take].astype(np.float32)], axis=1)[:, -window:]
        done += take
    if not np.all(np.isfinite(out)):
        raise DbmlError(f"{what} gave a value that is not finite; check the history for extreme values")
    return out


# -- intervals ---------------------------------------------------------------------------------
def scales_of(history: np.ndarray, how: str | None, series: Any = None) -> np.ndarray:
    """The scale of each window ([N]), in the target's units, that a version's interval
    half-widths are in units of: ``'series'``, its series' mean absolute change from one
    value to the next over the whole series (``series``: one per window, from
    :attr:`Series.scales`); ``'diff'``, the same over the window alone; ``'std'``, the
    spread of the window's values; None, 1 (the target's own units). A scale that is
    missing, 0 or cannot be measured is the window's mean absolute change, else its spread,
    else 1."""
    h = np.asarray(history, np.float64)
    ones = np.ones(h.shape[0], np.float64)
    if how is None or not h.size:
        return ones
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a window with no value: its scale is 1
        std = np.nanstd(h, axis=1)
        diff = np.nanmean(np.abs(np.diff(h, axis=1)), axis=1) if h.shape[1] > 1 else np.full(h.shape[0], np.nan)
    given = np.full(h.shape[0], np.nan)
    if how == "series" and series is not None:
        given = np.array([np.nan if v is None else float(v) for v in series], np.float64)
    order = {"series": (given, diff, std), "diff": (diff, std), "std": (std, diff)}.get(how, ())
    scale = np.full(h.shape[0], np.nan)
    for candidate in order:
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, candidate)
    return np.where(np.isfinite(scale) & (scale > 1e-12), scale, ones)


# the scale of the conformal half-widths (scales_of): benchmarks/forecast.py --interval-scale measures the choices;
# the series' own scale held its coverage closest to the stated one across origins on many series of different sizes
INTERVAL_SCALE = "series"


def conformal(err: np.ndarray, history: np.ndarray, how: str | None = INTERVAL_SCALE, series: Any = None) -> dict[str, Any]:
    """``metrics.intervals`` of a forecaster: split-conformal half-widths per step from
    its held-out windows' errors (``err``: forecast - actual, [n, horizon]; ``history``:
    the windows, [n, window]; ``series``: each window's series scale).

    Each window's score at step k is its absolute error over its scale
    (:func:`scales_of`); the half-width at confidence c is the ceil((n + 1) c)-th smallest
    score of the step (the largest when the windows are too few for c), kept for each
    level of :data:`LEVELS`."""
    scores = np.abs(np.asarray(err, np.float64)) / scales_of(history, how, series)[:, None]
    n = scores.shape[0]
    ordered = np.sort(scores, axis=0)
    ranks = np.minimum(np.ceil(np.round((n + 1) * np.asarray(LEVELS), 9)).astype(int), n)
    table = ordered[ranks - 1, :].T if n else np.zeros((scores.shape[1], len(LEVELS)))
    return {"method": "split conformal", "scale": how, "windows": int(n), "levels": list(LEVELS),
            "half_width": [[float(f"{v:.6g}") for v in row] for row in table]}  # fmt: skip


def half_widths(metrics: dict[str, Any], history: np.ndarray, horizon: int, trained: int, confidence: float,
                series: Any = None) -> np.ndarray:  # fmt: skip
    """The half-width of each forecast's interval at ``confidence`` ([N, horizon]), from
    the windows ``history`` (``series``: each one's series scale, ``scale`` of
    :func:`ends`) and a version's metrics.

    Within the trained horizon: the split-conformal half-width of the step
    (``metrics.intervals``, :func:`conformal`; a confidence between two kept levels
    interpolates), times the window's scale. Beyond it (forecasts fed back): the step's
    half-width of the trained horizon times the square root of the rounds fed back, a
    widening no held-out window measured. A half-width never shrinks from one step to the
    next. A version from before the conformal intervals keeps ``residual_scale`` (the
    residuals' root mean square per step, in units of each window's spread): a normal
    interval on it."""
    kept = metrics.get("intervals")
    if isinstance(kept, dict) and kept.get("half_width"):
        try:
            table = np.asarray(kept["half_width"], np.float64)  # [trained, levels]
            levels = np.asarray(kept.get("levels") or LEVELS, np.float64)
        except (TypeError, ValueError):
            table = levels = np.zeros(0)
        if table.ndim != 2 or levels.ndim != 1 or table.shape[1] != len(levels) or not np.all(np.isfinite(table) & (table >= 0)):
            raise RecordError("the version's metrics.intervals.half_width is not a table of finite half-widths, one row "
                              "per step and one column per level of metrics.intervals.levels: train the version again")  # fmt: skip
        per_step = np.array([np.interp(confidence, np.r_[0.0, levels], np.r_[0.0, row]) for row in table])
        scale = scales_of(history, kept.get("scale"), series)
    else:
        sigma = np.asarray(metrics.get("residual_scale") or [0.0] * trained, np.float64)
        per_step = NormalDist().inv_cdf(0.5 + confidence / 2) * sigma
        scale = scales_of(history, "std")
    steps = np.arange(horizon)
    grow = per_step[steps % len(per_step)] * np.sqrt(steps // len(per_step) + 1)
    return np.maximum.accumulate(grow)[None, :] * scale[:, None]


def stored_starts(starts: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """The series' ends kept with the version, within the registry's size."""
    import json

    size = len(json.dumps(starts, default=str))
    if size > MAX_STORED_SERIES_BYTES:
        raise FeatureError(
            f"the ends of the series of model '{model}' take {size:,} bytes, over the {MAX_STORED_SERIES_BYTES:,} kept "
            "with a version: lower window, or train on fewer series"
        )
    return starts

