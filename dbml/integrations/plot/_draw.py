"""The drawing half of dbml.integrations.plot: plain dicts and lists in (as the registry stores them), a
matplotlib Axes or Figure out. Nothing here reads a database, so each picture can be
tested with data built by hand.
"""

from __future__ import annotations

import math
from typing import Any

from dbml.errors import DbmlError

__all__ = [
    "new_figure", "new_axes", "draw_roc", "draw_pr", "draw_confusion", "draw_calibration", "draw_residuals",
    "draw_predicted_vs_actual", "draw_forecast", "draw_scores", "draw_training", "draw_importance", "draw_drift",
    "PREDICTION", "nan",
]

EXTRA = "pip install 'dbml[plot]'"
PREDICTION = "__prediction__"  # MONITOR's feature name for the prediction row


# -- matplotlib, lazily --------------------------------------------------------


def new_figure(size: tuple[float, float]):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # the optional extra is missing
        raise DbmlError(f"dbml.plot needs matplotlib, which is not installed: {EXTRA}") from exc
    _show_in_ipython()
    return Figure(figsize=size, layout="constrained")


def _png(obj) -> bytes:
    import io

    fig = getattr(obj, "figure", obj)  # an Axes draws its whole figure
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    return out.getvalue()


def _show_in_ipython() -> None:
    """In a notebook, a returned Figure or Axes displays as a picture.

    The figures here are made without pyplot (so they work headless and in threads), and
    IPython only knows how to show a Figure once pyplot's inline backend registered it;
    register PNG formatters for Figure and Axes unless something already did."""
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    for module, name in (("matplotlib.figure", "Figure"), ("matplotlib.axes._axes", "Axes")):
        if (module, name) not in png.deferred_printers and not any(
            getattr(t, "__name__", "") == name and getattr(t, "__module__", "") == module for t in png.type_printers
        ):
            png.for_type_by_name(module, name, _png)


def new_axes(ax, size: tuple[float, float] = (5.0, 4.0)):
    return ax if ax is not None else new_figure(size).add_subplot()


def nan(value: Any) -> float:
    return math.nan if value is None else float(value)


# -- drawing: plain data in, Axes out ---------------------------------------------


def draw_roc(ax, roc: dict[str, dict]) -> Any:
    for label, c in roc.items():
        auc = c.get("auc")
        ax.plot(c["fpr"], c["tpr"], label=f"{label} (AUC {auc:.3f})" if auc is not None else str(label))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize="small")
    return ax


def draw_pr(ax, pr: dict[str, dict]) -> Any:
    for label, c in pr.items():
        ap = c.get("average_precision")
        ax.plot(c["recall"], c["precision"], label=f"{label} (AP {ap:.3f})" if ap is not None else str(label))
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize="small")
    return ax


def draw_confusion(ax, confusion: dict[str, Any]) -> Any:
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


def draw_calibration(ax, calibration: dict[str, dict]) -> Any:
    for label, c in calibration.items():
        ax.plot(c["mean_predicted"], c["fraction_positive"], marker="o", label=str(label))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfect")
    ax.set(xlabel="Mean predicted probability", ylabel="Fraction positive", title="Calibration",
           xlim=(0, 1), ylim=(0, 1.02))  # fmt: skip
    ax.legend(loc="upper left", fontsize="small")
    return ax


def draw_residuals(ax, sample: dict[str, list]) -> Any:
    predicted = [nan(p) for p in sample["predicted"]]
    residual = [nan(a) - p for a, p in zip(sample["actual"], predicted)]
    ax.scatter(predicted, residual, s=8, alpha=0.6)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="Predicted", ylabel="Residual (actual − predicted)", title="Residuals")
    return ax


def draw_predicted_vs_actual(ax, sample: dict[str, list]) -> Any:
    actual = [nan(a) for a in sample["actual"]]
    predicted = [nan(p) for p in sample["predicted"]]
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


def draw_forecast(ax, series: dict[str, Any]) -> Any:
    history = series.get("history") or {}
    if history.get("time"):
        ax.plot(_times(history["time"]), [nan(v) for v in history["actual"]], color="black", linewidth=1,
                label="history")  # fmt: skip
    time = _times(series["time"])
    if series.get("lower") and series.get("upper"):
        confidence = series.get("confidence")
        band = f"{confidence:.0%} interval" if confidence is not None else "interval"
        ax.fill_between(time, [nan(v) for v in series["lower"]], [nan(v) for v in series["upper"]], alpha=0.25,
                        label=band)  # fmt: skip
    ax.plot(time, [nan(v) for v in series["actual"]], color="black", marker=".", label="actual")
    ax.plot(time, [nan(v) for v in series["predicted"]], marker=".", label="forecast")
    key = series.get("key")
    if isinstance(key, list):  # the series columns' values, in order
        key = ", ".join(map(str, key))
    ax.set(xlabel="Time", ylabel="Value", title="Forecast" if key is None else f"Forecast: {key}")
    ax.legend(loc="best", fontsize="small")
    if any(not isinstance(t, (int, float)) for t in time):  # dates: short ticks that do not overlap
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator(maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return ax


def draw_scores(ax, scores: dict[str, list], threshold: float | None) -> Any:
    ax.stairs(scores["counts"], scores["edges"], fill=True, alpha=0.6, label="rows")
    if threshold is not None:
        ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set(xlabel="Anomaly score", ylabel="Rows", title="Anomaly scores")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def draw_training(fig, rows: list[dict], metric: str, title: str) -> Any:
    epochs = [r["epoch"] for r in rows]
    loss, score, lr = fig.subplots(1, 3)
    loss.plot(epochs, [r["train_loss"] for r in rows], marker=".", label="train")
    if any(r["val_loss"] is not None for r in rows):
        loss.plot(epochs, [nan(r["val_loss"]) for r in rows], marker=".", label="validation")
    loss.set(xlabel="Epoch", ylabel="Loss", title="Loss")
    loss.legend(fontsize="small")
    if any(r["val_metric"] is not None for r in rows):
        score.plot(epochs, [nan(r["val_metric"]) for r in rows], marker=".", color="tab:green")
    else:
        score.text(0.5, 0.5, "no validation rows", ha="center", va="center", transform=score.transAxes)
    score.set(xlabel="Epoch", ylabel=f"Validation {metric}", title=f"Validation {metric}")
    lr.plot(epochs, [r["lr"] for r in rows], marker=".", color="tab:purple")
    lr.set(xlabel="Epoch", ylabel="Learning rate", title="Learning rate")
    for ax in (loss, score, lr):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    return fig


def draw_tuning(fig, tuning: dict[str, Any], title: str) -> Any:
    """Each trial's validation score in trial order with the best so far, then the score
    against each tuned option (log axes for rates and decays, the drawn lists as labels);
    the kept trial in red."""
    trials = tuning.get("trials") or []
    metric, lower = tuning.get("metric") or "score", bool(tuning.get("lower_is_better"))
    tuned = list(tuning.get("tuned") or [])
    best = tuning.get("best_trial")
    axes = fig.subplots(1, 1 + len(tuned), squeeze=False)[0]
    numbers = [r["trial"] for r in trials]
    scores = [nan(r.get("score")) for r in trials]
    axes[0].scatter(numbers, scores, color="tab:blue", label="trial")
    running, so_far = [], math.nan
    for v in scores:
        if not math.isnan(v) and (math.isnan(so_far) or (v < so_far if lower else v > so_far)):
            so_far = v
        running.append(so_far)
    axes[0].step(numbers, running, where="post", color="tab:green", label="best so far")
    axes[0].set(xlabel="Trial", ylabel=f"Validation {metric}", title="Trials")
    axes[0].xaxis.get_major_locator().set_params(integer=True)
    for ax, name in zip(axes[1:], tuned):
        values = [r["options"].get(name) for r in trials]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            xs = [float(v) for v in values]
            if name in ("lr", "weight_decay") and all(v > 0 for v in xs):
                ax.set_xscale("log")
        else:
            labels = sorted({str(v) for v in values})
            xs = [labels.index(str(v)) for v in values]
            ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize="small")
        ax.scatter(xs, scores, color="tab:blue")
        ax.set(xlabel=name, title=name)
    for ax in axes:
        if best is not None and best < len(trials):
            x = numbers[best] if ax is axes[0] else ax.collections[0].get_offsets()[best][0]
            ax.scatter([x], [scores[best]], color="tab:red", zorder=3, label="kept")
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    return fig


def draw_importance(ax, rows: list[dict]) -> Any:
    ranked = sorted(rows, key=lambda r: -nan(r["importance"]) if r["importance"] is not None else math.inf)
    names = [str(r["feature"]) for r in ranked][::-1]  # the most important on top
    values = [nan(r["importance"]) for r in ranked][::-1]
    spread = [0.0 if r.get("importance_std") is None else float(r["importance_std"]) for r in ranked][::-1]
    ax.barh(names, values, xerr=spread, capsize=3, color="tab:blue")
    ax.axvline(0.0, color="grey", linewidth=0.8)
    metric = next((r.get("metric") for r in rows if r.get("metric")), None)
    change = "rise" if metric == "mse" else "drop"
    ax.set(xlabel=f"Permutation importance ({change} in {metric})" if metric else "Permutation importance",
           ylabel="Feature", title="Permutation importance")  # fmt: skip
    return ax


def draw_drift(ax, rows: list[dict], threshold: float, title: str) -> Any:
    names = ["(prediction)" if r["feature"] == PREDICTION else str(r["feature"]) for r in rows]
    values = [nan(r["psi"]) for r in rows]
    colors = ["tab:red" if r["drift"] else "tab:blue" for r in rows]
    ax.bar(names, values, color=colors)
    ax.axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="Feature", ylabel="PSI", title=title)
    ax.legend(loc="upper right", fontsize="small")
    for label in ax.get_xticklabels():
        label.set_rotation(45 if len(names) > 4 else 0)
        label.set_ha("right" if len(names) > 4 else "center")
    return ax


