"""Results as text, in the output modes of DuckDB's CLI: box, csv, json, jsonlines,
line, markdown and list.

A result is a pyarrow Table. Text modes show each value as DuckDB casts it to VARCHAR
(so a STRUCT reads ``{'a': 1}``, a MAP ``{1=a}``, as DuckDB prints them); JSON modes
write the native values, numbers as numbers and NULL as null.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import math
import uuid
from typing import Any

import duckdb
import pyarrow as pa

from dbml.sqltext import quote

__all__ = ["MODES", "render", "text_rows", "json_rows"]

MODES = ("box", "csv", "json", "jsonlines", "line", "markdown", "list")

MAX_ROWS = 40  # box mode: at most this many rows, the first and last halves
MAX_CELL = 40  # box mode: a longer value is cut, with an ellipsis
NULL = "NULL"


def text_rows(table: pa.Table, rows: list[int] | None = None) -> list[list[str | None]]:
    """The values of ``table`` (or of the rows at ``rows``) as DuckDB writes them as
    VARCHAR; None for NULL."""
    if rows is not None:
        table = table.take(pa.array(rows, pa.int64()))
    if table.num_columns == 0:
        return [[] for _ in range(table.num_rows)]
    con = duckdb.connect()
    try:
        # positional names, so no column name (duplicates, odd characters) can matter
        names = [f"c{i}" for i in range(table.num_columns)]
        data = table.rename_columns(names)
        rel = con.from_arrow(data)
        casts = ", ".join(f"CAST({quote(n)} AS VARCHAR)" for n in names)
        return [list(r) for r in rel.select(casts).fetchall()]
    finally:
        con.close()


def _plain(value: Any, typ: pa.DataType) -> Any:
    """A value of arrow type ``typ`` as a JSON-able Python value."""
    if value is None:
        return None
    if pa.types.is_map(typ):
        pairs = [(_plain(k, typ.key_type), _plain(v, typ.item_type)) for k, v in value]
        if all(isinstance(k, str) for k, _ in pairs):
            return dict(pairs)
        return [{"key": k, "value": v} for k, v in pairs]
    if pa.types.is_struct(typ):
        return {f.name: _plain(value.get(f.name), f.type) for f in typ}
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return [_plain(v, typ.value_type) for v in value]
    if pa.types.is_dictionary(typ):
        return _plain(value, typ.value_type)
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or Infinity
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and value.is_finite() else float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID | datetime.timedelta):
        return str(value)
    return str(value)


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of ``table`` as dicts of JSON-able values."""
    types = [f.type for f in table.schema]
    names = table.column_names
    out = []
    for row in table.to_pylist(maps_as_pydicts=None):
        out.append({n: _plain(row[n], t) for n, t in zip(names, types, strict=True)})
    return out


def render(table: pa.Table, mode: str = "box", width: int = 120, types: list[str] | None = None) -> str:
    """``table`` as text in output mode ``mode``.

    Args:
        table: the result.
        mode: one of ``MODES``.
        width: the terminal width box mode fits into.
        types: DuckDB's type names of the columns, shown under the header in box mode.
    """
    if mode not in MODES:
        raise ValueError(f"unknown output mode '{mode}'; use one of {', '.join(MODES)}")
    names = list(table.column_names)
    if mode in ("json", "jsonlines"):
        # row dicts keyed by name lose duplicate names; DuckDB's JSON mode does the same
        rows = json_rows(table)
        if mode == "jsonlines":
            return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if not rows:
            return ""
        return "[" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "]\n"
    if mode == "box":
        return _box(table, names, types, width)
    values = text_rows(table)
    if mode == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([["" if v is None else v for v in r] for r in values])
        return buf.getvalue()
    shown = [[NULL if v is None else v for v in r] for r in values]
    if mode == "list":
        return "".join("|".join(r) + "\n" for r in [names, *shown])
    if mode == "line":
        pad = max((len(n) for n in names), default=0)
        blocks = ["".join(f"{n.rjust(pad)} = {v}\n" for n, v in zip(names, r, strict=True)) for r in shown]
        return "\n".join(blocks)
    # markdown
    numeric = [_is_numeric(f.type) for f in table.schema]

    def cells(r: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|").replace("\n", " ") for v in r) + " |\n"

    rule = "|" + "|".join("---:" if num else "---" for num in numeric) + "|\n"
    return cells(names) + rule + "".join(cells(r) for r in shown)


def _is_numeric(typ: pa.DataType) -> bool:
    return pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)


def _cut(text: str, limit: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _box(table: pa.Table, names: list[str], types: list[str] | None, width: int) -> str:
    n = table.num_rows
    if n > MAX_ROWS:
        half = MAX_ROWS // 2
        picked = list(range(half)) + list(range(n - half, n))
    else:
        picked = list(range(n))
    values = text_rows(table, picked) if table.num_columns else []
    body = [[_cut(NULL if v is None else v, MAX_CELL) for v in r] for r in values]
    if n > MAX_ROWS:
        half = MAX_ROWS // 2
        body = body[:half] + [None] + body[half:]  # None: the "..." row
    types = [str(t).lower() for t in (types or [])] or [""] * len(names)
    numeric = [_is_numeric(f.type) for f in table.schema]
    cols = list(range(len(names)))

    def col_width(i: int) -> int:
        cells = [len(r[i]) for r in body if r is not None]
        return max([len(_cut(names[i], MAX_CELL)), len(_cut(types[i], MAX_CELL)), 1, *cells])

    widths = {i: col_width(i) for i in cols}

    def total(shown: list[int], gap: bool) -> int:
        return sum(widths[i] + 3 for i in shown) + 1 + (4 if gap else 0)

    # too wide for the terminal: drop columns from the middle, as DuckDB's CLI does
    shown, gap = cols, False
    while len(shown) > 1 and total(shown, gap) > width:
        shown = shown[: len(shown) // 2] + shown[len(shown) // 2 + 1 :] if len(shown) > 2 else shown[:1]
        gap = True
    split = (len(shown) + 1) // 2 if gap else len(shown)

    def line(left: str, mid: str, right: str) -> str:
        parts = ["─" * (widths[i] + 2) for i in shown]
        if gap:
            parts.insert(split, "───")
        return left + mid.join(parts) + right + "\n"

    def row(cells: list[str], aligns: list[str]) -> str:
        parts = []
        for i, text, how in zip(shown, cells, aligns, strict=True):
            w = widths[i]
            parts.append(" " + (text.rjust(w) if how == ">" else text.center(w) if how == "^" else text.ljust(w)) + " ")
        if gap:
            parts.insert(split, " … ")
        return "│" + "│".join(parts) + "│\n"

    out = [line("┌", "┬", "┐")]
    out.append(row([_cut(names[i], MAX_CELL) for i in shown], ["^"] * len(shown)))
    if any(types):
        out.append(row([_cut(types[i], MAX_CELL) for i in shown], ["^"] * len(shown)))
    out.append(line("├", "┼", "┤"))
    if not body:
        out.append(row(["0 rows" if k == 0 else "" for k in range(len(shown))], ["<"] * len(shown)))
    for r in body:
        if r is None:
            out.append(row(["·" for _ in shown], ["^"] * len(shown)))
            continue
        out.append(row([r[i] for i in shown], [">" if numeric[i] else "<" for i in shown]))
    out.append(line("└", "┴", "┘"))
    notes = []
    if n > MAX_ROWS:
        notes.append(f"{n} rows ({len(picked)} shown)")
    if gap:
        notes.append(f"{len(names)} columns ({len(shown)} shown)")
    if notes:
        out.append("  " + "  ".join(notes) + "\n")
    return "".join(out)
