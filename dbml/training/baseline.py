"""The simple models every classification and regression version is measured against,
on the same validation rows as the network (``metrics.baseline``).

- ``majority`` (classification): always the most frequent training class;
  ``mean`` (regression): always the training rows' mean.
- ``linear``: logistic regression (classification) or ridge regression (regression) on
  the network's own fixed preprocessing: standardised numbers with missing values at the
  mean, one-hot categories, standardised array elements (what an autoencoder rebuilds,
  :meth:`dbml.training.network.Network.targets`), and a bag of words per text column
  (a linear weight per word and word-pair code, averaged over a row's words: TF-IDF's
  linear model without the IDF weights). L2 penalty as scikit-learn's defaults (C = 1 for
  the logistic, alpha = 1 for ridge, on the sum of the losses), fitted full-batch with
  L-BFGS on at most :data:`MAX_ROWS` training rows (the first of the first training
  epoch's order: a seeded sample of the rows in memory, the first buffers of a stream).

A version whose preprocessing is wider than :data:`MAX_WIDTH` values a row keeps the
majority or mean figure alone and says why (``linear.skipped``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

__all__ = ["MAX_ROWS", "MAX_WIDTH", "linear_inputs", "training_sample", "fit_linear", "classification", "regression"]

MAX_ROWS = 50_000  # training rows the linear model fits on
MAX_WIDTH = 20_000  # dense values a row (a wider preprocessing keeps no linear baseline)
MAX_VALUES = 16_000_000  # rows x dense width held for the fit (64 MiB of float32)
ITERATIONS = 200


def _bag(enc) -> bool:
    """Whether an encoder reads word codes (a text column): its linear model is a bag of words."""
    return hasattr(enc, "words") and isinstance(enc.words, nn.Embedding)


def linear_inputs(net, batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(dense fixed preprocessing [N, D], word codes [N, W] per text column) of ``batch``."""
    dense, bags = [], []
    for key, enc in zip(net.keys, net.encoders):
        if _bag(enc):
            bags.append(batch[key].long())
        else:
            dense.append(enc.target(batch[key]).flatten(1).float())
    n = next(iter(batch.values())).shape[0]
    return (torch.cat(dense, dim=1) if dense else torch.zeros(n, 0)), bags


def _vocabularies(net) -> list[int]:
    return [enc.words.num_embeddings for enc in net.encoders if _bag(enc)]


def _width(net) -> int:
    return sum(int(enc.target_width()) for enc in net.encoders if not _bag(enc))


class _Linear(nn.Module):
    """Dense inputs and bags of words -> ``outputs`` values, linear in both."""

    def __init__(self, width: int, vocabularies: list[int], outputs: int):
        super().__init__()
        self.dense = nn.Linear(width, outputs)
        nn.init.zeros_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)
        self.bags = nn.ModuleList(nn.EmbeddingBag(v, outputs, mode="sum", padding_idx=0) for v in vocabularies)
        for bag in self.bags:
            nn.init.zeros_(bag.weight)

    def forward(self, dense: torch.Tensor, bags: list[torch.Tensor]) -> torch.Tensor:
        out = self.dense(dense)
        for table, codes in zip(self.bags, bags):
            count = (codes > 0).sum(dim=1, keepdim=True).clamp_min(1).float()
            out = out + table(codes) / count
        return out

    def penalty(self) -> torch.Tensor:
        return (self.dense.weight**2).sum() + sum((b.weight**2).sum() for b in self.bags)


def training_sample(net, train, y_of: Callable[[dict], torch.Tensor], features: bool):
    """The first training rows of epoch 1's order: (dense, word codes per text column,
    targets), preprocessed; the targets alone (dense and codes None) unless ``features``."""
    width = max(_width(net), 1) if features else 1
    cap = max(1, min(MAX_ROWS, MAX_VALUES // width))
    dense, bags, ys, held = [], [], [], 0
    batches = train.epoch(1)
    try:
        for batch in batches:
            batch = {k: v.cpu() for k, v in batch.items()}
            y = y_of(batch)
            take = min(cap - held, y.shape[0])
            if features:
                d, b = linear_inputs(net, batch)
                dense.append(d[:take])
                bags.append([codes[:take] for codes in b])
            ys.append(y[:take])
            held += take
            if held >= cap:
                break
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # a stream stops reading
    if not features:
        return None, None, torch.cat(ys)
    columns = []  # a text column's codes may be of other widths batch to batch: pad to the widest
    for i in range(len(bags[0])):
        widest = max(part[i].shape[1] for part in bags)
        columns.append(torch.cat([nn.functional.pad(part[i], (0, widest - part[i].shape[1])) for part in bags]))
    return torch.cat(dense), columns, torch.cat(ys)


def fit_linear(dense: torch.Tensor, bags: list[torch.Tensor], y: torch.Tensor, vocabularies: list[int], outputs: int,
               loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], l2: float) -> _Linear:  # fmt: skip
    """A linear model fitted by L-BFGS to minimise mean ``loss`` + ``l2`` x squared weights / N
    (biases free). scikit-learn's defaults: ridge alpha = 1 is ``l2`` = 1; logistic C = 1 is
    1/2 for the softmax over K > 2 classes and 1 for two (the softmax's two weight rows, w
    and -w, carry the binary model's penalty twice over)."""
    model = _Linear(dense.shape[1], vocabularies, outputs)
    n = max(int(y.shape[0]), 1)
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=ITERATIONS, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)  # fmt: skip

    def closure():
        opt.zero_grad()
        value = loss(model(dense, bags), y) + l2 * model.penalty() / n
        value.backward()
        return value

    with torch.enable_grad():
        opt.step(closure)
    return model.eval()


def _predict(net, model: _Linear, eval_data) -> torch.Tensor:
    """The linear model's outputs on the held-out rows, preprocessed a slice at a time
    (a wide preprocessing of many rows would not fit whole)."""
    n = next(iter(eval_data.values())).shape[0]
    step = max(1, MAX_VALUES // max(_width(net), 1))
    parts = []
    for start in range(0, n, step):
        d, b = linear_inputs(net, {k: v[start : start + step].cpu() for k, v in eval_data.items()})
        parts.append(model(d, b))
    return torch.cat(parts) if parts else torch.zeros(0, model.dense.out_features)


def _why_not(net) -> str | None:
    """Why a version keeps no linear baseline (None: it does)."""
    width = _width(net)
    if width > MAX_WIDTH:
        return f"the preprocessing is {width:,} values a row; a linear baseline is fitted up to {MAX_WIDTH:,}"
    return None


def _rows(train, net, y_of):
    """(training sample or None, why no linear model or None); None, reason when the rows are not here."""
    if not hasattr(train, "epoch"):
        return None, "the training rows were read elsewhere (a Spark cluster's processes)"
    why = _why_not(net)
    return training_sample(net, train, y_of, why is None), why


@torch.no_grad()
def classification(net, train, eval_data, classes: int) -> dict[str, Any]:
    """``metrics.baseline`` of a classifier: majority class and logistic regression on ``eval_data``."""
    sample, why = _rows(train, net, lambda b: b["target"])
    if sample is None:
        return {"linear": {"skipped": why}}
    y_val = eval_data["target"].cpu()
    majority = int(torch.bincount(sample[2], minlength=classes).argmax())
    out: dict[str, Any] = {"majority": {"accuracy": float((y_val == majority).float().mean())}}
    if why is not None:
        out["linear"] = {"skipped": why}
        return out
    model = fit_linear(sample[0], sample[1], sample[2], _vocabularies(net), classes,
                       nn.functional.cross_entropy, 1.0 if classes == 2 else 0.5)  # fmt: skip
    logits = _predict(net, model, eval_data)
    out["linear"] = {
        "model": "logistic regression",
        "accuracy": float((logits.argmax(dim=1) == y_val).float().mean()),
        "log_loss": float(nn.functional.cross_entropy(logits, y_val)),
        "rows": int(sample[2].shape[0]),
    }
    return out


@torch.no_grad()
def regression(net, train, eval_data, y_val: np.ndarray, scale: tuple[float, float]) -> dict[str, Any]:
    """``metrics.baseline`` of a regression: the training mean and ridge regression on ``eval_data``
    (``y_val``: the held-out targets in their units; ``scale``: the target's (mean, std))."""
    from dbml.tasks.regression import errors

    mean, std = scale
    y = torch.from_numpy(np.asarray(y_val, np.float64))

    def measured(pred: torch.Tensor) -> dict[str, float]:
        return errors(pred.double(), y)

    sample, why = _rows(train, net, lambda b: b["target"].float())
    if sample is None:
        return {"linear": {"skipped": why}}
    out: dict[str, Any] = {"mean": measured(torch.full_like(y, float(sample[2].double().mean()) * std + mean))}
    if why is not None:
        out["linear"] = {"skipped": why}
        return out
    model = fit_linear(sample[0], sample[1], sample[2][:, None], _vocabularies(net), 1,
                       nn.functional.mse_loss, 1.0)  # fmt: skip
    pred = _predict(net, model, eval_data)[:, 0].double() * std + mean
    out["linear"] = {"model": "ridge regression", **measured(pred), "rows": int(sample[2].shape[0])}
    return out
