"""The torch module of a version: encoders (one per input group, from the kinds) ->
trunk (from the architecture) -> head (from the task).

The same module trains and is exported, so imputation, scaling and embeddings are
written once; only the string-to-code lookup lives outside torch (Arrow at training,
``ai.onnx.ml.LabelEncoder`` in the graph), and the parity check at save time compares
the two. A batch is a dict {group key: tensor}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from dbml.tasks import Task

__all__ = ["Network", "Ensemble", "ExportWrapper"]


class Network(nn.Module):
    """Encoders -> trunk -> head.

    Attributes:
        keys: the group keys, in input order.
        width: the trunk's output width (the embedding).
    """

    def __init__(self, keys: list[str], encoders: list[nn.Module], trunk: nn.Module, head: nn.Module, task: "Task"):
        super().__init__()
        self.keys = list(keys)
        # ModuleDict keys may not hold '.', and column names may: index them
        self.encoders = nn.ModuleList(encoders)
        self.trunk, self.head = trunk, head
        self.task = task  # not a module: the task's outputs and loss read the network

    frozen: tuple[str, ...] = ()  # parts that stay as they are while the rest trains (a transfer's freeze)

    def train(self, mode: bool = True) -> "Network":
        """Training mode, except for frozen parts, which stay in eval mode (no dropout,
        batch-normalisation statistics kept)."""
        super().train(mode)
        for part in self.frozen:
            getattr(self, part).eval()
        return self

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: enc(batch[k]) for k, enc in zip(self.keys, self.encoders)}

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The trunk's output: the last hidden layer (an autoencoder's bottleneck)."""
        return self.trunk(self.encode(batch))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the loss takes: logits, a standardised value, a reconstruction."""
        return self.head(self.embed(batch))

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The fixed encoding of the inputs, flattened: what a reconstruction rebuilds."""
        return torch.cat([enc.target(batch[k]).flatten(1) for k, enc in zip(self.keys, self.encoders)], dim=1)

    def outputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The graph's outputs (before the task's ONNX tail), as users see them."""
        return self.task.outputs(self, batch)


class _MeanHead:
    """The head of an :class:`Ensemble`: each member's head on its share of the joined
    embedding, averaged (logits, a standardised value). Not a module: the weights are
    the members' own, registered once under ``members``. Anything else a task reads of a
    head (a regression's ``y_mean`` and ``y_std``) is the first member's: the members
    share the target's scaling."""

    def __init__(self, heads: list[nn.Module], widths: list[int]):
        self.heads, self.widths = heads, widths

    def __call__(self, embedding: torch.Tensor) -> torch.Tensor:
        parts = torch.split(embedding, self.widths, dim=1)
        return torch.stack([head(part) for head, part in zip(self.heads, parts)]).mean(dim=0)

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("heads", "widths"):
            raise AttributeError(name)
        return getattr(self.heads[0], name)


class _JoinedTrunk:
    """What an :class:`Ensemble` shows as its trunk: the width of the joined embedding."""

    def __init__(self, width: int):
        self.width = width


class Ensemble(Network):
    """Networks of one plan trained from different seeds, in one graph: the embedding is
    the members' embeddings side by side, the head's output the mean of the members'
    (logits for a classifier, the standardised value for a regression), so the task's
    outputs, metrics and ONNX tail work on it as on one network. Each member's weights
    are kept under ``members.<i>.`` (fine-tuning and transfer read them there)."""

    def __init__(self, members: list[Network]):
        nn.Module.__init__(self)
        first = members[0]
        self.keys = list(first.keys)
        self.members = nn.ModuleList(members)
        self.task = first.task
        widths = [int(m.trunk.width) for m in members]
        # not registered: the members own these modules (the baselines read the encoders)
        object.__setattr__(self, "_head", _MeanHead([m.head for m in members], widths))
        object.__setattr__(self, "_trunk", _JoinedTrunk(sum(widths)))
        object.__setattr__(self, "_encoders", first.encoders)

    head = property(lambda self: self._head)
    trunk = property(lambda self: self._trunk)
    encoders = property(lambda self: self._encoders)

    def train(self, mode: bool = True) -> "Ensemble":
        nn.Module.train(self, mode)
        for member in self.members:
            member.train(mode)
        return self

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.members[0].encode(batch)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([m.embed(batch) for m in self.members], dim=1)

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.members[0].targets(batch)


class ExportWrapper(nn.Module):
    """Positional group tensors -> the task's outputs, in ``names`` order (what
    torch.onnx.export traces)."""

    def __init__(self, model: Network, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor):
        out = self.model.outputs(dict(zip(self.model.keys, inputs)))
        return tuple(out[n] for n in self.names)
