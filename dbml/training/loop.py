"""The training loop: ``fit -> run_epoch -> train_step``, with callbacks (skorch's shape).

:class:`Trainer` sees :class:`dbml.data.batches.Batches` only: an iterator of dict
batches ({group key: tensor, "target": tensor}) per epoch, never the whole table, so a
streaming source or a shard per worker takes the place of the in-memory rows without
touching kinds, tasks or architectures. The task gives the loss (which sees the whole
batch, inputs too) and the validation figure. Where a device, several workers or mixed
precision change the step, there is a method to override: :meth:`Trainer.to_device`,
:meth:`Trainer.autocast`, :meth:`Trainer.compute_loss`, :meth:`Trainer.backward`,
:meth:`Trainer.optimizer_step`, :meth:`Trainer.configure_optimizer`, and for several
workers :meth:`Trainer.steps` and :meth:`Trainer.reduce`.

Early stopping (:class:`EarlyStopping`) restores the best weights on the validation
rows; a loss that stops being finite ends training with an error, and nothing is saved
by the caller.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from dbml.data.batches import Batch, Batches, TensorBatches, rows, take
from dbml.errors import TrainingError

__all__ = ["EpochLog", "Callback", "ProgressBar", "EarlyStopping", "Trainer", "Batch", "Batches", "fit", "rows", "take"]


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

    def on_batch_end(self, step: int, loss: float) -> None: ...

    def on_epoch_end(self, log: EpochLog) -> None: ...

    def on_train_end(self, logs: list[EpochLog]) -> None: ...


class ProgressBar(Callback):
    """What a training run shows on stderr, in Keras's sense of ``verbose``: at level 1 one
    live tqdm bar of epochs (a widget in a notebook) with the train loss, validation loss
    and validation metric in its postfix; at level 2 one line per epoch, for logs::

        epoch 3/20 - train_loss 0.4100 - val_loss 0.4400 - val_metric 0.8600 - 0.1s

    Args:
        label: the bar's description, such as ``train churn``.
        verbose: 1 (the bar) or 2 (a line per epoch); the caller adds none at 0.
        prefix: before each line at level 2 (``refit `` for the run on every training row).
    """

    def __init__(self, label: str, verbose: int = 1, prefix: str = ""):
        self.label, self.verbose, self.bar, self.epochs, self.prefix = label, verbose, None, 0, prefix

    def on_train_begin(self, epochs: int) -> None:
        self.epochs = epochs
        if self.verbose == 1:
            try:  # a widget in a notebook needs ipywidgets; without it tqdm.auto warns, then draws text anyway
                import ipywidgets  # noqa: F401
                from tqdm.auto import tqdm
            except ImportError:
                from tqdm import tqdm

            # sys.stderr read now, not at import: a notebook kernel or a test may have replaced it
            self.bar = tqdm(total=epochs, desc=self.label, unit="epoch", file=sys.stderr, leave=True)

    def on_epoch_end(self, log: EpochLog) -> None:
        figures = [("train_loss", log.train_loss), ("val_loss", log.val_loss), ("val_metric", log.val_metric)]
        shown = [(k, f"{v:.4f}") for k, v in figures if v is not None]
        if self.bar is not None:
            self.bar.set_postfix(dict(shown), refresh=False)
            self.bar.update(1)
        elif self.verbose >= 2:
            parts = [f"{self.prefix}epoch {log.epoch}/{self.epochs}", *(f"{k} {v}" for k, v in shown), f"{log.seconds:.1f}s"]
            print(" - ".join(parts), file=sys.stderr, flush=True)

    def on_train_end(self, logs: list[EpochLog]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _adamw(model: nn.Module, options: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW, fused where torch has it for the device: one pass over the weights per step
    instead of several (measured on the CPU: a step over a 100,001 x 64 embedding took
    9.8 ms fused against 86.3 ms with torch's default)."""
    kwargs = {"lr": options["lr"], "weight_decay": options["weight_decay"]}
    try:
        return torch.optim.AdamW(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(model.parameters(), **kwargs)


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved for ``patience`` epochs, and give
    the model back the weights of its best epoch at the end."""

    def __init__(self, trainer: "Trainer", patience: int, min_delta: float = 1e-7):
        self.trainer, self.patience, self.min_delta = trainer, patience, min_delta
        self.best, self.state, self.since = math.inf, None, 0

    def on_epoch_end(self, log: EpochLog) -> None:
        if log.val_loss is None:
            return
        if log.val_loss < self.best - self.min_delta:
            self.best, self.since = log.val_loss, 0
            self.state = copy.deepcopy(self.trainer.model.state_dict())
        else:
            self.since += 1
            if self.since >= self.patience:
                self.trainer.stop = True

    def on_train_end(self, logs: list[EpochLog]) -> None:
        if self.state is not None:
            self.trainer.model.load_state_dict(self.state)


class Trainer:
    """One training run of ``model`` on batches.

    Args:
        model: maps a batch to what the task's loss takes.
        task: gives ``loss(model, out, batch)`` and ``score(model, out, batch)`` (higher is better).
        options: epochs, lr, weight_decay, patience.
        callbacks: hooks called during the loop, before early stopping's.
        device: where batches go (default: the model's).
        schedule: the learning rate of each epoch, replayed (a refit on every training row
            follows the rates its first run took); None: reduce on plateau.
    """

    def __init__(self, model: nn.Module, task, options: dict[str, Any], callbacks: Iterable[Callback] = (),
                 device: torch.device | None = None, schedule: list[float] | None = None):  # fmt: skip
        self.model, self.task, self.options, self.schedule = model, task, options, schedule
        self.device = device if device is not None else next(model.parameters()).device
        self.callbacks = list(callbacks)
        self.optimizer = self.configure_optimizer()
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=0.5, patience=max(2, options["patience"] // 4), min_lr=options["lr"] / 100
        )
        self.step, self.stop, self.logs = 0, False, []

    # -- the places a device, several workers or mixed precision change ----------------------------
    def configure_optimizer(self) -> torch.optim.Optimizer:
        return _adamw(self.model, self.options)

    def to_device(self, batch: Batch) -> Batch:
        """A batch on the training device (a no-op for tensors already there)."""
        return {k: t if t.device == self.device else t.to(self.device, non_blocking=True) for k, t in batch.items()}

    def autocast(self):
        """The context the forward pass runs in: bfloat16 autocast under option
        ``precision = 'bf16'`` (the weights, the optimiser's state and the exported graph
        stay float32), else none."""
        if self.options.get("precision") == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def compute_loss(self, batch: Batch) -> torch.Tensor:
        with self.autocast():
            return self.task.loss(self.model, self.model(batch), batch)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def optimizer_step(self) -> None:
        self.optimizer.step()

    def steps(self, batches: Iterable[Batch]) -> Iterable[Batch]:
        """The batches of an epoch the loop steps on: all of them (workers stop together)."""
        return batches

    def reduce(self, sums: list[float]) -> list[float]:
        """Sums over this process's rows -> over every worker's (here: as they are)."""
        return sums

    # -- the loop ------------------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> float:
        """One optimisation step on one batch; returns its loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.compute_loss(batch)
        self.backward(loss)
        self.optimizer_step()
        return float(loss.detach())

    def run_epoch(self, number: int, train: Batches) -> float:
        """One pass over the training batches; returns the mean loss per row."""
        self.model.train()
        total, seen = 0.0, 0
        for batch in self.steps(train.epoch(number)):
            batch = self.to_device(batch)
            value = self.train_step(batch)
            k = rows(batch)
            total, seen = total + value * k, seen + k
            self.step += 1
            for cb in self.callbacks:
                cb.on_batch_end(self.step, value)
        total, seen = self.reduce([total, seen])
        return total / max(seen, 1)

    def validate(self, val: Batches) -> tuple[float, float]:
        """(loss, validation figure) over the validation batches, weighted by rows."""
        self.model.eval()
        loss = score = 0.0
        n = 0
        with torch.no_grad():
            for batch in val:
                batch = self.to_device(batch)
                with self.autocast():
                    out = self.model(batch)
                    k = rows(batch)
                    loss += float(self.task.loss(self.model, out, batch)) * k
                    score += float(self.task.score(self.model, out, batch)) * k
                n += k
        loss, score, n = self.reduce([loss, score, n])
        return loss / max(n, 1), score / max(n, 1)

    def fit(self, train: Batches, val: Batches | None = None) -> list[EpochLog]:
        """Train in place for up to ``epochs`` epochs; returns one log per epoch.

        Raises:
            TrainingError: when the loss becomes NaN or infinite.
        """
        epochs = self.options["epochs"]
        if val is not None and not val.rows:
            val = None
        callbacks = self.callbacks + ([EarlyStopping(self, self.options["patience"])] if val is not None else [])
        self.logs = []
        for cb in callbacks:
            cb.on_train_begin(epochs)
        try:
            for epoch in range(1, epochs + 1):
                started = time.perf_counter()
                if self.schedule is not None:
                    for group in self.optimizer.param_groups:
                        group["lr"] = self.schedule[min(epoch, len(self.schedule)) - 1]
                train_loss = self.run_epoch(epoch, train)
                if not math.isfinite(train_loss):
                    raise TrainingError(
                        f"training diverged at epoch {epoch} (loss {train_loss}); try a smaller lr "
                        f"(now {self.options['lr']}) or check the data for extreme values"
                    )
                val_loss = val_metric = None
                if val is not None:
                    val_loss, val_metric = self.validate(val)
                lr = self.optimizer.param_groups[0]["lr"]
                if self.schedule is None:
                    self.scheduler.step(val_loss if val_loss is not None else train_loss)
                log = EpochLog(epoch, train_loss, val_loss, val_metric, lr, time.perf_counter() - started)
                self.logs.append(log)
                for cb in callbacks:
                    cb.on_epoch_end(log)
                if self.stop:
                    break
        except torch.cuda.OutOfMemoryError:
            size = getattr(train, "batch_size", None)
            raise TrainingError(
                f"the {self.device} device ran out of memory while training"
                + (f" with {size:,} rows a step" if size else "")
                + "; try a smaller batch_size (WITH (batch_size = ...)) or smaller layers; nothing was saved"
            ) from None
        finally:
            for cb in callbacks:
                cb.on_train_end(self.logs)
        self.model.eval()
        return self.logs


def fit(model: nn.Module, task, train: Batches | Batch, val: Batches | Batch | None, options: dict[str, Any],
        batch_size: int, callbacks: Iterable[Callback] = ()) -> list[EpochLog]:  # fmt: skip
    """Train ``model`` in place and return one log per epoch (see :class:`Trainer`).

    Args:
        train: training batches, or a dict of tensors (then batched here, shuffled by
            ``options["seed"]`` each epoch).
        val: validation batches or tensors, or None (then no early stopping).
        batch_size: rows per step, for tensors.
    """
    if isinstance(train, dict):
        train = TensorBatches(train, batch_size, seed=options["seed"], drop_single=True)
    if isinstance(val, dict):
        val = TensorBatches(val, max(batch_size, 4096), shuffle=False)
    return Trainer(model, task, options, callbacks).fit(train, val)
