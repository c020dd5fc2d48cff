"""Held-out forecast accuracy of dbml's lstm and gru forecasters against seasonal naive
and statsmodels Holt-Winters.

Series (all ship with statsmodels' datasets):

* monthly (season 12): ``co2`` (weekly Mauna Loa CO2 resampled to monthly means,
  the 5 empty months linearly interpolated) and ``elnino`` (the year x month sea
  surface temperature table melted to one monthly series);
* quarterly (season 4): ``macrodata`` columns ``realgdp``, ``realcons``,
  ``realinv``, ``cpi`` and ``unemp``.

The last two seasons of each series (24 months / 8 quarters) are held out. For each
frequency one dbml model per architecture is trained on the rest of all its series::

    TRAIN MODEL m USING lstm|gru FROM t TARGET y
        WITH (time = 't', series = 'id', horizon = <two seasons>, seed = 0, progress = false)

(default window, i.e. two seasons, and default epochs/patience unless ``--epochs``),
then ``FORECAST MODEL m HORIZON <two seasons> WITH (confidence = 0.9)`` forecasts from
the end of the training data. The baselines, fitted on the same training part of each
series: seasonal naive (the last season's values, repeated) and
``ExponentialSmoothing(trend='add', seasonal='add', seasonal_periods=m).fit()``.

Printed: MAE per series for the four methods, ratios against seasonal naive, the
coverage of dbml's [lower, upper] on the held-out values, the share of series where
dbml beats seasonal naive and Holt-Winters, and training seconds.

Run it from the repository root (statsmodels is needed: ``pip install statsmodels``)::

    python benchmarks/forecast.py              # default epochs
    python benchmarks/forecast.py --epochs 50  # cap the epochs
"""

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
from statsmodels import datasets
from statsmodels.tsa.holtwinters import ExponentialSmoothing

import dbml

SEED = 0
CONFIDENCE = 0.9


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


FREQUENCIES = {"monthly": (monthly, 12), "quarterly": (quarterly, 4)}  # name -> (loader, season)


def seasonal_naive(train, h, m):
    """The last season of ``train`` repeated over ``h`` steps."""
    last = np.asarray(train[-m:], dtype=np.float64)
    return np.array([last[k % m] for k in range(h)])


def holt_winters(train, h, m):
    """Additive-trend, additive-seasonal Holt-Winters forecast; returns (forecast, seconds)."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(np.asarray(train, dtype=np.float64), trend="add", seasonal="add",
                                   seasonal_periods=m).fit()
    return np.asarray(fit.forecast(h)), time.perf_counter() - start


def run_dbml(con, arch, freq, h, epochs):
    """Train one forecaster over all series of ``train_<freq>`` and forecast ``h`` steps from its end.

    Returns:
        ({series: DataFrame(t, forecast, lower, upper)}, train seconds, epochs, TRAIN's result row).
    """
    name = f"{arch}_{freq}"
    extra = f", epochs = {epochs}" if epochs else ""
    start = time.perf_counter()
    result = con.sql(f"TRAIN MODEL {name} USING {arch} FROM train_{freq} TARGET y WITH (time = 't', series = 'id', "
                     f"horizon = {h}, seed = {SEED}, progress = false{extra})")
    row = dict(zip(result.columns, result.fetchall()[0]))
    seconds = time.perf_counter() - start
    out = con.sql(f"FORECAST MODEL {name} HORIZON {h} WITH (confidence = {CONFIDENCE})").df()
    per = {k: g.sort_values("t").reset_index(drop=True) for k, g in out.groupby("id")}
    return per, seconds, row.get("epochs"), row


def main():
    """Parse ``--epochs``, run both frequencies and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=0, help="cap dbml's epochs (0: dbml's default)")
    args = parser.parse_args()
    archs = ("lstm", "gru")
    con = dbml.connect()
    results, trains, problems = [], [], []
    for freq, (loader, m) in FREQUENCIES.items():
        series, h = loader(), 2 * m
        frames = []
        for sid, s in series.items():
            frames.append(pd.DataFrame({"id": sid, "t": s.index[:-h].date, "y": s.to_numpy()[:-h]}))
        con.duckdb.register(f"train_{freq}_arrow", pa.Table.from_pandas(pd.concat(frames), preserve_index=False))
        con.sql(f"CREATE TABLE train_{freq} AS SELECT id, t, y FROM train_{freq}_arrow")
        fc = {}
        for arch in archs:
            per, seconds, epochs, row = run_dbml(con, arch, freq, h, args.epochs)
            fc[arch] = per
            trains.append((freq, arch, len(series), seconds, epochs, row["train_rows"], row["metrics"].get("mase")))
        for sid, s in series.items():
            train, test = s.to_numpy()[:-h], s.to_numpy()[-h:]
            r = {"series": sid, "freq": freq, "n": len(train), "h": h,
                 "naive": np.mean(np.abs(seasonal_naive(train, h, m) - test))}
            hw, hw_s = holt_winters(train, h, m)
            r["hw"], r["hw_s"] = np.mean(np.abs(hw - test)), hw_s
            for arch in archs:
                f = fc[arch].get(sid)
                if f is None or len(f) != h:
                    problems.append(f"{arch} {freq} {sid}: {0 if f is None else len(f)} forecast rows, expected {h}")
                    r[arch], r[arch + "_cov"] = float("nan"), float("nan")
                    continue
                want = list(s.index[-h:].date)
                got = [pd.Timestamp(t).date() for t in f["t"]]
                if got != want:
                    problems.append(f"{arch} {freq} {sid}: forecast times {got[0]}..{got[-1]}, "
                                    f"held-out times {want[0]}..{want[-1]}")
                r[arch] = np.mean(np.abs(f["forecast"].to_numpy() - test))
                r[arch + "_cov"] = np.mean((f["lower"].to_numpy() <= test) & (test <= f["upper"].to_numpy()))
            results.append(r)

    header = (f"{'series':<10}{'freq':<10}{'train':>6}{'h':>4}{'naive':>10}{'hw':>10}{'lstm':>10}{'gru':>10}"
              f"{'hw/sn':>7}{'lstm/sn':>8}{'gru/sn':>7}{'cov lstm':>9}{'cov gru':>8}")
    print(f"MAE on the held-out last two seasons; ratios against seasonal naive (sn); "
          f"cov = share of held-out values in dbml's [lower, upper] at confidence {CONFIDENCE}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['series']:<10}{r['freq']:<10}{r['n']:>6}{r['h']:>4}{r['naive']:>10.4g}{r['hw']:>10.4g}"
              f"{r['lstm']:>10.4g}{r['gru']:>10.4g}{r['hw'] / r['naive']:>7.2f}{r['lstm'] / r['naive']:>8.2f}"
              f"{r['gru'] / r['naive']:>7.2f}{r['lstm_cov']:>9.2f}{r['gru_cov']:>8.2f}")

    print("\nsummary over", len(results), "series")
    for arch in archs:
        ratios = np.array([r[arch] / r["naive"] for r in results])
        beats_sn = np.mean([r[arch] < r["naive"] for r in results])
        beats_hw = np.mean([r[arch] < r["hw"] for r in results])
        cov = np.mean([r[arch + "_cov"] for r in results])
        print(f"  {arch:<5} geo-mean MAE/sn {np.exp(np.nanmean(np.log(ratios))):.2f}   beats sn {beats_sn:.0%}   "
              f"beats hw {beats_hw:.0%}   mean coverage {cov:.2f} (target {CONFIDENCE})")
    hw_ratios = np.array([r["hw"] / r["naive"] for r in results])
    print(f"  hw    geo-mean MAE/sn {np.exp(np.mean(np.log(hw_ratios))):.2f}   "
          f"beats sn {np.mean(hw_ratios < 1):.0%}")

    print("\ntraining seconds")
    for freq, arch, n, seconds, epochs, rows, mase in trains:
        print(f"  dbml {arch:<5}{freq:<10}{n} series {rows:>5} training windows  {seconds:7.2f} s  epochs {epochs:>4}"
              f"  validation MASE {mase:.2f}")
    for freq in FREQUENCIES:
        total = sum(r["hw_s"] for r in results if r["freq"] == freq)
        print(f"  holt-winters {freq:<10}{total:7.2f} s (all its series)")
    if problems:
        print("\nproblems")
        for p in problems:
            print("  " + p)


if __name__ == "__main__":
    main()
