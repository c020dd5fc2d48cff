"""How registry facts read in SHOW MODELS, DESCRIBE MODEL and TRAIN MODEL's result: the
headline metric of a version as a column of its own, and sizes in human units. The full
facts stay in the registry's JSON columns (``metrics``, ``profile``, ``options``)."""

from __future__ import annotations

from typing import Any

__all__ = ["headline", "versus", "human_size"]


def headline(task: str | None, metrics: dict[str, Any] | None) -> tuple[str | None, float | None]:
    """(the task's headline metric, its validation value to 4 decimals, as shown): the
    task's :attr:`~dbml.tasks.Task.headline` (accuracy for classifiers, r2 for regressions,
    mae for forecasters, mse for anomaly models); (None, None) for a task without one (an
    imported model) or unknown here, and a None value for a metric that was not measured."""
    from dbml.tasks import task_of

    found = task_of(task)
    name = found.headline if found is not None else ""
    value = (metrics or {}).get(name) if name else None
    if not name:
        return None, None
    return name, round(float(value), 4) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "mape", "log_loss", "mase"})
_NAMES = {"majority": "the majority class", "mean": "the mean", "seasonal_naive": "seasonal naive",
          "robust_z": "a robust z-score", "popularity": "the most popular items"}  # fmt: skip


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def versus(task: str | None, metrics: dict[str, Any] | None) -> str | None:
    """How the headline metric compares with the simple models stored beside it
    (``metrics.baseline``, :meth:`dbml.tasks.Task.baseline`), in words: the gain over each
    in points (x100) for a score, in percent for an error, the strongest baseline first, and
    plainly when a simpler model does as well or better. None when the version stores no
    baseline with the headline metric."""
    from dbml.tasks import task_of

    found = task_of(task)
    name = found.headline if found is not None else ""
    metrics = metrics or {}
    own = found.versus(metrics) if found is not None else None
    if own is not None:  # the task says it in its own words (an anomaly model has no labels to compare on)
        return own
    ours, simple = metrics.get(name), metrics.get("baseline")
    if not name or not _number(ours) or not isinstance(simple, dict):
        return None
    lower = name in LOWER_IS_BETTER
    rows = []
    for key, figures in simple.items():
        if isinstance(figures, dict) and _number(figures.get(name)):
            label = figures.get("model") if isinstance(figures.get("model"), str) else _NAMES.get(key, key.replace("_", " "))
            rows.append((label, float(figures[name])))
    if not rows:
        return None
    rows.sort(key=lambda r: r[1], reverse=not lower)  # the strongest first
    ours = float(ours)
    parts = []
    for i, (label, theirs) in enumerate(rows):
        unit = f" of {name}" if i == 0 else ""
        if lower:
            change = 100 * (ours - theirs) / abs(theirs) if theirs else 0.0
            parts.append(f"{name + ' ' if i == 0 else ''}{abs(change):.1f}% {'below' if change <= 0 else 'above'} {label} ({theirs:.4g})")
        else:
            points = 100 * (ours - theirs)
            parts.append(f"+{points:.1f} points{unit} over {label} ({theirs:.4f})" if points >= 0
                         else f"{-points:.1f} points{unit} below {label} ({theirs:.4f})")  # fmt: skip
    best = rows[0][1]
    if not (ours < best if lower else ours > best):
        return "a simpler model does as well: " + "; ".join(parts)
    return "; ".join(parts)


def human_size(size: int | None) -> str | None:
    """Bytes in binary units, about three digits: ``'812 B'``, ``'14.2 KiB'``, ``'3.05 MiB'``."""
    if size is None:
        return None
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"
