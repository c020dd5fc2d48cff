"""dbml families: a cnn on images, an autoencoder on payments and an lstm forecaster
on daily sales, all on tables made in SQL in an embedded DuckDB file (no download).

Run: python examples/families.py [path/to/file.duckdb]
"""

from __future__ import annotations

import sys
from pathlib import Path

import dbml
from quickstart import run_file  # the same loop: each statement echoed and shown

HERE = Path(__file__).resolve().parent


def main(path: str) -> None:
    Path(path).unlink(missing_ok=True)
    con = dbml.connect(path)
    con.sql("SELECT setseed(0.42)")
    run_file(con, HERE / "families.sql")
    con.close()

    # A new connection (as a new process would) forecasts from the stored versions.
    with dbml.connect(path) as again:
        again.sql("FORECAST MODEL demand HORIZON 3").show()
        again.sql("SELECT count(*) AS odd_payments FROM payments WHERE IS_ANOMALY(odd, plan, amount)").show()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "families.duckdb")
