"""Lineage facts of a training source: its base tables and an order-independent
fingerprint of its rows, both found without pulling rows into Python."""

from __future__ import annotations

import hashlib

import duckdb
import sqlglot
from sqlglot import exp

__all__ = ["source_tables", "fingerprint"]


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


def fingerprint(con: duckdb.DuckDBPyConnection, relation_sql: str, columns: list[str], params=None) -> str:
    """count and sum of per-row hashes over ``columns``: the same rows in any order
    give the same value, any changed, added or removed row a different one."""
    cols = ", ".join(exp.to_identifier(c, quoted=True).sql(dialect="duckdb") for c in columns)
    n, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash({cols})::HUGEINT), 0) FROM (\n{relation_sql}\n) AS fp", params
    ).fetchall()[0]
    digest = hashlib.sha256(f"{n}:{int(total)}".encode()).hexdigest()[:32]
    return f"{n}-{digest}"
