"""What the four plug-in tables (statements, tasks, kinds, architectures) share: how a
plug-in is added, replaced and removed, and how installed packages' entry points load.

The rules, alike for every table:

* ``register(x)`` adds ``x`` under its own ``name``; a name already in the table (a
  built-in one included) is refused unless ``replace=True``.
* ``unregister(name)`` removes one (a built-in one too); unknown names are refused.
* An entry point names a class or an instance; it is registered under the object's own
  name, never replacing one the table has. One that fails to load (a missing module, a
  broken class) is skipped with a warning naming it: a broken plug-in never stops dbml.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any, Callable

from dbml.errors import DbmlError

__all__ = ["add", "remove", "load_entry_points"]


def add(table: dict[str, Any], name: str, item: Any, what: str, replace: bool) -> Any:
    """Put ``item`` in ``table`` under ``name``, refusing a taken name unless ``replace``."""
    if name in table and not replace:
        raise DbmlError(f"{what} '{name}' is registered already; pass replace=True to replace it")
    table[name] = item
    return item


def remove(table: dict[str, Any], name: str, what: str) -> Any:
    """Take ``name`` out of ``table``; refuse a name it does not hold."""
    if not isinstance(name, str) or name not in table:
        known = ", ".join(sorted(table))
        raise DbmlError(f"no {what} is registered as {name!r}; the registered ones are {known}")
    return table.pop(name)


def load_entry_points(group: str, table: dict[str, Any], register: Callable[[Any], Any]) -> None:
    """Register the plug-ins of an entry-point group that the table does not hold yet."""
    try:
        found = list(entry_points(group=group))
    except Exception as err:  # noqa: BLE001 - a broken environment is no reason to stop
        warnings.warn(f"dbml: cannot list the entry points of {group}: {err}", stacklevel=3)
        return
    for ep in found:
        try:
            item = ep.load()
            item = item() if isinstance(item, type) else item
            if getattr(item, "name", None) in table:
                continue
            register(item)
        except Exception as err:  # noqa: BLE001 - one broken plug-in never stops dbml
            warnings.warn(f"dbml: the {group} entry point '{ep.name}' ({ep.value}) was not loaded: "
                          f"{type(err).__name__}: {err}", stacklevel=3)  # fmt: skip
