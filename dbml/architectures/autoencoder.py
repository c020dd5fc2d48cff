"""The autoencoder: no TARGET; an encoder to a small bottleneck and a mirrored
decoder rebuild the rows' features; rows it rebuilds badly are unusual (see
:mod:`dbml.tasks.reconstruction`, whose score adds how rare each value is).

By default it is linear (no hidden layer) with a code of at most 2: on the six tables of
benchmarks/families.py's section 2 (376 to 5,000 rows) hidden layers learnt the rare rows
too. The reconstruction term's ROC AUC, seeds 42, 1 and 2, hidden [64, 32] and a third of
the inputs against linear with 2: breast cancer 0.73-0.88 against 0.90-0.92, wine
0.39-0.56 against 0.77-0.87, digits 0.41-0.55 against 0.66-0.67, penguins 0.44-0.68
against 0.98-0.99, the mixed table 0.90-0.91 against 0.89. ``hidden`` and ``bottleneck``
give a deeper or wider one."""

from __future__ import annotations

from typing import Any

from dbml.architectures import Architecture, concat
from dbml.architectures.mlp import layers
from dbml.kinds import Shape
from dbml.options import Option

__all__ = ["Autoencoder"]


NARROW_CODE = 4  # codes narrower than this go to the decoder without a ReLU
AUTO_CODE = 2  # the widest code bottleneck = 0 picks


class Autoencoder(Architecture):
    name = "autoencoder"
    description = "anomaly detection without a target: ANOMALY_SCORE, IS_ANOMALY, EMBED (the bottleneck)"
    takes = frozenset({Shape.FLAT, Shape.FIXED})
    provides = frozenset({"decoder"})  # rebuilds its inputs; no head for a target
    options = (
        Option("hidden", "int_list", [], "sizes of the encoder's hidden layers (the decoder mirrors them); "
               "none by default: a linear autoencoder",
               lambda v: 0 <= len(v) <= 8 and all(1 <= h <= 65536 for h in v), "0 to 8 sizes, each 1 to 65536"),
        Option("bottleneck", "int", 0, f"width of the code (EMBED's size); 0 picks a third of the inputs, 1 to {AUTO_CODE}",
               lambda v: 0 <= v <= 4096, "0 (auto) to 4096"),
        Option("dropout", "float", 0.0, "dropout after each hidden layer", lambda v: 0 <= v < 1, "in [0, 1)"),
    )  # fmt: skip

    def build(self, inputs: dict[str, tuple[int, ...]], task: str, options: dict[str, Any]):
        from torch import nn

        combine, width = concat(inputs)
        code = options["bottleneck"] or max(1, min(AUTO_CODE, width // 3))  # narrower than the inputs, or it learns the identity
        trunk = nn.Sequential(combine, *layers(width, options["hidden"], options["dropout"]), nn.Linear(
            options["hidden"][-1] if options["hidden"] else width, code))
        trunk.width = code
        return trunk

    def decoder(self, width: int, out: int, options: dict[str, Any]):
        from torch import nn

        sizes = list(reversed(options["hidden"]))
        # a ReLU on the code, except a very narrow one: on a one-wide code it zeroed every row
        # for 3 seeds of 10 and the model never learnt (10 of 10 learn without it); on wider
        # codes it helps (breast cancer ROC AUC over 8 seeds, benchmarks/families.py's rows:
        # 0.832 with it, 0.776 without)
        first = [nn.ReLU()] if width >= NARROW_CODE else []
        return nn.Sequential(*first, *layers(width, sizes, options["dropout"]), nn.Linear(sizes[-1] if sizes else width, out))
