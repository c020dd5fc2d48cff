"""Results as text, in the output modes of DuckDB's CLI: box, csv, json, jsonlines,
line, markdown and list.

A result is a DuckDB relation (materialized: it is read more than once) or a pyarrow
Table. Text modes show each value as DuckDB casts it to VARCHAR (so a STRUCT reads
``{'a': 1}``, a MAP ``{1=a}``, as DuckDB prints them), cast by DuckDB from the relation
itself, so plain SQL in the shell never loads pyarrow; JSON modes write the native values,
numbers as numbers and NULL as null, through Arrow.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import math
import textwrap
import uuid
from typing import Any

from typing import TYPE_CHECKING

import duckdb

from dbml.sqltext import quote

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["MODES", "render", "text_rows", "json_rows"]

MODES = ("box", "csv", "json", "jsonlines", "line", "markdown", "list")

MAX_ROWS = 40  # box mode: at most this many rows, the first and last halves
MAX_CELL = 40  # box mode: a longer value is cut, with an ellipsis
VERTICAL_ROWS = 3  # box mode: a result this short and too wide is shown one column per line
MIN_VERTICAL_CELL = 12  # ... when each value gets at least this many characters
VERTICAL_TYPE = 24  # ... with the types cut to this ("timestamp with time zone" fits)
NULL = "NULL"


def text_rows(table: "pa.Table | duckdb.DuckDBPyRelation", rows: list[int] | None = None) -> list[list[str | None]]:
    """The values of ``table`` (or of the rows at ``rows``) as DuckDB writes them as
    VARCHAR; None for NULL."""
    if isinstance(table, duckdb.DuckDBPyRelation):
        return _relation_text(table, rows)
    import pyarrow as pa

    if rows is not None:
        # runs of consecutive rows as slices: Table.take loads pyarrow.compute, and with it pandas (0.4 s)
        parts = [table.slice(a, b - a) for a, b in _runs(rows)]
        table = pa.concat_tables(parts) if parts else table.slice(0, 0)
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


def _runs(rows: list[int]) -> list[list[int]]:
    """Consecutive row numbers as [start, stop) runs."""
    runs: list[list[int]] = []
    for r in rows:
        if runs and r == runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([r, r + 1])
    return runs


def _relation_text(rel: "duckdb.DuckDBPyRelation", rows: list[int] | None) -> list[list[str | None]]:
    """Rows of a materialized relation cast to VARCHAR by DuckDB, by position (#k), so no
    column name matters."""
    width = len(rel.columns)
    if width == 0:
        return [[] for _ in range(rel.shape[0] if rows is None else len(rows))]
    casts = ", ".join(f"CAST(#{k + 1} AS VARCHAR)" for k in range(width))
    if rows is None:
        return [list(r) for r in rel.select(casts).fetchall()]
    out: list[list[str | None]] = []
    for a, b in _runs(rows):
        out.extend(list(r) for r in rel.limit(b - a, a).select(casts).fetchall())
    return out


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL")  # fmt: skip


class _Result:
    """What the renderers read of a result, whether a DuckDB relation or an Arrow table."""

    def __init__(self, table: "pa.Table | duckdb.DuckDBPyRelation"):
        self.source = table
        if isinstance(table, duckdb.DuckDBPyRelation):
            self.names = list(table.columns)
            self.num_rows = table.shape[0]
            self.numeric = [str(t).upper().split("(")[0] in _NUMERIC for t in table.types]
        else:
            self.names = list(table.column_names)
            self.num_rows = table.num_rows
            self.numeric = [_is_numeric(f.type) for f in table.schema]
        self.num_columns = len(self.names)

    def arrow(self) -> "pa.Table":
        if isinstance(self.source, duckdb.DuckDBPyRelation):
            result = self.source.arrow()
            return result.read_all() if hasattr(result, "read_all") else result
        return self.source


def _plain(value: Any, typ: "pa.DataType") -> Any:
    """A value of arrow type ``typ`` as a JSON-able Python value."""
    import pyarrow as pa

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


def json_rows(table: "pa.Table") -> list[dict[str, Any]]:
    """The rows of ``table`` as dicts of JSON-able values."""
    types = [f.type for f in table.schema]
    names = table.column_names
    out = []
    for row in table.to_pylist(maps_as_pydicts=None):
        out.append({n: _plain(row[n], t) for n, t in zip(names, types, strict=True)})
    return out


def render(table: "pa.Table | duckdb.DuckDBPyRelation", mode: str = "box", width: int = 120,
           types: list[str] | None = None) -> str:  # fmt: skip
    """``table`` as text in output mode ``mode``.

    Args:
        table: the result: a materialized DuckDB relation, or an Arrow table.
        mode: one of ``MODES``.
        width: the terminal width box mode fits into.
        types: DuckDB's type names of the columns, shown under the header in box mode.
    """
    if mode not in MODES:
        raise ValueError(f"unknown output mode '{mode}'; use one of {', '.join(MODES)}")
    result = _Result(table)
    names = result.names
    if mode in ("json", "jsonlines"):
        # row dicts keyed by name lose duplicate names; DuckDB's JSON mode does the same
        rows = json_rows(result.arrow())
        if mode == "jsonlines":
            return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if not rows:
            return ""
        return "[" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "]\n"
    if mode == "box":
        return _box(result, names, types, width)
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
    numeric = result.numeric

    def cells(r: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|").replace("\n", " ") for v in r) + " |\n"

    rule = "|" + "|".join("---:" if num else "---" for num in numeric) + "|\n"
    return cells(names) + rule + "".join(cells(r) for r in shown)


def _is_numeric(typ: "pa.DataType") -> bool:
    import pyarrow as pa

    return pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)


def _flat(text: str) -> str:
    return text.replace("\n", "\\n")


def _cut(text: str, limit: int) -> str:
    text = _flat(text)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _box(result: _Result, names: list[str], types: list[str] | None, width: int) -> str:
    n = result.num_rows
    if n > MAX_ROWS:
        half = MAX_ROWS // 2
        picked = list(range(half)) + list(range(n - half, n))
    else:
        picked = list(range(n))
    raw = text_rows(result.source, picked) if result.num_columns else []
    body = [[_cut(NULL if v is None else v, MAX_CELL) for v in r] for r in raw]
    if n > MAX_ROWS:
        half = MAX_ROWS // 2
        body = body[:half] + [None] + body[half:]  # None: the "..." row
    types = [str(t).lower() for t in (types or [])] or [""] * len(names)
    numeric = result.numeric
    cols = list(range(len(names)))

    def col_width(i: int) -> int:
        cells = [len(r[i]) for r in body if r is not None]
        return max([len(_cut(names[i], MAX_CELL)), len(_cut(types[i], MAX_CELL)), 1, *cells])

    widths = {i: col_width(i) for i in cols}

    def total(shown: list[int], gap: bool) -> int:
        return sum(widths[i] + 3 for i in shown) + 1 + (4 if gap else 0)

    if len(cols) > 1 and total(cols, False) > width and 0 < n <= VERTICAL_ROWS:
        # a row or few, too wide: each column becomes a line, so no column is hidden
        folded = _vertical(raw, names, types, numeric, width)
        if folded is not None:
            return folded

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
            parts.append(" " + _align(text, widths[i], how) + " ")
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
        hidden = ", ".join(names[i] for i in cols if i not in shown)
        notes.append(f"{len(names)} columns ({len(shown)} shown; hidden: {hidden}; .mode line shows every column)")
    if notes:
        out.append(textwrap.fill("  ".join(notes), max(width, 40), initial_indent="  ", subsequent_indent="  ") + "\n")
    return "".join(out)


def _align(text: str, w: int, how: str) -> str:
    return text.rjust(w) if how == ">" else text.center(w) if how == "^" else text.ljust(w)


def _vertical(raw: list[list[str | None]], names: list[str], types: list[str], numeric: list[bool],
              width: int) -> str | None:  # fmt: skip
    """Rows ``raw`` turned on their side: one line per column (name, type, a value per
    row), values cut to fit ``width``; None where even that does not fit."""
    k = len(raw)
    heads = ["value"] if k == 1 else [f"row {j + 1}" for j in range(k)]
    name_w = max(len(_cut(x, MAX_CELL)) for x in [*names, "column"])
    type_w = min(max(len(x) for x in [*types, "type"]), VERTICAL_TYPE) if any(types) else 0
    values = [[_flat(NULL if v is None else v) for v in r] for r in raw]  # one list per row

    def room(type_w: int) -> int:  # the characters each row's values get
        return (width - 1 - (name_w + 3) - (type_w + 3 if type_w else 0)) // k - 3

    if room(type_w) < MIN_VERTICAL_CELL:
        type_w = 0  # the types give way to the values
    each = room(type_w)
    if each < MIN_VERTICAL_CELL:
        return None
    value_w = [min(max(len(heads[j]), *(len(v) for v in values[j])), each) for j in range(k)]
    cut = any(len(v) > value_w[j] for j in range(k) for v in values[j])
    ws = [name_w] + ([type_w] if type_w else []) + value_w

    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in ws) + right + "\n"

    def row(cells: list[str], aligns: str) -> str:
        parts = [" " + _align(c, w, a) + " " for c, w, a in zip(cells, ws, aligns, strict=True)]
        return "│" + "│".join(parts) + "│\n"

    out = [line("┌", "┬", "┐"), row(["column"] + (["type"] if type_w else []) + heads, "^" * len(ws))]
    out.append(line("├", "┼", "┤"))
    for i, name in enumerate(names):
        cells = [_cut(name, name_w)] + ([_cut(types[i], type_w)] if type_w else [])
        cells += [_cut(values[j][i], value_w[j]) for j in range(k)]
        out.append(row(cells, "<" * (1 + bool(type_w)) + (">" if numeric[i] else "<") * k))
    out.append(line("└", "┴", "┘"))
    note = f"{len(names)} columns, one per line: too wide for {width} characters"
    if cut:
        note += "; .mode line shows the cut values whole"
    out.append(textwrap.fill(note, max(width, 40), initial_indent="  ", subsequent_indent="  ") + "\n")
    return "".join(out)
