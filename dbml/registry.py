"""The registry: the only module that writes the ``dbml`` schema.

Schema changes are numbered SQL files in ``dbml.sql`` (the repository's sql/),
applied in order and recorded in ``dbml.schema_version``. Every write that belongs
together (version row, blob, training log, audit row) is one transaction on a
cursor of its own, so the user's open transaction is never touched and a failure
leaves the registry as it was. Values are always bound, never pasted into SQL.
"""

from __future__ import annotations

import getpass
import json
import re
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Iterable

import duckdb

from dbml.errors import DbmlError, InvalidNameError, ModelNotFoundError, VersionNotFoundError

__all__ = ["Registry", "check_model_name", "parse_reference", "SCHEMA_VERSION"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_REFERENCE = re.compile(r"^\s*([^:@\s]+)\s*(?::\s*(\d+)|@\s*([A-Za-z_][A-Za-z0-9_]*))?\s*$")


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("dbml.sql").iterdir():
        m = re.match(r"^(\d{3})_.*\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


SCHEMA_VERSION = max(v for v, _, _ in _migrations())


def check_model_name(name: str) -> str:
    """Validate a model name and return it in lower case (names are case-insensitive).

    Raises:
        InvalidNameError: unless the name is a plain identifier of at most 63 characters.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidNameError(
            f"model name {name!r} is not a valid identifier: use letters, digits and _ "
            "(not starting with a digit), at most 63 characters"
        )
    return name.lower()


def parse_reference(ref: str) -> tuple[str, int | None, str | None]:
    """'churn' -> (churn, None, None); 'churn:3' -> (churn, 3, None); 'churn@prod' -> (churn, None, prod)."""
    m = _REFERENCE.match(ref) if isinstance(ref, str) else None
    if not m:
        raise InvalidNameError(f"model reference {ref!r} is not of the form name, 'name:version' or 'name@alias'")
    return check_model_name(m.group(1)), int(m.group(2)) if m.group(2) else None, (m.group(3) or "").lower() or None


class Registry:
    """Reads and writes the registry tables of one DuckDB database."""

    def __init__(self, con: duckdb.DuckDBPyConnection, user: str | None = None):
        self.con = con
        self.user = user or _os_user()

    # -- schema -----------------------------------------------------------------

    def ensure(self) -> None:
        """Create the schema on first use and apply pending migrations (idempotent)."""
        cur = self.con.cursor()
        try:
            current = self._schema_version(cur)
            if current >= SCHEMA_VERSION:
                return
            for number, name, script in _migrations():
                if number <= current:
                    continue
                cur.execute("BEGIN TRANSACTION")
                try:
                    cur.execute(script)
                    cur.execute("INSERT INTO dbml.schema_version (version) VALUES (?)", [number])
                    cur.execute("COMMIT")
                except BaseException as err:
                    cur.execute("ROLLBACK")
                    if isinstance(err, duckdb.Error):
                        raise DbmlError(f"could not apply registry migration {name}: {err}") from err
                    raise
        finally:
            cur.close()

    @staticmethod
    def _schema_version(cur: duckdb.DuckDBPyConnection) -> int:
        exists = cur.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'dbml' AND table_name = 'schema_version'"
        ).fetchall()[0][0]
        if not exists:
            return 0
        return cur.execute("SELECT coalesce(max(version), 0) FROM dbml.schema_version").fetchall()[0][0]

    # -- reads ------------------------------------------------------------------

    def get(self, model: str, version: int | None = None, alias: str | None = None) -> dict[str, Any]:
        """The version row of a model (JSON columns decoded).

        ``version`` pins a version, ``alias`` names one; with neither, the 'default'
        alias when set, else the newest version.

        Raises:
            ModelNotFoundError / VersionNotFoundError: naming the model and version.
        """
        model = check_model_name(model)
        cur = self.con.cursor()
        try:
            versions = [r[0] for r in cur.execute(
                "SELECT version FROM dbml.model_versions WHERE model = ? ORDER BY version", [model]
            ).fetchall()]  # fmt: skip
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
            rel = cur.execute("SELECT * FROM dbml.model_versions WHERE model = ? AND version = ?", [model, version])
            names = [d[0] for d in rel.description]
            record = dict(zip(names, rel.fetchall()[0]))
        finally:
            cur.close()
        for key in ("options", "features", "profile", "labels", "metrics", "library_versions"):
            if isinstance(record.get(key), str):
                record[key] = json.loads(record[key])
        return record

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
        model = check_model_name(record["model"])
        log = list(log)

        def work(cur: duckdb.DuckDBPyConnection) -> int:
            # Numbers are never reused, even after DROP, so an audit row names one version for good.
            version = cur.execute(
                "SELECT greatest((SELECT coalesce(max(version), 0) FROM dbml.model_versions WHERE model = $m), "
                "(SELECT coalesce(max(version), 0) FROM dbml.audit_log WHERE model = $m "
                "AND action IN ('TRAIN', 'IMPORT'))) + 1",
                {"m": model},
            ).fetchall()[0][0]
            row = {**record, "model": model, "version": version, "created_at": _now(), "created_by": self.user}
            for key in ("options", "features", "profile", "labels", "metrics", "library_versions"):
                row[key] = json.dumps(row.get(key), default=str)
            columns = list(row)
            cur.execute(
                f"INSERT INTO dbml.model_versions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [row[c] for c in columns],
            )
            cur.execute("INSERT INTO dbml.model_blobs VALUES (?, ?, ?)", [model, version, blob])
            if log:
                cur.executemany(
                    "INSERT INTO dbml.training_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [[model, version, e.epoch, e.train_loss, e.val_loss, e.val_metric, e.lr, e.seconds] for e in log],
                )
            self._audit(cur, action, model, version, {
                "architecture": record["architecture"], "rows": record["row_count"],
                "sha256": record["onnx_sha256"], "source": record["source_sql"], **(detail or {}),
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

    def set_alias(self, model: str, alias: str, version: int | None) -> int | None:
        """Point ``alias`` at ``version`` (None: remove it), with an audit row that keeps
        the previous version, so "what was live at time T" is a query. Returns the previous version."""
        model = check_model_name(model)
        alias = alias.lower()

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

    def drop(self, model: str, version: int | None = None, if_exists: bool = False) -> list[int]:
        """Delete a model's versions (or one version) with their blobs and logs; the
        audit log keeps a DROP row. Returns the versions dropped."""
        model = check_model_name(model)

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
                    "SELECT alias FROM dbml.aliases WHERE model = ? AND version = ? ORDER BY alias", [model, version]
                ).fetchall()
                if held:
                    names = ", ".join(r[0] for r in held)
                    raise DbmlError(
                        f"model '{model}' version {version} is deployed under alias {names}; "
                        "move or unset the alias before dropping the version"
                    )
            for table in ("model_blobs", "training_log", "model_versions"):
                cur.execute(
                    f"DELETE FROM dbml.{table} WHERE model = ? AND list_contains(?, version)", [model, versions]
                )
            cur.execute("DELETE FROM dbml.aliases WHERE model = ? AND list_contains(?, version)", [model, versions])
            self._audit(cur, "DROP", model, version, {"versions": versions})
            return versions

        return self._transaction(work)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"
