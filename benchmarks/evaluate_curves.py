"""What storing an EVALUATE run's pictures costs: EVALUATE with ``curves = true`` (the
default: a second pass over the source for the confusion matrix, binned ROC/PR and
calibration, or a regression sample) against ``curves = false``, and the PREDICT scan
alone as the floor, on the same tables in one run. Prints seconds (best of R) and the
ratios to EVALUATE without curves, since absolute times drift on shared machines.

Run: python benchmarks/evaluate_curves.py [--rows N] [--repeats R]
"""

from __future__ import annotations

import argparse
import time

import dbml


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    con = dbml.connect()
    con.execute(
        "CREATE TABLE t AS SELECT (i * 7919 % 1000) / 1000.0 AS a, (i * 104729 % 997) / 997.0 AS b, "
        "['x', 'y', 'z'][1 + i % 3] AS c, (i * 7919 % 1000) / 1000.0 + (i * 104729 % 997) / 997.0 * 0.5 AS r, "
        "CASE WHEN (i * 7919 % 1000) / 1000.0 > 0.5 THEN 'yes' ELSE 'no' END AS y, "
        "['p', 'q', 'r', 's'][1 + (i * 31 % 4)] AS k FROM range(?) AS s(i)",
        [args.rows],
    )
    con.sql("TRAIN MODEL bin FROM (SELECT a, b, c, y FROM t LIMIT 20000) TARGET y WITH (epochs = 3, verbose = 0)")
    con.sql("TRAIN MODEL multi FROM (SELECT a, b, c, k FROM t LIMIT 20000) TARGET k WITH (epochs = 3, verbose = 0)")
    con.sql("TRAIN MODEL reg FROM (SELECT a, b, c, r FROM t LIMIT 20000) TARGET r WITH (epochs = 3, verbose = 0)")
    print(f"{args.rows:,} rows, best of {args.repeats}")
    print(f"{'model':8} {'PREDICT scan s':>15} {'curves=false s':>15} {'curves=true s':>14} {'true/false':>11} {'scan/false':>11}")
    for model in ("bin", "multi", "reg"):
        scan = best(lambda: con.sql(f"SELECT sum(hash(PREDICT({model}, *))) FROM t").fetchall(), args.repeats)
        off = best(lambda: con.sql(f"EVALUATE MODEL {model} ON (SELECT * FROM t) WITH (curves = false)").fetchall(), args.repeats)
        on = best(lambda: con.sql(f"EVALUATE MODEL {model} ON (SELECT * FROM t)").fetchall(), args.repeats)
        print(f"{model:8} {scan:15.3f} {off:15.3f} {on:14.3f} {on / off:11.2f} {scan / off:11.2f}")


if __name__ == "__main__":
    main()
