"""Batches: what the training loop consumes, epoch after epoch.

A batch is a dict of tensors, ``{group key: tensor, "target": tensor}``, with the rows
on the first axis. :class:`Batches` is the interface the loop sees; it never needs
the whole table. An implementation decides each epoch's order from the seed and the
epoch number alone (so epoch ``k`` can be replayed, and every worker agrees on it)
and gives worker ``shard`` of ``shards`` its share of that order: together the shards
cover every row once.

:class:`TensorBatches` holds the rows as tensors (in memory, on the training device
when that is where the caller put them). A streaming implementation over DuckDB record
batches (tables larger than memory) is another class with the same three members.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import torch

__all__ = ["Batch", "Batches", "TensorBatches", "rows", "take", "epoch_order"]

Batch = dict[str, torch.Tensor]  # {group key: tensor, "target": tensor}


def rows(batch: Batch) -> int:
    """Rows of a batch."""
    return next(iter(batch.values())).shape[0]


def take(batch: Batch, idx: torch.Tensor) -> Batch:
    """Rows ``idx`` of a batch."""
    return {k: t.index_select(0, idx) for k, t in batch.items()}


def epoch_order(n: int, seed: int, epoch: int, shard: int = 0, shards: int = 1, shuffle: bool = True) -> np.ndarray:
    """The rows of ``shard`` in epoch ``epoch``: a permutation of ``range(n)`` drawn from
    (seed, epoch) alone, every ``shards``-th position from ``shard`` on."""
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n) if shuffle else np.arange(n)
    return order[shard::shards]


class Batches(Protocol):
    """An iterable of dict batches, one epoch at a time.

    Attributes:
        rows: the rows this shard yields per epoch.
    """

    rows: int

    def epoch(self, number: int) -> Iterator[Batch]:
        """The batches of epoch ``number`` (from 1), in that epoch's order."""
        ...

    def __iter__(self) -> Iterator[Batch]:
        """Every row of this shard once, in a fixed order (validation, metrics)."""
        ...


class TensorBatches:
    """Batches over tensors held in memory.

    Args:
        tensors: {name: tensor}, equal first axes (the training device's, or the CPU's).
        batch_size: rows per batch.
        seed: the seed of the per-epoch order.
        shuffle: a new order each epoch (training) or the rows as they are.
        shard, shards: this worker's share of every epoch.
        drop_single: skip a last batch of one row when batches are larger (batch
            normalisation cannot train on one row).
    """

    def __init__(self, tensors: Batch, batch_size: int, seed: int = 0, shuffle: bool = True, shard: int = 0,
                 shards: int = 1, drop_single: bool = False):  # fmt: skip
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} of {shards}")
        self.tensors, self.batch_size, self.seed, self.shuffle = tensors, max(int(batch_size), 1), seed, shuffle
        self.shard, self.shards, self.drop_single = shard, shards, drop_single
        n = rows(tensors) if tensors else 0
        self.total = n
        self.rows = len(range(shard, n, shards))

    def order(self, number: int, shuffle: bool | None = None) -> torch.Tensor:
        """This shard's rows in epoch ``number``, as indices on the tensors' device."""
        shuffle = self.shuffle if shuffle is None else shuffle
        idx = epoch_order(self.total, self.seed, number, self.shard, self.shards, shuffle)
        device = next(iter(self.tensors.values())).device
        return torch.from_numpy(idx).to(device)

    def _batches(self, idx: torch.Tensor | None) -> Iterator[Batch]:
        if idx is None:  # every row in order: views, no copy
            for start in range(0, self.total, self.batch_size):
                yield {k: t[start : start + self.batch_size] for k, t in self.tensors.items()}
            return
        for start in range(0, idx.numel(), self.batch_size):
            part = idx[start : start + self.batch_size]
            if self.drop_single and part.numel() == 1 and self.batch_size > 1:
                continue
            yield take(self.tensors, part)

    def epoch(self, number: int) -> Iterator[Batch]:
        if not self.tensors:
            return iter(())
        whole = not self.shuffle and self.shards == 1 and not self.drop_single
        return self._batches(None if whole else self.order(number))

    def __iter__(self) -> Iterator[Batch]:
        if not self.tensors:
            return iter(())
        return self._batches(None if self.shards == 1 else self.order(0, shuffle=False))
