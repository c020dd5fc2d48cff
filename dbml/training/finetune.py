"""Fine-tuning: a new version that starts from a stored version's weights and keeps its
preprocessing (the same scaling, vocabularies and labels), so it stays comparable.

The weights come from the parent's ONNX blob itself (initializers named after the
torch parameters), checked against the registry's sha256; nothing but ONNX is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from dbml.errors import FeatureError, TargetError, TrainingError
from dbml.features import FeatureSpec
from dbml.registry import Registry
from dbml.runtime import verify_blob

__all__ = ["Parent", "load_parent", "check_compatible", "load_weights", "members_of", "member_weights"]

_PREFIX = "dbml/model."


@dataclass
class Parent:
    record: dict[str, Any]
    weights: dict[str, np.ndarray]  # torch state-dict key -> array

    @property
    def features(self) -> list[FeatureSpec]:
        return [FeatureSpec(**f) for f in self.record["features"]]


def load_parent(registry: Registry, model: str, version: int | None) -> Parent:
    """The version to start from (``version`` None: the default alias, else the latest)."""
    rec = registry.get(model, version)
    what = f"model '{rec['model']}' version {rec['version']}"
    blob = verify_blob(registry.blob(rec["model"], rec["version"]), rec["onnx_sha256"], rec["onnx_size"], what)
    graph = onnx.load_from_string(blob).graph
    weights = {i.name[len(_PREFIX):]: numpy_helper.to_array(i) for i in graph.initializer if i.name.startswith(_PREFIX)}
    if not weights:
        raise TrainingError(f"{what} has no dbml weights in its graph (an imported foreign model?); it cannot be fine-tuned")
    return Parent(rec, weights)


def check_compatible(parent: Parent, features: list[FeatureSpec], target: str, task: str, labels: list[Any] | None) -> None:
    """Refuse data whose features, target, task or labels the parent cannot take."""
    rec = parent.record
    what = f"model '{rec['model']}' version {rec['version']}"
    old = {f.name.lower(): f.kind for f in parent.features}
    new = {f.name.lower(): f.kind for f in features}
    missing = sorted(set(old) - set(new))
    extra = sorted(set(new) - set(old))
    changed = sorted(n for n in set(old) & set(new) if old[n] != new[n])
    if missing or extra or changed:
        parts = [f"missing {', '.join(missing)}" if missing else "", f"new {', '.join(extra)}" if extra else "",
                 f"changed kind {', '.join(changed)}" if changed else ""]  # fmt: skip
        raise FeatureError(
            f"cannot fine-tune {what}: the features differ ({'; '.join(p for p in parts if p)}); "
            f"it takes {', '.join(f.name for f in parent.features)}"
        )
    if (rec["target"] or "").lower() != (target or "").lower():
        raise TargetError(f"cannot fine-tune {what}: it predicts '{rec['target']}', not '{target}'")
    if rec["task"] != task:
        raise TargetError(f"cannot fine-tune {what}: it is a {rec['task']} model, the new data make a {task}")
    if labels is not None:
        unknown = [v for v in labels if v not in rec["labels"]]
        if unknown:
            raise TargetError(f"cannot fine-tune {what}: label(s) {unknown} are not among its labels {rec['labels']}")


def check_labels(parent: Parent, labels: list[Any]) -> None:
    """Refuse class labels the parent does not know."""
    rec = parent.record
    unknown = [v for v in labels if v not in rec["labels"]]
    if unknown:
        raise TargetError(
            f"cannot fine-tune model '{rec['model']}' version {rec['version']}: label(s) {unknown} are not among its labels {rec['labels']}"
        )


def load_weights(module: torch.nn.Module, parent: Parent) -> None:
    """Copy the parent's weights into a module of the same shape.

    Every parameter must be in the parent's graph; buffers the graph does not use
    (an empty indicator list, a classifier's target scaling) keep the values the
    module was built with, from the same profile.
    """
    state = module.state_dict()
    parameters = {k for k, _ in module.named_parameters()}
    missing = [k for k in parameters if k not in parent.weights]
    wrong = [k for k in state if k in parent.weights and tuple(parent.weights[k].shape) != tuple(state[k].shape)]
    if missing or wrong:
        rec = parent.record
        raise TrainingError(
            f"cannot fine-tune model '{rec['model']}' version {rec['version']}: its graph lacks or reshapes "
            f"{', '.join(missing + wrong)}: its network has another layout (a version trained by dbml before "
            "0.2's model seam, or with other options); train a new version instead"
        )
    loaded = {k: torch.from_numpy(np.array(parent.weights[k])).to(v.dtype) if k in parent.weights else v for k, v in state.items()}
    module.load_state_dict(loaded)


_MEMBER = "members."


def members_of(stored) -> int:
    """How many networks a stored version (a :class:`Parent` or a transfer's base) holds:
    an ensemble keeps each one's weights under ``members.<i>.``; 1 otherwise."""
    found = {k[len(_MEMBER):].split(".", 1)[0] for k in stored.weights if k.startswith(_MEMBER)}
    return len({int(i) for i in found if i.isdigit()}) or 1


def member_weights(stored, member: int):
    """``stored`` (a :class:`Parent` or a base) with the weights of its network number
    ``member`` (in turn, when it holds fewer) under one network's names; itself when it
    is one network."""
    import dataclasses

    held = members_of(stored)
    if held == 1 and not any(k.startswith(_MEMBER) for k in stored.weights):
        return stored
    prefix = f"{_MEMBER}{member % held}."
    return dataclasses.replace(stored, weights={k[len(prefix):]: v for k, v in stored.weights.items() if k.startswith(prefix)})
