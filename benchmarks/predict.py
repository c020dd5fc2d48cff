"""PREDICT in SQL against plain onnxruntime on the same rows.

What it measures, on one table of N rows (20 DOUBLE features, K VARCHAR category
columns, a yes/no target) and one small MLP trained on 20,000 of them:

* dbml: ``SELECT sum(hash(PREDICT(m, *))) FROM t`` (the aggregate keeps result
  transfer out of the figure) and ``CREATE TEMP TABLE .. AS SELECT PREDICT(m, *)``.
* a no-op Arrow UDF with PREDICT's arguments (same casts, same types) that returns
  a constant column: the floor of scanning, casting and calling Python.
* plain onnxruntime outside DuckDB on the same encoded rows, fetched once as Arrow:
  in batches of 2,048 (DuckDB's vector size) and in one batch, with one intra-op
  thread and with onnxruntime's default; "prebuilt" feeds time ``session.run`` only,
  "+ arrow_feeds" also converts each Arrow batch as the UDF does.

Each figure is the best of ``--repeat`` runs. The headline is the ratio of PREDICT's
rows/s to plain onnxruntime's, since absolute figures depend on the machine.

Run::

    python benchmarks/predict.py [--rows N] [--categories K] [--repeat R] [--threads T]
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import time
from typing import Callable

import duckdb
import numpy as np
import onnxruntime as ort
import pyarrow as pa
from duckdb import sqltypes
from sqlglot import exp

import dbml
from dbml.features import FeatureSpec, feature_sql
from dbml.runtime import arrow_feeds, new_session

N_NUMERIC = 20
BATCH = 2048


def build_table(con: duckdb.DuckDBPyConnection, rows: int, categories: int) -> None:
    """Create table ``t``: deterministic pseudo-random features (hash of the row number) and a target.

    Args:
        con: the raw DuckDB connection.
        rows: number of rows.
        categories: number of VARCHAR category columns (10 values each).
    """
    cols = [f"(hash(i, {k}) % 1000000) / 1000000.0 AS f{k}" for k in range(N_NUMERIC)]
    cols += [f"'c' || (hash(i, {100 + k}) % 10)::VARCHAR AS c{k}" for k in range(categories)]
    bump = " + 0.5 * (c0 IN ('c1', 'c2'))::INT" if categories else ""
    con.execute(
        f"CREATE OR REPLACE TABLE t AS SELECT *, CASE WHEN f0 + f1 - f2{bump} > 0.5 THEN 'yes' ELSE 'no' END AS y "
        f"FROM (SELECT {', '.join(cols)} FROM range({rows}) r(i))"
    )


def best_times(measures: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """The shortest wall time of each callable over ``repeat`` rounds, in seconds.

    Rounds run every measure in turn, so a burst of load elsewhere on the machine
    hits all of them alike rather than one.
    """
    best = {name: float("inf") for name in measures}
    for _ in range(repeat):
        for name, fn in measures.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def noop_udf(n_args: int, value: str) -> Callable[..., pa.Array]:
    """An Arrow UDF of ``n_args`` arguments that returns ``value`` on every row."""
    one = pa.array([value], type=pa.string())

    def udf(*columns: pa.Array) -> pa.Array:
        return pa.repeat(one[0], len(columns[0]))

    udf.__signature__ = inspect.Signature(
        [inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(n_args)]
    )
    return udf


def ort_runner(session: ort.InferenceSession, batches: list, features: tuple[FeatureSpec, ...], convert: bool):
    """A callable that scores every batch with plain onnxruntime.

    Args:
        session: the onnxruntime session of the model's blob.
        batches: prebuilt feeds (dicts of numpy arrays), or lists of Arrow columns.
        features: the model's features, in input order.
        convert: the batches are Arrow columns; build feeds with ``arrow_feeds`` and turn
            the labels into an Arrow array, as the UDF does.
    """

    def run() -> None:
        for batch in batches:
            feeds = arrow_feeds(features, batch) if convert else batch
            label = session.run(["label"], feeds)[0]
            if convert:
                pa.array(label.reshape(-1), type=pa.string())

    return run


def main() -> None:
    """Build the table, train the model, run every measure and print the table of rows/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--categories", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="DuckDB threads")
    parser.add_argument("--train-rows", type=int, default=20_000)
    args = parser.parse_args()

    con = dbml.connect(threads=args.threads)
    duck = con.duckdb
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"python {platform.python_version()}, duckdb {duckdb.__version__}, onnxruntime {ort.__version__}, "
          f"pyarrow {pa.__version__}, numpy {np.__version__}, dbml {dbml.__version__}")  # fmt: skip

    start = time.perf_counter()
    build_table(duck, args.rows, args.categories)
    print(f"table: {args.rows:,} rows, {N_NUMERIC} numeric + {args.categories} category features "
          f"({time.perf_counter() - start:.1f}s)")  # fmt: skip
    start = time.perf_counter()
    con.sql(f"TRAIN MODEL m FROM (SELECT * FROM t LIMIT {args.train_rows}) TARGET y "
            "WITH (epochs = 2, hidden = [64, 32], progress = false)")  # fmt: skip
    print(f"model: MLP [64, 32] trained on {args.train_rows:,} rows ({time.perf_counter() - start:.1f}s)")

    sig = con.signature("m")  # registers the UDF and builds the cached session
    features = sig.features
    predict_sql = con.rewrite("SELECT sum(hash(PREDICT(m, *))) FROM t")
    table_sql = con.rewrite("CREATE OR REPLACE TEMP TABLE out AS SELECT PREDICT(m, *) AS p FROM t")
    duck.create_function("bench_noop", noop_udf(len(features), "no"),
                         [sqltypes.VARCHAR if f.kind == "category" else sqltypes.FLOAT for f in features],
                         sqltypes.VARCHAR, type="arrow", null_handling="special", side_effects=False)  # fmt: skip
    noop_sql = predict_sql.replace(f"{sig.functions['PREDICT']}(", "bench_noop(")

    # The encoded feature columns, exactly as PREDICT's UDF receives them, fetched once.
    encoded = [feature_sql(f, exp.column(f.name, quoted=True)).sql(dialect="duckdb") for f in features]
    start = time.perf_counter()
    data = duck.sql(f"SELECT {', '.join(encoded)} FROM t").to_arrow_table()
    fetch_s = time.perf_counter() - start
    starts = range(0, data.num_rows, BATCH)
    arrow_batches = [[c.combine_chunks() for c in data.slice(i, BATCH).columns] for i in starts]
    feed_batches = [arrow_feeds(features, b) for b in arrow_batches]
    whole = [arrow_feeds(features, data.columns)]
    blob = bytes(duck.sql("SELECT onnx FROM dbml.model_blobs WHERE model = 'm' AND version = 1").fetchall()[0][0])
    one, default = new_session(blob, threads=1), new_session(blob, threads=0)

    def predict_one_thread() -> None:
        duck.execute("SET threads = 1")
        try:
            duck.sql(predict_sql).fetchall()
        finally:
            duck.execute(f"SET threads = {args.threads}")

    measures: dict[str, Callable[[], object]] = {
        "dbml PREDICT, sum(hash(..))": lambda: duck.sql(predict_sql).fetchall(),
        "dbml PREDICT, sum(hash(..)), DuckDB 1 thread": predict_one_thread,
        "dbml PREDICT, CREATE TEMP TABLE": lambda: duck.execute(table_sql).fetchall(),
        "no-op Arrow UDF, same arguments": lambda: duck.sql(noop_sql).fetchall(),
        "ort 1 thread, 2,048/batch, prebuilt": ort_runner(one, feed_batches, features, False),
        "ort 1 thread, 2,048/batch, + arrow_feeds": ort_runner(one, arrow_batches, features, True),
        "ort default threads, 2,048/batch, prebuilt": ort_runner(default, feed_batches, features, False),
        "ort 1 thread, one batch, prebuilt": ort_runner(one, whole, features, False),
        "ort default threads, one batch, prebuilt": ort_runner(default, whole, features, False),
    }
    best_times(measures, 1)  # warm-up: caches, allocator, lazy initialisation
    rate = {name: args.rows / seconds for name, seconds in best_times(measures, args.repeat).items()}

    reference = "ort 1 thread, 2,048/batch, prebuilt"
    best_ort = max(v for k, v in rate.items() if k.startswith("ort"))
    print(f"\nDuckDB threads: {args.threads}; feature fetch as Arrow (not in the figures): "
          f"{fetch_s:.2f}s; best of {args.repeat}\n")  # fmt: skip
    print(f"{'measure':<48}{'rows/s':>14}{'vs ref':>9}")
    for name, value in rate.items():
        print(f"{name:<48}{value:>14,.0f}{value / rate[reference]:>9.2f}")
    headline, single = rate["dbml PREDICT, sum(hash(..))"], rate["dbml PREDICT, sum(hash(..)), DuckDB 1 thread"]
    print(f"\nratio PREDICT / ref ({reference}): {headline / rate[reference]:.2f}")
    print(f"ratio PREDICT, DuckDB 1 thread / ref: {single / rate[reference]:.2f}")
    print(f"ratio PREDICT / best plain onnxruntime: {headline / best_ort:.2f}")
    print(f"ratio PREDICT / no-op UDF floor: {headline / rate['no-op Arrow UDF, same arguments']:.2f}")


if __name__ == "__main__":
    main()
