"""Per-version scoring UDFs: vectorized Arrow functions around a cached onnxruntime
session, one per function of :data:`dbml.outputs.OUTPUTS` the version offers.

``dbml_<word>__<model>__v<N>__<sha8>(features...)``, with the word of the function
(predict, proba, embed, score, anomaly). Example, after the rewrite of
``PREDICT(churn, *)``: ``SELECT dbml_predict__churn__v1__6628044f(CAST("age" AS FLOAT), ...) FROM t``.
What each returns (type and Arrow conversion) is the outputs table's.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Sequence

import duckdb
import numpy as np
import onnxruntime as ort
import pyarrow as pa
from duckdb import sqltypes

from dbml.features import FeatureSpec
from dbml.registry.foreign import imported_feeds, imported_output, imported_proba
from dbml.kinds import kind_of
from dbml.outputs import BY_FUNCTION, OUTPUTS, VersionInfo, label_field
from dbml.runtime import ScoringSession, run_bounded

__all__ = ["FUNCTIONS", "function_names", "function_digest", "parse_function_name", "register_version",
           "register_imported", "label_field", "version_info", "sql_type"]  # fmt: skip

# name pattern -> one-line description, for documentation and SHOW FUNCTIONS-style listings
FUNCTIONS = {f"dbml_{o.udf}__<model>__v<N>": f"{o.description}; written as {o.function}(model, *)" for o in OUTPUTS}

# dbml_<word>__<model>__v<N>[__<sha256 prefix>]; names without the digest (and with a
# __r<k> suffix) come from earlier releases and still appear in stored views; __t<k>
# names live inside one user transaction.
_WORDS = "|".join(o.udf for o in OUTPUTS)
FUNCTION_NAME = re.compile(rf"^dbml_({_WORDS})__(.+)__v(\d+)(?:__([0-9a-f]{{8}}))?(?:__[rt]\d+)?$")
_SQL_TYPES = {"VARCHAR": sqltypes.VARCHAR, "BOOLEAN": sqltypes.BOOLEAN, "BIGINT": sqltypes.BIGINT, "DOUBLE": sqltypes.DOUBLE,
              "FLOAT": sqltypes.FLOAT}  # fmt: skip


def function_names(model: str, version: int, sha256: str | None = None) -> dict[str, str]:
    """{SQL function: UDF name} of a model version, for every function of the table.

    The prefixes differ in their first word and the version is ``__v<digits>``, so no
    two (model, version, function) share a name. The blob's digest prefix ends the
    name: functions live in the database instance's catalog, shared by every
    connection of the process, and a name then always means one blob.
    """
    tail = f"__{sha256[:8]}" if sha256 else ""
    return {o.function: f"dbml_{o.udf}__{model}__v{version}{tail}" for o in OUTPUTS}


def parse_function_name(name: str) -> tuple[str, int] | None:
    """(model, version) of a dbml UDF name, or None."""
    match = FUNCTION_NAME.match(name)
    return (match.group(2), int(match.group(3))) if match else None


def function_digest(name: str) -> str | None:
    """The sha256 prefix a dbml UDF name carries (None for names of earlier releases)."""
    match = FUNCTION_NAME.match(name)
    return match.group(4) if match else None


def sql_type(spec: str | dict[str, str]) -> duckdb.DuckDBPyType:
    """A DuckDB type from the outputs table's spelling (a STRUCT is a dict of fields)."""
    if isinstance(spec, dict):
        return duckdb.struct_type({k: sql_type(v) for k, v in spec.items()})
    m = re.fullmatch(r"(\w+)\[(\d*)\]", spec)
    if m:
        element = _SQL_TYPES[m.group(1)]
        return duckdb.array_type(element, int(m.group(2))) if m.group(2) else duckdb.list_type(element)
    return _SQL_TYPES[spec]


def version_info(task: str, labels: list[Any] | None, predict_type: str, session: ort.InferenceSession) -> VersionInfo:
    """What the outputs table needs of a version, its graph outputs read from the session."""
    outputs = {o.name: tuple(o.shape[1:]) if o.shape else () for o in session.get_outputs()}
    return VersionInfo(task, tuple(labels) if labels is not None else None, predict_type, outputs)


def _udf(scoring: ScoringSession, output: str, convert: Callable[[np.ndarray], pa.Array], what: str):
    session, feeds, outputs = scoring.session, scoring.feeds, [output]

    def udf(*columns):
        return convert(run_bounded(session, outputs, feeds(columns), what)[0])

    return _with_arity(udf, len(scoring.features))


def _with_arity(udf: Callable, n: int) -> Callable:
    """DuckDB takes a UDF's arity from its signature, so give it one parameter per feature."""
    udf.__signature__ = inspect.Signature(
        [inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(n)]
    )
    return udf


def register_version(
    con: duckdb.DuckDBPyConnection,
    model: str,
    version: int,
    features: Sequence[FeatureSpec],
    info: VersionInfo,
    scoring: ScoringSession,
    names: dict[str, str],
) -> dict[str, str]:
    """Create the UDFs ``names`` ({SQL function: UDF name}) of one model version on
    ``con`` (a connection outside any user transaction, so a ROLLBACK cannot take
    them), unless they exist already; each scores with ``scoring`` (the version's
    packed graph, see :func:`dbml.runtime.scoring_session_for`). Returns the names, as given."""
    what = f"model '{model}' version {version}"
    params = [kind_of(f).udf_type(f) for f in features]
    for function, name in names.items():
        out = BY_FUNCTION[function]
        source = out.source(info)
        udf = _udf(scoring, source, out.convert(info), what)
        _create(con, name, udf, params, sql_type(out.sql_type(info)))
    return dict(names)


def register_imported(
    con: duckdb.DuckDBPyConnection,
    model: str,
    version: int,
    features: Sequence[FeatureSpec],
    options: dict[str, Any],
    predict_type: str,
    session: ort.InferenceSession,
    names: dict[str, str],
) -> dict[str, str]:
    """Create the UDFs of a version imported from a foreign ONNX file.

    ``options`` is the version's stored layout (:func:`dbml.registry.foreign.describe_graph`):
    which columns feed which graph input (stacked in order for an ``[N, F]`` input), in
    which dtype; the output PREDICT returns; the probabilities output, if any.
    ``names``: {SQL function: UDF name} of the functions to create (PREDICT, and
    PREDICT_PROBA when the layout has probabilities). Returns the names created.
    """
    features = tuple(features)
    what = f"imported model '{model}' version {version}"
    params = [kind_of(f).udf_type(f) for f in features]  # an imported input's type (numbers: DOUBLE)
    feeds = imported_feeds(features, options, what)

    def make(output: str, convert: Callable[[np.ndarray, int], pa.Array]):
        def udf(*columns):
            n = len(columns[0])
            return convert(run_bounded(session, [output], feeds(columns), what)[0], n)

        return _with_arity(udf, len(features))

    as_list = bool(options["output"].get("list"))
    element = predict_type[:-2] if as_list else predict_type
    convert = imported_output(options, predict_type, what)
    return_type = duckdb.list_type(_SQL_TYPES[element]) if as_list else _SQL_TYPES[element]
    made = {"PREDICT": _create(con, names["PREDICT"], make(options["output"]["name"], convert), params, return_type)}
    proba = imported_proba(options)
    if proba is None or "PREDICT_PROBA" not in names:
        return made
    output, fields, convert_proba = proba
    struct = duckdb.struct_type({f: sqltypes.DOUBLE for f in fields})
    made["PREDICT_PROBA"] = _create(con, names["PREDICT_PROBA"], make(output, convert_proba), params, struct)
    return made


# Every function ever handed to DuckDB, kept alive for the process: DuckDB 2.0.1 lets the
# connection that created a function own the Python callable, yet other connections of the
# same database keep calling it from the shared catalog after that connection closes
# (measured: a segmentation fault without this reference).
_ALIVE: list[Callable] = []


def _create(con: duckdb.DuckDBPyConnection, name: str, fn, params, return_type) -> str:
    """Create one function; another connection of the same database may have created
    it a moment ago (the catalog is shared), which is as good."""
    _ALIVE.append(fn)
    try:
        con.create_function(name, fn, params, return_type, type="arrow", null_handling="special", side_effects=False)
    except duckdb.CatalogException as err:
        if "already exists" not in str(err):
            raise
    return name
