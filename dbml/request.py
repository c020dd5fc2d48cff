"""A TRAIN MODEL statement, ready to run (no torch needed to build one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainRequest"]


@dataclass
class TrainRequest:
    """A TRAIN MODEL statement or ``Connection.train`` call, ready to run.

    Attributes:
        model: the model name as written.
        source_sql: a query giving the training rows (as DuckDB runs it).
        written_sql: the same as the user wrote it (PREDICT not rewritten, statements
            nested in it not run), kept in the registry; None: ``source_sql``.
        source_label: the source as the user wrote it, for messages.
        targets: target column names (none: an unsupervised model).
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
    callbacks: list[Any] = field(default_factory=list)
    written_sql: str | None = None
    fit_with: Any = None  # (Python API) trains the network elsewhere: dbml.integrations.spark.train's TorchDistributor
