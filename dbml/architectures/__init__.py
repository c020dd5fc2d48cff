"""Architecture plugins, registered by name in one table.

An architecture receives sizes and options and returns a torch module; it never
touches SQL or the registry. Third parties add one through the entry-point group
``dbml.architectures`` (a class with the same interface as :class:`Architecture`).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from torch import nn

from dbml.errors import OptionError
from dbml.options import Option

__all__ = ["Architecture", "ARCHITECTURES", "get_architecture", "default_architecture"]


class Architecture:
    """Interface of a model family.

    Attributes:
        name: the name after USING.
        description: one line for users.
        options: the architecture's own options (training options are shared).
        kinds: the feature kinds it takes.
    """

    name: str = ""
    description: str = ""
    options: tuple[Option, ...] = ()
    kinds: frozenset[str] = frozenset()

    def build(self, input_dim: int, output_dim: int, options: dict[str, Any]) -> nn.Module:
        """Return a module mapping a float [N, input_dim] batch to [N, output_dim]."""
        raise NotImplementedError


def _builtin() -> dict[str, Architecture]:
    from dbml.architectures.mlp import MLP

    return {a.name: a for a in (MLP(),)}


ARCHITECTURES: dict[str, Architecture] = _builtin()


def _plugins() -> dict[str, Architecture]:
    found = {}
    for ep in entry_points(group="dbml.architectures"):
        if ep.name not in ARCHITECTURES:
            found[ep.name] = ep.load()()
    return found


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by name (built-ins first, then installed plugins)."""
    key = name.lower()
    if key in ARCHITECTURES:
        return ARCHITECTURES[key]
    plugins = _plugins()
    if key in plugins:
        return plugins[key]
    valid = ", ".join(sorted({*ARCHITECTURES, *plugins}))
    raise OptionError(f"unknown architecture '{name}' after USING; available: {valid}")


def default_architecture(kinds: set[str]) -> str:
    """The architecture chosen when USING is left out, from the feature kinds."""
    return "mlp"
