"""The registry: the only reader and writer of the ``dbml`` schema, and the files a
version travels as.

* :mod:`dbml.registry.store`: :class:`Registry`, the tables of one database (versions,
  blobs, aliases, logs, runs), migrated from the numbered SQL files in ``dbml.sql``;
* :mod:`dbml.registry.records`: the declared schema of a version record, checked once
  at every boundary (rows read, rows written, files imported);
* :mod:`dbml.registry.lineage`: the source tables of a training query;
* :mod:`dbml.registry.transfer`: reading and writing blobs at fsspec URLs;
* :mod:`dbml.registry.modelfile`: what an ONNX file says of itself (IMPORT, dbml.score);
* :mod:`dbml.registry.foreign`: the layout of an ONNX file dbml did not write;
* :mod:`dbml.registry.graphcheck`: what a graph may do before a session loads it.

The names are imported on first use (PEP 562): scoring outside DuckDB reads files
through this package without importing DuckDB.
"""

from __future__ import annotations

from typing import Any

from dbml.names import check_alias_name, check_model_name, check_version, parse_reference

__all__ = ["Registry", "SCHEMA_VERSION", "check_model_name", "check_alias_name", "check_version", "parse_reference"]


_SUBMODULES = ("store", "records", "lineage", "transfer", "modelfile", "foreign", "graphcheck")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    store = importlib.import_module("dbml.registry.store")  # DuckDB loads with the first use of the registry itself
    try:
        return getattr(store, name)
    except AttributeError:
        raise AttributeError(f"module 'dbml.registry' has no attribute {name!r}") from None
