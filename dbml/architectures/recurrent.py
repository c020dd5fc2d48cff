"""Recurrent networks (LSTM, GRU) on sequence columns: a LIST of numbers per row (a
sensor window, a customer's last amounts), of any length; other columns join after
the recurrent layer as covariates. Each sequence is read with a 'present' channel,
so padding and missing values are told apart from zeros."""

from __future__ import annotations

from typing import Any

from dbml.architectures import Architecture, check_parameters
from dbml.errors import FeatureError
from dbml.kinds import Shape
from dbml.options import Option

__all__ = ["LSTM", "GRU"]


class _Recurrent(Architecture):
    takes = frozenset({Shape.FLAT, Shape.STEPS})
    provides = frozenset({"head", "sequence_input"})  # a forecaster's window is a sequence
    cell = ""
    options = (
        Option("hidden", "int", 64, "width of the recurrent state", lambda v: 1 <= v <= 4096, "1 to 4096"),
        Option("layers", "int", 1, "stacked recurrent layers", lambda v: 1 <= v <= 8, "1 to 8"),
        Option("dropout", "float", 0.1, "dropout before the head", lambda v: 0 <= v < 1, "in [0, 1)"),
    )  # fmt: skip

    def build(self, inputs: dict[str, tuple[int, ...]], task: str, options: dict[str, Any]):
        import math

        import torch
        from torch import nn

        sequences = [k for k in inputs if k.startswith("array:")]
        if not sequences:
            raise FeatureError(
                f"USING {self.name} needs a sequence column (a LIST or ARRAY of numbers per row); the source has none: "
                "build one with list(...) ORDER BY in a GROUP BY, or use USING mlp"
            )
        others = [k for k in inputs if k not in sequences]
        cell = getattr(nn, self.cell)
        hidden = options["hidden"]
        width = hidden * len(sequences) + sum(math.prod(inputs[k]) for k in others)

        class Trunk(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnns = nn.ModuleList(cell(2, hidden, num_layers=options["layers"], batch_first=True) for _ in sequences)
                self.drop = nn.Dropout(options["dropout"])
                self.width = width

            def forward(self, encoded):
                parts = []
                for k, rnn in zip(sequences, self.rnns):
                    out, _ = rnn(encoded[k])
                    parts.append(out[:, -1, :])  # the state after the last step
                parts += [encoded[k].flatten(1) for k in others]
                return self.drop(torch.cat(parts, dim=1))

        trunk = Trunk()
        check_parameters(trunk, f"{self.name} network", "hidden")
        return trunk


class LSTM(_Recurrent):
    name = "lstm"
    cell = "LSTM"
    description = "long short-term memory network for sequence columns (with other columns as covariates)"


class GRU(_Recurrent):
    name = "gru"
    cell = "GRU"
    description = "gated recurrent network for sequence columns (with other columns as covariates)"
