"""onnxruntime sessions, cached by the blob's sha256, Arrow -> ONNX feeds, and the
bounds every PREDICT batch runs under.

A session is built once per distinct blob and process; PREDICT's per-batch work is
only the column conversion and :func:`run_bounded`.

Bounds (process-wide, see :func:`configure_limits`; environment variables set the
defaults when the module is imported):

* memory: every session allocates its working tensors from one shared onnxruntime CPU
  arena of at most ``memory_bytes`` (``DBML_PREDICT_MEMORY_MB``; default a quarter of
  the machine's memory, between 1 and 16 GiB). A batch that needs more fails with a
  :class:`ResourceLimitError`; the arena is kept between batches, as onnxruntime's
  per-session arenas were. Weights (initializers) are allocated outside it.
* time: a batch (one ``session.run``) still running after ``seconds``
  (``DBML_PREDICT_SECONDS``, default 60) is stopped through ``RunOptions.terminate``,
  which onnxruntime checks between nodes and between iterations of Loop and Scan; one
  watchdog thread serves every run of the process.
* output size: an output of more than ``values_per_row`` values per input row
  (``DBML_PREDICT_VALUES_PER_ROW``, default 65,536) is refused.

Loading a blob runs :func:`dbml.registry.graphcheck.check_graph` first (no external data, standard
operators, bounded loops and constants) and tells onnxruntime to read the bytes as
ONNX only and to resolve any external path in an empty private folder.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
from onnx import TensorProto, helper

from dbml.errors import CorruptBlobError, DbmlError, IntegrityError, OptionError, ResourceLimitError, ScoringError
from dbml.features import FeatureSpec
from dbml.kinds import KINDS
from dbml.registry.graphcheck import check_graph, parse_blob

__all__ = [
    "new_session", "session_for", "verify_blob", "arrow_feeds", "clear_sessions", "run_bounded",
    "Limits", "limits", "configure_limits", "ScoringSession", "scoring_session_for", "packed_graph",
]  # fmt: skip

_CACHE_SIZE = 64
_sessions: OrderedDict[str, ort.InferenceSession] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Limits:
    """What one PREDICT batch may use (see the module's docstring)."""

    memory_bytes: int
    seconds: float
    values_per_row: int


def _default_memory() -> int:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 8 << 30
    return min(16 << 30, max(1 << 30, physical // 4))


def _from_env(name: str, default: float, scale: int = 1) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw) * scale
    except ValueError:
        raise OptionError(f"environment variable {name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise OptionError(f"environment variable {name} must be positive, got {raw!r}")
    return value


_limits = Limits(
    memory_bytes=int(_from_env("DBML_PREDICT_MEMORY_MB", _default_memory(), 1 << 20)),
    seconds=_from_env("DBML_PREDICT_SECONDS", 60.0),
    values_per_row=int(_from_env("DBML_PREDICT_VALUES_PER_ROW", 65_536)),
)
_arena_bytes: int | None = None  # the max_mem of the registered shared arena, once registered
_no_external_dir: str | None = None


def limits() -> Limits:
    """The bounds PREDICT runs under now."""
    return _limits


def configure_limits(
    memory_bytes: int | None = None, seconds: float | None = None, values_per_row: int | None = None
) -> Limits:
    """Change the process-wide PREDICT bounds; returns the new ones.

    A new memory bound applies to sessions built afterwards, so the session cache is
    cleared (the next PREDICT of each version rebuilds its session). Time and output
    bounds apply to the next batch.
    """
    global _limits
    for name, value in (("memory_bytes", memory_bytes), ("seconds", seconds), ("values_per_row", values_per_row)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise OptionError(f"{name} must be a positive number, got {value!r}")
    changes = {k: v for k, v in (("memory_bytes", memory_bytes), ("seconds", seconds), ("values_per_row", values_per_row)) if v is not None}
    if "memory_bytes" in changes:
        changes["memory_bytes"] = int(changes["memory_bytes"])
    if "values_per_row" in changes:
        changes["values_per_row"] = int(changes["values_per_row"])
    _limits = replace(_limits, **changes)
    if memory_bytes is not None and _arena_bytes is not None and _arena_bytes != _limits.memory_bytes:
        clear_sessions()
    return _limits


def _shared_arena() -> None:
    """Register (or replace) the process's shared CPU arena of ``memory_bytes``."""
    global _arena_bytes
    if _arena_bytes == _limits.memory_bytes:
        return
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(info, ort.OrtArenaCfg({"max_mem": _limits.memory_bytes}))
    _arena_bytes = _limits.memory_bytes


def _empty_folder() -> str:
    """A private empty folder: where onnxruntime would resolve external data paths."""
    global _no_external_dir
    if _no_external_dir is None or not os.path.isdir(_no_external_dir):
        _no_external_dir = tempfile.mkdtemp(prefix="dbml-no-external-data-")
        atexit.register(_remove_folder, _no_external_dir)
    return _no_external_dir


def _remove_folder(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def new_session(blob: bytes, threads: int = 1, proto: onnx.ModelProto | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session for a serialized model, after :func:`check_graph`.

    One intra-op thread: DuckDB already runs UDF batches of 2,048 rows from
    several threads, and small batches gain nothing from more.

    Raises:
        CorruptBlobError: the bytes do not parse as ONNX.
        UnsafeGraphError: the graph breaks a rule of :mod:`dbml.registry.graphcheck`.
        Exception: onnxruntime's own error when it cannot load the graph
            (:func:`session_for` names the version in a CorruptBlobError).
    """
    check_graph(proto if proto is not None else parse_blob(blob, "the ONNX graph"), "the ONNX graph", file_bytes=len(blob))
    with _lock:
        _shared_arena()
        folder = _empty_folder()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4  # dbml raises its own errors; onnxruntime's log would repeat them on stderr
    opts.add_session_config_entry("session.load_model_format", "ONNX")
    opts.add_session_config_entry("session.use_env_allocators", "1")
    opts.add_session_config_entry("session.use_device_allocator_for_initializers", "1")
    opts.add_session_config_entry("session.model_external_initializers_file_folder_path", folder)
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
        CorruptBlobError: the digest matches but the blob is not a graph onnxruntime loads.
        UnsafeGraphError: the stored graph breaks a rule of :mod:`dbml.registry.graphcheck`.
    """
    with _lock:
        sess = _sessions.get(sha256)
        if sess is not None:
            _sessions.move_to_end(sha256)
            return sess
    sess = _load(verify_blob(load_blob(), sha256, size, what), what)
    with _lock:
        _sessions[sha256] = sess
        while len(_sessions) > _CACHE_SIZE:
            _sessions.popitem(last=False)
    return sess


def _load(blob: bytes, what: str, proto: onnx.ModelProto | None = None) -> ort.InferenceSession:
    """:func:`new_session` of a verified blob, its errors naming the version."""
    try:
        sess = new_session(blob) if proto is None else new_session(blob, proto=proto)
    except DbmlError as err:
        message = str(err).removeprefix("dbml: ").replace("the ONNX graph", f"the ONNX blob of {what}", 1)
        raise type(err)(message) from None
    except Exception as err:  # onnxruntime's InvalidProtobuf, InvalidArgument, Fail, ...
        raise CorruptBlobError(
            f"onnxruntime cannot load the ONNX blob of {what}: {type(err).__name__}: {err}; its size and sha256 "
            "match the registry, so the registry row itself was changed: drop the version and IMPORT it again "
            "from a trusted export"
        ) from None
    sess._dbml_what = what  # names the version in run_bounded's errors
    return sess


class _Watchdog:
    """One thread that sets ``RunOptions.terminate`` on runs past their deadline.

    A run costs a dict insert and delete; the thread wakes at most every 0.25 s while
    runs are in flight (sooner when a deadline is nearer) and sleeps on an event after
    10 s without any.
    """

    _IDLE_SECONDS = 10.0
    _TICK = 0.25

    def __init__(self) -> None:
        self._active: dict[int, tuple[float, ort.RunOptions]] = {}
        self._keys = itertools.count()
        self._wake = threading.Event()
        self._sleeping = True
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def watch(self, options: ort.RunOptions, seconds: float) -> int:
        key = next(self._keys)
        self._active[key] = (time.monotonic() + seconds, options)
        if self._sleeping:
            if self._thread is None:
                with self._start:
                    if self._thread is None:
                        self._thread = threading.Thread(target=self._loop, name="dbml-predict-watchdog", daemon=True)
                        self._thread.start()
            self._wake.set()
        return key

    def forget(self, key: int) -> None:
        self._active.pop(key, None)

    def _loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            now = time.monotonic()
            active = list(self._active.items())
            if active:
                idle_since = now
            elif now - idle_since > self._IDLE_SECONDS:
                self._sleeping = True
                if not self._active:  # checked after raising the flag: watch() sets the event from here on
                    self._wake.wait()
                self._wake.clear()
                self._sleeping = False
                idle_since = time.monotonic()
                continue
            nearest = self._TICK
            for key, (deadline, options) in active:
                if now >= deadline:
                    options.terminate = True
                    self._active.pop(key, None)
                else:
                    nearest = min(nearest, deadline - now)
            time.sleep(max(nearest, 0.001))


_watchdog = _Watchdog()
_MEMORY_SIGNS = ("Available memory of", "Failed to allocate memory", "bad_alloc", "BFCArena")


def run_bounded(
    session: ort.InferenceSession, outputs: list[str] | None, feeds: dict[str, Any], what: str | None = None
) -> list[Any]:
    """``session.run(outputs, feeds)`` under the process's :class:`Limits`.

    Args:
        session: a session from :func:`session_for` or :func:`new_session`.
        outputs: the output names (None: all).
        feeds: input name -> array; the first array's length is the batch's row count.
        what: names the model version in errors; default the name :func:`session_for`
            gave the session.

    Raises:
        ResourceLimitError: the batch needed more memory than the shared arena holds,
            ran past the time bound, or returned more values per row than allowed.
        ScoringError: any other onnxruntime failure, with its message.
    """
    bounds = _limits
    options = ort.RunOptions()
    key = _watchdog.watch(options, bounds.seconds)
    try:
        result = session.run(outputs, feeds, options)
    except Exception as err:
        raise _run_error(err, options, feeds, bounds, what or getattr(session, "_dbml_what", "the model")) from None
    finally:
        _watchdog.forget(key)
    rows = _rows(feeds)
    most = max(rows, 1) * bounds.values_per_row
    for out in result:
        size = out.size if isinstance(out, np.ndarray) else len(out)
        if size > most:
            name = what or getattr(session, "_dbml_what", "the model")
            raise ResourceLimitError(
                f"PREDICT of {name} returned an output of {size:,} values for {_batch(rows)}, over the "
                f"bound of {bounds.values_per_row:,} values per row (dbml.runtime.configure_limits(values_per_row=...) "
                "or DBML_PREDICT_VALUES_PER_ROW)"
            )
    return result


def _batch(rows: int) -> str:
    return f"one batch of {rows:,} row" + ("" if rows == 1 else "s")


def _rows(feeds: dict[str, Any]) -> int:
    for value in feeds.values():
        shape = getattr(value, "shape", None)
        if shape:
            return int(shape[0])
        try:
            return len(value)
        except TypeError:
            continue
    return 0


def _run_error(err: Exception, options: ort.RunOptions, feeds: dict[str, Any], bounds: Limits, what: str) -> DbmlError:
    rows = _rows(feeds)
    text = str(err)
    if options.terminate:
        return ResourceLimitError(
            f"PREDICT of {what} ran past the time bound of {bounds.seconds:g} s for {_batch(rows)} and "
            "was stopped (dbml.runtime.configure_limits(seconds=...) or DBML_PREDICT_SECONDS)"
        )
    if isinstance(err, MemoryError) or any(sign in text for sign in _MEMORY_SIGNS):
        return ResourceLimitError(
            f"PREDICT of {what} needed more memory than the bound of {bounds.memory_bytes:,} bytes for onnxruntime "
            f"({_batch(rows)}) and was stopped; onnxruntime said: {_last_line(text)} "
            "(dbml.runtime.configure_limits(memory_bytes=...) or DBML_PREDICT_MEMORY_MB)"
        )
    return ScoringError(f"onnxruntime failed on {_batch(rows)} of {what}: {type(err).__name__}: {_last_line(text)}")


def _last_line(text: str) -> str:
    """The useful part of an onnxruntime message: the allocator's words, else the last line."""
    for sign in ("Available memory of", "Exiting due to"):
        if sign in text:
            return text[text.index(sign):].strip()[:500]
    return text.strip().splitlines()[-1][:500] if text.strip() else "(no message)"


def verify_blob(blob: bytes, sha256: str, size: int, what: str) -> bytes:
    """The blob itself when its size and sha256 are the registry's; else an IntegrityError."""
    if len(blob) != size:
        raise IntegrityError(f"the ONNX blob of {what} has {len(blob)} bytes, the registry says {size}; refusing to load it")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise IntegrityError(f"the ONNX blob of {what} has sha256 {digest}, the registry says {sha256}; refusing to load it")
    return blob


def clear_sessions() -> None:
    """Forget every cached session (the next PREDICT of each version rebuilds it)."""
    with _lock:
        _sessions.clear()
        _scoring.clear()


def arrow_feeds(features: Sequence[FeatureSpec], columns: Sequence[pa.Array | pa.ChunkedArray]) -> dict[str, np.ndarray]:
    """ONNX inputs from encoded Arrow columns (each kind converts its own)."""
    out = {}
    for f, values in zip(features, columns):
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
        out[f.name] = KINDS[f.kind].feed(f, values)
    return out


# -- the scoring graph: one packed input per group of scalar columns ----------------------------
# A dbml graph takes one [N, 1] input per raw column, so that any ONNX runtime scores raw
# rows by column name, and its first node concatenates the scalar columns into the
# [N, F] tensor the network reads. onnxruntime spends a large part of a small model's
# time on those F inputs and that Concat (benchmarks/predict.py: about 14% of a 20-column
# MLP's run on 2,048-row batches, a third on 8,192), so the scoring functions run a graph
# derived from the stored one, in memory, where the Concat is gone and its output is a
# graph input fed with the columns stacked once. The stored blob is unchanged; the
# derived graph computes the same numbers, bit for bit (a Concat only copies).


class ScoringSession:
    """A session and how to feed it from Arrow columns (one per feature, in order).

    Attributes:
        session: the onnxruntime session (of the packed graph when one could be derived).
        packed: {graph input: feature positions stacked into it}; empty when the graph
            is scored as stored.
    """

    def __init__(self, session: ort.InferenceSession, features: Sequence[FeatureSpec],
                 packed: dict[str, list[int]]):  # fmt: skip
        self.session = session
        self.features = tuple(features)
        self.packed = packed
        stacked = {i for positions in packed.values() for i in positions}
        self._single = [(f.name, i, KINDS[f.kind], f) for i, f in enumerate(self.features) if i not in stacked]
        self._stacks = [(name, [(i, KINDS[self.features[i].kind], self.features[i]) for i in positions])
                        for name, positions in packed.items()]  # fmt: skip

    def feeds(self, columns: Sequence[pa.Array | pa.ChunkedArray]) -> dict[str, np.ndarray]:
        """ONNX inputs from the encoded Arrow columns of one batch."""
        columns = [_one_chunk(c) for c in columns]
        out = {name: kind.feed(f, columns[i]) for name, i, kind, f in self._single}
        for name, members in self._stacks:
            n = len(columns[members[0][0]])
            block = np.empty((len(members), n), dtype=np.float32)  # [k, N]: the graph transposes it
            for j, (i, kind, f) in enumerate(members):
                block[j] = kind.feed(f, columns[i]).reshape(-1)
            out[name] = block
        return out


def _one_chunk(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def packed_graph(proto: onnx.ModelProto, features: Sequence[FeatureSpec]) -> dict[str, list[int]]:
    """Rewrite ``proto`` in place so that each Concat of several raw [N, 1] FLOAT feature
    inputs (along axis 1, read by nothing else) reads one [k, N] graph input instead,
    through a Transpose. Returns {new input: feature positions, one row each, in
    order}; empty (and ``proto`` untouched) when the graph has no such node: a foreign
    graph, or a version whose graph reads its columns otherwise. A graph with subgraphs
    (If, Loop, Scan: their bodies may read an outer input) is left as it is."""
    graph = proto.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return {}
    position = {f.name: i for i, f in enumerate(features)}
    inputs = {i.name: i for i in graph.input}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    outputs = {o.name for o in graph.output}

    def float_column(name: str) -> bool:
        value = inputs.get(name)
        if value is None or name not in position or readers.get(name) != 1 or name in outputs:
            return False
        tensor = value.type.tensor_type
        dims = tensor.shape.dim
        return tensor.elem_type == TensorProto.FLOAT and len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value == 1

    found = []
    for node in graph.node:
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), None)
        if (node.op_type == "Concat" and node.domain in ("", "ai.onnx") and axis in (1, -1) and len(node.input) > 1
                and len(set(node.input)) == len(node.input) and all(float_column(n) for n in node.input)):  # fmt: skip
            found.append(node)
    packed: dict[str, list[int]] = {}
    for node in found:
        names = list(node.input)
        batch = inputs[names[0]].type.tensor_type.shape.dim[0]
        first = [i for i, value in enumerate(graph.input) if value.name in names][0]
        kept = [value for value in graph.input if value.name not in names]
        by_column = _fresh_name(proto, node.output[0] + "/columns")
        new = helper.make_tensor_value_info(by_column, TensorProto.FLOAT, [len(names), None])
        new.type.tensor_type.shape.dim[1].CopyFrom(batch)
        kept.insert(min(first, len(kept)), new)
        del graph.input[:]
        graph.input.extend(kept)
        # [k, N] in, one Transpose to the [N, k] the Concat made: filling a row per column
        # is a contiguous copy, where filling [N, k] column by column is strided
        # (benchmarks/predict_breakdown.py)
        at = list(graph.node).index(node)
        graph.node.remove(node)
        taken = {n.name for n in graph.node}
        node_name, k = (node.name or "dbml") + "/packed", 1
        while node_name in taken:
            node_name, k = f"{node.name or 'dbml'}/packed_{k}", k + 1
        graph.node.insert(at, helper.make_node("Transpose", [by_column], [node.output[0]], perm=[1, 0], name=node_name))
        for name in names:
            del inputs[name]
        packed[by_column] = [position[n] for n in names]
    return packed


def _fresh_name(proto: onnx.ModelProto, wanted: str) -> str:
    """``wanted``, or ``wanted`` with a number, so that no tensor of the graph has it."""
    graph = proto.graph
    taken = {i.name for i in graph.input} | {o.name for o in graph.output} | {i.name for i in graph.initializer}
    taken |= {name for n in graph.node for name in (*n.input, *n.output)}
    name, k = wanted, 1
    while name in taken:
        name, k = f"{wanted}_{k}", k + 1
    return name


_scoring: OrderedDict[str, ScoringSession] = OrderedDict()
_building = threading.Lock()


def scoring_session_for(sha256: str, size: int, load_blob: Callable[[], bytes], what: str,
                        features: Sequence[FeatureSpec]) -> ScoringSession:  # fmt: skip
    """The cached :class:`ScoringSession` of a verified blob (as :func:`session_for`
    verifies it), on the packed graph derived from it where :func:`packed_graph` finds
    one; the stored graph's own session otherwise."""
    key = sha256 + "/" + ",".join(f"{f.name}:{f.kind}" for f in features)
    with _lock:
        found = _scoring.get(key)
        if found is not None:
            _scoring.move_to_end(key)
            return found
    with _building:  # threads meeting a new version at once build its session once
        with _lock:
            found = _scoring.get(key)
        if found is not None:
            return found
        return _build_scoring(key, sha256, size, load_blob, what, features)


def _build_scoring(key: str, sha256: str, size: int, load_blob: Callable[[], bytes], what: str,
                   features: Sequence[FeatureSpec]) -> ScoringSession:  # fmt: skip
    blob = verify_blob(load_blob(), sha256, size, what)
    proto = parse_blob(blob, what)
    check_graph(proto, f"the ONNX blob of {what}", file_bytes=len(blob))  # the stored graph keeps its rules
    packed = packed_graph(proto, features)
    session = None
    if packed:
        try:
            session = _load(proto.SerializeToString(), what, proto)
        except DbmlError:  # a graph packing does not suit: score the stored graph, which names its own faults
            packed, session = {}, None
    if session is None:
        session = session_for(sha256, size, lambda: blob, what)
    scoring = ScoringSession(session, features, packed)
    with _lock:
        _scoring[key] = scoring
        while len(_scoring) > _CACHE_SIZE:
            _scoring.popitem(last=False)
    return scoring
