"""What the value check of PREDICT's encoding costs, against the plain CAST.

dbml encodes every numeric feature as
``CASE WHEN abs(CAST(x AS DOUBLE)) <= FLOAT_MAX THEN CAST(CAST(x AS DOUBLE) AS FLOAT)
WHEN ... IS NULL OR isnan(...) THEN NULL ELSE error('dbml: ...') END`` (see
``dbml.features.feature_sql``), so that NaN is missing and an infinite or
out-of-range value stops the query with a dbml message. Before, it was
``CAST(x AS FLOAT)``, which let inf through (NaN probabilities) and failed 1e300
with a raw ConversionException.

On one table of N rows x 20 numeric features of one type (FLOAT by default) and an
MLP [64, 32] trained on 20,000 of them, each measure is the best of ``--repeat``
interleaved rounds:

* PREDICT as dbml rewrites it (checked encoding) and the same UDF called with plain
  ``CAST(x AS FLOAT)`` arguments (the baseline), both as ``sum(hash(..))``;
* the encoding alone, checked and plain, as ``sum(e1 + ... + e20)``.

The headline is the ratio of each checked figure to its plain baseline, measured in
the same run. Run::

    python benchmarks/predict_checks.py [--rows N] [--type FLOAT|DOUBLE|INTEGER] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import duckdb
from sqlglot import exp

import dbml
from dbml.features import feature_sql

N_FEATURES = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--type", default="FLOAT")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    con = dbml.connect(threads=args.threads)
    duck = con.duckdb
    print(f"{platform.machine()}, {os.cpu_count()} cores; duckdb {duckdb.__version__}; "
          f"{args.rows:,} rows x {N_FEATURES} {args.type} features; DuckDB threads {args.threads}")  # fmt: skip
    cols = [f"((hash(i, {k}) % 1000000) / 1000000.0)::{args.type} AS f{k}" for k in range(N_FEATURES)]
    duck.execute(
        f"CREATE TABLE t AS SELECT *, CASE WHEN f0 + f1 - f2 > 0.5 THEN 'yes' ELSE 'no' END AS y "
        f"FROM (SELECT {', '.join(cols)} FROM range({args.rows}) r(i))"
    )
    con.sql("TRAIN MODEL m FROM (SELECT * FROM t LIMIT 20000) TARGET y WITH (epochs = 2, hidden = [64, 32], progress = false)")
    sig = con.signature("m")
    checked = [feature_sql(f, exp.column(f.name, quoted=True), "m").sql(dialect="duckdb") for f in sig.features]
    plain = [f'CAST("{f.name}" AS FLOAT)' for f in sig.features]
    measures = {
        "PREDICT, checked encoding": f"SELECT sum(hash({sig.functions['PREDICT']}({', '.join(checked)}))) FROM t",
        "PREDICT, plain CAST (baseline)": f"SELECT sum(hash({sig.functions['PREDICT']}({', '.join(plain)}))) FROM t",
        "encoding alone, checked": f"SELECT sum({' + '.join(checked)}) FROM t",
        "encoding alone, plain CAST (baseline)": f"SELECT sum({' + '.join(plain)}) FROM t",
    }
    assert con.sql("SELECT sum(hash(PREDICT(m, *))) FROM t").fetchall() == duck.sql(measures["PREDICT, checked encoding"]).fetchall()
    best = {k: float("inf") for k in measures}
    for _ in range(args.repeat + 1):  # the first round warms caches and is dropped
        for name, sql in measures.items():
            start = time.perf_counter()
            duck.sql(sql).fetchall()
            best[name] = min(best[name], time.perf_counter() - start) if _ else best[name]
    print(f"\n{'measure (best of ' + str(args.repeat) + ')':<44}{'seconds':>9}{'rows/s':>14}")
    for name, s in best.items():
        print(f"{name:<44}{s:>9.3f}{args.rows / s:>14,.0f}")
    p = best["PREDICT, checked encoding"] / best["PREDICT, plain CAST (baseline)"]
    e = best["encoding alone, checked"] / best["encoding alone, plain CAST (baseline)"]
    print(f"\nratio PREDICT checked / plain: {p:.3f}")
    print(f"ratio encoding checked / plain: {e:.3f}")


if __name__ == "__main__":
    main()
