"""dbml quickstart: build an embedded DuckDB file from the Palmer penguins (shipped
with the `palmerpenguins` package), train, score and read the registry in SQL.

Run: python examples/quickstart.py [path/to/file.duckdb]
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import dbml
from dbml.rewrite import split_statements

HERE = Path(__file__).resolve().parent


def run_file(con: dbml.Connection, path: Path) -> None:
    """Run each statement of a SQL file, echoing it and showing its result."""
    for statement in split_statements(path.read_text()):
        print(f"dbml> {statement.text}")
        result = con.sql(statement.text)
        if result is not None:
            result.show(max_width=160)
        print()


def main(path: str) -> None:
    Path(path).unlink(missing_ok=True)
    csv = resources.files("palmerpenguins") / "data" / "penguins.csv"
    con = dbml.connect(path)
    con.execute("CREATE TABLE penguins AS SELECT * FROM read_csv($csv, nullstr = 'NA')", {"csv": str(csv)})
    print(f"{path}: table penguins with {con.sql('SELECT count(*) FROM penguins').fetchall()[0][0]} rows\n")

    run_file(con, HERE / "quickstart.sql")
    con.close()

    # A new connection (as a new process would) scores with the stored ONNX blob.
    with dbml.connect(path) as again:
        again.sql("SELECT count(*) AS gentoo_predicted FROM penguins WHERE PREDICT(species, *) = 'Gentoo'").show()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "penguins.duckdb")
