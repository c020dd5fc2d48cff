"""Lifecycle operations on stored versions: deploy (aliases), evaluate, export, import.

Each returns a DuckDB relation; the registry module does every write.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from dbml.errors import OptionError, TargetError
from dbml.registry.modelfile import describe_file, open_session
from dbml.names import check_alias_name, check_model_name, check_version
from dbml.options import Option, validate_options
from dbml.runtime import verify_blob
from dbml.sqltext import quote as _quote
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
    """EVALUATE MODEL: metrics (or the confusion matrix) computed by DuckDB over PREDICT
    (ANOMALY_SCORE and IS_ANOMALY for an anomaly model; for a forecaster, a backtest over
    every complete window of the source's series: :func:`_forecast_evaluation`)."""
    from dbml import curves as _curves, evaluate

    rec, opts = _scored(conn, model, version, options, EVALUATE_OPTIONS, "EVALUATE MODEL", forecasts=True)
    what = f"model '{rec['model']}'"
    ref = f"{rec['model']}:{rec['version']}"
    curves = None  # () -> the pictures' data, where the run has them
    if rec["task"] == "forecast":
        sql = _forecast_evaluation(conn, rec, source_sql, source_label, opts)
        curves = lambda: _curves.forecast_curves(conn, rec, source_sql, _series_of(conn, rec, source_sql, source_label, "evaluate"))  # noqa: E731
    elif rec["task"] == "reconstruction":
        if opts["confusion"]:
            raise TargetError(
                f"confusion = true needs a classification model; {what} is an anomaly model: "
                "give WITH (label = <a BOOLEAN column>) for precision, recall, f1 and roc_auc"
            )
        if opts["positive"] is not None:
            raise OptionError(
                f"positive applies to binary classification models; {what} is an anomaly model, "
                "whose positive class is its label's TRUE (a known anomaly)"
            )
        lowered, types = _columns(conn, rec, source_sql, source_label, {"label": opts["label"], "by": opts["by"]}, "evaluate")
        label = lowered[opts["label"].lower()] if opts["label"] else None
        by = lowered[opts["by"].lower()] if opts["by"] else None
        sql = evaluate.anomaly_evaluation_sql(source_sql, ref, label, by=by, label_type=types[label] if label else "BOOLEAN")
        label_sql = evaluate._label_sql(f'"src".{_quote(label)}', label, types[label], ref) if label else None
        threshold = (rec["metrics"] or {}).get("threshold")
        curves = lambda: _curves.anomaly_curves(_Rewriting(conn), source_sql, ref, threshold, label_sql)  # noqa: E731
    else:
        if opts["label"] is not None:
            raise OptionError(
                f"label applies to anomaly models (USING autoencoder); {what} is a {rec['task']} model, "
                f"evaluated against its target '{rec['target']}': leave label out"
            )
        target = rec["target"]
        lowered = _require_columns(conn, rec, source_sql, source_label, {"target": target, "by": opts["by"]}, "evaluate")
        if opts["confusion"] and rec["task"] != "classification":
            raise TargetError(f"confusion = true needs a classification model; {what} is a regression")
        by = lowered[opts["by"].lower()] if opts["by"] else None
        if opts["confusion"]:
            sql = evaluate.confusion_sql(source_sql, ref, target, by=by)
        else:
            sql = evaluate.evaluation_sql(source_sql, ref, target, rec["task"], rec["labels"], by=by, positive=opts["positive"])
            if rec["task"] == "classification":
                positive = evaluate.positive_label(rec["labels"], opts["positive"]) if len(rec["labels"]) == 2 else None
                curves = lambda: _curves.classification_curves(  # noqa: E731
                    _Rewriting(conn), source_sql, ref, target, rec["labels"], positive)
            else:
                curves = lambda: _curves.regression_curves(_Rewriting(conn), source_sql, ref, target)  # noqa: E731
    table = conn.scoped().sql(conn.rewrite(sql)).to_arrow_table()
    given = {k: opts[k] for k in (str(o).lower() for o in options) if k in opts}  # as written, not the defaults
    if opts["curves"] and curves is not None and not opts["by"] and not opts["confusion"]:
        curves = curves()
    else:
        curves = None
    conn.registry.add_evaluation_run(rec["model"], rec["version"], rec["task"], source_sql, given, table.to_pylist(), curves)
    return conn.db().from_arrow(table)


class _Rewriting:
    """What the curves builders run their SQL on: the connection, PREDICT calls rewritten."""

    def __init__(self, conn: "Connection"):
        self.conn = conn

    def sql(self, text: str) -> duckdb.DuckDBPyRelation:
        return self.conn.scoped().sql(self.conn.rewrite(text))


def _forecast_evaluation(conn: "Connection", rec: dict[str, Any], source_sql: str, source_label: str,
                         opts: dict[str, Any]) -> str:  # fmt: skip
    """The SQL of EVALUATE on a forecaster: a backtest over every complete window of the
    source's series, checked as at training (:func:`dbml.data.series.describe_series`).

    ``by``: a series key column (one row per its value), or ``'series'`` (one row per
    series, under every key column) unless a column of that name is a series key."""
    from dbml import evaluate

    what = f"model '{rec['model']}' version {rec['version']}"
    for option, fix in (("label", "label applies to anomaly models"), ("confusion", "confusion = true needs a classification model"),
                        ("positive", "positive applies to binary classification models")):  # fmt: skip
        if opts[option] is not None and opts[option] is not False:
            raise OptionError(f"{fix}; {what} is a forecaster, evaluated against the actual values of its target "
                              f"'{rec['target']}': leave {option} out")  # fmt: skip
    m = rec["metrics"]
    series = _series_of(conn, rec, source_sql, source_label, "evaluate")
    keys = series.keys
    by: list[str] = []
    if opts["by"] is not None:
        named = [k for k in keys if k.lower() == opts["by"].lower()]
        if named:
            by = named
        elif opts["by"].lower() == "series" and keys:
            by = keys
        else:
            raise OptionError(
                f"by = '{opts['by']}': {what} is a forecaster, evaluated per series: by names a series key column "
                + (f"({', '.join(keys)}) or is 'series' (one row per series)" if keys else "and this one has none (one series): leave by out")
            )
    window, horizon = int(rec["options"]["window"]), int(rec["options"]["horizon"])
    return evaluate.forecast_evaluation_sql(source_sql, f"{rec['model']}:{rec['version']}", series, window, horizon,
                                            int(m.get("season") or 1), by=by)  # fmt: skip


def _series_of(conn: "Connection", rec: dict[str, Any], source_sql: str, source_label: str, doing: str):
    """The series of a forecaster's source (:class:`dbml.data.series.Series`, under the
    source's own column names), checked as at training: the time, key and target
    columns present, a numeric target, one row per time, a regular step of a frequency
    the version was trained on, at least ``window + horizon`` rows per series."""
    from dbml.data import series as forecast
    from dbml.kinds.scalar import is_number_type

    what = f"model '{rec['model']}' version {rec['version']}"
    o, m = rec["options"], rec["metrics"]
    keys = list(o.get("series") or [])
    needed = {"time": o["time"], "target": rec["target"], **{f"series key '{k}'": k for k in keys}}
    lowered, types = _columns(conn, rec, source_sql, source_label, needed, doing)
    time, target, keys = lowered[o["time"].lower()], lowered[rec["target"].lower()], [lowered[k.lower()] for k in keys]
    if not is_number_type(types[target]):
        raise TargetError(f"target column '{target}' of {source_label} has type {types[target]}; {what} forecasts a number")
    series = forecast.describe_series(conn.scoped(), f"SELECT * FROM (\n{source_sql}\n) AS src", None, rec["model"],
                                      time, keys, target, types, int(o["window"]), int(o["horizon"]))  # fmt: skip
    trained = set(m.get("frequencies") or [])
    for key, step in series.steps.items():
        if trained and step["frequency"] not in trained:
            name = f"series {dict(zip(keys, key))}" if keys else "the series"
            raise TargetError(
                f"{name} of {source_label} is {step['frequency']}; {what} was trained on {', '.join(sorted(trained))} "
                f"series: {doing} it on series of that step"
            )
    return series


def _scored(
    conn: "Connection", model: str, version: int | None, options: dict[str, Any], declared: tuple[Option, ...], statement: str,
    forecasts: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the version's record, the validated options) for a statement that scores a model
    trained by dbml: a classification or regression with its target, or an anomaly
    (reconstruction) model, or (``forecasts``) a forecaster; a dbml error for a forecaster
    otherwise, and for a version imported from a foreign ONNX file."""
    opts = validate_options(options, declared, f"{statement} {model}")
    rec = conn.registry.get(model, version)
    if rec["task"] == "reconstruction" or (forecasts and rec["task"] == "forecast"):
        return rec, opts
    if rec["task"] == "forecast":
        raise TargetError(
            f"{statement} takes classifiers, regressors and anomaly models; model '{rec['model']}' version "
            f"{rec['version']} is a forecaster, whose one feature is its own history: backtest it with EVALUATE MODEL "
            f"{rec['model']} ON (<its series>)"
        )
    if rec["task"] not in ("classification", "regression") or not rec.get("target"):
        raise TargetError(
            f"{statement} needs a classification or regression model with a target, an anomaly model"
            f"{', or a forecaster' if forecasts else ''}; "
            f"model '{rec['model']}' version {rec['version']} was imported from a foreign ONNX file "
            f"(task '{rec['task']}'): compare PREDICT with your labels in SQL instead"
        )
    return rec, opts


def _columns(
    conn: "Connection", rec: dict[str, Any], source_sql: str, label: str, needed: dict[str, str | None], doing: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(the source's columns by lower-case name, their SQL types by name); a dbml error naming
    any needed column that is missing."""
    try:
        relation = conn.scoped().sql(f"SELECT * FROM (\n{source_sql}\n) AS src LIMIT 0")
    except duckdb.Error as err:
        raise TargetError(f"cannot read {label} to {doing} model '{rec['model']}': {err}") from None
    columns = relation.columns
    lowered = {c.lower(): c for c in columns}
    for what, column in needed.items():
        if column is not None and column.lower() not in lowered:
            raise TargetError(
                f"the {what} column '{column}' of model '{rec['model']}' is not in {label}; "
                f"its columns are {', '.join(columns)}"
            )
    return lowered, {c: str(t) for c, t in zip(columns, relation.types)}


def _require_columns(
    conn: "Connection", rec: dict[str, Any], source_sql: str, label: str, needed: dict[str, str | None], doing: str
) -> dict[str, str]:
    """The source's columns by lower-case name; a dbml error naming any needed one that is missing."""
    return _columns(conn, rec, source_sql, label, needed, doing)[0]


def explain_model(
    conn: "Connection", model: str, version: int | None, source_sql: str, source_label: str, options: dict[str, Any]
) -> duckdb.DuckDBPyRelation:
    """EXPLAIN MODEL: permutation importance per feature, computed with PREDICT in DuckDB
    (for an anomaly model: the rise of the mean ANOMALY_SCORE)."""
    from dbml import explain

    rec, opts = _scored(conn, model, version, options, EXPLAIN_OPTIONS, "EXPLAIN MODEL")
    _require_columns(conn, rec, source_sql, source_label, {"target": rec["target"]}, "explain")
    sql = explain.permutation_importance_sql(
        source_sql, f"{rec['model']}:{rec['version']}", rec["target"], rec["task"],
        [f["name"] for f in rec["features"]], repeats=opts["repeats"], seed=opts["seed"],
    )  # fmt: skip
    return conn.scoped().sql(conn.rewrite(sql))


def monitor_model(
    conn: "Connection", model: str, version: int | None, source_sql: str, source_label: str, options: dict[str, Any]
) -> duckdb.DuckDBPyRelation:
    """MONITOR MODEL: drift of the features and predictions against the training profile,
    stored as a run in dbml.monitor_runs / dbml.monitor_results.

    A forecaster's source is its series (time, keys, target), checked as at training;
    what is monitored is their complete windows (those EVALUATE backtests): the feature
    ``history`` by each window's mean, the prediction by the first forecast value."""
    from dbml import monitor

    opts = validate_options(options, MONITOR_OPTIONS, f"MONITOR MODEL {model}")
    rec = conn.registry.get(model, version)
    _require_columns(conn, rec, source_sql, source_label, {}, "monitor")
    scored = source_sql
    if rec["task"] == "forecast":  # the rows are series: their windows are what the model reads
        from dbml.data.series import HISTORY, windows_sql

        series = _series_of(conn, rec, source_sql, source_label, "monitor")
        windows = windows_sql(f"SELECT * FROM (\n{source_sql}\n) AS src", series, int(rec["options"]["window"]),
                              int(rec["options"]["horizon"]))  # fmt: skip
        scored = f"SELECT {HISTORY} FROM (\n{windows}\n) AS {HISTORY}_windows"
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
