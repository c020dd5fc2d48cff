"""``Connection.cursor()``: a DB-API shaped cursor over a dbml connection, for tools that
take a DuckDB connection (jupysql's ``%sql con``). It never imports the connection module:
it is given one."""

from __future__ import annotations

from typing import Any

__all__ = ["Cursor"]


class Cursor:
    """What ``Connection.cursor()`` gives, shaped like DuckDB's cursor for DB-API tools
    such as jupysql: ``execute`` runs dbml statements and SQL on a connection of its own
    (a DuckDB cursor of the same database, so a commit or another cursor's query never
    replaces its pending result), and ``fetchone``/``fetchmany``/``fetchall``/
    ``description``/``df``/``pl``/``arrow`` read what it gave.

    Plain SQL and PREDICT queries leave DuckDB's pending result, read as DuckDB reads it.
    A dbml statement (TRAIN MODEL, SHOW MODELS, ...) gives a relation, which DuckDB 2
    reads only whole: its rows are taken once, as Arrow, and read from there.
    """

    rowcount = -1  # as DuckDB: not known

    def __init__(self, conn):
        self._conn = conn
        self._result = None  # DuckDB's connection with a pending result, or None
        self._table = None  # a dbml statement's rows (a pyarrow Table)
        self._description = None
        self._offset = 0

    def execute(self, query: str, parameters: Any = None) -> "Cursor":
        import duckdb

        result = self._conn.execute(query, parameters)
        self._result = self._table = self._description = None
        self._offset = 0
        if isinstance(result, duckdb.DuckDBPyRelation):
            self._description = result.description
            self._table = result.to_arrow_table()
        elif result is not None:
            self._result = result
        return self

    @property
    def description(self):
        return self._description if self._table is not None else (None if self._result is None else self._result.description)

    def _pending(self):
        if self._result is None:
            from dbml.errors import DbmlError

            raise DbmlError("no result to read: the last statement gave no rows")
        return self._result

    def _take(self, n: int | None) -> list[tuple]:
        rest = self._table.num_rows - self._offset
        n = rest if n is None else max(0, min(n, rest))
        part = self._table.slice(self._offset, n)
        self._offset += n
        columns = [c.to_pylist() for c in part.columns]
        return list(zip(*columns)) if columns else [()] * n

    def fetchone(self):
        if self._table is not None:
            rows = self._take(1)
            return rows[0] if rows else None
        return self._pending().fetchone()

    def fetchmany(self, size: int = 1):
        return self._take(size) if self._table is not None else self._pending().fetchmany(size)

    def fetchall(self):
        return self._take(None) if self._table is not None else self._pending().fetchall()

    def arrow(self):
        return self._table if self._table is not None else self._pending().arrow()

    def df(self):
        return self._table.to_pandas() if self._table is not None else self._pending().df()

    def pl(self):
        if self._table is not None:
            import polars

            return polars.from_arrow(self._table)
        return self._pending().pl()

    def commit(self) -> None:
        self._conn.commit()

    def close(self) -> None:
        self._result = self._table = None
        self._conn.close()

    # -- DuckDB's connection API, beyond DB-API ---------------------------------------------
    def sql(self, text: str, params: Any = None):
        """``Connection.sql`` on this cursor's own connection: a relation, or None."""
        return self._conn.sql(text, params)

    def executemany(self, query: str, parameters: Any) -> "Cursor":
        for row in parameters:
            self.execute(query, row)
        return self

    def cursor(self) -> "Cursor":
        return self._conn.cursor()

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
