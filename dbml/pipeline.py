"""TRAIN MODEL from source to registry row.

source relation -> checks (target, features, options) -> rows as Arrow ->
seeded split -> profile by DuckDB -> tensors -> fit -> ONNX -> parity check ->
one registry transaction. Every check that can fail on user input runs before
training starts, and nothing is written unless every step succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from sqlglot import exp

import dbml
from dbml import finetune, lineage, records
from dbml.architectures import default_architecture, get_architecture
from dbml.errors import ExportError, FeatureError, OptionError, SourceError, TargetError
from dbml.export import OUTPUTS, PREFIX, build_onnx
from dbml.features import FLOAT_MAX, QUANTILES, FeatureSpec, bin_index, encode_features, feature_kind, feature_sql, profile_features
from dbml.model import TabularModel, TabularPreprocessor
from dbml.options import MAX_LABELS, TRAINING_OPTIONS, validate_options
from dbml.registry import Registry, check_model_name
from dbml.runtime import arrow_feeds, new_session
from dbml.udfs import label_field
from dbml.training import Callback, ProgressBar, fit
from dbml.sqltext import quote as _q

__all__ = ["TrainRequest", "train", "label_types"]

PARITY_TOLERANCE = 1e-4
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_TARGET_NAME = "__dbml_target__"


@dataclass
class TrainRequest:
    """A TRAIN MODEL statement or ``Connection.train`` call, ready to run.

    Attributes:
        model: the model name as written.
        source_sql: a query giving the training rows.
        source_label: the source as the user wrote it, for messages.
        targets: target column names.
        architecture: the name after USING, or None for the default.
        options: WITH options as written.
        if_not_exists: skip when the model already has a version.
        params: values bound to the source query's parameters.
        callbacks: extra training-loop callbacks (Python API only).
    """

    model: str
    source_sql: str
    source_label: str
    targets: list[str] = field(default_factory=list)
    architecture: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    if_not_exists: bool = False
    params: list[Any] | None = None
    callbacks: list[Callback] = field(default_factory=list)




def _task_of(target: str, sql_type: str, n_distinct: int, options: dict[str, Any]) -> str:
    t = sql_type.upper()
    asked = options["task"]
    categorical = t in ("BOOLEAN", "VARCHAR") or t.startswith("ENUM")
    numeric = t in _INTEGER_TYPES or t in ("UHUGEINT", "FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL")
    if asked == "regression" and not numeric:
        raise TargetError(f"target column '{target}' has type {sql_type}; task = 'regression' needs a numeric target")
    if asked != "auto":
        return asked
    if categorical:
        return "classification"
    if t in _INTEGER_TYPES and n_distinct <= options["max_classes"]:
        return "classification"
    if t in _INTEGER_TYPES or t in ("FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL"):
        return "regression"
    raise TargetError(f"target column '{target}' has type {sql_type}, which dbml cannot predict yet")


def _check_reserved(model: str, req: "TrainRequest", columns: list[str], taken: list[str], task: str | None = None) -> None:
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
        f"'{column}' is the name of an output of the ONNX graph of a {task} ({', '.join(OUTPUTS.get(task or '', ()))})"
    )  # fmt: skip
    raise FeatureError(
        f"feature column '{column}' of model '{model}' has a reserved name: {why}; rename it in the source, "
        f"for example FROM (SELECT * RENAME ({_q(column)} AS {_q(new)}) FROM {source})"
    )


def _target_facts(con, data_sql: str, target: str, target_type: str, params) -> tuple[int, Any, Any]:
    """(distinct values, min, max) of the target; min and max only for integer types
    (for the range check of class labels), so that nothing big is fetched."""
    t = _q(target)
    integer = target_type.upper() in _INTEGER_TYPES or target_type.upper() == "UHUGEINT"
    bounds = f"CAST(min({t}) AS VARCHAR), CAST(max({t}) AS VARCHAR)" if integer else "NULL, NULL"
    n, lo, hi, longest = con.execute(
        f"SELECT count(DISTINCT {t}), {bounds}, max(length(CAST({t} AS VARCHAR))) FROM ({data_sql})", params
    ).fetchall()[0]
    return int(n), (int(lo) if lo is not None else None), (int(hi) if hi is not None else None), int(longest or 0)


def _check_classes(model: str, target: str, target_type: str, n_distinct: int, lo: Any, hi: Any, options: dict[str, Any]) -> None:
    """A classifier's class count and labels, checked before any row is read."""
    if n_distinct > options["max_labels"]:
        raise TargetError(
            f"target column '{target}' of model '{model}' has {n_distinct:,} distinct values; a classifier takes at most "
            f"max_labels = {options['max_labels']:,} classes: group rare values in the query, "
            f"or raise WITH (max_labels = ...) (up to {MAX_LABELS:,})"
            + (", or use task = 'regression'" if target_type.upper() not in ("VARCHAR", "BOOLEAN") else "")
        )
    if lo is not None and not (-(2**63) <= lo and hi < 2**63):
        raise TargetError(
            f"target column '{target}' of model '{model}' has class labels beyond the BIGINT range "
            f"({lo if lo < -(2**63) else hi}); cast it to VARCHAR in the query"
        )


def _check_profile(model: str, features: list[FeatureSpec], profile: dict[str, Any], options: dict[str, Any]) -> None:
    """Category values and the profile within what the registry keeps, before training."""
    for f in features:
        vocab = profile[f.name].get("vocabulary") if f.kind == "category" else None
        longest = max(vocab or [""], key=len)
        if len(longest) > records.MAX_LABEL_TEXT:
            raise FeatureError(
                f"column '{f.name}' of model '{model}' has a category value of {len(longest):,} characters; category "
                f"values are kept up to {records.MAX_LABEL_TEXT:,}: shorten them in the query (left({_q(f.name)}, 100)) "
                "or leave the column out"
            )
    size = len(json.dumps(profile, default=str))
    if size > records.MAX_JSON_BYTES:
        raise FeatureError(
            f"the feature profile of model '{model}' takes {size:,} bytes, over the registry's {records.MAX_JSON_BYTES:,}: "
            f"lower max_categories (now {options['max_categories']:,}) or leave long text columns out"
        )


MEMORY_LIMIT = 2 * 2**30  # bytes of one evaluation chunk's inputs, or of the held-out outputs


def _check_sizes(model: str, features: list[FeatureSpec], profile: dict[str, Any], labels: list[Any] | None,
                 n_eval: int, batch_size: int, options: dict[str, Any]) -> None:  # fmt: skip
    """The network's input width (one-hot codes included) and output size, against memory, before training."""
    categories = [f for f in features if f.kind == "category"]
    width = sum(1 + (profile[f.name].get("nulls", 0) > 0) for f in features if f.kind != "category")
    width += sum(len(profile[f.name]["vocabulary"]) + 1 for f in categories)
    chunk = max(batch_size, 4096)
    if chunk * width * 4 > MEMORY_LIMIT:
        widest = max(categories, key=lambda f: len(profile[f.name]["vocabulary"]), default=None)
        where = (f"; the widest is column '{widest.name}' with {len(profile[widest.name]['vocabulary']):,} "
                 f"categories (max_categories = {options['max_categories']:,})") if widest else ""  # fmt: skip
        raise FeatureError(
            f"the features of model '{model}' make {width:,} network inputs{where}; that needs over "
            f"{chunk * width * 4 / 2**20:,.0f} MiB per batch: lower max_categories or leave wide columns out"
        )
    k = len(labels or [])
    if n_eval * k * 4 * 3 > MEMORY_LIMIT:
        raise TargetError(
            f"model '{model}' has {k:,} classes and {n_eval:,} held-out rows, whose outputs need over "
            f"{n_eval * k * 12 / 2**20:,.0f} MiB: group rare classes or lower max_labels (now {options['max_labels']:,})"
        )


def label_types(sql_type: str) -> tuple[str, str]:
    """(the ONNX label tensor type, the SQL type the predict UDF returns) of a class target."""
    t = sql_type.upper()
    if t == "BOOLEAN":
        return "bool", "BOOLEAN"
    if t in _INTEGER_TYPES:
        return "int64", "BIGINT"
    return "string", "VARCHAR"


def _split(n: int, fraction: float, seed: int, strata: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation indices; stratified by class for classifiers."""
    rng = np.random.default_rng(seed)
    if fraction <= 0 or n < 10:
        return np.arange(n), np.arange(0)
    if strata is None:
        perm = rng.permutation(n)
        n_val = max(1, int(round(n * fraction)))
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    val = []
    for cls in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == cls))
        take = int(round(len(idx) * fraction))
        if take >= len(idx):
            take = len(idx) - 1
        val.append(idx[:take])
    val_idx = np.sort(np.concatenate(val)) if val else np.arange(0)
    mask = np.ones(n, bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def _auto_batch_size(n_train: int) -> int:
    size = 2 ** int(round(math.log2(max(n_train, 1) / 64))) if n_train > 64 else 32
    return int(min(max(size, 32), 1024))


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise OptionError("option 'device' is 'cuda' but no CUDA device is available; use device = 'auto' or 'cpu'")
    if choice in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


SMALL_NETWORK = 1_000_000  # parameters; below this one CPU thread trains as fast as several


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
        "dbml": dbml.__version__, "duckdb": duckdb.__version__, "torch": torch.__version__,
        "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "sqlglot": sqlglot.__version__,
        "pyarrow": pa.__version__, "numpy": np.__version__, "python": platform.python_version(),
    }  # fmt: skip


def _metrics(task: str, out: torch.Tensor, y: torch.Tensor, labels: list[Any] | None) -> dict[str, float]:
    if task == "classification":
        probs = torch.softmax(out, dim=1)
        pred = probs.argmax(dim=1)
        m = {
            "accuracy": float((pred == y).float().mean()),
            "log_loss": float(torch.nn.functional.cross_entropy(out, y)),
        }
        f1s = []
        for k in range(len(labels or [])):
            tp = float(((pred == k) & (y == k)).sum())
            fp = float(((pred == k) & (y != k)).sum())
            fn = float(((pred != k) & (y == k)).sum())
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        m["f1_macro"] = float(np.mean(f1s)) if f1s else 0.0
        return m
    err = out - y
    ss_res = float((err**2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 0.0,
        "rmse": math.sqrt(ss_res / max(len(y), 1)),
        "mae": float(err.abs().mean()),
    }


def train(con: duckdb.DuckDBPyConnection, registry: Registry, req: TrainRequest) -> dict[str, Any]:
    """Run one TRAIN MODEL; returns the result row (model, version, task, rows, metrics, ...)."""
    started = time.perf_counter()
    name = check_model_name(req.model)
    if req.if_not_exists and registry.has_versions(name):
        rec = registry.get(name)
        return _result(rec, "exists")

    # -- the source and its columns ------------------------------------------------
    try:
        rel = con.sql(f"SELECT * FROM (\n{req.source_sql}\n) AS src", params=req.params)
        columns, types = rel.columns, [str(t) for t in rel.types]
    except duckdb.Error as err:
        raise SourceError(f"cannot read the source {req.source_label} of model '{name}': {err}") from None
    by_lower = {c.lower(): (c, t) for c, t in zip(columns, types)}
    if not req.targets:
        raise TargetError(f"TRAIN MODEL {name} needs a TARGET column; the source has columns {', '.join(columns)}")
    if len(req.targets) > 1:
        raise TargetError(f"TRAIN MODEL {name} names {len(req.targets)} targets; one TARGET column is supported for now")
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
    if len(columns) - 1 > records.MAX_FEATURES:
        raise FeatureError(
            f"the source {req.source_label} of model '{name}' has {len(columns) - 1:,} feature columns; "
            f"the most a model takes is {records.MAX_FEATURES:,}: choose them with SELECT * EXCLUDE (...) or a column list"
        )
    features = [FeatureSpec(c, *feature_kind(c, t)) for c, t in zip(columns, types) if c != target]
    if not features:
        raise FeatureError(f"the source {req.source_label} has no column besides the target '{target}'")
    if target_type.upper().startswith("ENUM"):
        target_type = "VARCHAR"

    # -- architecture and options -------------------------------------------------------
    arch = get_architecture(req.architecture or default_architecture({f.kind for f in features}))
    unsupported = [f for f in features if f.kind not in arch.kinds]
    if unsupported:
        raise FeatureError(f"architecture '{arch.name}' cannot take column '{unsupported[0].name}' ({unsupported[0].kind})")
    options = validate_options(req.options, TRAINING_OPTIONS + arch.options, f"TRAIN MODEL {name} USING {arch.name}")
    device = _device(options["device"])
    parent = None
    if options["warm_start"] or options["from_version"]:
        parent = finetune.load_parent(registry, name, options["from_version"] or None)
        for opt in arch.options:  # the network keeps the parent's shape
            key = opt.name
            if key in {k.lower() for k in req.options} and req.options.get(key) != parent.record["options"].get(key):
                raise OptionError(f"option '{key}' cannot change when fine-tuning model '{name}'")
            if key in parent.record["options"]:  # stored facts are checked like fresh ones
                try:
                    options[key] = opt.coerce(parent.record["options"][key])
                except OptionError as err:
                    raise OptionError(f"version {parent.record['version']} of model '{name}' stores {str(err)[6:]}") from None
        by_name = {f.name.lower(): f for f in features}
        finetune.check_compatible(parent, features, target, parent.record["task"], None)
        features = [FeatureSpec(by_name[f.name.lower()].name, f.kind, f.sql_type) for f in parent.features]

    # -- the rows, as Arrow --------------------------------------------------------------
    selects = [f"{feature_sql(f, exp.column(f.name, quoted=True), name).sql(dialect='duckdb')} AS {_q(f.name)}" for f in features]
    data_sql = f"SELECT * FROM (\n{req.source_sql}\n) AS src WHERE {_q(target)} IS NOT NULL"
    if target_type.upper() in ("FLOAT", "DOUBLE", "REAL"):  # NaN is missing, as in features: the row is skipped
        data_sql += f" AND NOT isnan({_q(target)})"
    try:
        n_distinct, t_lo, t_hi, t_longest = _target_facts(con, data_sql, target, target_type, req.params)
        task = parent.record["task"] if parent else _task_of(target, target_type, n_distinct, options)
        _check_reserved(name, req, columns, [f.name for f in features if f.name in OUTPUTS[task]], task)
        if task == "classification":
            _check_classes(name, target, target_type, n_distinct, t_lo, t_hi, options)
            if t_longest > records.MAX_LABEL_TEXT:
                raise TargetError(
                    f"target column '{target}' of model '{name}' has a class label of {t_longest:,} characters; labels "
                    f"are kept up to {records.MAX_LABEL_TEXT:,}: shorten them in the query (left({_q(target)}, 100))"
                )
        target_select = _q(target) if task == "classification" else f"CAST({_q(target)} AS DOUBLE)"
        if task == "classification" and target_type.upper() in ("HUGEINT", "UBIGINT"):
            target_select = f"CAST({_q(target)} AS BIGINT)"  # in range: _check_classes looked
        if task == "classification" and target_type.upper() not in ("BOOLEAN", *_INTEGER_TYPES):
            target_select = f"CAST({_q(target)} AS VARCHAR)"
        table = con.sql(
            f"SELECT {', '.join(selects)}, {target_select} AS {_TARGET_NAME} FROM ({data_sql}) AS rows",
            params=req.params,
        ).to_arrow_table()
    except duckdb.Error as err:
        text = str(err)
        if "dbml: " in text:  # a value refused by the encoding's check (see feature_sql)
            raise FeatureError(text[text.index("dbml: ") :].split("\n")[0]) from None
        raise SourceError(f"cannot read the rows of source {req.source_label} for model '{name}': {err}") from None
    except (pa.ArrowException, OverflowError, ValueError) as err:  # a value DuckDB holds but Arrow cannot
        raise SourceError(
            f"cannot convert the rows of source {req.source_label} for model '{name}' to Arrow: {err}; "
            "cast the columns at fault in the query (for example to DOUBLE or VARCHAR)"
        ) from None
    n = table.num_rows
    if n == 0:
        raise SourceError(f"the source {req.source_label} of model '{name}' has no rows with a non-NULL '{target}'")
    y_raw = table.column(_TARGET_NAME)

    labels: list[Any] | None = None
    label_onnx = predict_type = None
    y_mean, y_std = 0.0, 1.0
    if task == "classification":
        labels = sorted(pc.unique(y_raw).to_pylist())
        if parent is not None:
            finetune.check_compatible(parent, features, target, task, _plain_labels(target, labels, label_types(target_type)[0]))
            labels = parent.record["labels"]
        if len(labels) < 2:
            raise TargetError(
                f"target column '{target}' has a single value ({labels[0]!r}) in {n} rows; a classifier needs two or more"
            )
        if target_type.upper() in ("FLOAT", "DOUBLE", "REAL") or target_type.upper().startswith("DECIMAL"):
            raise TargetError(f"task = 'classification' on the {target_type} target '{target}' is not supported; cast it to INTEGER or VARCHAR")
        label_onnx, predict_type = label_types(target_type)
        y_all = pc.index_in(y_raw, value_set=pa.array(labels, type=y_raw.type)).to_numpy().astype(np.int64)
        labels = _plain_labels(target, labels, label_onnx)
    else:
        y_np = y_raw.to_numpy().astype(np.float64)
        bad = ~(np.abs(y_np) <= FLOAT_MAX)
        if bad.any():
            raise TargetError(
                f"target column '{target}' of model '{name}' has {int(bad.sum())} infinite or out-of-FLOAT-range value(s) "
                f"(such as {float(y_np[bad][0])!r}); predictions are FLOAT: filter them (WHERE isfinite({_q(target)})) "
                "or rescale the target in the query"
            )
        y_mean, y_std = float(y_np.mean()), float(y_np.std())
        if parent is not None:  # the parent's target scaling, which its weights assume
            y_mean, y_std = float(parent.weights["y_mean"]), float(parent.weights["y_std"])
        if not y_std > 0:
            raise TargetError(f"target column '{target}' has a single value ({y_mean}) in {n} rows; nothing to learn")
        y_all = y_np

    train_idx, val_idx = _split(n, options["validation"], options["seed"], y_all if task == "classification" else None)
    if len(train_idx) == 0:
        raise OptionError(f"option 'validation' = {options['validation']} leaves no training rows out of {n}")
    train_table = table.take(pa.array(train_idx))

    # -- profile by DuckDB, on the training rows only (a fine-tune keeps its parent's) -------
    if parent is not None:
        profile = parent.record["profile"]
    else:
        profiler = duckdb.connect()
        try:
            profiler.register("training_rows", train_table)
            profile = profile_features(profiler, "training_rows", features, options["max_categories"])
        finally:
            profiler.close()

    _check_profile(name, features, profile, options)
    x_num, x_cat = encode_features(table, features, profile)
    infinite = np.isinf(x_num).any(axis=0) if x_num.size else []
    if any(infinite):  # feature_sql refuses them first; a guard
        column = [f for f in features if f.kind != "category"][int(np.argmax(infinite))].name
        raise FeatureError(
            f"column '{column}' of model '{name}' has infinite values; filter them (WHERE isfinite({_q(column)})) in the source query"
        )
    _check_sizes(name, features, profile, labels, len(val_idx) or len(train_idx),
                 options["batch_size"] or _auto_batch_size(len(train_idx)), options)  # fmt: skip

    def tensors(idx: np.ndarray):
        y = torch.from_numpy(y_all[idx])
        y = y.long() if task == "classification" else ((y - y_mean) / y_std).float()
        return (
            torch.from_numpy(x_num[idx]).to(device) if x_num.shape[1] else None,
            torch.from_numpy(x_cat[idx]).to(device) if x_cat.shape[1] else None,
            y.to(device),
        )

    train_data = tensors(train_idx)
    val_data = tensors(val_idx) if len(val_idx) else None

    # -- model and training (the caller's random state is left as it was) ------------------
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model, logs, train_seconds, batch_size = _fit_model(
            name, arch, options, features, profile, task, labels, y_mean, y_std, device,
            train_data, val_data, len(train_idx), list(req.callbacks), parent,
        )  # fmt: skip

    # -- metrics on held-out rows --------------------------------------------------------
    eval_idx, evaluated_on = (val_idx, "validation") if len(val_idx) else (train_idx, "training")
    eval_data = tensors(eval_idx)
    with torch.no_grad():
        out = model(eval_data[0], eval_data[1])
        if task == "regression":
            metrics = _metrics(task, out[:, 0].double().cpu() * y_std + y_mean, torch.from_numpy(y_all[eval_idx]), None)
        else:
            metrics = _metrics(task, out.cpu(), eval_data[2].cpu(), labels)
    metrics["prediction_distribution"] = _prediction_distribution(task, out.detach().cpu(), labels, y_mean, y_std)
    metrics["evaluated_on"] = evaluated_on
    metrics["rows"] = int(len(eval_idx))

    # -- ONNX and the parity check -----------------------------------------------------------
    model = model.cpu().eval()
    blob = build_onnx(
        model, features, profile, task, labels, label_onnx,
        {"dbml.model": name, "dbml.target": target, "dbml.target_type": target_type,
         "dbml.architecture": arch.name, "dbml.version": dbml.__version__},
    )  # fmt: skip
    parity = _parity(name, model, blob, table, features, x_num, x_cat, eval_idx[:2048], task)
    record = {
        "model": name,
        "architecture": arch.name,
        "task": task,
        "options": {**options, "batch_size": batch_size},  # the batch size actually used
        "features": [f.to_dict() for f in features],
        "profile": profile,
        "target": target,
        "target_type": target_type,
        "labels": labels,
        "source_sql": req.source_sql,
        "source_tables": lineage.source_tables(con, req.source_sql),
        "row_count": n,
        "train_rows": int(len(train_idx)),
        "validation_rows": int(len(val_idx)),
        "data_fingerprint": lineage.fingerprint(con, data_sql, list(columns), req.params),
        "metrics": metrics,
        "epochs": len(logs),
        "train_seconds": round(train_seconds, 3),
        "device": str(device),
        "library_versions": _library_versions(),
        "onnx_sha256": hashlib.sha256(blob).hexdigest(),
        "onnx_size": len(blob),
        "parity_error": parity,
        "parent_version": parent.record["version"] if parent else None,
    }
    record["version"] = registry.add_version(record, blob, logs)
    record["seconds"] = time.perf_counter() - started
    return _result(record, "trained")


def _fit_model(
    name, arch, options, features, profile, task, labels, y_mean, y_std, device,
    train_data, val_data, n_train, callbacks, parent=None,
):  # fmt: skip
    """Seed, build the module, and train it; returns (model, logs, seconds, batch size)."""
    torch.manual_seed(options["seed"])
    prep = TabularPreprocessor(features, profile)
    out_dim = len(labels) if labels is not None else 1
    net = arch.build(prep.output_dim, out_dim, options)
    model = TabularModel(prep, net, task, y_mean, y_std)
    if parent is not None:
        finetune.load_weights(model, parent)
    model = model.to(device)
    if task == "classification":
        loss_fn = torch.nn.functional.cross_entropy
        metric = lambda out, y: (out.argmax(dim=1) == y).float().mean()  # noqa: E731
    else:
        loss_fn = lambda out, y: torch.nn.functional.mse_loss(out[:, 0], y)  # noqa: E731
        metric = lambda out, y: 1 - ((out[:, 0] - y) ** 2).sum() / ((y - y.mean()) ** 2).sum().clamp_min(1e-12)  # noqa: E731
    batch_size = options["batch_size"] or _auto_batch_size(n_train)
    if options["progress"]:
        callbacks = [*callbacks, ProgressBar(f"train {name}")]
    started = time.perf_counter()
    with _cpu_threads(device, options["threads"], sum(p.numel() for p in model.parameters())):
        logs = fit(model, loss_fn, metric, train_data, val_data, options, batch_size, callbacks)
    return model, logs, time.perf_counter() - started, batch_size


def _prediction_distribution(task: str, out: torch.Tensor, labels: list[Any] | None, y_mean: float, y_std: float) -> dict[str, Any]:
    """What the model predicted on the held-out rows, binned as MONITOR bins new predictions:
    class shares, or value shares in the bins cut at the deciles."""
    if task == "classification":
        counts = np.bincount(out.argmax(dim=1).numpy(), minlength=len(labels or []))
        return {"labels": [label_field(v) for v in labels or []], "shares": (counts / max(counts.sum(), 1)).tolist()}
    values = out[:, 0].double().numpy() * y_std + y_mean
    edges = sorted(set(np.quantile(values, QUANTILES).tolist())) if len(values) else []
    counts = np.bincount(bin_index(values, edges), minlength=len(edges) + 1)
    return {"edges": edges, "shares": (counts / max(counts.sum(), 1)).tolist()}


def _plain_labels(target: str, labels: list[Any], onnx_type: str) -> list[Any]:
    """Labels as JSON- and ONNX-friendly Python values, with distinct STRUCT field names."""
    if onnx_type == "int64":
        labels = [int(v) for v in labels]
        if any(not -(2**63) <= v < 2**63 for v in labels):
            raise TargetError(f"target column '{target}' has class labels beyond the BIGINT range; cast it to VARCHAR")
    fields: dict[str, Any] = {}
    for v in labels:
        key = label_field(v).lower()
        if key in fields:
            raise TargetError(
                f"target column '{target}' has labels {fields[key]!r} and {v!r}, which differ only in case; "
                "PREDICT_PROBA's fields could not tell them apart: normalise the case in the source query"
            )
        fields[key] = v
    return labels


def _parity(
    name: str, model: TabularModel, blob: bytes, table: pa.Table, features: list[FeatureSpec],
    x_num: np.ndarray, x_cat: np.ndarray, idx: np.ndarray, task: str,
) -> float:  # fmt: skip
    """Largest difference between onnxruntime (raw columns) and torch on ``idx`` rows."""
    session = new_session(blob)
    rows = table.take(pa.array(idx))
    feeds = arrow_feeds(features, [rows.column(f.name) for f in features])
    head = "probabilities" if task == "classification" else "value"
    onnx_out = session.run([head], feeds)[0].astype(np.float64)
    with torch.no_grad():
        torch_out = model.outputs(
            torch.from_numpy(x_num[idx]) if x_num.shape[1] else None,
            torch.from_numpy(x_cat[idx]) if x_cat.shape[1] else None,
        ).double().numpy()
    diff = np.abs(onnx_out - torch_out)
    scale = np.maximum(1.0, np.abs(torch_out)) if task == "regression" else 1.0
    worst = float(np.max(diff / scale)) if diff.size else 0.0
    if not worst <= PARITY_TOLERANCE:
        raise ExportError(
            f"the ONNX graph of model '{name}' disagrees with torch by {worst:.3g} on held-out rows "
            f"(tolerance {PARITY_TOLERANCE}); the version was not saved"
        )
    return float(np.max(diff)) if diff.size else 0.0


def _result(rec: dict[str, Any], status: str) -> dict[str, Any]:
    metrics = {k: v for k, v in (rec.get("metrics") or {}).items() if isinstance(v, (int, float))}
    return {
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
    }
