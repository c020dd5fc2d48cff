"""Foreign ONNX models: files dbml did not write (a scikit-learn pipeline converted with
skl2onnx, a torch model the user exported), imported as architecture ``imported``.

:func:`describe_graph` reads the graph's inputs and outputs and says how SQL columns
feed it and what PREDICT returns; the result is stored in the version's ``options``
(``graph_inputs``, ``output``, ``proba``) and ``metrics`` (``outputs``), and the
per-version UDFs (:func:`dbml.udfs.register_imported`) run from it.

* Each graph input of shape ``[N]`` or ``[N, 1]`` is one feature column named after the
  input; an input of shape ``[N, F]`` (F fixed) takes F columns, which the user names
  with ``WITH (inputs = [...])`` (that list names every column of every input, in
  graph order). Which kind an input's columns are is the kinds' (:func:`dbml.kinds.foreign_kind`):
  float, double, int64, int32 and bool inputs are numeric features (cast to DOUBLE in
  SQL, to the input's dtype in the UDF); string inputs are categories.
* PREDICT returns the first output: one value per row for ``[N]`` or ``[N, 1]`` (DOUBLE
  for floats, BIGINT for integers, VARCHAR for strings, BOOLEAN for bools), a list per
  row for ``[N, K]``.
* PREDICT_PROBA exists when a float ``[N, K]`` output (K > 1) is named like
  ``probabilities`` / ``output_probability``: a STRUCT with fields ``'0'`` .. ``'K-1'``.
  A ZipMap output (a sequence of maps) does not count.

:func:`imported_feeds`, :func:`imported_output` and :func:`imported_proba` run a stored
layout: encoded Arrow columns -> the graph's inputs, its outputs -> Arrow columns (for
DuckDB's UDFs, :func:`dbml.udfs.register_imported`, and for scoring outside DuckDB).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc

from dbml.errors import FeatureError, ScoringError, TransferError
from dbml.features import FeatureSpec
from dbml.kinds import foreign_kind

__all__ = ["describe_graph", "imported_feeds", "imported_output", "imported_proba", "INPUT_DTYPES", "OUTPUT_TYPES"]

# onnxruntime's input type -> numpy dtype the UDF feeds
INPUT_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
    "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(string)": "string",
}  # fmt: skip
# onnxruntime's output element type -> the SQL type PREDICT returns
OUTPUT_TYPES = {
    **{f"tensor({t})": "DOUBLE" for t in ("float", "double", "float16", "bfloat16")},
    **{f"tensor({t})": "BIGINT" for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")},
    "tensor(string)": "VARCHAR",
    "tensor(bool)": "BOOLEAN",
}  # fmt: skip
_PROBA_NAMES = ("probabilities", "output_probability", "probability", "probas")


def _shape(shape: Any) -> list[Any]:
    """A shape as JSON: fixed sizes as ints, symbolic or unknown ones as their name or None."""
    return [d if isinstance(d, int) else (str(d) if d else None) for d in (shape or [])]


def _shown(shape: list[Any]) -> str:
    return "[" + ", ".join("N" if i == 0 and not isinstance(d, int) else (str(d) if d is not None else "?")
                           for i, d in enumerate(shape)) + "]"  # fmt: skip


def describe_graph(session: ort.InferenceSession, url: str, names: list[str] | None) -> dict[str, Any]:
    """How SQL columns feed the graph and what PREDICT returns.

    Args:
        session: the graph loaded in onnxruntime.
        url: where it came from, for messages.
        names: the ``inputs`` option: one column name per graph column, in graph order
            (required when an input takes several columns), or None.

    Returns a dict with ``features`` (FeatureSpec dicts), ``graph_inputs``, ``output``,
    ``proba`` (None without probabilities), ``outputs`` (name, type, shape of every
    output) and ``predict_type`` (the SQL type of PREDICT).

    Raises:
        TransferError: an input or the first output of a shape or type dbml cannot take
            (naming it), or an ``inputs`` list that does not fit.
    """
    graph_inputs = []
    for node in session.get_inputs():
        shape = _shape(node.shape)
        dtype = INPUT_DTYPES.get(node.type)
        if dtype is None:
            raise TransferError(
                f"input '{node.name}' of '{url}' has type {node.type}; dbml feeds float, double, int64, int32, "
                "bool and string tensors"
            )
        if len(shape) not in (1, 2) or (len(shape) == 2 and not isinstance(shape[1], int)):
            raise TransferError(
                f"input '{node.name}' of '{url}' has shape {_shown(shape)}; dbml feeds inputs of shape [N], "
                "[N, 1] (one column) or [N, F] with a fixed F (F columns)"
            )
        if isinstance(shape[0], int):
            raise TransferError(
                f"input '{node.name}' of '{url}' has a fixed batch size of {shape[0]} (shape {_shown(shape)}); "
                "export it with a dynamic first axis (torch.onnx.export(..., dynamic_axes=...), "
                "skl2onnx initial_types [None, F])"
            )
        width = shape[1] if len(shape) == 2 else 1
        if width < 1:
            raise TransferError(f"input '{node.name}' of '{url}' has shape {_shown(shape)}, which takes no column")
        graph_inputs.append({"name": node.name, "dtype": dtype, "shape": shape, "width": width})

    total = sum(g["width"] for g in graph_inputs)
    given = names is not None
    wide = [g for g in graph_inputs if g["width"] > 1]
    layout = ", ".join(f"'{g['name']}' {_shown(g['shape'])}" for g in graph_inputs)
    if names is None:
        if wide:
            g = wide[0]
            raise TransferError(
                f"input '{g['name']}' of '{url}' has shape {_shown(g['shape'])}: it takes {g['width']} columns; "
                f"name them in order with WITH (inputs = ['c1', ..., 'c{g['width']}'])"
                + (f" (one name per column of every input: {layout}, {total} in all)" if len(graph_inputs) > 1 else "")
            )
        names = [g["name"] for g in graph_inputs]
    elif len(names) != total:
        raise TransferError(
            f"option inputs names {len(names)} column(s), but the graph of '{url}' takes {total}: "
            + "; ".join(f"input '{g['name']}' {_shown(g['shape'])} takes {g['width']}" for g in graph_inputs)
        )
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise TransferError(f"option inputs must list column names, got {bad[0]!r}")
    seen: dict[str, str] = {}
    for n in names:
        if n.lower() in seen:
            if given is False:  # the graph's own input names: no option was given
                raise TransferError(
                    f"the graph of '{url}' has inputs '{seen[n.lower()]}' and '{n}', whose names differ only in case, "
                    "which SQL's column names cannot tell apart: name a column for each with "
                    f"WITH (inputs = [...]) ({total} names, in graph order: {layout})"
                )
            raise TransferError(f"option inputs names column '{n}' twice; each column feeds one place of the graph")
        seen[n.lower()] = n

    features, k = [], 0
    for g in graph_inputs:
        g["columns"] = names[k : k + g["width"]]
        k += g["width"]
        kind, sql_type = foreign_kind(g["dtype"])  # every dtype of INPUT_DTYPES has one
        for column in g["columns"]:
            features.append(FeatureSpec(column, kind, sql_type, g["name"]))
        del g["width"]

    outputs = [{"name": o.name, "type": o.type, "shape": _shape(o.shape)} for o in session.get_outputs()]
    first = outputs[0]
    sql_type = OUTPUT_TYPES.get(first["type"])
    shape = first["shape"]
    if sql_type is None:
        raise TransferError(
            f"the first output '{first['name']}' of '{url}' has type {first['type']}; PREDICT returns the first "
            "output, which must be a float, integer, string or bool tensor"
        )
    if len(shape) > 2:
        raise TransferError(
            f"the first output '{first['name']}' of '{url}' has shape {_shown(shape)}; PREDICT returns the first "
            "output, which must be [N] or [N, 1] (one value per row) or [N, K] (a list per row)"
        )
    as_list = len(shape) == 2 and shape[1] != 1
    output = {"name": first["name"], "type": first["type"], "list": as_list}
    predict_type = f"{sql_type}[]" if as_list else sql_type

    proba = None
    for o in outputs:
        s = o["shape"]
        if (o["name"].lower() in _PROBA_NAMES and o["type"] in ("tensor(float)", "tensor(double)")
                and len(s) == 2 and isinstance(s[1], int) and s[1] > 1):  # fmt: skip
            proba = {"name": o["name"], "fields": [str(i) for i in range(s[1])]}
            break
    return {
        "features": [f.to_dict() for f in features], "graph_inputs": graph_inputs, "output": output,
        "proba": proba, "outputs": outputs, "predict_type": predict_type,
    }  # fmt: skip


_ARROW_TYPES = {"VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}


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
            raise FeatureError(
                f"column '{feature.name}' has NULLs, but input '{feature.onnx_input}' of {what} takes {dtype}, "
                "which has no NULL: filter or fill them (coalesce) first"
            )
        values = pc.fill_null(values, float("nan"))
    array = values.to_numpy(zero_copy_only=False)
    return array != 0 if dtype == "bool" else array.astype(dtype, copy=False)


def imported_feeds(features: Sequence[FeatureSpec], options: dict[str, Any], what: str
                   ) -> Callable[[Sequence[pa.Array | pa.ChunkedArray]], dict[str, np.ndarray]]:  # fmt: skip
    """The feeds of a foreign graph from its features' encoded columns (in feature order),
    by the stored layout ``options`` (:func:`describe_graph`): each column in its input's
    dtype, the columns of an ``[N, F]`` input stacked in order."""
    features = tuple(features)
    position = {f.name: i for i, f in enumerate(features)}
    layout = [(g["name"], g["dtype"], len(g["shape"]), [position[c] for c in g["columns"]]) for g in options["graph_inputs"]]

    def feeds(columns) -> dict[str, np.ndarray]:
        out = {}
        for name, dtype, rank, indices in layout:
            arrays = [_imported_column(columns[i], features[i], dtype, what) for i in indices]
            out[name] = arrays[0] if rank == 1 else np.stack(arrays, axis=1)
        return out

    return feeds


def imported_output(options: dict[str, Any], predict_type: str, what: str) -> Callable[[np.ndarray, int], pa.Array]:
    """What PREDICT returns for ``n`` rows, from the graph's first output: one value per
    row in ``predict_type``, or a list per row (``predict_type`` ending in ``[]``)."""
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
            raise ScoringError(f"output '{options['output']['name']}' of {what} gave {out.size} values for {n} rows")
        return _typed(out.reshape(-1), element, arrow_type)

    return convert


def imported_proba(options: dict[str, Any]) -> tuple[str, list[str], Callable[[np.ndarray, int], pa.Array]] | None:
    """(graph output, STRUCT field names, conversion) of PREDICT_PROBA, or None when the
    layout has no probabilities."""
    proba = options.get("proba")
    if not proba:
        return None
    fields = list(proba["fields"])

    def convert(out: np.ndarray, n: int) -> pa.Array:
        out = np.asarray(out, dtype=np.float64).reshape(n, len(fields))
        return pa.StructArray.from_arrays([pa.array(out[:, k]) for k in range(len(fields))], names=fields)

    return proba["name"], fields, convert


def _typed(values: np.ndarray, sql_type: str, arrow_type: pa.DataType) -> pa.Array:
    if sql_type == "DOUBLE":
        return pa.array(values.astype(np.float64, copy=False), type=arrow_type)
    if sql_type == "BIGINT":
        return pa.array(values.astype(np.int64, copy=False), type=arrow_type)
    if sql_type == "BOOLEAN":
        return pa.array(values.astype(bool, copy=False), type=arrow_type)
    return pa.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], type=arrow_type)
