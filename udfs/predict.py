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
import pyarrow.compute as pc
from duckdb import sqltypes

from dbml.features import FeatureSpec
from dbml.kinds import KINDS
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
_ARROW_TYPES = {"VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}


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
    params = [KINDS[f.kind].udf_type(f) for f in features]
    for function, name in names.items():
        out = BY_FUNCTION[function]
        source = out.source(info)
        udf = _udf(scoring, source, out.convert(info), what)
        _create(con, name, udf, params, sql_type(out.sql_type(info)))
    return dict(names)


def _imported_column(values: pa.Array | pa.ChunkedArray, feature: FeatureSpec, dtype: str, what: str) -> np.ndarray:
    """One encoded column (DOUBLE, or VARCHAR for strings) in the graph input's dtype."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if dtype == "string":
        if values.null_count:
            values = pc.fill_null(values.cast(pa.string()), "")
        return values.to_numpy(zero_copy_only=False).astype(object)
    if values.null_count:
        if dtype not in ("float32", "float64"):
            raise ValueError(
                f"dbml: column '{feature.name}' has NULLs, but input '{feature.onnx_input}' of {what} takes {dtype}, "
                "which has no NULL: filter or fill them (coalesce) first"
            )
        values = pc.fill_null(values, float("nan"))
    array = values.to_numpy(zero_copy_only=False)
    return array != 0 if dtype == "bool" else array.astype(dtype, copy=False)


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

    ``options`` is the version's stored layout (:func:`dbml.foreign.describe_graph`):
    which columns feed which graph input (stacked in order for an ``[N, F]`` input), in
    which dtype; the output PREDICT returns; the probabilities output, if any.
    ``names``: {SQL function: UDF name} of the functions to create (PREDICT, and
    PREDICT_PROBA when the layout has probabilities). Returns the names created.
    """
    features = tuple(features)
    what = f"imported model '{model}' version {version}"
    position = {f.name: i for i, f in enumerate(features)}
    layout = [(g["name"], g["dtype"], len(g["shape"]), [position[c] for c in g["columns"]]) for g in options["graph_inputs"]]
    params = [sqltypes.VARCHAR if f.kind == "category" else sqltypes.DOUBLE for f in features]

    def feeds(columns) -> dict[str, np.ndarray]:
        out = {}
        for name, dtype, rank, indices in layout:
            arrays = [_imported_column(columns[i], features[i], dtype, what) for i in indices]
            out[name] = arrays[0] if rank == 1 else np.stack(arrays, axis=1)
        return out

    def make(output: str, convert: Callable[[np.ndarray, int], pa.Array]):
        def udf(*columns):
            n = len(columns[0])
            return convert(run_bounded(session, [output], feeds(columns), what)[0], n)

        return _with_arity(udf, len(features))

    as_list = bool(options["output"].get("list"))
    element = predict_type[:-2] if as_list else predict_type
    arrow_type = _ARROW_TYPES[element]

    def convert(out: np.ndarray, n: int) -> pa.Array:
        out = np.asarray(out)
        if as_list:
            flat = out.reshape(n, -1)
            width = flat.shape[1]
            values = _typed(flat.reshape(-1), element, arrow_type)
            return pa.ListArray.from_arrays(pa.array(np.arange(0, n * width + 1, width, dtype=np.int32)), values)
        if out.size != n:
            raise ValueError(f"dbml: output '{options['output']['name']}' of {what} gave {out.size} values for {n} rows")
        return _typed(out.reshape(-1), element, arrow_type)

    return_type = duckdb.list_type(_SQL_TYPES[element]) if as_list else _SQL_TYPES[element]
    made = {"PREDICT": _create(con, names["PREDICT"], make(options["output"]["name"], convert), params, return_type)}
    proba = options.get("proba")
    if not proba or "PREDICT_PROBA" not in names:
        return made
    fields = list(proba["fields"])

    def convert_proba(out: np.ndarray, n: int) -> pa.Array:
        out = np.asarray(out, dtype=np.float64).reshape(n, len(fields))
        return pa.StructArray.from_arrays([pa.array(out[:, k]) for k in range(len(fields))], names=fields)

    struct = duckdb.struct_type({f: sqltypes.DOUBLE for f in fields})
    made["PREDICT_PROBA"] = _create(con, names["PREDICT_PROBA"], make(proba["name"], convert_proba), params, struct)
    return made


def _typed(values: np.ndarray, sql_type: str, arrow_type: pa.DataType) -> pa.Array:
    if sql_type == "DOUBLE":
        return pa.array(values.astype(np.float64, copy=False), type=arrow_type)
    if sql_type == "BIGINT":
        return pa.array(values.astype(np.int64, copy=False), type=arrow_type)
    if sql_type == "BOOLEAN":
        return pa.array(values.astype(bool, copy=False), type=arrow_type)
    return pa.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], type=arrow_type)


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
