"""The tabular multi-layer perceptron."""

from __future__ import annotations

from typing import Any

from dbml.architectures import MAX_PARAMETERS, Architecture, concat
from dbml.errors import OptionError
from dbml.kinds import Shape
from dbml.options import Option

__all__ = ["MLP", "layers"]

HIDDEN = Option("hidden", "int_list", [128, 64], "sizes of the hidden layers",
                lambda v: 1 <= len(v) <= 16 and all(1 <= h <= 65536 for h in v),
                "1 to 16 layer sizes, each between 1 and 65536")  # fmt: skip
DROPOUT = Option("dropout", "float", 0.1, "dropout after each hidden layer", lambda v: 0 <= v < 1, "in [0, 1)")


def layers(width: int, sizes: list[int], dropout: float, last_activation: bool = True):
    """Linear + ReLU (+ dropout) per size; returns a list of modules."""
    from torch import nn

    out: list[nn.Module] = []
    for i, h in enumerate(sizes):
        out.append(nn.Linear(width, h))
        if last_activation or i < len(sizes) - 1:
            out.append(nn.ReLU())
            if dropout > 0:
                out.append(nn.Dropout(dropout))
        width = h
    return out


class MLP(Architecture):
    name = "mlp"
    description = "feed-forward network for numeric, boolean, date, category and array columns"
    takes = frozenset({Shape.FLAT, Shape.FIXED})
    options = (HIDDEN, DROPOUT)
    binned_numbers = True
    ensembled = True

    def build(self, inputs: dict[str, tuple[int, ...]], task: str, options: dict[str, Any]):
        from torch import nn

        combine, width = concat(inputs)
        sizes = [width, *options["hidden"]]
        n = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
        if n > MAX_PARAMETERS:  # before any weight is allocated
            raise OptionError(
                f"option 'hidden' = {options['hidden']} makes a network of {n:,} parameters for {width} inputs; "
                f"the limit is {MAX_PARAMETERS:,}: use smaller layers"
            )
        trunk = nn.Sequential(combine, *layers(width, options["hidden"], options["dropout"]))
        trunk.width = options["hidden"][-1]
        return trunk
