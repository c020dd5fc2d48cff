"""Peak memory of TRAIN MODEL as the rows grow, and training under a memory limit.

Each measurement runs in a child process (its own peak RSS, ``ru_maxrss``), training an
mlp from a parquet file of FLOAT columns with a binary target, then scoring 20,000
held-out rows with PREDICT.

1. **Growth.** ``--small`` and ``4 x --small`` rows (default 1M and 4M, 20 columns), in
   memory (``streaming = false``) and streaming (``streaming = true``): peak RSS of
   each and the ratio large / small per path (goal for streaming: at most 1.3).
2. **Under a limit** (``--limit-gib``): the child sets ``RLIMIT_AS`` (what
   ``ulimit -v`` sets: the address space, which counts the ~3 GB that importing torch
   and DuckDB maps before any row is read; ``MALLOC_ARENA_MAX=2``, since glibc's
   per-thread arenas reserve address space they never touch) and DuckDB's ``memory_limit``; the table's
   rows take three times the limit as float32 tensors (``--wide`` columns each). It
   trains with ``streaming = true``; the in-memory path trains on a sample that fits,
   under the same limit; both score the same held-out rows. The in-memory path on the
   whole table is run too, to show that it cannot.

    python benchmarks/train_memory.py                      # part 1
    python benchmarks/train_memory.py --limit-gib 4.5      # parts 1 and 2 (writes ~14 GB of parquet)
    python benchmarks/train_memory.py --skip-growth --limit-gib 4.5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def write_parquet(path: str, rows: int, columns: int, seed: int) -> None:
    import duckdb

    xs = ", ".join(f"((hash(i, {seed * 1000 + k}::UBIGINT) % 1000000) / 1e6 - 0.5)::FLOAT AS x{k}" for k in range(columns))
    rule = "x0 + x1 - x2 + 0.5 * x3 + 4 * x4 * x5 - x6 * x7 * 2"
    with duckdb.connect() as con:
        con.execute("SET preserve_insertion_order = true")
        con.execute(f"COPY (SELECT *, ({rule} + ((hash(i, {seed}::UBIGINT) % 1000) / 1000.0 - 0.5) * 0.3 > 0)::INT AS y "
                    f"FROM (SELECT i, {xs} FROM range({rows}) t(i))) TO '{path}' (FORMAT parquet)")  # fmt: skip


def child(args: dict) -> None:
    if args.get("limit"):
        resource.setrlimit(resource.RLIMIT_AS, (args["limit"], args["limit"]))
    out = {"ok": False}
    started = time.perf_counter()
    try:
        import dbml

        con = dbml.connect()
        if args.get("duckdb_memory"):
            con.sql(f"SET memory_limit = '{args['duckdb_memory']}'")
        con.sql(f"SET temp_directory = '{os.path.dirname(args['path'])}/duckdb_tmp'")
        source = f"(SELECT * EXCLUDE (i) FROM '{args['path']}'{' LIMIT ' + str(args['sample']) if args.get('sample') else ''})"
        con.sql(f"TRAIN MODEL m FROM {source} TARGET y WITH (epochs = {args['epochs']}, refit = false, batch_size = 1024, "
                f"streaming = {str(args['streaming']).lower()}, threads = 2, verbose = 0)").fetchall()  # fmt: skip
        out["train_s"] = time.perf_counter() - started
        out["accuracy"] = con.sql(f"SELECT avg((PREDICT(m, * EXCLUDE (i, y)) = y)::DOUBLE) FROM '{args['test']}'").fetchall()[0][0]
        out["ok"] = True
    except BaseException as err:  # noqa: BLE001 - reported to the parent
        out["error"] = f"{type(err).__name__}: {str(err)[:300]}"
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(f"/proc/{os.getpid()}/status") as f:
        out["vm_peak_mib"] = next(int(line.split()[1]) for line in f if line.startswith("VmPeak")) / 1024
    print("RESULT " + json.dumps(out), flush=True)


def run_child(**args) -> dict:
    # glibc gives each thread a malloc arena of 64 MiB of address space: under RLIMIT_AS they are what runs out first
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"ok": False, "error": f"exit {proc.returncode}: {proc.stderr[-300:]}", "rss_mib": float("nan")}
    return json.loads(line[7:])


def show(label: str, r: dict) -> None:
    acc = f"{r['accuracy']:.4f}" if r.get("ok") else "-"
    secs = f"{r['train_s']:.1f}" if r.get("ok") else "-"
    print(f"{label:<44} {r['rss_mib']:>9,.0f} {r.get('vm_peak_mib', float('nan')):>9,.0f} {secs:>7} {acc:>8}  "
          f"{'' if r.get('ok') else r.get('error', '')[:150]}", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child")
    ap.add_argument("--small", type=int, default=1_000_000)
    ap.add_argument("--columns", type=int, default=20)
    ap.add_argument("--limit-gib", type=float, default=0.0)
    ap.add_argument("--wide", type=int, default=100, help="columns of the table of part 2")
    ap.add_argument("--sample", type=int, default=250_000, help="rows of the in-memory sample of part 2")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--skip-growth", action="store_true")
    ap.add_argument("--dir", default=None, help="where the parquet files go (default: a temporary directory)")
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; peak RSS and VmPeak in MiB; one child process each")
    print(f"{'run':<44} {'peak RSS':>9} {'VmPeak':>9} {'train s':>7} {'accuracy':>8}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        if not args.skip_growth:
            test = os.path.join(tmp, "test.parquet")
            write_parquet(test, 20_000, args.columns, 99)
            got: dict[tuple[bool, int], float] = {}
            for n in (args.small, 4 * args.small):
                path = os.path.join(tmp, f"rows{n}.parquet")
                write_parquet(path, n, args.columns, 1)
                for streaming in (False, True):
                    r = run_child(path=path, test=test, streaming=streaming, epochs=args.epochs)
                    got[(streaming, n)] = r["rss_mib"]
                    show(f"{n:,} rows x {args.columns}, {'streaming' if streaming else 'in memory'}", r)
                os.remove(path)
            for streaming in (False, True):
                ratio = got[(streaming, 4 * args.small)] / got[(streaming, args.small)]
                print(f"peak RSS, 4x rows / 1x rows, {'streaming' if streaming else 'in memory'}: {ratio:.2f}")
        if args.limit_gib:
            limit = int(args.limit_gib * 2**30)
            rows = int(3 * limit / (4 * args.wide + 4)) + 1
            test = os.path.join(tmp, "test_wide.parquet")
            write_parquet(test, 20_000, args.wide, 99)
            path = os.path.join(tmp, "big.parquet")
            t0 = time.perf_counter()
            write_parquet(path, rows, args.wide, 1)
            print(f"\nRLIMIT_AS (ulimit -v) {args.limit_gib} GiB, DuckDB memory_limit 512MB; the table: {rows:,} rows x "
                  f"{args.wide} FLOAT + y = {rows * (4 * args.wide + 4) / 2**30:.1f} GiB as float32 tensors, "
                  f"{os.path.getsize(path) / 2**30:.1f} GiB of parquet (written in {time.perf_counter() - t0:.0f} s)")  # fmt: skip
            common = dict(test=test, limit=limit, duckdb_memory="512MB", epochs=args.epochs)
            show("whole table, streaming", run_child(path=path, streaming=True, **common))
            show(f"sample of {args.sample:,} rows, in memory", run_child(path=path, streaming=False, sample=args.sample, **common))
            show("whole table, in memory", run_child(path=path, streaming=False, **common))


if __name__ == "__main__":
    main()
