"""Pictures of what dbml stores: training curves, EVALUATE, EXPLAIN and MONITOR runs.

Every function draws with matplotlib's object API (a ``matplotlib.figure.Figure``, no
pyplot state), so it works headless, in threads and in notebooks (a returned Figure or
Axes displays there). Single panels take ``ax=`` and return their Axes; multi-panel
pictures take ``fig=`` and return their Figure. matplotlib is the optional extra
``plot``: it is imported on first use.

Reading and drawing are kept apart: the public functions read the registry (with bound
values, never writing it) and hand plain dicts and lists to the ``_draw_*`` functions.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import duckdb

from dbml.errors import DbmlError, OptionError

__all__ = [
    "training_curves",
    "evaluation",
    "roc",
    "precision_recall",
    "confusion_matrix",
    "calibration",
    "residuals",
    "predicted_vs_actual",
    "forecast",
    "scores",
    "explain",
    "drift",
    "drift_history",
    "figure_png",
    "figure_svg",
]

_EXTRA = "pip install 'dbml[plot]'"
PREDICTION = "__prediction__"  # MONITOR's feature name for the prediction row
# What training_log.val_metric holds, by task (each task's score(): higher is better)
_VAL_METRIC = {
    "classification": "accuracy",
    "regression": "R²",
    "forecast": "−validation loss",
    "reconstruction": "−reconstruction MSE",
}


# -- matplotlib, lazily --------------------------------------------------------


def _figure(size: tuple[float, float]):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # the optional extra is missing
        raise DbmlError(f"dbml.plot needs matplotlib, which is not installed: {_EXTRA}") from exc
    return Figure(figsize=size, layout="constrained")


def _axes(ax, size: tuple[float, float] = (5.0, 4.0)):
    return ax if ax is not None else _figure(size).add_subplot()


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


# -- reading the registry --------------------------------------------------------


def _query(con, sql: str, params: list) -> list[dict[str, Any]] | None:
    """Rows as dicts, or None when the table does not exist (a registry without it)."""
    cur = con.duckdb.cursor()
    try:
        try:
            rel = cur.execute(sql, params)
        except duckdb.CatalogException:
            return None
        names = [d[0] for d in rel.description]
        return [dict(zip(names, row)) for row in rel.fetchall()]
    finally:
        cur.close()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _version(con, model: str, version: int | None) -> dict[str, Any]:
    """The version record as dbml resolves it (the 'default' alias, else the latest)."""
    return con.registry.get(model, version)  # ModelNotFoundError / VersionNotFoundError


def _what(model: str, version: int) -> str:
    return f"model '{model}' version {version}"


def _training_log(con, model: str, version: int | None) -> tuple[dict, list[dict]]:
    record = _version(con, model, version)
    rows = _query(
        con,
        "SELECT epoch, train_loss, val_loss, val_metric, lr, seconds FROM dbml.training_log"
        " WHERE model = ? AND version = ? ORDER BY epoch",
        [record["model"], record["version"]],
    ) or []
    if not rows:
        why = " (an imported model has none)" if record.get("task") == "imported" or not record.get("epochs") else ""
        raise DbmlError(f"{_what(record['model'], record['version'])} has no training log{why}: nothing to draw")
    return record, rows


_EVAL_COLUMNS = "run_id, model, version, run_at, task, source_sql, options, rows, metrics, curves"


def _evaluation_run(con, model: str, version: int | None, run_id: int | None) -> dict[str, Any]:
    """The latest stored EVALUATE run of the version (or run ``run_id``), curves decoded."""
    if run_id is not None:
        if isinstance(run_id, bool) or not isinstance(run_id, int):
            raise OptionError(f"run_id must be an integer, not {run_id!r}")
        record = _version(con, model, version)
        rows = _query(con, f"SELECT {_EVAL_COLUMNS} FROM dbml.evaluation_runs WHERE run_id = ?", [run_id])
        if not rows:
            raise DbmlError(f"there is no stored EVALUATE run {run_id} (asked for model '{model}')")
        run = rows[0]
        if run["model"] != record["model"] or (version is not None and run["version"] != record["version"]):
            raise OptionError(
                f"EVALUATE run {run_id} is of {_what(run['model'], run['version'])}, not of model '{model}'"
                + (f" version {record['version']}" if version is not None else "")
            )
    else:
        record = _version(con, model, version)
        rows = _query(
            con,
            f"SELECT {_EVAL_COLUMNS} FROM dbml.evaluation_runs WHERE model = ? AND version = ?"
            " ORDER BY run_at DESC, run_id DESC LIMIT 1",
            [record["model"], record["version"]],
        )
        if not rows:
            raise DbmlError(
                f"{_what(record['model'], record['version'])} has no stored EVALUATE run; "
                f"run EVALUATE MODEL {record['model']} ON (...) first"
            )
        run = rows[0]
    run["curves"] = _json(run["curves"])
    run["metrics"] = _json(run["metrics"])
    if not run["curves"]:
        raise DbmlError(
            f"EVALUATE run {run['run_id']} of {_what(run['model'], run['version'])} stored no curves; "
            f"run EVALUATE MODEL {run['model']} ON (...) again"
        )
    return run


def _curve(run: dict[str, Any], key: str, picture: str, tasks: tuple[str, ...]) -> Any:
    """``run['curves'][key]``, or an error naming the picture, the model and its task."""
    value = run["curves"].get(key)
    if run["task"] not in tasks or value is None:
        what = _what(run["model"], run["version"])
        if run["task"] not in tasks:
            raise DbmlError(
                f"{what} is a {run['task']} model: {picture} is drawn for {' or '.join(tasks)} models"
            )
        raise DbmlError(f"EVALUATE run {run['run_id']} of {what} stored no {key} data for {picture}")
    return value


# -- drawing: plain data in, Axes out ---------------------------------------------


def _draw_roc(ax, roc: dict[str, dict]) -> Any:
    for label, c in roc.items():
        auc = c.get("auc")
        ax.plot(c["fpr"], c["tpr"], label=f"{label} (AUC {auc:.3f})" if auc is not None else str(label))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize="small")
    return ax


def _draw_pr(ax, pr: dict[str, dict]) -> Any:
    for label, c in pr.items():
        ap = c.get("average_precision")
        ax.plot(c["recall"], c["precision"], label=f"{label} (AP {ap:.3f})" if ap is not None else str(label))
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize="small")
    return ax


def _draw_confusion(ax, confusion: dict[str, Any]) -> Any:
    import numpy as np

    labels = [str(x) for x in confusion["labels"]]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="Predicted", ylabel="Actual", title="Confusion matrix")
    top = matrix.max() if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{int(count)}", ha="center", va="center", fontsize="small",
                color="white" if top and count > top / 2 else "black")  # fmt: skip
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return ax


def _draw_calibration(ax, calibration: dict[str, dict]) -> Any:
    for label, c in calibration.items():
        ax.plot(c["mean_predicted"], c["fraction_positive"], marker="o", label=str(label))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfect")
    ax.set(xlabel="Mean predicted probability", ylabel="Fraction positive", title="Calibration",
           xlim=(0, 1), ylim=(0, 1.02))  # fmt: skip
    ax.legend(loc="upper left", fontsize="small")
    return ax


def _draw_residuals(ax, sample: dict[str, list]) -> Any:
    predicted = [_nan(p) for p in sample["predicted"]]
    residual = [_nan(a) - p for a, p in zip(sample["actual"], predicted)]
    ax.scatter(predicted, residual, s=8, alpha=0.6)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="Predicted", ylabel="Residual (actual − predicted)", title="Residuals")
    return ax


def _draw_predicted_vs_actual(ax, sample: dict[str, list]) -> Any:
    actual = [_nan(a) for a in sample["actual"]]
    predicted = [_nan(p) for p in sample["predicted"]]
    ax.scatter(actual, predicted, s=8, alpha=0.6)
    finite = [v for v in actual + predicted if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=0.8, label="y = x")
    ax.set(xlabel="Actual", ylabel="Predicted", title="Predicted against actual")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def _times(values: list) -> list:
    """ISO strings as datetimes (matplotlib dates); numbers as they are."""
    from datetime import datetime

    out = []
    for v in values:
        if isinstance(v, str):
            try:
                v = datetime.fromisoformat(v)
            except ValueError:
                pass
        out.append(v)
    return out


def _draw_forecast(ax, series: dict[str, Any]) -> Any:
    history = series.get("history") or {}
    if history.get("time"):
        ax.plot(_times(history["time"]), [_nan(v) for v in history["actual"]], color="black", linewidth=1,
                label="history")  # fmt: skip
    time = _times(series["time"])
    if series.get("lower") and series.get("upper"):
        confidence = series.get("confidence")
        band = f"{confidence:.0%} interval" if confidence is not None else "interval"
        ax.fill_between(time, [_nan(v) for v in series["lower"]], [_nan(v) for v in series["upper"]], alpha=0.25,
                        label=band)  # fmt: skip
    ax.plot(time, [_nan(v) for v in series["actual"]], color="black", marker=".", label="actual")
    ax.plot(time, [_nan(v) for v in series["predicted"]], marker=".", label="forecast")
    key = series.get("key")
    ax.set(xlabel="Time", ylabel="Value", title="Forecast" if key is None else f"Forecast: {key}")
    ax.legend(loc="upper left", fontsize="small")
    for label in ax.get_xticklabels():
        label.set_rotation(30)
    return ax


def _draw_scores(ax, scores: dict[str, list], threshold: float | None) -> Any:
    ax.stairs(scores["counts"], scores["edges"], fill=True, alpha=0.6, label="rows")
    if threshold is not None:
        ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set(xlabel="Anomaly score", ylabel="Rows", title="Anomaly scores")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _draw_training(fig, rows: list[dict], metric: str, title: str) -> Any:
    epochs = [r["epoch"] for r in rows]
    loss, score, lr = fig.subplots(1, 3)
    loss.plot(epochs, [r["train_loss"] for r in rows], marker=".", label="train")
    if any(r["val_loss"] is not None for r in rows):
        loss.plot(epochs, [_nan(r["val_loss"]) for r in rows], marker=".", label="validation")
    loss.set(xlabel="Epoch", ylabel="Loss", title="Loss")
    loss.legend(fontsize="small")
    if any(r["val_metric"] is not None for r in rows):
        score.plot(epochs, [_nan(r["val_metric"]) for r in rows], marker=".", color="tab:green")
    else:
        score.text(0.5, 0.5, "no validation rows", ha="center", va="center", transform=score.transAxes)
    score.set(xlabel="Epoch", ylabel=f"Validation {metric}", title=f"Validation {metric}")
    lr.plot(epochs, [r["lr"] for r in rows], marker=".", color="tab:purple")
    lr.set(xlabel="Epoch", ylabel="Learning rate", title="Learning rate")
    for ax in (loss, score, lr):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    return fig


def _draw_importance(ax, rows: list[dict]) -> Any:
    ranked = sorted(rows, key=lambda r: -_nan(r["importance"]) if r["importance"] is not None else math.inf)
    names = [str(r["feature"]) for r in ranked][::-1]  # the most important on top
    values = [_nan(r["importance"]) for r in ranked][::-1]
    spread = [0.0 if r.get("importance_std") is None else float(r["importance_std"]) for r in ranked][::-1]
    ax.barh(names, values, xerr=spread, capsize=3, color="tab:blue")
    ax.axvline(0.0, color="grey", linewidth=0.8)
    metric = next((r.get("metric") for r in rows if r.get("metric")), None)
    change = "rise" if metric == "mse" else "drop"
    ax.set(xlabel=f"Permutation importance ({change} in {metric})" if metric else "Permutation importance",
           ylabel="Feature", title="Permutation importance")  # fmt: skip
    return ax


def _draw_drift(ax, rows: list[dict], threshold: float, title: str) -> Any:
    names = ["(prediction)" if r["feature"] == PREDICTION else str(r["feature"]) for r in rows]
    values = [_nan(r["psi"]) for r in rows]
    colors = ["tab:red" if r["drift"] else "tab:blue" for r in rows]
    ax.bar(names, values, color=colors)
    ax.axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="Feature", ylabel="PSI", title=title)
    ax.legend(loc="upper right", fontsize="small")
    for label in ax.get_xticklabels():
        label.set_rotation(45 if len(names) > 4 else 0)
        label.set_ha("right" if len(names) > 4 else "center")
    return ax


# -- public pictures ---------------------------------------------------------------


def training_curves(con, model: str, version: int | None = None, *, fig=None):
    """Train and validation loss per epoch, the validation metric and the learning rate.

    Args:
        con: a dbml Connection.
        model: the model's name.
        version: the version; None means the one the 'default' alias points to, else the latest.
        fig: a matplotlib Figure to draw in (a new one when None).

    Returns:
        The Figure, with three panels: loss, validation metric (accuracy, R², ... by task), learning rate.

    Raises:
        ModelNotFoundError / VersionNotFoundError: no such model or version.
        DbmlError: the version has no training log (an imported model).
    """
    record, rows = _training_log(con, model, version)
    fig = fig if fig is not None else _figure((12.0, 3.6))
    metric = _VAL_METRIC.get(record["task"], "metric")
    return _draw_training(fig, rows, metric, f"{_what(record['model'], record['version'])}: training")


def roc(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """ROC curves of the latest stored EVALUATE run (one per label for a multiclass model;
    an anomaly model's score against its label). Returns the Axes."""
    run = _evaluation_run(con, model, version, run_id)
    return _draw_roc(_axes(ax), _curve(run, "roc", "ROC", ("classification", "reconstruction")))


def precision_recall(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Precision-recall curves of the latest stored EVALUATE run. Returns the Axes."""
    run = _evaluation_run(con, model, version, run_id)
    return _draw_pr(_axes(ax), _curve(run, "pr", "a precision-recall curve", ("classification", "reconstruction")))


def confusion_matrix(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """The confusion matrix (rows actual, columns predicted) of the latest stored EVALUATE run."""
    run = _evaluation_run(con, model, version, run_id)
    return _draw_confusion(_axes(ax), _curve(run, "confusion", "a confusion matrix", ("classification",)))


def calibration(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """The calibration curve (10 bins) of the latest stored EVALUATE run of a classifier."""
    run = _evaluation_run(con, model, version, run_id)
    return _draw_calibration(_axes(ax), _curve(run, "calibration", "a calibration curve", ("classification",)))


def residuals(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Residuals (actual − predicted) against predicted, of a regression's stored sample."""
    run = _evaluation_run(con, model, version, run_id)
    return _draw_residuals(_axes(ax), _curve(run, "sample", "a residual plot", ("regression",)))


def predicted_vs_actual(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Predicted against actual with the y = x line, of a regression's stored sample."""
    run = _evaluation_run(con, model, version, run_id)
    return _draw_predicted_vs_actual(_axes(ax), _curve(run, "sample", "predicted against actual", ("regression",)))


def forecast(con, model: str, version: int | None = None, *, run_id: int | None = None, series: int = 0, ax=None):
    """Actual against forecast with the interval band (and the history before it) of one
    series of the stored backtest window; ``series`` is its index in the stored list."""
    run = _evaluation_run(con, model, version, run_id)
    stored = _curve(run, "series", "a forecast plot", ("forecast",))
    if not 0 <= series < len(stored):
        raise OptionError(f"series {series} is out of range: EVALUATE run {run['run_id']} stored {len(stored)} series")
    return _draw_forecast(_axes(ax, (7.0, 4.0)), stored[series])


def scores(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """The anomaly-score histogram of an anomaly model's stored EVALUATE run, threshold as a line."""
    run = _evaluation_run(con, model, version, run_id)
    stored = _curve(run, "scores", "an anomaly-score histogram", ("reconstruction",))
    return _draw_scores(_axes(ax), stored, run["curves"].get("threshold"))


def _draw_evaluation(fig, run: dict[str, Any]):
    """The panels of one EVALUATE run, by task, in ``fig``."""
    curves, task = run["curves"], run["task"]
    if task == "classification":
        axes = fig.subplots(2, 2).ravel()
        drawn = [
            (_draw_roc, "roc"), (_draw_pr, "pr"), (_draw_confusion, "confusion"), (_draw_calibration, "calibration")
        ]  # fmt: skip
        for ax, (draw, key) in zip(axes, drawn):
            if curves.get(key):
                draw(ax, curves[key])
            else:
                ax.set_axis_off()
                ax.text(0.5, 0.5, f"no {key} data", ha="center", va="center", transform=ax.transAxes)
    elif task == "regression":
        sample = _curve(run, "sample", "a residual plot", ("regression",))
        left, right = fig.subplots(1, 2)
        _draw_residuals(left, sample)
        _draw_predicted_vs_actual(right, sample)
    elif task == "forecast":
        stored = _curve(run, "series", "a forecast plot", ("forecast",))[:4]
        axes = fig.subplots(len(stored), 1, squeeze=False).ravel()
        for ax, one in zip(axes, stored):
            _draw_forecast(ax, one)
    elif task == "reconstruction":
        stored = _curve(run, "scores", "an anomaly-score histogram", ("reconstruction",))
        labelled = bool(curves.get("roc"))
        axes = fig.subplots(1, 2 if labelled else 1, squeeze=False).ravel()
        _draw_scores(axes[0], stored, curves.get("threshold"))
        if labelled:
            _draw_roc(axes[1], curves["roc"])
    else:
        raise DbmlError(f"EVALUATE run {run['run_id']} has task '{task}', which dbml.plot does not draw")
    fig.suptitle(f"{_what(run['model'], run['version'])}: EVALUATE run {run['run_id']}")
    return fig


def evaluation(con, model: str, version: int | None = None, *, run_id: int | None = None, fig=None):
    """The latest stored EVALUATE run of a version (or run ``run_id``), drawn by task.

    classification: ROC, precision-recall, confusion matrix, calibration (2x2);
    regression: residuals and predicted against actual; forecast: one panel per series
    (up to 4); reconstruction: the score histogram with the threshold (and ROC when labelled).

    Raises:
        ModelNotFoundError / VersionNotFoundError: no such model or version.
        DbmlError: no stored EVALUATE run (or one without curves).
        OptionError: ``run_id`` is a run of another model or version.
    """
    run = _evaluation_run(con, model, version, run_id)
    if fig is None:
        n = len(run["curves"].get("series") or [])
        size = {"classification": (10.0, 8.0), "regression": (10.0, 4.0),
                "forecast": (8.0, 3.0 * max(1, min(n, 4))), "reconstruction": (10.0, 4.0)}  # fmt: skip
        fig = _figure(size.get(run["task"], (8.0, 4.0)))
    return _draw_evaluation(fig, run)


def _result_rows(result) -> list[dict[str, Any]]:
    """Rows of a DuckDB relation, a pandas DataFrame or an Arrow table, as dicts."""
    if isinstance(result, duckdb.DuckDBPyRelation):
        names = result.columns
        return [dict(zip(names, row)) for row in result.fetchall()]
    if hasattr(result, "to_pylist"):  # pyarrow.Table / RecordBatch
        return result.to_pylist()
    if hasattr(result, "to_dict") and hasattr(result, "columns"):  # pandas.DataFrame
        rows = result.to_dict("records")
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    raise DbmlError(
        f"explain() draws an EXPLAIN MODEL result (a DuckDB relation, a pandas DataFrame or an Arrow table), "
        f"not a {type(result).__name__}"
    )


def explain(result, *, ax=None):
    """A ranked horizontal bar chart of permutation importance, its spread as error bars.

    Args:
        result: what ``con.sql("EXPLAIN MODEL m ON (...)")`` returns, or that result as a
            pandas DataFrame or an Arrow table (columns feature, importance, importance_std,
            and metric when present). One group at a time: filter a BY result first.
        ax: a matplotlib Axes to draw in (a new one when None).

    Returns:
        The Axes: one bar per feature, the most important on top.

    Raises:
        DbmlError: not such a result, columns missing, no rows, or a feature twice.
    """
    rows = _result_rows(result)
    columns = set(rows[0]) if rows else set(getattr(result, "columns", None) or getattr(result, "column_names", []))
    missing = [c for c in ("feature", "importance", "importance_std") if c not in columns]
    if missing:
        raise DbmlError(f"explain() needs an EXPLAIN MODEL result; the result has no column {', '.join(missing)}")
    if not rows:
        raise DbmlError("explain() was given an EXPLAIN MODEL result with no rows")
    features = [r["feature"] for r in rows]
    twice = sorted({str(f) for f in features if features.count(f) > 1})
    if twice:
        raise DbmlError(f"explain() draws one group at a time; feature {twice[0]} appears more than once (filter the result)")
    return _draw_importance(_axes(ax, (6.0, max(2.5, 0.4 * len(rows) + 1.2))), rows)


def _monitor_run(con, model: str, version: int | None, run_id: int | None) -> tuple[dict, list[dict]]:
    if run_id is not None:
        if isinstance(run_id, bool) or not isinstance(run_id, int):
            raise OptionError(f"run_id must be an integer, not {run_id!r}")
        record = _version(con, model, version)
        runs = _query(con, "SELECT * FROM dbml.monitor_runs WHERE run_id = ?", [run_id])
        if not runs:
            raise DbmlError(f"there is no stored MONITOR run {run_id} (asked for model '{model}')")
        run = runs[0]
        if run["model"] != record["model"] or (version is not None and run["version"] != record["version"]):
            raise OptionError(
                f"MONITOR run {run_id} is of {_what(run['model'], run['version'])}, not of model '{model}'"
                + (f" version {record['version']}" if version is not None else "")
            )
    else:
        record = _version(con, model, version)
        runs = _query(
            con,
            "SELECT * FROM dbml.monitor_runs WHERE model = ? AND version = ? ORDER BY run_at DESC, run_id DESC LIMIT 1",
            [record["model"], record["version"]],
        )
        if not runs:
            raise DbmlError(
                f"{_what(record['model'], record['version'])} has no stored MONITOR run; "
                f"run MONITOR MODEL {record['model']} ON (...) first"
            )
        run = runs[0]
    results = _query(
        con,
        "SELECT feature, kind, psi, drift FROM dbml.monitor_results WHERE run_id = ?"
        " ORDER BY feature = ? , feature",  # features by name, the prediction last
        [run["run_id"], PREDICTION],
    ) or []
    return run, results


def drift(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Per-feature PSI bars of the latest stored MONITOR run (or ``run_id``), the threshold as
    a horizontal line, drifted features (and the prediction) in red. Returns the Axes.

    Raises:
        ModelNotFoundError / VersionNotFoundError: no such model or version.
        DbmlError: no stored MONITOR run. OptionError: ``run_id`` is of another model.
    """
    run, results = _monitor_run(con, model, version, run_id)
    title = f"Drift of {_what(run['model'], run['version'])} (MONITOR run {run['run_id']})"
    return _draw_drift(_axes(ax, (max(5.0, 0.6 * len(results) + 2), 4.0)), results, float(run["threshold"]), title)


def drift_history(con, model: str, version: int | None = None, *, feature: str | None = None, ax=None):
    """PSI over time from the stored MONITOR runs of a version: one line per feature and one
    for the prediction, or only ``feature`` (``'__prediction__'`` names the prediction).

    Raises:
        ModelNotFoundError / VersionNotFoundError: no such model or version.
        DbmlError: no stored MONITOR run, or no such feature in them.
    """
    record = _version(con, model, version)
    rows = _query(
        con,
        "SELECT r.run_id, r.run_at, r.threshold, x.feature, x.psi FROM dbml.monitor_runs AS r"
        " JOIN dbml.monitor_results AS x USING (run_id) WHERE r.model = ? AND r.version = ?"
        " ORDER BY x.feature = ?, x.feature, r.run_at, r.run_id",
        [record["model"], record["version"], PREDICTION],
    ) or []
    what = _what(record["model"], record["version"])
    if not rows:
        raise DbmlError(f"{what} has no stored MONITOR run; run MONITOR MODEL {record['model']} ON (...) first")
    lines: dict[str, list[dict]] = {}
    for r in rows:
        lines.setdefault(r["feature"], []).append(r)
    if feature is not None:
        if feature not in lines:
            known = ", ".join(f for f in lines)
            raise DbmlError(f"{what} has no feature '{feature}' in its MONITOR runs; they have {known}")
        lines = {feature: lines[feature]}
    ax = _axes(ax, (7.0, 4.0))
    for name, points in lines.items():
        ax.plot([p["run_at"] for p in points], [_nan(p["psi"]) for p in points], marker="o",
                label="(prediction)" if name == PREDICTION else name)  # fmt: skip
    threshold = float(rows[-1]["threshold"])
    ax.axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="Run at (UTC)", ylabel="PSI", title=f"Drift of {what} over time")
    ax.legend(loc="upper left", fontsize="small")
    for label in ax.get_xticklabels():
        label.set_rotation(30)
    return ax


# -- embedding ----------------------------------------------------------------------


def _fig_of(fig):
    fig = getattr(fig, "figure", fig) if not hasattr(fig, "savefig") else fig
    if not hasattr(fig, "savefig"):
        raise DbmlError(f"figure_png/figure_svg take a matplotlib Figure or Axes, not a {type(fig).__name__}")
    return fig


def figure_png(fig, *, dpi: int = 100) -> bytes:
    """The Figure (or an Axes' Figure) as PNG bytes."""
    out = io.BytesIO()
    _fig_of(fig).savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return out.getvalue()


def figure_svg(fig) -> str:
    """The Figure (or an Axes' Figure) as a self-contained SVG document (text as paths, no
    fonts needed; fixed ids and no date, so the same picture gives the same text)."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "dbml"}):
        _fig_of(fig).savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    return out.getvalue()
