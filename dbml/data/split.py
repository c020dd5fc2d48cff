"""The split: each row's role (training, validation, left out) as DuckDB SQL.

A role is a function of the row and the seed, computed by DuckDB in the read that
trains, never an array of indices. Rows are ordered by a seeded hash of their values
(:func:`key_sql`), and in that order every ``1/validation``-th row of each stratum
validates (:func:`hashed`; a systematic sample of a random order is a random sample).
The counts are those of a shuffled split: ``max(1, round(n * validation))`` rows
without strata; ``round(m * validation)`` of each stratum's ``m``, leaving it at least
one training row; none held out under ten rows. A forecaster splits by time instead
(:func:`by_time`): each series' latest windows validate.

Equal rows have equal keys and sit together in key order, where the systematic sample
spreads their copies over training and validation like other rows; which copy is which
does not matter, so the split does not depend on the order the source gives its rows
in. The expressions use window functions over the read; a streaming reader can compute
each stratum's count once and number its rows in key order.
"""

from __future__ import annotations

__all__ = ["TRAIN", "VALIDATION", "LEFT_OUT", "ROLE", "ROW", "KEY", "key_sql", "hashed", "by_time", "roles_sql", "MIN_ROWS"]

TRAIN, VALIDATION, LEFT_OUT = 0, 1, 2
ROLE = '"dbml/role"'  # the read's column of roles (a name no feature may take: see training.export.PREFIX)
ROW = '"dbml/row"'  # a row's hash over the source's columns (what the fingerprint sums)
KEY = '"dbml/key"'  # the seeded order of the split
MIN_ROWS = 10  # fewer rows: every row trains


def key_sql(row_hash: str, seed: int) -> str:
    """The seeded key a row is ordered by: its hash mixed with the seed."""
    return f"hash({row_hash}, {int(seed)}::UBIGINT)"


def _fraction(fraction: float) -> str:
    return f"{float(fraction)!r}::DOUBLE"  # a DOUBLE as Python computes, not a DECIMAL


def _every(rank: str, take: str, rows: str) -> str:
    """Whether the ``rank``-th of ``rows`` rows is one of ``take`` spread evenly over
    them (rank r is taken when round(r * take / rows) steps up; exactly ``take`` are)."""
    t, m = f"CAST({take} AS HUGEINT)", f"CAST({rows} AS HUGEINT)"
    return f"((2 * {rank} * {t} + {m}) // (2 * {m}) > (2 * ({rank} - 1) * {t} + {m}) // (2 * {m}))"


def hashed(key: str, fraction: float, stratum: str | None = None) -> str:
    """The role of each row, by its ``key`` order within its ``stratum`` (None: one).

    Not stratified: ``max(1, round(n * fraction))`` rows validate. Stratified: in each
    stratum of ``m`` rows, ``round(m * fraction)`` rows, at most ``m - 1``. Rounding is
    to even, as Python's ``round``."""
    f = _fraction(fraction)
    part = f"PARTITION BY {stratum} " if stratum is not None else ""
    rank, rows = f"row_number() OVER ({part}ORDER BY {key})", f"count(*) OVER ({part.strip()})"
    if stratum is None:
        take = f"greatest(1, round_even({rows} * {f}, 0))"
    else:
        take = f"least(round_even({rows} * {f}, 0), {rows} - 1)"
    return (
        f"CASE WHEN {f} <= 0 OR count(*) OVER () < {MIN_ROWS} THEN {TRAIN} "
        f"WHEN {_every(rank, take, rows)} THEN {VALIDATION} ELSE {TRAIN} END"
    )


def by_time(series: str, order: str, fraction: float, gap: int) -> str:
    """The role of each window of a series, by time: the latest ``max(1, round(m *
    fraction))`` of a series of ``m`` windows validate, the ``gap`` windows before them
    are left out (their futures overlap the validated values), and a series too short
    to hold any out trains only."""
    f = _fraction(fraction)
    part = f"PARTITION BY {series}"
    m = f"count(*) OVER ({part})"
    n_val = f"greatest(1, round_even({m} * {f}, 0))"
    rank = f"row_number() OVER ({part} ORDER BY {order} DESC)"
    return (
        f"CASE WHEN {f} <= 0 OR count(*) OVER () < {MIN_ROWS} THEN {TRAIN} "
        f"WHEN {m} - {n_val} - {int(gap)} < 1 THEN {TRAIN} "
        f"WHEN {rank} <= {n_val} THEN {VALIDATION} "
        f"WHEN {rank} <= {n_val} + {int(gap)} THEN {LEFT_OUT} ELSE {TRAIN} END"
    )


def roles_sql(source_sql: str, columns: list[str], fraction: float, seed: int, stratum: str | None = None) -> str:
    """Every row of ``source_sql`` with its role (``dbml/role``) in the split TRAIN MODEL
    makes of the rows of its columns ``columns`` (the source's, in order; other columns
    ride along): a way to see, in SQL, which rows a version held out.

    Args:
        stratum: the SQL a classifier stratifies by (its target column), else None.
    """
    from dbml.registry.lineage import row_hash_sql

    key = key_sql(row_hash_sql(columns), seed)
    return f"SELECT *, {hashed(key, fraction, stratum)} AS {ROLE} FROM (\n{source_sql}\n) AS rows"
