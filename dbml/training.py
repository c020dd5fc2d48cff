"""The training loop: ``fit -> run_epoch -> train_step``, with callbacks.

It sees tensors only. Early stopping restores the best weights on the validation
rows; a loss that stops being finite ends training with an error, and nothing is
saved by the caller.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from dbml.errors import TrainingError

__all__ = ["EpochLog", "Callback", "ProgressBar", "Batch", "fit"]

Batch = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]  # x_num, x_cat, y


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float | None
    val_metric: float | None
    lr: float
    seconds: float


class Callback:
    """Hooks of the loop; each is a no-op by default."""

    def on_train_begin(self, epochs: int) -> None: ...

    def on_epoch_end(self, log: EpochLog) -> None: ...

    def on_train_end(self, logs: list[EpochLog]) -> None: ...


class ProgressBar(Callback):
    """A tqdm bar of epochs with the losses, on stderr."""

    def __init__(self, label: str):
        self.label, self.bar = label, None

    def on_train_begin(self, epochs: int) -> None:
        from tqdm.auto import tqdm

        # A bar in terminals and notebooks; none in logs and CI, where it would be noise.
        shown = sys.stderr.isatty() or "ipykernel" in sys.modules
        self.bar = tqdm(total=epochs, desc=self.label, unit="epoch", file=sys.stderr, leave=False, disable=not shown)

    def on_epoch_end(self, log: EpochLog) -> None:
        post = {"train_loss": f"{log.train_loss:.4f}"}
        if log.val_loss is not None:
            post["val_loss"] = f"{log.val_loss:.4f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs: list[EpochLog]) -> None:
        if self.bar is not None:
            self.bar.close()


def _slice(batch: Batch, idx: torch.Tensor) -> Batch:
    return tuple(t.index_select(0, idx) if t is not None else None for t in batch)  # type: ignore[return-value]


def _evaluate(model: nn.Module, loss_fn: Callable, data: Batch, metric: Callable, batch_size: int) -> tuple[float, float]:
    model.eval()
    n = data[2].shape[0]
    outs = []
    with torch.no_grad():
        for start in range(0, n, max(batch_size, 4096)):
            idx = torch.arange(start, min(start + max(batch_size, 4096), n), device=data[2].device)
            x_num, x_cat, _ = _slice(data, idx)
            outs.append(model(x_num, x_cat))
        out = torch.cat(outs)
        return float(loss_fn(out, data[2])), float(metric(out, data[2]))


def fit(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train: Batch,
    val: Batch | None,
    options: dict[str, Any],
    batch_size: int,
    callbacks: list[Callback] = (),  # type: ignore[assignment]
) -> list[EpochLog]:
    """Train ``model`` in place and return one log per epoch.

    Args:
        model: maps (x_num, x_cat) to what ``loss_fn`` takes.
        loss_fn: loss of (output, y).
        metric: validation metric of (output, y), higher is better.
        train: training tensors, already on the device.
        val: validation tensors or None (then no early stopping).
        options: epochs, lr, weight_decay, patience, seed.
        batch_size: rows per step.
        callbacks: hooks called during the loop.

    Raises:
        TrainingError: when the loss becomes NaN or infinite.
    """
    epochs, patience = options["epochs"], options["patience"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=options["lr"], weight_decay=options["weight_decay"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=0.5, patience=max(2, patience // 4), min_lr=options["lr"] / 100
    )
    device = train[2].device
    generator = torch.Generator(device="cpu").manual_seed(options["seed"])
    n = train[2].shape[0]
    logs: list[EpochLog] = []
    best_loss, best_state, since_best = math.inf, None, 0
    for cb in callbacks:
        cb.on_train_begin(epochs)
    try:
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=generator).to(device)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                x_num, x_cat, y = _slice(train, idx)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_num, x_cat), y)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * idx.numel()
            train_loss = total / n
            if not math.isfinite(train_loss):
                raise TrainingError(
                    f"training diverged at epoch {epoch} (loss {train_loss}); try a smaller lr "
                    f"(now {options['lr']}) or check the data for extreme values"
                )
            val_loss = val_metric = None
            if val is not None:
                val_loss, val_metric = _evaluate(model, loss_fn, val, metric, batch_size)
            lr = optimizer.param_groups[0]["lr"]
            monitored = val_loss if val_loss is not None else train_loss
            scheduler.step(monitored)
            log = EpochLog(epoch, train_loss, val_loss, val_metric, lr, time.perf_counter() - started)
            logs.append(log)
            for cb in callbacks:
                cb.on_epoch_end(log)
            if val is not None:
                if monitored < best_loss - 1e-7:
                    best_loss, since_best = monitored, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    since_best += 1
                    if since_best >= patience:
                        break
    finally:
        for cb in callbacks:
            cb.on_train_end(logs)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return logs
