"""Held-out accuracy of dbml's default TRAIN MODEL against a scikit-learn MLP.

For each small data set that ships with scikit-learn (plus one synthetic
5,000-row classification set) this script makes one seeded train/test split,
trains a dbml model with default options (``TRAIN MODEL ... WITH (progress =
false)``) and scores the test rows with ``PREDICT`` in SQL, then trains the
baseline ``make_pipeline(StandardScaler(), MLPClassifier/MLPRegressor)`` on the
same split. It reports accuracy (classification) or R² (regression) for both,
the difference in points (x100), training times and dbml's epochs.

Run it from the repository root::

    python benchmarks/accuracy.py            # one split (seed 0)
    python benchmarks/accuracy.py --seeds 3  # splits 0..2, plus mean difference
    python benchmarks/accuracy.py --seeds 3 --compare "refit = false"  # and dbml with these options, same splits
"""

import argparse
import re
import time
import warnings

import numpy as np
import pyarrow as pa
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Bunch

import dbml


def synthetic():
    """Return a 5,000-row, 20-feature, 3-class synthetic sklearn Bunch."""
    X, y = datasets.make_classification(
        n_samples=5000, n_features=20, n_informative=8, n_redundant=4,
        n_classes=3, random_state=0)
    return Bunch(data=X, target=y, feature_names=[f"x{i}" for i in range(20)])


DATASETS = {  # name -> (loader, task)
    "iris": (datasets.load_iris, "classification"),
    "wine": (datasets.load_wine, "classification"),
    "breast_cancer": (datasets.load_breast_cancer, "classification"),
    "digits": (datasets.load_digits, "classification"),
    "diabetes": (datasets.load_diabetes, "regression"),
    "synthetic": (synthetic, "classification"),
}


def snake(name):
    """Turn a sklearn feature name such as ``'sepal length (cm)'`` into ``sepal_length_cm``."""
    name = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    return f"f_{name}" if name[0].isdigit() else name


def to_arrow(X, y, columns):
    """Build an Arrow table of feature columns plus a ``target`` column."""
    return pa.table({**{c: X[:, i] for i, c in enumerate(columns)}, "target": y})


def run_dbml(name, task, train, test, extra=""):
    """Train with default dbml options and score the test table in SQL.

    Returns:
        (metric, train seconds, epochs) where metric is accuracy or R².
    """
    con = dbml.connect()
    for kind, table in (("train", train), ("test", test)):
        con.duckdb.register(f"{kind}_arrow", table)
        con.sql(f"CREATE TABLE {kind}_{name} AS SELECT * FROM {kind}_arrow")
    start = time.perf_counter()
    result = con.sql(f"TRAIN MODEL {name} FROM train_{name} TARGET target WITH (progress = false{extra})")
    row = dict(zip(result.columns, result.fetchall()[0]))
    seconds = time.perf_counter() - start
    if task == "classification":
        query = f"SELECT avg((PREDICT({name}, *) = target)::DOUBLE) FROM test_{name}"
    else:
        query = (f"SELECT 1 - sum((target - PREDICT({name}, *)) ^ 2) / sum((target - m) ^ 2) "
                 f"FROM test_{name}, (SELECT avg(target) AS m FROM test_{name})")
    metric = con.sql(query).fetchall()[0][0]
    con.close()
    return metric, seconds, row["epochs"]


def run_sklearn(task, X_train, y_train, X_test, y_test):
    """Train the StandardScaler + MLP baseline; return (metric, train seconds)."""
    mlp = (MLPClassifier(random_state=0, max_iter=500) if task == "classification"
           else MLPRegressor(random_state=0, max_iter=1000))
    model = make_pipeline(StandardScaler(), mlp)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    score = accuracy_score if task == "classification" else r2_score
    return score(y_test, model.predict(X_test)), seconds


def main():
    """Parse ``--seeds``, run every data set for every split seed and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="number of split seeds (0..N-1)")
    parser.add_argument("--compare", default="", help="options of a second dbml run on the same splits, e.g. 'refit = false'")
    args = parser.parse_args()
    header = (f"{'data set':<14}{'seed':>5}{'rows':>6}  {'task':<15}{'metric':<9}{'sklearn':>8}"
              f"{'dbml':>8}{'diff':>7}{'dbml s':>8}{'skl s':>7}{'epochs':>7}"
              + (f"{'other':>8}{'diff':>7}" if args.compare else ""))
    if args.compare:
        print(f"other: dbml WITH ({args.compare}); diff: other - sklearn")
    others = {}
    print(header)
    print("-" * len(header))
    diffs = {}
    for name, (loader, task) in DATASETS.items():
        bunch = loader()
        X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
        columns = [snake(str(c)) for c in bunch.feature_names]
        for seed in range(args.seeds):
            X_tr, X_te, y_tr, y_te = train_test_split(
                X, y, test_size=0.25, random_state=seed,
                stratify=y if task == "classification" else None)
            ours, ours_s, epochs = run_dbml(name, task, to_arrow(X_tr, y_tr, columns),
                                            to_arrow(X_te, y_te, columns))
            theirs, theirs_s = run_sklearn(task, X_tr, y_tr, X_te, y_te)
            diff = 100 * (ours - theirs)
            tail = ""
            if args.compare:
                other, _, _ = run_dbml(name, task, to_arrow(X_tr, y_tr, columns), to_arrow(X_te, y_te, columns),
                                       ", " + args.compare)
                others.setdefault(name, []).append(100 * (other - theirs))
                tail = f"{other:>8.4f}{100 * (other - theirs):>+7.2f}"
            diffs.setdefault(name, []).append(diff)
            metric = "accuracy" if task == "classification" else "R2"
            print(f"{name:<14}{seed:>5}{len(X):>6}  {task:<15}{metric:<9}{theirs:>8.4f}{ours:>8.4f}"
                  f"{diff:>+7.2f}{ours_s:>8.2f}{theirs_s:>7.2f}{epochs:>7}{tail}", flush=True)
    print("\nmean difference dbml - sklearn (points x100) over", args.seeds, "seed(s):")
    for name, values in diffs.items():
        line = f"  {name:<14}{np.mean(values):>+7.2f}   (min {min(values):+.2f}, max {max(values):+.2f})"
        if name in others:
            line += f"   other {np.mean(others[name]):+.2f}"
        print(line)


if __name__ == "__main__":
    main()
