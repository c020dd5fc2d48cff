"""Tasks: what a model learns, from the target (or without one) to the graph's outputs,
and everything about a version that depends on it.

A task owns whether it needs a TARGET, the target's preparation (labels, scaling), the
split, the head, the loss (it sees the whole batch, inputs too), the training-time
metrics (in torch, here and nowhere else), the named ONNX outputs it exports, and the
SQL side of a version: EVALUATE's metrics (:meth:`Task.evaluation`), EXPLAIN's measure
(:meth:`Task.explain_measure`), MONITOR's rows and prediction distribution
(:meth:`Task.monitor_rows`, :meth:`Task.monitor_prediction`), the pictures its EVALUATE
runs keep (:attr:`Task.pictures`, :meth:`Task.evaluation_layout`), the headline DESCRIBE
and SHOW MODELS show, the record checks (:meth:`Task.check_target`,
:meth:`Task.check_labels`) and the scoring functions a version offers
(:meth:`Task.predict_output` and the rest). Large SQL builders live in
:mod:`dbml.evaluate`, :mod:`dbml.explain`, :mod:`dbml.monitor` and :mod:`dbml.curves`;
which one runs is the task's choice, so nothing outside this package branches on a
task's name. The state a task learns (target scaling, a threshold) lives in buffers of
its head, so it trains, exports and fine-tunes with the weights.

A model imported from a foreign ONNX file is a task too (:mod:`dbml.tasks.imported`:
``foreign``, never trained here).

Tasks register like architectures: one visible table (:data:`TASKS`), the entry-point
group ``dbml.tasks`` for installed packages and :func:`register` for code outside the
package. A task says what it needs of an architecture (:attr:`Task.needs`, matched
against :attr:`dbml.architectures.Architecture.provides`), so a new task needs no edit
in any architecture, and how TRAIN MODEL picks it (:meth:`Task.implied`,
:meth:`Task.claims`, :attr:`Task.askable`, by :attr:`Task.priority`).

Nothing at module level imports torch; the methods that train import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dbml.errors import DbmlError, OptionError, TargetError
from dbml.options import Option

__all__ = [
    "Task", "Target", "Evaluation", "Panel", "Layout", "TASKS", "get_task", "task_of", "register", "trainable",
    "implied_task", "choose_task", "unregister", "INTEGER_TYPES", "join_or", "join_and", "trainers",
]  # fmt: skip

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


@dataclass(frozen=True)
class Evaluation:
    """What EVALUATE MODEL runs on a version (:meth:`Task.evaluation`).

    Attributes:
        sql: the metrics query (PREDICT & co. for the connection to rewrite).
        curves: () -> the data of the run's pictures, called after the metrics when the
            run keeps them (no ``by``, no ``confusion``, ``curves`` true); None: none.
    """

    sql: str
    curves: Callable[[], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Panel:
    """One panel of the picture of an EVALUATE run (:func:`dbml.plot.evaluation`).

    Attributes:
        picture: a picture of :mod:`dbml.integrations.plot` (its table ``PICTURES``:
            'roc', 'precision_recall', 'confusion_matrix', 'calibration', 'residuals',
            'predicted_vs_actual', 'series', 'scores').
        required: a run without its data is an error (else the panel says it has none).
        item: the element of a stored list the panel draws (one series of many).
    """

    picture: str
    required: bool = True
    item: int | None = None


@dataclass(frozen=True)
class Layout:
    """The panels of an EVALUATE run's picture, in a grid of ``rows`` x ``cols``, and the
    figure's size in inches."""

    panels: tuple[Panel, ...]
    rows: int
    cols: int
    size: tuple[float, float]


class Task:
    """Interface of a task.

    Attributes:
        name: the name stored with each version (its record's ``task``).
        headline: the validation metric SHOW MODELS, DESCRIBE MODEL and TRAIN's result
            show in a column of its own ('' for none).
        needs_target: whether it learns from a TARGET column.
        options: its own WITH options.
        parity_output: the graph output compared with torch at save time.
        trained: whether TRAIN MODEL learns it (False: only files made elsewhere have it).
        foreign: a graph dbml did not write: features name their graph inputs, there is
            no training profile, no torch twin, no training log.
        needs: what it needs of an architecture, matched against
            :attr:`dbml.architectures.Architecture.provides` ('head': a trunk a head goes
            on; 'decoder': rebuilds its inputs; 'sequence_input': reads ordered steps).
        priority: the order in which tasks are asked :meth:`implied` and :meth:`claims`
            (lower first).
        askable: whether ``WITH (task = '<name>')`` may name it.
        needs_facts: whether choosing it reads the target's SQL facts first (distinct
            values, range, longest label).
        forecasts: whether FORECAST MODEL takes its versions.
        plural: what its models are called in messages ('classifiers').
        described: what its graphs are called in messages ('a classification'; default
            'a <name>').
        score_label: what :meth:`score` (``training_log.val_metric``) is, for pictures.
        pictures: the pictures of :mod:`dbml.integrations.plot` its EVALUATE runs keep
            data for (names of its ``PICTURES`` table).
    """

    name: str = ""
    headline: str = ""
    needs_target: bool = True
    options: tuple[Option, ...] = ()
    parity_output: str = ""
    trained: bool = True
    refits: bool = False  # option refit: a second network on every training row, for the epochs validation chose
    ensembles: bool = False  # option ensemble: networks from several seeds, averaged in one graph (dbml.training.network.Ensemble)
    foreign: bool = False
    needs: frozenset[str] = frozenset({"head"})
    priority: int = 100
    askable: bool = True
    needs_facts: bool = True
    forecasts: bool = False
    plural: str = ""
    described: str = ""
    score_label: str = "metric"
    pictures: tuple[str, ...] = ()
    own_target: bool = False  # its rows (``source``) carry a target even without TARGET (a recommender's ratings)

    # -- choosing the task of a TRAIN MODEL ------------------------------------------------
    def implied(self, target: str | None, options: dict[str, Any]) -> bool:
        """Whether the statement's shape makes it this task whatever ``task`` says (a
        ``time`` option: a forecaster; no TARGET: an anomaly model)."""
        return False

    def claims(self, target_type: str, n_distinct: int, options: dict[str, Any]) -> bool:
        """Whether ``task = 'auto'`` makes a target of this type (and number of distinct
        values) this task."""
        return False

    def check_asked(self, model: str, target: str, target_type: str) -> None:
        """Refuse a target this task cannot take when ``task`` names it."""

    def unavailable(self, model: str, target: str | None, allowed: list["Task"]) -> DbmlError:
        """The error when the architecture chosen does not learn this task (``allowed``:
        the tasks it learns)."""
        for other in allowed:
            if target is not None and not other.needs_target:
                return other.takes_no_target(model, target)
        return TargetError(
            f"the architecture of model '{model}' does not do {self.name}; it does {', '.join(t.name for t in allowed)}"
        )

    def takes_no_target(self, model: str, target: str) -> DbmlError:
        """The error when an architecture that learns only this (target-less) task is given a TARGET."""
        return TargetError(f"TRAIN MODEL {model} learns {self.name}, which takes no TARGET; leave TARGET {target} out")

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

    def observe(self, target: Target, arrays: dict[str, np.ndarray], train_idx: np.ndarray) -> None:
        """See the encoded training rows (``arrays``: {group key: array}) before the fit, and
        keep in ``target.extra`` what the task needs of them (a recommender's training pairs)."""

    def y_tensor(self, target: Target, y):
        """The target tensor of the rows whose read target is ``y`` (Arrow; None without a target)."""
        return None

    def target_values(self, target: Target, y) -> np.ndarray | None:
        """What :attr:`Target.y` holds for the rows whose read target is ``y`` (Arrow): the
        held-out rows' values when the rows stream and only those are in memory."""
        return None if y is None else np.asarray(self.y_tensor(target, y))

    # -- the module ---------------------------------------------------------------------------
    def head(self, width: int, target: Target, architecture, net_info: dict[str, Any], options: dict[str, Any]):
        """The head: trunk output [N, width] -> what the loss takes. ``net_info``: the
        model's name, ``target_width`` (the width of the inputs' fixed encoding) and
        ``inputs`` ({group key: the shape its encoder gives per row})."""
        raise NotImplementedError

    def loss(self, net, out, batch):
        raise NotImplementedError

    def score(self, net, out, batch):
        """The validation figure shown per epoch, higher is better."""
        raise NotImplementedError

    def outputs(self, net, batch) -> dict[str, Any]:
        """The graph outputs users see (before :meth:`onnx_tail`), in torch."""
        raise NotImplementedError

    def start(self, net, train, val, options: dict[str, Any]) -> None:
        """Set weights of a fresh network from the training batches ``train`` (and the
        validation batches ``val``, or None) before its first step (a forecaster's
        covariate path from a least-squares fit); nothing by default. Not called for a fine-tune or a transfer, which start from their weights."""

    def after_fit(self, net, batch, target: Target, options: dict[str, Any]) -> None:
        """Fix what is learnt after the weights (an anomaly threshold), in the head's buffers."""

    # -- after training -------------------------------------------------------------------------
    def metrics(self, net, batch, target: Target, idx: np.ndarray) -> dict[str, Any]:
        """Training-time metrics on held-out rows ``idx`` (``batch``), and ``prediction_distribution``."""
        raise NotImplementedError

    def baseline(self, net, train, eval_data, target: Target, idx: np.ndarray) -> dict[str, Any] | None:
        """``metrics.baseline``: simple models measured on the held-out rows ``eval_data``
        (``idx`` of ``target.y``) that the version's own metrics took, as {baseline: {metric:
        value}} (``train``: the training :class:`~dbml.data.batches.Batches`); None: none.
        :func:`dbml.summary.versus` compares the headline metric with each."""
        return None

    def versus(self, metrics: dict[str, Any]) -> str | None:
        """How a version compares with its baselines, in words, when its headline metric
        cannot be set beside theirs (None: :func:`dbml.summary.versus` compares the headline)."""
        return None

    def graph_outputs(self, target: Target) -> dict[str, str]:
        """{ONNX output name: description}, as stored in the graph's metadata."""
        raise NotImplementedError

    def onnx_tail(self, target: Target, produced: dict[str, str], prefix: str):
        """(nodes, initializers, output value infos) from the traced outputs (``produced``:
        name -> internal tensor) to the graph's named outputs."""
        raise NotImplementedError

    # -- the record (dbml.registry.records.validate_record) --------------------------------------
    def check_target(self, c, record: dict[str, Any]) -> None:
        """Check ``record['target']`` and ``record['target_type']`` in place (``c``: the
        record's checker, :class:`dbml.registry.records.Check`; a RecordError names the field)."""
        from dbml.registry import records

        if self.needs_target:
            records.check_target(c, record)
        else:
            records.check_no_target(c, record, f"no target (a {self.name} model learns without one)")

    def check_labels(self, c, labels: Any, target_type: str | None) -> list[Any] | None:
        """The record's class labels, checked (None for a task without labels)."""
        from dbml.registry import records

        return records.check_no_labels(c, labels, self.name)

    def parity_width(self, record: dict[str, Any], shape: list[Any]) -> tuple[int, str]:
        """(the width of :attr:`parity_output` a file's graph must have, what that width
        counts), for the checks of an imported file (:mod:`dbml.registry.modelfile`)."""
        return 1, "value per row"

    # -- the scoring functions a version offers (dbml.outputs) ------------------------------------
    def udf_type(self, target_type: str | None) -> str:
        """The SQL type PREDICT's UDF returns (:attr:`dbml.outputs.VersionInfo.predict_type`)."""
        return "DOUBLE"

    def label_type(self, record: dict[str, Any]) -> str:
        """The SQL type PREDICT gives in SQL (the rewriter casts the UDF's result to it)."""
        return "DOUBLE"

    def version_outputs(self, record: dict[str, Any], session: Callable[[], Any]) -> dict[str, tuple]:
        """{graph output: trailing dimensions} of a version (``session``: () -> its
        onnxruntime session)."""
        return {o.name: tuple(o.shape[1:]) if o.shape else () for o in session().get_outputs()}

    def predict_output(self, info) -> str | None:
        """The graph output PREDICT reads for a version (:class:`dbml.outputs.VersionInfo`)."""
        return self.parity_output if self.parity_output in info.graph_outputs else None

    def predict_type(self, info) -> str:
        """The SQL type PREDICT returns for a version."""
        return info.predict_type

    def predict_convert(self, info):
        """onnxruntime's array of :meth:`predict_output` -> the Arrow column PREDICT returns."""
        import pyarrow as pa

        return lambda out: pa.array(out.reshape(-1).astype(np.float64), type=pa.float64())

    def proba_output(self, info) -> str | None:
        """The graph output PREDICT_PROBA reads (None: the version does not offer it)."""
        return None

    # -- statements on a version ------------------------------------------------------------------
    def refusal(self, statement: str, who: str, model: str | None = None) -> DbmlError:
        """The error of a statement (``'EVALUATE MODEL'``, ``'EXPLAIN MODEL'``) that does not
        take this task's models (``who``: "model 'm' version 3" or "m:3"; ``model``: its name)."""
        return TargetError(f"{statement} does not take {self.plural or self.name + ' models'}; {who} is a {self.name} model")

    def evaluation(self, ctx, rec: dict[str, Any], source_sql: str, source_label: str, opts: dict[str, Any]) -> Evaluation:
        """EVALUATE MODEL on the rows of ``source_sql`` (``opts``: EVALUATE's options,
        validated; ``ctx``: the handler context). Refused unless the task has metrics."""
        raise self.refusal("EVALUATE MODEL", f"model '{rec['model']}' version {rec['version']}", rec["model"])

    def evaluation_sql(self, source_sql: str, model_ref: str, target: str | None, labels: list[Any] | None,
                       by: str | None = None, positive: Any = None) -> str:  # fmt: skip
        """The metrics SQL of :func:`dbml.evaluate.evaluation_sql` (pure: no database)."""
        raise TargetError(f"cannot evaluate a model of task {self.name!r}")

    def explain_measure(self):
        """What EXPLAIN MODEL measures (a :class:`dbml.explain.Measure`), or None: refused."""
        return None

    def monitor_rows(self, ctx, rec: dict[str, Any], source_sql: str, source_label: str) -> str:
        """The rows MONITOR MODEL scores, from the rows the user gave."""
        return source_sql

    def monitor_prediction(self, record: dict[str, Any], ref: str):
        """MONITOR's row for the prediction (:func:`dbml.monitor.histogram_prediction` and
        the like): by default PREDICT's value binned by the training prediction histogram."""
        import dbml.monitor as monitor

        return monitor.histogram_prediction(self.name, f"CAST(PREDICT({ref}, *) AS DOUBLE)", record)

    def evaluation_layout(self, curves: dict[str, Any]) -> Layout | None:
        """The panels of the picture of an EVALUATE run that stored ``curves`` (None: none)."""
        return None

    def card_facts(self, record: dict[str, Any]) -> list[tuple[str, str]]:
        """(label, text) rows the model card adds to "What the model is" for this task."""
        return []


TASKS: dict[str, Task] = {}  # filled at the end of the module, once its names exist
_plugins_loaded = False


def register(task: Task, *, replace: bool = False) -> Task:
    """Add a task to the table (a task defined outside the package). A name the table
    holds (a built-in one too) is refused unless ``replace`` (:mod:`dbml.plugins`)."""
    from dbml import plugins

    if not isinstance(task, Task):
        raise OptionError(f"a task is a dbml.tasks.Task, got {type(task).__name__}")
    if not task.name or not task.name.isidentifier() or task.name != task.name.lower():
        raise OptionError(f"a task needs a lower-case name made of letters, digits and _, got {task.name!r}")
    return plugins.add(TASKS, task.name, task, "task", replace)


def unregister(name: str) -> Task:
    """Remove a task from the table; returns it."""
    from dbml import plugins

    return plugins.remove(TASKS, name, "task")


def _load_plugins() -> None:
    """Register the tasks of installed packages (entry-point group ``dbml.tasks``), once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from dbml import plugins

    plugins.load_entry_points("dbml.tasks", TASKS, register)


def task_of(name: Any) -> Task | None:
    """The task of that name (the table, then installed plugins), or None."""
    if not isinstance(name, str):
        return None
    if name not in TASKS:
        _load_plugins()
    return TASKS.get(name)


def get_task(name: str) -> Task:
    """The task of that name; an OptionError naming the tasks there are."""
    task = task_of(name)
    if task is None:
        raise OptionError(f"unknown task '{name}'; tasks are {', '.join(TASKS)}")
    return task


def trainable() -> list[Task]:
    """The tasks TRAIN MODEL learns, in the order they are asked (:attr:`Task.priority`)."""
    _load_plugins()
    return sorted((t for t in TASKS.values() if t.trained), key=lambda t: t.priority)


def join_or(names: list[str]) -> str:
    """'a', 'a or b', 'a or b or c'."""
    return " or ".join(names)


def join_and(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def trainers(task: Task) -> str:
    """The architectures that learn ``task`` (for messages: 'lstm or gru')."""
    from dbml.architectures import ARCHITECTURES

    return join_or([a.name for a in ARCHITECTURES.values() if task.name in a.tasks])


def implied_task(target: str | None, options: dict[str, Any]) -> Task | None:
    """The task the statement's shape implies whatever ``task`` says (:meth:`Task.implied`), or None."""
    return next((t for t in trainable() if t.implied(target, options)), None)


def choose_task(model: str, target: str | None, target_type: str | None, n_distinct: int,
                options: dict[str, Any], allowed: tuple[str, ...]) -> Task:  # fmt: skip
    """The task of a TRAIN MODEL, within what the architecture does (``allowed``): the one
    the statement's shape implies, else the ``task`` option, else the first that claims
    the target's type and distinct values."""
    task = implied_task(target, options)
    if task is None:
        asked = options.get("task", "auto")
        if asked not in ("auto", None):
            task = get_task(asked)
            task.check_asked(model, target, target_type)
        else:
            task = next((t for t in trainable() if t.claims(target_type.upper(), n_distinct, options)), None)
            if task is None:
                raise TargetError(f"target column '{target}' has type {target_type}, which dbml cannot predict yet")
    if task.name not in allowed:
        raise task.unavailable(model, target, [TASKS[a] for a in allowed if a in TASKS])
    return task


def _builtin() -> dict[str, Task]:
    from dbml.tasks.classification import Classification
    from dbml.tasks.forecast import Forecast
    from dbml.tasks.imported import IMPORTED
    from dbml.tasks.reconstruction import Reconstruction
    from dbml.tasks.recommendation import Recommendation
    from dbml.tasks.regression import Regression

    return {t.name: t for t in (Classification(), Regression(), Reconstruction(), Forecast(), IMPORTED, Recommendation())}


TASKS.update(_builtin())
