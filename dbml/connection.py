"""The dbml connection: a DuckDB connection that also runs ML statements.

``sql`` splits a script into statements; dbml's own go to their handlers, queries
with PREDICT are rewritten, and a script of plain SQL reaches DuckDB exactly as typed.

Any number of connections, cursors and threads may share one database in a process:

* DuckDB keeps one catalog per database instance, shared by every connection to the
  same file in the process, so a version's UDFs are created once per instance, on a
  connection of dbml's own outside any user transaction, and found there by every
  other connection (their names carry the blob's digest, so a name means one blob).
* A dbml ``Connection`` used from several threads gives each thread a cursor of its
  own (DuckDB refuses a second call on a busy connection).
* User SQL runs so that DuckDB's replacement scans see the caller's Python variables
  (``SELECT * FROM df``), never dbml's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import contextlib
import functools
import itertools
import re
import sys
import threading
import types
import weakref
from typing import Any

import duckdb
import pyarrow as pa

from dbml import lifecycle, statements
from dbml.dialect import parse_statement
from dbml.errors import DbmlError, FeatureError, TargetError
from dbml.features import FeatureSpec
from dbml.outputs import FUNCTION_NAMES, OUTPUTS, VersionInfo, offered
from dbml.summary import headline, human_size
from dbml.request import TrainRequest
from dbml.tasks.classification import label_types
from dbml.registry import Registry, check_model_name, parse_reference
from dbml.rewrite import ModelSignature, Statement, rewrite_predict, split_statements
from dbml.runtime import scoring_session_for, session_for
from dbml.sqltext import string as sql_string
if TYPE_CHECKING:
    from dbml.training import Callback
from dbml.udfs import function_digest, function_names, parse_function_name, register_imported, register_version, version_info

__all__ = ["Connection", "connect", "install"]

_installed: "weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, Connection]" = weakref.WeakKeyDictionary()

# -- the caller's scope -------------------------------------------------------------------

_scope = threading.local()  # .frame: the user's frame while a public method runs
_CODE = {
    "sql": compile("__dbml_con__.sql(__dbml_query__, params=__dbml_params__)", "<dbml>", "eval"),
    "execute": compile("__dbml_con__.execute(__dbml_query__, __dbml_params__)", "<dbml>", "eval"),
}


def _in_dbml(frame) -> bool:
    return (frame.f_globals.get("__name__") or "").partition(".")[0] == "dbml"


def _user_frame(frame):
    """The innermost frame outside the dbml package, from ``frame`` outwards."""
    while frame is not None and _in_dbml(frame):
        frame = frame.f_back
    return frame


@contextlib.contextmanager
def user_namespace(namespace: dict[str, Any]):
    """Run the dbml calls inside as if made from code whose globals are ``namespace`` (a
    notebook's user namespace): DuckDB's replacement scans then find its frames by name.
    The Jupyter extension's cells run through this, since the magic's own frame is dbml's."""
    previous = getattr(_scope, "frame", None)
    _scope.frame = types.SimpleNamespace(f_globals=namespace, f_locals=namespace)  # what ScopedDuckDB reads of a frame
    try:
        yield
    finally:
        _scope.frame = previous


def _entry(method):
    """Remember the caller's frame while a public method runs. A call from dbml's own
    code keeps the frame already remembered; a call from user code (a callback inside
    TRAIN, say) brings its own, until it returns."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        caller = sys._getframe(1)
        previous = getattr(_scope, "frame", None)
        if previous is not None and _in_dbml(caller):
            return method(self, *args, **kwargs)
        _scope.frame = _user_frame(caller)
        try:
            return method(self, *args, **kwargs)
        finally:
            _scope.frame = previous

    return wrapper


class ScopedDuckDB:
    """A DuckDB connection whose ``sql`` and ``execute`` run as if called from the user's
    own frame: DuckDB looks up Python objects named in the SQL (a pandas, polars or Arrow
    frame) in the locals and globals of the frame that calls it, so the call is made
    from a frame with the user's names. Everything else is the connection's own."""

    def __init__(self, con: duckdb.DuckDBPyConnection, frame=None):
        self._con = con
        self._frame = frame

    def _call(self, method: str, query: Any, params: Any):
        frame = self._frame
        if frame is None:
            return getattr(self._con, method)(query, params)
        names = {} if frame.f_locals is frame.f_globals else dict(frame.f_locals)
        names.update(__dbml_con__=self._con, __dbml_query__=query, __dbml_params__=params)
        # _CODE holds two constant expressions compiled from literals at import; the SQL
        # text and parameters are passed to DuckDB as values (``__dbml_query__``) and never
        # compiled or evaluated as Python. eval only gives the call a frame with the
        # user's names, which DuckDB's replacement scans read.
        return eval(_CODE[method], frame.f_globals, names)  # noqa: S307 - constant code, user SQL is a value

    def sql(self, query: Any, params: Any = None) -> duckdb.DuckDBPyRelation:
        return self._call("sql", query, params)

    def execute(self, query: Any, parameters: Any = None) -> duckdb.DuckDBPyConnection:
        return self._call("execute", query, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


# -- who created which function, so DROP can remove it -------------------------------------

_creators: dict[str, list[weakref.ref]] = {}
_creators_lock = threading.Lock()
_local_names = itertools.count(1)
_PRIVATE_NAME = re.compile(r"dbml_(?:" + "|".join(o.udf for o in OUTPUTS) + r")__\w+__t\d+")


class Connection:
    """A DuckDB connection with dbml's statements, functions and registry.

    Attributes:
        duckdb: the underlying ``duckdb.DuckDBPyConnection`` (in a thread other than the
            one that made the connection, that thread's own cursor of it).
        registry: the registry of this database (created on first use).

    From several threads: each thread other than the creating one works on a cursor of
    its own, as DuckDB's ``cursor()`` does, so calls never collide ("connection is
    busy"). The database (tables, views, models) is shared; what DuckDB keeps per
    connection (temporary tables, USE, variables, prepared statements, registered
    Python objects, an open transaction) is per thread.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, user: str | None = None):
        self._con = con
        self._owner = threading.get_ident()
        self._local = threading.local()
        # threads' cursors; one goes with its thread (threading.local drops it)
        self._cursors: "weakref.WeakSet[duckdb.DuckDBPyConnection]" = weakref.WeakSet()
        self._lock = threading.RLock()
        self._registrar: duckdb.DuckDBPyConnection | None = None
        self._registry = Registry(con, user)
        self._registry_ready = False
        # (model, version) -> (sha256 the UDFs were built from, {SQL function: UDF name}, VersionInfo)
        self._functions: dict[tuple[str, int], tuple[str, dict[str, str], VersionInfo]] = {}
        # (connection id, model, version, sha256) -> {SQL function: UDF name} private to a transaction there
        self._private: dict[tuple[int, str, int, str], dict[str, str]] = {}
        # A registry that exists is checked (and migrated) now; a database without one
        # gets it at the first dbml statement, so plain SQL leaves no trace of dbml.
        if self._registry.check_compatible() > 0:
            self.registry  # noqa: B018 - an older registry is migrated now (never on a read-only database)

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection that ``sql`` uses in this thread (see :meth:`db`)."""
        return self.db()

    @property
    def registry(self) -> Registry:
        if not self._registry_ready:
            with self._lock:
                if not self._registry_ready:
                    self._registry.ensure()
                    self._registry_ready = True
        return self._registry

    def db(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection this thread uses: the connection itself in the thread that
        made it, a cursor of its own in any other thread."""
        if threading.get_ident() == self._owner:
            return self._con
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self._con.cursor()
            with self._lock:
                self._cursors.add(cur)
        return cur

    def scoped(self) -> ScopedDuckDB:
        """This thread's DuckDB connection, running SQL in the caller's Python scope."""
        return ScopedDuckDB(self.db(), getattr(_scope, "frame", None))

    # -- SQL -------------------------------------------------------------------------

    @_entry
    def sql(self, text: str, params: list[Any] | dict[str, Any] | None = None) -> duckdb.DuckDBPyRelation | None:
        """Run a script of ML statements and plain SQL separated by ``;``.

        Returns what the last statement gives: a relation, or None for DDL and DML
        (INSERT, UPDATE, DELETE, MERGE and COPY without RETURNING / RETURN_FILES). A
        script of plain SQL alone goes to DuckDB whole, exactly as typed.
        """
        text = _text(text)
        try:
            parts = split_statements(text)
        except Exception:  # pragma: no cover - the scanner reads any text
            parts = [Statement(text, "sql", text)]
        if not parts:
            return None
        if params is not None and len(parts) > 1:
            raise DbmlError("parameters can be bound to one statement at a time; split the script")
        if all(p.kind == "sql" for p in parts):
            return self._run_plain(text, params, parts)
        result = None
        for i, part in enumerate(parts):
            rel = self._run(part, params, last=i == len(parts) - 1)
            if rel is not None:  # as DuckDB: the latest statement that gave rows
                result = rel
        return result

    @_entry
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
        part = parts[0]
        if part.kind == "sql":
            return self._retrying(lambda: self.scoped().execute(text, params), part)
        return self._submit(part, params, lambda sql, values: self.scoped().execute(sql, values))

    def _run_plain(self, text: str, params, parts: list[Statement]):
        """A script of plain SQL, to DuckDB in one call, as typed. DuckDB returns the rows
        of its latest statement that gave rows; dbml returns None where none did."""
        rel = self._retrying(lambda: self.scoped().sql(text, params), parts[0] if len(parts) == 1 else None)
        con = self.db()
        return rel if any(_yields_rows(con, p) for p in parts) else None

    def _run(self, part: Statement, params, last: bool) -> duckdb.DuckDBPyRelation | None:
        """One statement of a script with dbml statements in it. A statement that gives
        rows gives a relation (held in memory unless it is the last, since later
        statements may change what it reads); any other runs to its end and gives None."""

        def run(sql: str, values):
            if not _yields_rows(self.db(), part):
                self.scoped().execute(sql, values).fetchall()
                return None
            rel = self.scoped().sql(sql, values)
            return rel if last or rel is None else rel.materialize()

        if part.kind == "sql":
            return self._retrying(lambda: run(part.text, params), part)
        return self._submit(part, params, run)

    def _retrying(self, run, part: Statement | None, rewrite=None):
        """Run SQL, mending what a missing version UDF means, then running it again:

        * a view or macro made in an earlier process calls a UDF that no connection of
          this process has created yet: it is created;
        * a transaction opened before the UDF existed cannot see it: a PREDICT
          statement (``rewrite`` given) is rewritten to copies private to this
          connection; stored SQL gets a dbml error saying to COMMIT or ROLLBACK;
        * a private copy that a ROLLBACK took is made again.

        ``part`` None: a script of several statements, which is never run twice.
        The normal path costs nothing: the statement just runs.
        """
        created: set[str] = set()
        private = False
        while True:
            try:
                return run()
            except duckdb.CatalogException as err:
                name = _missing_udf(err)
                if name is None:
                    raise
                if _PRIVATE_NAME.fullmatch(name):  # taken by a ROLLBACK
                    self._private = {k: v for k, v in self._private.items() if name not in v.values()}
                    if rewrite is None or name in created:
                        raise
                    created.add(name)
                    rewrite(True)
                    continue
                if name not in created and self._register_stored(name):
                    created.add(name)
                    if part is None:
                        raise DbmlError(
                            f"the script calls {name}, the UDF of a stored view or macro, which was not registered "
                            "in this process yet; it is now, but the statements before the failing one have run: "
                            "run the rest of the script again"
                        ) from None
                    if rewrite is not None:
                        rewrite(private)
                    continue
                # the UDF exists, yet this connection cannot see it: an older transaction
                if rewrite is None or private:
                    raise DbmlError(
                        f"the SQL calls {name}, which was created after this transaction began, so the "
                        "transaction cannot see it: COMMIT or ROLLBACK, then run the statement again"
                    ) from None
                private = True
                rewrite(True)

    def _submit(self, part: Statement, params, run):
        """Run one statement: ML statements by their handler, the rest by ``run`` after
        rewriting PREDICT, every model reference resolved once."""
        if part.kind == "ml":
            return statements.run_statement(self, parse_statement(part.text), params)
        used: list[ModelSignature] = []
        sql = [self.rewrite(part.text, used)]

        def attempt():
            try:
                return run(sql[0], params)
            except duckdb.BinderException as err:
                raise _missing_feature(err, used) or err

        def rewrite(private: bool) -> None:  # the statement's UDFs may now have other names
            if private and re.match(r"\s*CREATE\b", part.masked, re.IGNORECASE):
                raise DbmlError(
                    "a view, macro or table made inside this transaction would call PREDICT through functions that "
                    "live only in the transaction: create it after COMMIT or ROLLBACK"
                )
            sql[0] = self.rewrite(part.text, used, private=private)

        return self._retrying(attempt, part, rewrite)

    def _register_stored(self, function: str) -> bool:
        """Create the UDFs behind a ``dbml_predict__<model>__v<N>...`` name met in SQL that
        was rewritten earlier (a view, a macro), under exactly that name, unless they
        exist already. Returns whether they had to be created."""
        model, version = parse_function_name(function)
        if _functions_exist(self._registrar_con(), [function]):
            return False
        self._functions.pop((model, version), None)  # e.g. another connection dropped it
        try:
            rec = self.registry.get(model, version)
        except DbmlError as err:
            raise DbmlError(f"the SQL calls {function}, but {str(err)[len('dbml: '):]}") from None
        digest = function_digest(function)
        if digest is not None and not rec["onnx_sha256"].startswith(digest):
            raise DbmlError(
                f"the SQL calls {function}, made for another ONNX blob than model '{model}' version {version} "
                f"holds now (sha256 {rec['onnx_sha256'][:8]}...); re-create the view or macro"
            )
        self._ensure_functions(rec, names=function_names(model, version, digest))
        return True

    def rewrite(self, sql: str, used: list[ModelSignature] | None = None, *, private: bool = False) -> str:
        """The SQL DuckDB runs for ``sql``: PREDICT calls become per-version UDF calls
        (registered on first use); other text is unchanged. Each model reference is
        resolved once, so one statement scores with one version of it even while another
        connection moves an alias. The signatures of the models met are appended to ``used``.
        ``private``: call copies of the UDFs private to this thread's connection (for a
        transaction opened before the shared ones existed)."""
        resolved: dict[str, ModelSignature | None] = {}

        def resolve(reference: str) -> ModelSignature | None:
            key = reference.strip().lower()
            if key not in resolved:
                resolved[key] = self._resolve(reference, private)
                if used is not None and resolved[key] is not None:
                    used.append(resolved[key])
            return resolved[key]

        return rewrite_predict(sql, resolve, lambda: _user_function_exists(self.db(), _LOWER_NAMES))

    def _resolve(self, reference: str, private: bool = False) -> ModelSignature | None:
        try:
            return self.signature(reference, private=private)
        except DbmlError:
            # PREDICT(a, b) where a is no model and the user has a function of that name
            if _user_function_exists(self.db(), _LOWER_NAMES):
                try:
                    model, version, alias = parse_reference(reference)
                    if not self.registry.has_versions(model):
                        return None
                except DbmlError:
                    return None
            raise

    def signature(self, reference: str, *, private: bool = False) -> ModelSignature:
        """Resolve 'model', 'model:3' or 'model@alias' and make sure its UDFs exist."""
        model, version, alias = parse_reference(reference)
        rec = self.registry.get(model, version, alias)
        return self._ensure_functions(rec, private=private)

    def _ensure_functions(
        self, rec: dict[str, Any], names: dict[str, str] | None = None, private: bool = False
    ) -> ModelSignature:
        """The signature of a version, its shared UDFs created where missing (once per
        database instance, on the registrar), one per function of the outputs table the
        version offers. ``names``: the exact names a stored view or macro calls.
        ``private``: also use copies made on this thread's connection, inside its open
        transaction (a ROLLBACK takes them along)."""
        model, version, sha = rec["model"], rec["version"], rec["onnx_sha256"]
        features = tuple(FeatureSpec(**f) for f in rec["features"])
        names = names or function_names(model, version, sha)
        known = self._functions.get((model, version))
        if known is None or known[0] != sha or any(n not in names.values() for n in known[1].values()):
            info = self._version_info(rec)
            wanted = {fn: names[fn] for fn in offered(info)}
            with self._lock:
                if not _functions_exist(self._registrar_con(), list(wanted.values())):
                    made = self._register(rec, features, info, self._registrar_con(), wanted)
                    _remember_creator(self._registrar_con(), made.values())
            known = self._functions[(model, version)] = (sha, wanted, info)
        functions, info = known[1], known[2]
        if private:
            con = self.db()
            key = (id(con), model, version, sha)
            local = self._private.get(key)
            if local is None:
                local = {fn: f"{n}__t{next(_local_names)}" for fn, n in functions.items()}
                local = self._register(rec, features, info, con, local)
                _remember_creator(con, local.values())
                self._private[key] = local
            functions = local
        task = rec["task"]
        return ModelSignature(
            model=model, version=version, features=features, functions=dict(functions), task=task,
            predict_type=info.predict_type,
            label_type=rec["target_type"] if task in ("classification", "imported") else "DOUBLE",
        )  # fmt: skip

    def _session(self, rec: dict[str, Any]):
        model, version = rec["model"], rec["version"]
        what = f"model '{model}' version {version}"
        return session_for(rec["onnx_sha256"], rec["onnx_size"], lambda: self.registry.blob(model, version), what)

    def _scoring(self, rec: dict[str, Any], features: tuple[FeatureSpec, ...]):
        """The session the scoring functions of a version trained by dbml run (its packed graph)."""
        model, version = rec["model"], rec["version"]
        what = f"model '{model}' version {version}"
        return scoring_session_for(rec["onnx_sha256"], rec["onnx_size"], lambda: self.registry.blob(model, version), what, features)

    def _version_info(self, rec: dict[str, Any]) -> VersionInfo:
        task = rec["task"]
        if task == "imported":  # a foreign ONNX file: PREDICT returns its first output's type
            layout = rec.get("options") or {}
            outputs = {"value": ()} | ({"probabilities": ()} if layout.get("proba") else {})
            return VersionInfo(task, None, rec["target_type"], outputs)
        predict_type = label_types(rec["target_type"])[1] if task == "classification" else "DOUBLE"
        features = tuple(FeatureSpec(**f) for f in rec["features"])
        return version_info(task, rec["labels"], predict_type, self._scoring(rec, features).session)

    def _register(self, rec, features, info: VersionInfo, con, names: dict[str, str]) -> dict[str, str]:
        model, version = rec["model"], rec["version"]
        if rec["task"] == "imported":
            session = self._session(rec)
            return register_imported(con, model, version, features, rec["options"], info.predict_type, session, names)
        return register_version(con, model, version, features, info, self._scoring(rec, features), names)

    def _registrar_con(self) -> duckdb.DuckDBPyConnection:
        """dbml's own connection to this database for creating functions: autocommitted,
        so a user's ROLLBACK never takes a function another connection relies on."""
        with self._lock:
            if self._registrar is None:
                self._registrar = self._con.cursor()
            return self._registrar

    def _forget_functions(self, model: str, versions: list[int]) -> None:
        """Remove the UDFs of dropped versions, from whichever connection of this
        process created them (DuckDB lets only the creator remove a function)."""
        for version in versions:
            known = self._functions.pop((model, version), None)
            names = list(known[1].values()) if known else []
            prefixes = tuple(function_names(model, version).values())
            with _creators_lock:
                names += [n for n in _creators if (n in prefixes or n.startswith(tuple(p + "__" for p in prefixes))) and n not in names]
                creators = {n: [r() for r in _creators.pop(n, [])] for n in names}
            for name, cons in creators.items():
                for con in cons:
                    if con is None:
                        continue
                    try:
                        con.remove_function(name)
                    except duckdb.Error:
                        pass  # not this connection's, or already gone

    # -- Python twins of the statements ---------------------------------------------------

    @_entry
    def train(
        self,
        model: str,
        source: str,
        target: str | list[str] | None = None,
        *,
        using: str | None = None,
        if_not_exists: bool = False,
        params: list[Any] | None = None,
        callbacks: "list[Callback] | None" = None,
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
        from dbml.training.pipeline import train  # torch loads when something trains

        row = train(self.scoped(), self.registry, request)
        return statements.rows_relation(self.db(), [row])

    @_entry
    def predict(self, model: str, source: str, proba: bool = False) -> duckdb.DuckDBPyRelation:
        """The source's rows with a ``prediction`` column (and ``probabilities`` when asked)."""
        parse_reference(model)  # a dbml error for anything but a model reference
        ref = sql_string(model)
        source_sql, _ = statements.source_query(source)
        extra = f", PREDICT_PROBA({ref}, *) AS probabilities" if proba else ""
        return self.scoped().sql(self.rewrite(f"SELECT *, PREDICT({ref}, *) AS prediction{extra} FROM (\n{source_sql}\n) AS src"))

    @_entry
    def show_models(self) -> duckdb.DuckDBPyRelation:
        """``SHOW MODELS``: one row per model."""
        return self.sql("SHOW MODELS")

    @_entry
    def describe_model(self, model: str) -> duckdb.DuckDBPyRelation:
        """``DESCRIBE MODEL model``: one row per version with its schema, metrics, sizes and lineage."""
        name = check_model_name(model)
        self.registry.get(name)  # raises for an unknown model
        facts = []  # per version: the SQL functions it offers (from its graph's outputs), its headline metric, its size
        for version in self.registry.versions(name):
            rec = self.registry.get(name, version)
            metric, score = headline(rec["task"], rec["metrics"])
            facts.append({"version": version, "functions": list(offered(self._version_info(rec))), "metric": metric,
                          "score": score, "size": human_size(rec["onnx_size"])})
        fact = "(SELECT f.{} FROM (SELECT unnest($facts) AS f) WHERE f.version = v.version) AS {}"
        # what a person reads at both ends (a terminal shows the first and last columns); the
        # bulky JSON facts (features, metrics, options, ...) in between
        return self.db().sql(
            "SELECT v.version, "
            "(SELECT list(a.alias ORDER BY a.alias) FROM dbml.aliases a WHERE a.model = v.model "
            " AND a.version = v.version) AS aliases, "
            + ", ".join(fact.format(k, k) for k in ("metric", "score")) + ", v.task, v.architecture, v.target, "
            + fact.format("functions", "functions") + ", v.row_count, v.train_rows, v.validation_rows, v.epochs, "
            "v.train_seconds, v.device, v.target_type, v.labels, v.features, v.metrics, v.options, v.onnx_size, "
            "v.onnx_sha256, v.parity_error, v.source_sql, v.source_tables, v.data_fingerprint, v.library_versions, "
            "v.parent_version, " + fact.format("size", "size") + ", v.created_by, v.created_at "
            "FROM dbml.model_versions v WHERE v.model = $model ORDER BY v.version",
            params={"model": name, "facts": facts},
        )

    @_entry
    def drop_model(self, model: str, version: int | None = None, if_exists: bool = False) -> duckdb.DuckDBPyRelation:
        """``DROP MODEL [IF EXISTS] model [VERSION n]``: blobs and rows go, the audit row stays."""
        name = check_model_name(model)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise DbmlError(f"version must be a whole number, got {version!r}")
        dropped = self.registry.drop(name, version, if_exists)
        self._forget_functions(name, dropped)
        schema = pa.schema([("model", pa.string()), ("version", pa.int32()), ("status", pa.string())])
        rows = [{"model": name, "version": v, "status": "dropped"} for v in dropped]
        return statements.rows_relation(self.db(), rows, schema)

    @_entry
    def evaluate(
        self, model: str, source: str, *, version: int | None = None, by: str | None = None,
        confusion: bool = False, positive: Any = None,
    ) -> duckdb.DuckDBPyRelation:  # fmt: skip
        """``EVALUATE MODEL model [VERSION n] ON source WITH (by = ..., confusion = ...)``."""
        source_sql, label = statements.source_query(source)
        options = {k: v for k, v in {"by": by, "confusion": confusion, "positive": positive}.items() if v is not None}
        return lifecycle.evaluate_model(self, model, version, self.rewrite(source_sql), label, options)

    @_entry
    def explain(self, model: str, source: str, *, version: int | None = None, repeats: int = 5, seed: int = 0) -> duckdb.DuckDBPyRelation:
        """``EXPLAIN MODEL model [VERSION n] ON source``: permutation importance per feature."""
        source_sql, label = statements.source_query(source)
        return lifecycle.explain_model(self, model, version, self.rewrite(source_sql), label, {"repeats": repeats, "seed": seed})

    @_entry
    def monitor(self, model: str, source: str, *, version: int | None = None, threshold: float = 0.2) -> duckdb.DuckDBPyRelation:
        """``MONITOR MODEL model [VERSION n] ON source``: drift against the training profile (stored)."""
        source_sql, label = statements.source_query(source)
        return lifecycle.monitor_model(self, model, version, self.rewrite(source_sql), label, {"threshold": threshold})

    @_entry
    def model_card(self, model: str, path: str | None = None, version: int | None = None) -> str:
        """``EXPORT MODEL CARD model [VERSION n] TO 'path'``: the HTML model card of a version
        (default: the one a bare name scores with), written to ``path`` (a file path or any
        fsspec URL; an existing file is replaced, as EXPORT MODEL does). Returns the path
        written, or the HTML itself when ``path`` is None."""
        from dbml.integrations import card

        if path is None:
            return card.model_card(self, model, version)
        card.export_card(self, model, version, path)
        return path

    @_entry
    def set_alias(self, model: str, alias: str, version: int) -> duckdb.DuckDBPyRelation:
        """``ALTER MODEL model SET ALIAS alias = version``: deploy, or roll back."""
        return lifecycle.set_alias(self, model, alias, version)

    @_entry
    def unset_alias(self, model: str, alias: str) -> duckdb.DuckDBPyRelation:
        """``ALTER MODEL model UNSET ALIAS alias``."""
        return lifecycle.set_alias(self, model, alias, None)

    @_entry
    def export_model(self, model: str, url: str, version: int | None = None) -> duckdb.DuckDBPyRelation:
        """``EXPORT MODEL model [VERSION n] TO 'url'`` (any fsspec URL or path)."""
        return lifecycle.export_model(self, model, version, url)

    @_entry
    def import_model(self, model: str, url: str, **options: Any) -> duckdb.DuckDBPyRelation:
        """``IMPORT MODEL model FROM 'url' [WITH (max_size = ...)]``."""
        return lifecycle.import_model(self, model, url, options)

    def close(self) -> None:
        with self._lock:
            cursors, self._cursors = list(self._cursors), weakref.WeakSet()
            registrar, self._registrar = self._registrar, None
        for cur in [*cursors, registrar]:
            if cur is not None:
                try:
                    cur.close()
                except duckdb.Error:
                    pass
        self._con.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- DB-API shape, for tools that take a DuckDB connection (jupysql's %sql con) -----

    def cursor(self):
        """A cursor with dbml's statements: as DuckDB's ``cursor()``, a connection of its
        own to the same database (see :class:`dbml.integrations.notebook.Cursor`)."""
        from dbml.integrations.notebook import Cursor

        return Cursor(Connection(self.db().cursor(), self._registry.user))

    def commit(self) -> None:
        """Commit this thread's open transaction, as DuckDB's ``commit()``."""
        self.db().commit()

    def df(self):
        """The pending result of this thread's DuckDB connection as pandas, as DuckDB's ``df()``."""
        return self.db().df()

    def pl(self):
        """The pending result of this thread's DuckDB connection as polars, as DuckDB's ``pl()``."""
        return self.db().pl()


_NO_ROWS = {
    "CREATE", "DROP", "ALTER", "SET", "VARIABLE_SET", "TRANSACTION", "ATTACH", "DETACH", "LOAD", "VACUUM",
    "ANALYZE", "CREATE_FUNC", "EXPORT", "PREPARE",
}  # fmt: skip
_COUNTED = {"INSERT", "UPDATE", "DELETE", "MERGE_INTO", "COPY"}  # rows only with RETURNING / RETURN_FILES


def _text(text: Any) -> str:
    if not isinstance(text, str):
        raise DbmlError(f"SQL text must be a string, got {type(text).__name__}")
    return text


def _yields_rows(con: duckdb.DuckDBPyConnection, part: Statement) -> bool:
    """False for DDL and for DML that only counts its rows (the connection's contract
    gives None for them); True for queries, RETURNING, RETURN_FILES and the rest."""
    try:
        parsed = con.extract_statements(part.text)
        kind = parsed[-1].type.name
    except (duckdb.Error, ValueError, TypeError, IndexError):
        return True  # a statement this duckdb cannot name (CONNECT, ...): DuckDB answers for itself
    if kind in _NO_ROWS:
        return False
    if kind in _COUNTED:
        return re.search(r"\bRETURNING\b|\bRETURN_FILES\b", part.masked or part.text, re.IGNORECASE) is not None
    return True


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


def _functions_exist(con: duckdb.DuckDBPyConnection, names: list[str]) -> bool:
    found = con.execute(
        "SELECT count(DISTINCT function_name) FROM duckdb_functions() WHERE list_contains(?, function_name)", [names]
    ).fetchall()[0][0]
    return found == len(set(names))


_LOWER_NAMES = tuple(n.lower() for n in FUNCTION_NAMES)


def _user_function_exists(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> bool:
    cur = con.cursor()
    try:
        return bool(cur.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE list_contains(?, lower(function_name))", [list(names)]
        ).fetchall()[0][0])  # fmt: skip
    finally:
        cur.close()


def _remember_creator(con: duckdb.DuckDBPyConnection, names) -> None:
    with _creators_lock:
        for name in names:
            if name is not None:
                _creators.setdefault(name, []).append(weakref.ref(con))


def connect(path: str | None = None, *, user: str | None = None, read_only: bool = False, **config: Any) -> Connection:
    """Open (or create) a DuckDB database with dbml in it.

    Any number of connections to one file may be open in a process (they share one
    database instance); another process holding the file is a dbml error.

    Args:
        path: the database file; None for an in-memory database.
        user: the name recorded in the registry and audit log (default: the OS user).
        read_only: open the file read-only (PREDICT works, training does not).
        **config: DuckDB configuration options, e.g. ``threads=4``.
    """
    try:
        con = duckdb.connect(path or ":memory:", read_only=read_only, config=config)
    except duckdb.IOException as err:
        if "lock" not in str(err).lower():
            raise
        holder = re.search(r"\(PID (\d+)\)", str(err))
        who = f"process {holder.group(1)}" if holder else "another process"
        raise DbmlError(
            f"database file '{path}' is open in {who}, which holds DuckDB's lock on it; close it there, "
            "or have every process open it with dbml.connect(path, read_only=True) to read and score only"
        ) from None
    conn = Connection(con, user)
    _installed[con] = conn
    return conn


def install(con: duckdb.DuckDBPyConnection, user: str | None = None) -> Connection:
    """Add dbml to a DuckDB connection (or cursor) the user already has; calling it
    again returns the same object."""
    existing = _installed.get(con)
    if existing is not None:
        return existing
    conn = Connection(con, user)
    _installed[con] = conn
    return conn
