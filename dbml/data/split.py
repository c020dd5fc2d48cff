"""The split: each row's role (training, validation, left out) as DuckDB SQL.

A role is a function of the row and the seed, computed by DuckDB in the read that
trains, never an array of indices: the rows are ordered by a seeded hash of their
values (:func:`key_sql`), and the first ``validation`` share of each stratum in that
order validates (:func:`hashed`), the same counts as a shuffled split: at least one
validating row when not stratified, at least one training row per stratum when
stratified, none held out under ten rows. A forecaster splits by time instead
(:func:`by_time`): each series' latest windows validate.

A key depends on a row's values and on which copy of them it is, so the split does not
depend on the order the source gives its rows in. The expressions use window functions
over the whole read; a streaming reader can compute each stratum's cut once and compare
keys with it row by row.
"""

from __future__ import annotations

__all__ = ["TRAIN", "VALIDATION", "LEFT_OUT", "ROLE", "ROW", "KEY", "key_sql", "hashed", "by_time", "roles_sql", "MIN_ROWS"]

TRAIN, VALIDATION, LEFT_OUT = 0, 1, 2
ROLE = '"dbml/role"'  # the read's column of roles (a name no feature may take: see training.export.PREFIX)
ROW = '"dbml/row"'  # a row's hash over the source's columns (what the fingerprint sums)
KEY = '"dbml/key"'  # the seeded order of the split
MIN_ROWS = 10  # fewer rows: every row trains


def key_sql(row_hash: str, seed: int) -> str:
    """The seeded key a row is ordered by: its hash, mixed with the seed and with which
    copy of its values it is (equal rows get different keys, so copies of a row split
    like other rows; which copy gets which number does not matter, they are equal)."""
    return f"hash({row_hash}, row_number() OVER (PARTITION BY {row_hash}), {int(seed)}::UBIGINT)"


def _fraction(fraction: float) -> str:
    return f"{float(fraction)!r}::DOUBLE"  # a DOUBLE as Python computes, not a DECIMAL


def hashed(key: str, fraction: float, stratum: str | None = None) -> str:
    """The role of each row, by its ``key`` order within its ``stratum`` (None: one).

    Not stratified: ``max(1, round(n * fraction))`` rows validate. Stratified: in each
    stratum of ``m`` rows, ``round(m * fraction)`` rows, at most ``m - 1``. Rounding is
    to even, as Python's ``round``."""
    f = _fraction(fraction)
    if stratum is None:
        rank, take = f"row_number() OVER (ORDER BY {key})", f"greatest(1, round_even(count(*) OVER () * {f}, 0))"
    else:
        part = f"PARTITION BY {stratum}"
        rank = f"row_number() OVER ({part} ORDER BY {key})"
        take = f"least(round_even(count(*) OVER ({part}) * {f}, 0), count(*) OVER ({part}) - 1)"
    return (
        f"CASE WHEN {f} <= 0 OR count(*) OVER () < {MIN_ROWS} THEN {TRAIN} "
        f"WHEN {rank} <= {take} THEN {VALIDATION} ELSE {TRAIN} END"
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

    keyed = f"SELECT *, {key_sql(row_hash_sql(columns), seed)} AS {KEY} FROM (\n{source_sql}\n) AS rows"
    return f"SELECT * EXCLUDE ({KEY}), {hashed(KEY, fraction, stratum)} AS {ROLE} FROM ({keyed}) AS keyed"
