"""The recommender: matrix factorisation over a user id and an item id.

Each id kind's encoder gives an id's vector and bias (:class:`dbml.kinds.encoders.IdEncoder`);
this trunk turns them into two augmented vectors whose dot product is the pair's score::

    user = [u, 1, b_u + g]      item = [v, b_i, 1]      user . item = u.v + b_i + b_u + g

and returns them side by side, [N, 2 * (factors + 2)], so the recommendation task's
head is a dot product, ``EMBED`` gives both vectors, and RECOMMEND scores a user against
the whole catalogue with one matrix product. It never touches SQL.
"""

from __future__ import annotations

from typing import Any

from dbml.architectures import Architecture
from dbml.kinds import Shape
from dbml.options import Option

__all__ = ["Recommender", "FACTORS"]

FACTORS = Option("factors", "int", 32, "recommender: the length of each user's and item's learnt vector",
                 lambda v: 1 <= v <= 1024, "1 to 1024")  # fmt: skip


class Recommender(Architecture):
    name = "recommender"
    description = "matrix factorisation of user and item ids (implicit interactions or explicit ratings)"
    takes = frozenset({Shape.FLAT, Shape.FIXED, Shape.STEPS})  # other columns are read by the task, not the trunk
    provides = frozenset({"pair_vectors"})
    options = (FACTORS,)

    def build(self, inputs: dict[str, tuple[int, ...]], task: str, options: dict[str, Any]):
        import torch
        from torch import nn

        user_key, item_key = "ids/" + options["user"], "ids/" + options["item"]
        factors = int(options["factors"])

        class Trunk(nn.Module):
            def __init__(self):
                super().__init__()
                self.bias = nn.Parameter(torch.zeros(1))  # g
                self.user_key, self.item_key, self.factors = user_key, item_key, factors
                self.width = 2 * (factors + 2)

            def user(self, encoded: torch.Tensor) -> torch.Tensor:
                """An id encoding [..., factors + 1] -> the augmented user vector [..., factors + 2]."""
                ones = torch.ones_like(encoded[..., :1])
                return torch.cat([encoded[..., :factors], ones, encoded[..., factors:] + self.bias], dim=-1)

            def item(self, encoded: torch.Tensor) -> torch.Tensor:
                """An id encoding [..., factors + 1] -> the augmented item vector [..., factors + 2]."""
                ones = torch.ones_like(encoded[..., :1])
                return torch.cat([encoded, ones], dim=-1)

            def forward(self, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
                return torch.cat([self.user(encoded[user_key]), self.item(encoded[item_key])], dim=1)

        return Trunk()
