"""Declared options of TRAIN MODEL: names, types, defaults and ranges.

Training options are shared by every architecture; an architecture adds its own
(for example ``hidden`` and ``dropout`` for the MLP). Validation names the option
at fault and lists the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dbml.errors import OptionError

__all__ = ["Option", "TRAINING_OPTIONS", "DISPLAY_OPTIONS", "validate_options", "verbosity", "MAX_LABELS"]

MAX_LABELS = 100_000  # the largest max_labels; memory is checked against the row count too
# Options that change what training prints, never the model: a version's record leaves
# them out, so they play no part in comparing versions or in what fine-tuning reuses.
DISPLAY_OPTIONS = ("verbose", "progress")


@dataclass(frozen=True)
class Option:
    """One option: its type, default, range check and a line of help."""

    name: str
    type: str  # int, float, bool, str, int_list, str_list, any
    default: Any
    help: str
    check: Callable[[Any], bool] | None = None
    rule: str = ""  # the range in words, for error messages
    choices: tuple[str, ...] | None = None

    def coerce(self, value: Any) -> Any:
        t = self.type
        ok = False
        if t == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
            if isinstance(value, float) and value.is_integer():
                value, ok = int(value), True
        elif t == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif t == "bool":
            ok = isinstance(value, bool)
        elif t == "any":
            ok = True
        elif t == "str":
            ok = isinstance(value, str)
            value = value.lower() if ok and self.choices else value
        elif t == "int_list":
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value]
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            )
            value = list(value) if ok else value
        elif t == "str_list":
            if isinstance(value, str):
                value = [value]
            ok = value is None or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))
            value = list(value) if ok and value is not None else value
        if not ok:
            shown = {"int_list": "a list of integers such as [64, 32]",
                     "str_list": "a list of strings such as ['a', 'b']"}.get(t, f"a {t}")  # fmt: skip
            raise OptionError(f"option '{self.name}' must be {shown}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"option '{self.name}' must be one of {', '.join(self.choices)}, got {value!r}")
        if self.check is not None and not self.check(value):
            raise OptionError(f"option '{self.name}' must be {self.rule}, got {value!r}")
        return value


class _AskableTasks:
    """The values of option ``task``: 'auto' and the tasks ``task`` may name
    (:attr:`dbml.tasks.Task.askable`), read from the table of tasks when asked, so that a
    task registered later is one of them."""

    def _names(self) -> tuple[str, ...]:
        from dbml.tasks import TASKS, _load_plugins

        _load_plugins()
        return ("auto", *(t.name for t in TASKS.values() if t.trained and t.askable))

    def __iter__(self):
        return iter(self._names())

    def __contains__(self, value: object) -> bool:
        return value in self._names()

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


TRAINING_OPTIONS: tuple[Option, ...] = (
    Option("task", "str", "auto", "classification, regression, or auto (from the target's type)",
           choices=_AskableTasks()),  # type: ignore[arg-type]  # and any task registered as askable
    Option("epochs", "int", 200, "largest number of passes over the training rows",
           lambda v: 1 <= v <= 100_000, "between 1 and 100000"),
    Option("batch_size", "int", 0, "rows per step; 0 picks from the row count",
           lambda v: 0 <= v <= 1_000_000, "between 0 (auto) and 1000000"),
    Option("lr", "float", 1e-3, "Adam learning rate", lambda v: 0 < v <= 10, "in (0, 10]"),
    Option("weight_decay", "float", 1e-4, "AdamW weight decay", lambda v: 0 <= v <= 1, "in [0, 1]"),
    Option("validation", "float", 0.2, "fraction of rows held out for early stopping and metrics",
           lambda v: 0 <= v < 1, "in [0, 1)"),
    Option("patience", "int", 20, "epochs without validation improvement before stopping",
           lambda v: v >= 1, "at least 1"),
    Option("refit", "bool", None, "classification and regression: once the validation rows have chosen the epochs, "
           "train the version again on every training row for that many epochs (metrics stay the first run's, "
           "on rows it never saw); default: when the source has at least 1,000 rows"),
    Option("ensemble", "int", None, "classification and regression: networks trained from seeds seed, seed + 1, ... "
           "and averaged inside the one ONNX graph; default: 5 for an mlp on up to 10,000 training rows in memory, else 1",
           lambda v: 1 <= v <= 16, "between 1 and 16"),
    Option("seed", "int", 42, "seed of the split, the initial weights and the shuffling",
           lambda v: 0 <= v < 2**63, "a non-negative integer"),
    Option("device", "str", "auto", "auto (CUDA when present), cpu or cuda",
           choices=("auto", "cpu", "cuda")),
    Option("streaming", "bool", None, "read the rows from DuckDB on every pass instead of once into memory (tables "
           "larger than memory); default: when the rows' tensors would take over a sixteenth of the machine's memory"),
    Option("shuffle", "str", "buffer", "the order of a streamed epoch: buffer (the source's order, shuffled "
           "within buffers of rows) or sort (DuckDB sorts every pass by a seeded hash: an exact shuffle, a sort "
           "an epoch)", choices=("buffer", "sort")),
    Option("precision", "str", "fp32", "the arithmetic of training's forward pass: fp32, or bf16 (bfloat16 autocast: "
           "faster on GPUs that have it; weights and the exported graph stay float32)", choices=("fp32", "bf16")),
    Option("workers", "int", 1, "processes that train one version together, each on its share of every epoch "
           "(gradients averaged: data parallel, gloo on the CPU, NCCL on GPUs); at most the cores (or GPUs)",
           lambda v: 1 <= v <= 1024, "between 1 and 1024"),
    Option("threads", "int", 0, "CPU threads for training; 0 picks 1 for small networks, torch's default otherwise",
           lambda v: 0 <= v <= 1024, "between 0 (auto) and 1024"),
    Option("warm_start", "bool", False, "fine-tune: start from the model's default (else latest) version"),
    Option("from_version", "int", 0, "fine-tune: start from this version (0: none)",
           lambda v: v >= 0, "a version number"),
    Option("base", "str", "", "transfer: start from this model's encoders and trunk with a new head "
           "('model', 'model:3' or 'model@alias'; '' none)"),
    Option("freeze", "bool", False, "transfer: train the new head only; the base's encoders and trunk stay fixed"),
    Option("verbose", "int", None, "0 silent, 1 a progress bar, 2 one line per epoch, on stderr "
           "(default: 1 in a terminal or notebook, 0 elsewhere)", lambda v: 0 <= v <= 2, "0, 1 or 2"),
    Option("progress", "bool", None, "deprecated alias of verbose: true is verbose = 1, false is verbose = 0"),
    Option("tune", "int", 0, "trials of a seeded random search over the architecture's and the training's options, "
           "judged on the validation rows; the best is kept (0: none)", lambda v: 0 <= v <= 500, "between 0 and 500"),
    Option("tune_seconds", "float", None, "time budget of the search in seconds: no trial starts after it "
           "(none: every trial runs)", lambda v: v > 0, "above 0"),
    Option("tune_options", "str_list", None, "the options the search draws (default: every tunable option the "
           "architecture has that the statement does not give)"),
    Option("max_categories", "int", 100, "vocabulary size per category column (most frequent kept)",
           lambda v: 1 <= v <= 100_000, "between 1 and 100000"),
    Option("max_classes", "int", 20, "an integer target with at most this many values is a class label",
           lambda v: 2 <= v <= 10_000, "between 2 and 10000"),
    Option("max_labels", "int", 1000, "most classes a classification target may have (checked before training)",
           lambda v: 2 <= v <= MAX_LABELS, f"between 2 and {MAX_LABELS}"),
)  # fmt: skip


def validate_options(given: dict[str, Any], declared: tuple[Option, ...], context: str) -> dict[str, Any]:
    """Check user options against the declared ones and fill in defaults.

    Args:
        given: the options as the user wrote them (names are case-insensitive).
        declared: every option that applies.
        context: what the options are for, for messages (e.g. "TRAIN MODEL churn USING mlp").
    """
    by_name = {o.name: o for o in declared}
    out = {o.name: o.default for o in declared}
    seen: set[str] = set()
    for raw_name, value in given.items():
        name = raw_name.lower()
        if name in seen:
            raise OptionError(f"option '{raw_name}' is given twice")
        seen.add(name)
        if name not in by_name:
            valid = ", ".join(sorted(by_name))
            raise OptionError(f"unknown option '{raw_name}' for {context}; valid options are: {valid}")
        out[name] = by_name[name].coerce(value)
    return out


def verbosity(options: dict[str, Any]) -> int:
    """The display level of a training run: ``verbose`` when given, else the deprecated
    ``progress`` (true 1, false 0), else 1 in a terminal or notebook and 0 elsewhere
    (logs and CI, where a bar would be noise).

    Raises:
        OptionError: when ``verbose`` and ``progress`` are both given and disagree.
    """
    import sys

    verbose, progress = options.get("verbose"), options.get("progress")
    if verbose is not None and progress is not None and verbose != int(progress):
        raise OptionError(
            f"options 'verbose' = {verbose} and 'progress' = {str(progress).lower()} disagree; "
            "give verbose alone (progress is its deprecated alias)"
        )
    if verbose is not None:
        return verbose
    if progress is not None:
        return int(progress)
    stream = sys.stderr
    shown = _in_a_kernel() or bool(getattr(stream, "isatty", lambda: False)())
    return 1 if shown else 0


def _in_a_kernel() -> bool:
    """Whether this code runs inside a Jupyter kernel (not merely a process that imported
    ipykernel, as a test runner driving notebooks does)."""
    import sys

    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
