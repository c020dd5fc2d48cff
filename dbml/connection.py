"""The dbml connection: a DuckDB connection that also runs ML statements.

``sql`` splits a script into statements; dbml's own go to their handlers, queries
with PREDICT are rewritten, and everything else reaches DuckDB exactly as typed.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

import duckdb
import pyarrow as pa

from dbml import lifecycle, statements
from dbml.dialect import parse_statement
from dbml.errors import DbmlError, FeatureError, TargetError
from dbml.features import FeatureSpec
from dbml.pipeline import TrainRequest, label_types, train
from dbml.registry import Registry, check_model_name, parse_reference
from dbml.rewrite import ModelSignature, Statement, rewrite_predict, split_statements
from dbml.runtime import session_for
from dbml.training import Callback
from dbml.udfs import parse_function_name, register_imported, register_version

__all__ = ["Connection", "connect", "install"]

_installed: "weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, Connection]" = weakref.WeakKeyDictionary()


class Connection:
    """A DuckDB connection with dbml's statements, functions and registry.

    Attributes:
        duckdb: the underlying ``duckdb.DuckDBPyConnection``.
        registry: the registry of this database.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, user: str | None = None):
        self._con = con
        self.registry = Registry(con, user)
        self.registry.ensure()
        # (model, version) -> (sha256 the UDFs were built from, predict UDF name, proba UDF name)
        self._functions: dict[tuple[str, int], tuple[str, str, str | None]] = {}

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        return self._con

    # -- SQL -------------------------------------------------------------------------

    def sql(self, text: str, params: list[Any] | dict[str, Any] | None = None) -> duckdb.DuckDBPyRelation | None:
        """Run a script of ML statements and plain SQL separated by ``;``.

        Returns a relation for the last statement that yields rows, else None.
        """
        parts = split_statements(_text(text))
        if params is not None and len(parts) > 1:
            raise DbmlError("parameters can be bound to one statement at a time; split the script")
        result = None
        for i, part in enumerate(parts):
            rel = self._run(part, params)
            if rel is not None:
                # a relation is lazy: read it now if later statements could change its rows
                result = rel if i == len(parts) - 1 else self._con.from_arrow(rel.to_arrow_table())
        return result

    def execute(self, text: str, params: list[Any] | dict[str, Any] | None = None):
        """Run one statement with bound parameters (``?`` or ``$name``).

        Plain SQL and queries with PREDICT behave as ``duckdb.execute`` (the result is
        read with ``fetchall()``, ``df()``, ``arrow()``); ML statements return a relation.
        """
        parts = split_statements(_text(text))
        if len(parts) != 1:
            if params is not None:
                raise DbmlError("parameters can be bound to one statement at a time; split the script")
            return self.sql(text)
        return self._submit(parts[0], params, self._con.execute)

    def _run(self, part: Statement, params) -> duckdb.DuckDBPyRelation | None:
        def run(sql: str, values):
            if _yields_rows(self._con, sql):
                return self._con.sql(sql, params=values)
            self._con.execute(sql, values).fetchall()
            return None

        return self._submit(part, params, run)

    def _submit(self, part: Statement, params, run):
        """Run one statement: ML statements by their handler, the rest by ``run`` after
        rewriting PREDICT. A view or macro that calls a version's UDF which this
        connection has not registered yet gets it registered, then runs again."""
        if part.kind == "ml":
            return statements.run_statement(self, parse_statement(part.text), params)
        used: list[ModelSignature] = []
        sql = part.text if part.kind == "sql" else self.rewrite(part.text, used)
        tried: set[str] = set()
        while True:
            try:
                return run(sql, params)
            except duckdb.BinderException as err:
                raise _missing_feature(err, used) or err
            except duckdb.CatalogException as err:
                name = _missing_udf(err)
                if name is None or name in tried:
                    raise
                tried.add(name)
                self._register_stored(name)
                if part.kind == "predict":  # the UDF may now have another name
                    sql = self.rewrite(part.text, used)

    def _register_stored(self, function: str) -> None:
        """Register the UDFs behind a ``dbml_predict[_proba]_<model>_v<N>`` name met in SQL
        that was rewritten earlier (a view, a macro)."""
        model, version = parse_function_name(function)
        self._functions.pop((model, version), None)  # e.g. a ROLLBACK removed it from the catalog
        try:
            rec = self.registry.get(model, version)
        except DbmlError as err:
            raise DbmlError(f"the SQL calls {function}, but {str(err)[len('dbml: '):]}") from None
        self._ensure_functions(rec)

    def rewrite(self, sql: str, used: list[ModelSignature] | None = None) -> str:
        """The SQL DuckDB runs for ``sql``: PREDICT calls become per-version UDF calls
        (registered here on first use); other text is unchanged. The signatures of the
        models met are appended to ``used``."""

        def resolve(reference: str) -> ModelSignature:
            sig = self.signature(reference)
            if used is not None:
                used.append(sig)
            return sig

        return rewrite_predict(sql, resolve)

    def signature(self, reference: str) -> ModelSignature:
        """Resolve 'model', 'model:3' or 'model@alias' and make sure its UDFs exist."""
        model, version, alias = parse_reference(reference)
        rec = self.registry.get(model, version, alias)
        return self._ensure_functions(rec)

    def _ensure_functions(self, rec: dict[str, Any]) -> ModelSignature:
        model, version = rec["model"], rec["version"]
        features = tuple(FeatureSpec(**f) for f in rec["features"])
        task = rec["task"]
        imported = task == "imported"  # a foreign ONNX file: PREDICT returns its first output's type
        if imported:
            predict_type = rec["target_type"]
        else:
            predict_type = label_types(rec["target_type"])[1] if task == "classification" else "DOUBLE"
        known = self._functions.get((model, version))
        if known is None or known[0] != rec["onnx_sha256"]:
            what = f"model '{model}' version {version}"
            session = session_for(
                rec["onnx_sha256"], rec["onnx_size"], lambda: self.registry.blob(model, version), what
            )
            if imported:
                made = register_imported(self._con, model, version, features, rec["options"], predict_type, session)
            else:
                made = register_version(self._con, model, version, features, task, rec["labels"], predict_type, session)
            known = self._functions[(model, version)] = (rec["onnx_sha256"], *made)
        _, predict_name, proba_name = known
        return ModelSignature(
            model=model,
            version=version,
            features=features,
            predict_function=predict_name,
            predict_type=predict_type,
            label_type=rec["target_type"] if task in ("classification", "imported") else "DOUBLE",
            proba_function=proba_name if task in ("classification", "imported") else None,
        )

    def _forget_functions(self, model: str, versions: list[int]) -> None:
        for version in versions:
            known = self._functions.pop((model, version), None)
            if known is None:
                continue  # never registered here; removing it would abort an open transaction
            for name in known[1:]:
                try:
                    if name is not None:
                        self._con.remove_function(name)
                except duckdb.Error:
                    pass  # already gone (a rolled-back transaction takes it)

    # -- Python twins of the statements ---------------------------------------------------

    def train(
        self,
        model: str,
        source: str,
        target: str | list[str] | None = None,
        *,
        using: str | None = None,
        if_not_exists: bool = False,
        params: list[Any] | None = None,
        callbacks: list[Callback] | None = None,
        **options: Any,
    ) -> duckdb.DuckDBPyRelation:
        """``TRAIN MODEL model [USING using] FROM source TARGET target WITH (options)``.

        Args:
            model: the model name.
            source: a table or view name, a file path, or a query.
            target: the target column.
            using: the architecture (default chosen from the data).
            if_not_exists: skip training when the model has a version.
            params: values for ``?`` parameters of a source query.
            callbacks: training-loop callbacks (see :class:`dbml.training.Callback`).
            **options: training and architecture options, e.g. ``epochs=30``.
        """
        source_sql, label = statements.source_query(source)
        targets = [target] if isinstance(target, str) else target or []
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise TargetError(f"target must be a column name or a list of them, got {target!r}")
        request = TrainRequest(
            model=model, source_sql=self.rewrite(source_sql), source_label=label, targets=targets,
            architecture=using, options=options, if_not_exists=if_not_exists, params=params,
            callbacks=list(callbacks or []),
        )  # fmt: skip
        return self.run_train(request)

    def run_train(self, request: TrainRequest) -> duckdb.DuckDBPyRelation:
        row = train(self._con, self.registry, request)
        return statements.rows_relation(self._con, [row])

    def predict(self, model: str, source: str, proba: bool = False) -> duckdb.DuckDBPyRelation:
        """The source's rows with a ``prediction`` column (and ``probabilities`` when asked)."""
        ref = model.replace("'", "''")
        source_sql, _ = statements.source_query(source)
        extra = f", PREDICT_PROBA('{ref}', *) AS probabilities" if proba else ""
        return self._con.sql(self.rewrite(f"SELECT *, PREDICT('{ref}', *) AS prediction{extra} FROM (\n{source_sql}\n) AS src"))

    def show_models(self) -> duckdb.DuckDBPyRelation:
        """``SHOW MODELS``: one row per model."""
        return self.sql("SHOW MODELS")

    def describe_model(self, model: str) -> duckdb.DuckDBPyRelation:
        """``DESCRIBE MODEL model``: one row per version with its schema, metrics, sizes and lineage."""
        name = check_model_name(model)
        self.registry.get(name)  # raises for an unknown model
        return self._con.sql(
            "SELECT v.version, v.created_at, v.created_by, v.architecture, v.task, v.target, v.target_type, "
            "v.labels, v.features, v.metrics, v.row_count, v.train_rows, v.validation_rows, v.epochs, "
            "v.train_seconds, v.device, v.onnx_size, v.onnx_sha256, v.parity_error, v.source_sql, "
            "v.source_tables, v.data_fingerprint, v.options, v.library_versions, v.parent_version, "
            "(SELECT list(a.alias ORDER BY a.alias) FROM dbml.aliases a WHERE a.model = v.model "
            " AND a.version = v.version) AS aliases "
            "FROM dbml.model_versions v WHERE v.model = $model ORDER BY v.version",
            params={"model": name},
        )

    def drop_model(self, model: str, version: int | None = None, if_exists: bool = False) -> duckdb.DuckDBPyRelation:
        """``DROP MODEL [IF EXISTS] model [VERSION n]``: blobs and rows go, the audit row stays."""
        name = check_model_name(model)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise DbmlError(f"version must be a whole number, got {version!r}")
        dropped = self.registry.drop(name, version, if_exists)
        self._forget_functions(name, dropped)
        schema = pa.schema([("model", pa.string()), ("version", pa.int32()), ("status", pa.string())])
        rows = [{"model": name, "version": v, "status": "dropped"} for v in dropped]
        return statements.rows_relation(self._con, rows, schema)

    def evaluate(
        self, model: str, source: str, *, version: int | None = None, by: str | None = None,
        confusion: bool = False, positive: Any = None,
    ) -> duckdb.DuckDBPyRelation:  # fmt: skip
        """``EVALUATE MODEL model [VERSION n] ON source WITH (by = ..., confusion = ...)``."""
        source_sql, label = statements.source_query(source)
        options = {"by": by, "confusion": confusion, "positive": positive}
        return lifecycle.evaluate_model(self, model, version, self.rewrite(source_sql), label, options)

    def explain(self, model: str, source: str, *, version: int | None = None, repeats: int = 5, seed: int = 0) -> duckdb.DuckDBPyRelation:
        """``EXPLAIN MODEL model [VERSION n] ON source``: permutation importance per feature."""
        source_sql, label = statements.source_query(source)
        return lifecycle.explain_model(self, model, version, self.rewrite(source_sql), label, {"repeats": repeats, "seed": seed})

    def monitor(self, model: str, source: str, *, version: int | None = None, threshold: float = 0.2) -> duckdb.DuckDBPyRelation:
        """``MONITOR MODEL model [VERSION n] ON source``: drift against the training profile (stored)."""
        source_sql, label = statements.source_query(source)
        return lifecycle.monitor_model(self, model, version, self.rewrite(source_sql), label, {"threshold": threshold})

    def set_alias(self, model: str, alias: str, version: int) -> duckdb.DuckDBPyRelation:
        """``ALTER MODEL model SET ALIAS alias = version``: deploy, or roll back."""
        return lifecycle.set_alias(self, model, alias, version)

    def unset_alias(self, model: str, alias: str) -> duckdb.DuckDBPyRelation:
        """``ALTER MODEL model UNSET ALIAS alias``."""
        return lifecycle.set_alias(self, model, alias, None)

    def export_model(self, model: str, url: str, version: int | None = None) -> duckdb.DuckDBPyRelation:
        """``EXPORT MODEL model [VERSION n] TO 'url'`` (any fsspec URL or path)."""
        return lifecycle.export_model(self, model, version, url)

    def import_model(self, model: str, url: str, **options: Any) -> duckdb.DuckDBPyRelation:
        """``IMPORT MODEL model FROM 'url' [WITH (max_size = ...)]``."""
        return lifecycle.import_model(self, model, url, options)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_NO_ROWS = {
    "CREATE", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "SET", "VARIABLE_SET", "TRANSACTION",
    "ATTACH", "DETACH", "LOAD", "VACUUM", "COPY", "ANALYZE", "CREATE_FUNC", "EXPORT", "PREPARE", "MERGE_INTO",
}  # fmt: skip


def _text(text: Any) -> str:
    if not isinstance(text, str):
        raise DbmlError(f"SQL text must be a string, got {type(text).__name__}")
    return text


def _yields_rows(con: duckdb.DuckDBPyConnection, sql: str) -> bool:
    """False for DDL and DML (run at once, giving None as the connection's contract
    says); True for queries, EXPLAIN, CALL, PIVOT and the rest."""
    try:
        parsed = con.extract_statements(sql)
    except duckdb.Error:
        return True  # let con.sql raise DuckDB's own error, in its own words
    if len(parsed) != 1 or parsed[0].type.name not in _NO_ROWS:
        return True
    return parsed[0].type.name in ("INSERT", "UPDATE", "DELETE") and re.search(r"\bRETURNING\b", sql, re.I) is not None


def _missing_udf(err: duckdb.CatalogException) -> str | None:
    match = re.search(r"Scalar Function with name (dbml_\w+) does not exist", str(err))
    if match is None or parse_function_name(match.group(1).lower()) is None:
        return None
    return match.group(1).lower()


def _missing_feature(err: duckdb.BinderException, used: list[ModelSignature]) -> FeatureError | None:
    """A dbml error naming the model and column when DuckDB could not find a feature column."""
    match = re.search(r'Referenced column "([^"]+)" not found', str(err))
    if not match:
        return None
    column = match.group(1).lower()
    for sig in used:
        if column in {f.name.lower() for f in sig.features}:
            return FeatureError(
                f"model '{sig.model}' (version {sig.version}) needs feature column '{match.group(1)}', "
                f"which the query does not have; its features are {', '.join(f.name for f in sig.features)}"
            )
    return None


def connect(path: str | None = None, *, user: str | None = None, read_only: bool = False, **config: Any) -> Connection:
    """Open (or create) a DuckDB database with dbml in it.

    Args:
        path: the database file; None for an in-memory database.
        user: the name recorded in the registry and audit log (default: the OS user).
        read_only: open the file read-only (PREDICT works, training does not).
        **config: DuckDB configuration options, e.g. ``threads=4``.
    """
    con = duckdb.connect(path or ":memory:", read_only=read_only, config=config)
    conn = Connection(con, user)
    _installed[con] = conn
    return conn


def install(con: duckdb.DuckDBPyConnection, user: str | None = None) -> Connection:
    """Add dbml to a DuckDB connection the user already has; calling it again returns the same object."""
    existing = _installed.get(con)
    if existing is not None:
        return existing
    conn = Connection(con, user)
    _installed[con] = conn
    return conn
