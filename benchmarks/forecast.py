"""Held-out forecast accuracy and interval coverage of dbml's lstm and gru forecasters,
against seasonal naive and statsmodels Holt-Winters, on two public data sets that ship
with statsmodels.

Data sets:

* ``statsmodels``: seven series of three of its data sets, in two frequency groups:
  monthly (season 12): ``co2`` (weekly Mauna Loa CO2 resampled to monthly means, the 5
  empty months linearly interpolated) and ``elnino`` (the year x month sea surface
  temperature table melted to one monthly series); quarterly (season 4): ``macrodata``
  columns ``realgdp``, ``realcons``, ``realinv``, ``cpi`` and ``unemp``. The last two
  seasons of each series (24 months / 8 quarters) are held out.
* ``fertility``: the World Bank's fertility rate (births per woman) of the 192 countries
  with a value in every year from 1960 to 2011 (statsmodels' ``fertility``), one yearly
  series each (season 1); the last 6 years are held out.

For each frequency group one dbml model per architecture is trained on the rest of all
its series::

    TRAIN MODEL m USING lstm|gru FROM t TARGET y
        WITH (time = 't', series = 'id', horizon = <held-out steps>, seed = 0, progress = false)

(default window and default epochs/patience unless ``--epochs``), then ``FORECAST MODEL m
HORIZON <held-out steps> WITH (confidence = 0.9)`` forecasts from the end of the training
data. The baselines, fitted on the same training part of each series: seasonal naive (the
last season's values, repeated; the last value for a yearly series) and
``ExponentialSmoothing(trend='add', seasonal='add', seasonal_periods=m).fit()`` (no
seasonal part for a yearly series).

With ``--origins k`` each group is also trained and forecast k - 1 more times, each time
holding out the stretch of as many values before the last held-out one (a rolling origin:
more held-out values for the coverage).

Printed per data set: MAE per series for the four methods (the mean over the origins),
ratios against seasonal naive, the coverage of dbml's [lower, upper] on each series'
held-out values (``h``: how many); then a summary: the
geometric mean of MAE / seasonal naive, the share of series where dbml beats seasonal naive
and Holt-Winters, the coverage of all held-out values (with its binomial standard error)
against the stated 0.9, the mean distance of each series' coverage from 0.9, and the mean
interval score (width plus 2/alpha times the miss, over the series' seasonal naive MAE:
lower is better); training seconds.

Run it from the repository root (statsmodels is needed: ``pip install statsmodels``)::

    python benchmarks/forecast.py                       # both data sets, default epochs
    python benchmarks/forecast.py --epochs 50           # cap the epochs
    python benchmarks/forecast.py --data fertility      # one data set
    python benchmarks/forecast.py --origins 3           # three forecast origins per series
    python benchmarks/forecast.py --interval-scale none # the scale the conformal intervals are in
"""

import argparse
import math
import time
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
from statsmodels import datasets
from statsmodels.tsa.holtwinters import ExponentialSmoothing

import dbml
from dbml.data import series as dbml_series

SEED = 0
CONFIDENCE = 0.9
ARCHS = ("lstm", "gru")


def monthly():
    """Return ``{name: pd.Series}`` of monthly series indexed by month-start dates."""
    co2 = datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    el = datasets.elnino.load_pandas().data
    months = [c for c in el.columns if c != "YEAR"]
    long = el.melt(id_vars="YEAR", value_vars=months, var_name="month", value_name="v")
    long["date"] = pd.to_datetime({"year": long["YEAR"].astype(int),
                                   "month": long["month"].map({m: i + 1 for i, m in enumerate(months)}),
                                   "day": 1})
    elnino = long.set_index("date")["v"].sort_index()
    return {"co2": co2, "elnino": elnino}


def quarterly():
    """Return ``{name: pd.Series}`` of quarterly macrodata columns indexed by quarter-start dates."""
    mac = datasets.macrodata.load_pandas().data
    index = pd.to_datetime({"year": mac["year"].astype(int), "month": (mac["quarter"].astype(int) - 1) * 3 + 1,
                            "day": 1})
    return {c: pd.Series(mac[c].to_numpy(), index=index) for c in ("realgdp", "realcons", "realinv", "cpi", "unemp")}


def yearly_fertility():
    """Return ``{country code: pd.Series}`` of the countries with a fertility rate in every
    year 1960-2011, indexed by year-start dates."""
    d = datasets.fertility.load_pandas().data
    years = [str(y) for y in range(1960, 2012)]
    complete = d[d[years].notna().all(axis=1)]
    index = pd.to_datetime([f"{y}-01-01" for y in years])
    return {code: pd.Series(row[years].to_numpy(np.float64), index=index)
            for code, (_, row) in zip(complete["Country Code"], complete.iterrows())}


# data set -> {frequency group: (loader, season, held-out steps)}
DATASETS = {
    "statsmodels": {"monthly": (monthly, 12, 24), "quarterly": (quarterly, 4, 8)},
    "fertility": {"yearly": (yearly_fertility, 1, 6)},
}


def seasonal_naive(train, h, m):
    """The last season of ``train`` repeated over ``h`` steps."""
    last = np.asarray(train[-m:], dtype=np.float64)
    return np.array([last[k % m] for k in range(h)])


def holt_winters(train, h, m):
    """Additive-trend (and, for m > 1, additive-seasonal) Holt-Winters forecast; returns (forecast, seconds)."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seasonal = {"seasonal": "add", "seasonal_periods": m} if m > 1 else {}
        fit = ExponentialSmoothing(np.asarray(train, dtype=np.float64), trend="add", **seasonal).fit()
    return np.asarray(fit.forecast(h)), time.perf_counter() - start


def run_dbml(con, arch, table, h, epochs):
    """Train one forecaster over all series of ``table`` and forecast ``h`` steps from its end.

    Returns:
        ({series: DataFrame(t, forecast, lower, upper)}, train seconds, TRAIN's result row).
    """
    name = f"{arch}_{table}"
    extra = f", epochs = {epochs}" if epochs else ""
    start = time.perf_counter()
    result = con.sql(f"TRAIN MODEL {name} USING {arch} FROM {table} TARGET y WITH (time = 't', series = 'id', "
                     f"horizon = {h}, seed = {SEED}, progress = false{extra})")
    row = dict(zip(result.columns, result.fetchall()[0]))
    seconds = time.perf_counter() - start
    out = con.sql(f"FORECAST MODEL {name} HORIZON {h} WITH (confidence = {CONFIDENCE})").df()
    per = {k: g.sort_values("t").reset_index(drop=True) for k, g in out.groupby("id")}
    return per, seconds, row


def interval_score(lower, upper, actual, alpha=1 - CONFIDENCE):
    """The mean interval (Winkler) score of [lower, upper] at level 1 - alpha: lower is better."""
    return np.mean((upper - lower) + 2 / alpha * np.maximum(lower - actual, 0) + 2 / alpha * np.maximum(actual - upper, 0))


def run_dataset(con, data, epochs, origins, trains, problems):
    """Train and forecast every frequency group of data set ``data`` at each origin (origin
    j holds out the ``h`` values before the last ``j * h``); returns a row per series, its
    MAE the mean over the origins and its coverage over all its held-out values."""
    results = []
    for group, (loader, m, h) in DATASETS[data].items():
        series = loader()
        rows = {sid: {"series": sid, "freq": group, "n": len(s) - h, "h": 0, "naive": [], "hw": [], "hw_s": 0.0,
                      **{k: [] for a in ARCHS for k in (a, a + "_cov", a + "_is")}} for sid, s in series.items()}  # fmt: skip
        for origin in range(origins):
            cut = h * (origin + 1)  # the values after the training part
            table = f"train_{group}_{origin}"
            frames = [pd.DataFrame({"id": sid, "t": s.index[:-cut].date, "y": s.to_numpy()[:-cut]}) for sid, s in series.items()]
            con.duckdb.register(f"{table}_arrow", pa.Table.from_pandas(pd.concat(frames), preserve_index=False))
            con.sql(f"CREATE OR REPLACE TABLE {table} AS SELECT id, t, y FROM {table}_arrow")
            fc = {}
            for arch in ARCHS:
                per, seconds, row = run_dbml(con, arch, table, h, epochs)
                fc[arch] = per
                trains.append((data, f"{group}@{origin}", arch, len(series), seconds, row.get("epochs"), row["train_rows"],
                               row["metrics"].get("mase")))  # fmt: skip
            for sid, s in series.items():
                values = s.to_numpy()
                train, test = values[:-cut], values[len(values) - cut : len(values) - cut + h]
                naive = np.mean(np.abs(seasonal_naive(train, h, m) - test))
                r = rows[sid]
                r["h"] += h
                r["naive"].append(naive)
                hw, hw_s = holt_winters(train, h, m)
                r["hw"].append(np.mean(np.abs(hw - test)))
                r["hw_s"] += hw_s
                for arch in ARCHS:
                    f = fc[arch].get(sid)
                    if f is None or len(f) != h:
                        problems.append(f"{arch} {group}@{origin} {sid}: {0 if f is None else len(f)} forecast rows, expected {h}")
                        continue
                    want = list(s.index[len(values) - cut : len(values) - cut + h].date)
                    got = [pd.Timestamp(t).date() for t in f["t"]]
                    if got != want:
                        problems.append(f"{arch} {group}@{origin} {sid}: forecast times {got[0]}..{got[-1]}, "
                                        f"held-out times {want[0]}..{want[-1]}")  # fmt: skip
                    lower, upper = f["lower"].to_numpy(), f["upper"].to_numpy()
                    r[arch].append(np.mean(np.abs(f["forecast"].to_numpy() - test)))
                    r[arch + "_cov"].append(np.mean((lower <= test) & (test <= upper)))
                    r[arch + "_is"].append(interval_score(lower, upper, test) / naive if naive > 0 else float("nan"))
        for r in rows.values():  # the means over the origins
            results.append({k: (float(np.mean(v)) if v else float("nan")) if isinstance(v, list) else v for k, v in r.items()})
    return results


def report(data, results):
    """Print the per-series table and the summary of data set ``data``."""
    header = (f"{'series':<10}{'freq':<10}{'train':>6}{'h':>4}{'naive':>10}{'hw':>10}{'lstm':>10}{'gru':>10}"
              f"{'hw/sn':>7}{'lstm/sn':>8}{'gru/sn':>7}{'cov lstm':>9}{'cov gru':>8}")
    print(f"\n=== {data}: MAE on the held-out values (the mean over the origins); ratios against seasonal naive (sn); "
          f"cov = share of held-out values in dbml's [lower, upper] at confidence {CONFIDENCE}; h = held-out values")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['series']:<10}{r['freq']:<10}{r['n']:>6}{r['h']:>4}{r['naive']:>10.4g}{r['hw']:>10.4g}"
              f"{r['lstm']:>10.4g}{r['gru']:>10.4g}{r['hw'] / r['naive']:>7.2f}{r['lstm'] / r['naive']:>8.2f}"
              f"{r['gru'] / r['naive']:>7.2f}{r['lstm_cov']:>9.2f}{r['gru_cov']:>8.2f}")
    print(f"\nsummary of {data} over {len(results)} series")
    points = sum(r["h"] for r in results)
    for arch in ARCHS:
        ratios = np.array([r[arch] / r["naive"] for r in results])
        beats_sn = np.mean([r[arch] < r["naive"] for r in results])
        beats_hw = np.mean([r[arch] < r["hw"] for r in results])
        covered = sum(r[arch + "_cov"] * r["h"] for r in results) / points
        se = math.sqrt(CONFIDENCE * (1 - CONFIDENCE) / points)
        spread = np.nanmean([abs(r[arch + "_cov"] - CONFIDENCE) for r in results])
        score = np.nanmean([r[arch + "_is"] for r in results])
        print(f"  {arch:<5} geo-mean MAE/sn {np.exp(np.nanmean(np.log(ratios))):.2f}   beats sn {beats_sn:.0%}   "
              f"beats hw {beats_hw:.0%}   coverage {covered:.3f} of {points} values (stated {CONFIDENCE}, "
              f"binomial s.e. {se:.3f})   per-series |cov - {CONFIDENCE}| {spread:.3f}   interval score/sn {score:.2f}")
    hw_ratios = np.array([r["hw"] / r["naive"] for r in results])
    print(f"  hw    geo-mean MAE/sn {np.exp(np.mean(np.log(hw_ratios))):.2f}   beats sn {np.mean(hw_ratios < 1):.0%}")


def main():
    """Parse the options, run the data sets and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=0, help="cap dbml's epochs (0: dbml's default)")
    parser.add_argument("--data", choices=[*DATASETS, "all"], default="all", help="the data set(s) to run")
    parser.add_argument("--origins", type=int, default=1,
                        help="forecast origins per series (1: the held-out values are the last ones; k: also the k - 1 "
                             "stretches of as many values before them, a model trained for each)")  # fmt: skip
    parser.add_argument("--interval-scale", choices=["series", "std", "diff", "none"], default=None,
                        help="the window scale of the conformal half-widths (default: dbml's, "
                             f"{dbml_series.INTERVAL_SCALE!r})")  # fmt: skip
    args = parser.parse_args()
    if args.interval_scale is not None:  # a measurement of the choice: dbml reads it when it trains
        dbml_series.INTERVAL_SCALE = None if args.interval_scale == "none" else args.interval_scale
    print(f"interval scale {dbml_series.INTERVAL_SCALE!r}; epochs {args.epochs or 'default'}; origins {args.origins}")
    con = dbml.connect()
    trains, problems, all_results = [], [], {}
    for data in DATASETS if args.data == "all" else [args.data]:
        all_results[data] = run_dataset(con, data, args.epochs, args.origins, trains, problems)
    for data, results in all_results.items():
        report(data, results)

    print("\ntraining seconds")
    for data, group, arch, n, seconds, epochs, rows, mase in trains:
        print(f"  dbml {arch:<5}{data:<12}{group:<12}{n:>4} series {rows:>6} training windows  {seconds:7.2f} s  "
              f"epochs {epochs:>4}  validation MASE {mase:.2f}")
    for data, results in all_results.items():
        for group in DATASETS[data]:
            total = sum(r["hw_s"] for r in results if r["freq"] == group)
            print(f"  holt-winters {data:<12}{group:<10}{total:7.2f} s (all its series and origins)")
    if problems:
        print("\nproblems")
        for p in problems:
            print("  " + p)


if __name__ == "__main__":
    main()
