"""Convolutional networks on an array column: images ``shape = [C, H, W]`` or signal
windows ``shape = [C, L]``.

Blocks of convolution (3 wide, padded), batch normalisation, ReLU and 2x max pooling,
one per entry of ``channels`` (pooling stops when a side reaches 1), then a dense
layer; other columns (numbers, categories) join after the convolutions. Without
``shape`` a square length n*n is read as [1, n, n] and any other length as [1, L].
"""

from __future__ import annotations

import math
from typing import Any

from dbml.architectures import Architecture, check_parameters
from dbml.errors import FeatureError, OptionError
from dbml.kinds import Shape
from dbml.options import Option

__all__ = ["CNN"]


def image_shape(length: int, shape: list[int], column: str) -> list[int]:
    """The [C, H, W] or [C, L] shape of an array of ``length`` values."""
    if not shape:
        side = math.isqrt(length)
        return [1, side, side] if side * side == length and side > 1 else [1, length]
    if math.prod(shape) != length:
        raise FeatureError(
            f"option 'shape' = {shape} holds {math.prod(shape):,} values, but the arrays of column '{column}' have "
            f"{length:,}: give a shape whose product is {length:,} ([channels, height, width] or [channels, length])"
        )
    return list(shape)


class CNN(Architecture):
    name = "cnn"
    description = "convolutional network for an image or signal array column (with other columns as covariates)"
    takes = frozenset({Shape.FLAT, Shape.FIXED})
    options = (
        Option("shape", "int_list", [], "the array as [channels, height, width] or [channels, length]; [] infers it",
               lambda v: len(v) in (0, 2, 3) and all(1 <= d <= 65536 for d in v), "[] or 2 or 3 sizes, each 1 to 65536"),
        Option("channels", "int_list", [32, 64], "output channels of each convolution block",
               lambda v: 1 <= len(v) <= 8 and all(1 <= c <= 1024 for c in v), "1 to 8 sizes, each 1 to 1024"),
        Option("hidden", "int", 128, "width of the dense layer after the convolutions", lambda v: 1 <= v <= 65536, "1 to 65536"),
        Option("dropout", "float", 0.2, "dropout before the head", lambda v: 0 <= v < 1, "in [0, 1)"),
    )  # fmt: skip

    def build(self, inputs: dict[str, tuple[int, ...]], task: str, options: dict[str, Any]):
        import torch
        from torch import nn

        arrays = [k for k in inputs if k.startswith("array:")]
        if len(arrays) != 1:
            raise FeatureError(
                f"USING cnn needs exactly one array column (FLOAT[n] or a LIST of numbers of one length); the source has "
                f"{len(arrays)}" + (f": {', '.join(k[6:] for k in arrays)}" if arrays else "")
                + (": pack several into one with list_concat" if len(arrays) > 1 else "")
            )
        image = arrays[0]
        shape = image_shape(inputs[image][0], options["shape"], image[6:])
        conv = nn.Conv2d if len(shape) == 3 else nn.Conv1d
        norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
        pool = nn.MaxPool2d if len(shape) == 3 else nn.MaxPool1d
        blocks: list[nn.Module] = []
        c, sides = shape[0], shape[1:]
        for out in options["channels"]:
            blocks += [conv(c, out, 3, padding=1), norm(out), nn.ReLU()]
            if min(sides) >= 2:
                blocks.append(pool(2))
                sides = [s // 2 for s in sides]
            c = out
        features = c * math.prod(sides)
        others = [k for k in inputs if k != image]
        extra = sum(math.prod(inputs[k]) for k in others)
        if (features + extra) * options["hidden"] > 40_000_000:
            raise OptionError(
                f"the convolutions of USING cnn leave {features:,} values per row; with hidden = {options['hidden']} the "
                "dense layer is too large: add a block to 'channels' (each halves the sides) or lower 'hidden'"
            )
        dense = [nn.Linear(features + extra, options["hidden"]), nn.ReLU()]
        if options["dropout"] > 0:
            dense.append(nn.Dropout(options["dropout"]))
        view = [-1, *shape]

        class Trunk(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks, self.dense = nn.Sequential(*blocks), nn.Sequential(*dense)
                self.width = options["hidden"]

            def forward(self, encoded):
                x = self.blocks(encoded[image].reshape(view)).flatten(1)
                if others:
                    x = torch.cat([x, *(encoded[k].flatten(1) for k in others)], dim=1)
                return self.dense(x)

        trunk = Trunk()
        check_parameters(trunk, "convolutional network", "channels")
        return trunk
