"""The Jupyter (IPython) extension: ``%load_ext dbml``, then ``%dbml`` and ``%%dbml``.

    %load_ext dbml
    %dbml connect shop.duckdb            # a path, :memory:, or a variable holding a connection
    %dbml SHOW MODELS                    # one statement
    %%dbml                               # a cell of dbml statements and SQL
    TRAIN MODEL churn FROM customers TARGET churned WITH (epochs = 20);
    SELECT id, PREDICT(churn, *) AS p FROM new_customers WHERE spend > {{threshold}}

``%%dbml scores <<`` stores the last result in the notebook variable ``scores`` (a DuckDB
relation: ``scores.df()``, ``scores.pl()``). Python values enter the SQL two ways:

* ``{{name}}`` is always a *value*: it becomes a bound parameter (``$dbml_1``), never text
  pasted into the SQL, so a string with quotes or ``; DROP TABLE`` stays one string.
* ``{{ident:name}}`` is an *identifier* (a table or column name held in a string): it is
  pasted as a double-quoted identifier, its ``"`` doubled.

A placeholder inside a quoted string or a comment is an error (``'{{x}}'`` would bind a
parameter DuckDB never sees): write ``WHERE y = {{x}}``, without quotes. ``name`` is a
variable of the notebook. A cell's last result is shown as a pandas DataFrame of at most
``%config DbmlMagics.displaylimit`` rows (20 by default), with a line giving the total.
Errors show dbml's (or DuckDB's) message without a traceback, and still fail the cell,
so a notebook run by nbclient or ``jupyter nbconvert --execute`` stops at it.

``current()`` gives the connection ``%dbml`` cells run on, for Python that takes one:
``dbml.plot.training_curves(current(), "churn")``.

A dbml ``Connection`` also works with jupysql (``%sql con``): :class:`Cursor` is what its
``cursor()`` gives.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["DbmlMagics", "Cursor", "bind", "current", "load_ipython_extension", "unload_ipython_extension"]

_PLACEHOLDER = re.compile(r"\{\{\s*(?:(ident)\s*:\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_CAPTURE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*<<\s*(.*)$", re.S)


def bind(text: str, namespace: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Replace the ``{{...}}`` placeholders of ``text`` with parameters and identifiers.

    Args:
        text: SQL with ``{{name}}`` (a value, bound) and ``{{ident:name}}`` (an identifier).
        namespace: where the names are looked up (the notebook's variables).

    Returns:
        The SQL, with ``$dbml_1``, ``$dbml_2``, ... for the values, and the values by name.

    Raises:
        DbmlError: a name that is not defined, an identifier that is not a non-empty string,
            or a value DuckDB cannot bind (a DataFrame, a set, an object of a class of its own).
    """
    from dbml.errors import DbmlError
    from dbml.script import mask

    params: dict[str, Any] = {}
    masked = mask(text)  # strings and comments blanked: a placeholder there is not SQL

    def replace(match: re.Match) -> str:
        is_ident, name = match.group(1), match.group(2)
        if masked[match.start() : match.start() + 2] != "{{":
            raise DbmlError(
                f"{match.group(0)} is inside a quoted string or a comment; a placeholder is bound as a value "
                f"(or pasted as a quoted identifier), so write it without quotes: WHERE y = {match.group(0)}"
            )
        if name not in namespace:
            raise DbmlError(f"{{{{{match.group(0)[2:-2].strip()}}}}}: no variable '{name}' in the notebook")
        value = namespace[name]
        if is_ident:
            if not isinstance(value, str) or not value:
                raise DbmlError(f"{{{{ident:{name}}}}} must name a table or column as a non-empty string, got {value!r}")
            return '"' + value.replace('"', '""') + '"'
        key = f"dbml_{len(params) + 1}"
        params[key] = _bindable(value, "{{" + name + "}}", name)
        return f"${key}"

    return _PLACEHOLDER.sub(replace, text), params


# frames DuckDB reads by name in FROM (its replacement scans), but cannot bind as a value
_FRAMES = {
    ("pandas", "DataFrame"): "a pandas DataFrame", ("polars", "DataFrame"): "a polars DataFrame",
    ("polars", "LazyFrame"): "a polars LazyFrame", ("pyarrow", "Table"): "a pyarrow Table",
    ("pyarrow", "RecordBatch"): "a pyarrow RecordBatch", ("pyarrow", "RecordBatchReader"): "a pyarrow RecordBatchReader",
    ("pyarrow", "Dataset"): "a pyarrow Dataset", ("duckdb", "DuckDBPyRelation"): "a DuckDB relation",
}  # fmt: skip
_VALUES = "a real number, a string, bytes, a date, time or timedelta, a UUID, None, or a list, tuple, dict or array of them"


def _bindable(value: Any, where: str, name: str) -> Any:
    """``value`` as DuckDB binds it (numpy scalars become Python ones, which DuckDB binds
    and numpy's integers it does not), checked before anything runs.

    Args:
        value: the notebook variable's value, or an item inside it.
        where: the placeholder (and the item's place in it) for messages, ``{{x}}[0]``.
        name: the variable's name, for the fix a message suggests.

    Raises:
        DbmlError: a value of a type DuckDB cannot bind, naming ``where``, its type and what to do.
    """
    import datetime
    import decimal
    import uuid

    import numpy as np

    from dbml.errors import DbmlError

    if value is None or isinstance(value, bool | int | float | str | bytes | bytearray | memoryview | decimal.Decimal
                                   | datetime.date | datetime.time | datetime.timedelta | uuid.UUID):  # fmt: skip
        if isinstance(value, np.generic):  # np.float64 and np.str_ are float and str already
            return _bindable(value.item(), where, name)
        return value
    if isinstance(value, np.generic) and not isinstance(value, np.complexfloating | np.void):
        return _bindable(value.item(), where, name)  # np.int64, np.bool_, np.datetime64
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufUSMm":
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        return [_bindable(v, f"{where}[{i}]", name) for i, v in enumerate(value.tolist())]
    if isinstance(value, list | tuple):
        return type(value)(_bindable(v, f"{where}[{i}]", name) for i, v in enumerate(value))
    if isinstance(value, dict):
        return {k: _bindable(v, f"{where}[{k!r}]", name) for k, v in value.items()}
    cls = type(value)
    kind = _FRAMES.get((cls.__module__.partition(".")[0].lstrip("_"), cls.__name__))
    if kind is not None:
        raise DbmlError(
            f"{where} is {kind}, which cannot be bound as a value: use it by name in FROM "
            f"(SELECT * FROM {name}), as DuckDB reads the notebook's frames"
        )
    if isinstance(value, set | frozenset):
        fix = f"bind a list instead ({name} = sorted({name}))" if where == "{{" + name + "}}" else "put a list in its place"
    elif (cls.__module__.partition(".")[0], cls.__name__) in (("pandas", "Series"), ("polars", "Series")):
        fix = f"bind a list instead ({name}.tolist() or {name}.to_list()), or use its frame by name in FROM"
    else:
        fix = f"bind {_VALUES}"
    typ = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    raise DbmlError(f"{where} is a {typ}, which cannot be bound as a value: {fix}")


def _magics_class():
    """The magics class, built on first use so ``import dbml`` never imports IPython."""
    from IPython.core.error import UsageError
    from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
    from traitlets import Int

    @magics_class
    class DbmlMagics(Magics):
        """``%dbml`` and ``%%dbml``: dbml statements and SQL on the notebook's connection."""

        displaylimit = Int(20, config=True, help="most rows a %%dbml cell shows (0: all)")

        def __init__(self, shell=None, **kwargs):
            super().__init__(shell=shell, **kwargs)
            self.connection = None  # the dbml Connection cells run on
            self.label = ""  # what it was connected to, for messages

        @no_var_expand  # {{name}} is ours: IPython would turn {{ into { in a line
        @line_cell_magic
        def dbml(self, line: str, cell: str | None = None):
            """Run dbml statements and SQL; ``connect`` a database first.

            ``%dbml connect PATH`` (or ``:memory:``, or a variable holding a DuckDB or dbml
            connection), ``%dbml STATEMENT``, ``%%dbml`` over a cell, ``%%dbml name <<`` to
            store the last result in ``name``.
            """
            from dbml.errors import DbmlError

            try:
                return self._dbml(line, cell)
            except UsageError:
                raise
            except DbmlError as err:
                raise UsageError(str(err)) from None
            except Exception as err:  # DuckDB's own errors: their message, without dbml's frames
                if type(err).__module__.partition(".")[0] != "duckdb" and not type(err).__module__.startswith("_duckdb"):
                    raise
                raise UsageError(f"{type(err).__name__}: {err}") from None

        def _dbml(self, line: str, cell: str | None):
            words = line.split(None, 1)
            if cell is None and words and words[0].lower() == "connect":
                return self._connect(words[1].strip() if len(words) > 1 else "")
            target, text = None, cell if cell is not None else line
            capture = _CAPTURE.match(line)
            if capture:
                target = capture.group(1)
                text = cell if cell is not None else capture.group(2)
            elif cell is not None and line.strip():
                raise UsageError(f"%%dbml takes nothing or 'name <<' on its first line, got {line.strip()!r}")
            if not text.strip():
                if self.connection is None:
                    raise UsageError(_NO_CONNECTION)
                print(f"dbml: connected to {self.label}")
                return None
            if self.connection is None:
                raise UsageError(_NO_CONNECTION)
            result = self._run(text)
            if target is not None:
                self.shell.user_ns[target] = result
                return None
            return self._show(result)

        def _connect(self, spec: str):
            import duckdb

            import dbml
            from dbml.connection import Connection

            if not spec:
                raise UsageError("%dbml connect needs a database: a path, :memory:, or a variable holding a connection")
            ns = self.shell.user_ns
            if spec.isidentifier() and spec in ns and not isinstance(ns[spec], str):
                value = ns[spec]
                if isinstance(value, Connection):
                    self.connection, self.label = value, f"the connection in '{spec}'"
                elif isinstance(value, duckdb.DuckDBPyConnection):
                    self.connection, self.label = dbml.install(value), f"the connection in '{spec}'"
                else:
                    raise UsageError(
                        f"variable '{spec}' is a {type(value).__name__}; %dbml connect takes a DuckDB or dbml "
                        "connection, a path or :memory:"
                    )
            else:
                path = spec.strip("'\"")
                self.connection = dbml.connect(None if path == ":memory:" else path)
                self.label = path
            print(f"dbml: connected to {self.label}")
            return None

        def _run(self, text: str):
            """Each statement of the cell with the parameters it names (DuckDB binds
            parameters to one statement at a time)."""
            from dbml.rewrite import split_statements

            sql, params = bind(text, self.shell.user_ns)  # every placeholder checked before anything runs
            if not params:
                return self._call(sql, None)
            result = None
            # each statement bound on its own, from the cell's text: its parameters are the
            # ones it holds, found without searching SQL (an identifier may read "$dbml_1")
            for part in split_statements(text):
                part_sql, part_params = bind(part.text, self.shell.user_ns)
                rel = self._call(part_sql, part_params or None)
                if rel is not None:
                    result = rel
            return result

        def _call(self, sql: str, params):
            from dbml.connection import user_namespace

            # DuckDB's replacement scans see the notebook's names (SELECT * FROM df)
            with user_namespace(self.shell.user_ns):
                return self.connection.sql(sql, params=params)

        def _show(self, rel):
            """The first ``displaylimit`` rows as a DataFrame, the query run once: the
            rest of its rows are counted as they stream past, not kept."""
            if rel is None:
                return None
            limit = self.displaylimit
            reader = rel.to_arrow_reader(max(limit, 1024)) if limit else None
            if reader is None:
                return rel.df()
            import pyarrow as pa

            kept, total = [], 0
            for batch in reader:
                if total < limit:
                    kept.append(batch.slice(0, limit - total))
                total += batch.num_rows
            frame = pa.Table.from_batches(kept, schema=reader.schema).to_pandas()
            if total > limit:
                print(f"dbml: {total:,} rows, the first {limit} shown (store them all with %%dbml name <<)")
            return frame

    return DbmlMagics


def current():
    """The dbml ``Connection`` that ``%dbml`` and ``%%dbml`` cells run on, for the Python
    functions that take one (``dbml.plot``, ``con.model_card``, ``con.train``)::

        %dbml connect shop.duckdb
        from dbml.integrations.notebook import current
        dbml.plot.training_curves(current(), "churn")

    Raises:
        DbmlError: outside IPython, before ``%load_ext dbml``, or before ``%dbml connect``.
    """
    from dbml.errors import DbmlError

    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None
    ipython = get_ipython() if get_ipython is not None else None
    magics = ipython.magics_manager.registry.get("DbmlMagics") if ipython is not None else None
    if magics is None:
        raise DbmlError("current() gives the connection of %dbml cells: in IPython or Jupyter, run %load_ext dbml "
                        "and %dbml connect shop.duckdb first (elsewhere, use con = dbml.connect('shop.duckdb'))")  # fmt: skip
    if magics.connection is None:
        raise DbmlError(_NO_CONNECTION)
    return magics.connection


_NO_CONNECTION = "no dbml connection: run %dbml connect shop.duckdb (or :memory:, or a variable holding a connection) first"


def __getattr__(name: str) -> Any:
    if name == "DbmlMagics":
        cls = _magics_class()
        globals()["DbmlMagics"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from dbml.cursor import Cursor  # noqa: E402 - jupysql's view of a Connection, kept here for the docs' name


def load_ipython_extension(ipython) -> None:
    """``%load_ext dbml``: register ``%dbml`` and ``%%dbml``."""
    ipython.register_magics(__getattr__("DbmlMagics") if "DbmlMagics" not in globals() else globals()["DbmlMagics"])


def unload_ipython_extension(ipython) -> None:
    """``%unload_ext dbml``: remove ``%dbml`` and ``%%dbml``."""
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("dbml", None)
    ipython.magics_manager.registry.pop("DbmlMagics", None)
