"""Scoring outside DuckDB: a file EXPORT MODEL wrote, or a foreign ONNX file, scores
Arrow, pandas, polars or dict data with onnxruntime, pyarrow and numpy alone (no DuckDB,
no torch), with the answers PREDICT gives in SQL.

    model = dbml.load_model("s3://models/churn.onnx", sha256="...")  # read and checked once
    model.features, model.task, model.labels, model.functions
    model.score(df, functions=("PREDICT", "PREDICT_PROBA"))           # columns prediction, probabilities
    dbml.score("churn.onnx", df)                                      # the same in one call

What is checked, in order: the file is read under IMPORT's size limit; its size and
sha256 against ``size=`` and ``sha256=`` (EXPORT MODEL's result row prints both) before
any byte is parsed; the bytes as IMPORT checks them (ONNX only, never unpickled, the
ONNX checker, :mod:`dbml.registry.graphcheck`); its metadata by IMPORT's own validation
(:func:`dbml.registry.modelfile.describe_file`). Then, for each call and before any row is
scored, the data's columns: every feature column present (matched by name without
regard to case, as ``PREDICT(m, *)`` matches them in DuckDB; two columns whose names
differ only in case are ambiguous) and of a type its kind takes. Rows are encoded as
PREDICT's SQL encodes them (:meth:`dbml.kinds.Kind.arrow`) and scored in batches of
:data:`BATCH_ROWS` under the bounds of :mod:`dbml.runtime`.

Each function gives one column, named by the outputs table (``prediction``,
``probabilities``, ``embedding``, ``anomaly_score``, ``is_anomaly``), typed as in SQL:
PREDICT in the target's own type (INTEGER stays int32, a DATE target gives date32, a
TIMESTAMP one timestamp[us]; :data:`CLASS_TARGET_TYPES` lists the class targets scored
here, others are refused at load), PREDICT_PROBA a struct of one double per class.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import warnings
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from dbml.errors import FeatureError, IntegrityError, OptionError, SourceError, TargetError, TransferError
from dbml.features import FeatureSpec
from dbml.registry.foreign import imported_feeds, imported_output, imported_proba
from dbml.kinds import clock, kind_of
from dbml.registry.modelfile import describe_file, open_session
from dbml.outputs import BY_FUNCTION, FUNCTION_NAMES, OUTPUTS, VersionInfo, arrow_type, not_offered
from dbml.runtime import run_bounded, scoring_session_for
from dbml.registry.transfer import MAX_IMPORT_BYTES, checked_onnx, fetch

__all__ = ["Scorer", "load_model", "score", "as_scorer", "as_table", "check_timezone", "BATCH_ROWS", "CLASS_TARGET_TYPES"]

# Rows per onnxruntime run. Measured scoring 1M rows of 7 mixed features (an MLP, 2 busy
# cores): 2,048-row runs 2.3 s (per-batch Python work shows), 8,192 1.3-1.8 s, 65,536
# 1.8 s, one run of all rows 2.5 s (cache misses, as DESIGN.md's measured facts say).
BATCH_ROWS = 8192
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_CACHE_SIZE = 16
# (the file's sha256, where it was read, inputs, max_size) -> its Scorer
_cache: OrderedDict[tuple[str, str, tuple[str, ...] | None, int], Scorer] = OrderedDict()
_lock = threading.Lock()
# The class targets PREDICT's answers are given for outside DuckDB: the types its UDF
# returns and those DuckDB's CAST of the label text gives a plain Arrow value for (the
# date and naive timestamp types: dbml.kinds.clock reads their labels as that CAST does)
_INTEGER_TARGETS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
CLASS_TARGET_TYPES = ("VARCHAR", "BOOLEAN", *_INTEGER_TARGETS, *clock.LABEL_TYPES)


def load_model(model: str | os.PathLike | bytes | bytearray | memoryview, sha256: str | None = None,
               size: int | None = None, *, inputs: Sequence[str] | None = None,
               max_size: int = MAX_IMPORT_BYTES) -> Scorer:  # fmt: skip
    """A model file, read, verified and checked once, ready to score (see the module).

    Args:
        model: a file written by EXPORT MODEL (or a foreign ONNX file): a local path, any
            fsspec URL (``s3://...``, ``file://...``), or its bytes.
        sha256: the digest EXPORT MODEL printed; the file must have it.
        size: the byte count EXPORT MODEL printed; the file must have it.
        inputs: a foreign file's feature column names, one per graph column in graph
            order, as IMPORT MODEL's ``WITH (inputs = [...])`` (needed for an input of
            shape ``[N, F]``); refused for a file dbml wrote.
        max_size: the largest file accepted, in bytes (IMPORT's limit by default).

    The Scorer of a file is kept (per process, by the file's sha256, where it was read,
    ``inputs`` and ``max_size``), so loading the same file again costs a read and a
    digest; a file with external data beside it is checked again (that data may have
    changed), and its Scorer reused when the checked bytes are the same.

    Raises:
        TransferError: unreadable, too large, not ONNX, or a graph dbml cannot feed.
        IntegrityError: a size or sha256 other than the ones given.
        RecordError: dbml metadata that breaks the version record's schema.
        UnsafeGraphError: a graph dbml will not load (see :mod:`dbml.registry.graphcheck`).
        TargetError: a classifier of a target type scored in DuckDB only (TIME, UUID,
            lists, ...; see :data:`CLASS_TARGET_TYPES`).
    """
    _check_digest_options(sha256, size, max_size)
    data, url, fs, path = _read(model, max_size)
    if size is not None and len(data) != size:
        raise IntegrityError(
            f"'{url}' has {len(data):,} bytes, not the {size:,} given (size=); it is not the file EXPORT MODEL "
            "wrote: refusing to load it"
        )
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256.lower():
        raise IntegrityError(
            f"'{url}' has sha256 {digest}, not the {sha256.lower()} given (sha256=); it is not the file EXPORT MODEL "
            "wrote: refusing to load it"
        )
    names = _inputs(inputs)
    key = (digest, url, names, max_size)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
    if cached is not None and not cached.external_data:  # these bytes are all it read
        return cached
    blob = checked_onnx(data, url, max_size, fs, path)
    if cached is not None and len(blob) == len(cached.blob) and blob == cached.blob:
        return cached  # the same external data beside it
    session = open_session(blob, url)
    described = describe_file(blob, url, session, None, list(names) if names is not None else None,
                              warn=lambda message: warnings.warn(message, stacklevel=5))  # fmt: skip
    scorer = Scorer(described, session, url, digest, len(data), blob, names, max_size)
    scorer.external_data = blob != data
    with _lock:
        _cache[key] = scorer
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return scorer


def score(model: Any, data: Any, functions: Sequence[str] = ("PREDICT",), *, sha256: str | None = None,
          size: int | None = None, timezone: str = "UTC", inputs: Sequence[str] | None = None) -> pa.Table:  # fmt: skip
    """Score ``data`` with a model file: :func:`load_model`, then :meth:`Scorer.score`.

    Args:
        model: a path, an fsspec URL, the file's bytes, or a :class:`Scorer`.
        data: an Arrow Table or RecordBatch, a pandas or polars DataFrame, or a dict of
            columns (lists, numpy or Arrow arrays).
        functions: the scoring functions, as in SQL: PREDICT, PREDICT_PROBA, EMBED,
            ANOMALY_SCORE, IS_ANOMALY.
        sha256, size, inputs: see :func:`load_model`.
        timezone: stands for DuckDB's TimeZone setting where a time zone meets a wall
            clock (a timestamp with a zone for a model trained on TIMESTAMP, or the reverse):
            an IANA name or a fixed offset (``+02:00``, ``GMT+2``, ``Z``); checked only
            for a model with a date or time feature.

    Returns:
        An Arrow table with one column per function, in the order asked.
    """
    return as_scorer(model, sha256, size, inputs).score(data, functions, timezone=timezone)


def as_scorer(model: Any, sha256: str | None = None, size: int | None = None,
              inputs: Sequence[str] | None = None) -> Scorer:  # fmt: skip
    """``model`` itself when it is a :class:`Scorer` (of that sha256 and size, when
    given), else :func:`load_model` of it."""
    if not isinstance(model, Scorer):
        return load_model(model, sha256, size, inputs=inputs)
    _check_digest_options(sha256, size, None)
    if sha256 is not None and sha256.lower() != model.sha256:
        raise IntegrityError(f"{model.what} has sha256 {model.sha256}, not the {sha256.lower()} given (sha256=)")
    if size is not None and size != model.size:
        raise IntegrityError(f"{model.what} has {model.size:,} bytes, not the {size:,} given (size=)")
    return model


class Scorer:
    """A model file checked and loaded in onnxruntime (made by :func:`load_model`).

    Attributes:
        name: the model's name in the registry it was exported from (``model`` when the
            file does not say).
        version: the version it was exported as, or None.
        url: where it was read from.
        sha256, size: the file's digest and byte count, as EXPORT MODEL printed them.
        blob: the checked ONNX bytes onnxruntime loaded (the file's, with any external
            data beside it inside).
        inputs: a foreign file's column names as given to :func:`load_model`, or None.
        max_size: the largest file it was loaded under (:func:`load_model`'s max_size).
        features: its feature columns (:class:`dbml.features.FeatureSpec`), in model order.
        task: classification, regression, reconstruction, forecast, or imported (a
            foreign ONNX file).
        labels: the class labels in probability order (classification), else None.
        target, target_type: the target column and its SQL type (None without one).
        functions: the scoring functions it offers (PREDICT, PREDICT_PROBA, ...).
        record: the version record the file carries, checked as IMPORT checks it.
        what: names it in messages.
    """

    def __init__(self, described, session: Any, url: str, sha256: str, size: int, blob: bytes,
                 inputs: tuple[str, ...] | None = None, max_size: int = MAX_IMPORT_BYTES):  # fmt: skip
        rec = described.record
        self.blob, self.inputs, self.max_size = blob, inputs, max_size
        self.external_data = False  # whether the file had external data beside it (load_model sets it)
        self.record = rec
        self.name = rec["model"]
        self.version = int(described.origin.split(":")[1]) if described.origin else None
        self.url, self.sha256, self.size = url, sha256, size
        self.features = tuple(FeatureSpec(**f) for f in rec["features"])
        self.task = rec["task"]
        self.labels = tuple(rec["labels"]) if rec["labels"] is not None else None
        self.target, self.target_type = rec["target"], rec["target_type"]
        version = f" version {self.version}" if self.version is not None else ""
        self.what = f"model '{self.name}'{version} from '{url}'"
        self._session = session
        self._timezone = any(kind_of(f).reads_timezone for f in self.features)  # where a time zone can matter
        # {function: (graph output, convert(onnxruntime's array, rows) -> Arrow, SQL type)}
        self._plan: dict[str, tuple[str, Any, str | dict[str, str]]] = {}
        from dbml.tasks import get_task

        task = get_task(self.task)
        if task.foreign:  # a graph dbml did not write: its layout says what its outputs are
            self._plan_imported(rec["options"])
        else:
            self._plan_trained(task, rec)
        self.functions = tuple(f for f in FUNCTION_NAMES if f in self._plan)

    def __repr__(self) -> str:
        return f"Scorer({self.what}, task {self.task}, features {[f.name for f in self.features]})"

    def _plan_trained(self, task, rec: dict[str, Any]) -> None:
        predict_type = task.udf_type(self.target_type)
        # PREDICT's SQL casts the UDF's result to the task's label type (dbml.rewrite): the labels, cast once here
        casts = task.label_type(rec).upper() != predict_type.upper()
        labels = self._label_column() if casts else None
        graph = {o.name: tuple(o.shape[1:]) if o.shape else () for o in self._session.get_outputs()}
        info = VersionInfo(self.task, self.labels, predict_type, graph)
        for o in OUTPUTS:
            source = o.source(info)
            if source is None:
                continue
            convert, sql_type = o.convert(info), o.sql_type(info)
            if o.function == "PREDICT" and casts:
                sql_type = task.label_type(rec).upper()
                convert = _labelled(labels)
            self._plan[o.function] = (source, _rows_ignored(convert), sql_type)
        # the packed scoring graph PREDICT runs (dbml.runtime.packed_graph): the same numbers
        digest = hashlib.sha256(self.blob).hexdigest()  # of the bytes loaded (external data inside), not the file's
        scoring = scoring_session_for(digest, len(self.blob), lambda: self.blob, self.what, self.features)
        self._session, self._feeds = scoring.session, scoring.feeds

    def _label_column(self) -> pa.Array:
        """The class labels in the Arrow type PREDICT gives (its CAST to the target's type).

        Raises:
            TargetError: a target type PREDICT gives only in DuckDB, or a label it cannot hold.
        """
        t = self.target_type.upper()
        if t not in CLASS_TARGET_TYPES:
            raise TargetError(
                f"{self.what} is a classifier of the {self.target_type} target '{self.target}'; outside DuckDB, "
                f"dbml.score and dbml.spark give PREDICT for class targets of type {', '.join(CLASS_TARGET_TYPES)}: "
                "score it with PREDICT in DuckDB (IMPORT MODEL), or train it on the target cast to VARCHAR"
            )
        if t in clock.LABEL_TYPES:
            return clock.label_values(list(self.labels), t)  # the record's labels are such texts (validate_record)
        try:
            return pa.array(list(self.labels), arrow_type(t))
        except (pa.ArrowException, OverflowError, ValueError):
            raise TargetError(
                f"{self.what} has class labels {list(self.labels)[:10]} beyond its target type {self.target_type}"
            ) from None

    def _plan_imported(self, options: dict[str, Any]) -> None:
        self._plan["PREDICT"] = (options["output"]["name"], imported_output(options, self.target_type, self.what), self.target_type)
        proba = imported_proba(options)
        if proba is not None:
            output, fields, convert = proba
            self._plan["PREDICT_PROBA"] = (output, convert, {f: "DOUBLE" for f in fields})
        self._feeds = imported_feeds(self.features, options, self.what)

    # -- what a call will give --------------------------------------------------------------

    def output_type(self, function: str) -> str | dict[str, str]:
        """The SQL type ``function`` gives, as in DuckDB (a STRUCT is a dict of fields)."""
        return self._plan[self._function(function)][2]

    def output_arrow_type(self, function: str) -> pa.DataType:
        """The Arrow type of ``function``'s column."""
        return arrow_type(self.output_type(function))

    def output_column(self, function: str) -> str:
        """The name of ``function``'s column (prediction, probabilities, ...)."""
        return BY_FUNCTION[self._function(function)].column

    def _function(self, function: str) -> str:
        name = function.upper() if isinstance(function, str) else function
        if name not in BY_FUNCTION:
            raise OptionError(f"unknown scoring function {function!r}; the functions are {', '.join(FUNCTION_NAMES)}")
        if name not in self._plan:
            raise not_offered(name, self.what, self.task, self._plan)
        return name

    # -- the data's columns ------------------------------------------------------------------

    def columns(self, names: Iterable[str]) -> dict[str, str]:
        """{feature: the data's column} for the data's column ``names``, matched without
        regard to case as ``PREDICT(m, *)`` matches them.

        Raises:
            FeatureError: naming every missing feature column, or two columns whose names
                differ only in case and match one feature.
        """
        names = list(names)
        by_lower: dict[str, list[str]] = {}
        for n in names:
            by_lower.setdefault(str(n).lower(), []).append(n)
        found, missing = {}, []
        for f in self.features:
            same = by_lower.get(f.name.lower(), [])
            if len(same) > 1:
                raise FeatureError(
                    f"the data has columns {', '.join(repr(n) for n in same)}, which all match feature column "
                    f"'{f.name}' of {self.what} (names match without regard to case, as in DuckDB): rename or drop "
                    "all but one"
                )
            if same:
                found[f.name] = same[0]
            else:
                missing.append(f.name)
        if missing:
            shown = ", ".join(names[:50]) + (f", ... ({len(names)} in all)" if len(names) > 50 else "")
            raise FeatureError(
                f"the data is missing feature column(s) {', '.join(missing)} of {self.what}; its features are "
                f"{', '.join(f.name for f in self.features)}, the data's columns {shown or '(none)'}"
            )
        return found

    def check_schema(self, schema: pa.Schema, shown: Mapping[str, str] | None = None) -> dict[str, str]:
        """:meth:`columns` of ``schema``, each of a type its feature's kind takes.

        Args:
            shown: {column: type as the user knows it (a Spark type)}, for messages.

        Raises:
            FeatureError: a missing or ambiguous column, or one of a type its kind cannot
                take (naming the column, its type and what the model needs).
        """
        found = self.columns(schema.names)
        for f in self.features:
            column = found[f.name]
            self._check_type(f, column, schema.field(column).type, (shown or {}).get(column))
        return found

    def _check_type(self, feature: FeatureSpec, column: str, arrow: pa.DataType, shown: str | None = None) -> None:
        kind = kind_of(feature)
        t = arrow.value_type if pa.types.is_dictionary(arrow) else arrow
        if not pa.types.is_null(t) and not kind.takes(feature, t):
            raise FeatureError(
                f"column '{column}' has type {shown or arrow}, but the {feature.kind} feature '{feature.name}' of "
                f"{self.what} (trained as {feature.sql_type}) takes {kind.arrow_needs}: cast the column"
            )

    # -- scoring -------------------------------------------------------------------------------

    def score(self, data: Any, functions: Sequence[str] = ("PREDICT",), *, timezone: str = "UTC") -> pa.Table:
        """One column per function (see the module), for every row of ``data`` in order.

        Raises:
            FeatureError: a missing feature column or one of the wrong type (before any
                row is scored), or a value PREDICT's SQL encoding refuses.
            OptionError: an unknown function or time zone.
        """
        table = as_table(data)
        names = self._functions(functions)
        found = self.check_schema(table.schema)
        columns = self.score_columns([table.column(found[f.name]) for f in self.features], names, timezone=timezone)
        return pa.table({self.output_column(n): c for n, c in zip(names, columns)})

    def _functions(self, functions: Sequence[str]) -> list[str]:
        if isinstance(functions, str):
            functions = (functions,)
        names = [self._function(f) for f in functions]
        if not names:
            raise OptionError("functions is empty; name at least one of " + ", ".join(self.functions))
        if len(set(names)) != len(names):
            raise OptionError(f"functions names a function twice: {', '.join(names)}")
        return names

    def score_columns(self, columns: Sequence[pa.Array | pa.ChunkedArray], functions: Sequence[str],
                      *, timezone: str = "UTC") -> list[pa.Array]:  # fmt: skip
        """The results of ``functions`` for the feature columns (raw, one per feature in
        model order, as :meth:`columns` finds them), scored in batches of :data:`BATCH_ROWS`.
        ``timezone`` is checked only when the model has a date or time feature."""
        names = self._functions(functions)
        if self._timezone:  # a kind a time zone can meet
            timezone = check_timezone(timezone)
        if len(columns) != len(self.features):
            raise FeatureError(f"{self.what} takes {len(self.features)} feature columns, got {len(columns)}")
        for f, c in zip(self.features, columns):
            self._check_type(f, f.name, c.type)
        rows = len(columns[0])
        if any(len(c) != rows for c in columns):
            raise FeatureError(f"the feature columns of {self.what} differ in length")
        parts: list[list[pa.Array]] = [[] for _ in names]
        for start in range(0, rows, BATCH_ROWS):
            for part, result in zip(parts, self._batch([c.slice(start, BATCH_ROWS) for c in columns], names, timezone)):
                part.append(result)
        out = []
        for name, part in zip(names, parts):
            t = self.output_arrow_type(name)
            out.append(pa.concat_arrays([p.cast(t) if p.type != t else p for p in part]) if part else pa.array([], t))
        return out

    def _batch(self, columns: list[pa.Array | pa.ChunkedArray], names: list[str], timezone: str) -> list[pa.Array]:
        encoded = [kind_of(f).arrow(f, c, self.name, timezone) for f, c in zip(self.features, columns)]
        sources = list(dict.fromkeys(self._plan[n][0] for n in names))
        results = dict(zip(sources, run_bounded(self._session, sources, self._feeds(encoded), self.what)))
        rows = len(columns[0])
        return [self._plan[n][1](results[self._plan[n][0]], rows) for n in names]


def as_table(data: Any) -> pa.Table:
    """``data`` as an Arrow table: an Arrow Table, RecordBatch or RecordBatchReader, a
    pandas or polars DataFrame (through Arrow), or a dict of columns.

    Raises:
        SourceError: anything else, or a dict whose columns Arrow cannot read.
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as err:  # a column of mixed Python objects
            raise SourceError(f"cannot read the pandas DataFrame as Arrow: {_column_of(data, err)}{err}; give each "
                              "column one type (astype) before scoring") from None  # fmt: skip
    if module == "polars" and hasattr(data, "to_arrow"):
        try:
            return data.to_arrow()
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as err:
            raise SourceError(f"cannot read the polars DataFrame as Arrow: {err}") from None
    if isinstance(data, Mapping):
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            raise SourceError(f"the data's column names must be strings, got {bad[0]!r}")
        try:
            return pa.table(dict(data))
        except (pa.ArrowException, TypeError, ValueError) as err:
            raise SourceError(f"cannot read the dict of columns as Arrow: {err}") from None
    raise SourceError(
        f"data must be an Arrow Table or RecordBatch, a pandas or polars DataFrame, or a dict of columns; got "
        f"{type(data).__module__}.{type(data).__name__}"
    )


def _column_of(frame: Any, err: Exception) -> str:
    """'column 'x': ' when pyarrow's message or a column-by-column try tells which column failed."""
    for name in frame.columns:
        try:
            pa.array(frame[name], from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return f"column '{name}': "
    return ""


def _read(model: Any, max_size: int) -> tuple[bytes, str, Any, str | None]:
    """(the bytes, a name for messages, the fsspec file system and path, or None for bytes)."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        n = model.nbytes if isinstance(model, memoryview) else len(model)
        url = f"<{n:,} bytes>"
        if n > max_size:  # before any copy
            raise TransferError(f"'{url}' is over the import limit of {max_size:,} bytes (max_size)")
        return bytes(model), url, None, None
    if isinstance(model, (str, os.PathLike)):
        url = os.fspath(model)
        data, fs, path = fetch(url, max_size)
        return data, url, fs, path
    raise TransferError(
        f"model must be the path or fsspec URL of a file written by EXPORT MODEL, or its bytes; got "
        f"{type(model).__name__}"
    )


def _check_digest_options(sha256: Any, size: Any, max_size: Any) -> None:
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.match(sha256)):
        raise OptionError(f"sha256 must be 64 hexadecimal digits (EXPORT MODEL's sha256 column), got {sha256!r}")
    for name, value in (("size", size), ("max_size", max_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise OptionError(f"{name} must be a positive whole number of bytes, got {value!r}")


def _inputs(inputs: Sequence[str] | None) -> tuple[str, ...] | None:
    if inputs is None:
        return None
    if isinstance(inputs, str) or not all(isinstance(n, str) for n in inputs):
        raise OptionError(f"inputs must be a list of column names, got {inputs!r}")
    return tuple(inputs)


def check_timezone(timezone: str, what: str = "timezone") -> str:
    """``timezone`` when it is an IANA zone or a fixed offset (``+02:00``, ``GMT+2``, ``Z``:
    :func:`dbml.kinds.clock.check_timezone`).

    Raises:
        OptionError: any other, named as ``what``.
    """
    try:
        return clock.check_timezone(timezone)
    except ValueError as err:
        raise OptionError(f"{what}: {err}") from None


def _rows_ignored(convert):
    return lambda out, rows: convert(out)


def _labelled(labels: pa.Array):
    def convert(out: np.ndarray) -> pa.Array:
        return labels.take(pa.array(out.argmax(axis=1)))

    return convert

