"""The three figures of the model-family work, side by side in one run: digits
accuracy (cnn against mlp and scikit-learn), anomaly ROC AUC (autoencoder against
IsolationForest), and forecast MAE per series against seasonal naive and Holt-Winters.

It runs sections 1 and 2 of benchmarks/families.py and then benchmarks/forecast.py in
this one process (same splits and seeds as those scripts; see their docstrings).
Needs scikit-learn and statsmodels (``pip install statsmodels``; not a dbml dependency).

Run from the repository root (about 4 minutes on 2 CPU cores)::

    python benchmarks/issue14.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import families  # noqa: E402
import forecast  # noqa: E402


def main() -> None:
    started = time.perf_counter()
    families.digits()
    families.anomalies(5000)
    print()
    sys.argv = [sys.argv[0]]  # forecast.py's own options: its defaults
    forecast.main()
    print(f"\nall three: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
