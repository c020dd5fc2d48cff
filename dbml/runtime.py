"""onnxruntime sessions, cached by the blob's sha256, and Arrow -> ONNX feeds.

A session is built once per distinct blob and process; PREDICT's per-batch work is
only the column conversion and ``session.run``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc

from dbml.errors import IntegrityError
from dbml.features import FeatureSpec

__all__ = ["new_session", "session_for", "verify_blob", "arrow_feeds", "clear_sessions"]

_CACHE_SIZE = 64
_sessions: OrderedDict[str, ort.InferenceSession] = OrderedDict()
_lock = threading.Lock()


def new_session(blob: bytes, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session for a serialized model.

    One intra-op thread: DuckDB already runs UDF batches of 2,048 rows from
    several threads, and small batches gain nothing from more.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])


def session_for(sha256: str, size: int, load_blob: Callable[[], bytes], what: str) -> ort.InferenceSession:
    """The cached session of the blob with this sha256; built (and verified) on first use.

    Args:
        sha256: the digest recorded in the registry.
        size: the size recorded in the registry.
        load_blob: reads the blob when it is not cached.
        what: names the model version in errors ("model 'churn' version 3").

    Raises:
        IntegrityError: the stored blob's size or digest differs from the registry's.
    """
    with _lock:
        sess = _sessions.get(sha256)
        if sess is not None:
            _sessions.move_to_end(sha256)
            return sess
    sess = new_session(verify_blob(load_blob(), sha256, size, what))
    with _lock:
        _sessions[sha256] = sess
        while len(_sessions) > _CACHE_SIZE:
            _sessions.popitem(last=False)
    return sess


def verify_blob(blob: bytes, sha256: str, size: int, what: str) -> bytes:
    """The blob itself when its size and sha256 are the registry's; else an IntegrityError."""
    if len(blob) != size:
        raise IntegrityError(f"the ONNX blob of {what} has {len(blob)} bytes, the registry says {size}; refusing to load it")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise IntegrityError(f"the ONNX blob of {what} has sha256 {digest}, the registry says {sha256}; refusing to load it")
    return blob


def clear_sessions() -> None:
    with _lock:
        _sessions.clear()


def _column(values: pa.Array | pa.ChunkedArray, feature: FeatureSpec) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if feature.kind == "category":
        if values.null_count:
            values = pc.fill_null(values.cast(pa.string()), "")
        return values.to_numpy(zero_copy_only=False).reshape(-1, 1)
    if not pa.types.is_float32(values.type):
        values = values.cast(pa.float32())
    if values.null_count:
        values = pc.fill_null(values, float("nan"))
    return values.to_numpy(zero_copy_only=False).reshape(-1, 1)


def arrow_feeds(features: Sequence[FeatureSpec], columns: Sequence[pa.Array | pa.ChunkedArray]) -> dict[str, np.ndarray]:
    """ONNX inputs from encoded Arrow columns (FLOAT, or VARCHAR for categories)."""
    return {f.name: _column(c, f) for f, c in zip(features, columns)}
