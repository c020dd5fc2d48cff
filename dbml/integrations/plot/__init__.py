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
    draw_predicted_vs_actual, draw_residuals, draw_roc, draw_scores, draw_training, new_axes, new_figure, nan as _nan,
)  # fmt: skip

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

# What training_log.val_metric holds, by task (each task's score(): higher is better)
_VAL_METRIC = {
    "classification": "accuracy",
    "regression": "R²",
    "forecast": "−validation loss",
    "reconstruction": "−reconstruction MSE",
}


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
    if not hasattr(con, "registry") or not hasattr(con, "duckdb"):
        raise DbmlError(
            f"dbml.plot reads a dbml Connection (dbml.connect(...) or dbml.install(duckdb_con)), not a {type(con).__name__}"
        )
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


def _stored_run(con, model: str, version: int | None, run_id: int | None, statement: str, table: str,
                columns: str, order: str) -> dict[str, Any]:  # fmt: skip
    """Run ``run_id`` of ``dbml.<table>`` (checked to be of that model and version), or the
    version's first run by ``order``; a dbml error naming what is missing."""
    record = _version(con, model, version)
    if run_id is not None:
        if isinstance(run_id, bool) or not isinstance(run_id, int):
            raise OptionError(f"run_id must be an integer, not {run_id!r}")
        rows = _query(con, f"SELECT {columns} FROM dbml.{table} WHERE run_id = ?", [run_id])
        if not rows:
            raise DbmlError(f"there is no stored {statement} run {run_id} (asked for model '{model}')")
        run = rows[0]
        if run["model"] != record["model"] or (version is not None and run["version"] != record["version"]):
            raise OptionError(
                f"{statement} run {run_id} is of {_what(run['model'], run['version'])}, not of model '{model}'"
                + (f" version {record['version']}" if version is not None else "")
            )
        return run
    rows = _query(con, f"SELECT {columns} FROM dbml.{table} WHERE model = ? AND version = ? ORDER BY {order} LIMIT 1",
                  [record["model"], record["version"]])  # fmt: skip
    if not rows:
        raise DbmlError(
            f"{_what(record['model'], record['version'])} has no stored {statement} run; "
            f"run {statement} MODEL {record['model']} ON (...) first"
        )
    return rows[0]


def _evaluation_run(con, model: str, version: int | None, run_id: int | None) -> dict[str, Any]:
    """The newest stored EVALUATE run of the version with pictures' data (else the newest),
    or run ``run_id``, curves decoded."""
    run = _stored_run(con, model, version, run_id, "EVALUATE", "evaluation_runs", _EVAL_COLUMNS,
                      "curves IS NULL, run_id DESC")  # fmt: skip
    run["curves"] = _json(run["curves"])
    run["metrics"] = _json(run["metrics"])
    if not run["curves"]:
        raise DbmlError(
            f"EVALUATE run {run['run_id']} of {_what(run['model'], run['version'])} stored no curves "
            f"(a run with by or confusion stores none); run EVALUATE MODEL {run['model']} ON (...) without them"
        )
    return run


def _curve(run: dict[str, Any], key: str, picture: str, tasks: tuple[str, ...]) -> Any:
    """``run['curves'][key]``, or an error naming the picture, the model and its task."""
    value = run["curves"].get(key)
    if run["task"] not in tasks or not value:  # absent, or empty (one class only, no full window)
        what = _what(run["model"], run["version"])
        if run["task"] not in tasks:
            raise DbmlError(
                f"{what} is a {run['task']} model: {picture} is drawn for {' or '.join(tasks)} models"
            )
        raise DbmlError(f"EVALUATE run {run['run_id']} of {what} stored no {key} data for {picture}")
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
    metric = _VAL_METRIC.get(record["task"], "metric")
    return draw_training(fig, rows, metric, f"{_what(record['model'], record['version'])}: training")


def roc(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """ROC curves of the latest stored EVALUATE run (one per label for a multiclass model;
    an anomaly model's score against its label). Returns the Axes."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_roc(new_axes(ax), _curve(run, "roc", "ROC", ("classification", "reconstruction")))


def precision_recall(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Precision-recall curves of the latest stored EVALUATE run. Returns the Axes."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_pr(new_axes(ax), _curve(run, "pr", "a precision-recall curve", ("classification", "reconstruction")))


def confusion_matrix(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """The confusion matrix (rows actual, columns predicted) of the latest stored EVALUATE run."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_confusion(new_axes(ax), _curve(run, "confusion", "a confusion matrix", ("classification",)))


def calibration(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """The calibration curve (10 bins) of the latest stored EVALUATE run of a classifier."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_calibration(new_axes(ax), _curve(run, "calibration", "a calibration curve", ("classification",)))


def residuals(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Residuals (actual − predicted) against predicted, of a regression's stored sample."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_residuals(new_axes(ax), _curve(run, "sample", "a residual plot", ("regression",)))


def predicted_vs_actual(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """Predicted against actual with the y = x line, of a regression's stored sample."""
    run = _evaluation_run(con, model, version, run_id)
    return draw_predicted_vs_actual(new_axes(ax), _curve(run, "sample", "predicted against actual", ("regression",)))


def forecast(con, model: str, version: int | None = None, *, run_id: int | None = None, series: int = 0, ax=None):
    """Actual against forecast with the interval band (and the history before it) of one
    series of the stored backtest window; ``series`` is its index in the stored list."""
    run = _evaluation_run(con, model, version, run_id)
    stored = _curve(run, "series", "a forecast plot", ("forecast",))
    if not 0 <= series < len(stored):
        raise OptionError(f"series {series} is out of range: EVALUATE run {run['run_id']} stored {len(stored)} series")
    return draw_forecast(new_axes(ax, (7.0, 4.0)), stored[series])


def scores(con, model: str, version: int | None = None, *, run_id: int | None = None, ax=None):
    """The anomaly-score histogram of an anomaly model's stored EVALUATE run, threshold as a line."""
    run = _evaluation_run(con, model, version, run_id)
    stored = _curve(run, "scores", "an anomaly-score histogram", ("reconstruction",))
    return draw_scores(new_axes(ax), stored, run["curves"].get("threshold"))


def _draw_evaluation(fig, run: dict[str, Any]):
    """The panels of one EVALUATE run, by task, in ``fig``."""
    curves, task = run["curves"], run["task"]
    if task == "classification":
        axes = fig.subplots(2, 2).ravel()
        drawn = [
            (draw_roc, "roc"), (draw_pr, "pr"), (draw_confusion, "confusion"), (draw_calibration, "calibration")
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
        draw_residuals(left, sample)
        draw_predicted_vs_actual(right, sample)
    elif task == "forecast":
        stored = _curve(run, "series", "a forecast plot", ("forecast",))[:4]
        axes = fig.subplots(len(stored), 1, squeeze=False).ravel()
        for ax, one in zip(axes, stored):
            draw_forecast(ax, one)
    elif task == "reconstruction":
        stored = _curve(run, "scores", "an anomaly-score histogram", ("reconstruction",))
        labelled = bool(curves.get("roc"))
        axes = fig.subplots(1, 2 if labelled else 1, squeeze=False).ravel()
        draw_scores(axes[0], stored, curves.get("threshold"))
        if labelled:
            draw_roc(axes[1], curves["roc"])
    else:
        raise DbmlError(f"EVALUATE run {run['run_id']} has task '{task}', which dbml.integrations.plot does not draw")
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
        fig = new_figure(size.get(run["task"], (8.0, 4.0)))
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
    run = _stored_run(con, model, version, run_id, "MONITOR", "monitor_runs", "*", "run_id DESC")
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
    return draw_drift(new_axes(ax, (max(5.0, 0.6 * len(results) + 2), 4.0)), results, float(run["threshold"]), title)


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
