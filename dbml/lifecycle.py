"""Lifecycle operations on stored versions: deploy (aliases), evaluate, export, import.

Each returns a DuckDB relation; the registry module does every write.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from dbml.registry.modelfile import describe_file, open_session
from dbml.names import check_alias_name, check_model_name, check_version
from dbml.options import Option, validate_options
from dbml.runtime import verify_blob
from dbml.registry.transfer import MAX_IMPORT_BYTES, read_url, with_metadata, write_url

if TYPE_CHECKING:
    from dbml.connection import Connection

__all__ = [
    "set_alias", "evaluate_model", "explain_model", "monitor_model", "export_model", "import_model",
    "EVALUATE_OPTIONS", "EXPLAIN_OPTIONS", "MONITOR_OPTIONS", "IMPORT_OPTIONS",
]  # fmt: skip

EVALUATE_OPTIONS = (
    Option("by", "str", None, "a column: one row of metrics per value"),
    Option("label", "str", None, "anomaly models: a BOOLEAN (or 0/1) column, TRUE for a known anomaly, "
           "to score ANOMALY_SCORE (roc_auc) and IS_ANOMALY (precision, recall, f1) against"),
    Option("confusion", "bool", False, "return the confusion matrix as (actual, predicted, count) rows"),
    Option("positive", "any", None, "the positive class of a binary model (default: the last label)"),
    Option("curves", "bool", True, "store the data of the run's pictures (ROC, calibration, residuals, ...) "
           "with it; false skips the second pass over the rows this costs"),
)
EXPLAIN_OPTIONS = (
    Option("repeats", "int", 5, "shuffles per feature", lambda v: 1 <= v <= 100, "between 1 and 100"),
    Option("seed", "int", 0, "seed of the shuffles", lambda v: v >= 0, "a non-negative integer"),
)
MONITOR_OPTIONS = (
    Option("threshold", "float", 0.2, "PSI above which a feature counts as drifted", lambda v: v > 0, "positive"),
)
IMPORT_OPTIONS = (
    Option("max_size", "int", MAX_IMPORT_BYTES, "largest file accepted, in bytes", lambda v: v > 0, "positive"),
    Option("inputs", "str_list", None, "foreign ONNX: the feature column names, one per graph column, in graph order"),
)


def _rows(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], schema: pa.Schema) -> duckdb.DuckDBPyRelation:
    return con.from_arrow(pa.Table.from_pylist(rows, schema=schema))


def set_alias(conn: "Connection", model: str, alias: str, version: int | None) -> duckdb.DuckDBPyRelation:
    """ALTER MODEL m SET ALIAS a = n (``version`` None: UNSET ALIAS a).

    The model name, the alias name (an identifier, like model names) and the version (a
    whole number, not a bool or a string) are checked before anything is written."""
    name, alias = check_model_name(model), check_alias_name(alias)
    if version is not None:
        version = check_version(version, f"the version of alias '{alias}' of model '{name}'")
    previous = conn.registry.set_alias(name, alias, version)
    schema = pa.schema([("model", pa.string()), ("alias", pa.string()), ("version", pa.int32()), ("previous_version", pa.int32())])
    return _rows(conn.db(), [{"model": name, "alias": alias, "version": version,
                                "previous_version": previous}], schema)  # fmt: skip


def evaluate_model(
    conn: "Connection", model: str, version: int | None, source_sql: str, source_label: str, options: dict[str, Any]
) -> duckdb.DuckDBPyRelation:
    """EVALUATE MODEL: metrics (or the confusion matrix) computed by DuckDB over PREDICT, as
    the version's task computes them (:meth:`dbml.tasks.Task.evaluation`: ANOMALY_SCORE
    and IS_ANOMALY for an anomaly model; for a forecaster, a backtest over every complete
    window of the source's series), stored as a run with its pictures' data.

    ``conn``: the handler context (``db()``, ``scoped()``, ``registry``, ``rewrite()``,
    ``session()``)."""
    opts = validate_options(options, EVALUATE_OPTIONS, f"EVALUATE MODEL {model}")
    rec = conn.registry.get(model, version)
    run = _task(rec).evaluation(conn, rec, source_sql, source_label, opts)
    table = conn.scoped().sql(conn.rewrite(run.sql)).to_arrow_table()
    given = {k: opts[k] for k in (str(o).lower() for o in options) if k in opts}  # as written, not the defaults
    keeps = opts["curves"] and run.curves is not None and not opts["by"] and not opts["confusion"]
    curves = run.curves() if keeps else None
    conn.registry.add_evaluation_run(rec["model"], rec["version"], rec["task"], source_sql, given, table.to_pylist(), curves)
    return conn.db().from_arrow(table)


def _task(rec: dict[str, Any]):
    """The task of a version read from the registry (its record names a task of the table)."""
    from dbml.tasks import get_task

    return get_task(rec["task"])


def explain_model(
    conn: "Connection", model: str, version: int | None, source_sql: str, source_label: str, options: dict[str, Any]
) -> duckdb.DuckDBPyRelation:
    """EXPLAIN MODEL: permutation importance per feature, computed with PREDICT in DuckDB,
    of the measure of the version's task (:meth:`dbml.tasks.Task.explain_measure`: for an
    anomaly model the rise of the mean ANOMALY_SCORE); refused for a task without one."""
    import dbml.explain as explain
    from dbml.tasks.statement import require_columns

    opts = validate_options(options, EXPLAIN_OPTIONS, f"EXPLAIN MODEL {model}")
    rec = conn.registry.get(model, version)
    task = _task(rec)
    if task.explain_measure() is None:
        raise task.refusal("EXPLAIN MODEL", f"model '{rec['model']}' version {rec['version']}", rec["model"])
    require_columns(conn, rec, source_sql, source_label, {"target": rec["target"]}, "explain")
    sql = explain.permutation_importance_sql(
        source_sql, f"{rec['model']}:{rec['version']}", rec["target"], task,
        [f["name"] for f in rec["features"]], repeats=opts["repeats"], seed=opts["seed"],
    )  # fmt: skip
    return conn.scoped().sql(conn.rewrite(sql))


def monitor_model(
    conn: "Connection", model: str, version: int | None, source_sql: str, source_label: str, options: dict[str, Any]
) -> duckdb.DuckDBPyRelation:
    """MONITOR MODEL: drift of the features and predictions against the training profile,
    stored as a run in the registry's monitor runs and results.

    The version's task says which rows are scored (:meth:`dbml.tasks.Task.monitor_rows`):
    a forecaster's source is its series (time, keys, target), checked as at training, and
    what is monitored is their complete windows (those EVALUATE backtests): the feature
    ``history`` by each window's mean, the prediction by the first forecast value."""
    import dbml.monitor as monitor
    from dbml.tasks.statement import require_columns

    opts = validate_options(options, MONITOR_OPTIONS, f"MONITOR MODEL {model}")
    rec = conn.registry.get(model, version)
    require_columns(conn, rec, source_sql, source_label, {}, "monitor")
    scored = _task(rec).monitor_rows(conn, rec, source_sql, source_label)
    sql = monitor.drift_sql(scored, f"{rec['model']}:{rec['version']}", rec, threshold=opts["threshold"])
    table = conn.scoped().sql(conn.rewrite(sql)).to_arrow_table()
    run_id = conn.registry.add_monitor_run(rec["model"], rec["version"], source_sql, opts["threshold"], table.to_pylist())
    run = pa.array([run_id] * table.num_rows, type=pa.int64())
    return conn.db().from_arrow(table.add_column(0, "run_id", run))


def export_model(conn: "Connection", model: str, version: int | None, url: str) -> duckdb.DuckDBPyRelation:
    """EXPORT MODEL: the version's blob, checked, with its registry facts in the metadata."""
    rec = conn.registry.get(model, version)
    what = f"model '{rec['model']}' version {rec['version']}"
    blob = verify_blob(conn.registry.blob(rec["model"], rec["version"]), rec["onnx_sha256"], rec["onnx_size"], what)
    data = with_metadata(blob, rec, what)
    write_url(url, data)
    digest = hashlib.sha256(data).hexdigest()
    conn.registry.audit("EXPORT", rec["model"], rec["version"], {"url": url, "sha256": digest, "bytes": len(data)})
    schema = pa.schema([("model", pa.string()), ("version", pa.int32()), ("url", pa.string()), ("bytes", pa.int64()), ("sha256", pa.string())])
    return _rows(conn.db(), [{"model": rec["model"], "version": rec["version"], "url": url, "bytes": len(data), "sha256": digest}], schema)


def import_model(conn: "Connection", name: str, url: str, options: dict[str, Any]) -> duckdb.DuckDBPyRelation:
    """IMPORT MODEL: a file written by EXPORT MODEL becomes the next version of ``name``,
    keeping its lineage, metrics and profile; a foreign ONNX file (no dbml metadata)
    becomes a version of architecture and task ``imported`` (see :mod:`dbml.registry.foreign`).

    The file's metadata is data, never trusted: :func:`dbml.registry.modelfile.describe_file`
    checks its ``dbml.record`` keys (:func:`dbml.registry.records.check_imported_facts`: unknown
    identifier-shaped keys are dropped, named in a warning and in the audit row; any
    other key is refused), the record IMPORT builds against the declared schema
    (:func:`dbml.registry.records.validate_record`) and against the graph (inputs, outputs, label
    count), all before anything is written. Scoring outside DuckDB (:func:`dbml.score`)
    runs the same checks.
    """
    name = check_model_name(name)
    opts = validate_options(options, IMPORT_OPTIONS, f"IMPORT MODEL {name}")
    blob = read_url(url, opts["max_size"])
    session = open_session(blob, url)
    described = describe_file(blob, url, session, name, opts["inputs"], warn=_warn)
    detail = {"url": url, "exported_from": described.origin, **({"dropped_facts": described.dropped} if described.dropped else {})}
    return _store_import(conn, name, url, described.record, blob, described.origin, detail)


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=5)


def _store_import(
    conn: "Connection", name: str, url: str, record: dict[str, Any], blob: bytes, origin: str | None,
    detail: dict[str, Any],
) -> duckdb.DuckDBPyRelation:
    version = conn.registry.add_version(record, blob, [], action="IMPORT", detail=detail)
    schema = pa.schema([("model", pa.string()), ("version", pa.int32()), ("url", pa.string()), ("exported_from", pa.string())])
    return _rows(conn.db(), [{"model": name, "version": version, "url": url, "exported_from": origin}], schema)
