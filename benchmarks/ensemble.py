"""What option ``ensemble`` costs: TRAIN and PREDICT of one network against N, same rows,
same process, measured in turn (ratios; absolute times drift on a shared machine).

A classification table of ``--rows`` rows (8 numbers and a 4-valued category; the label
depends on an interaction) trains ``ensemble = 1`` and ``ensemble = N`` with default
options otherwise; PREDICT then scores ``--score-rows`` rows with each, ``--repeats``
times alternating, and the script prints the medians and the ratios, with both versions'
held-out accuracy (the averaging's gain on this table).

Run from the repository root::

    python benchmarks/ensemble.py                   # 2,000 training rows, 200,000 scored, N = 5
    python benchmarks/ensemble.py --members 3 --rows 5000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

import dbml


def table(rng: np.random.Generator, n: int, labelled: bool) -> pa.Table:
    x = rng.normal(size=(n, 8))
    cols = {f"x{i}": x[:, i] for i in range(8)}
    cols["c"] = rng.choice(["a", "b", "c", "d"], n)
    if labelled:
        cols["y"] = (x[:, 0] + x[:, 1] * x[:, 2] + 0.5 * (cols["c"] == "b") + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    return pa.table(cols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="training rows (default 2000)")
    parser.add_argument("--score-rows", type=int, default=200_000, help="rows PREDICT scores (default 200000)")
    parser.add_argument("--members", type=int, default=5, help="networks of the ensemble (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="PREDICT runs of each version (default 5)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    con = dbml.connect()
    for name, frame in (("t", table(rng, args.rows, True)), ("h", table(rng, 5000, True)),
                        ("score_rows", table(rng, args.score_rows, False))):  # fmt: skip
        con.duckdb.register(f"{name}_frame", frame)
        con.sql(f"CREATE TABLE {name} AS SELECT * FROM {name}_frame")
        con.duckdb.unregister(f"{name}_frame")
    counts = (1, args.members)
    con.sql("TRAIN MODEL warm FROM t TARGET y WITH (epochs = 1, verbose = 0)")  # imports and first-call costs, untimed
    train_s, accuracy = {}, {}
    for k in counts:
        started = time.perf_counter()
        con.sql(f"TRAIN MODEL m{k} FROM t TARGET y WITH (ensemble = {k}, verbose = 0)")
        train_s[k] = time.perf_counter() - started
        accuracy[k] = con.sql(f"SELECT avg((PREDICT(m{k}, * EXCLUDE (y)) = y)::INT) FROM h").fetchall()[0][0]
    predict_s = {k: [] for k in counts}
    for _ in range(args.repeats):
        for k in counts:
            started = time.perf_counter()
            con.sql(f"SELECT sum(PREDICT(m{k}, *)::INT) FROM score_rows").fetchall()
            predict_s[k].append(time.perf_counter() - started)
    one, many = counts
    p1, pn = float(np.median(predict_s[one])), float(np.median(predict_s[many]))
    print(f"{args.rows:,} training rows, {args.score_rows:,} scored; dbml {getattr(dbml, '__version__', '?')}")
    print(f"{'':<22}{'1 network':>12}{f'{many} networks':>14}{'ratio':>8}")
    print(f"{'TRAIN s':<22}{train_s[one]:>12.2f}{train_s[many]:>14.2f}{train_s[many] / train_s[one]:>7.2f}x")
    print(f"{'PREDICT s (median)':<22}{p1:>12.3f}{pn:>14.3f}{pn / p1:>7.2f}x")
    print(f"{'held-out accuracy':<22}{accuracy[one]:>12.4f}{accuracy[many]:>14.4f}{accuracy[many] - accuracy[one]:>+8.4f}")


if __name__ == "__main__":
    main()
