"""Spark DataFrames scored with a file EXPORT MODEL wrote (or a foreign ONNX file): one
column added through ``DataFrame.mapInArrow``, with the answers PREDICT gives in SQL.

    import dbml.integrations.spark
    scored = dbml.integrations.spark.predict(df, "s3://models/churn.onnx", sha256="...")
    scored = dbml.integrations.spark.predict_proba(scored, "s3://models/churn.onnx")  # one double per class

On the driver, before any task runs: the file is read, verified and checked
(:func:`dbml.load_model`); the DataFrame must have every feature column (matched as
``PREDICT(m, *)`` matches them: without regard to case) of a type the feature takes;
the new column's Spark type is PREDICT's SQL type (VARCHAR -> StringType, BOOLEAN ->
BooleanType, BIGINT -> LongType, INTEGER -> IntegerType, DOUBLE -> DoubleType, DATE ->
DateType, TIMESTAMP -> TimestampNTZType, FLOAT[k] -> ArrayType(FloatType),
PREDICT_PROBA's STRUCT -> StructType of DoubleType, ...); for a model with a date or time
feature, the session's time zone is checked (see below).

The checked bytes travel once, inside the function Spark ships to its Python workers
(PySpark broadcasts a large one); each worker process loads them once, under the
driver's max_size, and keeps the Scorers of the few models it scored last. Workers
import dbml's scoring modules, onnxruntime, pyarrow and numpy: neither DuckDB nor torch.

Time: a Spark TimestampType column holds instants. Where the model was trained on a
wall clock (TIMESTAMP, DATE) they are read in the Spark session's time zone
(``spark.sql.session.timeZone``), as DuckDB reads a TIMESTAMPTZ in its TimeZone setting:
an IANA name or a fixed offset (``+02:00``, ``GMT+2``, ``Z``) as Spark reads it; a zone
Spark knows and dbml does not (Java's short ids such as ``PST``) is refused on the driver.

pyspark is an optional dependency: ``pip install 'dbml[spark]'``.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pyarrow as pa

from dbml.errors import FeatureError, OptionError
from dbml.kinds import kind_of
from dbml.scoring import Scorer, as_scorer, check_timezone, load_model

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["predict", "predict_proba", "scoring_function", "spark_type", "train"]


def train(df: DataFrame, model: str, target: str | None = None, registry: str = "dbml.duckdb", **kwargs: Any) -> dict[str, Any]:
    """TRAIN MODEL on a Spark DataFrame through TorchDistributor, recorded in the DuckDB
    file ``registry`` (see :mod:`dbml.integrations.spark_train`; needs torch)."""
    from dbml.integrations.spark_train import train as run

    return run(df, model, target, registry, **kwargs)

# in each Python worker: (sha256 of the bytes, inputs, max_size) -> its Scorer, the most recently used few
_workers: OrderedDict[tuple[str, tuple[str, ...] | None, int], Scorer] = OrderedDict()
_WORKER_MODELS = 4
_workers_lock = threading.Lock()


def predict(df: DataFrame, model: Any, output: str = "prediction", sha256: str | None = None, size: int | None = None,
            *, inputs: Sequence[str] | None = None) -> DataFrame:  # fmt: skip
    """``df`` with a column ``output``: PREDICT(model, *) of each row, in the target's type.

    Args:
        df: the rows to score; its columns beyond the model's features are kept as they are.
        model: a path, an fsspec URL, the file's bytes, or a :class:`dbml.Scorer`.
        output: the new column's name.
        sha256, size: EXPORT MODEL's digest and byte count, checked before the file is parsed.
        inputs: a foreign file's feature column names (see :func:`dbml.load_model`).

    Raises:
        FeatureError: a feature column missing from ``df`` or of a Spark type its feature
            cannot take (naming it), raised here, before any Spark job.
        OptionError: a session time zone dbml cannot read, for a model with a date or
            time feature (before any Spark job).
        TransferError, IntegrityError, RecordError, TargetError: see :func:`dbml.load_model`.
    """
    return _with_column(df, model, "PREDICT", output, sha256, size, inputs)


def predict_proba(df: DataFrame, model: Any, output: str = "probabilities", sha256: str | None = None,
                  size: int | None = None, *, inputs: Sequence[str] | None = None) -> DataFrame:  # fmt: skip
    """``df`` with a column ``output``: PREDICT_PROBA(model, *), a struct with one double
    per class, its fields named as SQL names them (``'yes'``, ``'true'``, ``'3'``).
    Arguments and errors as :func:`predict`."""
    return _with_column(df, model, "PREDICT_PROBA", output, sha256, size, inputs)


def spark_type(sql_type: str | dict[str, str]):
    """The Spark type of a scoring function's SQL type (a STRUCT is a dict of fields).

    Raises:
        OptionError: a type Spark cannot hold.
    """
    from pyspark.sql import types as T

    if isinstance(sql_type, dict):
        return T.StructType([T.StructField(name, spark_type(t), True) for name, t in sql_type.items()])
    t = sql_type.strip().upper()
    if t.endswith("]"):
        return T.ArrayType(spark_type(t[: t.index("[")]), True)
    simple = {
        "VARCHAR": T.StringType(), "BOOLEAN": T.BooleanType(), "TINYINT": T.ByteType(), "SMALLINT": T.ShortType(),
        "INTEGER": T.IntegerType(), "BIGINT": T.LongType(), "HUGEINT": T.DecimalType(38, 0), "FLOAT": T.FloatType(),
        "DOUBLE": T.DoubleType(), "UTINYINT": T.ShortType(), "USMALLINT": T.IntegerType(), "UINTEGER": T.LongType(),
        "UBIGINT": T.DecimalType(20, 0), "DATE": T.DateType(), "TIMESTAMP": T.TimestampNTZType(),
        "TIMESTAMP_S": T.TimestampNTZType(), "TIMESTAMP_MS": T.TimestampNTZType(),
    }  # fmt: skip
    if t == "TIMESTAMP_NS":
        raise OptionError(f"the SQL type {sql_type} holds nanoseconds, which Spark's TimestampNTZType (microseconds) cannot")
    if t not in simple:
        raise OptionError(f"the SQL type {sql_type} has no Spark type dbml knows")
    return simple[t]


def _pyspark():
    try:
        from pyspark.sql import types
        from pyspark.sql.pandas.types import to_arrow_type
    except ImportError as err:
        raise ImportError(f"dbml.spark needs pyspark: pip install 'dbml[spark]' ({err})") from None
    return types, to_arrow_type


def scoring_function(df: DataFrame, model: Any, function: str = "PREDICT", output: str = "prediction",
                     sha256: str | None = None, size: int | None = None, *,
                     inputs: Sequence[str] | None = None) -> tuple[Callable, Any]:  # fmt: skip
    """(the function, the schema) that ``df.mapInArrow`` takes to add ``function``'s
    column (any of PREDICT, PREDICT_PROBA, EMBED, ANOMALY_SCORE, IS_ANOMALY the model
    offers) named ``output``; :func:`predict` and :func:`predict_proba` are this and one
    ``mapInArrow``. Everything is checked here, on the driver (see :func:`predict`)."""
    T, to_arrow_type = _pyspark()
    if not isinstance(output, str) or not output:
        raise OptionError(f"output must be a column name, got {output!r}")
    scorer = as_scorer(model, sha256, size, inputs)
    sql_type = scorer.output_type(function)  # refuses a function the model does not offer
    fields = {f.name: f for f in df.schema.fields}
    clash = [n for n in fields if n.lower() == output.lower()]
    if clash:
        raise OptionError(f"the DataFrame already has a column '{clash[0]}'; give the new one another name (output=...)")
    timezone = df.sparkSession.conf.get("spark.sql.session.timeZone")
    if any(kind_of(f).reads_timezone for f in scorer.features):  # read by each task: checked here, once
        check_timezone(timezone, f"the Spark session's time zone (spark.sql.session.timeZone), which {scorer.what} reads")
    columns = scorer.columns([f.name for f in df.schema.fields])  # two of one name are ambiguous, as two differing in case
    arrow_fields = []
    for feature in scorer.features:
        field = fields[columns[feature.name]]
        try:
            arrow = _arrow_type(to_arrow_type, field.dataType, timezone)
        except Exception:  # a Spark type with no Arrow form (a variant, an interval, ...)
            raise FeatureError(
                f"column '{field.name}' has Spark type {field.dataType.simpleString()}, which dbml cannot read: the "
                f"{feature.kind} feature '{feature.name}' of {scorer.what} (trained as {feature.sql_type}) takes "
                f"{_needs(feature)}"
            ) from None
        arrow_fields.append(pa.field(field.name, arrow))
    scorer.check_schema(pa.schema(arrow_fields), {n: f.dataType.simpleString() for n, f in fields.items()})
    try:
        out_spark = spark_type(sql_type)
    except OptionError as err:
        raise OptionError(f"{function.upper()} of {scorer.what} gives {sql_type}: {str(err)[6:]}") from None
    out_arrow = _arrow_type(to_arrow_type, out_spark, timezone)
    schema = T.StructType([*df.schema.fields, T.StructField(output, out_spark, True)])
    digest = hashlib.sha256(scorer.blob).hexdigest()  # of the checked bytes (external data inside), which travel
    # the checked bytes may be a little over the file's max_size (its external data inside): they passed here
    max_size = max(scorer.max_size, len(scorer.blob))
    fn = _scoring_function(scorer.blob, digest, scorer.inputs, max_size, function.upper(),
                           [columns[f.name] for f in scorer.features], output, out_arrow, timezone)  # fmt: skip
    return fn, schema


def _with_column(df: DataFrame, model: Any, function: str, output: str, sha256: str | None, size: int | None,
                 inputs: Sequence[str] | None) -> DataFrame:  # fmt: skip
    fn, schema = scoring_function(df, model, function, output, sha256, size, inputs=inputs)
    return df.mapInArrow(fn, schema)


def _arrow_type(to_arrow_type: Callable, spark: Any, timezone: str) -> pa.DataType:
    """pyspark's Arrow type of a Spark type (pyspark 4 takes the session's time zone, 3.5 does not)."""
    if "timezone" in inspect.signature(to_arrow_type).parameters:
        return to_arrow_type(spark, timezone=timezone)
    return to_arrow_type(spark)


def _needs(feature) -> str:
    return kind_of(feature).arrow_needs


def _scoring_function(blob: bytes, sha256: str, inputs: tuple[str, ...] | None, max_size: int, function: str,
                      columns: list[str], output: str, out_type: pa.DataType, timezone: str):  # fmt: skip
    """The function each Python worker runs over its Arrow batches (all it needs travels in it)."""

    def score(batches):
        scorer = _worker_scorer(blob, sha256, inputs, max_size)
        for batch in batches:
            raw = [batch.column(batch.schema.get_field_index(c)) for c in columns]
            result = scorer.score_columns(raw, [function], timezone=timezone)[0]
            if result.type != out_type:
                result = result.cast(out_type)
            yield pa.RecordBatch.from_arrays([*batch.columns, result], names=[*batch.schema.names, output])

    return score


def _worker_scorer(blob: bytes, sha256: str, inputs: tuple[str, ...] | None, max_size: int) -> Scorer:
    """The worker's Scorer of these bytes: loaded (and verified against ``sha256``) once per
    process, of the :data:`_WORKER_MODELS` most recently used models."""
    key = (sha256, inputs, max_size)
    with _workers_lock:
        scorer = _workers.get(key)
        if scorer is not None:
            _workers.move_to_end(key)
    if scorer is None:
        scorer = load_model(blob, sha256, inputs=inputs, max_size=max_size)
        with _workers_lock:
            _workers[key] = scorer
            while len(_workers) > _WORKER_MODELS:
                _workers.popitem(last=False)
    return scorer
