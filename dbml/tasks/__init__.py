"""Tasks: what a model learns, from the target (or without one) to the graph's outputs.

A task owns whether it needs a TARGET, the target's preparation (labels, scaling), the
split, the head, the loss (it sees the whole batch, inputs too), the training-time
metrics (in torch, here and nowhere else; EVALUATE's are in SQL, in
:mod:`dbml.evaluate`), the prediction distribution kept for MONITOR and the named
ONNX outputs it exports. The state a task learns (target scaling, a threshold) lives in
buffers of its head, so it trains, exports and fine-tunes with the weights.

Nothing at module level imports torch; the methods that train import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dbml.errors import OptionError, TargetError
from dbml.kinds.scalar import is_number_type
from dbml.options import Option

__all__ = ["Task", "Target", "TASKS", "get_task", "choose_task", "INTEGER_TYPES"]

INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


@dataclass
class Target:
    """A prepared target: what the rows taught about it.

    Attributes:
        y: one value per row (class codes, values), or None without a target.
        labels: class labels in output order (classification).
        label_onnx: the ONNX type of the label tensor (classification).
        predict_type: the SQL type PREDICT's UDF returns.
        scale: (mean, std) of a regression target.
        extra: other facts the task keeps with the version.
    """

    y: np.ndarray | None = None
    labels: list[Any] | None = None
    label_onnx: str | None = None
    predict_type: str = "DOUBLE"
    scale: tuple[float, float] = (0.0, 1.0)
    extra: dict[str, Any] = field(default_factory=dict)


class Task:
    """Interface of a task. Attributes: ``name``; ``needs_target``; ``options`` (its
    own WITH options); ``parity_output`` (the graph output compared with torch);
    ``headline`` (the validation metric SHOW MODELS, DESCRIBE MODEL and TRAIN's result
    show in a column of its own)."""

    name: str = ""
    headline: str = ""
    needs_target: bool = True
    options: tuple[Option, ...] = ()
    parity_output: str = ""

    # -- before the rows are read ---------------------------------------------------------
    def source(self, con, name: str, req, columns: list[str], types: list[str], target: str | None,
               target_type: str | None, options: dict[str, Any]):  # fmt: skip
        """The rows the task learns from, when they are not the source's rows as they are:
        (examples SQL, features, facts kept in ``Target.extra``), or None. A forecaster turns
        a series into windows here, in one facts pass over the source. The examples SQL
        carries the fingerprint of the source rows it reads, as window aggregates named
        ``dbml/rows`` and ``dbml/sum`` (see :mod:`dbml.data.rows`)."""
        return None

    def check_facts(self, model: str, target: str, target_type: str, facts: dict[str, Any], options: dict[str, Any]) -> None:
        """Refuse a target the task cannot take, from its SQL facts, before any row is read."""

    def target_sql(self, target: str, target_type: str) -> str | None:
        """The SQL that reads the target column (None: no target)."""
        return None

    # -- the rows -----------------------------------------------------------------------------
    def prepare(self, model: str, target: str | None, target_type: str | None, y, parent) -> Target:
        """The target as Arrow (every row read, in the read's order) -> a :class:`Target`
        (labels, scaling); ``parent`` is the version being fine-tuned, or None."""
        return Target()

    def strata_sql(self, target: str) -> str | None:
        """The SQL to stratify the split by, over the read target ``target`` (None: not stratified)."""
        return None

    def split_sql(self, target: str, key: str, options: dict[str, Any]) -> tuple[str, list[str]]:
        """(each row's role in the split, the read's order within a role) as DuckDB SQL
        over the read target ``target`` and the row's seeded key ``key``: by default the
        first ``validation`` share of rows in key order, in each stratum of
        :meth:`strata_sql` (see :mod:`dbml.data.split`)."""
        from dbml.data import split

        return split.hashed(key, options["validation"], self.strata_sql(target)), [key]

    def y_tensor(self, target: Target, y):
        """The target tensor of the rows whose read target is ``y`` (Arrow; None without a target)."""
        return None

    # -- the module ---------------------------------------------------------------------------
    def head(self, width: int, target: Target, architecture, net_info: dict[str, Any], options: dict[str, Any]):
        """The head: trunk output [N, width] -> what the loss takes."""
        raise NotImplementedError

    def loss(self, net, out, batch):
        raise NotImplementedError

    def score(self, net, out, batch):
        """The validation figure shown per epoch, higher is better."""
        raise NotImplementedError

    def outputs(self, net, batch) -> dict[str, Any]:
        """The graph outputs users see (before :meth:`onnx_tail`), in torch."""
        raise NotImplementedError

    def after_fit(self, net, batch, target: Target, options: dict[str, Any]) -> None:
        """Fix what is learnt after the weights (an anomaly threshold), in the head's buffers."""

    # -- after training -------------------------------------------------------------------------
    def metrics(self, net, batch, target: Target, idx: np.ndarray) -> dict[str, Any]:
        """Training-time metrics on held-out rows ``idx`` (``batch``), and ``prediction_distribution``."""
        raise NotImplementedError

    def graph_outputs(self, target: Target) -> dict[str, str]:
        """{ONNX output name: description}, as stored in the graph's metadata."""
        raise NotImplementedError

    def onnx_tail(self, target: Target, produced: dict[str, str], prefix: str):
        """(nodes, initializers, output value infos) from the traced outputs (``produced``:
        name -> internal tensor) to the graph's named outputs."""
        raise NotImplementedError


def _builtin() -> dict[str, Task]:
    from dbml.tasks.classification import Classification
    from dbml.tasks.forecast import Forecast
    from dbml.tasks.reconstruction import Reconstruction
    from dbml.tasks.regression import Regression

    return {t.name: t for t in (Classification(), Regression(), Reconstruction(), Forecast())}


TASKS: dict[str, Task] = _builtin()


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise OptionError(f"unknown task '{name}'; tasks are {', '.join(TASKS)}") from None


def choose_task(model: str, target: str | None, target_type: str | None, n_distinct: int,
                options: dict[str, Any], allowed: tuple[str, ...]) -> Task:  # fmt: skip
    """The task of a TRAIN MODEL: the ``task`` option, else from the target's type and
    distinct values (none: reconstruction), within what the architecture does."""
    asked = options.get("task", "auto")
    if options.get("time"):
        task = "forecast"
    elif target is None:
        task = "reconstruction"
    else:
        t = target_type.upper()
        categorical = t in ("BOOLEAN", "VARCHAR") or t.startswith("ENUM")
        numeric = is_number_type(t)
        if asked == "regression" and not numeric:
            raise TargetError(f"target column '{target}' has type {target_type}; task = 'regression' needs a numeric target")
        if asked not in ("auto", None):
            task = asked
        elif categorical or (t in INTEGER_TYPES and n_distinct <= options["max_classes"]):
            task = "classification"
        elif numeric:
            task = "regression"
        else:
            raise TargetError(f"target column '{target}' has type {target_type}, which dbml cannot predict yet")
    if task not in allowed:
        if task == "forecast":
            raise OptionError(f"option 'time' makes model '{model}' a forecaster, which USING lstm or gru trains")
        if task == "reconstruction":
            raise TargetError(
                f"TRAIN MODEL {model} needs a TARGET column: its architecture learns {' or '.join(allowed)}; "
                "to find unusual rows without a target, use USING autoencoder"
            )
        if "reconstruction" in allowed:
            raise TargetError(
                f"TRAIN MODEL {model} USING autoencoder takes no TARGET (it learns to rebuild its inputs); "
                f"leave TARGET {target} out, or train a supervised architecture such as mlp"
            )
        raise TargetError(f"the architecture of model '{model}' does not do {task}; it does {', '.join(allowed)}")
    return TASKS[task]
