"""FORECAST MODEL: the next values of each series of a forecaster, with an interval.

The series SQL (checks, windows, the series' ends) is :mod:`dbml.data.series`'s.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

from dbml.data.series import Series, advance as _advance, describe_series, last_windows, roll as _roll
from dbml.errors import FeatureError, OptionError, SourceError, TargetError
from dbml.kinds.scalar import is_number_type
from dbml.sqltext import quote as _q

if TYPE_CHECKING:
    from dbml.connection import Connection

__all__ = ["forecast_model"]


def forecast_model(conn: "Connection", model: str, version: int | None, horizon: int, source_sql: str | None,
                   options: dict[str, Any]) -> duckdb.DuckDBPyRelation:  # fmt: skip
    """``FORECAST MODEL m [VERSION n] HORIZON h [FROM (query)] [WITH (confidence = 0.9)]``:
    one row per series and future step: the series keys, the time (under its own name),
    ``forecast``, ``lower``, ``upper``."""
    from dbml import statements
    from dbml.options import Option, validate_options
    from dbml.registry import parse_reference

    opts = validate_options(options, (Option("confidence", "float", 0.9, "coverage of [lower, upper]",
                                             lambda v: 0 < v < 1, "in (0, 1)"),), f"FORECAST MODEL {model}")  # fmt: skip
    name, ref_version, alias = parse_reference(model)
    rec = conn.registry.get(name, version or ref_version, alias)
    what = f"model '{rec['model']}' version {rec['version']}"
    if rec["task"] != "forecast":
        raise TargetError(
            f"FORECAST needs a forecaster (TRAIN MODEL ... USING lstm or gru ... WITH (time = ..., horizon = ...)); "
            f"{what} is a {rec['task']} model: use PREDICT"
        )
    if not isinstance(horizon, int) or isinstance(horizon, bool) or not 1 <= horizon <= 100_000:
        raise OptionError(f"HORIZON must be a whole number from 1 to 100000, got {horizon!r}")
    o, m = rec["options"], rec["metrics"]
    window, trained = int(o["window"]), int(o["horizon"])
    series = Series(o["time"], m["time_type"], list(o["series"] or []), rec["target"], {})
    if source_sql is None:
        starts = m["series_end"]
    else:
        con = conn.db()
        try:
            rel = con.sql(f"SELECT * FROM ({source_sql})")
            cols = dict(zip(rel.columns, [str(t) for t in rel.types]))
        except duckdb.Error as err:
            raise SourceError(f"cannot read the FROM query of FORECAST MODEL {name}: {err}") from None
        missing = [c for c in [series.time, *series.keys, series.target] if c not in cols]
        if missing:
            raise FeatureError(f"the FROM query of FORECAST MODEL {name} lacks column(s) {', '.join(missing)}; it needs the time, series and target columns")
        if not is_number_type(cols[series.target]):
            raise TargetError(f"column '{series.target}' of the FROM query of FORECAST MODEL {name} has type "
                              f"{cols[series.target]}; the forecaster reads numbers: cast it to DOUBLE")  # fmt: skip
        series = describe_series(con, source_sql, None, name, series.time, series.keys, series.target, cols, window, 0)
        starts = last_windows(con, source_sql, None, series, window)
    session = conn._session(rec)
    sigma = np.asarray(m.get("residual_scale") or [0.0] * trained, dtype=np.float64)
    z = NormalDist().inv_cdf(0.5 + opts["confidence"] / 2)
    rows = []
    if starts:
        history = np.asarray([s["history"] for s in starts], dtype=np.float32)
        values, spreads = _roll(session, history, horizon, trained, window, sigma)
        for i, s in enumerate(starts):
            for k in range(horizon):
                f, half = float(values[i, k]), float(z * spreads[i, k])
                row = {key: v for key, v in zip(series.keys, s["key"])}
                row[series.time] = _advance(s["last"], s["step"], k + 1, series.time_type)
                row.update(forecast=f, lower=f - half, upper=f + half)
                rows.append(row)
    if not rows:  # no series: the columns, no rows
        if source_sql is None:
            return conn.db().sql("SELECT NULL::DOUBLE AS forecast, NULL::DOUBLE AS lower, NULL::DOUBLE AS upper LIMIT 0")
        keys = ", ".join(_q(c) for c in [*series.keys, series.time])
        return conn.db().sql(f"SELECT {keys}, NULL::DOUBLE AS forecast, NULL::DOUBLE AS lower, NULL::DOUBLE AS upper "
                             f"FROM ({source_sql}) LIMIT 0")  # fmt: skip
    return statements.rows_relation(conn.db(), rows)
