"""Time series for forecasters: the checks of a series, its step, the training windows
(built by DuckDB with window functions and list aggregation), the series' ends and the
rolling of a forecast beyond the trained horizon. FORECAST MODEL itself is a statement.

A forecaster reads a window of the target's last ``window`` values (the feature
``history``, a sequence) and gives the next ``horizon`` values (the graph output
``forecast``). Each window is scaled by its own mean and spread inside the graph, so
series of any level share one network. Nothing here imports torch.
"""

from __future__ import annotations

import datetime as dt
import math
from statistics import NormalDist
from typing import Any

import numpy as np

from dbml.errors import DbmlError, FeatureError
from dbml.kinds.scalar import is_number_type
from dbml.sqltext import quote as _q

__all__ = ["Series", "series_facts", "check_series", "describe_series", "windows_sql", "last_windows", "ends", "season_length",
           "stored_starts", "advance", "roll", "HISTORY", "MAX_AUTO_WINDOW"]

HISTORY = "history"  # the forecaster's one feature: the window of past values
_TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
_INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_NAMED = {3_600_000_000: "hourly", 86_400_000_000: "daily", 604_800_000_000: "weekly"}
_SEASON = {"hourly": 24, "daily": 7, "weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}
MAX_STORED_SERIES_BYTES = 512 * 1024
MAX_AUTO_WINDOW = max(8, 2 * max(_SEASON.values()))  # the longest window window = 0 picks


class Series:
    """What the planner learnt of the series of a source: each series' step and, where
    the facts pass read them, its end (``ends``: key -> (last time, last values))."""

    def __init__(self, time: str, time_type: str, keys: list[str], target: str, steps: dict[tuple, dict[str, Any]],
                 ends: dict[tuple, tuple[Any, list[float]]] | None = None):  # fmt: skip
        self.time, self.time_type, self.keys, self.target, self.steps = time, time_type, keys, target, steps
        self.ends = ends or {}


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


def series_facts(con, source_sql: str, params, model: str, time: str, keys: list[str], target: str,
                 types: dict[str, str], last: int = 0) -> dict[str, Any]:  # fmt: skip
    """The facts pass of a forecaster: one query over ``source_sql`` that gives, per
    series (in key order), its rows, its steps, its values, its NULL times, its first
    time with more than one row, its last time and its last ``last`` values.

    Raises:
        FeatureError: a time column of a type a forecaster cannot take (before any query).
    """
    time_type = types[time].upper()
    if time_type not in _TIME_TYPES and time_type not in _INT_TYPES:
        raise FeatureError(
            f"time column '{time}' of model '{model}' has type {types[time]}; a forecaster's time is a DATE, a TIMESTAMP "
            "or an integer (a period number)"
        )
    t, part = _q(time), _keys_sql(keys)
    by = f"PARTITION BY {part} " if keys else ""
    group = f"{part}, " if keys else ""
    if time_type in _INT_TYPES:
        diff, months = f"({t} - __dbml_prev)", "NULL"
        month_ok = "FALSE"
    else:
        diff = f"(epoch_us(CAST({t} AS TIMESTAMP)) - epoch_us(CAST(__dbml_prev AS TIMESTAMP)))"
        months = f"date_diff('month', CAST(__dbml_prev AS TIMESTAMP), CAST({t} AS TIMESTAMP))"
        month_ok = f"CAST(__dbml_prev AS TIMESTAMP) + to_months(CAST({months} AS INTEGER)) = CAST({t} AS TIMESTAMP)"
    month_end = "FALSE" if time_type in _INT_TYPES else f"CAST({t} AS DATE) = last_day(CAST({t} AS DATE))"
    ends = f"max_by({{'v': CAST({_q(target)} AS DOUBLE)}}, {t}, {int(last)})" if last > 0 else "NULL"
    rows = con.execute(
        f"SELECT {group}count(*), count(DISTINCT __dbml_d), min(__dbml_d), count(DISTINCT __dbml_m), min(__dbml_m), "
        f"bool_and(__dbml_mok), bool_and(__dbml_mend), count({_q(target)}), count(*) FILTER (WHERE {t} IS NULL), "
        f"min({t}) FILTER (WHERE __dbml_k > 1), arg_min(__dbml_k, {t}) FILTER (WHERE __dbml_k > 1), max({t}), {ends} FROM ("
        f"SELECT *, {diff} AS __dbml_d, {months} AS __dbml_m, {month_ok} AS __dbml_mok, {month_end} AS __dbml_mend FROM ("
        f"SELECT *, lag({t}) OVER ({by}ORDER BY {t}) AS __dbml_prev, count(*) OVER (PARTITION BY {group}{t}) AS __dbml_k "
        f"FROM ({source_sql})) s) w GROUP BY ALL ORDER BY ALL",
        params,
    ).fetchall()  # fmt: skip
    out = []
    for row in rows:
        key = tuple(row[: len(keys)])
        n, nd, d, nm, m, mok, mend, values, nulls, dup_at, dup_rows, end, tail = row[len(keys) :]
        history = [float("nan") if v["v"] is None else float(v["v"]) for v in reversed(tail)] if tail else []
        out.append({"key": key, "rows": n, "steps": (nd, d, nm, m, mok, mend), "values": values, "null_times": nulls,
                    "duplicate": (dup_at, dup_rows) if dup_at is not None else None, "last": end, "history": history})  # fmt: skip
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
            step = {"unit": "micros" if time_type not in _INT_TYPES else "integer", "n": int(d)}
        elif time_type not in _INT_TYPES and nm == 1 and m and (mok or mend):
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
    return Series(time, time_type, keys, target, steps, ends)


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
    time, as a number) and ``__dbml_series__`` (a series number), for the split by time.

    ``carry``: {column: window aggregate over the source's rows} computed in the same
    pass and given on every window (TRAIN's fingerprint of the rows it reads)."""
    t, y = _q(s.time), _q(s.target)
    carried = "".join(f", {sql} AS {name}" for name, sql in (carry or {}).items())
    kept = "".join(f", {name}" for name in (carry or {}))
    by = f"PARTITION BY {_keys_sql(s.keys)} " if s.keys else ""
    order = t if s.time_type in _INT_TYPES else f"epoch(CAST({t} AS TIMESTAMP))"
    rank = f"dense_rank() OVER (ORDER BY {_keys_sql(s.keys)})" if s.keys else "1"
    return (
        f"SELECT history, __dbml_future__, __dbml_order__, __dbml_series__{kept} FROM ("
        f"SELECT list(CAST({y} AS DOUBLE)) OVER (w ROWS BETWEEN {window - 1} PRECEDING AND CURRENT ROW) AS history, "
        f"list(CAST({y} AS DOUBLE)) OVER (w ROWS BETWEEN 1 FOLLOWING AND {horizon} FOLLOWING) AS __dbml_future__, "
        f"CAST({order} AS DOUBLE) AS __dbml_order__, {rank} AS __dbml_series__{carried} "
        f"FROM ({source_sql}) WINDOW w AS ({by}ORDER BY {t})) "
        f"WHERE len(history) = {window} AND len(__dbml_future__) = {horizon} "
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
    rows = con.execute(
        f"SELECT {group}list(CAST({y} AS DOUBLE) ORDER BY {t}) AS h, max({t}) AS last FROM ("
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
        out.append({"key": list(key), "history": [float("nan") if v is None else float(v) for v in row[-2]],
                    "last": _iso(row[-1]), "step": s.steps[key]})  # fmt: skip
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
        out.append({"key": list(key), "history": list(history), "last": _iso(last), "step": s.steps[key]})
    return out


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


def advance(last: Any, step: dict[str, Any], k: int, time_type: str) -> Any:
    """The time ``k`` steps after ``last`` (an ISO text, or a period number)."""
    if step["unit"] == "integer":
        return int(last) + k * step["n"]
    is_date = time_type == "DATE"
    base = dt.date.fromisoformat(last) if is_date else dt.datetime.fromisoformat(last)
    if step["unit"] == "micros":
        moved = (base if not is_date else dt.datetime.combine(base, dt.time())) + dt.timedelta(microseconds=k * step["n"])
        return moved.date() if is_date and moved.time() == dt.time() else moved
    months = base.month - 1 + k * step["n"]
    year, month = base.year + months // 12, months % 12 + 1
    days = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    day = days if step.get("month_end") else min(base.day, days)  # a month-end series stays at month ends
    return base.replace(year=year, month=month, day=day)


def roll(session, history: np.ndarray, horizon: int, trained: int, window: int, sigma: np.ndarray):
    """Forecasts of ``horizon`` steps from each window, feeding forecasts back in beyond the
    trained horizon; and each value's spread: the residual scale at its step (never below
    an earlier step's), growing with the square root of the rounds fed back, times the
    spread of the observed window."""
    from dbml.runtime import run_bounded

    n = history.shape[0]
    out = np.zeros((n, horizon), np.float64)
    spread = np.zeros((n, horizon), np.float64)
    current = history.copy()
    # the spread of the observed window (fed-back forecasts are smoother than data), and a
    # residual scale that does not shrink with the step
    scale = np.nanstd(history, axis=1).astype(np.float64)
    scale = np.where(scale > 1e-12, scale, 1.0)
    sigma = np.maximum.accumulate(sigma) if sigma.size else sigma
    done, rounds = 0, 0
    while done < horizon:
        got = run_bounded(session, ["forecast"], {HISTORY: current}, "a forecaster")[0].astype(np.float64)
        take = min(trained, horizon - done)
        out[:, done : done + take] = got[:, :take]
        spread[:, done : done + take] = np.maximum.accumulate(sigma[:take] * math.sqrt(rounds + 1))[None, :] * scale[:, None]
        if done:
            spread[:, done : done + take] = np.maximum(spread[:, done : done + take], spread[:, done - 1 : done])
        current = np.concatenate([current, got[:, :take].astype(np.float32)], axis=1)[:, -window:]
        done, rounds = done + take, rounds + 1
    if not np.all(np.isfinite(out)):
        raise DbmlError("the forecaster gave a value that is not finite; check the history for extreme values")
    return out, spread


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

