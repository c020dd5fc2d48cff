"""The context a statement handler gets: what it may use of the connection, nothing more.

A handler runs SQL on this thread's DuckDB connection (:meth:`Context.db`, or
:meth:`Context.scoped` when the SQL reads the caller's Python objects), reads and writes
the registry, rewrites PREDICT and its kin (each model reference resolved once for the
whole statement, so a statement scores with one version of a model even while another
connection moves its alias), and binds the statement's parameters. It never sees the
``Connection``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import duckdb

    from dbml.outputs import VersionInfo
    from dbml.registry import Registry

__all__ = ["Context", "Host"]


class Host(Protocol):
    """What a context is made from (the connection implements it)."""

    registry: "Registry"

    def db(self) -> "duckdb.DuckDBPyConnection": ...

    def scoped(self) -> Any: ...

    def rewrite(self, sql: str, used: list | None = None, *, resolved: dict | None = None) -> str: ...

    def session(self, rec: dict[str, Any]) -> Any: ...

    def version_info(self, rec: dict[str, Any]) -> "VersionInfo": ...

    def forget_functions(self, model: str, versions: list[int]) -> None: ...

    def compose(self, sql: str, ctx: "Context") -> str: ...


class Context:
    """A statement's view of the connection.

    Attributes:
        params: the statement's parameters, named (see
            :func:`dbml.statements.base.numbered_parameters`), or None.
        registry: the registry of the database.
    """

    def __init__(self, host: Host, params: dict[str, Any] | None = None, resolved: dict | None = None,
                 results: list | None = None):  # fmt: skip
        self._host = host
        self.params = params
        # model reference -> signature, and reference -> version pinned: once per statement
        self._resolved: dict = {} if resolved is None else resolved
        # (connection, name) of the rows of statements nested in a query: shared with the
        # contexts of nested statements, so the outermost one removes them all
        self._results: list[tuple[Any, str]] = [] if results is None else results

    @property
    def registry(self) -> "Registry":
        return self._host.registry

    @property
    def duckdb(self) -> "duckdb.DuckDBPyConnection":
        """This thread's DuckDB connection itself (as ``Connection.duckdb``)."""
        return self._host.db()

    def db(self) -> "duckdb.DuckDBPyConnection":
        """This thread's DuckDB connection (``sql`` and ``execute`` bind the statement's
        parameters that the SQL uses, unless given others)."""
        return _Binding(self._host.db(), self.params, self._resolved)

    def scoped(self):
        """This thread's DuckDB connection, running SQL in the caller's Python scope (so a
        query may read the caller's DataFrames by name), parameters bound as :meth:`db`."""
        return _Binding(self._host.scoped(), self.params, self._resolved)

    def rewrite(self, sql: str) -> str:
        """``sql`` as DuckDB runs it: ML statements nested in it run first (their rows
        are read by name), and PREDICT and its kin become per-version UDF calls. Model
        references resolve once for the whole statement."""
        return self._host.rewrite(self._host.compose(sql, self), resolved=self._resolved)

    def sql(self, sql: str, *, scoped: bool = True):
        """Run ``sql`` (already rewritten) with the statement's parameters that it uses."""
        return (self.scoped() if scoped else self.db()).sql(sql)

    def query(self, sql: str):
        """:meth:`rewrite` then :meth:`sql`: a relation over ``sql``."""
        return self.sql(self.rewrite(sql))

    def session(self, rec: dict[str, Any]):
        """The verified onnxruntime session of a version (cached by its sha256)."""
        return self._host.session(rec)

    def version_info(self, rec: dict[str, Any]) -> "VersionInfo":
        """What a version's graph offers (its outputs, and so its SQL functions)."""
        return self._host.version_info(rec)

    def forget_functions(self, model: str, versions: list[int]) -> None:
        """Drop the UDFs of versions that are gone."""
        self._host.forget_functions(model, versions)

    def child(self) -> "Context":
        """A context for a statement nested in this one's query (the same resolutions, and
        its nested rows removed with this one's)."""
        return Context(self._host, self.params, self._resolved, self._results)

    def holds_rows(self) -> bool:
        """Whether rows of nested statements are registered for this statement (a relation
        over them must be read before :meth:`close`)."""
        return bool(self._results)

    def record(self, reference: str, version: int | None = None) -> dict[str, Any]:
        """The registry record of a model reference ('m', 'm:3', 'm@alias'; ``version``
        pins one too), resolved once per statement: every reference to one model in one
        statement, PREDICT's included, reads the same version even while another
        connection moves an alias."""
        from dbml.names import parse_reference

        model, pinned, alias = parse_reference(reference)
        version = version or pinned
        key = ("pin", model, version, alias or ("default" if version is None else None))
        if key in self._resolved:
            return self.registry.get(model, self._resolved[key])
        rec = self.registry.get(model, version, alias)
        self._resolved[key] = rec["version"]
        return rec

    def keep(self, con: Any, name: str) -> None:
        """Remember a name registered on ``con`` for the rows of a nested statement."""
        self._results.append((con, name))

    def close(self) -> None:
        """Unregister the rows of nested statements."""
        while self._results:
            con, name = self._results.pop()
            try:
                con.unregister(name)
            except Exception:  # noqa: BLE001 - the connection may be closed already
                pass


class _Binding:
    """A DuckDB connection whose ``sql`` and ``execute`` bind, when given no parameters,
    the statement's named parameters that the SQL text uses (DuckDB refuses extra ones),
    and name the model and column when DuckDB misses a feature column a scoring call of
    the statement reads."""

    def __init__(self, con: Any, params: dict[str, Any] | None, resolved: dict):
        self._con, self._params, self._resolved = con, params, resolved

    def _bound(self, query: Any) -> Any:
        if not self._params or not isinstance(query, str):
            return None
        from dbml.script import mask
        from dbml.statements.base import parameters_for

        return parameters_for(mask(query), self._params)

    def _run(self, call):
        import duckdb

        try:
            return call()
        except duckdb.BinderException as err:
            from dbml.rewrite import missing_feature

            signatures = [v for v in self._resolved.values() if hasattr(v, "features")]
            raise missing_feature(err, signatures) or err

    def sql(self, query: Any, params: Any = None, **kwargs: Any):
        return self._run(lambda: self._con.sql(query, params=params if params is not None else self._bound(query), **kwargs))

    def execute(self, query: Any, parameters: Any = None):
        return self._run(lambda: self._con.execute(query, parameters if parameters is not None else self._bound(query)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)
