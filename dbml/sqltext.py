"""The two ways dbml puts names and values into SQL text it builds: quoted identifiers
and string literals, both written by sqlglot, never by string pasting."""

from __future__ import annotations

__all__ = ["quote", "string"]


def quote(name: str) -> str:
    """A quoted DuckDB identifier, inner double quotes doubled."""
    from sqlglot import exp  # here, not at the top: the kinds import this module when scoring without sqlglot

    return exp.to_identifier(name, quoted=True).sql(dialect="duckdb")


def string(value: str) -> str:
    """A DuckDB string literal, quotes doubled."""
    from sqlglot import exp

    return exp.Literal.string(value).sql(dialect="duckdb")
