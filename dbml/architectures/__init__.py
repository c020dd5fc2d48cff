"""Architecture plugins, registered by name in one table.

An architecture receives the encoded inputs' shapes (one entry per input group, see
:mod:`dbml.kinds`), the task and its options, and returns the *trunk*: a torch module
mapping the dict {group key: encoded tensor} to one [N, width] tensor (its ``width``
attribute), the last hidden layer. The task adds its head; ``EMBED`` returns the
trunk's output. It never touches SQL, the registry or ONNX.

A new family is one file here (or a third-party package exposing a class with the
same interface through the entry-point group ``dbml.architectures``, or a call to
:func:`register`). Nothing at module level imports torch.
"""

from __future__ import annotations

from typing import Any

from dbml.errors import OptionError
from dbml.kinds import Shape
from dbml.options import Option

__all__ = ["Architecture", "ARCHITECTURES", "get_architecture", "default_architecture", "register", "unregister", "concat",
           "check_parameters"]

MAX_PARAMETERS = 50_000_000


class Architecture:
    """Interface of a model family.

    Attributes:
        name: the name after USING.
        description: one line for users.
        options: the architecture's own options (training options are shared).
        takes: the encoded shapes its trunk reads (:class:`dbml.kinds.Shape`): FLAT
            vectors, FIXED arrays, STEPS sequences. Every kind whose encoder gives one
            of them joins (:attr:`dbml.kinds.Kind.shape`), and a column two kinds claim
            alike (a LIST of numbers) becomes the one whose shape it takes.
        provides: what it offers a task (:attr:`dbml.tasks.Task.needs`): 'head' (a
            trunk a task's head goes on, for learning a target), 'decoder' (it rebuilds
            its inputs, :meth:`decoder`), 'sequence_input' (it reads ordered steps, a
            window of past values).
        tasks: the tasks it learns: every task of :data:`dbml.tasks.TASKS` whose
            ``needs`` it provides, in the table's order (a subclass may still name them).
        binned_numbers: whether ``numeric_encoding = 'auto'`` gives its classifiers and
            regressions the piecewise-linear encoding of numbers (measured for the mlp in
            benchmarks/accuracy.py; the others keep standardised numbers until measured).
        ensembled: whether option ``ensemble``'s default averages several of its
            networks on a table of the size where that pays (measured for the mlp in
            benchmarks/accuracy.py; the others train one unless the option asks).
    """

    binned_numbers: bool = False
    ensembled: bool = False
    name: str = ""
    description: str = ""
    options: tuple[Option, ...] = ()
    takes: frozenset[str] = frozenset({Shape.FLAT})
    provides: frozenset[str] = frozenset({"head"})

    @property
    def kinds(self) -> frozenset[str]:
        """The column kinds it takes: those whose encoder gives a shape it takes."""
        from dbml.kinds import all_kinds

        return frozenset(k.name for k in all_kinds() if k.shape in self.takes)

    @property
    def list_kind(self) -> str:
        """The kind a LIST of numbers becomes here (for :func:`dbml.kinds.detect`)."""
        from dbml.kinds import detect_column

        return detect_column("", "DOUBLE[]", takes=self.takes).kind

    @property
    def tasks(self) -> tuple[str, ...]:
        from dbml.tasks import TASKS

        return tuple(t.name for t in TASKS.values() if t.trained and t.needs <= self.provides)

    def build(self, inputs: dict[str, tuple[int, ...]], task: str, options: dict[str, Any]):
        """Return the trunk: {group key: encoded [N, *shape]} -> [N, width], with ``width``."""
        raise NotImplementedError

    def encoding(self, options: dict[str, Any]) -> dict[str, Any]:
        """Settings this family gives the kinds' encoders, beside the TRAIN options
        (:meth:`dbml.kinds.Kind.encoder` reads them): a transformer asks text columns for
        attention layers. None by default."""
        return {}

    def decoder(self, width: int, out: int, options: dict[str, Any]):
        """For a reconstruction task: [N, width] -> [N, out]. A linear map unless overridden."""
        from torch import nn

        return nn.Linear(width, out)


def concat(inputs: dict[str, tuple[int, ...]]):
    """The plain combiner: every encoded input flattened and concatenated, in key order.
    Returns (module, width)."""
    import math

    import torch
    from torch import nn

    keys = list(inputs)
    width = sum(math.prod(s) for s in inputs.values())

    class Concat(nn.Module):
        def forward(self, encoded):
            return torch.cat([encoded[k].flatten(1) for k in keys], dim=1)

    return Concat(), width


def check_parameters(module, what: str, option: str) -> None:
    """Refuse a network too large to train or store, naming the option to lower."""
    n = sum(p.numel() for p in module.parameters())
    if n > MAX_PARAMETERS:
        raise OptionError(
            f"option '{option}' makes a {what} of {n:,} parameters; the limit is {MAX_PARAMETERS:,}: use smaller layers"
        )


def _builtin() -> dict[str, Architecture]:
    from dbml.architectures.autoencoder import Autoencoder
    from dbml.architectures.cnn import CNN
    from dbml.architectures.mlp import MLP
    from dbml.architectures.recommender import Recommender
    from dbml.architectures.recurrent import GRU, LSTM
    from dbml.architectures.transformer import Bag, Transformer

    return {a.name: a for a in (MLP(), CNN(), LSTM(), GRU(), Autoencoder(), Transformer(), Bag(), Recommender())}


ARCHITECTURES: dict[str, Architecture] = _builtin()


def register(architecture: Architecture, *, replace: bool = False) -> Architecture:
    """Add an architecture to the table (a family defined outside the package). A name the
    table holds (a built-in one too) is refused unless ``replace`` (:mod:`dbml.plugins`)."""
    from dbml import plugins

    if not isinstance(architecture, Architecture):
        raise OptionError(f"an architecture is a dbml.architectures.Architecture, got {type(architecture).__name__}")
    if not architecture.name or not architecture.name.isidentifier():
        raise OptionError(f"an architecture needs a name made of letters, digits and _, got {architecture.name!r}")
    return plugins.add(ARCHITECTURES, architecture.name.lower(), architecture, "architecture", replace)


def unregister(name: str) -> Architecture:
    """Remove an architecture from the table; returns it."""
    from dbml import plugins

    return plugins.remove(ARCHITECTURES, name, "architecture")


def _plugins() -> dict[str, Architecture]:
    """The families of installed packages (entry-point group ``dbml.architectures``) that
    the table lacks; one that fails to load is skipped with a warning."""
    from dbml import plugins

    found: dict[str, Architecture] = {}

    def keep(arch: Architecture) -> Architecture:
        found[arch.name.lower()] = arch
        return arch

    plugins.load_entry_points("dbml.architectures", ARCHITECTURES, keep)
    return found


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by name (the table first, then installed plugins)."""
    key = name.lower()
    if key in ARCHITECTURES:
        return ARCHITECTURES[key]
    plugins = _plugins()
    if key in plugins:
        return plugins[key]
    valid = ", ".join(sorted({*ARCHITECTURES, *plugins}))
    raise OptionError(f"unknown architecture '{name}' after USING; available: {valid}")


def default_architecture(has_target: bool, list_columns: bool) -> str:
    """The architecture chosen when USING is left out: mlp, a cnn for array columns,
    an autoencoder without a TARGET."""
    if not has_target:
        return "autoencoder"
    return "cnn" if list_columns else "mlp"
