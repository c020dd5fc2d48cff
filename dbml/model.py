"""The torch side of a tabular model: preprocessing fitted from the profile, the
architecture's network, and the head that the ONNX graph exposes.

The same module trains and is exported, so imputation, scaling and one-hot coding
are written once; only the string-to-code lookup lives outside torch (Arrow at
training, ``ai.onnx.ml.LabelEncoder`` in the graph), and the parity check at save
time compares the two.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dbml.features import FeatureSpec

__all__ = ["TabularPreprocessor", "TabularModel"]


class TabularPreprocessor(nn.Module):
    """Impute (training mean) and standardise numbers, add a missing-value indicator
    for columns that had NULLs at training, one-hot code categories (code 0 = unknown).

    NULL and NaN both arrive as NaN and are imputed alike. The one-hot of a category
    column of k codes compares its code with ``arange(k)`` (memory linear in k; an
    identity matrix would take k * k floats, 40 GB at k = 100,000)."""

    def __init__(self, features: list[FeatureSpec], profile: dict[str, dict[str, Any]]):
        super().__init__()
        numeric = [f for f in features if f.kind != "category"]
        categories = [f for f in features if f.kind == "category"]
        mean = [profile[f.name]["mean"] for f in numeric]
        std = [profile[f.name]["std"] or 1.0 for f in numeric]
        std = [s if s > 1e-12 else 1.0 for s in std]
        indicators = [i for i, f in enumerate(numeric) if profile[f.name]["nulls"] > 0]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1))
        self.register_buffer("indicators", torch.tensor(indicators, dtype=torch.long))
        self.n_numeric = len(numeric)
        self.n_indicators = len(indicators)
        self.category_sizes = [len(profile[f.name]["vocabulary"]) + 1 for f in categories]
        for i, k in enumerate(self.category_sizes):  # codes 0..k-1; one-hot by comparison, linear in k
            self.register_buffer(f"codes_{i}", torch.arange(k, dtype=torch.long).reshape(1, -1))
        self.output_dim = self.n_numeric + self.n_indicators + sum(self.category_sizes)

    def forward(self, x_num: torch.Tensor | None, x_cat: torch.Tensor | None) -> torch.Tensor:
        parts = []
        if self.n_numeric:
            missing = torch.isnan(x_num)
            filled = torch.where(missing, self.mean, x_num)
            parts.append((filled - self.mean) / self.std)
            if self.n_indicators:
                parts.append(missing.index_select(1, self.indicators).to(torch.float32))
        for i in range(len(self.category_sizes)):
            parts.append((x_cat[:, i : i + 1] == getattr(self, f"codes_{i}")).to(torch.float32))
        return torch.cat(parts, dim=1)


class TabularModel(nn.Module):
    """Preprocessing + network + task head.

    ``forward`` gives what the loss needs (logits, or the standardised value);
    ``outputs`` gives what users see (class probabilities, or the value in the
    target's units) and is what the ONNX graph computes.
    """

    def __init__(self, prep: TabularPreprocessor, net: nn.Module, task: str, y_mean: float = 0.0, y_std: float = 1.0):
        super().__init__()
        self.prep, self.net, self.task = prep, net, task
        self.register_buffer("y_mean", torch.tensor(float(y_mean)))
        self.register_buffer("y_std", torch.tensor(float(y_std)))

    def forward(self, x_num: torch.Tensor | None, x_cat: torch.Tensor | None) -> torch.Tensor:
        return self.net(self.prep(x_num, x_cat))

    def outputs(self, x_num: torch.Tensor | None, x_cat: torch.Tensor | None) -> torch.Tensor:
        raw = self.forward(x_num, x_cat)
        if self.task == "classification":
            return torch.softmax(raw, dim=1)
        return raw[:, 0] * self.y_std + self.y_mean


class ExportWrapper(nn.Module):
    """Takes only the input groups the model has (numbers, categories), in that order."""

    def __init__(self, model: TabularModel, has_numeric: bool, has_category: bool):
        super().__init__()
        self.model, self.has_numeric, self.has_category = model, has_numeric, has_category

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        it = iter(inputs)
        x_num = next(it) if self.has_numeric else None
        x_cat = next(it) if self.has_category else None
        return self.model.outputs(x_num, x_cat)
