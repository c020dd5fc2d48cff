"""The registry: the only module that writes the ``dbml`` schema.

Schema changes are numbered SQL files in ``dbml.sql`` (the repository's sql/),
applied in order and recorded in ``dbml.schema_version``. Every write that belongs
together (version row, blob, training log, audit row) is one transaction on a
cursor of its own, so the user's open transaction is never touched and a failure
leaves the registry as it was. Values are always bound, never pasted into SQL, and
the column lists are the registry's own (:data:`dbml.registry.records.VERSION_COLUMNS`), never a
record's keys. Every row read or written is checked against the declared record
schema of :mod:`dbml.registry.records`.

Compatibility: a registry of a newer schema version than this dbml knows is refused
(:meth:`Registry.check_compatible`); an older one is migrated by :meth:`Registry.ensure`,
except on a read-only database, where it is read as it is (every released schema has
the tables and columns that reads use: versions, blobs, aliases) and writes fail.
"""

from __future__ import annotations

import getpass
import json
import re
import threading
import time
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Iterable

import duckdb

from dbml.errors import (
    DbmlError, ModelNotFoundError, RegistrySchemaError, VersionNotFoundError,
)  # fmt: skip
from dbml.names import check_alias_name, check_model_name, check_version, parse_reference
from dbml.registry.records import JSON_COLUMNS, VERSION_COLUMNS, decode_row, validate_record

__all__ = ["Registry", "check_model_name", "check_alias_name", "check_version", "parse_reference", "SCHEMA_VERSION"]

_COLUMNS = ", ".join(VERSION_COLUMNS)  # the registry's own column names, declared in dbml.registry.records
# Connections of one process to one file share a database instance: migrations in a
# process take turns (a race across processes cannot happen: DuckDB locks the file).
_MIGRATING = threading.Lock()


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("dbml.sql").iterdir():
        m = re.match(r"^(\d{3})_.*\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


SCHEMA_VERSION = max(v for v, _, _ in _migrations())


class Registry:
    """Reads and writes the registry tables of one DuckDB database."""

    def __init__(self, con: duckdb.DuckDBPyConnection, user: str | None = None):
        self.con = con
        self.user = user or _os_user()
        self.schema_version: int | None = None  # the database's, once ensure() succeeded
        self._ready = False
        self._complete = False  # model_versions has every column of VERSION_COLUMNS (checked once)
        self._lock = threading.Lock()

    # -- schema -----------------------------------------------------------------

    def check_compatible(self) -> int:
        """The database's registry schema version (0: no registry yet); cheap, writes nothing.

        Raises:
            RegistrySchemaError: the registry is of a newer schema than this dbml knows.
        """
        cur = self.con.cursor()
        try:
            current = self._schema_version(cur)
        finally:
            cur.close()
        _refuse_newer(current)
        return current

    def ensure(self) -> None:
        """Create the registry on first use and apply pending migrations.

        Idempotent and cheap after its first success on this object. Safe when several
        connections or threads of a process call it at once on one database: a
        migration that loses the race (DuckDB reports a conflict, or that the table
        already exists) is rolled back, the version is read again, and the work goes on
        from there. On a read-only database an older registry is not migrated: reads
        work (every released schema has what they use) and writes fail.

        Raises:
            RegistrySchemaError: a newer registry than this dbml knows, or a read-only
                database without a registry.
        """
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            cur = self.con.cursor()
            try:
                with _MIGRATING:
                    self.schema_version = self._migrate(cur)
                self._ready = True
            finally:
                cur.close()

    def _migrate(self, cur: duckdb.DuckDBPyConnection) -> int:
        attempts = 20
        for attempt in range(attempts):
            current = self._schema_version(cur)
            _refuse_newer(current)
            if current >= SCHEMA_VERSION:
                return current
            if _read_only(cur):
                if current == 0:
                    raise RegistrySchemaError(
                        "this database is open read-only and has no dbml registry (schema dbml) yet: there are no "
                        "models to read; open it read-write once (dbml.connect(path)) to create the registry"
                    )
                return current  # read as it is; nothing is migrated
            try:
                for number, name, script in _migrations():
                    if number <= current:
                        continue
                    cur.execute("BEGIN TRANSACTION")
                    try:
                        cur.execute(script)
                        cur.execute("INSERT INTO dbml.schema_version (version) VALUES (?)", [number])
                        cur.execute("COMMIT")
                    except BaseException:
                        cur.execute("ROLLBACK")
                        raise
            except (duckdb.TransactionException, duckdb.CatalogException, duckdb.ConstraintException) as err:
                if attempt == attempts - 1:
                    raise DbmlError(f"could not create or upgrade the dbml registry: {err}") from None
                time.sleep(min(0.2, 0.01 * (attempt + 1)))  # another connection is migrating: let it commit
                continue  # then read its version again
            except duckdb.Error as err:
                raise DbmlError(f"could not apply registry migration {name}: {err}") from None
        raise AssertionError("unreachable")

    @staticmethod
    def _schema_version(cur: duckdb.DuckDBPyConnection) -> int:
        exists = cur.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'dbml' AND table_name = 'schema_version'"
        ).fetchall()[0][0]
        if not exists:
            return 0
        return cur.execute("SELECT coalesce(max(version), 0) FROM dbml.schema_version").fetchall()[0][0]

    # -- reads ------------------------------------------------------------------

    def get(self, model: str, version: int | None = None, alias: str | None = None) -> dict[str, Any]:
        """The version row of a model (JSON columns decoded), checked against the declared
        record schema of :mod:`dbml.registry.records`.

        ``version`` pins a version, ``alias`` names one; with neither, the 'default'
        alias when set, else the newest version. The reads are one transaction, so an
        alias moved or a version dropped meanwhile gives the picture before or after, never a mix.

        Raises:
            ModelNotFoundError / VersionNotFoundError: naming the model and version.
            RecordError: the stored row breaks the record schema (naming the field).
        """
        model = check_model_name(model)
        if version is not None:
            version = check_version(version)
        if alias is not None:
            alias = check_alias_name(alias)
        cur = self.con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                version, row = self._read_version(cur, model, version, alias)
            finally:
                cur.execute("ROLLBACK")  # read only: nothing to keep
        finally:
            cur.close()
        what = f"model '{model}' version {version}"
        return validate_record(decode_row(row, what), what)

    def _read_version(
        self, cur: duckdb.DuckDBPyConnection, model: str, version: int | None, alias: str | None
    ) -> tuple[int, dict[str, Any]]:
        try:
            versions = [r[0] for r in cur.execute(
                "SELECT version FROM dbml.model_versions WHERE model = ? ORDER BY version", [model]
            ).fetchall()]  # fmt: skip
        except duckdb.CatalogException:
            if self._schema_version(cur) == 0:  # no registry in this database yet
                versions = []
            else:
                raise
        if not versions:
            raise ModelNotFoundError(f"model '{model}' does not exist; SHOW MODELS lists the models")
        if alias is not None or version is None:
            rows = cur.execute(
                "SELECT version FROM dbml.aliases WHERE model = ? AND alias = ?", [model, alias or "default"]
            ).fetchall()
            row = rows[0] if rows else None
            if row is None and alias not in (None, "default"):
                raise VersionNotFoundError(f"model '{model}' has no alias '{alias}'")
            version = row[0] if row is not None else versions[-1]
        if version not in versions:
            shown = ", ".join(map(str, versions))
            raise VersionNotFoundError(f"model '{model}' has no version {version}; its versions are {shown}")
        rel = cur.execute(f"SELECT {self._select(cur)} FROM dbml.model_versions WHERE model = ? AND version = ?", [model, version])
        return version, dict(zip(VERSION_COLUMNS, rel.fetchall()[0]))

    def _select(self, cur: duckdb.DuckDBPyConnection) -> str:
        """The version columns as a SELECT list; a column an older registry lacks (one read
        as it is, read-only) reads as NULL."""
        if self._complete:
            return _COLUMNS
        have = {r[0] for r in cur.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'dbml' AND table_name = 'model_versions'"
        ).fetchall()}  # fmt: skip
        self._complete = have >= set(VERSION_COLUMNS)
        return ", ".join(c if c in have else f"NULL AS {c}" for c in VERSION_COLUMNS)

    def versions(self, model: str) -> list[int]:
        """The model's version numbers, ascending."""
        cur = self.con.cursor()
        try:
            return [r[0] for r in cur.execute(
                "SELECT version FROM dbml.model_versions WHERE model = ? ORDER BY version", [model]
            ).fetchall()]  # fmt: skip
        finally:
            cur.close()

    def has_versions(self, model: str) -> bool:
        cur = self.con.cursor()
        try:
            return bool(cur.execute("SELECT count(*) FROM dbml.model_versions WHERE model = ?", [model]).fetchall()[0][0])
        finally:
            cur.close()

    def blob(self, model: str, version: int) -> bytes:
        cur = self.con.cursor()
        try:
            rows = cur.execute("SELECT onnx FROM dbml.model_blobs WHERE model = ? AND version = ?", [model, version]).fetchall()
            row = rows[0] if rows else None
        finally:
            cur.close()
        if row is None:
            raise VersionNotFoundError(f"model '{model}' version {version} has no ONNX blob in dbml.model_blobs")
        return bytes(row[0])

    def model_names(self) -> list[str]:
        """The names of the models, sorted (none when the database has no registry yet);
        reads only, creates nothing (the shell completes them)."""
        cur = self.con.cursor()
        try:
            if not self._schema_version(cur):
                return []
            return [r[0] for r in cur.execute("SELECT DISTINCT model FROM dbml.model_versions ORDER BY model").fetchall()]
        except duckdb.Error:
            return []
        finally:
            cur.close()

    def summary(self) -> list[dict[str, Any]]:
        """One row per model (SHOW MODELS): its version count, default and latest versions,
        aliases ({alias: version}), when it last changed, and the default version's task,
        architecture, target, decoded metrics, row count and blob size."""
        cur = self.con.cursor()
        try:
            rows = cur.execute(
                "SELECT m.model, m.versions, m.default_version, m.latest_version, v.task, v.architecture, v.target, "
                "v.metrics, v.row_count, v.onnx_size, "
                "(SELECT map(list(a.alias ORDER BY a.alias), list(a.version ORDER BY a.alias)) "
                " FROM dbml.aliases a WHERE a.model = m.model) AS aliases, m.updated_at "
                "FROM dbml.models m JOIN dbml.model_versions v ON v.model = m.model AND v.version = m.default_version "
                "ORDER BY m.model"
            ).fetchall()
        finally:
            cur.close()
        names = ("model", "versions", "default_version", "latest_version", "task", "architecture", "target", "metrics",
                 "row_count", "onnx_size", "aliases", "updated_at")  # fmt: skip
        out = []
        for row in rows:
            item = dict(zip(names, row))
            item["metrics"] = decode_row({"metrics": item["metrics"]}, f"model '{item['model']}'")["metrics"]
            out.append(item)
        return out

    def describe(self, con: duckdb.DuckDBPyConnection, model: str, facts: list[dict[str, Any]]) -> duckdb.DuckDBPyRelation:
        """DESCRIBE MODEL's relation, on ``con``: one row per version of ``model`` with its
        aliases, the per-version ``facts`` given ({version, metric, score, baseline, functions, size}),
        and the stored columns; the columns a person reads first lead, the bulky JSON facts
        sit in between; columns added since come last, so earlier ones keep their places."""
        fact = "(SELECT f.{} FROM (SELECT unnest($facts) AS f) WHERE f.version = v.version) AS {}"
        typed = "CAST((SELECT f.{} FROM (SELECT unnest($facts) AS f) WHERE f.version = v.version) AS {}) AS {}"
        return con.sql(
            "SELECT v.version, "
            "(SELECT list(a.alias ORDER BY a.alias) FROM dbml.aliases a WHERE a.model = v.model "
            " AND a.version = v.version) AS aliases, "
            + ", ".join(fact.format(k, k) for k in ("metric", "score")) + ", v.task, v.architecture, v.target, "
            + fact.format("functions", "functions") + ", v.row_count, v.train_rows, v.validation_rows, v.epochs, "
            "v.train_seconds, v.device, v.target_type, v.labels, v.features, v.metrics, v.options, v.onnx_size, "
            "v.onnx_sha256, v.parity_error, v.source_sql, v.source_tables, v.data_fingerprint, v.library_versions, "
            "v.parent_version, " + typed.format("base_model", "VARCHAR", "base_model") + ", "
            + typed.format("base_version", "INTEGER", "base_version") + ", " + fact.format("size", "size") + ", v.created_by, v.created_at, "
            + typed.format("baseline", "VARCHAR", "baseline") + " "
            "FROM dbml.model_versions v WHERE v.model = $model ORDER BY v.version",
            params={"model": model, "facts": facts},
        )

    # -- runs, logs, aliases and audit rows (pictures and the model card) -------------

    def _rows(self, sql: str, params: list[Any], decode: tuple[str, ...] = ()) -> list[dict[str, Any]] | None:
        """Rows as dicts (``decode``: JSON columns, decoded where they hold valid JSON), or
        None when the table does not exist (a registry of an older schema, read as it is)."""
        cur = self.con.cursor()
        try:
            try:
                rel = cur.execute(sql, params)
            except duckdb.CatalogException:
                return None
            names = [d[0] for d in rel.description]
            rows = [dict(zip(names, row)) for row in rel.fetchall()]
        finally:
            cur.close()
        for row in rows:
            for key in decode:
                if isinstance(row.get(key), str):
                    try:
                        row[key] = json.loads(row[key])
                    except ValueError:
                        pass  # shown as the text it is
        return rows

    def training_log(self, model: str, version: int) -> list[dict[str, Any]]:
        """The training log of a version by epoch (epoch, train_loss, val_loss, val_metric,
        lr, seconds); [] for a version trained elsewhere."""
        return self._rows(
            "SELECT epoch, train_loss, val_loss, val_metric, lr, seconds FROM dbml.training_log "
            "WHERE model = ? AND version = ? ORDER BY epoch", [model, version]
        ) or []  # fmt: skip

    def evaluation_runs(self, model: str, version: int) -> list[dict[str, Any]] | None:
        """The stored EVALUATE runs of a version, newest first (``run_at``, then ``run_id``),
        every column, ``options``, ``metrics`` and ``curves`` decoded; None when this
        registry keeps no EVALUATE runs (its schema predates them)."""
        return self._rows(
            "SELECT * FROM dbml.evaluation_runs WHERE model = ? AND version = ? ORDER BY run_at DESC, run_id DESC",
            [model, version], ("options", "metrics", "curves"),
        )  # fmt: skip

    def evaluation_run(self, run_id: int) -> dict[str, Any] | None:
        """EVALUATE run ``run_id`` (as :meth:`evaluation_runs` gives it), or None."""
        rows = self._rows("SELECT * FROM dbml.evaluation_runs WHERE run_id = ?", [run_id], ("options", "metrics", "curves"))
        return rows[0] if rows else None

    def monitor_runs(self, model: str, version: int) -> list[dict[str, Any]] | None:
        """The stored MONITOR runs of a version, newest first (``run_at``, then ``run_id``);
        None when this registry keeps no MONITOR runs."""
        return self._rows(
            "SELECT * FROM dbml.monitor_runs WHERE model = ? AND version = ? ORDER BY run_at DESC, run_id DESC", [model, version]
        )  # fmt: skip

    def monitor_run(self, run_id: int) -> dict[str, Any] | None:
        """MONITOR run ``run_id``, or None."""
        rows = self._rows("SELECT * FROM dbml.monitor_runs WHERE run_id = ?", [run_id])
        return rows[0] if rows else None

    def monitor_results(self, run_id: int) -> list[dict[str, Any]]:
        """The per-feature rows of MONITOR run ``run_id`` (``detail`` decoded), by feature."""
        return self._rows("SELECT * FROM dbml.monitor_results WHERE run_id = ? ORDER BY feature", [run_id], ("detail",)) or []

    def monitor_history(self, model: str, version: int) -> list[dict[str, Any]]:
        """PSI per feature and MONITOR run of a version (run_id, run_at, threshold, feature,
        psi), by feature, then run time."""
        return self._rows(
            "SELECT r.run_id, r.run_at, r.threshold, x.feature, x.psi FROM dbml.monitor_runs AS r "
            "JOIN dbml.monitor_results AS x USING (run_id) WHERE r.model = ? AND r.version = ? "
            "ORDER BY x.feature, r.run_at, r.run_id", [model, version]
        ) or []  # fmt: skip

    def aliases(self, model: str) -> list[dict[str, Any]]:
        """The aliases of a model now (alias, version, set_at, set_by), by alias."""
        return self._rows("SELECT alias, version, set_at, set_by FROM dbml.aliases WHERE model = ? ORDER BY alias", [model]) or []

    def audit_rows(self, model: str, action: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The audit rows of a model (``action``: of that action only), newest first, at most
        ``limit``; ``detail`` decoded."""
        where, params = "model = ?", [model]
        if action is not None:
            where, params = where + " AND action = ?", params + [action]
        tail = ""
        if limit is not None:
            tail, params = " LIMIT ?", params + [int(limit)]
        return self._rows(
            f"SELECT logged_at, who, action, version, detail FROM dbml.audit_log WHERE {where} "
            f"ORDER BY logged_at DESC, id DESC{tail}", params, ("detail",)
        ) or []  # fmt: skip

    def audit_count(self, model: str) -> int:
        """How many audit rows name a model."""
        rows = self._rows("SELECT count(*) AS n FROM dbml.audit_log WHERE model = ?", [model])
        return int(rows[0]["n"]) if rows else 0

    # -- writes -----------------------------------------------------------------

    def _transaction(self, work) -> Any:
        cur = self.con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                result = work(cur)
                cur.execute("COMMIT")
                return result
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        finally:
            cur.close()

    def _audit(self, cur: duckdb.DuckDBPyConnection, action: str, model: str | None, version: int | None, detail: dict) -> None:
        cur.execute(
            "INSERT INTO dbml.audit_log (logged_at, who, action, model, version, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [_now(), self.user, action, model, version, json.dumps(detail, default=str)],
        )

    def add_version(
        self, record: dict[str, Any], blob: bytes, log: Iterable[Any], action: str = "TRAIN", detail: dict | None = None
    ) -> int:
        """Store a new version: version row, blob, training log and audit row, atomically.

        The version number is the model's next one, taken inside the transaction.
        Returns the new version number.
        """
        model = check_model_name(record.get("model"))
        checked = validate_record({**record, "version": None, "created_at": None, "created_by": None},
                                  f"the new version of model '{model}'")  # fmt: skip
        log = list(log)

        def work(cur: duckdb.DuckDBPyConnection) -> int:
            # Numbers are never reused, even after DROP, so an audit row names one version for good.
            version = cur.execute(
                "SELECT greatest((SELECT coalesce(max(version), 0) FROM dbml.model_versions WHERE model = $m), "
                "(SELECT coalesce(max(version), 0) FROM dbml.audit_log WHERE model = $m "
                "AND action IN ('TRAIN', 'IMPORT'))) + 1",
                {"m": model},
            ).fetchall()[0][0]
            row = {**checked, "model": model, "version": version, "created_at": _now(), "created_by": self.user}
            for key in JSON_COLUMNS:
                row[key] = json.dumps(row[key], default=str, allow_nan=True)
            # the column list is the registry's own (VERSION_COLUMNS); every value is bound
            cur.execute(
                f"INSERT INTO dbml.model_versions ({_COLUMNS}) VALUES ({', '.join('?' * len(VERSION_COLUMNS))})",
                [row[c] for c in VERSION_COLUMNS],
            )
            cur.execute("INSERT INTO dbml.model_blobs VALUES (?, ?, ?)", [model, version, blob])
            if log:
                cur.executemany(
                    "INSERT INTO dbml.training_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [[model, version, e.epoch, e.train_loss, e.val_loss, e.val_metric, e.lr, e.seconds] for e in log],
                )
            self._audit(cur, action, model, version, {
                "architecture": checked["architecture"], "rows": checked["row_count"],
                "sha256": checked["onnx_sha256"], "source": checked["source_sql"], **(detail or {}),
            })  # fmt: skip
            return version

        for attempt in range(3):
            try:
                return self._transaction(work)
            except duckdb.ConstraintException as err:
                if attempt == 2:
                    raise DbmlError(f"could not store a new version of model '{model}': {err}") from None
            except duckdb.TransactionException as err:  # another writer took the same number
                if attempt == 2:
                    raise DbmlError(f"could not store a new version of model '{model}': {err}") from None
        raise AssertionError("unreachable")

    def audit(self, action: str, model: str | None, version: int | None, detail: dict) -> None:
        """Append one audit row (EVALUATE, EXPORT, ...) in its own transaction."""
        self._transaction(lambda cur: self._audit(cur, action, model, version, detail))

    def add_monitor_run(self, model: str, version: int, source_sql: str, threshold: float, rows: list[dict]) -> int:
        """Store one MONITOR run and its per-feature rows, with an audit row; returns the run id."""

        def work(cur: duckdb.DuckDBPyConnection) -> int:
            drifted = sum(1 for r in rows if r.get("drift"))
            run_id = cur.execute(
                "INSERT INTO dbml.monitor_runs (model, version, run_at, who, source_sql, threshold, drifted) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING run_id",
                [model, version, _now(), self.user, source_sql, threshold, drifted],
            ).fetchall()[0][0]
            columns = ["feature", "kind", "psi", "null_rate_train", "null_rate_now", "null_rate_change", "rows", "drift", "detail"]
            if rows:
                cur.executemany(
                    f"INSERT INTO dbml.monitor_results (run_id, {', '.join(columns)}) VALUES (?{', ?' * len(columns)})",
                    [[run_id] + [r.get(c) if c != "detail" or isinstance(r.get(c), str) else json.dumps(r.get(c))
                                 for c in columns] for r in rows],
                )  # fmt: skip
            self._audit(cur, "MONITOR", model, version, {"run_id": run_id, "drifted": drifted, "threshold": threshold})
            return run_id

        return self._transaction(work)

    def add_evaluation_run(self, model: str, version: int, task: str, source_sql: str, options: dict[str, Any],
                           metrics: list[dict[str, Any]], curves: dict[str, Any] | None) -> int:  # fmt: skip
        """Store one EVALUATE run (its result rows and its pictures' data), with an audit
        row, in one transaction; returns the run id."""
        counted = [int(r["rows"]) for r in metrics if isinstance(r.get("rows"), int)]
        rows = sum(counted) if counted else None  # a confusion matrix has counts, not a rows column

        def work(cur: duckdb.DuckDBPyConnection) -> int:
            run_id = cur.execute(
                "INSERT INTO dbml.evaluation_runs (model, version, run_at, who, source_sql, task, options, rows, metrics, curves) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING run_id",
                [model, version, _now(), self.user, source_sql, task, _json(options), rows, _json(metrics),
                 None if curves is None else _json(curves)],
            ).fetchall()[0][0]  # fmt: skip
            self._audit(cur, "EVALUATE", model, version, {"run_id": run_id, "source": source_sql, **options})
            return run_id

        return self._transaction(work)

    def set_alias(self, model: str, alias: str, version: int | None) -> int | None:
        """Point ``alias`` at ``version`` (None: remove it), with an audit row that keeps
        the previous version, so "what was live at time T" is a query. Returns the previous version.

        The name, alias and version are checked before anything is written.

        Raises:
            InvalidNameError: a model or alias name that is not a plain identifier.
            DbmlError: a version that is not a whole number from 1 (a bool or a string is refused).
        """
        model = check_model_name(model)
        alias = check_alias_name(alias)
        if version is not None:
            version = check_version(version, f"the version of alias '{alias}' of model '{model}'")

        def work(cur: duckdb.DuckDBPyConnection) -> int | None:
            versions = [r[0] for r in cur.execute(
                "SELECT version FROM dbml.model_versions WHERE model = ? ORDER BY version", [model]
            ).fetchall()]  # fmt: skip
            if not versions:
                raise ModelNotFoundError(f"model '{model}' does not exist; SHOW MODELS lists the models")
            rows = cur.execute("SELECT version FROM dbml.aliases WHERE model = ? AND alias = ?", [model, alias]).fetchall()
            previous = rows[0][0] if rows else None
            if version is None:
                if previous is None:
                    raise VersionNotFoundError(f"model '{model}' has no alias '{alias}'")
                cur.execute("DELETE FROM dbml.aliases WHERE model = ? AND alias = ?", [model, alias])
            else:
                if version not in versions:
                    shown = ", ".join(map(str, versions))
                    raise VersionNotFoundError(f"model '{model}' has no version {version}; its versions are {shown}")
                cur.execute(
                    "INSERT OR REPLACE INTO dbml.aliases VALUES (?, ?, ?, ?, ?)", [model, alias, version, _now(), self.user]
                )
            self._audit(cur, "ALTER", model, version, {"alias": alias, "version": version, "previous": previous})
            return previous

        return self._transaction(work)

    def drop(self, model: str, version: int | None = None, if_exists: bool = False, cascade: bool = False) -> list[int]:
        """Delete a model's versions (or one version) with their blobs and logs; the audit
        log keeps a DROP row naming the versions and the aliases removed. Returns the
        versions dropped.

        A version an alias points at is deployed: dropping it (or the whole model) is
        refused, naming the aliases, unless ``cascade`` (``DROP MODEL ... CASCADE``)
        removes those aliases with it.
        """
        model = check_model_name(model)
        if version is not None:
            version = check_version(version)

        def work(cur: duckdb.DuckDBPyConnection) -> list[int]:
            rows = cur.execute("SELECT version FROM dbml.model_versions WHERE model = ? ORDER BY version", [model]).fetchall()
            versions = [r[0] for r in rows]
            if not versions:
                if if_exists:
                    return []
                raise ModelNotFoundError(f"model '{model}' does not exist; SHOW MODELS lists the models")
            if version is not None:
                if version not in versions:
                    if if_exists:
                        return []
                    shown = ", ".join(map(str, versions))
                    raise VersionNotFoundError(f"model '{model}' has no version {version}; its versions are {shown}")
                versions = [version]
            held = cur.execute(
                "SELECT alias, version FROM dbml.aliases WHERE model = ? AND list_contains(?, version) ORDER BY alias",
                [model, versions],
            ).fetchall()
            if held and not cascade:
                names = ", ".join(a for a, _ in held)
                if version is not None:
                    raise DbmlError(
                        f"model '{model}' version {version} is deployed under alias {names}; move or unset the alias "
                        f"before dropping the version, or write DROP MODEL {model} VERSION {version} CASCADE to drop "
                        "the alias with it"
                    )
                shown = ", ".join(f"{a} (version {v})" for a, v in held)
                raise DbmlError(
                    f"model '{model}' is deployed under alias {shown}; unset the alias first "
                    f"(ALTER MODEL {model} UNSET ALIAS {held[0][0]}), or write DROP MODEL {model} CASCADE to drop "
                    "the aliases with it"
                )
            for table in ("model_blobs", "training_log", "model_versions"):
                cur.execute(
                    f"DELETE FROM dbml.{table} WHERE model = ? AND list_contains(?, version)", [model, versions]
                )
            cur.execute("DELETE FROM dbml.aliases WHERE model = ? AND list_contains(?, version)", [model, versions])
            detail: dict[str, Any] = {"versions": versions}
            if held:
                detail["aliases"] = {a: v for a, v in held}
            self._audit(cur, "DROP", model, version, detail)
            return versions

        return self._transaction(work)


def _refuse_newer(current: int) -> None:
    if current > SCHEMA_VERSION:
        raise RegistrySchemaError(
            f"this database's dbml registry is schema version {current}; this dbml knows up to "
            f"{SCHEMA_VERSION}: upgrade dbml (pip install -U dbml) to use this database"
        )


def _read_only(cur: duckdb.DuckDBPyConnection) -> bool:
    rows = cur.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    return bool(rows and rows[0][0])


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"


def _json(value: Any) -> str:
    """JSON text of a stored fact; NaN and infinities (not JSON) become null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return v if v == v and v not in (float("inf"), float("-inf")) else None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), default=str, allow_nan=False)
