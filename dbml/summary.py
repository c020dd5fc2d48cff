"""How registry facts read in SHOW MODELS, DESCRIBE MODEL and TRAIN MODEL's result: the
headline metric of a version as a column of its own, and sizes in human units. The full
facts stay in the registry's JSON columns (``metrics``, ``profile``, ``options``)."""

from __future__ import annotations

from typing import Any

__all__ = ["headline", "human_size"]


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
