"""The recommender: matrix factorisation over a user id and an item id, with a tower of
side columns for each when the task names them (a two-tower model).

Each id kind's encoder gives an id's vector and bias (:class:`dbml.kinds.encoders.IdEncoder`);
the side columns of a user (the groups of its tower, ``user/...``) add a linear map of
their encodings to it, and the item's alike. This trunk turns the two into augmented
vectors whose dot product is the pair's score::

    user = [u, 1, b_u + g]      item = [v, b_i, 1]      user . item = u.v + b_i + b_u + g

and returns them side by side, [N, 2 * (factors + 2)], so the recommendation task's
head is a dot product, ``EMBED`` gives both vectors, and RECOMMEND scores a user against
the whole catalogue with one matrix product. It never touches SQL.
"""

from __future__ import annotations

import math
from typing import Any

from dbml.architectures import Architecture
from dbml.kinds import Shape
from dbml.options import Option

__all__ = ["Recommender", "FACTORS"]

FACTORS = Option("factors", "int", 32, "recommender: the length of each user's and item's learnt vector",
                 lambda v: 1 <= v <= 1024, "1 to 1024")  # fmt: skip


class Recommender(Architecture):
    name = "recommender"
    description = "matrix factorisation of user and item ids (implicit interactions or explicit ratings), two towers with side columns"
    takes = frozenset({Shape.FLAT, Shape.FIXED, Shape.STEPS})  # the task picks the columns; side columns are flattened
    provides = frozenset({"pair_vectors"})
    options = (FACTORS,)

    def build(self, inputs: dict[str, tuple[int, ...]], task: str, options: dict[str, Any]):
        import torch
        from torch import nn

        user_key, item_key = "ids/" + options["user"], "ids/" + options["item"]
        factors = int(options["factors"])
        sides = {t: [k for k in inputs if k.startswith(t + "/")] for t in ("user", "item")}

        def side(keys):
            width = sum(math.prod(inputs[k]) for k in keys)
            return nn.Linear(width, factors + 1) if keys else None

        class Trunk(nn.Module):
            def __init__(self):
                super().__init__()
                self.bias = nn.Parameter(torch.zeros(1))  # g
                self.user_key, self.item_key, self.factors = user_key, item_key, factors
                self.user_side, self.item_side = side(sides["user"]), side(sides["item"])
                self.width = 2 * (factors + 2)

            @property
            def has_item_side(self) -> bool:
                return self.item_side is not None

            def _raw(self, encoded, key, tower, layer):
                out = encoded[key]
                if layer is not None:
                    out = out + layer(torch.cat([encoded[k].flatten(1) for k in sides[tower]], dim=1))
                return out

            def user(self, raw: torch.Tensor) -> torch.Tensor:
                """A user's id encoding (+ side) [..., factors + 1] -> its augmented vector [..., factors + 2]."""
                ones = torch.ones_like(raw[..., :1])
                return torch.cat([raw[..., :factors], ones, raw[..., factors:] + self.bias], dim=-1)

            def item(self, raw: torch.Tensor) -> torch.Tensor:
                """An item's id encoding (+ side) [..., factors + 1] -> its augmented vector [..., factors + 2]."""
                return torch.cat([raw, torch.ones_like(raw[..., :1])], dim=-1)

            def user_of(self, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
                return self.user(self._raw(encoded, user_key, "user", self.user_side))

            def item_of(self, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
                return self.item(self._raw(encoded, item_key, "item", self.item_side))

            def forward(self, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
                return torch.cat([self.user_of(encoded), self.item_of(encoded)], dim=1)

        return Trunk()
