"""Per-version PREDICT / PREDICT_PROBA UDFs: vectorized Arrow functions around a
cached onnxruntime session.

``dbml_predict__<model>__v<N>(features...)``: the label (in the target's type) or the
value (DOUBLE). Example, after the rewrite of ``PREDICT(churn, *)``:
``SELECT dbml_predict__churn__v1(CAST("age" AS FLOAT), ...) FROM t``.

``dbml_proba__<model>__v<N>(features...)``: a STRUCT with one DOUBLE field per
class label, so ``PREDICT_PROBA(churn, *).yes`` reads one probability.
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
from dbml.runtime import arrow_feeds

__all__ = ["FUNCTIONS", "function_names", "parse_function_name", "register_version", "label_field"]

# name pattern -> one-line description, for documentation and SHOW FUNCTIONS-style listings
FUNCTIONS = {
    "dbml_predict__<model>__v<N>": "label or value of one model version; written as PREDICT(model, *)",
    "dbml_proba__<model>__v<N>": "STRUCT of class probabilities; written as PREDICT_PROBA(model, *)",
}

FUNCTION_NAME = re.compile(r"^dbml_(predict|proba)__(.+)__v(\d+)(?:__r\d+)?$")
_SQL_TYPES = {"VARCHAR": sqltypes.VARCHAR, "BOOLEAN": sqltypes.BOOLEAN, "BIGINT": sqltypes.BIGINT, "DOUBLE": sqltypes.DOUBLE}
_ARROW_TYPES = {"VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}


def function_names(model: str, version: int) -> tuple[str, str]:
    """(predict UDF name, predict_proba UDF name) of a model version.

    The two prefixes differ in their first word and the version is the last
    ``__v<digits>``, so no two (model, version, kind) share a name.
    """
    return f"dbml_predict__{model}__v{version}", f"dbml_proba__{model}__v{version}"


def parse_function_name(name: str) -> tuple[str, int] | None:
    """(model, version) of a dbml UDF name, or None."""
    match = FUNCTION_NAME.match(name)
    return (match.group(2), int(match.group(3))) if match else None


def _udf(session: ort.InferenceSession, features: Sequence[FeatureSpec], output: str, convert: Callable[[np.ndarray], pa.Array]):
    features = tuple(features)

    def udf(*columns):
        out = session.run([output], arrow_feeds(features, columns))[0]
        return convert(out)

    # DuckDB takes a UDF's arity from its signature, so give it one parameter per feature.
    udf.__signature__ = inspect.Signature(
        [inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(features))]
    )
    return udf


def register_version(
    con: duckdb.DuckDBPyConnection,
    model: str,
    version: int,
    features: Sequence[FeatureSpec],
    task: str,
    labels: list[Any] | None,
    predict_type: str,
    session: ort.InferenceSession,
) -> tuple[str, str | None]:
    """Create (or re-create) the UDFs of one model version on ``con``.

    Returns the predict and predict_proba function names actually registered (None
    when the model has no class probabilities): normally those of
    :func:`function_names`, with a ``__r<k>`` suffix when DuckDB holds the plain name
    after a ROLLBACK removed it from the catalog (it can then be neither removed nor
    created again on that connection).
    """
    predict_name, proba_name = function_names(model, version)
    params = [sqltypes.VARCHAR if f.kind == "category" else sqltypes.FLOAT for f in features]
    arrow_type = _ARROW_TYPES[predict_type]
    if task == "classification":
        # Take the label in Arrow from the probabilities (columns in label order): onnxruntime
        # skips ArgMax/Gather and no Python object is built per row (about 5% faster, measured
        # with benchmarks/predict.py). The graph's own `label` output gives the same answer.
        output = "probabilities"
        classes = pa.array(labels, type=arrow_type)

        def convert(out: np.ndarray) -> pa.Array:
            return classes.take(pa.array(out.argmax(axis=1)))
    else:
        output = "value"

        def convert(out: np.ndarray) -> pa.Array:
            return pa.array(out.reshape(-1).astype(np.float64), type=pa.float64())

    predict_name = _create(con, predict_name, _udf(session, features, output, convert), params, _SQL_TYPES[predict_type])
    if task != "classification":
        return predict_name, None

    names = [label_field(label) for label in labels or []]

    def convert_proba(out: np.ndarray) -> pa.Array:
        out = out.astype(np.float64)
        return pa.StructArray.from_arrays([pa.array(out[:, k]) for k in range(len(names))], names=names)

    struct = duckdb.struct_type({n: sqltypes.DOUBLE for n in names})
    proba_name = _create(con, proba_name, _udf(session, features, "probabilities", convert_proba), params, struct)
    return predict_name, proba_name


def label_field(label: Any) -> str:
    """The STRUCT field name of a class label: 'true'/'false' for booleans, else its text."""
    if isinstance(label, bool):
        return "true" if label else "false"
    return str(label)


def _create(con: duckdb.DuckDBPyConnection, name: str, fn, params, return_type) -> str:
    for attempt in range(16):
        candidate = name if attempt == 0 else f"{name}__r{attempt}"
        try:
            con.remove_function(candidate)
        except duckdb.Error:
            pass  # not there: the usual case
        try:
            con.create_function(
                candidate, fn, params, return_type, type="arrow", null_handling="special", side_effects=False
            )
            return candidate
        except duckdb.NotImplementedException:
            continue  # the name is stuck on this connection (see register_version)
    raise duckdb.NotImplementedException(f"could not register {name} on this connection")
