"""Handlers of dbml's statements, one function each, found by statement class.

A handler takes the :class:`~dbml.connection.Connection` and the parsed statement
and returns a DuckDB relation (or None). The Python twins on the connection build
the same requests, so SQL and Python share one code path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import duckdb
import pyarrow as pa
from sqlglot import exp

from dbml import lifecycle
from dbml.dialect import (
    AlterModel, DescribeModel, DropModel, EvaluateModel, ExplainModel, ExportModel, ExportModelCard, ForecastModel, ImportModel, MonitorModel,
    ShowModels, TrainModel, option_value,
)  # fmt: skip
from dbml.errors import DbmlError, OptionError, SourceError
from dbml.request import TrainRequest
from dbml.registry.records import decode_row
from dbml.registry import check_model_name

if TYPE_CHECKING:
    from dbml.connection import Connection

__all__ = ["HANDLERS", "run_statement", "source_query", "rows_relation"]

_FILE_SUFFIXES = (".parquet", ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".gz", ".zst", ".xlsx")


def rows_relation(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> duckdb.DuckDBPyRelation:
    """A relation over Python rows (no table or view is left behind)."""
    return con.from_arrow(pa.Table.from_pylist(rows, schema=schema))


def source_query(source: str | exp.Expression, subquery_sql: str | None = None) -> tuple[str, str]:
    """(the query that reads a training source, how to name it in messages).

    ``source`` is a table or view name, a file path, or a query, as a string from the
    Python API or as the parsed FROM of TRAIN MODEL.
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
    if "://" in text or "/" in text or text.lower().endswith(_FILE_SUFFIXES) or "*" in text:
        return source_query(exp.Literal.string(text))
    try:
        table = exp.to_table(text, dialect="duckdb")
    except Exception:
        raise SourceError(f"{text!r} is not a table name, a file path or a query") from None
    return source_query(table)


def _options(node: exp.Expression) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for opt in node.args.get("options") or []:
        key = opt.this.name
        if key.lower() in {k.lower() for k in out}:
            raise OptionError(f"option '{key}' is given twice")
        out[key] = option_value(key, opt.expression)
    return out


def run_train(conn: "Connection", node: TrainModel, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
    source_sql, label = source_query(node.args["source"], node.args.get("source_sql"))
    using = node.args.get("using")
    request = TrainRequest(
        model=node.this.name,
        source_sql=conn.rewrite(source_sql),
        source_label=label,
        targets=[t.name for t in node.args.get("targets") or []],
        architecture=using.name if using is not None else None,
        options=_options(node),
        if_not_exists=bool(node.args.get("exists")),
        params=params,
    )
    return conn.run_train(request)


def run_show(conn: "Connection", node: ShowModels, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
    """One row per model, read as a person reads it: the default version's headline metric
    and size; the full metrics stay in ``dbml.models`` and DESCRIBE MODEL."""
    from dbml.summary import headline, human_size

    conn.registry  # noqa: B018 - created on first use
    rows = conn.db().sql(
        "SELECT m.model, m.versions, m.default_version, m.latest_version, v.task, v.architecture, v.target, "
        "v.metrics, v.row_count, v.onnx_size, "
        "(SELECT map(list(a.alias ORDER BY a.alias), list(a.version ORDER BY a.alias)) "
        " FROM dbml.aliases a WHERE a.model = m.model) AS aliases, m.updated_at "
        "FROM dbml.models m JOIN dbml.model_versions v ON v.model = m.model AND v.version = m.default_version "
        "ORDER BY m.model"
    ).fetchall()
    out = []
    for model, versions, default, latest, task, arch, target, metrics, row_count, size, aliases, updated in rows:
        metric, score = headline(task, decode_row({"metrics": metrics}, f"model '{model}'")["metrics"])
        out.append({"model": model, "task": task, "metric": metric, "score": score,
                    "versions": versions, "default_version": default, "aliases": aliases, "size": human_size(size),
                    "rows": row_count, "architecture": arch, "target": target, "latest_version": latest,
                    "updated_at": updated.replace(microsecond=0) if updated else None})  # fmt: skip
    return rows_relation(conn.db(), out, SHOW_SCHEMA)


SHOW_SCHEMA = pa.schema([
    ("model", pa.string()), ("task", pa.string()), ("metric", pa.string()), ("score", pa.float64()),
    ("versions", pa.int64()), ("default_version", pa.int32()), ("aliases", pa.map_(pa.string(), pa.int32())),
    ("size", pa.string()), ("rows", pa.int64()), ("architecture", pa.string()), ("target", pa.string()),
    ("latest_version", pa.int32()), ("updated_at", pa.timestamp("us")),
])  # fmt: skip


def run_describe(conn: "Connection", node: DescribeModel, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
    return conn.describe_model(node.this.name)


def run_drop(conn: "Connection", node: DropModel, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
    return conn.drop_model(node.this.name, version=_version(node), if_exists=bool(node.args.get("exists")))


def _version(node: exp.Expression) -> int | None:
    version = node.args.get("version")
    return int(version.name) if version is not None else None


def _on_source(run):
    """A handler for statements of the form ``... MODEL m [VERSION n] ON <source> [WITH (...)]``."""

    def handler(conn: "Connection", node: exp.Expression, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
        source_sql, label = source_query(node.args["source"], node.args.get("source_sql"))
        return run(conn, node.this.name, _version(node), conn.rewrite(source_sql), label, _options(node))

    return handler


def run_alter(conn: "Connection", node: AlterModel, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
    return lifecycle.set_alias(conn, node.this.name, node.args["alias"].name, _version(node))


def run_export(conn: "Connection", node: ExportModel, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
    return lifecycle.export_model(conn, node.this.name, _version(node), node.args["url"].this)


def run_export_card(conn: "Connection", node: ExportModelCard, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
    from dbml.integrations.card import export_card

    return export_card(conn, node.this.name, _version(node), node.args["url"].this)


def run_import(conn: "Connection", node: ImportModel, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
    return lifecycle.import_model(conn, node.this.name, node.args["url"].this, _options(node))


def run_forecast(conn: "Connection", node: ForecastModel, params: list[Any] | None) -> duckdb.DuckDBPyRelation:
    from dbml.forecast import forecast_model

    source_sql = None
    if node.args.get("source") is not None:
        source_sql = conn.rewrite(source_query(node.args["source"], node.args.get("source_sql"))[0])
    return forecast_model(conn, node.this.name, _version(node), int(node.args["horizon"].name), source_sql, _options(node))


HANDLERS: dict[type, Callable[["Connection", Any, list[Any] | None], duckdb.DuckDBPyRelation | None]] = {
    TrainModel: run_train,
    ShowModels: run_show,
    DescribeModel: run_describe,
    DropModel: run_drop,
    EvaluateModel: _on_source(lifecycle.evaluate_model),
    ExplainModel: _on_source(lifecycle.explain_model),
    MonitorModel: _on_source(lifecycle.monitor_model),
    AlterModel: run_alter,
    ExportModel: run_export,
    ExportModelCard: run_export_card,
    ImportModel: run_import,
    ForecastModel: run_forecast,
}


def run_statement(conn: "Connection", node: exp.Expression, params: list[Any] | None) -> duckdb.DuckDBPyRelation | None:
    handler = HANDLERS.get(type(node))
    if handler is None:  # pragma: no cover - the splitter only sends known heads here
        raise DbmlError(f"no handler for statement {node.sql(dialect='duckdb')}")
    if hasattr(node, "this") and isinstance(node.this, exp.Identifier):
        check_model_name(node.this.name)
    return handler(conn, node, params)
