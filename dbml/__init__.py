"""dbml: train, version and score deep-learning models inside DuckDB, in SQL.

    import dbml
    con = dbml.connect("shop.duckdb")
    con.sql("TRAIN MODEL churn FROM customers TARGET churned")
    con.sql("SELECT id, PREDICT(churn, *) FROM new_customers").show()

Outside DuckDB, a file written by EXPORT MODEL scores Arrow, pandas or polars data
with onnxruntime alone (no DuckDB, no torch):

    dbml.score("churn.onnx", table)              # an Arrow table: prediction
    model = dbml.load_model("churn.onnx")        # verified once, reused
    model.score(batch, functions=("PREDICT", "PREDICT_PROBA"))

The names and the submodules (``dbml.runtime``, ``dbml.registry``, ...) are imported on
first use (PEP 562), so ``import dbml`` loads neither DuckDB nor torch until
``dbml.connect`` (or ``Connection``, ``install``, a submodule that needs DuckDB) is touched.
"""

from __future__ import annotations

from typing import Any

from dbml.errors import *  # noqa: F401,F403 - the errors need nothing else
from dbml.errors import __all__ as _errors

from dbml._version import __version__

_LAZY = {
    "connect": "dbml.connection", "install": "dbml.connection", "Connection": "dbml.connection",
    "score": "dbml.scoring", "load_model": "dbml.scoring", "Scorer": "dbml.scoring",
}  # fmt: skip

__all__ = ["__version__", "connect", "install", "Connection", "score", "load_model", "Scorer", *_errors]


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:  # a submodule (dbml.runtime, dbml.registry, ...), imported on first use like the names
        if name.startswith("_") or not name.isidentifier():
            raise AttributeError(f"module 'dbml' has no attribute {name!r}")
        try:
            return importlib.import_module(f"{__name__}.{name}")  # the import sets the attribute
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise  # the submodule exists and needs something missing: say what
            raise AttributeError(f"module 'dbml' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext dbml``: the ``%dbml`` and ``%%dbml`` magics (:mod:`dbml.integrations.notebook`)."""
    from dbml.integrations import notebook

    notebook.load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext dbml``: remove the magics again."""
    from dbml.integrations import notebook

    notebook.unload_ipython_extension(ipython)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
