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
from dbml.integrations.plot._draw import (
    PREDICTION, draw_calibration, draw_confusion, draw_drift, draw_forecast, draw_importance, draw_pr,
    draw_predicted_vs_actual, draw_residuals, draw_roc, draw_scores, draw_training, draw_tuning, new_axes, new_figure, nan as _nan,
)  # fmt: skip

__all__ = [
    "training_curves",
    "tuning",
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

# -- reading the registry (through its methods: values bound, never written) -----


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _version(con, model: str, version: int | None) -> dict[str, Any]:
    """The version record as dbml resolves it (the 'default' alias, else the latest)."""
    if not hasattr(con, "registry") or not hasattr(con, "duckdb"):
        raise DbmlError(
            f"dbml.plot reads a dbml Connection (dbml.connect(...) or dbml.install(duckdb_con)), not a {type(con).__name__}"
        )
    return con.registry.get(model, version)  # ModelNotFoundError / VersionNotFoundError


def _what(model: str, version: int) -> str:
    return f"model '{model}' version {version}"


def _task(name: Any):
    """The task of a stored version or run (:mod:`dbml.tasks`), or None when unknown here."""
    from dbml.tasks import task_of

    return task_of(name)


def _training_log(con, model: str, version: int | None) -> tuple[dict, list[dict]]:
    record = _version(con, model, version)
    rows = con.registry.training_log(record["model"], record["version"])
    if not rows:
        task = _task(record.get("task"))
        foreign = task is not None and not task.trained
        why = " (an imported model has none)" if foreign or not record.get("epochs") else ""
        raise DbmlError(f"{_what(record['model'], record['version'])} has no training log{why}: nothing to draw")
    return record, rows


def _stored_run(con, model: str, version: int | None, run_id: int | None, statement: str) -> dict[str, Any]:
    """Run ``run_id`` of ``statement`` (EVALUATE or MONITOR; checked to be of that model and
    version), or None for the version's runs to choose from; a dbml error naming what is missing."""
    record = _version(con, model, version)
    registry = con.registry
    if run_id is not None:
        if isinstance(run_id, bool) or not isinstance(run_id, int):
            raise OptionError(f"run_id must be an integer, not {run_id!r}")
        run = registry.evaluation_run(run_id) if statement == "EVALUATE" else registry.monitor_run(run_id)
        if run is None:
            raise DbmlError(f"there is no stored {statement} run {run_id} (asked for model '{model}')")
        if run["model"] != record["model"] or (version is not None and run["version"] != record["version"]):
            raise OptionError(
                f"{statement} run {run_id} is of {_what(run['model'], run['version'])}, not of model '{model}'"
                + (f" version {record['version']}" if version is not None else "")
            )
        return run
    runs = (registry.evaluation_runs if statement == "EVALUATE" else registry.monitor_runs)(record["model"], record["version"])
    if not runs:
        raise DbmlError(
            f"{_what(record['model'], record['version'])} has no stored {statement} run; "
            f"run {statement} MODEL {record['model']} ON (...) first"
        )
    if statement == "EVALUATE":  # the newest with pictures' data, else the newest
        return max(runs, key=lambda r: (r["curves"] is not None, r["run_id"]))
    return max(runs, key=lambda r: r["run_id"])


def _evaluation_run(con, model: str, version: int | None, run_id: int | None) -> dict[str, Any]:
    """The newest stored EVALUATE run of the version with pictures' data (else the newest),
    or run ``run_id``, curves decoded."""
    run = _stored_run(con, model, version, run_id, "EVALUATE")
    run["curves"] = _json(run["curves"])
    run["metrics"] = _json(run["metrics"])
    if not run["curves"]:
        raise DbmlError(
            f"EVALUATE run {run['run_id']} of {_what(run['model'], run['version'])} stored no curves "
            f"(a run with by or confusion stores none); run EVALUATE MODEL {run['model']} ON (...) without them"
        )
    return run


def _scores(ax, stored: Any, curves: dict[str, Any]):
    return draw_scores(ax, stored, curves.get("threshold"))


# The pictures of an EVALUATE run: name -> (the curves key it reads, what it is called, draw(ax, data, curves)).
# A task names those its runs have data for (dbml.tasks.Task.pictures) and lays them out
# (dbml.tasks.Task.evaluation_layout).
PICTURES: dict[str, tuple[str, str, Any]] = {
    "roc": ("roc", "ROC", lambda ax, v, c: draw_roc(ax, v)),
    "precision_recall": ("pr", "a precision-recall curve", lambda ax, v, c: draw_pr(ax, v)),
    "confusion_matrix": ("confusion", "a confusion matrix", lambda ax, v, c: draw_confusion(ax, v)),
    "calibration": ("calibration", "a calibration curve", lambda ax, v, c: draw_calibration(ax, v)),
    "residuals": ("sample", "a residual plot", lambda ax, v, c: draw_residuals(ax, v)),
    "predicted_vs_actual": ("sample", "predicted against actual", lambda ax, v, c: draw_predicted_vs_actual(ax, v)),
    "series": ("series", "a forecast plot", lambda ax, v, c: draw_forecast(ax, v)),
    "scores": ("scores", "an anomaly-score histogram", _scores),
}


def _curve(run: dict[str, Any], picture: str) -> Any:
    """The data of ``picture`` in ``run['curves']``, or an error naming the picture, the model
    and its task (the tasks whose runs have it: :attr:`dbml.tasks.Task.pictures`)."""
    from dbml.tasks import TASKS

    key, called, _ = PICTURES[picture]
    value = run["curves"].get(key)
    task = _task(run["task"])
    drawn = task is not None and picture in task.pictures
    if not drawn or not value:  # absent, or empty (one class only, no full window)
        what = _what(run["model"], run["version"])
        if not drawn:
            tasks = [t.name for t in TASKS.values() if picture in t.pictures]
            raise DbmlError(f"{what} is a {run['task']} model: {called} is drawn for {' or '.join(tasks)} models")
        raise DbmlError(f"EVALUATE run {run['run_id']} of {what} stored no {key} data for {called}")
    return value


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
    fig = fig if fig is not None else new_figure((12.0, 3.6))
    task = _task(record["task"])
    metric = task.score_label if task is not None else "metric"
    return draw_training(fig, rows, metric, f"{_what(record['model'], record['version'])}: training")


def tuning(con, model: str, version: int | None = None, *, fig=None):
    """The trials of a version trained with ``WITH (tune = N)``: each trial's validation
    metric in trial order with the best so far, and the metric against each option drawn.

    Args:
        con: a dbml Connection.
        model: the model's name.
        version: the version; None means the one the 'default' alias points to, else the latest.
        fig: a matplotlib Figure to draw in (a new one when None).

    Returns:
        The Figure, one panel for the trials and one per tuned option; the kept trial in red.

    Raises:
        ModelNotFoundError / VersionNotFoundError: no such model or version.
        DbmlError: the version was not tuned.
    """
    record = _version(con, model, version)
    found = (_json(record.get("metrics")) or {}).get("tuning")
    if not isinstance(found, dict) or not found.get("trials"):
        raise DbmlError(f"{_what(record['model'], record['version'])} was not tuned (TRAIN MODEL ... WITH (tune = N) "
                        "keeps its trials): nothing to draw")  # fmt: skip
    fig = fig if fig is not None else new_figure((4.0 * (1 + min(len(found.get("tuned") or []), 6)), 3.6))
    return draw_tuning(fig, found, f"{_what(record['model'], record['version'])}: {len(found['trials'])} trials")


def roc(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """ROC curves of the latest stored EVALUATE run (one per label for a multiclass model;
    an anomaly model's score against its label). Returns the Axes."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_roc(new_axes(ax), _curve(run, "roc"))


def precision_recall(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Precision-recall curves of the latest stored EVALUATE run. Returns the Axes."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_pr(new_axes(ax), _curve(run, "precision_recall"))


def confusion_matrix(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """The confusion matrix (rows actual, columns predicted) of the latest stored EVALUATE run."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_confusion(new_axes(ax), _curve(run, "confusion_matrix"))


def calibration(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """The calibration curve (10 bins) of the latest stored EVALUATE run of a classifier."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_calibration(new_axes(ax), _curve(run, "calibration"))


def residuals(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Residuals (actual − predicted) against predicted, of a regression's stored sample."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_residuals(new_axes(ax), _curve(run, "residuals"))


def predicted_vs_actual(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Predicted against actual with the y = x line, of a regression's stored sample."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_predicted_vs_actual(new_axes(ax), _curve(run, "predicted_vs_actual"))


def forecast(con, model: str, version: int | None = None, *, run_id: int | None = None, series: int = 0, ax=None):
    """Actual against forecast with the interval band (and the history before it) of one
    series of the stored backtest window; ``series`` is its index in the stored list."""
    run = _evaluation_run(con, model, version, run_id)
    stored = _curve(run, "series")
    if not 0 <= series < len(stored):
        raise OptionError(f"series {series} is out of range: EVALUATE run {run['run_id']} stored {len(stored)} series")
    return draw_forecast(new_axes(ax, (7.0, 4.0)), stored[series])


def scores(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """The anomaly-score histogram of an anomaly model's stored EVALUATE run, threshold as a line."""
    run = _evaluation_run(con, model, version, run_id)
    stored = _curve(run, "scores")
    return draw_scores(new_axes(ax), stored, run["curves"].get("threshold"))


def _layout(run: dict[str, Any]):
    """The panels of one EVALUATE run, as its task lays them out (None: not drawn)."""
    task = _task(run["task"])
    return task.evaluation_layout(run["curves"]) if task is not None else None


def _draw_evaluation(fig, run: dict[str, Any]):
    """The panels of one EVALUATE run, by task (:meth:`dbml.tasks.Task.evaluation_layout`), in ``fig``."""
    curves, layout = run["curves"], _layout(run)
    if layout is None:
        raise DbmlError(f"EVALUATE run {run['run_id']} has task '{run['task']}', which dbml.integrations.plot does not draw")
    data = [_curve(run, p.picture) if p.required else None for p in layout.panels]  # what is missing, before drawing
    axes = fig.subplots(layout.rows, layout.cols, squeeze=False).ravel()
    for ax, panel, value in zip(axes, layout.panels, data):
        key, _, draw = PICTURES[panel.picture]
        value = value if panel.required else curves.get(key)
        if not value:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"no {key} data", ha="center", va="center", transform=ax.transAxes)
            continue
        draw(ax, value[panel.item] if panel.item is not None else value, curves)
    fig.suptitle(f"{_what(run['model'], run['version'])}: EVALUATE run {run['run_id']}")
    return fig


def evaluation(con, model: str, version: int | None = None, *, run_id: int | None = None, fig=None):
    """The latest stored EVALUATE run of a version (or run ``run_id``), drawn by task.

    The panels are the task's (:meth:`dbml.tasks.Task.evaluation_layout`): a classifier's
    ROC, precision-recall, confusion matrix, calibration (2x2); a regression's residuals
    and predicted against actual; a forecaster's one panel per series (up to 4); an anomaly
    model's score histogram with the threshold (and ROC when labelled).

    Raises:
        ModelNotFoundError / VersionNotFoundError: no such model or version.
        DbmlError: no stored EVALUATE run (or one without curves).
        OptionError: ``run_id`` is a run of another model or version.
    """
    run = _evaluation_run(con, model, version, run_id)
    if fig is None:
        layout = _layout(run)
        fig = new_figure(layout.size if layout is not None else (8.0, 4.0))
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
    return draw_importance(new_axes(ax, (6.0, max(2.5, 0.4 * len(rows) + 1.2))), rows)


def _monitor_run(con, model: str, version: int | None, run_id: int | None) -> tuple[dict, list[dict]]:
    run = _stored_run(con, model, version, run_id, "MONITOR")
    results = con.registry.monitor_results(run["run_id"])
    results.sort(key=lambda r: r["feature"] == PREDICTION)  # features by name, the prediction last
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
    return draw_drift(new_axes(ax, (max(5.0, 0.6 * len(results) + 2), 4.0)), results, float(run["threshold"]), title)


def drift_history(con, model: str, version: int | None = None, *, feature: str | None = None, ax=None):
    """PSI over time from the stored MONITOR runs of a version: one line per feature and one
    for the prediction, or only ``feature`` (``'__prediction__'`` names the prediction).

    Raises:
        ModelNotFoundError / VersionNotFoundError: no such model or version.
        DbmlError: no stored MONITOR run, or no such feature in them.
    """
    record = _version(con, model, version)
    rows = con.registry.monitor_history(record["model"], record["version"])
    rows.sort(key=lambda r: r["feature"] == PREDICTION)  # the prediction last
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
    ax = new_axes(ax, (7.0, 4.0))
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
