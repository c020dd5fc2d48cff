"""FORECAST MODEL: the next values of each series of a forecaster, with an interval.

``FORECAST MODEL m [VERSION n] HORIZON h [FROM <source>] [WITH (confidence = 0.9)]``: one
row per series and future step (the series keys, the time under its own name,
``forecast``, ``lower``, ``upper``). Without FROM, each series goes on from where it ended
at training; with FROM, from the end of the series given. The series SQL (checks,
windows, ends) is :mod:`dbml.data.series`'s; the graph runs in onnxruntime, no torch.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from dbml.statements.base import MLStatement, Statement, options_of, rows_relation, source_query, version_of, with_sql

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["ForecastModel", "STATEMENT", "forecast", "forecast_model"]


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
    one row per series and future step: the series keys, the time (under its own name),
    ``forecast``, ``lower``, ``upper``."""
    import duckdb
    import numpy as np

    from dbml.data.series import Series, advance, describe_series, last_windows, roll
    from dbml.errors import FeatureError, OptionError, SourceError, TargetError
    from dbml.kinds.scalar import is_number_type
    from dbml.options import Option, validate_options
    from dbml.sqltext import quote as _q
    from dbml.tasks import get_task

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
    if source_sql is None:
        starts = m["series_end"]
    else:
        con = ctx.scoped()
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
    session = ctx.session(rec)
    sigma = np.asarray(m.get("residual_scale") or [0.0] * trained, dtype=np.float64)
    z = NormalDist().inv_cdf(0.5 + opts["confidence"] / 2)
    rows = []
    if starts:
        history = np.asarray([s["history"] for s in starts], dtype=np.float32)
        values, spreads = roll(session, history, horizon, trained, window, sigma)
        for i, s in enumerate(starts):
            for k in range(horizon):
                f, half = float(values[i, k]), float(z * spreads[i, k])
                row = {key: v for key, v in zip(series.keys, s["key"])}
                row[series.time] = advance(s["last"], s["step"], k + 1, series.time_type)
                row.update(forecast=f, lower=f - half, upper=f + half)
                rows.append(row)
    if not rows:  # no series: the columns, no rows
        if source_sql is None:
            return ctx.scoped().sql("SELECT NULL::DOUBLE AS forecast, NULL::DOUBLE AS lower, NULL::DOUBLE AS upper LIMIT 0")
        keys = ", ".join(_q(c) for c in [*series.keys, series.time])
        return ctx.scoped().sql(f"SELECT {keys}, NULL::DOUBLE AS forecast, NULL::DOUBLE AS lower, NULL::DOUBLE AS upper "
                             f"FROM ({source_sql}) LIMIT 0")  # fmt: skip
    return rows_relation(ctx.db(), rows)


STATEMENT = Statement(
    name="forecast", head=("FORECAST", "MODEL"), node=ForecastModel, parse=parse, generate=generate, run=run,
    twins={"forecast": forecast}, returns_rows=True, keywords=("VERSION", "HORIZON", "FROM", "WITH"),
    columns=("<series keys>", "<time>", "forecast", "lower", "upper"),
    summary="the next values of each series of a forecaster, with an interval",
)  # fmt: skip
