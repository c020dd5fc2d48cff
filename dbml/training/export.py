"""Build the self-contained ONNX graph of a model version.

The torch module (encoders + trunk + head) is exported with torch.onnx; in front go
one input per raw feature column and the kinds' front nodes (``ai.onnx.ml.LabelEncoder``
for the category lookup, unknown -> 0); behind go the task's tail (a classifier's
label lookup) and the ``embedding`` output; metadata lets the file describe itself.
Only standard ONNX and ai.onnx.ml operators are used. :func:`export_module` is the one
place that calls torch's exporter, so the choice of exporter can change there.
"""

from __future__ import annotations

import io
import json
import threading
import warnings
from typing import Any

import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from dbml.errors import ExportError, FeatureError
from dbml.features import FeatureSpec
from dbml.kinds import groups as input_groups
from dbml.training.network import ExportWrapper, Network

__all__ = ["build_onnx", "export_module", "OPSET", "ML_OPSET", "PREFIX"]

OPSET = 17
ML_OPSET = 3
PREFIX = "dbml/"
_EXPORT_LOCK = threading.Lock()
_ELEM = {"float": TensorProto.FLOAT, "string": TensorProto.STRING}


def export_module(module: torch.nn.Module, args: tuple, input_names: list[str], output_names: list[str],
                  opset: int = OPSET) -> onnx.ModelProto:  # fmt: skip
    """Trace ``module`` on ``args`` with a dynamic batch axis "N" on every input and output.

    TorchScript-based exporter (``dynamo=False``): benchmarks/export.py measures it
    against the dynamo exporter on every family."""
    buf = io.BytesIO()
    axes = {n: {0: "N"} for n in [*input_names, *output_names]}
    with _EXPORT_LOCK, warnings.catch_warnings():  # torch.onnx.export keeps global state
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.cpu(), args, buf, input_names=input_names, output_names=output_names,
            dynamic_axes=axes, opset_version=opset, dynamo=False,
        )  # fmt: skip
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


def _keep_weights(graph: onnx.GraphProto, model: Network) -> None:
    """Add, as initializers no node reads, the weights the exporter folded or reshaped
    (batch normalisation into convolutions, LSTM/GRU gates into ONNX's W/R/B layout),
    under their torch names (``dbml/model.<state key>``), so that fine-tuning finds every
    weight of the module in the graph. Runtimes drop unused initializers at load."""
    present = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    for key, tensor in model.state_dict().items():
        name = f"{PREFIX}model.{key}"
        if name not in present:
            graph.initializer.append(numpy_helper.from_array(tensor.detach().cpu().numpy(), name))


def build_onnx(model: Network, features: list[FeatureSpec], profile: dict[str, dict[str, Any]],
               task, target, metadata: dict[str, Any]) -> bytes:  # fmt: skip
    """Return the serialized ONNX model of ``model`` with its preprocessing in the graph.

    Args:
        model: the trained module (on any device; exported from the CPU).
        features: raw feature columns in model order.
        profile: the training profile (vocabularies for the category lookup).
        task: the :class:`dbml.tasks.Task`.
        target: the task's :class:`dbml.tasks.Target` (labels, label type).
        metadata: extra ``dbml.*`` metadata entries (JSON-encoded when not strings).
    """
    outputs = task.graph_outputs(target)
    clash = [f.name for f in features if f.name in outputs or f.name.startswith(PREFIX)]
    if clash:
        raise FeatureError(
            f"feature column '{clash[0]}' has the name of an output of the ONNX graph "
            f"({', '.join(outputs)}) or starts with '{PREFIX}', kept for the graph's own names; rename it in the source query (SELECT {clash[0]} AS {clash[0]}_)"
        )
    grouped = input_groups(features)
    model = model.cpu().eval()
    args = tuple(
        torch.zeros(2, *g.kind.tensor_shape(g.features, profile), dtype=getattr(torch, g.kind.tensor_dtype)) for g in grouped
    )
    with torch.no_grad():
        names = list(model.outputs(dict(zip(model.keys, args))))
    traced = [PREFIX + n for n in names]
    try:
        opset = max([OPSET, *(g.kind.opset for g in grouped)])
        proto = export_module(ExportWrapper(model, names).eval(), args, [PREFIX + f"in_{i}" for i in range(len(grouped))], traced,
                              opset)  # fmt: skip
    except Exception as err:  # torch's exporter raises many types
        raise ExportError(f"torch could not export the network to ONNX: {err}") from None
    graph = proto.graph
    _prefix_names(graph)
    _keep_weights(graph, model)
    del graph.input[:]
    del graph.output[:]

    front: list[onnx.NodeProto] = []
    for f in features:
        kind = next(g.kind for g in grouped if f in g.features)
        graph.input.append(helper.make_tensor_value_info(f.name, _ELEM[kind.onnx_elem], kind.input_shape(f)))
    for i, g in enumerate(grouped):
        front += g.kind.front(g.features, profile, PREFIX + f"in_{i}", f"{PREFIX}{i}/")
    produced = dict(zip(names, traced))
    back, inits, outs = task.onnx_tail(target, produced, PREFIX)
    graph.initializer.extend(inits)
    for vi in outs:
        graph.output.append(vi)
    if "embedding" in produced:
        back.append(helper.make_node("Identity", [produced["embedding"]], ["embedding"], name=PREFIX + "embedding"))
        graph.output.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", int(model.trunk.width)]))

    nodes = front + list(graph.node) + back
    del graph.node[:]
    graph.node.extend(nodes)
    graph.name = "dbml"
    if any(n.domain == "ai.onnx.ml" for n in nodes):
        proto.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    proto.producer_name = "dbml"
    meta = {
        "dbml.task": task.name,
        "dbml.features": json.dumps([f.to_dict() for f in features]),
        "dbml.labels": json.dumps(target.labels) if target.labels is not None else "null",
        "dbml.outputs": json.dumps(outputs),
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items() if v is not None},
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

