"""The tabular multi-layer perceptron."""

from __future__ import annotations

from typing import Any

from torch import nn

from dbml.architectures import Architecture
from dbml.errors import OptionError
from dbml.options import Option

__all__ = ["MLP", "MAX_PARAMETERS"]

MAX_PARAMETERS = 50_000_000


class MLP(Architecture):
    name = "mlp"
    description = "feed-forward network for numeric, boolean, date and category columns"
    kinds = frozenset({"numeric", "boolean", "datetime", "category"})
    options = (
        Option("hidden", "int_list", [128, 64], "sizes of the hidden layers",
               lambda v: 1 <= len(v) <= 16 and all(1 <= h <= 65536 for h in v),
               "1 to 16 layer sizes, each between 1 and 65536"),
        Option("dropout", "float", 0.1, "dropout after each hidden layer", lambda v: 0 <= v < 1, "in [0, 1)"),
    )  # fmt: skip

    def build(self, input_dim: int, output_dim: int, options: dict[str, Any]) -> nn.Module:
        sizes = [input_dim, *options["hidden"], output_dim]
        n_parameters = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
        if n_parameters > MAX_PARAMETERS:
            raise OptionError(
                f"option 'hidden' = {options['hidden']} makes a network of {n_parameters:,} parameters "
                f"for {input_dim} inputs; the limit is {MAX_PARAMETERS:,}: use smaller layers"
            )
        layers: list[nn.Module] = []
        width = input_dim
        for h in options["hidden"]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if options["dropout"] > 0:
                layers.append(nn.Dropout(options["dropout"]))
            width = h
        layers.append(nn.Linear(width, output_dim))
        return nn.Sequential(*layers)
