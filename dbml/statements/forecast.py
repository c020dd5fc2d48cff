"""FORECAST MODEL: the next values of each series of a forecaster, with an interval.

``FORECAST MODEL m [VERSION n] HORIZON h [FROM <source>] [WITH (confidence = 0.9)]``: one
row per series and future step (the series keys, the time under its own name,
``forecast``, ``lower``, ``upper``). Without FROM, each series goes on from where it ended
at training; with FROM, from the end of the series given. A forecaster with covariates
needs FROM: each series' rows after its last value of the target are the steps to
forecast, which give the covariates' values there. The series SQL (checks,
windows, ends, times) is :mod:`dbml.data.series`'s; the graph runs in onnxruntime, no torch.

One FORECAST gives at most :data:`MAX_FORECAST_ROWS` rows (series x HORIZON): a larger
one is refused before any forecast is made. The rows are built as Arrow columns.

The interval [lower, upper] at ``confidence`` is split conformal: each step's half-width
is the conformal quantile of the absolute errors of the version's held-out windows at that
step, in units of each series' scale (its mean absolute change from one value to the
next), kept at training (:func:`dbml.data.series.conformal`); beyond the trained horizon
it widens with the square root of the rounds of forecasts fed back, which no held-out
window measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbml.sqltext import quote as _q
from dbml.statements.base import MLStatement, Statement, options_of, source_query, version_of, with_sql

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["ForecastModel", "STATEMENT", "forecast", "forecast_model", "MAX_FORECAST_ROWS"]

MAX_FORECAST_ROWS = 5_000_000  # rows (series x HORIZON) one FORECAST gives: about 200 MB of Arrow columns


class ForecastModel(MLStatement):
    """``FORECAST MODEL m [VERSION n] HORIZON h [FROM <source>] [WITH (confidence = 0.9)]``:
    the next h values of each series, with an interval."""

    arg_types = {"this": True, "version": False, "horizon": True, "source": False, "source_sql": False, "options": False}


def parse(r) -> ForecastModel:
    name = r.model_name()
    version = r.version()
    if not r.match("HORIZON"):
        r.error("Expected HORIZON and a whole number of steps after the model")
    horizon = r.number("Expected HORIZON and a whole number of steps after the model", "HORIZON must be a whole number of steps")
    source = source_sql = None
    if r.match("FROM"):
        source, source_sql = r.source("FROM")
    return r.finish(ForecastModel(this=name, version=version, horizon=horizon, source=source, source_sql=source_sql,
                                  options=r.options()))  # fmt: skip


def generate(gen, e: ForecastModel) -> str:
    version = f" VERSION {e.args['version'].name}" if e.args.get("version") else ""
    source = ""
    if e.args.get("source"):
        source = f" FROM ({e.args['source_sql']})" if e.args.get("source_sql") else f" FROM {gen.sql(e.args['source'])}"
    with_ = with_sql(gen, e)
    return f"FORECAST MODEL {gen.sql(e.this)}{version} HORIZON {e.args['horizon'].name}{source}{with_}"


def run(ctx: "Context", node: ForecastModel):
    source = node.args.get("source")
    sql = ctx.rewrite(source_query(source, node.args.get("source_sql"))[0]) if source is not None else None
    return forecast_model(ctx, node.this.name, version_of(node), int(node.args["horizon"].name), sql,
                          options_of(node, ctx.params))  # fmt: skip


def forecast(ctx: "Context", model: str, horizon: int, source: str | None = None, *, version: int | None = None,
             **options: Any):  # fmt: skip
    """``FORECAST MODEL model [VERSION n] HORIZON horizon [FROM source] [WITH (options)]``:
    one row per series and future step, with ``forecast``, ``lower`` and ``upper``.

    Args:
        model: the forecaster ('name', 'name:3' or 'name@alias').
        horizon: the steps to forecast.
        source: a table, file or query with the series to go on from (default: the
            series' ends kept at training).
        version: the version (default: the one a bare name scores with).
        **options: ``confidence`` (default 0.9), the coverage of [lower, upper].
    """
    sql = ctx.rewrite(source_query(source)[0]) if source is not None else None
    return forecast_model(ctx, model, version, horizon, sql, options)


def forecast_model(ctx: "Context", model: str, version: int | None, horizon: int, source_sql: str | None,
                   options: dict[str, Any]):  # fmt: skip
    """``FORECAST MODEL m [VERSION n] HORIZON h [FROM (query)] [WITH (confidence = 0.9)]``:
    one row per series and future step: the series keys (in their types), the time (under
    its own name and type), ``forecast``, ``lower``, ``upper``.

    Raises:
        OptionError: a HORIZON out of 1 to 100,000, series x HORIZON over
            :data:`MAX_FORECAST_ROWS`, or a step past the time type's range (each before
            the forecaster runs); a confidence outside (0, 1).
    """
    import duckdb
    import numpy as np
    import pyarrow as pa

    from dbml.data.series import Series, describe_series, half_widths, key_type, last_windows, roll
    from dbml.errors import FeatureError, OptionError, SourceError, TargetError
    from dbml.kinds.scalar import is_number_type
    from dbml.options import Option, validate_options
    from dbml.tasks import get_task
    from dbml.data.source import present_sql
    from dbml.tasks.forecast import covariate_type, covariates_of

    opts = validate_options(options, (Option("confidence", "float", 0.9, "coverage of [lower, upper]",
                                             lambda v: 0 < v < 1, "in (0, 1)"),), f"FORECAST MODEL {model}")  # fmt: skip
    rec = ctx.record(model, version)
    name = rec["model"]
    what = f"model '{rec['model']}' version {rec['version']}"
    if not get_task(rec["task"]).forecasts:
        raise TargetError(
            f"FORECAST needs a forecaster (TRAIN MODEL ... USING lstm or gru ... WITH (time = ..., horizon = ...)); "
            f"{what} is a {rec['task']} model: use PREDICT"
        )
    if not isinstance(horizon, int) or isinstance(horizon, bool) or not 1 <= horizon <= 100_000:
        raise OptionError(f"HORIZON must be a whole number from 1 to 100000, got {horizon!r}")
    o, m = rec["options"], rec["metrics"]
    window, trained = int(o["window"]), int(o["horizon"])
    series = Series(o["time"], m["time_type"], list(o["series"] or []), rec["target"], {})
    stored = m.get("key_types") or []
    key_types = [key_type(t) for t in stored] if len(stored) == len(series.keys) else [None] * len(series.keys)
    covariates = covariates_of(rec)
    future_sql = None
    if covariates and source_sql is None:
        raise FeatureError(
            f"{what} reads known covariates ({', '.join(covariates)}), whose values at the steps it forecasts FORECAST "
            f"needs: FORECAST MODEL {name} HORIZON {horizon} FROM (<the series with their next {horizon} rows, "
            f"{', '.join(covariates)} filled and {rec['target']} NULL>)"
        )
    if source_sql is None:
        starts = m["series_end"]
    else:
        con = ctx.scoped()
        try:
            rel = con.sql(f"SELECT * FROM ({source_sql})")
            cols = dict(zip(rel.columns, [str(t) for t in rel.types]))
        except duckdb.Error as err:
            raise SourceError(f"cannot read the FROM query of FORECAST MODEL {name}: {err}") from None
        missing = [c for c in [series.time, *series.keys, series.target, *covariates] if c not in cols]
        if missing:
            raise FeatureError(f"the FROM query of FORECAST MODEL {name} lacks column(s) {', '.join(missing)}; it needs the "
                               "time, series and target columns" + (" and the covariates" if covariates else ""))  # fmt: skip
        if not is_number_type(cols[series.target]):
            raise TargetError(f"column '{series.target}' of the FROM query of FORECAST MODEL {name} has type "
                              f"{cols[series.target]}; the forecaster reads numbers: cast it to DOUBLE")  # fmt: skip
        for c in covariates:
            if not covariate_type(cols[c]):
                raise FeatureError(f"covariate '{c}' of the FROM query of FORECAST MODEL {name} has type {cols[c]}; "
                                   f"{what} reads it as a number: cast it to DOUBLE")  # fmt: skip
        if covariates:  # the rows after each series' last value of the target are its future: they give the covariates
            present = present_sql(series.target, cols[series.target])  # a value of the target: not NULL, not NaN
            source_sql, future_sql = _history_and_future(source_sql, series, present)
        series = describe_series(con, source_sql, None, name, series.time, series.keys, series.target, cols, window, 0)
        key_types = [key_type(cols[k]) for k in series.keys]
        starts = last_windows(con, source_sql, None, series, window)
    if len(starts) * horizon > MAX_FORECAST_ROWS:
        most = MAX_FORECAST_ROWS // len(starts)
        raise OptionError(
            f"FORECAST MODEL {name} HORIZON {horizon:,} would give {len(starts):,} series x {horizon:,} steps = "
            f"{len(starts) * horizon:,} rows, over the {MAX_FORECAST_ROWS:,} one FORECAST gives "
            f"(dbml.statements.forecast.MAX_FORECAST_ROWS): lower HORIZON to at most {most:,}, or forecast fewer series "
            "at a time (FROM (SELECT ... WHERE <some series>))"
        )
    if not starts:  # no series: the columns, no rows
        if source_sql is None:
            return ctx.scoped().sql("SELECT NULL::DOUBLE AS forecast, NULL::DOUBLE AS lower, NULL::DOUBLE AS upper LIMIT 0")
        keys = ", ".join(_q(c) for c in [*series.keys, series.time])
        return ctx.scoped().sql(f"SELECT {keys}, NULL::DOUBLE AS forecast, NULL::DOUBLE AS lower, NULL::DOUBLE AS upper "
                             f"FROM ({source_sql}) LIMIT 0")  # fmt: skip
    # the keys and times first (a time past its type's range refused before the forecaster runs)
    table, columns = _keys_and_times(ctx.db(), starts, series, key_types, horizon, name)
    history = np.asarray([s["history"] for s in starts], dtype=np.float32)
    known = None
    if covariates:
        con = ctx.scoped()
        past = _past_covariates(con, source_sql, series, covariates, starts, window, name)
        ahead = _future_covariates(con, future_sql, series, covariates, table, columns, starts, horizon, name)
        known = {c: np.concatenate([past[c], ahead[c]], axis=1) for c in covariates}
    values = roll(ctx.session(rec), history, horizon, trained, window, what, known)
    half = half_widths(m, history, horizon, trained, opts["confidence"], [s.get("scale") for s in starts])
    for column, v in (("forecast", values), ("lower", values - half), ("upper", values + half)):
        table = table.append_column(column, pa.array(v.reshape(-1), pa.float64()))
    return ctx.db().from_arrow(table).project(", ".join([*columns, "forecast", "lower", "upper"]))


def _history_and_future(source_sql: str, series, present: str) -> tuple[str, str]:
    """(the rows of each series up to its last value of the target, the rows after it):
    a forecaster with covariates is given its history and, after it, the steps to
    forecast with the covariates' values (and no target). ``present``: the condition of
    a row that has a value of the target (:func:`dbml.data.source.present_sql`)."""
    t = _q(series.time)
    by = f"PARTITION BY {', '.join(_q(k) for k in series.keys)}" if series.keys else ""
    marked = (f"SELECT * EXCLUDE (__dbml_end), {t} <= __dbml_end AS __dbml_past FROM (SELECT *, max(CASE WHEN "
              f"{present} THEN {t} END) OVER ({by}) AS __dbml_end FROM ({source_sql}) AS src) AS src")  # fmt: skip
    return (f"SELECT * EXCLUDE (__dbml_past) FROM ({marked}) AS src WHERE __dbml_past",
            f"SELECT * EXCLUDE (__dbml_past) FROM ({marked}) AS src WHERE NOT __dbml_past")


def _series_label(series, key) -> str:
    return f"series {dict(zip(series.keys, key))}" if series.keys else "the series"


def _finite(values, covariate: str, where: str, name: str):
    """Covariate values as float32, NULL as NaN; an infinite one or one past FLOAT's range is refused."""
    import numpy as np

    from dbml.errors import FeatureError
    from dbml.kinds.common import FLOAT_MAX

    x = np.asarray([np.nan if v is None else float(v) for v in values], np.float64)
    bad = np.abs(np.where(np.isnan(x), 0.0, x)) > FLOAT_MAX
    if bad.any():
        raise FeatureError(f"covariate '{covariate}' of FORECAST MODEL {name} is {x[np.argmax(bad)]!r} {where}; a "
                           f"forecaster reads FLOAT values (±{FLOAT_MAX:.4g}): clip or scale it")  # fmt: skip
    return x.astype(np.float32)


def _past_covariates(con, history_sql: str, series, covariates: list[str], starts, window: int, name: str):
    """{covariate: [series, window]}: each covariate over the last ``window`` rows of each
    series' history (the rows its forecast starts from); a NULL is a missing value, as at training."""
    import numpy as np

    from dbml.data.series import plain_key

    t = _q(series.time)
    keys = [_q(k) for k in series.keys]
    by = f"PARTITION BY {', '.join(keys)} " if keys else ""
    lists = ", ".join(f"list(CAST({_q(c)} AS DOUBLE) ORDER BY {t})" for c in covariates)
    rows = con.execute(
        f"SELECT {''.join(k + ', ' for k in keys)}{lists} FROM (SELECT *, row_number() OVER ({by}ORDER BY {t} DESC) AS "
        f"__dbml_r FROM ({history_sql}) AS src) AS src WHERE __dbml_r <= {int(window)} GROUP BY ALL"
    ).fetchall()  # fmt: skip
    found = {tuple(plain_key(v) for v in r[: len(keys)]): r[len(keys) :] for r in rows}
    out = {c: np.zeros((len(starts), window), np.float32) for c in covariates}
    for i, s in enumerate(starts):
        lists_of = found[tuple(s["key"])]
        for c, values in zip(covariates, lists_of):
            out[c][i] = _finite(values, c, f"in the history of {_series_label(series, s['key'])}", name)
    return out


def _future_covariates(con, future_sql: str, series, covariates: list[str], table, columns: list[str], starts,
                       horizon: int, name: str):  # fmt: skip
    """{covariate: [series, horizon]}: each covariate at each step FORECAST gives (the rows of
    ``table``: the keys and times, series by series), from the rows of ``future_sql`` at
    those times. A step with no row, or with two, and a NULL covariate there are refused."""
    import numpy as np
    import pyarrow as pa

    from dbml.errors import FeatureError

    n = table.num_rows
    steps = table.append_column("__dbml_row", pa.array(np.arange(n, dtype=np.int64)))
    keys, t = [_q(k) for k in series.keys], _q(series.time)
    on = " AND ".join([*(f"f.{k} IS NOT DISTINCT FROM e.{k}" for k in keys), f"f.{t} = e.{t}"])
    firsts = ", ".join(f"first(CAST({_q(c)} AS DOUBLE)) AS {_q(c)}" for c in covariates)
    sql = (f"SELECT e.__dbml_row, f.__dbml_n, {', '.join(f'f.{_q(c)}' for c in covariates)} FROM "
           f"(SELECT {', '.join(columns)}, __dbml_row FROM __dbml_steps) AS e LEFT JOIN (SELECT {''.join(k + ', ' for k in keys)}{t}, "
           f"count(*) AS __dbml_n, {firsts} FROM ({future_sql}) AS src GROUP BY ALL) AS f ON {on} ORDER BY e.__dbml_row")  # fmt: skip
    got = con.from_arrow(steps).query("__dbml_steps", sql).fetchnumpy()  # a name no user table has
    counts = got["__dbml_n"]
    counts = np.asarray([0 if (v is None or v is np.ma.masked) else int(v) for v in counts.tolist()], np.int64)
    times = table.column(series.time).to_pylist() if series.time in table.column_names else None

    def at(row: int) -> str:
        s = starts[row // horizon]
        when = times[row] if times is not None else f"step {row % horizon + 1}"
        return f"{_series_label(series, s['key'])} at {series.time} = {when} (step {row % horizon + 1} of {horizon})"

    hint = (f"a forecaster with covariates gives each step from a row of the FROM query after the series' last value of "
            f"'{series.target}', with {', '.join(covariates)} filled and {series.target} NULL")  # fmt: skip
    if (counts == 0).any():
        row = int(np.argmax(counts == 0))
        raise FeatureError(f"the FROM query of FORECAST MODEL {name} has no row for {at(row)}; {hint}")
    if (counts > 1).any():
        row = int(np.argmax(counts > 1))
        raise FeatureError(f"the FROM query of FORECAST MODEL {name} has {counts[row]} rows for {at(row)}; a series has "
                           "one row per time")  # fmt: skip
    out = {}
    for c in covariates:
        raw = got[c]
        values = [None if v is None or v is np.ma.masked else v for v in (raw.tolist() if hasattr(raw, "tolist") else raw)]
        x = _finite(values, c, "in the rows to forecast", name)
        if np.isnan(x).any():
            row = int(np.argmax(np.isnan(x)))
            raise FeatureError(f"covariate '{c}' of FORECAST MODEL {name} is NULL (or NaN) for {at(row)}; {hint}")
        out[c] = x.reshape(len(starts), horizon)
    return out


# the key types whose values an Arrow column holds as they are; the others travel as text and are cast back
_NATIVE_KEYS = ("BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "FLOAT",
                "DOUBLE", "VARCHAR")


def _keys_and_times(con, starts: list[dict[str, Any]], series, key_types: list[str | None], horizon: int, name: str):
    """An Arrow table of the series keys and the next ``horizon`` times of each series
    (``starts``: each one's key, last time and step), series by series, built by DuckDB;
    and the SQL of its columns as FORECAST gives them (the keys cast to their types: an
    Arrow column has no HUGEINT, so a key travels as text where Arrow would change it).

    Raises:
        OptionError: a series whose last step would be past its time type's range,
            naming the series, its last time and the largest HORIZON that fits.
        RecordError: a stored last time that is not a time of the version's type.
    """
    import duckdb
    import pyarrow as pa

    from dbml.data.series import INT_TYPES, TIME_TYPES, time_sql
    from dbml.errors import OptionError, RecordError

    if series.time_type not in (*TIME_TYPES, *INT_TYPES):  # spliced into SQL below: one of the known names only
        raise RecordError(f"the time type of FORECAST MODEL {name}, {series.time_type!r}, is not a DATE, a TIMESTAMP or an "
                          "integer type: train the version again")  # fmt: skip
    steps: dict[str, int] = {}
    for s in starts:
        steps.setdefault(repr(sorted(s["step"].items())), len(steps))
    columns = {"__dbml_i": pa.array(range(len(starts)), pa.int32()),
               "__dbml_g": pa.array([steps[repr(sorted(s["step"].items()))] for s in starts], pa.int32())}  # fmt: skip
    integer = series.time_type in INT_TYPES
    try:
        columns["__dbml_last"] = pa.array([int(s["last"]) if integer else str(s["last"]) for s in starts],
                                          pa.int64() if integer else pa.string())  # fmt: skip
    except (TypeError, ValueError, OverflowError, pa.ArrowException):
        raise RecordError(f"the last times of the series of FORECAST MODEL {name} are not {series.time_type} values: "
                          "train the version again") from None  # fmt: skip
    shown, carried = [], []
    for j, (k, kt) in enumerate(zip(series.keys, key_types)):
        values = [s["key"][j] for s in starts]
        if kt in _NATIVE_KEYS or kt is None:
            try:
                columns[k] = pa.array(values)
            except (pa.ArrowException, OverflowError):
                kt, columns[k] = kt or "VARCHAR", pa.array([None if v is None else str(v) for v in values], pa.string())
        else:
            columns[k] = pa.array([None if v is None else str(v) for v in values], pa.string())
        shown.append(f"CAST({_q(k)} AS {kt}) AS {_q(k)}" if kt else _q(k))
        carried.append((k, kt))
    ends = con.from_arrow(pa.table(columns))
    firsts = {g: next(s["step"] for s in starts if steps[repr(sorted(s["step"].items()))] == g) for g in steps.values()}

    def at(k: str) -> str:
        parts = {g: time_sql("__dbml_last", k, step, series.time_type) for g, step in firsts.items()}
        if len(parts) == 1:
            return next(iter(parts.values()))
        return "CASE __dbml_g " + " ".join(f"WHEN {g} THEN {sql}" for g, sql in parts.items()) + " END"

    def first_failing(k: str, where: str = "TRUE") -> int | None:
        rows = ends.query("__dbml_ends", f"SELECT __dbml_i FROM __dbml_ends WHERE ({where}) AND TRY({at(k)}) IS NULL ORDER BY 1 LIMIT 1").fetchall()
        return rows[0][0] if rows else None

    def series_name(i: int) -> str:
        return f"series {dict(zip(series.keys, starts[i]['key']))}" if series.keys else "the series"

    for k, kt in carried:  # a stored key that is not of its type (a changed registry row)
        rows = ends.query("__dbml_ends", f"SELECT __dbml_i FROM __dbml_ends WHERE {_q(k)} IS NOT NULL AND TRY(CAST({_q(k)} AS {kt or 'VARCHAR'})) IS NULL "
                               "LIMIT 1").fetchall()  # fmt: skip
        if rows:
            raise RecordError(f"series key {starts[rows[0][0]]['key']!r} of FORECAST MODEL {name} is not a value of "
                              f"its type {kt}: train the version again")  # fmt: skip
    rows = ends.query("__dbml_ends", f"SELECT __dbml_i FROM __dbml_ends WHERE TRY(CAST(__dbml_last AS {series.time_type})) IS NULL LIMIT 1").fetchall()
    if rows:
        bad = rows[0][0]
        raise RecordError(f"the last time of {series_name(bad)} of FORECAST MODEL {name}, {starts[bad]['last']!r}, "
                          f"is not a {series.time_type}: train the version again")  # fmt: skip
    bad = first_failing(str(horizon))
    if bad is not None:  # the largest horizon that fits that series (its times only grow)
        lo, hi = 0, horizon
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if first_failing(str(mid), f"__dbml_i = {bad}") is None else (lo, mid)
        raise OptionError(
            f"HORIZON {horizon:,} of FORECAST MODEL {name}: {series_name(bad)} ends at {starts[bad]['last']}, and its "
            f"step {hi:,} would be past the range of its time type ({series.time_type}): "
            + (f"lower HORIZON to at most {lo:,}" if lo else "it has no step left to forecast")
            + (", or forecast the other series (FROM (SELECT ... WHERE ...))" if len(starts) > 1 else "")
        )
    times = f"{at('__dbml_k')} AS {_q(series.time)}"
    keys = [_q(k) for k in series.keys]
    sql = f"SELECT {', '.join([*keys, times])} FROM __dbml_ends, range(1, {int(horizon) + 1}) AS r(__dbml_k) ORDER BY __dbml_i, __dbml_k"
    try:
        table = ends.query("__dbml_ends", sql).arrow().read_all()
    except duckdb.Error as err:  # checked above; a guard
        raise OptionError(f"the times of FORECAST MODEL {name} HORIZON {horizon:,} cannot be made: {err}") from None
    return table, [*shown, _q(series.time)]


STATEMENT = Statement(
    name="forecast", head=("FORECAST", "MODEL"), node=ForecastModel, parse=parse, generate=generate, run=run,
    twins={"forecast": forecast}, returns_rows=True, keywords=("VERSION", "HORIZON", "FROM", "WITH"),
    columns=("<series keys>", "<time>", "forecast", "lower", "upper"),
    summary="the next values of each series of a forecaster, with an interval",
)  # fmt: skip
