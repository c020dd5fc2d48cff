"""What each lifecycle statement costs on a large table.

Builds N rows (default 1,000,000) of 8 numeric and 2 category features with a binary
target, then times, on the same data in the same run: TRAIN MODEL (a bounded number of
epochs), a plain full scan, PREDICT over every row, EVALUATE, EXPLAIN (repeats = 1),
MONITOR, ALTER MODEL, EXPORT and IMPORT. Each time is also printed as a ratio to the
PREDICT scan measured in the same run, since absolute times drift on shared machines.

Run: python benchmarks/lifecycle.py [--rows N] [--epochs E]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import dbml


def timed(label: str, fn, results: list) -> None:
    started = time.perf_counter()
    fn()
    results.append((label, time.perf_counter() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    con = dbml.connect()
    con.sql(
        f"""
        CREATE TABLE big AS
        SELECT (hash(i, 1) % 1000) / 100.0 AS f1, (hash(i, 2) % 1000) / 100.0 AS f2,
               (hash(i, 3) % 1000) / 100.0 AS f3, (hash(i, 4) % 1000) / 100.0 AS f4,
               (hash(i, 5) % 1000) / 100.0 AS f5, (hash(i, 6) % 1000) / 100.0 AS f6,
               (hash(i, 7) % 1000) / 100.0 AS f7, (hash(i, 8) % 1000) / 100.0 AS f8,
               ['a', 'b', 'c', 'd'][1 + (hash(i, 9) % 4)::BIGINT] AS c1, ['x', 'y', 'z'][1 + (hash(i, 10) % 3)::BIGINT] AS c2,
               (f1 + f2 - f3 + (c1 = 'a')::INT * 3 + hash(i, 11) % 3) > 9 AS y
        FROM range({args.rows}) AS r(i)
        """
    )
    con.sql("CREATE TABLE drifted AS SELECT * REPLACE (f1 + 4 AS f1, 'e' AS c1) FROM big")
    results: list[tuple[str, float]] = []
    train = f"TRAIN MODEL m FROM big TARGET y WITH (epochs = {args.epochs}, patience = 100, progress = false)"
    timed(f"TRAIN MODEL ({args.epochs} epochs)", lambda: con.sql(train), results)
    con.sql("SELECT PREDICT(m, *) FROM big LIMIT 1").fetchall()  # register the UDF outside the timings
    timed("SELECT count(*) (scan only)", lambda: con.sql("SELECT count(*), sum(f1) FROM big").fetchall(), results)
    timed("SELECT PREDICT over all rows", lambda: con.sql("SELECT count(*) FILTER (WHERE PREDICT(m, *)) FROM big").fetchall(), results)
    timed("EVALUATE MODEL", lambda: con.sql("EVALUATE MODEL m ON big").fetchall(), results)
    timed("EVALUATE ... confusion", lambda: con.sql("EVALUATE MODEL m ON big WITH (confusion = true)").fetchall(), results)
    timed("EXPLAIN MODEL (repeats = 1)", lambda: con.sql("EXPLAIN MODEL m ON big WITH (repeats = 1)").fetchall(), results)
    timed("MONITOR MODEL (drifted rows)", lambda: con.sql("MONITOR MODEL m ON drifted").fetchall(), results)
    timed("ALTER MODEL SET ALIAS", lambda: con.sql("ALTER MODEL m SET ALIAS production = 1").fetchall(), results)
    path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    timed("EXPORT MODEL", lambda: con.sql(f"EXPORT MODEL m TO '{path}'").fetchall(), results)
    timed("IMPORT MODEL", lambda: con.sql(f"IMPORT MODEL m2 FROM '{path}'").fetchall(), results)

    base = dict(results)["SELECT PREDICT over all rows"]
    print(f"rows: {args.rows:,}; features: 8 numeric + 2 category; dbml {dbml.__version__}; {os.cpu_count()} cores")
    print(f"{'statement':34s} {'seconds':>9s} {'x PREDICT scan':>15s}")
    for label, seconds in results:
        print(f"{label:34s} {seconds:9.2f} {seconds / base:15.2f}")


if __name__ == "__main__":
    main()
