"""Forecasting: the next ``horizon`` values of a target from its last ``window`` values,
per series (``series`` key columns) ordered by ``time``, and from known covariates: every
other column of the source (a number or a boolean), read over the window and the horizon
as a feature of kind ``covariate`` (FLOAT[window + horizon]) under its own name.

DuckDB builds the windows (see :mod:`dbml.data.series`); the split is by time (the latest
windows validate); each window is scaled by its own mean and spread in the graph, so a
network serves series of any level, and the loss weighs each window's error in units of
its series' scale (:meth:`Forecast.loss`). Outputs ``forecast`` (FLOAT [N, horizon]) and
``embedding``. The metrics keep, besides the errors on the validation windows: the
split-conformal half-widths per step of FORECAST's intervals (``intervals``, from those
windows' errors in units of each series' scale: :func:`dbml.data.series.conformal`), the
seasonal naive baseline (``baseline``), each series' end (``series_end``: its key as JSON
keeps it, its last time and values, its scale) and the keys' types (``key_types``) for
FORECAST without FROM; ``residual_scale`` (the residuals' root mean square per step, in
units of each window's spread) is what versions before the conformal intervals used.

PREDICT gives FLOAT[horizon] from a history list. EVALUATE backtests every complete
window of the source's series (:func:`dbml.evaluate.forecast_evaluation_sql`), MONITOR
watches those windows (the history by its mean, the prediction by its first value);
EXPLAIN refuses a forecaster (its one feature is its own history)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from onnx import TensorProto, helper

from dbml.errors import FeatureError, OptionError, SourceError, TargetError
from dbml.kinds.common import QUANTILES
from dbml.kinds.scalar import bin_index, is_number_type
from dbml.options import Option
from dbml.sqltext import quote as _q
from dbml.tasks import Evaluation, Layout, Panel, Target, Task, join_and, trainers

__all__ = ["Forecast"]

def _window_kind():
    """The kind of the window feature: the one that reads a list of numbers as ordered steps."""
    from dbml.kinds import Shape, detect_column

    return detect_column("history", "DOUBLE[]", takes=frozenset({Shape.STEPS}))


@functools.lru_cache(maxsize=1)
def _key() -> str:
    """The group (batch key) of the window feature (dbml.data.series.HISTORY)."""
    from dbml.features import FeatureSpec
    from dbml.kinds import kind_of

    spec = FeatureSpec("history", _window_kind().kind, "FLOAT[1]")
    return kind_of(spec).group_key(spec)


def _futures(y) -> np.ndarray:
    """The ``future`` values of read windows (Arrow structs), as a [rows, horizon] array."""
    future = (y.combine_chunks() if hasattr(y, "combine_chunks") else y).field("future")
    h = len(future[0]) if len(future) else 0
    return np.array(future.flatten().to_numpy(zero_copy_only=False), np.float64).reshape(-1, h)


def covariates_of(rec: dict[str, Any]) -> list[str]:
    """The known covariates of a forecaster's version (its features of kind ``covariate``), in feature order."""
    return [f["name"] for f in rec.get("features") or [] if f.get("kind") == "covariate"]


def covariate_type(sql_type: str) -> bool:
    """A type a known covariate may have: a number or a boolean."""
    return is_number_type(sql_type) or sql_type.upper() == "BOOLEAN"


def _check_covariates(name: str, covariates: list[str], typed: dict[str, str], series_columns: list[str]) -> None:
    """Each column of a forecaster's source besides the time, keys and target is a known
    covariate: a number or a boolean, under a name no window column has."""
    from dbml.data.series import HISTORY

    for c in covariates:
        if c.lower() == HISTORY or c.lower().startswith("__dbml"):
            raise FeatureError(
                f"column '{c}' of model '{name}' has the name of a column a forecaster's windows have ({HISTORY}, __dbml...); "
                f"rename it in the source (SELECT * RENAME ({c} AS {c}_1) FROM ...)"
            )
        if not covariate_type(typed[c]):
            raise FeatureError(
                f"column '{c}' of model '{name}' has type {typed[c]}; a forecaster reads every column besides its time, "
                f"series and target ({', '.join(series_columns)}) as a known covariate, a number or a boolean whose future "
                f"values FORECAST is given: cast it (a category as one 0/1 column per value, CASE WHEN ...), or leave it out "
                f"(SELECT * EXCLUDE ({c}) FROM ...)"
            )


def _head(width: int, horizon: int, known: list[str] | None = None):
    """A linear map of the trunk's output to the ``horizon`` steps, in units of each
    window's spread. With covariates (their group keys ``known``) the head also gives
    their direct share of each step (:meth:`Head.known`): from each covariate's value at
    that step and its mean over the window, by weights every step shares, once in units
    of the window's spread (an effect that grows with a series' swings) and once in units
    of ``spread``, the training windows' future values' (an effect of a fixed size, which a
    window's spread would blur); and a pull from the window's mean towards ``level``, their
    mean (a series that keeps coming back to one level, whose covariates say
    where it goes from there). The trunk sees every value too, flattened; this direct,
    linear path is what a few hundred windows teach best (:meth:`Forecast.start` fits it
    first)."""
    import torch
    from torch import nn

    if not known:
        return nn.Linear(width, horizon)

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(width, horizon)
            nn.init.zeros_(self.linear.weight)  # the forecast starts as the direct path's fit (Forecast.start)
            nn.init.zeros_(self.linear.bias)
            self.step = nn.Linear(2 * len(known), 2, bias=False)
            nn.init.zeros_(self.step.weight)
            self.pull = nn.Parameter(torch.zeros(()))
            self.register_buffer("spread", torch.tensor(1.0))  # set from the training windows (Forecast.start)
            self.register_buffer("level", torch.tensor(0.0))
            self.register_buffer("use_level", torch.tensor(1.0))  # 0: no pull (Forecast.start chose so)
            self.keys, self.horizon = list(known), horizon

        def forward(self, x):
            return self.linear(x)

        def parts(self, encoded, mean, std):
            """[N, horizon, 4 x covariates + 1]: what the direct path weighs, in units of each
            window's spread: each covariate at each step and its mean over the window (as
            they are, then in units of ``spread``), and the window mean's distance from ``level``."""
            parts = []
            for k in self.keys:
                values = encoded[k]  # [N, window + horizon], standardised
                ahead, past = values[:, -self.horizon :], values[:, : -self.horizon]
                parts += [ahead, past.mean(dim=1, keepdim=True).expand_as(ahead)]
            f = torch.stack(parts, dim=2)
            ratio = (self.spread / std).unsqueeze(2)  # std: [N, 1]
            gap = ((self.level - mean) / std).unsqueeze(2).expand(-1, self.horizon, 1) * self.use_level
            return torch.cat([f, f * ratio, gap], dim=2)

        def weights(self) -> torch.Tensor:
            return torch.cat([self.step.weight[0], self.step.weight[1], self.pull.reshape(1)])

        def set_weights(self, w: torch.Tensor) -> None:
            n = self.step.weight.shape[1]
            with torch.no_grad():
                self.step.weight.copy_(w[: 2 * n].reshape(2, n))
                self.pull.copy_(w[2 * n])

        def known(self, encoded, mean, std):
            """The direct path's share of each step [N, horizon], in units of each window's spread."""
            return (self.parts(encoded, mean, std) * self.weights()).sum(dim=2)

    return Head()


class Forecast(Task):
    name = "forecast"
    headline = "mae"
    parity_output = "forecast"
    needs = frozenset({"head", "sequence_input"})
    priority = 10
    askable = False
    needs_facts = False
    forecasts = True
    plural = "forecasters"
    described = "a forecast"
    score_label = "−validation loss"
    pictures = ("series",)
    options = (
        Option("time", "str", "", "forecasting: the time column (DATE, TIMESTAMP or a period number)"),
        Option("series", "str_list", [], "forecasting: the key column(s) of each series ([] for one series)"),
        Option("window", "int", 0, "forecasting: past values each forecast reads; 0 picks two seasons (at least 8)",
               lambda v: 0 <= v <= 10_000, "0 (auto) to 10000"),
        Option("horizon", "int", 1, "forecasting: future values each window predicts", lambda v: 1 <= v <= 1_000, "1 to 1000"),
    )  # fmt: skip

    def implied(self, target, options):
        return bool(options.get("time"))

    def unavailable(self, model, target, allowed):
        return OptionError(f"option 'time' makes model '{model}' a forecaster, which USING {trainers(self)} trains")

    def source(self, con, name, req, columns, types, target, target_type, options):
        from dbml.data import series as forecast
        from dbml.data.rows import COUNT, SUM
        from dbml.data.source import present_sql
        from dbml.features import FeatureSpec
        from dbml.registry import lineage

        if target is None:
            raise TargetError(f"TRAIN MODEL {name} with time = '{options['time']}' needs the TARGET column to forecast")
        if not is_number_type(target_type):
            raise TargetError(f"target column '{target}' of model '{name}' has type {target_type}; a forecaster needs a numeric target")
        by_lower = {c.lower(): c for c in columns}
        wanted = [options["time"], *options["series"]]
        missing = [c for c in wanted if c.lower() not in by_lower]
        if missing:
            raise OptionError(f"option time/series names column '{missing[0]}', which the source of model '{name}' lacks; "
                              f"its columns are {', '.join(columns)}")  # fmt: skip
        time, keys = by_lower[options["time"].lower()], [by_lower[k.lower()] for k in options["series"]]
        taken = [c for c in (time, *keys) if c.lower() in ("forecast", "lower", "upper")]
        if taken:
            raise OptionError(
                f"column '{taken[0]}' of model '{name}' has the name of a column FORECAST returns (forecast, lower, upper); "
                f"rename it in the source (SELECT * RENAME ({taken[0]} AS {taken[0]}_1) FROM ...)"
            )
        options["time"], options["series"] = time, keys
        typed = dict(zip(columns, types))
        covariates = [c for c in columns if c not in (time, target, *keys)]
        _check_covariates(name, covariates, typed, [time, *keys, target])
        base = f"SELECT * FROM (\n{req.source_sql}\n) AS src"
        horizon = options["horizon"]
        # one facts pass: steps, lengths and each series' last values (as many as the window can be)
        facts = forecast.series_facts(con, base, req.params, name, time, keys, target, typed,
                                      last=options["window"] or forecast.MAX_AUTO_WINDOW)  # fmt: skip
        if not facts["series"]:
            raise SourceError(f"the source of model '{name}' has no rows; a forecaster learns from the past of its series")
        probe = forecast.check_series(facts, name, options["window"] or 2, horizon)
        season = max(forecast.season_length(s["frequency"]) for s in probe.steps.values())
        if options["window"] == 0:
            options["window"] = max(8, 2 * season)
        window = options["window"]
        series = forecast.check_series(facts, name, window, horizon)
        starts = forecast.stored_starts(forecast.ends(series, window), name)
        facts = {"season": season, "series_end": starts, "time_type": series.time_type,
                 "key_types": [forecast.key_type(typed[k]) for k in keys],
                 "frequencies": sorted({s["frequency"] for s in series.steps.values()})}  # fmt: skip
        series.covariates = covariates
        features = [FeatureSpec(forecast.HISTORY, _window_kind().kind, f"FLOAT[{window}]"),
                    *(FeatureSpec(c, "covariate", f"FLOAT[{window + horizon}]") for c in covariates)]  # fmt: skip
        count, total = lineage.fingerprint_sql(columns, window=True, where=present_sql(target, target_type))
        windows = forecast.windows_sql(base, series, window, horizon, carry={COUNT: count, SUM: total})
        return windows, features, facts

    def target_sql(self, target, target_type):
        return "struct_pack(future := __dbml_future__, order_ := __dbml_order__, series_ := __dbml_series__)"

    def prepare(self, model, target, target_type, y, parent):
        # each window's series (numbered in key order, as series_end lists them) for its scale in the metrics
        rows = y.combine_chunks() if hasattr(y, "combine_chunks") else y
        return Target(_futures(y), extra={"_series": np.asarray(rows.field("series_").to_numpy(zero_copy_only=False), np.int64)})

    def split_sql(self, target, key, options):
        """By time, in each series: its latest windows validate, and the ``horizon - 1``
        windows before them are left out of training, whose futures would overlap the
        validated values (:func:`dbml.data.split.by_time`)."""
        from dbml.data import split

        series, order = f"struct_extract({target}, 'series_')", f"struct_extract({target}, 'order_')"
        return split.by_time(series, order, options["validation"], options["horizon"] - 1), [series, order]

    def y_tensor(self, target, y):
        """[N, horizon + 1]: each window's future values, then its series' scale (NaN where
        the series has none), which weighs the window in the loss (:meth:`loss`)."""
        import torch

        futures = _futures(y)
        rows = y.combine_chunks() if hasattr(y, "combine_chunks") else y
        numbers = np.asarray(rows.field("series_").to_numpy(zero_copy_only=False), np.int64)
        # series number n's scale at [n]; [0] and numbers past the stored series: NaN
        known = [e.get("scale") for e in target.extra.get("series_end") or []]
        table = np.array([np.nan, *(float(v) if v else np.nan for v in known)], np.float64)
        scale = table[np.where((numbers >= 1) & (numbers < len(table)), numbers, 0)]
        return torch.from_numpy(np.concatenate([futures, scale[:, None]], axis=1)).float()

    def head(self, width, target, architecture, net_info, options):
        known = [k for k in net_info.get("inputs", {}) if k.startswith("covariate:")]
        return _head(width, options["horizon"], known)  # its level and spread: from the training windows (start)

    def start(self, net, train, val, options):
        """The covariates' direct path (:func:`_head`) starts from the least-squares fit of
        the training windows (the first 50,000, ridge-damped), so that the network learns
        what is left: gradient steps alone reach it slowly, and early stopping halts them
        once the rest of the network begins to overfit a short series. The pull towards
        the training level stays only where the validation windows ``val`` are fitted
        better with it (a series that keeps coming back to a level) than without (one
        that trends or shifts)."""
        import torch

        head = net.head
        if not hasattr(head, "known") or not hasattr(train, "epoch"):
            return

        def moments(batches, limit):
            gram = moment = None
            rows, yy = 0, 0.0
            with torch.no_grad():
                for batch in batches:
                    mean, std = self._stats(batch)
                    future, scale = self._futures(batch)
                    weight = self._weight(scale, std).double()  # as the loss weighs each window
                    y = (((future - mean) / std).double() * weight).reshape(-1, 1)  # [n x horizon, 1]
                    x = head.parts(net.encode(batch), mean, std).double() * weight.unsqueeze(2)
                    x = x.reshape(-1, x.shape[2])
                    ok = torch.isfinite(y[:, 0]) & torch.isfinite(x).all(dim=1)
                    x, y = x[ok], y[ok]
                    gram = x.T @ x if gram is None else gram + x.T @ x
                    moment = x.T @ y if moment is None else moment + x.T @ y
                    yy += float((y * y).sum())
                    rows += len(batch["target"])
                    if rows >= limit:
                        break
            return (gram, moment, yy) if gram is not None else None

        def solve(gram, moment, keep):
            g, m = gram[keep][:, keep], moment[keep]
            damp = 1e-2 * float(torch.diagonal(g).mean()) + 1e-8
            try:
                w = torch.linalg.solve(g + damp * torch.eye(len(keep), dtype=g.dtype, device=g.device), m)
            except RuntimeError:  # singular even when damped
                return None
            out = torch.zeros_like(moment)
            out[keep] = w
            return out if torch.isfinite(out).all() else None

        # the level and spread of the training windows' future values, which the direct path is in units of
        total = square = count = 0.0
        for batch in train.epoch(1):
            future = self._futures(batch)[0].double()
            ok = torch.isfinite(future)
            values = torch.where(ok, future, torch.zeros_like(future))
            total, square, count = total + float(values.sum()), square + float((values**2).sum()), count + float(ok.sum())
            if count >= 50_000 * future.shape[1]:
                break
        if count:
            level = total / count
            spread = math.sqrt(max(square / count - level**2, 0.0))
            head.level.fill_(level if math.isfinite(level) else 0.0)
            head.spread.fill_(spread if math.isfinite(spread) and spread > 1e-12 else 1.0)
        fitted = moments(train.epoch(1), 50_000)
        if fitted is None:
            return
        gram, moment, _ = fitted
        n = gram.shape[0]
        both, without = solve(gram, moment, list(range(n))), solve(gram, moment, list(range(n - 1)))
        chosen = both
        checked = moments(iter(val), 50_000) if val is not None and getattr(val, "rows", 0) else None
        if checked is not None and both is not None and without is not None:
            vg, vm, vyy = checked
            sse = lambda w: float(vyy - 2 * (w.T @ vm) + w.T @ vg @ w)  # noqa: E731
            if sse(without) <= sse(both):
                chosen = without
                head.use_level.fill_(0.0)
        chosen = chosen if chosen is not None else without
        if chosen is not None:
            head.set_weights(chosen[:, 0].to(head.step.weight.dtype))

    def _known(self, net, batch, mean, std):
        """The covariates' share of the forecast, in units of each window's spread ``std``, or 0."""
        return net.head.known(net.encode(batch), mean, std) if hasattr(net.head, "known") else 0.0

    def _stats(self, batch):
        from dbml.kinds.encoders import window_stats

        return window_stats(batch[_key()])

    @staticmethod
    def _futures(batch):
        """(the future values [N, horizon], each window's series scale [N, 1] or NaN) of a batch's target."""
        t = batch["target"]
        return t[:, :-1], t[:, -1:]

    def loss(self, net, out, batch):
        """The squared error in units of each window's series scale (its mean absolute change
        from one value to the next): every series weighs the same whatever its level, and
        within one, every window as its raw error says; a window of a series without a scale
        is in units of its own spread. (Each window's own spread as the unit would let the
        flattest windows rule the fit.)"""
        import torch

        mean, std = self._stats(batch)
        future, scale = self._futures(batch)
        pred = out + self._known(net, batch, mean, std)
        return torch.mean(((pred - (future - mean) / std) * self._weight(scale, std)) ** 2)

    @staticmethod
    def _weight(scale, std):
        """[N, 1]: each window's spread over the unit of its error in the loss, its series'
        scale (1 where the series has none, or where values near FLOAT's largest make the
        spread infinite)."""
        import torch

        weight = std / torch.where(torch.isfinite(scale) & (scale > 0), scale, std)
        return torch.where(torch.isfinite(weight), weight, torch.ones_like(weight))

    def score(self, net, out, batch):
        return -self.loss(net, out, batch)

    def outputs(self, net, batch):
        mean, std = self._stats(batch)
        embedding = net.embed(batch)
        return {"forecast": (net.head(embedding) + self._known(net, batch, mean, std)) * std + mean, "embedding": embedding}

    def metrics(self, net, batch, target, idx):
        from dbml.data import series as forecast

        out = net.outputs(batch)["forecast"].detach().double().cpu().numpy()
        y = target.y[idx]
        history = batch[_key()].detach().double().cpu().numpy()
        err = out - y
        mean, std = (t.detach().double().cpu().numpy() for t in self._stats(batch))
        residual = err / std  # in units of each window's spread
        m = int(target.extra.get("season", 1))
        h = y.shape[1]
        window = history.shape[1]
        steps = np.arange(h)
        naive = history[:, window - m + (steps % m)] if m <= window else np.repeat(history[:, -1:], h, axis=1)
        naive_mae = float(np.nanmean(np.abs(naive - y)))
        denom = np.abs(out) + np.abs(y)
        first = out[:, 0]
        edges = sorted(set(np.quantile(first, QUANTILES).tolist())) if len(first) else []
        counts = np.bincount(bin_index(first, edges), minlength=len(edges) + 1)
        nonzero = np.abs(y) > 0
        return {
            "mae": float(np.mean(np.abs(err))),
            "rmse": math.sqrt(float(np.mean(err**2))),
            "mape": float(np.mean(np.abs(err[nonzero] / y[nonzero]))) if nonzero.any() else None,
            "smape": float(np.mean(np.where(denom > 0, 2 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0))),
            "mase": float(np.mean(np.abs(err)) / naive_mae) if naive_mae > 0 else None,
            "seasonal_naive_mae": naive_mae,
            "baseline": {"seasonal_naive": {"mae": naive_mae}},
            "season": m,
            "residual_scale": np.sqrt(np.mean(residual**2, axis=0)).tolist(),
            "intervals": forecast.conformal(err, history, forecast.INTERVAL_SCALE, self._series_scales(target, idx)),
            "series_end": target.extra.get("series_end", []),
            "time_type": target.extra.get("time_type"),
            "key_types": target.extra.get("key_types", []),
            "frequencies": target.extra.get("frequencies", []),
            "prediction_distribution": {"edges": edges, "shares": (counts / max(counts.sum(), 1)).tolist()},
        }

    @staticmethod
    def _series_scales(target, idx) -> list[float | None] | None:
        """The scale of the series of each window ``idx`` (:attr:`dbml.data.series.Series.scales`)."""
        numbers, ends = target.extra.get("_series"), target.extra.get("series_end") or []
        if numbers is None or not len(ends):
            return None
        scales = [e.get("scale") for e in ends]
        return [scales[n - 1] if 1 <= n <= len(scales) else None for n in numbers[idx]]

    def graph_outputs(self, target):
        return {"forecast": "float [N, horizon]: the next values after each window, in the target's units",
                "embedding": "float [N, k]: the last hidden layer"}  # fmt: skip

    def onnx_tail(self, target, produced, prefix):
        nodes = [helper.make_node("Identity", [produced["forecast"]], ["forecast"], name=prefix + "forecast")]
        return nodes, [], [helper.make_tensor_value_info("forecast", TensorProto.FLOAT, ["N", target.y.shape[1]])]

    # -- the record and the functions a version offers ------------------------------------------
    def parity_width(self, record, shape):
        horizon = record["options"].get("horizon")  # a whole number from 1 to 1000 when present (validate_record)
        return horizon or (shape[1] if len(shape) == 2 and isinstance(shape[1], int) else 0), "value per row"

    def predict_type(self, info):
        return f"FLOAT[{int(info.graph_outputs[self.parity_output][0])}]"  # the next `horizon` values

    def predict_convert(self, info):
        from dbml.outputs import floats

        return floats(int(info.graph_outputs[self.parity_output][0]))

    # -- statements -------------------------------------------------------------------------------
    def refusal(self, statement, who, model=None):
        from dbml.tasks import TASKS

        takes = join_and([t.plural or t.name for t in TASKS.values() if t.explain_measure() is not None])
        return TargetError(
            f"{statement} takes {takes}; {who} is a forecaster, whose one feature is its own history: "
            "backtest it with EVALUATE MODEL" + (f" {model} ON (<its series>)" if model else "")
        )

    def evaluation(self, ctx, rec, source_sql, source_label, opts):
        """A backtest over every complete window of the source's series, checked as at training.

        ``by``: a series key column (one row per its value), or ``'series'`` (one row per
        series, under every key column) unless a column of that name is a series key."""
        import dbml.curves as curves
        import dbml.evaluate as evaluate

        what = f"model '{rec['model']}' version {rec['version']}"
        for option, fix in (("label", "label applies to anomaly models"), ("confusion", "confusion = true needs a classification model"),
                            ("positive", "positive applies to binary classification models")):  # fmt: skip
            if opts[option] is not None and opts[option] is not False:
                raise OptionError(f"{fix}; {what} is a forecaster, evaluated against the actual values of its target "
                                  f"'{rec['target']}': leave {option} out")  # fmt: skip
        m = rec["metrics"]
        series = self.series_of(ctx, rec, source_sql, source_label, "evaluate")
        keys = series.keys
        by: list[str] = []
        if opts["by"] is not None:
            named = [k for k in keys if k.lower() == opts["by"].lower()]
            if named:
                by = named
            elif opts["by"].lower() == "series" and keys:
                by = keys
            else:
                raise OptionError(
                    f"by = '{opts['by']}': {what} is a forecaster, evaluated per series: by names a series key column "
                    + (f"({', '.join(keys)}) or is 'series' (one row per series)" if keys else "and this one has none (one series): leave by out")
                )
        window, horizon = int(rec["options"]["window"]), int(rec["options"]["horizon"])
        sql = evaluate.forecast_evaluation_sql(source_sql, f"{rec['model']}:{rec['version']}", series, window, horizon,
                                               int(m.get("season") or 1), by=by)  # fmt: skip
        return Evaluation(sql, lambda: curves.forecast_curves(ctx, rec, source_sql,
                                                              self.series_of(ctx, rec, source_sql, source_label, "evaluate")))

    def series_of(self, ctx, rec: dict[str, Any], source_sql: str, source_label: str, doing: str):
        """The series of a forecaster's source (:class:`dbml.data.series.Series`, under the
        source's own column names), checked as at training: the time, key and target
        columns present, a numeric target, one row per time, a regular step of a frequency
        the version was trained on, at least ``window + horizon`` rows per series."""
        from dbml.data import series as forecast
        from dbml.tasks.statement import columns

        what = f"model '{rec['model']}' version {rec['version']}"
        o, m = rec["options"], rec["metrics"]
        keys = list(o.get("series") or [])
        known = covariates_of(rec)
        needed = {"time": o["time"], "target": rec["target"], **{f"series key '{k}'": k for k in keys},
                  **{f"covariate '{c}'": c for c in known}}  # fmt: skip
        lowered, types = columns(ctx, rec, source_sql, source_label, needed, doing)
        time, target, keys = lowered[o["time"].lower()], lowered[rec["target"].lower()], [lowered[k.lower()] for k in keys]
        if not is_number_type(types[target]):
            raise TargetError(f"target column '{target}' of {source_label} has type {types[target]}; {what} forecasts a number")
        known = [lowered[c.lower()] for c in known]
        for c in known:
            if not covariate_type(types[c]):
                raise FeatureError(f"covariate '{c}' of {source_label} has type {types[c]}; {what} reads it as a number: "
                                   "cast it to DOUBLE")  # fmt: skip
        series = forecast.describe_series(ctx.scoped(), f"SELECT * FROM (\n{source_sql}\n) AS src", None, rec["model"],
                                          time, keys, target, types, int(o["window"]), int(o["horizon"]))  # fmt: skip
        series.covariates = known
        trained = set(m.get("frequencies") or [])
        for key, step in series.steps.items():
            if trained and step["frequency"] not in trained:
                name = f"series {dict(zip(keys, key))}" if keys else "the series"
                raise TargetError(
                    f"{name} of {source_label} is {step['frequency']}; {what} was trained on {', '.join(sorted(trained))} "
                    f"series: {doing} it on series of that step"
                )
        return series

    def monitor_rows(self, ctx, rec, source_sql, source_label):
        """The rows are series: their complete windows (those EVALUATE backtests) are what the model reads."""
        from dbml.data.series import HISTORY, windows_sql

        series = self.series_of(ctx, rec, source_sql, source_label, "monitor")
        windows = windows_sql(f"SELECT * FROM (\n{source_sql}\n) AS src", series, int(rec["options"]["window"]),
                              int(rec["options"]["horizon"]))  # fmt: skip
        read = ", ".join([HISTORY, *(_q(c) for c in series.covariates)])
        return f"SELECT {read} FROM (\n{windows}\n) AS {HISTORY}_windows"

    def monitor_prediction(self, record, ref):
        """The first forecast value, against the first step's held-out forecasts."""
        import dbml.monitor as monitor

        return monitor.histogram_prediction(self.name, f"CAST((PREDICT({ref}, *))[1] AS DOUBLE)", record)

    def evaluation_layout(self, curves):
        n = min(len(curves.get("series") or []), 4)
        panels = tuple(Panel("series", item=i) for i in range(n)) or (Panel("series"),)
        return Layout(panels, max(n, 1), 1, (8.0, 3.0 * max(1, n)))
