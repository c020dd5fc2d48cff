"""What an ONNX graph may do before onnxruntime sees its bytes.

Two entry points:

* :func:`inline_external_data` (IMPORT): tensors whose data lives in files beside the
  model are read from the model's own folder (never outside it) and put inside the
  graph, so a stored blob is self-contained.
* :func:`check_graph` (IMPORT, and every time a stored blob is loaded): refuses

  - external data anywhere (initializers, sparse tensors, ``Constant`` and other
    tensor attributes, subgraphs, model-local functions, training info): a blob
    loaded from bytes would otherwise read files relative to the scoring process's
    working directory;
  - operators outside the standard ONNX domains ``''`` / ``ai.onnx`` and
    ``ai.onnx.ml`` (model-local functions are allowed; their bodies are checked);
  - ``Loop`` unless its trip count is a constant and the product of the trip counts
    of nested loops is at most :data:`MAX_LOOP_ITERATIONS` (a loop that runs until its
    condition turns false, or whose count is computed, has no bound dbml can see);
  - constant tensors whose declared size disagrees with their data, or whose dense
    size (a sparse constant is densified by onnxruntime) is over
    :data:`MAX_TENSOR_BYTES` each or :data:`MAX_CONSTANT_BYTES` in all (or the file's
    own size, when larger);
  - with ``infer=True`` (IMPORT), any tensor whose shape, after ONNX shape inference
    with data propagation, is fixed and over :data:`MAX_TENSOR_BYTES`, or has a
    symbolic (batch) axis and fixed axes over :data:`MAX_ROW_BYTES` per row;
  - more than :data:`MAX_NODES` nodes or subgraphs nested deeper than
    :data:`MAX_DEPTH`.

What cannot be seen before running (a shape computed from the data) is bounded at
PREDICT by :func:`dbml.runtime.run_bounded` (memory, time, output size per batch).
"""

from __future__ import annotations

import os
import posixpath
from typing import Any, Iterator

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, SparseTensorProto, TensorProto

from dbml.errors import CorruptBlobError, UnsafeGraphError

__all__ = [
    "ALLOWED_DOMAINS", "MAX_LOOP_ITERATIONS", "MAX_TENSOR_BYTES", "MAX_ROW_BYTES", "MAX_CONSTANT_BYTES",
    "MAX_NODES", "MAX_DEPTH", "parse_blob", "inline_external_data", "check_graph", "has_external_data",
]  # fmt: skip

ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
MAX_LOOP_ITERATIONS = 100_000  # product of the constant trip counts of nested Loops
MAX_TENSOR_BYTES = 1 << 30  # any one tensor of fixed shape: 1 GiB
MAX_ROW_BYTES = 1 << 20  # fixed axes of a tensor with a batch axis: 1 MiB per row (2 GiB for 2,048 rows)
MAX_CONSTANT_BYTES = 1 << 30  # every constant tensor, dense, in all (or the file's size when larger)
MAX_NODES = 250_000
MAX_DEPTH = 16  # subgraphs (If / Loop / Scan bodies, function calls) within each other
_ORT_MEMORY_MARKER = "_ORT_MEM_ADDR_"  # onnxruntime's "data at this address" location


def parse_blob(blob: bytes, what: str) -> ModelProto:
    """The ModelProto of a stored blob; CorruptBlobError when it does not parse."""
    try:
        return onnx.load_from_string(blob)
    except Exception as err:  # protobuf's DecodeError and friends
        raise CorruptBlobError(
            f"the ONNX blob of {what} does not parse as an ONNX model ({type(err).__name__}: {err}); its size "
            "and sha256 match the registry, so the registry row itself was changed: drop the version and "
            "IMPORT it again from a trusted export"
        ) from None


# -- walking every tensor and node ----------------------------------------------------------


def _graph_tensors(graph: GraphProto) -> Iterator[tuple[str, TensorProto | SparseTensorProto]]:
    for t in graph.initializer:
        yield f"initializer '{t.name}'", t
    for s in graph.sparse_initializer:
        yield f"sparse initializer '{s.values.name}'", s


def _attribute_tensors(node: onnx.NodeProto) -> Iterator[tuple[str, TensorProto | SparseTensorProto]]:
    where = f"attribute '{{}}' of node '{node.name or node.op_type}' ({node.op_type})"
    for a in node.attribute:
        if a.type == AttributeProto.TENSOR or a.HasField("t"):
            yield where.format(a.name), a.t
        if a.type == AttributeProto.SPARSE_TENSOR or a.HasField("sparse_tensor"):
            yield where.format(a.name), a.sparse_tensor
        for t in a.tensors:
            yield where.format(a.name), t
        for s in a.sparse_tensors:
            yield where.format(a.name), s


def _subgraphs(node: onnx.NodeProto) -> Iterator[GraphProto]:
    for a in node.attribute:
        if a.HasField("g"):
            yield a.g
        yield from a.graphs


def _all_graphs(model: ModelProto) -> Iterator[tuple[GraphProto | onnx.FunctionProto, int]]:
    """Every graph and function body of the model, with its nesting depth."""
    stack: list[tuple[Any, int]] = [(model.graph, 0)]
    stack += [(f, 1) for f in model.functions]
    for info in model.training_info:
        stack += [(info.initialization, 1), (info.algorithm, 1)]
    while stack:
        graph, depth = stack.pop()
        yield graph, depth
        for node in graph.node:
            stack += [(g, depth + 1) for g in _subgraphs(node)]


def _tensors(model: ModelProto) -> Iterator[tuple[str, TensorProto | SparseTensorProto]]:
    for graph, _ in _all_graphs(model):
        if isinstance(graph, GraphProto):
            yield from _graph_tensors(graph)
        for node in graph.node:
            yield from _attribute_tensors(node)


def _dense_parts(t: TensorProto | SparseTensorProto) -> list[TensorProto]:
    return [t.values, t.indices] if isinstance(t, SparseTensorProto) else [t]


def _is_external(t: TensorProto) -> bool:
    return t.data_location == TensorProto.EXTERNAL or len(t.external_data) > 0


def has_external_data(model: ModelProto) -> bool:
    return any(_is_external(p) for _, t in _tensors(model) for p in _dense_parts(t))


# -- external data at IMPORT ----------------------------------------------------------------


def inline_external_data(model: ModelProto, fs: Any, path: str, url: str, max_bytes: int) -> int:
    """Read every tensor's external data from the model's folder into the graph.

    Args:
        model: the parsed model, changed in place.
        fs, path: the fsspec file system and the model file's path on it.
        url: the model's URL, for messages.
        max_bytes: the most bytes of external data read in all.

    Returns the number of bytes inlined (0: the model had no external data).

    Raises:
        UnsafeGraphError: a location that is absolute, leaves the model's folder (``..``,
            a symbolic link), names onnxruntime's in-memory marker, or cannot be read;
            data whose length disagrees with the tensor; more than ``max_bytes`` in all.
    """
    folder = posixpath.dirname(path)
    local = "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))
    total = 0
    for where, t in _tensors(model):
        for part in _dense_parts(t):
            if not _is_external(part):
                continue
            info = {e.key: e.value for e in part.external_data}
            location = info.get("location", "")
            refused = _refused_location(location)
            if refused:
                raise UnsafeGraphError(
                    f"{where} of '{url}' keeps its data in '{location}', {refused}; dbml reads external data only "
                    "from files inside the model's own folder: save the model with its data inside "
                    "(onnx.save(model, path, save_as_external_data=False)) or keep the data files beside it"
                )
            target = posixpath.join(folder, *location.replace("\\", "/").split("/"))
            if local:
                real_folder = os.path.realpath(folder or ".")
                real = os.path.realpath(target)
                if os.path.commonpath([real_folder, real]) != real_folder:
                    raise UnsafeGraphError(
                        f"{where} of '{url}' keeps its data in '{location}', which resolves to '{real}', outside the "
                        f"model's folder '{real_folder}'; dbml reads external data only from inside that folder"
                    )
            try:
                offset = int(info.get("offset", "0") or 0)
                length = int(info["length"]) if info.get("length") else None
            except ValueError:
                raise UnsafeGraphError(f"{where} of '{url}' has an external-data offset or length that is not a number") from None
            expected = _nbytes(part)
            if expected is None:
                raise UnsafeGraphError(f"{where} of '{url}' keeps data of type {_type_name(part)} outside the file, which ONNX does not allow")
            if length is not None and length != expected:
                raise UnsafeGraphError(
                    f"{where} of '{url}' declares {length:,} bytes of external data, its shape needs {expected:,}"
                )
            if offset < 0 or total + expected > max_bytes:
                raise UnsafeGraphError(
                    f"the external data of '{url}' is over the import limit of {max_bytes:,} bytes (option max_size)"
                    if offset >= 0 else f"{where} of '{url}' has a negative external-data offset"
                )
            try:
                with fs.open(target, "rb") as f:
                    f.seek(offset)
                    data = f.read(expected)
            except Exception as err:
                raise UnsafeGraphError(
                    f"cannot read the external data '{location}' of {where} of '{url}': {type(err).__name__}: {err}"
                ) from None
            if len(data) != expected:
                raise UnsafeGraphError(
                    f"the external data '{location}' of {where} of '{url}' has {len(data):,} bytes from offset "
                    f"{offset:,}; the tensor needs {expected:,}"
                )
            part.raw_data = data
            del part.external_data[:]
            part.ClearField("data_location")
            total += expected
    return total


def _refused_location(location: str) -> str | None:
    """Why an external-data location is refused, or None."""
    if not location:
        return "an empty location"
    if "\x00" in location:
        return "a location with a NUL character"
    if _ORT_MEMORY_MARKER in location:
        return "onnxruntime's marker for data at a memory address"
    normal = location.replace("\\", "/")
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":") or "://" in normal:
        return "an absolute path"
    if ".." in normal.split("/"):
        return "a path that leaves the model's folder"
    return None


# -- the checks -----------------------------------------------------------------------------


def _type_name(t: TensorProto) -> str:
    return TensorProto.DataType.Name(t.data_type) if t.data_type in TensorProto.DataType.values() else str(t.data_type)


def _itemsize(elem_type: int) -> int | None:
    """Bytes per element of an ONNX element type; None for strings and unknown types."""
    if elem_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except Exception:  # float8, int4 and other types without a numpy twin
        return 1


def _elements(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _nbytes(t: TensorProto) -> int | None:
    size = _itemsize(t.data_type)
    if size is None:
        return None
    if t.data_type in (TensorProto.INT4, TensorProto.UINT4) or t.data_type == getattr(TensorProto, "FLOAT4E2M1", -1):
        return (_elements(t.dims) + 1) // 2
    return _elements(t.dims) * size


_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _check_constant(where: str, t: TensorProto | SparseTensorProto, name: str) -> int:
    """The dense bytes of one constant tensor, after checking its declared size."""
    if isinstance(t, SparseTensorProto):
        dims, elem = list(t.dims), t.values.data_type
        for part in (t.values, t.indices):
            _check_constant(where, part, name)
    else:
        dims, elem = list(t.dims), t.data_type
    if any(d < 0 for d in dims):
        raise UnsafeGraphError(f"{where} of {name} has a negative dimension {dims}")
    elements = _elements(dims)
    dense = elements * (_itemsize(elem) or 8)
    if dense > MAX_TENSOR_BYTES:
        raise UnsafeGraphError(
            f"{where} of {name} is a constant of shape {dims} ({dense:,} bytes when dense), over dbml's bound of "
            f"{MAX_TENSOR_BYTES:,} bytes for one tensor"
        )
    if isinstance(t, TensorProto) and not _is_external(t):
        if t.raw_data:
            expected = _nbytes(t)
            if expected is not None and len(t.raw_data) != expected:
                raise UnsafeGraphError(
                    f"{where} of {name} holds {len(t.raw_data):,} bytes, its shape {dims} needs {expected:,}"
                )
        else:
            values = sum(len(getattr(t, f)) for f in _TYPED_FIELDS)
            if values not in (elements, 2 * elements) and not (values == 0 and elements == 0):
                raise UnsafeGraphError(f"{where} of {name} holds {values:,} values, its shape {dims} has {elements:,}")
    return dense


def _constant_int(name: str, scopes: list[dict[str, TensorProto]]) -> int | None:
    for scope in reversed(scopes):
        t = scope.get(name)
        if t is not None:
            try:
                values = onnx.numpy_helper.to_array(t).reshape(-1)
            except Exception:
                return None
            return int(values[0]) if values.size == 1 and values.dtype.kind in "iu" else None
    return None


def _constants(graph: Any) -> dict[str, TensorProto]:
    """The tensors of a graph known before it runs: initializers and Constant outputs."""
    known: dict[str, TensorProto] = {}
    if isinstance(graph, GraphProto):
        known.update({t.name: t for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    known[node.output[0]] = a.t
                elif a.name == "value_int":
                    known[node.output[0]] = onnx.helper.make_tensor("c", TensorProto.INT64, [], [a.i])
    return known


def _check_nodes(model: ModelProto, name: str) -> None:
    """Operators, loop trip counts, node count and nesting depth, through subgraphs and
    model-local functions."""
    functions = {(f.domain, f.name): f for f in model.functions}
    count = 0

    def visit(graph: Any, depth: int, iterations: int, scopes: list[dict[str, TensorProto]], calls: tuple) -> None:
        nonlocal count
        if depth > MAX_DEPTH:
            raise UnsafeGraphError(f"{name} nests subgraphs or function calls more than {MAX_DEPTH} deep")
        scopes = [*scopes, _constants(graph)]
        for node in graph.node:
            count += 1
            if count > MAX_NODES:
                raise UnsafeGraphError(f"{name} has more than {MAX_NODES:,} nodes")
            op = f"'{node.op_type}'" + (f" of domain '{node.domain}'" if node.domain else "")
            key = (node.domain, node.op_type)
            if key in functions:
                if key in calls:
                    raise UnsafeGraphError(f"{name} calls its function {op} from inside itself")
                visit(functions[key], depth + 1, iterations, [], (*calls, key))
                continue
            if node.domain not in ALLOWED_DOMAINS:
                raise UnsafeGraphError(
                    f"{name} uses operator {op} (node '{node.name or node.op_type}'); dbml runs only the standard ONNX "
                    "operators (domains 'ai.onnx' and 'ai.onnx.ml'): convert the model without custom or "
                    "vendor operators (for skl2onnx, no custom converters; for torch, plain torch.onnx.export)"
                )
            inner = iterations
            if node.op_type == "Loop" and node.domain in ("", "ai.onnx"):
                trips = _constant_int(node.input[0], scopes) if node.input and node.input[0] else None
                if trips is None:
                    how = "computed while the graph runs" if node.input and node.input[0] else "absent: it runs until its condition turns false"
                    raise UnsafeGraphError(
                        f"{name} has a Loop (node '{node.name or 'Loop'}') whose trip count is {how}; dbml imports "
                        f"loops only with a constant trip count (at most {MAX_LOOP_ITERATIONS:,} iterations, nested "
                        "loops multiplied), since nothing else bounds how long PREDICT would run"
                    )
                inner = iterations * max(trips, 0)
                if inner > MAX_LOOP_ITERATIONS:
                    raise UnsafeGraphError(
                        f"{name} has a Loop (node '{node.name or 'Loop'}') of {trips:,} iterations"
                        + (f" ({inner:,} with the loops around it)" if inner != trips else "")
                        + f"; dbml's bound is {MAX_LOOP_ITERATIONS:,} iterations in one run of the graph"
                    )
            for sub in _subgraphs(node):
                visit(sub, depth + 1, max(inner, 1), scopes, calls)

    visit(model.graph, 0, 1, [], ())
    for info in model.training_info:
        visit(info.initialization, 1, 1, [], ())
        visit(info.algorithm, 1, 1, [], ())


def _value_infos(model: ModelProto) -> Iterator[onnx.ValueInfoProto]:
    for graph, _ in _all_graphs(model):
        if isinstance(graph, GraphProto):
            yield from graph.input
            yield from graph.output
            yield from graph.value_info
    for f in model.functions:
        yield from f.value_info


def _check_shapes(model: ModelProto, name: str) -> None:
    """Declared and inferred tensor shapes against the per-tensor and per-row bounds."""
    for info in _value_infos(model):
        if not info.type.HasField("tensor_type") or not info.type.tensor_type.HasField("shape"):
            continue
        tensor = info.type.tensor_type
        fixed, symbolic = 1, False
        dims = []
        for d in tensor.shape.dim:
            if d.HasField("dim_value"):
                if d.dim_value < 0:
                    symbolic = True
                    dims.append("?")
                    continue
                fixed *= d.dim_value
                dims.append(str(d.dim_value))
            else:
                symbolic = True
                dims.append(d.dim_param or "?")
        size = fixed * (_itemsize(tensor.elem_type) or 8)
        bound = MAX_ROW_BYTES if symbolic else MAX_TENSOR_BYTES
        if size > bound:
            per = " per row (its fixed axes)" if symbolic else ""
            raise UnsafeGraphError(
                f"{name} has a tensor '{info.name}' of shape [{', '.join(dims)}]: {size:,} bytes{per}, over dbml's "
                f"bound of {bound:,} bytes{per}; a graph that grows its data this much cannot be scored safely"
            )


def check_graph(model: ModelProto, name: str, infer: bool = False, file_bytes: int = 0) -> None:
    """Refuse a graph that could read files, run foreign code, or grow without bound.

    Args:
        model: the parsed model (not changed).
        name: names it in messages ("'scorer.onnx'", "the ONNX blob of model 'm' version 2").
        infer: also run ONNX shape inference (with data propagation) and check every
            inferred shape (IMPORT; loading a stored blob skips it, its graph was
            checked when it came in).
        file_bytes: the serialized size; constants may add up to this much even when
            it is over :data:`MAX_CONSTANT_BYTES`.

    Raises:
        UnsafeGraphError: naming the tensor, node or operator and the bound.
    """
    total = 0
    for where, t in _tensors(model):
        for part in _dense_parts(t):
            if _is_external(part):
                location = {e.key: e.value for e in part.external_data}.get("location", "")
                raise UnsafeGraphError(
                    f"{where} of {name} keeps its data outside the graph ('{location}'); dbml loads only "
                    "self-contained graphs (IMPORT MODEL reads such data from the model's folder into the graph)"
                )
        total += _check_constant(where, t, name)
    limit = max(MAX_CONSTANT_BYTES, file_bytes)
    if total > limit:
        raise UnsafeGraphError(f"the constant tensors of {name} hold {total:,} bytes when dense, over dbml's bound of {limit:,}")
    _check_nodes(model, name)
    if not infer:
        _check_shapes(model, name)
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:
        try:
            inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
        except Exception as err:
            raise UnsafeGraphError(f"ONNX shape inference fails on {name}: {type(err).__name__}: {err}") from None
    _check_shapes(inferred, name)
