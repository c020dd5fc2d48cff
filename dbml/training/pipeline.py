"""TRAIN MODEL from source to registry row, in named stages.

    resolve_source -> plan (the facts pass) -> read_rows (the rows pass: encoded rows, their
    roles in the split, the fingerprint) -> prepare_target -> profile -> fit_model
    -> export_and_check -> record

Each stage is a plain function of what the previous ones produced, testable alone. The
source runs twice at most (:mod:`dbml.data`): once for its facts, once for its rows.
Every check that can fail on user input runs before training starts, and nothing is
written unless every stage succeeded (the last stage is one registry transaction).
Kinds (:mod:`dbml.kinds`), tasks (:mod:`dbml.tasks`) and architectures
(:mod:`dbml.architectures`) hold everything specific; nothing here branches on one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import duckdb
import numpy as np
import pyarrow as pa
import torch
from sqlglot import exp

from dbml._version import __version__
from dbml.data import rows as data_rows
from dbml.data import source as data_source
from dbml.data.batches import Batch, Batches, TensorBatches
from dbml.training import distributed, finetune, streaming, transfer, tune
from dbml.registry import lineage, records
from dbml.architectures import ARCHITECTURES, Architecture, default_architecture, get_architecture
from dbml.errors import ExportError, FeatureError, OptionError, TargetError
from dbml.training.export import PREFIX, build_onnx
from dbml.features import FeatureSpec, feature_sql
from dbml.kinds import Shape, detect_columns, groups, kind_of, kind_options, shape_of, statistics_sql
from dbml.training.network import Ensemble, Network
from dbml.options import DISPLAY_OPTIONS, TRAINING_OPTIONS, validate_options, verbosity
from dbml.registry import Registry, check_model_name
from dbml.request import TrainRequest
from dbml.runtime import arrow_feeds, new_session
from dbml.sqltext import quote as _q
from dbml.summary import LOWER_IS_BETTER
from dbml.tasks import TASKS, Target, Task, choose_task, implied_task
from dbml.training import ProgressBar, Trainer

__all__ = ["TrainRequest", "train", "Source", "Plan", "resolve_source", "plan", "read_rows", "prepare_target",
           "profile", "fit_model", "export_and_check", "record"]  # fmt: skip

PARITY_TOLERANCE = 1e-4
MEMORY_LIMIT = 2 * 2**30  # bytes of one evaluation chunk's inputs, or of the held-out outputs
SMALL_NETWORK = 1_000_000  # parameters; below this one CPU thread trains as fast as several
VALIDATION_BATCH = 1024  # rows a validation step: a cnn's forward pass over 10k rows took 0.19 s in 1,024-row batches, 0.34 s in 4,096 (mlp and lstm: within 5 ms)
_TARGET_NAME = data_rows.TARGET


Source = data_source.Source


@dataclass
class Plan:
    """What a TRAIN MODEL will do, decided before any row is read."""

    name: str
    req: TrainRequest
    architecture: Architecture
    options: dict[str, Any]
    features: list[FeatureSpec]
    target: str | None
    target_type: str | None
    task: Task
    device: torch.device
    parent: finetune.Parent | None
    data_sql: str  # the rows that train: the source's rows with a target, or the task's own (a forecaster's windows)
    columns: list[str]
    facts: dict[str, Any] = field(default_factory=dict)
    row_hash: str | None = None  # a row's hash over the source's columns, or None where data_sql carries the fingerprint
    base: transfer.Base | None = None  # the version a transfer starts from (option base)


# -- 1. the source ---------------------------------------------------------------------------
def resolve_source(con: duckdb.DuckDBPyConnection, name: str, req: TrainRequest) -> Source:
    return data_source.resolve(con, name, req.source_sql, req.params, req.source_label)


# -- 2. the plan: target, architecture, options, kinds, task ---------------------------------
def plan(con: duckdb.DuckDBPyConnection, registry: Registry, name: str, req: TrainRequest, source: Source) -> Plan:
    columns, types = source.columns, source.types
    by_lower = {c.lower(): (c, t) for c, t in zip(columns, types)}
    if len(req.targets) > 1:
        raise TargetError(f"TRAIN MODEL {name} names {len(req.targets)} targets; one TARGET column is supported for now")
    target = target_type = None
    if req.targets:
        if req.targets[0].lower() not in by_lower:
            raise TargetError(
                f"target column '{req.targets[0]}' is not in the source {req.source_label}; its columns are {', '.join(columns)}"
            )
        target, target_type = by_lower[req.targets[0].lower()]
    _check_reserved(name, req, columns, [c for c in columns if c != target and (c == "" or c.lower() == _TARGET_NAME or c.lower().startswith(PREFIX))])
    long_names = [c for c in columns if len(c) > records.MAX_NAME]
    if long_names:
        raise FeatureError(
            f"column '{long_names[0][:40]}...' of the source of model '{name}' has a name of {len(long_names[0]):,} characters; "
            f"the registry keeps names of at most {records.MAX_NAME:,}: rename it in the source (SELECT * RENAME (...))"
        )
    n_features = len(columns) - (1 if target else 0)
    if n_features > records.MAX_FEATURES:
        raise FeatureError(
            f"the source {req.source_label} of model '{name}' has {n_features:,} feature columns; "
            f"the most a model takes is {records.MAX_FEATURES:,}: choose them with SELECT * EXCLUDE (...) or a column list"
        )
    named = [(c, t) for c, t in zip(columns, types) if c != target]
    lists = any(shape_of(c, t, req.options) == Shape.FIXED for c, t in named)
    if req.architecture is None and not req.targets and not lists:
        raise TargetError(
            f"TRAIN MODEL {name} needs a TARGET column; the source has columns {', '.join(columns)} "
            "(to find unusual rows without a target, write USING autoencoder)"
        )
    given = {k.lower(): v for k, v in req.options.items()}
    base = transfer.load_base(registry, given["base"]) if given.get("base") not in (None, "") else None
    if base is not None:  # a transfer keeps the base's family
        arch = transfer.architecture_of(base, req.architecture, name)
    elif req.architecture is None and (given.get("warm_start") or given.get("from_version")) and registry.has_versions(name):
        # fine-tuning keeps the parent's family
        parent_rec = registry.get(name, given.get("from_version") if isinstance(given.get("from_version"), int) and given.get("from_version") else None)
        known = parent_rec["architecture"] in ARCHITECTURES  # an imported file's is not: load_parent says why
        arch = get_architecture(parent_rec["architecture"] if known else default_architecture(bool(req.targets), lists))
    else:
        arch = get_architecture(req.architecture or default_architecture(bool(req.targets), lists))
    if not named:
        raise FeatureError(f"the source {req.source_label} has no column besides the target '{target}'")
    if target_type is not None and target_type.upper().startswith("ENUM"):
        target_type = "VARCHAR"
    task_options = tuple(o for t in arch.tasks for o in TASKS[t].options)
    own = {o.name for o in TRAINING_OPTIONS + arch.options + task_options}
    for key in req.options:  # another task's option: say which families take it
        takers = sorted(a for a, fam in ARCHITECTURES.items() if key.lower() not in own and any(
            key.lower() in {o.name for o in TASKS[t].options} for t in fam.tasks))  # fmt: skip
        if takers:
            what = "a recommender" if takers == ["recommender"] else "a forecaster"
            raise OptionError(f"option '{key}' is for USING {' or '.join(takers)} ({what}); "
                              f"architecture '{arch.name}' does not take it")  # fmt: skip
    declared = TRAINING_OPTIONS + arch.options + task_options + kind_options()
    options = validate_options(req.options, declared, f"TRAIN MODEL {name} USING {arch.name}")
    options["verbose"] = verbosity(options)  # resolved once: a bad pair fails before any data is read
    if options["freeze"] and base is None:
        raise OptionError(f"option 'freeze' of TRAIN MODEL {name} needs option 'base' (the model whose encoders and "
                          "trunk stay fixed); without a base every weight is new and trains")  # fmt: skip
    if base is not None and (options["warm_start"] or options["from_version"]):
        raise OptionError(f"TRAIN MODEL {name} gives option 'base' and {'warm_start' if options['warm_start'] else 'from_version'}: "
                          "base starts a new head on another version's trunk, fine-tuning continues a version with its "
                          "own head; give one of them")  # fmt: skip
    shaping = arch.options + kind_options()  # what shapes the encoders and trunk: a transfer keeps the base's
    if base is not None:
        transfer.keep_options(base, shaping, req.options, options, name)
    detecting = transfer.detection_options(base, shaping, req.options) if base is not None else req.options
    device = _device(options["device"])
    _check_precision(name, options, device)
    parent = None
    if options["warm_start"] or options["from_version"]:
        parent = finetune.load_parent(registry, name, options["from_version"] or None)
        if parent.record["architecture"] != arch.name:
            raise OptionError(
                f"version {parent.record['version']} of model '{name}' is USING {parent.record['architecture']}; "
                f"fine-tuning keeps the architecture: write USING {parent.record['architecture']} or leave USING out"
            )
        for opt in arch.options + task_options + kind_options():  # the network keeps the parent's shape
            key = opt.name
            given = {k.lower(): v for k, v in req.options.items()}
            if key in given and opt.coerce(given[key]) != parent.record["options"].get(key):
                raise OptionError(f"option '{key}' cannot change when fine-tuning model '{name}'")
            if key in parent.record["options"]:  # stored facts are checked like fresh ones
                try:
                    options[key] = opt.coerce(parent.record["options"][key])
                except OptionError as err:
                    raise OptionError(f"version {parent.record['version']} of model '{name}' stores {str(err)[6:]}") from None

    data_sql = data_source.examples_sql(req.source_sql, target, target_type)
    try:
        implied = TASKS[parent.record["task"]] if parent else implied_task(target, options)
    except KeyError:
        raise TargetError(f"version {parent.record['version']} of model '{name}' is a {parent.record['task']} model, which cannot be fine-tuned") from None
    # the facts pass: the target's facts, when choosing the task reads them, and the statistics
    # the kinds ask of the columns to choose their kinds, in one query (a task that makes its
    # own rows, a forecaster, has a facts pass of its own in task.source and no column kinds to find)
    reads_facts = target is not None and (implied is None or implied.needs_facts)
    asked = {} if implied is not None and not implied.needs_facts else statistics_sql(
        [c for c, _ in named], [t for _, t in named], detecting, arch.takes)  # fmt: skip
    facts: dict[str, Any] = {"distinct": 0}
    if reads_facts or asked:
        facts = data_source.source_facts(con, data_sql, req.params, target if reads_facts else None, target_type,
                                         aggregates=asked)  # fmt: skip
    prior = base.features if base is not None else parent.features if parent is not None else None
    detected = detect_columns([c for c, _ in named], [t for _, t in named], options=detecting,
                              statistics=facts.get("statistics") if asked else None, takes=arch.takes,
                              prior=prior)  # fmt: skip
    features = [d.feature() for d in detected]
    unsupported = [f for f in features if f.kind not in arch.kinds]
    if unsupported:
        raise FeatureError(f"architecture '{arch.name}' cannot take column '{unsupported[0].name}' ({unsupported[0].kind})")
    allowed = transfer.allowed_tasks(arch) if base is not None else arch.tasks
    task = implied if parent else choose_task(name, target, target_type, facts["distinct"], options, allowed)
    if any(k.lower() == "refit" for k in req.options) and options["refit"] and not task.refits:
        raise OptionError(f"option 'refit' of TRAIN MODEL {name}: a {task.name} model keeps the network that its "
                          "validation rows chose; only classification and regression train again on every row")  # fmt: skip
    _check_ensemble(name, options, req, task, parent)
    row_hash: str | None = lineage.row_hash_sql(columns)
    reshaped = task.source(con, name, req, columns, types, target, target_type, options)
    if reshaped is not None and base is not None:
        raise OptionError(f"option 'base' of TRAIN MODEL {name}: a {task.name} model learns from rows of its own making, "
                          "not the base's columns; a transfer learns a task on the source's rows (classification, regression)")
    if reshaped is not None:  # the task learns from rows of its own making (a forecaster's windows)
        data_sql, features, extra = reshaped
        facts, row_hash = {**facts, "extra": extra}, None
    if parent is not None:  # the parent's features, as it stored them
        by_name = {f.name.lower(): f for f in features}
        finetune.check_compatible(parent, features, target, parent.record["task"], None)
        features = [dataclasses.replace(f, name=by_name[f.name.lower()].name) for f in parent.features]
    if base is not None:  # the base's columns, in its order, as this source has them
        features = transfer.match_features(base, features, name, req.source_label)
    if options.get("numeric_encoding") == "auto":  # measured in benchmarks/accuracy.py: bins pay for the supervised tasks
        prior = parent if parent is not None else base
        # a parent or base stored before the option had standardised numbers: its weights expect them
        options["numeric_encoding"] = "quantile" if arch.binned_numbers and task.refits and prior is None else "standard"
    outputs = task.graph_outputs(Target())
    _check_reserved(name, req, columns, [f.name for f in features if f.name in outputs], task.name, outputs)
    if target is not None:
        task.check_facts(name, target, target_type, facts, options)
    return Plan(name, req, arch, options, features, target, target_type, task, device, parent, data_sql, columns, facts,
                row_hash, base)


# -- 3. the rows pass: encoded rows, their roles in the split, the fingerprint ---------------
def rows_sql(p: Plan) -> str:
    """The SQL of the rows pass (:func:`dbml.data.rows.rows_sql`)."""
    selects = [f"{feature_sql(f, exp.column(f.name, quoted=True), p.name).sql(dialect='duckdb')} AS {_q(f.name)}" for f in p.features]
    target_sql = p.task.target_sql(p.target, p.target_type) if p.target or p.task.own_target else None
    role, order = p.task.split_sql(_TARGET_NAME, data_rows.split.KEY, p.options)
    return data_rows.rows_sql(p.data_sql, selects, target_sql, role, order, p.row_hash, p.options["seed"])


def read_rows(con: duckdb.DuckDBPyConnection, p: Plan) -> pa.Table:
    """The encoded rows, ordered by their role (training rows first) and the split's order;
    the fingerprint of what was read is in the schema metadata (:func:`dbml.data.rows.fingerprint_of`)."""
    return data_rows.read(con, rows_sql(p), p.req.params, p.name, p.req.source_label, p.target)


# -- 4. the target and the split -------------------------------------------------------------
def prepare_target(p: Plan, table: pa.Table) -> tuple[Target, np.ndarray, np.ndarray]:
    y = table.column(_TARGET_NAME) if _TARGET_NAME in table.column_names else None
    target = p.task.prepare(p.name, p.target, p.target_type, y, p.parent)
    target.extra.update(p.facts.get("extra") or {})
    train_idx, val_idx = data_rows.roles(table)
    if len(train_idx) == 0:
        raise OptionError(f"option 'validation' = {p.options['validation']} leaves no training rows out of {table.num_rows}")
    return target, train_idx, val_idx


# -- 5. the profile, by DuckDB on the training rows (a fine-tune keeps its parent's) ---------
def profile(p: Plan, train_table: pa.Table, table: pa.Table | None = None) -> tuple[dict[str, Any], list[FeatureSpec]]:
    """The training profile (over the training rows of ``train_table``: a read's rows of
    the training role, or every row of another table) and the features as stored;
    ``table`` (every row) is checked too."""
    if p.base is not None:  # a transfer keeps the base's scaling and vocabularies: its trunk learnt on them
        prof = transfer.base_profile(p.base, p.features)
        transfer.check_shapes(p.base, p.features, train_table, p.options, prof, p.name)
    else:
        prof = p.parent.record["profile"] if p.parent is not None else data_rows.profile(train_table, p.features, p.options)
    for f in p.features:
        if table is not None:
            kind_of(f).check_rows(p.name, f, table.column(f.name), p.options)
        kind_of(f).check(p.name, f, prof, p.options)
    features = [kind_of(f).settle(f, prof) for f in p.features]
    _check_profile(p.name, features, prof, p.options)
    return prof, features


# -- 6. the module and training (the caller's random state is left as it was) ----------------
def batches(table: pa.Table, features: list[FeatureSpec], prof: dict[str, Any], model: str = "") -> dict[str, np.ndarray]:
    """The model's input arrays, one per group, from the encoded Arrow columns (every
    row: the profile saw only the training rows)."""
    out = {}
    for g in groups(features):
        try:
            out[g.key] = g.kind.tensor(g.features, [table.column(f.name).combine_chunks() for f in g.features], prof)
        except ValueError as err:  # a row the training rows' checks could not see (a held-out one)
            text = str(err).removeprefix("dbml: ")
            names = ", ".join(f"'{f.name}'" for f in g.features)
            raise FeatureError(f"column {names} of model '{model}': {text}; every row needs the training length and no NULL") from None
    return out


def build_network(p: Plan, features: list[FeatureSpec], prof: dict[str, Any], target: Target, member: int = 0) -> Network:
    """The network of plan ``p`` with fresh weights, from the seed (plus ``member``: the
    place of the network in an ensemble)."""
    torch.manual_seed(p.options["seed"] + member)
    grouped = groups(features)
    settings = {**p.options, **p.architecture.encoding(p.options)}
    encoders = [g.kind.encoder(g.features, prof, settings) for g in grouped]
    shapes = {g.key: tuple(e.shape) for g, e in zip(grouped, encoders)}
    trunk = p.architecture.build(shapes, p.task.name, p.options)
    target_width = sum(e.target_width() for e in encoders)
    head = p.task.head(int(trunk.width), target, p.architecture, {"model": p.name, "target_width": target_width, "inputs": shapes},
                       p.options)  # fmt: skip
    return Network([g.key for g in grouped], encoders, trunk, head, p.task)


def _part(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``a``: a view when they are one run (the read puts each role's rows
    together) of a writable array (torch shares its memory), else a copy."""
    if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and a.flags.writeable:
        return a[idx[0] : idx[-1] + 1]
    return a[idx]


def tensors(p: Plan, target: Target, arrays: dict[str, np.ndarray], y: pa.ChunkedArray | None, idx: np.ndarray):
    """The rows ``idx`` as a batch of tensors on the training device."""
    out = {k: torch.from_numpy(_part(a, idx)).to(p.device) for k, a in arrays.items()}
    if y is not None:
        rows = y.slice(int(idx[0]), len(idx)) if len(idx) and idx[-1] - idx[0] == len(idx) - 1 else y.take(pa.array(idx))
        out["target"] = p.task.y_tensor(target, rows).to(p.device)
    return out


def fit_model(p: Plan, features, prof, target: Target, arrays: dict[str, np.ndarray], train_idx, val_idx,
              y: pa.ChunkedArray | None = None):  # fmt: skip
    """Build the network and train it on the rows in memory; returns (network, logs,
    seconds, batch size, metrics)."""
    batch_size = p.options["batch_size"] or _auto_batch_size(len(train_idx))
    train_data = tensors(p, target, arrays, y, train_idx)
    val_data = tensors(p, target, arrays, y, val_idx) if len(val_idx) else None
    train = TensorBatches(train_data, batch_size, seed=p.options["seed"], drop_single=True)
    val = TensorBatches(val_data, max(batch_size, VALIDATION_BATCH), shuffle=False) if val_data is not None else None
    eval_idx = val_idx if len(val_idx) else train_idx
    eval_data = val_data if val_data is not None else train_data  # the tasks' metrics take the held-out rows whole

    def every() -> TensorBatches:
        both = np.concatenate([train_idx, val_idx])
        return TensorBatches(tensors(p, target, arrays, y, both), batch_size, seed=p.options["seed"], drop_single=True)

    del train_data, val_data
    return fit_batches(p, features, prof, target, train, val, eval_data, target, eval_idx, every, batch_size,
                       len(train_idx), len(val_idx))  # fmt: skip


def fit_batches(p: Plan, features, prof, target: Target, train: Batches, val: Batches | None, eval_data: Batch,
                eval_target: Target, eval_idx: np.ndarray, every: Callable[[], Batches], batch_size: int, n_train: int,
                n_val: int):  # fmt: skip
    """Build the network, train it on ``train`` (early stopping on ``val``), measure it on
    ``eval_data`` (the held-out rows, whole: ``eval_idx`` of ``eval_target.y``) and, when
    option ``refit`` asks, train it again on ``every()`` (every training row); returns
    (network, logs, seconds, batch size, metrics). In memory or streamed alike."""
    callbacks = list(p.req.callbacks)
    if p.options["verbose"]:
        callbacks.append(ProgressBar(f"train {p.name}", p.options["verbose"]))

    def run(options: dict[str, Any], callbacks, train, val, schedule=None, member: int = 0):
        """A network from its first step (fresh weights, or a parent's or a base's),
        trained; returns (network, logs, seconds). ``member``: its place in an ensemble."""
        if p.req.fit_with is not None:  # the network trains elsewhere (a Spark cluster's processes)
            started = time.perf_counter()
            net, logs = p.req.fit_with(p, features, prof, target, options, train, val, schedule)
            return net.to(p.device), logs, time.perf_counter() - started
        if options["workers"] > 1:  # N processes, gradients averaged (dbml.training.distributed)
            started = time.perf_counter()
            label = f"{'refit' if schedule else 'train'} {p.name}"
            net, logs = distributed.fit(p, features, prof, target, options, train, val, schedule, label,
                                        "refit " if schedule else "")  # fmt: skip
            return net, logs, time.perf_counter() - started
        with torch.random.fork_rng(devices=[p.device] if p.device.type == "cuda" else []):
            net = start_network(p, features, prof, target, member).to(p.device)
            if p.parent is None and p.base is None:
                p.task.start(net, train, val, options)
            started = time.perf_counter()
            with _cpu_threads(p.device, p.options["threads"], sum(x.numel() for x in net.parameters())):
                logs = make_trainer(net, p, options, callbacks, schedule).fit(train, val)
            return net, logs, time.perf_counter() - started

    k = members(p, n_train, isinstance(train, TensorBatches))
    p.options["ensemble"] = k  # resolved once: the version records how many networks it holds
    nets, runs, seconds = [], [], 0.0
    for i in range(k):  # each member from the seed plus its place; the first is what ensemble = 1 trains
        if k > 1 and p.options["verbose"]:
            print(f"train {p.name}: network {i + 1} of {k} (seed {p.options['seed'] + i})", file=sys.stderr, flush=True)
        net, logs_i, more = run(p.options, callbacks, train, val, member=i)
        nets.append(net)
        runs.append(logs_i)
        seconds += more
    logs = runs[0]  # the version's curves are its first network's (each member's epochs are in metrics.ensemble)
    if k > 1:
        single = _headline(p, nets[0], eval_data, eval_target, eval_idx)
        net = Ensemble(nets)
    p.task.after_fit(net, eval_data, target, p.options)
    with torch.no_grad():
        metrics = p.task.metrics(net, eval_data, eval_target, eval_idx)
    metrics["evaluated_on"] = "validation" if n_val else "training"
    metrics["rows"] = int(len(eval_idx))
    if k > 1:
        metrics["ensemble"] = {"members": k, "seeds": [p.options["seed"] + i for i in range(k)],
                               "epochs": [len(r) for r in runs], "first_member": single}  # fmt: skip
    simple = _baseline(p, net, train, eval_data, eval_target, eval_idx)
    if simple:
        metrics["baseline"] = simple
    schedules = [refit_schedule(p, r, n_train, n_val) for r in runs]
    if all(schedules):  # every network (a member whose validation loss was never finite keeps its first run: all do)
        # the validation rows chose the epochs and measured the network above; the version is a second
        # network (per member), same seed and start, trained on every training row for those epochs at the same rates
        del net, nets, train, val
        both = every()
        bar = [ProgressBar(f"refit {p.name}", p.options["verbose"], "refit ")] if p.options["verbose"] else []
        nets = []
        for i, schedule in enumerate(schedules):
            net, _, more = run({**p.options, "epochs": len(schedule)}, bar, both, None, schedule, member=i)
            nets.append(net)
            seconds += more
        net = Ensemble(nets) if k > 1 else nets[0]
        metrics["refit"] = {"epochs": len(schedules[0]), "rows": int(both.rows)}
        if k > 1:
            metrics["refit"]["member_epochs"] = [len(s) for s in schedules]
    return net.cpu().eval(), logs, seconds, batch_size, metrics


def _headline(p: Plan, net: Network, eval_data: Batch, target: Target, idx: np.ndarray) -> dict[str, Any]:
    """The task's headline metric of one network on the held-out rows (an ensemble's first
    member, beside the ensemble's own metrics)."""
    with torch.no_grad():
        value = p.task.metrics(net, eval_data, target, idx).get(p.task.headline)
    return {p.task.headline: value}


ENSEMBLE_MEMBERS = 5  # option ensemble's default where it applies (benchmarks/accuracy.py --compare 'ensemble = 1')
# ... on at most this many training rows: every small table (measured to gain from 170 training rows up, at a few
# seconds' cost) up to where one network already takes tens of seconds
ENSEMBLE_MAX_ROWS = 10_000


def members(p: Plan, n_train: int, in_memory: bool) -> int:
    """How many networks the version holds: option ``ensemble`` when given, else
    :data:`ENSEMBLE_MEMBERS` for a task that ensembles and an architecture measured to
    gain from it (the mlp), trained here in memory from fresh weights on
    at most :data:`ENSEMBLE_MAX_ROWS` training rows (a fine-tuned version keeps its
    parent's count, :func:`plan`), else 1."""
    given = p.options.get("ensemble")
    if given is not None:
        return int(given)
    here = p.options["workers"] == 1 and p.req.fit_with is None and in_memory
    if p.task.ensembles and p.architecture.ensembled and here and p.base is None and n_train <= ENSEMBLE_MAX_ROWS:
        return ENSEMBLE_MEMBERS
    return 1


def _baseline(p: Plan, net: Network, train: Batches, eval_data: Batch, target: Target, idx: np.ndarray):
    """The task's simple models on the held-out rows (:meth:`Task.baseline`). They are a
    comparison, not the version: one that cannot be fitted says why and the TRAIN goes on."""
    try:
        return p.task.baseline(net, train, eval_data, target, idx)
    except (RuntimeError, ValueError, FloatingPointError) as e:  # an ill-conditioned fit (a dbml error goes on up)
        return {"linear": {"skipped": f"the fit failed: {str(e).splitlines()[0][:200]}"}}


def start_network(p: Plan, features, prof, target: Target, member: int = 0) -> Network:
    """The network of plan ``p`` before its first step: fresh weights from the seed, or a
    parent's (fine-tune), or a base's trunk, frozen or not (transfer). ``member``: its
    place in an ensemble, which starts from the seed plus ``member`` and, of a parent or
    base that is an ensemble itself, from that member's weights (the base's members in turn)."""
    net = build_network(p, features, prof, target, member)
    if p.parent is not None:
        finetune.load_weights(net, finetune.member_weights(p.parent, member))
    if p.base is not None:
        transfer.load_trunk(net, finetune.member_weights(p.base, member))
        if p.options["freeze"]:
            transfer.freeze(net)
    return net


def make_trainer(net: Network, p: Plan, options: dict[str, Any], callbacks, schedule=None) -> Trainer:
    """The loop that trains ``net`` for plan ``p``."""
    return Trainer(net, p.task, options, callbacks, p.device, schedule=schedule)


# -- 7. ONNX and the parity check ------------------------------------------------------------
def export_and_check(p: Plan, net: Network, features, prof, target: Target, table: pa.Table,
                     arrays: dict[str, np.ndarray], idx: np.ndarray) -> tuple[bytes, float]:  # fmt: skip
    blob = build_onnx(
        net, features, prof, p.task, target,
        {"dbml.model": p.name, "dbml.target": p.target, "dbml.target_type": p.target_type,
         "dbml.architecture": p.architecture.name, "dbml.version": __version__, **_extra_metadata(target),
         **({"dbml.base": f"{p.base.record['model']}:{p.base.record['version']}"} if p.base is not None else {})},
    )  # fmt: skip
    return blob, _parity(p.name, net, blob, table, features, arrays, idx, p.task.parity_output)


def _extra_metadata(target: Target) -> dict[str, Any]:
    """The task's learnt scalars (an anomaly threshold) as graph metadata."""
    return {f"dbml.{k}": v for k, v in target.extra.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def _parity(name: str, net: Network, blob: bytes, table: pa.Table, features: list[FeatureSpec],
            arrays: dict[str, np.ndarray], idx: np.ndarray, output: str) -> float:  # fmt: skip
    """Largest difference between onnxruntime (raw columns) and torch on ``idx`` rows."""
    session = new_session(blob)
    rows = table.take(pa.array(idx))
    feeds = arrow_feeds(features, [rows.column(f.name) for f in features])
    onnx_out = session.run([output], feeds)[0].astype(np.float64)
    with torch.no_grad():
        torch_out = net.outputs({k: torch.from_numpy(a[idx]) for k, a in arrays.items()})[output].double().numpy()
    diff = np.abs(onnx_out - torch_out)
    scale = np.maximum(1.0, np.abs(torch_out))
    worst = float(np.max(diff / scale)) if diff.size else 0.0
    if not worst <= PARITY_TOLERANCE:
        raise ExportError(
            f"the ONNX graph of model '{name}' disagrees with torch by {worst:.3g} on held-out rows "
            f"(tolerance {PARITY_TOLERANCE}); the version was not saved"
        )
    return float(np.max(diff)) if diff.size else 0.0


# -- 8. the record: one registry transaction --------------------------------------------------
def record(con, registry: Registry, p: Plan, features, prof, target: Target, row_count: int, n_train: int, n_val: int,
           fingerprint: str | None, metrics, logs, seconds, batch_size, blob: bytes, parity: float,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The version's record, written in one registry transaction (``extra``: how it
    trained, such as ``streaming``, kept in its options)."""
    if p.device.type == "cuda":  # which GPU trained it
        extra = {**(extra or {}), "gpu": torch.cuda.get_device_name(p.device)}
    rec = {
        "model": p.name,
        "architecture": p.architecture.name,
        "task": p.task.name,
        "options": {**{k: v for k, v in p.options.items() if k not in DISPLAY_OPTIONS},
                    "batch_size": batch_size, **(extra or {})},  # the batch size actually used; display options are no part of the model
        "features": [f.to_dict() for f in features],
        "profile": prof,
        "target": p.target,
        "target_type": p.target_type,
        "labels": target.labels,
        "source_sql": p.req.written_sql or p.req.source_sql,
        "source_tables": lineage.source_tables(con, p.req.source_sql),
        "row_count": int(row_count),
        "train_rows": int(n_train),
        "validation_rows": int(n_val),
        "data_fingerprint": fingerprint,  # of the rows the read that trained saw
        "metrics": metrics,
        "epochs": len(logs),
        "train_seconds": round(seconds, 3),
        "device": str(p.device),
        "library_versions": _library_versions(),
        "onnx_sha256": hashlib.sha256(blob).hexdigest(),
        "onnx_size": len(blob),
        "parity_error": parity,
        "parent_version": p.parent.record["version"] if p.parent else None,
        "base_model": p.base.record["model"] if p.base else None,
        "base_version": p.base.record["version"] if p.base else None,
    }
    lineage_detail = {"base": rec["base_model"], "base_version": rec["base_version"]} if p.base else None
    rec["version"] = registry.add_version(rec, blob, logs, detail=lineage_detail)
    return rec


def train(con: duckdb.DuckDBPyConnection, registry: Registry, req: TrainRequest) -> dict[str, Any]:
    """Run one TRAIN MODEL; returns the result row (model, version, task, rows, metrics, ...)."""
    started = time.perf_counter()
    name = check_model_name(req.model)
    if req.if_not_exists and registry.has_versions(name):
        return _result(registry.get(name), "exists")
    p = plan(con, registry, name, req, resolve_source(con, name, req))
    streams = streaming.decide(p, con)
    distributed.check(p.name, p.options, p.device, streams)
    searched = _check_tune(p, streams)
    if streams:
        return streaming.train(con, registry, p, started)
    table = read_rows(con, p)
    target, train_idx, val_idx = prepare_target(p, table)
    prof, features = profile(p, table, table)
    _check_sizes(p.name, features, prof, target, len(val_idx) or len(train_idx),
                 p.options["batch_size"] or _auto_batch_size(len(train_idx)), p.options)  # fmt: skip
    arrays = batches(table, features, prof, name)
    p.task.observe(target, arrays, train_idx)
    y = table.column(_TARGET_NAME) if _TARGET_NAME in table.column_names else None
    tuning = None
    if searched:  # trials without the refit, judged on the validation rows; the best options train the version
        def trial(t: Plan):
            return fit_model(t, features, prof, target, arrays, train_idx, val_idx, y)

        p, tuning = tune.search(p, trial, p.task.headline, p.task.headline in LOWER_IS_BETTER, searched, _declared(p),
                                len(train_idx))
    net, logs, seconds, batch_size, metrics = fit_model(p, features, prof, target, arrays, train_idx, val_idx, y)
    if tuning is not None:
        metrics["tuning"] = tuning
        seconds += sum(t["seconds"] for t in tuning["trials"])
    eval_idx = val_idx if len(val_idx) else train_idx
    blob, parity = export_and_check(p, net, features, prof, target, table, arrays, eval_idx[:2048])
    rec = record(con, registry, p, features, prof, target, table.num_rows, len(train_idx), len(val_idx),
                 data_rows.fingerprint_of(table), metrics, logs, seconds, batch_size, blob, parity,
                 {"streaming": False})  # fmt: skip
    rec["seconds"] = time.perf_counter() - started
    return _result(rec, "trained")


# -- checks and helpers ------------------------------------------------------------------------
def _declared(p: Plan) -> tuple:
    """The options of the plan's architecture and the training's (what ``tune`` may draw from)."""
    return TRAINING_OPTIONS + p.architecture.options


def _check_tune(p: Plan, streams: bool) -> list[str]:
    """The options ``tune`` draws (none without it); an OptionError for a search that cannot run."""
    searched = tune.check(p.name, p.options, p.req.options, _declared(p), p.architecture.name, streams,
                          p.options["workers"], p.req.fit_with is not None)  # fmt: skip
    if searched and (p.parent is not None or p.base is not None):
        raise OptionError(f"option 'tune' of TRAIN MODEL {p.name} draws the network's shape, which "
                          f"{'fine-tuning keeps from the parent' if p.parent is not None else 'a transfer keeps from the base'}; "
                          "tune a new model instead")  # fmt: skip
    if searched and not p.task.headline:
        raise OptionError(f"option 'tune' of TRAIN MODEL {p.name}: a {p.task.name} model has no validation metric to judge trials by")
    return searched

def _check_ensemble(name: str, options: dict[str, Any], req: TrainRequest, task: Task, parent) -> None:
    """Refuse option ``ensemble`` where it cannot apply; a fine-tuned version holds as many
    networks as its parent (each member goes on from its own weights, so the same refusals
    apply to the parent's count)."""
    given = options.get("ensemble")
    if parent is not None:
        held = finetune.members_of(parent)
        if given is not None and given != held:
            raise OptionError(f"option 'ensemble' cannot change when fine-tuning model '{name}': version "
                              f"{parent.record['version']} holds {held} network(s)")  # fmt: skip
        options["ensemble"] = given = held
    if given is None or given == 1:
        return
    if not task.ensembles:
        raise OptionError(f"option 'ensemble' of TRAIN MODEL {name}: a {task.name} model is one network; "
                          "classification and regression average several")  # fmt: skip
    if options["workers"] > 1 or req.fit_with is not None:
        raise OptionError(f"option 'ensemble' of TRAIN MODEL {name} trains its networks one after another in this "
                          "process; give workers = 1 (or ensemble = 1)")  # fmt: skip


def _check_reserved(model: str, req: TrainRequest, columns: list[str], taken: list[str], task: str | None = None,
                    outputs: dict[str, str] | None = None) -> None:  # fmt: skip
    """Refuse feature columns whose names the ONNX graph keeps for itself, before any
    training, with a rename that runs in DuckDB."""
    if not taken:
        return
    column = taken[0]
    used = {c.lower() for c in columns}
    new = next(f"{column or 'column'}_{i}" for i in range(1, len(columns) + 2) if f"{column or 'column'}_{i}".lower() not in used)
    new = new.replace("/", "_")
    source = req.source_label if req.source_label != "(query)" else (
        f"({req.source_sql.strip()})" if len(req.source_sql) <= 200 else "(<your query>)"
    )
    why = (
        "the empty name is not a valid ONNX input name" if column == "" else
        f"'{_TARGET_NAME}' is the name dbml gives the target" if column.lower() == _TARGET_NAME else
        f"names starting with '{PREFIX}' are kept for the graph's own tensors" if column.lower().startswith(PREFIX) else
        f"'{column}' is the name of an output of the ONNX graph of a {task} ({', '.join(outputs or ())})"
    )  # fmt: skip
    raise FeatureError(
        f"feature column '{column}' of model '{model}' has a reserved name: {why}; rename it in the source, "
        f"for example FROM (SELECT * RENAME ({_q(column)} AS {_q(new)}) FROM {source})"
    )


def _check_profile(model: str, features: list[FeatureSpec], prof: dict[str, Any], options: dict[str, Any]) -> None:
    """Category values and the profile within what the registry keeps, before training."""
    for f in features:
        vocab = prof[f.name].get("vocabulary")
        longest = max(vocab or [""], key=len)
        if len(longest) > records.MAX_LABEL_TEXT:
            raise FeatureError(
                f"column '{f.name}' of model '{model}' has a category value of {len(longest):,} characters; category "
                f"values are kept up to {records.MAX_LABEL_TEXT:,}: shorten them in the query (left({_q(f.name)}, 100)) "
                "or leave the column out"
            )
    size = len(json.dumps(prof, default=str))
    if size > records.MAX_JSON_BYTES:
        raise FeatureError(
            f"the feature profile of model '{model}' takes {size:,} bytes, over the registry's {records.MAX_JSON_BYTES:,}: "
            f"lower max_categories (now {options['max_categories']:,}) or leave long text columns out"
        )


def _check_sizes(model: str, features: list[FeatureSpec], prof: dict[str, Any], target: Target,
                 n_eval: int, batch_size: int, options: dict[str, Any]) -> None:  # fmt: skip
    """The network's input width and output size, against memory, before training."""
    grouped = groups(features)
    width = sum(g.kind.width(g.features, prof) for g in grouped)
    chunk = max(batch_size, 4096)
    if chunk * width * 4 > MEMORY_LIMIT:
        raise FeatureError(
            f"the features of model '{model}' make {width:,} network inputs; that needs over "
            f"{chunk * width * 4 / 2**20:,.0f} MiB per batch: lower max_categories (now {options['max_categories']:,}) "
            "or leave wide columns out"
        )
    k = len(target.labels or [])
    if n_eval * k * 4 * 3 > MEMORY_LIMIT:
        raise TargetError(
            f"model '{model}' has {k:,} classes and {n_eval:,} held-out rows, whose outputs need over "
            f"{n_eval * k * 12 / 2**20:,.0f} MiB: group rare classes or lower max_labels (now {options['max_labels']:,})"
        )


REFIT_ROWS = 1_000  # option refit's default: on from this many rows (benchmarks/accuracy.py --compare 'refit = false')


def refit_schedule(p: Plan, logs, n_train: int, n_validation: int) -> list[float]:
    """The learning rate of each epoch up to the best validation loss, when option
    ``refit`` asks for a second network on every training row (by default: from
    :data:`REFIT_ROWS` rows, below which the validation rows choose the epochs too
    noisily to pay) and the task takes one; else []."""
    wanted = p.options.get("refit")
    if wanted is None:
        wanted = n_train + n_validation >= REFIT_ROWS
    if not (wanted and p.task.refits and n_validation and logs):
        return []
    scored = [log for log in logs if log.val_loss is not None and math.isfinite(log.val_loss)]
    if not scored:
        return []
    best = min(scored, key=lambda log: (log.val_loss, log.epoch))
    return [log.lr for log in logs[: best.epoch]]


def _auto_batch_size(n_train: int) -> int:
    size = 2 ** int(round(math.log2(max(n_train, 1) / 64))) if n_train > 64 else 32
    return int(min(max(size, 32), 1024))


def _check_precision(name: str, options: dict[str, Any], device: torch.device) -> None:
    """Refuse bf16 on a GPU without bfloat16 arithmetic, before any row is read."""
    if options.get("precision") == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise OptionError(f"option 'precision' = 'bf16' of TRAIN MODEL {name}: the GPU {torch.cuda.get_device_name(device)} "
                          "has no bfloat16 arithmetic; leave precision = 'fp32'")  # fmt: skip


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise OptionError("option 'device' is 'cuda' but no CUDA device is available; use device = 'auto' or 'cpu'")
    if choice in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


@contextlib.contextmanager
def _cpu_threads(device: torch.device, threads: int, n_parameters: int):
    """Train small networks on one CPU thread: as fast when the machine is idle, and
    over ten times faster when other work holds the cores (measured: 4.7 s against
    70.7 s for a 5,000-row MLP beside one busy process). The caller's setting is restored."""
    if device.type != "cpu" or (threads == 0 and n_parameters >= SMALL_NETWORK):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import sqlglot

    return {
        "dbml": __version__, "duckdb": duckdb.__version__, "torch": torch.__version__,
        "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "sqlglot": sqlglot.__version__,
        "pyarrow": pa.__version__, "numpy": np.__version__, "python": platform.python_version(),
    }  # fmt: skip


def _result(rec: dict[str, Any], status: str) -> dict[str, Any]:
    """TRAIN MODEL's one row: the numeric validation metrics (the prediction distribution
    stays in the registry's metrics JSON), the size in human units, and the headline metric
    in columns of its own."""
    from dbml.summary import headline, human_size, versus

    metrics = {k: v for k, v in (rec.get("metrics") or {}).items() if isinstance(v, (int, float))}
    metric, score = headline(rec["task"], rec.get("metrics"))
    return {  # the columns of earlier releases keep their places; a terminal shows the last ones too
        "model": rec["model"],
        "version": rec["version"],
        "status": status,
        "task": rec["task"],
        "architecture": rec["architecture"],
        "rows": rec["row_count"],
        "train_rows": rec["train_rows"],
        "validation_rows": rec["validation_rows"],
        "metrics": metrics,
        "epochs": rec["epochs"],
        "seconds": round(float(rec.get("seconds", rec.get("train_seconds", 0.0))), 3),
        "device": rec["device"],
        "size": human_size(rec.get("onnx_size")),
        "metric": metric,
        "score": score,
        "baseline": versus(rec["task"], rec.get("metrics")),
    }
