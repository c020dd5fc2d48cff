"""The rows pass: one query that encodes the rows that train, gives each its role in
the split and carries the fingerprint of what it read; and the profile, DuckDB SQL
over the training rows of that read.

The read's columns: the encoded features (named after the columns), the target
(``__dbml_target__``) and the role (``dbml/role``: 0 trains, 1 validates, 2 is left
out), ordered by role and then by the split's order, so the training rows are one
slice of the table and the same rows give the same table in any source order. The
count and the sum of the row hashes come with the read (window aggregates) and are kept
in the table's schema metadata as ``dbml.fingerprint``.
"""

from __future__ import annotations

from typing import Any, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from dbml.data import split
from dbml.errors import FeatureError, SourceError
from dbml.registry.lineage import fingerprint_value

__all__ = ["TARGET", "COUNT", "SUM", "rows_sql", "read", "read_error", "fingerprint_of", "roles", "profile"]

TARGET = "__dbml_target__"
COUNT = '"dbml/rows"'  # rows the fingerprint counts (source rows, even when a task reads windows)
SUM = '"dbml/sum"'  # the sum of their hashes
_META = b"dbml.fingerprint"


def rows_sql(examples: str, selects: Sequence[str], target_sql: str | None, role: str, order: Sequence[str],
             row_hash: str | None, seed: int = 0) -> str:  # fmt: skip
    """The SQL of the rows pass.

    Args:
        examples: the rows that train (the source's rows with a target, or a task's own
            rows such as a forecaster's windows).
        selects: the encoded features, ``<SQL> AS "<name>"``, over ``examples``.
        target_sql: the target's SQL over ``examples`` (None: no target).
        role: the role of a row (:mod:`dbml.data.split`), over the encoded columns,
            ``__dbml_target__`` and the key ``dbml/key``.
        order: the read's order within a role (the key; a forecaster's series and time).
        row_hash: an example's hash over the source's columns (the fingerprint sums it;
            mixed with ``seed`` it is the key), or None when ``examples`` carry the
            fingerprint themselves in ``dbml/rows`` and ``dbml/sum`` (rows made of
            several source rows).
        seed: the split's seed.
    """
    inner = list(selects)
    if target_sql:
        inner.append(f"{target_sql} AS {TARGET}")
    if row_hash is not None:
        inner += [f"{row_hash} AS {split.ROW}", f"{split.key_sql(row_hash, seed)} AS {split.KEY}"]
        outer = (f"* EXCLUDE ({split.ROW}, {split.KEY}), {role} AS {split.ROLE}, count(*) OVER () AS {COUNT}, "
                 f"sum({split.ROW}::HUGEINT) OVER () AS {SUM}")  # fmt: skip
    else:
        inner += [COUNT, SUM]
        outer = f"*, {role} AS {split.ROLE}"
    return (
        f"SELECT {outer} FROM (\nSELECT {', '.join(inner)} FROM (\n{examples}\n) AS examples\n) AS encoded "
        f"ORDER BY {split.ROLE}, {', '.join(order)}"
    )


def read(con: duckdb.DuckDBPyConnection, sql: str, params: Any, model: str, label: str, target: str | None) -> pa.Table:
    """Run the rows pass: the encoded rows and their roles, with the fingerprint of the
    rows read in the schema metadata.

    Raises:
        FeatureError: a value the encoding refuses (its message names the column).
        SourceError: a source DuckDB or Arrow cannot read, or no rows.
    """
    try:
        table = con.sql(sql, params=params).to_arrow_table()
    except duckdb.Error as err:
        raise read_error(err, model, label) from None
    except (pa.ArrowException, OverflowError, ValueError) as err:  # a value DuckDB holds but Arrow cannot
        raise SourceError(
            f"cannot convert the rows of source {label} for model '{model}' to Arrow: {err}; "
            "cast the columns at fault in the query (for example to DOUBLE or VARCHAR)"
        ) from None
    if table.num_rows == 0:
        having = f" with a non-NULL '{target}'" if target else ""
        raise SourceError(f"the source {label} of model '{model}' has no rows{having}")
    count, total = (table.column(c.strip('"'))[0].as_py() for c in (COUNT, SUM))
    table = table.drop_columns([COUNT.strip('"'), SUM.strip('"')])
    role = split.ROLE.strip('"')
    table = table.set_column(table.column_names.index(role), role, table.column(role).cast(pa.int8()))
    return table.replace_schema_metadata({_META: fingerprint_value(count, total).encode()})


def read_error(err: Exception, model: str, label: str) -> Exception:
    """The dbml error of a read of the source that DuckDB refused: the encoding's own
    refusal of a value (its message names the column), else a SourceError."""
    text = str(err)
    if "dbml: " in text:  # a value refused by the encoding's check (see dbml.kinds)
        return FeatureError(text[text.index("dbml: ") :].split("\n")[0])
    return SourceError(f"cannot read the rows of source {label} for model '{model}': {err}")


def fingerprint_of(table: pa.Table) -> str | None:
    """The fingerprint of the rows :func:`read` read (None for another table)."""
    meta = table.schema.metadata or {}
    return meta[_META].decode() if _META in meta else None


def roles(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) row positions of a read (every row trains in a table
    without roles)."""
    name = split.ROLE.strip('"')
    if name not in table.column_names:
        return np.arange(table.num_rows), np.arange(0)
    role = table.column(name).to_numpy()
    return np.flatnonzero(role == split.TRAIN), np.flatnonzero(role == split.VALIDATION)


def profile(table: pa.Table, features: Sequence[Any], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The training profile: each kind's statistics, computed by DuckDB over the training
    rows of ``table`` (a read: its rows of role 0; another table: every row)."""
    from dbml.kinds import groups

    profiler = duckdb.connect()
    try:
        profiler.register("read_rows", table)
        role = split.ROLE
        where = f" WHERE {role} = {split.TRAIN}" if role.strip('"') in table.column_names else ""
        profiler.execute(f"CREATE VIEW training_rows AS SELECT * FROM read_rows{where}")
        prof: dict[str, dict[str, Any]] = {}
        for g in groups(features):
            prof.update(g.kind.profile(profiler, "training_rows", g.features, options))
        return prof
    finally:
        profiler.close()
