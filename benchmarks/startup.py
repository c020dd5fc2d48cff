"""Shell start-up: ``dbml -c "SELECT 1"`` against ``python -c "import duckdb, sqlglot"``,
in one run, on this machine.

Each command runs ``--runs`` times in a fresh interpreter, alternating, and the medians
are compared (the goal of issue 22: within 2x). The modules a plain SELECT must not load
(onnx, onnxruntime, torch) are checked in a run of their own.

Run from the repository root (about 20 s): ``python benchmarks/startup.py [--runs 15]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BASELINE = [sys.executable, "-c", "import duckdb, sqlglot"]
SHELL = [sys.executable, "-m", "dbml", "-c", "SELECT 1"]
PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['dbml', '-c', 'SELECT 1']\n"
    "try:\n    runpy.run_module('dbml', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules), file=sys.stderr)\n"
)


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    _time(BASELINE), _time(SHELL)  # warm the file cache
    base, shell = [], []
    for _ in range(args.runs):
        base.append(_time(BASELINE))
        shell.append(_time(SHELL))
    b, s = statistics.median(base), statistics.median(shell)
    heavy = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stderr.strip()
    print(f"import duckdb, sqlglot      median {b:.3f} s over {args.runs} runs")
    print(f'dbml -c "SELECT 1"          median {s:.3f} s over {args.runs} runs')
    print(f"ratio                       {s / b:.2f}x (goal: 2x at most)")
    print(f"heavy modules a plain SELECT loaded: {heavy}")


if __name__ == "__main__":
    main()
