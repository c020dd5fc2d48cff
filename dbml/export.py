"""Build the self-contained ONNX graph of a model version.

The torch module (preprocessing + network + head) is exported with torch.onnx;
around it go one input per raw feature column (float, or string for categories),
``ai.onnx.ml.LabelEncoder`` nodes for the category lookup (unknown -> 0), the
label lookup for classifiers, and metadata that lets the file describe itself.
Only standard ONNX and ai.onnx.ml operators are used.
"""

from __future__ import annotations

import io
import threading
import json
import warnings
from typing import Any

import onnx
import torch
from onnx import TensorProto, helper

from dbml.errors import ExportError, FeatureError
from dbml.features import FeatureSpec
from dbml.model import ExportWrapper, TabularModel

__all__ = ["build_onnx", "OUTPUTS", "OPSET", "ML_OPSET"]

OPSET = 17
ML_OPSET = 3
PREFIX = "dbml/"
OUTPUTS = {
    "classification": {
        "label": "predicted class label, one per row, in the target's type",
        "probabilities": "float [N, K]: class probabilities, columns in the order of dbml.labels",
    },
    "regression": {"value": "float [N]: predicted value in the target's units"},
}
_EXPORT_LOCK = threading.Lock()
_LABEL_TENSOR = {"string": TensorProto.STRING, "int64": TensorProto.INT64, "bool": TensorProto.BOOL}


def _export_module(model: TabularModel, n_numeric: int, n_category: int, output: str) -> onnx.ModelProto:
    wrapper = ExportWrapper(model, n_numeric > 0, n_category > 0).eval()
    names, args = [], []
    if n_numeric:
        names.append(PREFIX + "x_num")
        args.append(torch.zeros(2, n_numeric, dtype=torch.float32))
    if n_category:
        names.append(PREFIX + "x_cat")
        args.append(torch.zeros(2, n_category, dtype=torch.long))
    buf = io.BytesIO()
    axes = {n: {0: "N"} for n in names} | {PREFIX + output: {0: "N"}}
    with _EXPORT_LOCK, warnings.catch_warnings():  # torch.onnx.export keeps global state
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper.cpu(),
            tuple(args),
            buf,
            input_names=names,
            output_names=[PREFIX + output],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


def _prefix_names(graph: onnx.GraphProto) -> None:
    """Give every internal tensor and node a ``dbml/`` prefix so no feature column
    name can collide with them."""

    def fix(name: str) -> str:
        return name if not name or name.startswith(PREFIX) else PREFIX + name

    for node in graph.node:
        node.input[:] = [fix(n) for n in node.input]
        node.output[:] = [fix(n) for n in node.output]
        node.name = fix(node.name)
    for init in graph.initializer:
        init.name = fix(init.name)
    for vi in graph.value_info:
        vi.name = fix(vi.name)


def build_onnx(
    model: TabularModel,
    features: list[FeatureSpec],
    profile: dict[str, dict[str, Any]],
    task: str,
    labels: list[Any] | None,
    label_onnx_type: str | None,
    metadata: dict[str, Any],
) -> bytes:
    """Return the serialized ONNX model of ``model`` with its preprocessing in the graph.

    Args:
        model: the trained module (on any device; exported from the CPU).
        features: raw feature columns in model order.
        profile: the training profile (vocabularies for the category lookup).
        task: classification or regression.
        labels: class labels in output order (classification).
        label_onnx_type: string, int64 or bool (classification).
        metadata: extra ``dbml.*`` metadata entries (JSON-encoded when not strings).
    """
    outputs = list(OUTPUTS[task])
    clash = [f.name for f in features if f.name in outputs or f.name.startswith(PREFIX)]
    if clash:
        raise FeatureError(
            f"feature column '{clash[0]}' has the name of an output of the ONNX graph "
            f"({', '.join(outputs)}) or starts with '{PREFIX}', kept for the graph's own names; rename it in the source query (SELECT {clash[0]} AS {clash[0]}_)"
        )
    numeric = [f for f in features if f.kind != "category"]
    categories = [f for f in features if f.kind == "category"]
    head = "probabilities" if task == "classification" else "value"
    try:
        proto = _export_module(model, len(numeric), len(categories), head)
    except Exception as err:  # torch's exporter raises many types
        raise ExportError(f"torch could not export the network to ONNX: {err}") from None
    graph = proto.graph
    _prefix_names(graph)
    del graph.input[:]
    del graph.output[:]

    front: list[onnx.NodeProto] = []
    for f in features:
        elem = TensorProto.STRING if f.kind == "category" else TensorProto.FLOAT
        graph.input.append(helper.make_tensor_value_info(f.name, elem, ["N", 1]))
    if numeric:
        front.append(helper.make_node("Concat", [f.name for f in numeric], [PREFIX + "x_num"], axis=1, name=PREFIX + "concat_numeric"))
    if categories:
        codes = []
        for i, f in enumerate(categories):
            vocab = [str(v) for v in profile[f.name]["vocabulary"]]
            out = f"{PREFIX}code_{i}"
            front.append(
                helper.make_node(
                    "LabelEncoder",
                    [f.name],
                    [out],
                    domain="ai.onnx.ml",
                    keys_strings=vocab or [""],
                    values_int64s=list(range(1, len(vocab) + 1)) or [0],
                    default_int64=0,
                    name=f"{PREFIX}lookup_{i}",
                )
            )
            codes.append(out)
        front.append(helper.make_node("Concat", codes, [PREFIX + "x_cat"], axis=1, name=PREFIX + "concat_codes"))

    back: list[onnx.NodeProto] = []
    if task == "classification":
        assert labels is not None and label_onnx_type is not None
        back.append(helper.make_node("Identity", [PREFIX + head], ["probabilities"], name=PREFIX + "probabilities"))
        back.append(helper.make_node("ArgMax", ["probabilities"], [PREFIX + "argmax"], axis=1, keepdims=0, name=PREFIX + "argmax"))
        if label_onnx_type == "string":
            vals: list[Any] = [str(v).encode("utf-8") for v in labels]
        elif label_onnx_type == "bool":
            vals = [bool(v) for v in labels]
        else:
            vals = [int(v) for v in labels]
        graph.initializer.append(helper.make_tensor(PREFIX + "labels", _LABEL_TENSOR[label_onnx_type], [len(vals)], vals))
        back.append(helper.make_node("Gather", [PREFIX + "labels", PREFIX + "argmax"], ["label"], axis=0, name=PREFIX + "label"))
        graph.output.append(helper.make_tensor_value_info("label", _LABEL_TENSOR[label_onnx_type], ["N"]))
        graph.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(vals)]))
    else:
        back.append(helper.make_node("Identity", [PREFIX + head], ["value"], name=PREFIX + "value"))
        graph.output.append(helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N"]))

    nodes = front + list(graph.node) + back
    del graph.node[:]
    graph.node.extend(nodes)
    graph.name = "dbml"
    if categories:
        proto.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    proto.producer_name = "dbml"
    meta = {
        "dbml.task": task,
        "dbml.features": json.dumps([f.to_dict() for f in features]),
        "dbml.labels": json.dumps(labels) if labels is not None else "null",
        "dbml.outputs": json.dumps(OUTPUTS[task]),
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the ONNX graph failed onnx's checker: {err}") from None
    return proto.SerializeToString()
