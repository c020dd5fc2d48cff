"""Soak: connections, cursors and threads on one database file for a while.

Scorers (own connections, cursors of one, and one Connection shared by threads) run
queries with two PREDICT calls on the same reference while a mover flips the default
alias and a trainer adds versions; counts statements, errors, and rows where the two
calls disagreed (one statement must score with one version). Then a fuzz run of
random statements through dbml.connect().sql, counting exceptions that are neither
dbml's nor DuckDB's.

    python benchmarks/soak.py --seconds 60 --fuzz 3000
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import tempfile
import threading
import time

import duckdb

import dbml


def soak(seconds: float) -> None:
    path = os.path.join(tempfile.mkdtemp(), "soak.duckdb")
    with dbml.connect(path) as c:
        c.sql("CREATE TABLE t AS SELECT i AS x, (i * 7) % 10 AS z, i % 2 = 0 AS y FROM range(5000) r(i)")
        c.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 3, progress = false)")
        c.sql("TRAIN MODEL m FROM (SELECT x, z, NOT y AS y FROM t) TARGET y WITH (epochs = 3, progress = false)")
    stop = time.monotonic() + seconds
    counts: collections.Counter = collections.Counter()
    errors: list[str] = []
    lock = threading.Lock()
    shared = dbml.connect(path)

    def scorer(con):
        while time.monotonic() < stop:
            try:
                rows = con.sql("SELECT count(*) FILTER (WHERE PREDICT(m, *) <> PREDICT(m, *)) FROM t").fetchall()
                with lock:
                    counts["queries"] += 1
                    counts["mixed_rows"] += rows[0][0]
            except Exception as err:  # noqa: BLE001 - counted
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")

    def mover():
        with dbml.connect(path) as con:
            k = 0
            while time.monotonic() < stop:
                con.set_alias("m", "default", 1 + k % 2)
                k += 1
            with lock:
                counts["alias_moves"] += k

    def trainer():
        with dbml.connect(path) as con:
            while time.monotonic() < stop:
                con.sql("TRAIN MODEL m2 FROM t TARGET y WITH (epochs = 1, progress = false)")
                with lock:
                    counts["versions_trained"] += 1

    own = [dbml.connect(path) for _ in range(2)]
    cursor = dbml.install(shared.duckdb.cursor())
    threads = [threading.Thread(target=scorer, args=(c,)) for c in [*own, cursor, shared, shared]]
    threads += [threading.Thread(target=mover), threading.Thread(target=trainer)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stored = shared.sql("SELECT count(*) FROM dbml.model_versions WHERE model = 'm2'").fetchall()[0][0]
    print(f"soak {seconds:.0f} s: {dict(counts)}; m2 versions stored {stored}; errors {len(errors)}")
    for e in errors[:5]:
        print("  ", e)


PIECES = (
    "TRAIN MODEL|SHOW MODELS|DESCRIBE MODEL|DROP MODEL|EVALUATE MODEL|ALTER MODEL|EXPORT MODEL|IMPORT MODEL|"
    "EXPLAIN MODEL|MONITOR MODEL|m|t|'m:1'|'m@prod'|FROM|TARGET|y|WITH|(|)|,|=|;|*|epochs|1|0|-1|1e309|'x'|''|"
    "USING|mlp|ON|VERSION|SET ALIAS|UNSET ALIAS|TO|'memory://f.onnx'|PREDICT(|PREDICT_PROBA(|SELECT|x|$1|?|[|]|"
    "true|NULL|--|/*|*/|$$|\"|`|.|IF NOT EXISTS|IF EXISTS|hidden"
).split("|")


def fuzz(n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    con = dbml.connect()
    con.sql("CREATE TABLE t AS SELECT i AS x, i % 2 = 0 AS y FROM range(40) r(i)")
    con.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1, progress = false)")
    raw: collections.Counter = collections.Counter()
    outcomes: collections.Counter = collections.Counter()
    for _ in range(n):
        sql = " ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12)))
        try:
            rel = con.sql(sql)
            if rel is not None:
                rel.limit(5).fetchall()
            outcomes["ran"] += 1
        except dbml.DbmlError:
            outcomes["dbml error"] += 1
        except duckdb.Error:
            outcomes["duckdb error"] += 1
        except Exception as err:  # noqa: BLE001 - the figure this run is for
            raw[f"{type(err).__name__}: {str(err)[:80]}"] += 1
    print(f"fuzz {n} statements: {dict(outcomes)}; raw exceptions {sum(raw.values())}")
    for sig, k in raw.most_common(10):
        print(f"   {k} x {sig}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--fuzz", type=int, default=2000)
    args = ap.parse_args()
    soak(args.seconds)
    fuzz(args.fuzz)
