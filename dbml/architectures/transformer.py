"""A small transformer encoder over text columns, beside any other columns; and the
bag of words with a linear head (``USING bag``), the same encoders without attention.

Each text column's encoder (:class:`dbml.kinds.encoders.TextEncoder`) runs ``layers``
self-attention blocks over its words, with learned positions, and pools them into one
vector (masked mean); the vectors of every column are concatenated (numbers,
categories and the text vectors alike) and a small feed-forward layer mixes them
before the task's head. ``EMBED`` gives that layer's output.
"""

from __future__ import annotations

from typing import Any

from dbml.architectures import Architecture, check_parameters, concat
from dbml.architectures.mlp import DROPOUT, layers
from dbml.errors import OptionError
from dbml.kinds import Shape
from dbml.options import Option

__all__ = ["Transformer", "Bag"]

LAYERS = Option("layers", "int", 2, "self-attention blocks in each text column's encoder (0: a bag of words)", lambda v: 0 <= v <= 12,
                "between 0 and 12")  # fmt: skip
HEADS = Option("heads", "int", 4, "attention heads per block (they divide text_width)", lambda v: 1 <= v <= 32,
               "between 1 and 32")  # fmt: skip
HIDDEN = Option("hidden", "int_list", [64], "sizes of the feed-forward layers after the columns are joined",
                lambda v: len(v) <= 8 and all(1 <= h <= 8192 for h in v), "0 to 8 layer sizes, each between 1 and 8192")  # fmt: skip


class Transformer(Architecture):
    name = "transformer"
    description = "self-attention over the words of text columns, joined with the other columns"
    takes = frozenset({Shape.FLAT})
    options = (LAYERS, HEADS, HIDDEN, DROPOUT)

    def encoding(self, options: dict[str, Any]) -> dict[str, Any]:
        if options["text_width"] % options["heads"]:
            raise OptionError(
                f"option 'heads' = {options['heads']} must divide option 'text_width' = {options['text_width']} "
                f"(each head reads text_width / heads of every word's vector)"
            )
        return {"text_layers": options["layers"], "text_heads": options["heads"], "attention_dropout": options["dropout"]}

    def build(self, inputs: dict[str, tuple[int, ...]], task: str, options: dict[str, Any]):
        from torch import nn

        if not any(key.startswith("text:") for key in inputs):
            raise OptionError(
                f"USING {self.name} reads text columns and the source has none: name VARCHAR columns that hold prose "
                "with WITH (text = ['column']), or use mlp"
            )
        combine, width = concat(inputs)
        trunk = nn.Sequential(combine, *layers(width, options["hidden"], options["dropout"]))
        trunk.width = options["hidden"][-1] if options["hidden"] else width
        check_parameters(trunk, f"{self.name} trunk", "hidden")
        return trunk


BAG_HIDDEN = Option("hidden", "int_list", [], "sizes of feed-forward layers after the columns are joined ([]: a linear head)",
                    lambda v: len(v) <= 8 and all(1 <= h <= 8192 for h in v), "0 to 8 layer sizes, each between 1 and 8192")  # fmt: skip


class Bag(Transformer):
    """The mean of each text column's word and word-pair embeddings (fastText's shape,
    Joulin et al. 2016), joined with the other columns' encodings, then a linear head
    (``hidden = []``). On small text tables it beats attention trained from scratch
    (benchmarks/text.py)."""

    name = "bag"
    description = "a bag of words and word pairs per text column, joined with the other columns, and a linear head"
    options = (BAG_HIDDEN, DROPOUT)

    def encoding(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"text_layers": 0}
