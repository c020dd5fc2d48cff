"""What every ML statement is made of: a node, a row of the statements table, and the
small pieces handlers share (the source of a statement, its options, its parameters).

Nothing here imports DuckDB, torch or onnx: the dialect, the script splitter and the
shell read the table without loading what the handlers need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from sqlglot import exp

from dbml.errors import DbmlError, OptionError, SourceError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbml.statements.context import Context

__all__ = [
    "MLStatement", "Statement", "Reader", "source_query", "options_of", "version_of", "option_value", "rows_relation",
    "numbered_parameters", "parameters_for", "FILE_SUFFIXES", "OnSource", "parse_on_source", "generate_on_source",
    "with_sql",
]  # fmt: skip

FILE_SUFFIXES = (".parquet", ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".gz", ".zst", ".xlsx")


class MLStatement(exp.Expression):
    """Base class of the nodes of dbml's statements (the generator prints them through
    the statements table; anything else is sqlglot's)."""


class Reader(Protocol):
    """What a statement's ``parse`` reads its text with (the dbml parser, after the head
    keywords). Every method raises the parser's error, which names the line and column."""

    def match(self, *words: str) -> bool:
        """Consume the next tokens when they are these words (case-insensitive)."""

    def peek(self, offset: int = 0) -> str | None:
        """The upper-case text of a token ahead, without consuming it (None at the end)."""

    def model_name(self) -> exp.Identifier:
        """A model name (an identifier, quoted or not)."""

    def identifier(self, message: str, any_token: bool = False) -> exp.Identifier:
        """An identifier (``any_token``: a keyword too); ``message`` is the error without one."""

    def identifiers(self, message: str) -> list[exp.Identifier]:
        """A comma-separated list of identifiers; ``message`` is the error without one."""

    def version(self, required: bool = False) -> exp.Literal | None:
        """``VERSION n`` (a bare whole number when ``required``)."""

    def number(self, missing: str, bad: str) -> exp.Literal:
        """A whole number; ``missing`` is the error without one, ``bad`` starts the error
        for a number that is not whole (``, got 1.5`` follows)."""

    def string(self, message: str) -> exp.Literal:
        """A quoted string; ``message`` is the error without one."""

    def source(self, after: str) -> tuple[exp.Expression, str | None]:
        """A table, a quoted file path or ``(query)``: (node, the user's text of a query)."""

    def options(self) -> list[exp.EQ]:
        """``WITH (k = v, ...)`` when present, else []."""

    def finish(self, node: MLStatement) -> MLStatement:
        """The node, once nothing is left to read (else an error naming what is)."""

    def error(self, message: str) -> None:
        """Stop with a syntax error at the current token."""


@dataclass(frozen=True)
class Statement:
    """One row of the statements table: everything dbml knows of an ML statement.

    Attributes:
        name: a short name (``train``, ``forecast``), the key of the table.
        head: the keywords that start it (``("FORECAST", "MODEL")``).
        node: its expression class (a :class:`MLStatement`).
        parse: reads the rest of the statement after the head -> a node.
        generate: the node -> its SQL text (golden files, messages).
        run: the handler: (context, node) -> a DuckDB relation, or None.
        twins: the Python twins, {Connection method name: function(ctx, ...)}; each
            builds the same call as the handler.
        columns: the result's columns, in order (documentation, the shell).
        returns_rows: whether it gives rows that compose with SQL (a subquery, a CTE,
            CREATE TABLE AS, COPY); a statement that only acts is refused inside a query.
        keywords: the words of its grammar the shell completes, beyond the head.
        accept: for heads that are DuckDB forms too (SHOW MODELS, DESCRIBE MODEL), a
            test of the masked text after the head: True when the statement is dbml's.
        guard: a test of the tokens after the head (a :class:`Reader`), for statements
            whose head another one starts with (EXPORT MODEL CARD name against EXPORT
            MODEL card TO ...): False hands the text to the next row.
        summary: one line for users (the shell's .help).
    """

    name: str
    head: tuple[str, ...]
    node: type[MLStatement]
    parse: Callable[[Reader], MLStatement]
    generate: Callable[[Any, MLStatement], str]
    run: Callable[["Context", MLStatement], "duckdb.DuckDBPyRelation | None"]
    twins: dict[str, Callable[..., Any]] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    returns_rows: bool = False
    keywords: tuple[str, ...] = ()
    accept: Callable[[str], bool] | None = None
    guard: Callable[[Reader], bool] | None = None
    summary: str = ""


# -- the pieces handlers share ---------------------------------------------------------------


class OnSource(MLStatement):
    """A node of the shape ``<HEAD> MODEL m [VERSION n] ON <table | 'file' | (query)>
    [WITH (...)]`` (EVALUATE, EXPLAIN, MONITOR); each statement subclasses it."""

    arg_types = {"this": True, "version": False, "source": True, "source_sql": False, "options": False}


def parse_on_source(node: type[OnSource]) -> Callable[[Reader], MLStatement]:
    """The ``parse`` of an :class:`OnSource` statement."""

    def parse(r: Reader) -> MLStatement:
        name = r.model_name()
        version = r.version()
        if not r.match("ON"):
            r.error("Expected ON (query) after the model")
        source, source_sql = r.source("ON")
        return r.finish(node(this=name, version=version, source=source, source_sql=source_sql, options=r.options()))

    return parse


def with_sql(gen: Any, e: exp.Expression) -> str:
    """`` WITH (k = v, ...)`` of a node's options, or '' without."""
    options = e.args.get("options") or []
    return " WITH (" + ", ".join(f"{gen.sql(o.this)} = {gen.sql(o.expression)}" for o in options) + ")" if options else ""


def generate_on_source(head: str) -> Callable[[Any, MLStatement], str]:
    """The ``generate`` of an :class:`OnSource` statement whose head is ``head``."""

    def generate(gen: Any, e: MLStatement) -> str:
        version = f" VERSION {e.args['version'].name}" if e.args.get("version") else ""
        source = f"({e.args['source_sql']})" if e.args.get("source_sql") else gen.sql(e.args["source"])
        return f"{head} {gen.sql(e.this)}{version} ON {source}{with_sql(gen, e)}"

    return generate


def rows_relation(con: "duckdb.DuckDBPyConnection", rows: list[dict[str, Any]], schema: "pa.Schema | None" = None):
    """A relation over Python rows (no table or view is left behind)."""
    import pyarrow as pa

    return con.from_arrow(pa.Table.from_pylist(rows, schema=schema))


def source_query(source: str | exp.Expression, subquery_sql: str | None = None) -> tuple[str, str]:
    """(the query that reads a source, how to name it in messages).

    ``source`` is a table or view name, a file path, or a query: a string from the Python
    API, or the parsed source of a statement (with ``subquery_sql``, the user's own text
    of a query).
    """
    if isinstance(source, exp.Subquery):
        return subquery_sql or source.this.sql(dialect="duckdb"), "(query)"
    if isinstance(source, exp.Literal):
        return f"SELECT * FROM {exp.Literal.string(source.this).sql(dialect='duckdb')}", f"'{source.this}'"
    if isinstance(source, exp.Table):
        table = exp.Table(**{k: exp.to_identifier(v.name, quoted=True) if isinstance(v, exp.Identifier) else v
                             for k, v in source.args.items() if k in ("this", "db", "catalog") and v is not None})  # fmt: skip
        return f"SELECT * FROM {table.sql(dialect='duckdb')}", source.sql(dialect="duckdb")
    if not isinstance(source, str) or not source.strip():
        raise SourceError(f"the source must be a table name, a file path or a query, got {source!r}")
    text = source.strip()
    head = text.split(None, 1)[0].upper()
    if text.startswith("(") or head in ("SELECT", "WITH", "FROM", "VALUES", "TABLE", "PIVOT", "UNPIVOT"):
        inner = text[1:-1] if text.startswith("(") and text.endswith(")") else text
        return inner, "(query)"
    if "://" in text or "/" in text or text.lower().endswith(FILE_SUFFIXES) or "*" in text:
        return source_query(exp.Literal.string(text))
    try:
        table = exp.to_table(text, dialect="duckdb")
    except Exception:
        raise SourceError(f"{text!r} is not a table name, a file path or a query") from None
    return source_query(table)


def version_of(node: exp.Expression) -> int | None:
    """The ``VERSION n`` of a statement, or None."""
    version = node.args.get("version")
    return int(version.name) if version is not None else None


def options_of(node: exp.Expression, params: Any = None) -> dict[str, Any]:
    """The ``WITH (...)`` options of a statement as Python values; a parameter (``?``,
    ``$1``, ``$name``, a notebook's ``{{var}}``) takes its bound value."""
    out: dict[str, Any] = {}
    for opt in node.args.get("options") or []:
        key = opt.this.name
        if key.lower() in {k.lower() for k in out}:
            raise OptionError(f"option '{key}' is given twice")
        out[key] = option_value(key, opt.expression, params)
    return out


def option_value(name: str, value: exp.Expression, params: Any = None) -> Any:
    """An option's SQL literal (number, string, boolean, NULL, list, or a bound
    parameter) -> Python."""
    if isinstance(value, exp.Paren):
        return option_value(name, value.this, params)
    if isinstance(value, exp.Placeholder):
        return _bound(name, value, params)
    if isinstance(value, exp.Neg):
        inner = option_value(name, value.this, params)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner
    elif isinstance(value, exp.Boolean):
        return bool(value.this)
    elif isinstance(value, exp.Null):
        return None
    elif isinstance(value, exp.Literal):
        if value.is_string:
            return value.this
        text = value.this
        try:
            return int(text)
        except ValueError:
            return float(text)
    elif isinstance(value, exp.Array):
        return [option_value(name, v, params) for v in value.expressions]
    elif isinstance(value, (exp.Column, exp.Identifier)) and value.name.lower() in ("true", "false"):
        return value.name.lower() == "true"
    elif isinstance(value, exp.Column) and not value.table:
        return value.name  # a bare name, such as a column in WITH (by = region)
    raise OptionError(
        f"option '{name}' has value {value.sql(dialect='duckdb')!r}, which is not a number, "
        "string, boolean or [list]"
    )


def _bound(name: str, placeholder: exp.Placeholder, params: Any) -> Any:
    key = placeholder.this or "?"
    if not isinstance(params, dict) or key not in params:
        raise OptionError(
            f"option '{name}' is the parameter {'$' + key if key != '?' else '?'}, but no value is bound to it"
        )
    value = params[key]
    if not (value is None or isinstance(value, (bool, int, float, str))) and not (
        isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value)
    ):
        raise OptionError(
            f"option '{name}' is bound to a {type(value).__name__} ({_short(value)}); an option takes a number, "
            "a string, a boolean, NULL or a list of those"
        )
    return list(value) if isinstance(value, tuple) else value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- parameters --------------------------------------------------------------------------------

_PREFIX = "dbml_p"
_NAMED = re.compile(r"(?<![\w$])\$([A-Za-z_][A-Za-z0-9_]*|\d+)(?![\w$])")


def numbered_parameters(sql: str, masked: str, params: Any) -> tuple[str, dict[str, Any] | None]:
    """An ML statement's text and parameters with every parameter named, so that each
    query built from its parts can be given exactly the values it uses.

    ``?`` (the k-th one) and ``$k`` become ``$dbml_pk`` and a list of values becomes
    {``dbml_pk``: value}; ``$name`` stays, with a dict of values. ``masked`` is ``sql``
    with strings and comments hidden (:func:`dbml.script.mask`), so text inside quotes
    is never read as a parameter.
    """
    if params is None:
        return sql, None
    if isinstance(params, dict):
        return sql, {str(k): v for k, v in params.items()}
    if not isinstance(params, (list, tuple)):
        raise DbmlError(f"parameters must be a list or a dict, got {type(params).__name__}")
    values = {f"{_PREFIX}{i + 1}": v for i, v in enumerate(params)}
    out, last, highest = [], 0, 0
    for m in re.finditer(r"\?|(?<![\w$])\$(\d+)(?![\w$])", masked):
        if m.group(0) == "?":  # DuckDB's rule: the one after the highest number seen so far
            highest += 1
            number = highest
        else:
            number = int(m.group(1))
            highest = max(highest, number)
        out.append(sql[last : m.start()] + f"${_PREFIX}{number}")
        last = m.end()
    out.append(sql[last:])
    return "".join(out), values


def parameters_for(masked: str, params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The values a query uses, of a statement's named parameters (None: it uses none)."""
    if not params:
        return None
    used = {m.group(1) for m in _NAMED.finditer(masked)}
    chosen = {k: v for k, v in params.items() if k in used}
    return chosen or None
