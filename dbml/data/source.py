"""The source of a TRAIN MODEL and its facts pass.

:func:`resolve` binds the user's query (DuckDB plans it; no row is read) for its columns
and types. :func:`source_facts` is the facts pass: one aggregate query over the rows
that train, before any row is read, so that a target the task cannot take is refused
first (too many classes, labels beyond BIGINT, labels too long).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from dbml.errors import SourceError
from dbml.sqltext import quote as _q

__all__ = ["Source", "resolve", "relation_sql", "examples_sql", "present_sql", "facts", "target_aggregates",
           "source_facts"]  # fmt: skip

INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
                 "UHUGEINT")  # fmt: skip
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


@dataclass
class Source:
    """The source's columns and types (and, from :func:`resolve`, its query)."""

    columns: list[str]
    types: list[str]
    sql: str = ""
    params: Any = None
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def relation_sql(source_sql: str) -> str:
    """The user's query as a relation dbml's SQL selects from."""
    return f"SELECT * FROM (\n{source_sql}\n) AS src"


def present_sql(target: str, target_type: str) -> str:
    """The condition a row's target meets to train: not NULL, and not NaN for a float
    (missing, as in features: the row is skipped)."""
    cond = f"{_q(target)} IS NOT NULL"
    if target_type.upper() in FLOAT_TYPES:
        cond += f" AND NOT isnan({_q(target)})"
    return cond


def examples_sql(source_sql: str, target: str | None, target_type: str | None) -> str:
    """The source's rows that train: every row, or those whose target is present."""
    sql = relation_sql(source_sql)
    return sql + f" WHERE {present_sql(target, target_type)}" if target is not None else sql


def resolve(con: duckdb.DuckDBPyConnection, name: str, source_sql: str, params: Any, label: str) -> Source:
    """The columns and types of the source (bound, not run)."""
    try:
        rel = con.sql(relation_sql(source_sql), params=params)
        return Source(list(rel.columns), [str(t) for t in rel.types], source_sql, params, label)
    except duckdb.Error as err:
        raise SourceError(f"cannot read the source {label} of model '{name}': {err}") from None


def facts(con: duckdb.DuckDBPyConnection, sql: str, params: Any, aggregates: dict[str, str]) -> dict[str, Any]:
    """One pass over ``sql``: {name: value} of the ``aggregates`` ({name: aggregate SQL})."""
    if not aggregates:
        return {}
    names = list(aggregates)
    row = con.execute(f"SELECT {', '.join(aggregates[n] for n in names)} FROM (\n{sql}\n) AS facts", params).fetchall()[0]
    return dict(zip(names, row))


def target_aggregates(target: str, target_type: str) -> dict[str, str]:
    """The target's facts as aggregates: distinct values, min and max (integer types only,
    for the range check of class labels) and the longest text, so that nothing big is
    fetched."""
    t = _q(target)
    integer = target_type.upper() in INTEGER_TYPES
    return {
        "distinct": f"count(DISTINCT {t})",
        "min": f"CAST(min({t}) AS VARCHAR)" if integer else "NULL",
        "max": f"CAST(max({t}) AS VARCHAR)" if integer else "NULL",
        "longest": f"max(length(CAST({t} AS VARCHAR)))",
    }


def source_facts(con: duckdb.DuckDBPyConnection, sql: str, params: Any, target: str | None, target_type: str | None,
                 columns: dict[str, dict[str, str]] | None = None,
                 aggregates: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The facts pass over the rows that train (``sql``): the target's facts (``distinct``,
    ``min``, ``max``, ``longest``) and, under ``columns``, per-column facts.

    Args:
        columns: {column: {fact: aggregate SQL}}: facts of columns, computed in the same pass.
        aggregates: {alias: aggregate SQL}: the statistics the kinds ask of the columns to
            choose their kinds (:func:`dbml.kinds.statistics_sql`), returned as
            {alias: value} under ``statistics``, from the same pass.

    Raises:
        SourceError: when DuckDB cannot compute them, naming the target.
    """
    wanted: dict[str, str] = {"rows": "count(*)"}
    wanted.update(target_aggregates(target, target_type) if target is not None else {})
    for column, aggs in (columns or {}).items():
        wanted.update({f"column:{column}:{name}": sql_ for name, sql_ in aggs.items()})
    wanted.update({f"statistic:{alias}": sql_ for alias, sql_ in (aggregates or {}).items()})
    try:
        got = facts(con, sql, params, wanted)
    except duckdb.Error as err:
        what = f"the target '{target}'" if target is not None else "the columns"
        raise SourceError(f"cannot read {what} of the source: {err}") from None
    out: dict[str, Any] = {"distinct": 0, "rows": int(got["rows"])}
    if target is not None:
        lo, hi = got["min"], got["max"]
        out = {"distinct": int(got["distinct"]), "rows": int(got["rows"]), "min": int(lo) if lo is not None else None,
               "max": int(hi) if hi is not None else None, "longest": int(got["longest"] or 0)}  # fmt: skip
    if columns:
        out["columns"] = {c: {n: got[f"column:{c}:{n}"] for n in aggs} for c, aggs in columns.items()}
    if aggregates:
        out["statistics"] = {alias: got[f"statistic:{alias}"] for alias in aggregates}
    return out
