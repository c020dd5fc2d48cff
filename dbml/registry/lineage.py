"""Lineage facts of a training source: its base tables and an order-independent
fingerprint of its rows (a count and a sum of row hashes), both found without pulling
rows into Python."""

from __future__ import annotations

import hashlib

import duckdb
import sqlglot
from sqlglot import exp

__all__ = ["source_tables", "fingerprint", "fingerprint_sql", "fingerprint_value", "row_hash_sql"]


def _tables(sql: str) -> tuple[set[str], set[str]]:
    """Table names of a query, and the names of its CTEs (which are not tables)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return set(), set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    names = set()
    for table in tree.find_all(exp.Table):
        if not table.name or table.name.lower() in ctes:
            continue
        parts = [p for p in (table.catalog, table.db, table.name) if p]
        names.add(".".join(parts))
    return names, ctes


def source_tables(con: duckdb.DuckDBPyConnection, sql: str, depth: int = 8) -> list[str]:
    """Base tables (and files) behind ``sql``, following views through their definitions."""
    views = {}
    for schema, name, view_sql in con.execute(
        "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal"
    ).fetchall():
        views[name.lower()] = view_sql
        views[f"{schema}.{name}".lower()] = view_sql
    found: set[str] = set()
    pending, seen = [(sql, 0)], set()
    while pending:
        text, level = pending.pop()
        names, _ = _tables(text)
        for name in names:
            key = name.lower()
            if key in views and level < depth and key not in seen:
                seen.add(key)
                body = views[key]
                # duckdb_views() gives CREATE VIEW ... AS <query>
                tree = sqlglot.parse_one(body, read="duckdb") if body else None
                query = tree.expression if isinstance(tree, exp.Create) else None
                if query is not None:
                    pending.append((query.sql(dialect="duckdb"), level + 1))
                    continue
            found.add(name)
    return sorted(found)


def row_hash_sql(columns: list[str]) -> str:
    """The SQL of one row's hash over ``columns`` (DuckDB's ``hash``): the fingerprint
    sums it, and the split orders rows by it (with a seed)."""
    return "hash(" + ", ".join(exp.to_identifier(c, quoted=True).sql(dialect="duckdb") for c in columns) + ")"


def fingerprint_sql(columns: list[str], window: bool = False, where: str | None = None) -> tuple[str, str]:
    """(count, sum of row hashes) of the rows, as two aggregates (``window``: over the
    whole relation, ``OVER ()``, so that a read of the rows carries them; ``where``: the
    rows counted)."""
    over = " OVER ()" if window else ""
    only = f" FILTER (WHERE {where})" if where else ""
    return (f"count(*){only}{over}", f"coalesce(sum({row_hash_sql(columns)}::HUGEINT){only}{over}, 0)")


def fingerprint_value(count: int, total: int) -> str:
    """The stored fingerprint of ``count`` rows whose hashes sum to ``total``."""
    digest = hashlib.sha256(f"{int(count)}:{int(total)}".encode()).hexdigest()[:32]
    return f"{int(count)}-{digest}"


def fingerprint(con: duckdb.DuckDBPyConnection, relation_sql: str, columns: list[str], params=None) -> str:
    """count and sum of per-row hashes over ``columns``: the same rows in any order
    give the same value, any changed, added or removed row a different one.

    A separate scan of ``relation_sql``; TRAIN MODEL takes the same figures from the read
    that trains instead (:func:`fingerprint_sql` with ``window=True``, see :mod:`dbml.data`)."""
    n, total = fingerprint_sql(columns)
    n, total = con.execute(f"SELECT {n}, {total} FROM (\n{relation_sql}\n) AS fp", params).fetchall()[0]
    return fingerprint_value(n, total)
