"""The scoring functions, in one table.

Each :class:`Output` is one SQL function a user writes (``PREDICT(m, *)``,
``EMBED(m, *)``, ...): the graph output it reads, the SQL type it returns and how
onnxruntime's array becomes an Arrow column. The dialect, the rewriter, UDF
registration and the connection's function cache loop over :data:`OUTPUTS`; none of
them names a function.

A version offers the functions whose graph output its ONNX graph has (an
autoencoder has ``anomaly_score`` and ``is_anomaly``; every dbml network has
``embedding``; an imported file has what its layout maps). Which output PREDICT and
PREDICT_PROBA read, PREDICT's type and its conversion are the version's task's
(:meth:`dbml.tasks.Task.predict_output` and the rest). Nothing here imports torch.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from dbml.errors import FeatureError

# numpy, pyarrow and the kinds load with the first conversion: the splitter and the shell
# read the names of this table without them

__all__ = ["Output", "OUTPUTS", "BY_FUNCTION", "FUNCTION_NAMES", "VersionInfo", "label_field", "offered", "not_offered",
           "arrow_type", "floats", "labels_convert"]  # fmt: skip


def label_field(label: Any) -> str:
    """The STRUCT field name of a class label: 'true'/'false' for booleans, else its text."""
    if isinstance(label, bool):
        return "true" if label else "false"
    return str(label)


@dataclass(frozen=True)
class VersionInfo:
    """What an output needs to know of one version to type and convert its column.

    Attributes:
        task: the version's task.
        labels: class labels in output order (classification), else None.
        predict_type: the SQL type PREDICT's UDF returns (the target's label type,
            or DOUBLE).
        graph_outputs: {ONNX output name: trailing dimensions} of the graph.
    """

    task: str
    labels: tuple[Any, ...] | None
    predict_type: str
    graph_outputs: dict[str, tuple[int | str, ...]]


# SQL types as DuckDB hands them to Arrow: what the functions return, and the class targets
# PREDICT casts its label to (HUGEINT is a 38-digit DECIMAL in Arrow; DATE and the naive
# TIMESTAMP types as dbml.kinds.clock reads their labels)
@functools.lru_cache(maxsize=1)
def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    from dbml.kinds.clock import LABEL_TYPES

    return {
        "VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "FLOAT": pa.float32(),
        "TINYINT": pa.int8(), "SMALLINT": pa.int16(), "INTEGER": pa.int32(), "HUGEINT": pa.decimal128(38, 0),
        "UTINYINT": pa.uint8(), "USMALLINT": pa.uint16(), "UINTEGER": pa.uint32(), "UBIGINT": pa.uint64(),
        **LABEL_TYPES,
    }  # fmt: skip


def arrow_type(spec: str | dict[str, str]) -> pa.DataType:
    """The Arrow type of a SQL type as the outputs table spells it (a STRUCT is a dict of
    fields, FLOAT[k] a fixed-size list), as DuckDB exports it.

    Raises:
        KeyError: a type no scoring function returns.
    """
    import pyarrow as pa

    if isinstance(spec, dict):
        return pa.struct([(name, arrow_type(t)) for name, t in spec.items()])
    m = re.fullmatch(r"(\w+)\[(\d*)\]", spec.strip())
    if m:
        element = arrow_type(m.group(1))
        return pa.list_(element, int(m.group(2))) if m.group(2) else pa.list_(element)
    return _arrow_types()[spec.strip().upper()]


def _task(info: VersionInfo):
    from dbml.tasks import Task, task_of

    return task_of(info.task) or Task()  # a task unknown here: the base task's plain value


def _predict_source(info: VersionInfo) -> str | None:
    return _task(info).predict_output(info)


def _predict_type(info: VersionInfo) -> str:
    return _task(info).predict_type(info)


def floats(width: int) -> Callable[[np.ndarray], pa.Array]:
    """onnxruntime's [N, width] float array -> a FLOAT[width] column."""
    import numpy as np
    import pyarrow as pa

    def convert(out: np.ndarray) -> pa.Array:
        flat = np.ascontiguousarray(out, dtype=np.float32).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), width)

    return convert


def labels_convert(info: VersionInfo) -> Callable[[np.ndarray], pa.Array]:
    """onnxruntime's [N, K] class probabilities -> the label of the largest, in the
    version's label type."""
    import numpy as np
    import pyarrow as pa

    classes = pa.array(list(info.labels or ()), type=_arrow_types()[info.predict_type])
    if pa.types.is_string(classes.type):
        # text labels as a dictionary array over the labels: DuckDB reads it as VARCHAR
        # without a string per row from Python (about 50 us less per 2,048-row batch)
        return lambda out: pa.DictionaryArray.from_arrays(pa.array(out.argmax(axis=1).astype(np.int32)), classes)
    return lambda out: classes.take(pa.array(out.argmax(axis=1)))


def _predict_convert(info: VersionInfo) -> Callable[[np.ndarray], pa.Array]:
    return _task(info).predict_convert(info)


def _proba_source(info: VersionInfo) -> str | None:
    return _task(info).proba_output(info)


def _proba_type(info: VersionInfo) -> dict[str, str]:
    return {label_field(v): "DOUBLE" for v in info.labels or ()}


def _proba_convert(info: VersionInfo) -> Callable[[np.ndarray], pa.Array]:
    import numpy as np
    import pyarrow as pa

    names = [label_field(v) for v in info.labels or ()]

    def convert(out: np.ndarray) -> pa.Array:
        out = out.astype(np.float64)
        return pa.StructArray.from_arrays([pa.array(out[:, k]) for k in range(len(names))], names=names)

    return convert


def _embed_type(info: VersionInfo) -> str:
    return f"FLOAT[{int(info.graph_outputs['embedding'][0])}]"


def _embed_convert(info: VersionInfo) -> Callable[[np.ndarray], pa.Array]:
    return floats(int(info.graph_outputs["embedding"][0]))


def _double(out: np.ndarray) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    return pa.array(out.reshape(-1).astype(np.float64), type=pa.float64())


def _boolean(out: np.ndarray) -> pa.Array:
    import pyarrow as pa

    return pa.array(out.reshape(-1).astype(bool), type=pa.bool_())


@dataclass(frozen=True)
class Output:
    """One scoring function.

    Attributes:
        function: the SQL name users write.
        udf: the word in its per-version UDF names (``dbml_<udf>__<model>__v<N>__<sha8>``).
        graph_output: the ONNX output it reads, or a callable choosing it per version
            (None: the version does not offer the function).
        sql_type: the SQL type it returns for a version (a STRUCT is a dict of fields).
        convert: for a version, onnxruntime's array -> the Arrow column DuckDB receives.
        description: one line for users.
        needs: what a model must be to offer it, for the refusal message.
        column: the name of its result column outside DuckDB (:func:`dbml.score`,
            :mod:`dbml.integrations.spark`).
    """

    function: str
    udf: str
    graph_output: str | Callable[[VersionInfo], str | None]
    sql_type: Callable[[VersionInfo], str | dict[str, str]]
    convert: Callable[[VersionInfo], Callable[[np.ndarray], pa.Array]]
    description: str
    needs: str
    column: str = ""

    def source(self, info: VersionInfo) -> str | None:
        """The graph output this function reads for ``info``, or None if not offered."""
        if callable(self.graph_output):
            return self.graph_output(info)
        return self.graph_output if self.graph_output in info.graph_outputs else None


OUTPUTS: tuple[Output, ...] = (
    Output("PREDICT", "predict", _predict_source, _predict_type, _predict_convert,
           "the label (in the target's type), the value, an autoencoder's anomaly score, or a forecaster's "
           "next values (FLOAT[horizon]) from a history list",
           "a trained model", column="prediction"),
    Output("PREDICT_PROBA", "proba", _proba_source, _proba_type, _proba_convert,
           "a STRUCT of class probabilities, one DOUBLE field per label",
           "a classification model", column="probabilities"),
    Output("EMBED", "embed", "embedding", _embed_type, _embed_convert,
           "FLOAT[k]: the last hidden layer (an autoencoder's bottleneck)",
           "a model trained by dbml with an embedding output (imported files have none; versions "
           "trained before EMBED existed neither: retrain them)", column="embedding"),
    Output("ANOMALY_SCORE", "score", "anomaly_score", lambda i: "DOUBLE", lambda i: _double,
           "DOUBLE: how unusual the row is (mean squared reconstruction error, each value scaled by its typical error on held-out rows; higher is more unusual)",
           "an anomaly model (TRAIN MODEL ... USING autoencoder, without TARGET)", column="anomaly_score"),
    Output("IS_ANOMALY", "anomaly", "is_anomaly", lambda i: "BOOLEAN", lambda i: _boolean,
           "BOOLEAN: the anomaly score above the threshold fixed at training from `contamination`",
           "an anomaly model (TRAIN MODEL ... USING autoencoder, without TARGET)", column="is_anomaly"),
)  # fmt: skip

BY_FUNCTION: dict[str, Output] = {o.function: o for o in OUTPUTS}
FUNCTION_NAMES: tuple[str, ...] = tuple(o.function for o in OUTPUTS)


def offered(info: VersionInfo) -> dict[str, str]:
    """{SQL function: graph output} of the functions a version offers."""
    out = {}
    for o in OUTPUTS:
        source = o.source(info)
        if source is not None:
            out[o.function] = source
    return out


def not_offered(function: str, who: str, task: str | None, functions: Iterable[str]) -> FeatureError:
    """The refusal of a function a version does not offer, naming what it needs and the
    functions the version does offer (``who``: "model 'churn' (version 3)")."""
    task = task or "unknown"
    article = "an" if task[:1].lower() in "aeiou" else "a"
    message = f"{function} needs {BY_FUNCTION[function].needs}; {who} is {article} {task} model"
    functions = set(functions)
    offers = [f for f in FUNCTION_NAMES if f in functions]
    if offers:
        message += ": use " + (offers[0] if len(offers) == 1 else f"{', '.join(offers[:-1])} or {offers[-1]}")
    return FeatureError(message)
