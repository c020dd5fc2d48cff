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
import inspect
import itertools
import re
import sys
import threading
import types
import weakref
from typing import Any

import duckdb

from dbml import statements
from dbml.errors import DbmlError, DbmlSyntaxError, FeatureError
from dbml.names import parse_reference
from dbml.outputs import FUNCTION_NAMES, OUTPUTS
from dbml.registry.store import Registry
from dbml.script import Statement, mask, nested_parts, nested_statements, split_script, suggestion
from dbml.statements import Context
from dbml.statements.base import numbered_parameters, parameters_for

if TYPE_CHECKING:
    from dbml.outputs import VersionInfo
    from dbml.rewrite import ModelSignature

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
            parts = split_script(text)
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
        read with ``fetchall()``, ``df()``, ``arrow()``); ML statements, and SQL holding
        one, return a relation (read whole), or None when they give no rows.
        """
        parts = split_script(_text(text))
        if len(parts) != 1:
            if params is not None:
                raise DbmlError("parameters can be bound to one statement at a time; split the script")
            return self.sql(text)
        part = parts[0]
        if part.kind == "sql":
            return self._hinting(part, lambda: self._retrying(lambda: self.scoped().execute(text, params), part))
        if part.kind == "nested":  # rows read by a temporary name: read whole before the name goes, as a relation
            return self._run(part, params, last=True)
        return self._submit(part, params, lambda sql, values, keep: self.scoped().execute(sql, values))

    def _run_plain(self, text: str, params, parts: list[Statement]):
        """A script of plain SQL, to DuckDB in one call, as typed. DuckDB returns the rows
        of its latest statement that gave rows; dbml returns None where none did."""
        rel = self._hinting(parts, lambda: self._retrying(lambda: self.scoped().sql(text, params),
                                                          parts[0] if len(parts) == 1 else None))  # fmt: skip
        con = self.db()
        return rel if any(_yields_rows(con, p) for p in parts) else None

    def _run(self, part: Statement, params, last: bool) -> duckdb.DuckDBPyRelation | None:
        """One statement of a script with dbml statements in it. A statement that gives
        rows gives a relation (held in memory unless it is the last, since later
        statements may change what it reads); any other runs to its end and gives None."""

        def run(sql: str, values, keep: bool = False):
            # what DuckDB runs tells: a statement holding an ML statement reads as SQL only once composed
            shown = part if part.kind != "nested" else Statement(sql, "sql", mask(sql))
            if not _yields_rows(self.db(), shown):
                self.scoped().execute(sql, values).fetchall()
                return None
            rel = self.scoped().sql(sql, values)
            return rel if (last and not keep) or rel is None else rel.materialize()

        if part.kind == "sql":
            return self._hinting(part, lambda: self._retrying(lambda: run(part.text, params), part))
        return self._submit(part, params, run)

    def _hinting(self, parts: Statement | list[Statement], run):
        """Run plain SQL; when DuckDB refuses a statement that starts like one of dbml's
        (``TRAIN MODLE``, ``SHOW MODEL``, ``DESCRIBE MODEL`` without a name), say what it
        probably meant, with DuckDB's own message."""
        try:
            return run()
        except (duckdb.ParserException, duckdb.CatalogException) as err:
            for part in parts if isinstance(parts, list) else [parts]:
                hint = suggestion(part.masked or mask(part.text))
                if hint is not None:
                    shown = " ".join(part.text.split())
                    shown = shown if len(shown) <= 60 else shown[:57] + "..."
                    raise DbmlSyntaxError(f"'{shown}' is not a statement dbml or DuckDB knows: {hint}\n"
                                          f"DuckDB said: {err}") from None  # fmt: skip
            raise

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
        """Run one statement: ML statements by their handler (with a context, never the
        connection), the rest by ``run`` after running the ML statements nested in it and
        rewriting PREDICT, every model reference resolved once. The rows of nested
        statements are registered for as long as the statement runs: what it gives is
        read whole before they go."""
        if part.kind == "ml":
            text, named = numbered_parameters(part.text, part.masked or mask(part.text), params)
            ctx = self.context(named)
            try:
                rel = statements.run_statement(ctx, parse_statement(text))
                return rel.materialize() if ctx.holds_rows() and rel is not None else rel
            finally:
                ctx.close()
        ctx = None
        text, values = part.text, params
        if part.kind == "nested":
            text, named = numbered_parameters(part.text, part.masked or mask(part.text), params)
            ctx = self.context(named)
        try:
            if ctx is not None:
                text = self.compose(text, ctx)
                values = parameters_for(mask(text), named)
            used: list[ModelSignature] = []
            resolved = ctx._resolved if ctx is not None else {}
            sql = [self.rewrite(text, used, resolved=resolved)]

            def attempt():
                try:
                    return run(sql[0], values, ctx is not None)  # rows read by name must be read before they go
                except duckdb.BinderException as err:
                    from dbml.rewrite import missing_feature

                    raise missing_feature(err, used) or err

            def rewrite(private: bool) -> None:  # the statement's UDFs may now have other names
                if private and re.match(r"\s*CREATE\b", part.masked, re.IGNORECASE):
                    raise DbmlError(
                        "a view, macro or table made inside this transaction would call PREDICT through functions that "
                        "live only in the transaction: create it after COMMIT or ROLLBACK"
                    )
                sql[0] = self.rewrite(text, used, private=private, resolved=resolved)

            return self._retrying(attempt, part, rewrite)
        finally:
            if ctx is not None:
                ctx.close()

    def context(self, params: dict[str, Any] | None = None) -> Context:
        """A statement handler's view of this connection (see :class:`dbml.statements.Context`)."""
        return Context(self, params)

    def compose(self, sql: str, ctx: Context) -> str:
        """``sql`` with each ML statement nested in it (``FROM (FORECAST MODEL m HORIZON 3)``,
        a CTE, ``COPY (...) TO``) run first by its handler and its rows put in its place
        (:func:`dbml.script.nested_parts`), registered on this thread's connection for as
        long as ``ctx`` lives. Everything that can be refused is, before any of them runs:
        the outer statement's syntax, a view, macro or prepared statement holding one, a
        statement that acts rather than giving rows, a nested statement's own syntax."""
        masked = mask(sql)
        spans = nested_statements(masked)
        if not spans:
            return sql
        names = [f"__dbml_rows_{next(_nested_names)}" for _ in spans]
        outer, inner = nested_parts(sql, lambda k: names[k])
        kind = re.match(r"\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?(VIEW|MACRO|FUNCTION)|(PREPARE))\b",
                        masked, re.IGNORECASE)  # fmt: skip
        try:
            self.db().extract_statements(outer)  # DuckDB's parser: a syntax error before a nested statement runs
        except duckdb.ParserException:
            raise
        except duckdb.Error:  # pragma: no cover - extract_statements only parses
            pass
        nodes = []
        for (start, _), text in zip(spans, inner):
            try:
                nodes.append(parse_statement(text))
            except DbmlSyntaxError as err:
                raise _shifted(err, sql, start + 1 + (len(sql[start + 1 :]) - len(sql[start + 1 :].lstrip()))) from None
        for node in nodes:
            statement = statements.statement_of(node)
            head = " ".join(statement.head)
            if kind is not None:
                what = (kind.group(1) or "prepared statement").lower()
                raise DbmlError(
                    f"a {what} cannot hold {head}: dbml runs it when a statement runs, so the {what} would read rows "
                    f"that are gone; keep them with CREATE TABLE ... AS FROM ({head} ...) and build the {what} on that table"
                )
            if not statement.returns_rows:
                raise DbmlError(f"{head} cannot be used inside a query: it acts rather than giving rows; run it as a "
                                "statement of its own")  # fmt: skip
        con = self.db()
        for node, name in zip(nodes, names):
            child = ctx.child()
            rel = statements.run_statement(child, node)
            con.register(name, rel.to_arrow_table())
            ctx.keep(con, name)
        return outer

    def _register_stored(self, function: str) -> bool:
        """Create the UDFs behind a ``dbml_predict__<model>__v<N>...`` name met in SQL that
        was rewritten earlier (a view, a macro), under exactly that name, unless they
        exist already. Returns whether they had to be created."""
        from dbml.udfs import function_digest, function_names, parse_function_name

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

    def rewrite(self, sql: str, used: list[ModelSignature] | None = None, *, private: bool = False,
                resolved: dict | None = None) -> str:  # fmt: skip
        """The SQL DuckDB runs for ``sql``: PREDICT calls become per-version UDF calls
        (registered on first use); other text is unchanged.

        Each model reference is resolved once, whatever its spelling (``cm``, ``'cm'``,
        ``CM``, ``"cm"`` and ``'cm@default'`` are one reference; ``'cm@production'`` and
        ``'cm:3'`` are their own), so one statement scores with one version of it even
        while another connection moves an alias. ``resolved`` carries the resolutions
        across the calls of one statement (a handler's context passes its own). The
        signatures of the models met are appended to ``used``. ``private``: call copies
        of the UDFs private to this thread's connection (for a transaction opened before
        the shared ones existed)."""
        from dbml.rewrite import rewrite_predict

        resolved = {} if resolved is None else resolved

        def resolve(reference: str) -> ModelSignature | None:
            ref = _reference_key(reference)
            key = (ref, private)
            if key not in resolved:
                pin = ("pin", *ref) if ref[0] != "?" else None  # a version a handler already read (Context.record)
                if pin is not None and pin in resolved:
                    resolved[key] = self._resolve(f"{ref[0]}:{resolved[pin]}", private)
                else:
                    resolved[key] = self._resolve(reference, private)
                    if pin is not None and resolved[key] is not None:
                        resolved[pin] = resolved[key].version
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
        from dbml.features import FeatureSpec
        from dbml.outputs import offered
        from dbml.rewrite import ModelSignature
        from dbml.udfs import function_names

        model, version, sha = rec["model"], rec["version"], rec["onnx_sha256"]
        features = tuple(FeatureSpec(**f) for f in rec["features"])
        names = names or function_names(model, version, sha)
        known = self._functions.get((model, version))
        if known is None or known[0] != sha or any(n not in names.values() for n in known[1].values()):
            info = self.version_info(rec)
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
        from dbml.tasks import get_task

        return ModelSignature(
            model=model, version=version, features=features, functions=dict(functions), task=rec["task"],
            predict_type=info.predict_type, label_type=get_task(rec["task"]).label_type(rec),
        )  # fmt: skip

    def session(self, rec: dict[str, Any]):
        """The verified onnxruntime session of a version's blob (cached by its sha256)."""
        from dbml.runtime import session_for

        model, version = rec["model"], rec["version"]
        what = f"model '{model}' version {version}"
        return session_for(rec["onnx_sha256"], rec["onnx_size"], lambda: self.registry.blob(model, version), what)

    def _scoring(self, rec: dict[str, Any], features: tuple):
        """The session the scoring functions of a version trained by dbml run (its packed graph)."""
        from dbml.runtime import scoring_session_for

        model, version = rec["model"], rec["version"]
        what = f"model '{model}' version {version}"
        return scoring_session_for(rec["onnx_sha256"], rec["onnx_size"], lambda: self.registry.blob(model, version), what, features)

    def version_info(self, rec: dict[str, Any]) -> VersionInfo:
        """What a version's graph offers: its task, labels, PREDICT's type and outputs (the
        task says each: :meth:`dbml.tasks.Task.udf_type`, :meth:`~dbml.tasks.Task.version_outputs`)."""
        from dbml.features import FeatureSpec
        from dbml.outputs import VersionInfo
        from dbml.tasks import get_task

        task = get_task(rec["task"])
        features = tuple(FeatureSpec(**f) for f in rec["features"])
        outputs = task.version_outputs(rec, lambda: self._scoring(rec, features).session)
        labels = tuple(rec["labels"]) if rec.get("labels") is not None else None
        return VersionInfo(task.name, labels, task.udf_type(rec["target_type"]), outputs)

    def _register(self, rec, features, info: VersionInfo, con, names: dict[str, str]) -> dict[str, str]:
        from dbml.tasks import get_task
        from dbml.udfs import register_imported, register_version

        model, version = rec["model"], rec["version"]
        if get_task(rec["task"]).foreign:  # a graph dbml did not write: its own inputs and outputs
            session = self.session(rec)
            return register_imported(con, model, version, features, rec["options"], info.predict_type, session, names)
        return register_version(con, model, version, features, info, self._scoring(rec, features), names)

    def _registrar_con(self) -> duckdb.DuckDBPyConnection:
        """dbml's own connection to this database for creating functions: autocommitted,
        so a user's ROLLBACK never takes a function another connection relies on."""
        with self._lock:
            if self._registrar is None:
                self._registrar = self._con.cursor()
            return self._registrar

    def forget_functions(self, model: str, versions: list[int]) -> None:
        """Remove the UDFs of dropped versions, from whichever connection of this
        process created them (DuckDB lets only the creator remove a function)."""
        from dbml.udfs import function_names

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

    # -- Python twins of the statements: made from the statements table (below the class) --

    @_entry
    def predict(self, model: str, source: str, proba: bool = False) -> duckdb.DuckDBPyRelation:
        """The source's rows with a ``prediction`` column (and ``probabilities`` when asked)."""
        from dbml.sqltext import string as sql_string

        parse_reference(model)  # a dbml error for anything but a model reference
        ref = sql_string(model)
        source_sql, _ = statements.source_query(source)
        extra = f", PREDICT_PROBA({ref}, *) AS probabilities" if proba else ""
        return self.scoped().sql(self.rewrite(f"SELECT *, PREDICT({ref}, *) AS prediction{extra} FROM (\n{source_sql}\n) AS src"))

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
        own to the same database (see :class:`dbml.cursor.Cursor`)."""
        from dbml.cursor import Cursor

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


def _twin(name: str, function):
    """A Connection method running a statement's Python twin with a context."""
    signature = inspect.signature(function)
    params = list(signature.parameters.values())

    @functools.wraps(function)
    def method(self, *args, **kwargs):
        ctx = self.context()
        try:
            result = function(ctx, *args, **kwargs)
            # a relation over rows of statements nested in its source is read before they go
            return result.materialize() if ctx.holds_rows() and isinstance(result, duckdb.DuckDBPyRelation) else result
        finally:
            ctx.close()

    method.__signature__ = signature.replace(parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params[1:]])
    method.__name__ = method.__qualname__ = name
    method.__qualname__ = f"Connection.{name}"
    return _entry(method)


def _check_twins(statement, old) -> None:
    """Refuse, before the table changes, a twin named like a Connection method that is not
    a twin of a statement ``statement`` replaces."""
    leaving = {s.name for s in old}
    for name in statement.twins:
        owner = _TWINS.get(name)
        if name.startswith("_") or not name.isidentifier():
            raise DbmlError(f"statement '{statement.name}' has a twin named {name!r}, which is not a method name")
        if (owner is None and hasattr(Connection, name)) or (owner is not None and owner not in leaving):
            what = f"statement '{owner}''s twin" if owner else "a method of Connection"
            raise DbmlError(f"statement '{statement.name}' has a twin named '{name}', which is {what} already")


def _install_twins(statement) -> None:
    for name, function in statement.twins.items():
        _TWINS[name] = statement.name
        setattr(Connection, name, _twin(name, function))


def _remove_twins(statement) -> None:
    for name in statement.twins:
        if _TWINS.get(name) == statement.name:
            del _TWINS[name]
            delattr(Connection, name)


_TWINS: dict[str, str] = {}  # Connection method -> the statement whose twin it is
for _statement in statements.STATEMENTS.values():
    _check_twins(_statement, [])
    _install_twins(_statement)
statements._checks.append(_check_twins)
statements._listeners.append(_install_twins)
statements._removers.append(_remove_twins)
_nested_names = itertools.count(1)


def _shifted(err: DbmlSyntaxError, sql: str, offset: int) -> DbmlSyntaxError:
    """A nested statement's syntax error, its line and column counted in the whole ``sql``."""
    line, col = err.line, err.col
    if line is None or col is None:
        return err
    before = sql[:offset]
    outer_line = before.count("\n") + 1
    outer_col = offset - (before.rfind("\n") + 1) + 1
    new_line, new_col = outer_line + line - 1, (outer_col + col - 1 if line == 1 else col)
    text = re.sub(r"at line \d+, column \d+", f"at line {new_line}, column {new_col}", str(err).removeprefix("dbml: "), count=1)
    return DbmlSyntaxError(text, line=new_line, col=new_col, token=err.token)


def _reference_key(reference: str) -> tuple:
    """One key per reference, whatever its spelling: the bare name and '@default' are one."""
    try:
        model, version, alias = parse_reference(reference)
    except DbmlError:
        return ("?", reference.strip().lower())
    return (model, version, alias or ("default" if version is None else None))


def parse_statement(sql: str):
    from dbml.dialect import parse_statement as parse

    return parse(sql)


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
    from dbml.udfs import parse_function_name

    match = re.search(r"Scalar Function with name (dbml_\w+) does not exist", str(err))
    if match is None or parse_function_name(match.group(1).lower()) is None:
        return None
    return match.group(1).lower()


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
