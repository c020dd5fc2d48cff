"""The torch encoders of the kinds' groups (imported only when something trains).

Each maps its group's tensor to an encoded tensor of ``shape`` (without the batch
axis), and ``target(x)`` gives the fixed encoding a reconstruction task rebuilds
(standardised numbers, one-hot categories), never a learned one that could collapse.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["NumberEncoder", "CategoryEncoder", "ArrayEncoder", "TextEncoder", "IdEncoder", "window_stats"]


def window_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's mean and spread over its present (non-NaN) values, as [N, 1]; a
    spread of 0 (or no value) counts as 1. The forecaster scales each window by them."""
    present = ~torch.isnan(x)
    count = present.sum(dim=1, keepdim=True).clamp_min(1).to(x.dtype)
    filled = torch.where(present, x, torch.zeros_like(x))
    mean = filled.sum(dim=1, keepdim=True) / count
    var = (torch.where(present, x - mean, torch.zeros_like(x)) ** 2).sum(dim=1, keepdim=True) / count
    std = torch.sqrt(var)
    return mean, torch.where(std > 1e-6, std, torch.ones_like(std))


def quantile_bins(entry: dict[str, Any]) -> list[float]:
    """The edges of a numeric column's piecewise-linear encoding: its training minimum,
    deciles and maximum, repeats dropped ([] when fewer than three are distinct: a flag or
    a constant gains nothing from bins)."""
    if entry.get("kind") != "numeric" or entry.get("min") is None or entry.get("max") is None:
        return []
    edges = sorted({float(entry["min"]), *(float(q) for q in entry.get("quantiles") or []), float(entry["max"])})
    return edges if len(edges) >= 3 else []


class NumberEncoder(nn.Module):
    """Impute (training mean) and standardise; a missing-value indicator for the
    columns that had NULLs at training. NULL and NaN both arrive as NaN.

    With ``bins`` (option ``numeric_encoding = 'quantile'``), each numeric column with
    three or more distinct training deciles also gets a piecewise-linear encoding over
    them (Gorishniy et al., 2022, "On Embeddings for Numerical Features in Tabular Deep
    Learning"): one value per bin between consecutive edges, 0 below the bin, 1 above it,
    linear inside (the first bin unbounded below, the last above), so the first layer can
    bend each column's effect where its values are. A missing value is encoded as the
    mean (its indicator says it was missing).
    """

    def __init__(self, features, profile: dict[str, dict[str, Any]], bins: bool = False):
        super().__init__()
        mean = [profile[f.name]["mean"] for f in features]
        std = [profile[f.name]["std"] or 1.0 for f in features]
        std = [s if s > 1e-12 else 1.0 for s in std]
        indicators = [i for i, f in enumerate(features) if profile[f.name]["nulls"] > 0]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1))
        self.register_buffer("indicators", torch.tensor(indicators, dtype=torch.long))
        column, lo, width, floor, ceiling = [], [], [], [], []
        for i, f in enumerate(features):
            edges = quantile_bins(profile[f.name]) if bins else []
            for j in range(len(edges) - 1):
                column.append(i)
                lo.append(edges[j])
                width.append(max(edges[j + 1] - edges[j], 1e-12))
                floor.append(-1e30 if j == 0 else 0.0)
                ceiling.append(1e30 if j == len(edges) - 2 else 1.0)
        self.n_bins = len(column)
        self.register_buffer("bin_column", torch.tensor(column, dtype=torch.long))
        for name, values in (("bin_lo", lo), ("bin_width", width), ("bin_floor", floor), ("bin_ceiling", ceiling)):
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32).reshape(1, -1))
        self.n_indicators = len(indicators)
        self.shape = (len(features) + self.n_bins + len(indicators),)
        self.n_features = len(features)

    def target_width(self) -> int:
        return self.n_features

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return self._scaled(x, torch.isnan(x))

    def _scaled(self, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        # Standardise, then 0 where missing: the same numbers, bit for bit, as imputing
        # the mean first ((mean - mean) / std is +0.0), but the exported Where takes a
        # scalar instead of a [1, F] row, which onnxruntime runs about a third faster
        # on 2,048 x 20 (benchmarks/predict.py's model).
        return torch.where(missing, torch.zeros((), dtype=x.dtype, device=x.device), (x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(x)
        parts = [self._scaled(x, missing)]
        if self.n_bins:
            filled = torch.where(missing, self.mean.expand_as(x), x).index_select(1, self.bin_column)
            parts.append(torch.minimum(torch.maximum((filled - self.bin_lo) / self.bin_width, self.bin_floor), self.bin_ceiling))
        if self.n_indicators:
            parts.append(missing.index_select(1, self.indicators).to(torch.float32))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class CategoryEncoder(nn.Module):
    """One ``nn.Embedding`` per column (code 0: unknown or NULL); memory linear in the
    vocabulary, whatever its size."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        from dbml.kinds.category import embedding_dim

        self.sizes = sizes
        self.tables = nn.ModuleList(nn.Embedding(k, embedding_dim(k)) for k in sizes)
        self.shape = (sum(t.embedding_dim for t in self.tables),)
        for i, k in enumerate(sizes):  # one-hot targets by comparison, linear in k
            self.register_buffer(f"codes_{i}", torch.arange(k, dtype=torch.long).reshape(1, -1), persistent=False)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([(x[:, i : i + 1] == getattr(self, f"codes_{i}")).to(torch.float32) for i in range(len(self.sizes))], dim=1)

    def target_width(self) -> int:
        return sum(self.sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([t(x[:, i]) for i, t in enumerate(self.tables)], dim=1)


class ArrayEncoder(nn.Module):
    """Standardise the elements with the training mean and spread; missing elements
    become 0. ``channels = 2`` (sequences) adds a 'present' channel: [N, L, 2]; else [N, L]."""

    def __init__(self, length: int, mean: float, std: float, channels: int = 1, instance: bool = False):
        super().__init__()
        self.instance = instance  # scale each row by its own mean and spread (forecasting windows)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std) if std > 1e-12 else 1.0))
        self.channels = channels
        self.shape = (length,) if channels == 1 else (length, 2)
        self.length = length

    def target_width(self) -> int:
        return self.length

    def target(self, x: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(x)
        return torch.where(missing, torch.zeros_like(x), (x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(x)
        if self.instance:
            mean, std = window_stats(x)
            scaled = torch.where(missing, torch.zeros_like(x), (x - mean) / std)
        else:
            scaled = torch.where(missing, torch.zeros_like(x), (x - self.mean) / self.std)
        if self.channels == 1:
            return scaled
        return torch.stack([scaled, (~missing).to(torch.float32)], dim=2)


class TextEncoder(nn.Module):
    """Word codes [N, W] (0 pads, 1 unknown; the first ``tokens`` are words, any after
    them pairs of neighbouring words) -> one vector [N, width] per row.

    While training, ``word_dropout`` hides each word and pair code at random (it reads as
    padding), so no single word carries a row.

    ``layers = 0`` (an mlp's text column): the mean of the word embeddings, a bag of
    words (fastText's encoder). ``layers > 0`` (``USING transformer``): learned
    positions are added and pre-norm self-attention blocks run over the words, padding
    masked, before the same masked mean. A row with no word encodes as zeros. The
    attention is written with plain matrix products so the graph holds standard
    operators only.
    """

    def __init__(self, vocabulary: int, tokens: int, width: int, layers: int = 0, heads: int = 4, dropout: float = 0.0,
                 pooled_dropout: float = 0.0, word_dropout: float = 0.0):  # fmt: skip
        super().__init__()
        self.word_dropout = word_dropout
        self.words = nn.Embedding(vocabulary, width, padding_idx=0)
        nn.init.normal_(self.words.weight, std=width**-0.5)
        with torch.no_grad():
            self.words.weight[0].zero_()
        self.layers, self.tokens = layers, tokens
        if layers:
            if width % heads:
                from dbml.errors import OptionError

                raise OptionError(f"option 'heads' = {heads} must divide 'text_width' = {width}")
            self.positions = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
            self.blocks = nn.ModuleList(_Block(width, heads, dropout) for _ in range(layers))
            self.norm = nn.LayerNorm(width)
        self.shape = (width,)
        self.pooled_drop = nn.Dropout(pooled_dropout)

    def target_width(self) -> int:
        return 0  # an autoencoder rebuilds the other columns; text only feeds its encoder

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 0, dtype=torch.float32, device=x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0]:
            # words sit first in each row, padding after them: a training batch drops the columns no row
            # reaches (the pairs' too), so short texts cost what they hold. The exported graph keeps them all.
            longest = max(int((x[:, : self.tokens] > 0).sum(dim=1).max()), 1)
            x = torch.cat([x[:, :longest], x[:, self.tokens : self.tokens + longest - 1]], dim=1)
            tokens = longest
            if self.word_dropout > 0:
                x = x * (torch.rand(x.shape, device=x.device) >= self.word_dropout)
        else:
            tokens = self.tokens
        present = (x > 0).to(torch.float32).unsqueeze(2)  # [N, W, 1]
        h = self.words(x)
        if self.layers:  # attention over the words (the first T codes); pairs of words join the mean after
            words, pairs = h[:, :tokens], h[:, tokens:]
            words = words + self.positions[:, :tokens]
            bias = (1.0 - present[:, :tokens].transpose(1, 2)) * -1e4  # [N, 1, T]: padding gets no attention
            for block in self.blocks:
                words = block(words, bias)
            h = torch.cat([self.norm(words), pairs], dim=1)
        count = present.sum(dim=1).clamp_min(1.0)
        return self.pooled_drop((h * present).sum(dim=1) / count)


class _Block(nn.Module):
    """Pre-norm multi-head self-attention and a feed-forward layer, each residual."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_width = heads, width // heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, t, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(n, t, 3, self.heads, self.head_width).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_width) + bias.unsqueeze(1)  # [N, H, T, T]
        mixed = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(n, t, w)
        h = h + self.drop(self.out(mixed))
        return h + self.drop(self.ff(self.norm2(h)))


class IdEncoder(nn.Module):
    """One learnt row of ``factors + 1`` numbers per id (an id's vector, then its bias):
    small random vectors, zero biases. Code 0 (an id unseen at training, or NULL) never
    trains and stays all zero, so an unknown user's score is the item's bias."""

    def __init__(self, size: int, factors: int):
        super().__init__()
        self.size, self.factors = size, factors
        self.table = nn.Embedding(size, factors + 1)
        with torch.no_grad():
            self.table.weight.normal_(0.0, 0.1)
            self.table.weight[:, factors].zero_()
            self.table.weight[0].zero_()
        self.shape = (factors + 1,)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32)

    def target_width(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table(x[:, 0])
