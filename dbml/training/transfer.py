"""Transfer: a new task on a trained version's encoders and trunk.

``TRAIN MODEL small FROM few TARGET urgent WITH (base = 'big', freeze = true)`` builds the
network of ``big``'s version (its architecture, the options that shape its encoders and
trunk, its features) with a new head for ``urgent``, copies the base's encoder and trunk
weights into it, and trains. What differs from fine-tuning (:mod:`dbml.training.finetune`):
the head is new, so the target, the task and the labels are the new source's own.

* **The base** is named like any model reference (:func:`dbml.names.parse_reference`):
  ``'big'`` (its default alias, else its latest version), ``'big:3'`` or ``'big@production'``.
  Its weights come from its ONNX blob (checked against the registry's sha256), as for
  fine-tuning; a foreign graph (IMPORT of a file dbml did not write) has no trunk to take.
* **The preprocessing is the base's**: the means and standard deviations, vocabularies
  and array lengths of its training profile. The trunk's weights were learnt on inputs
  scaled and coded that way; re-profiling the few new rows would feed it other numbers.
  Values the base never saw go to the unknown bucket, as at scoring.
* **The architecture is the base's.** USING may be left out (the base's is taken) or name
  the base's; another one is refused. The options that shape the encoders and the trunk
  (the architecture's and the kinds') are the base's; giving another value is refused.
  A trunk takes any head: an autoencoder's bottleneck takes a classifier's.
* **The columns are the base's**: the source must have each of them (names ignore case)
  with the same kind and input shape, and no other feature column (leave extra ones out
  with ``SELECT * EXCLUDE (...)``, as anywhere in dbml).
* **freeze = true** trains the head only: the encoders' and trunk's parameters get no
  gradient (AdamW skips them, weight decay too), and they stay in eval mode while the
  head trains, so dropout is off in them and batch-normalisation statistics keep the
  base's values. Without freeze, every weight trains from the base's values.
* **Lineage**: the version records ``base_model`` and ``base_version``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dbml.errors import DbmlError, FeatureError, OptionError
from dbml.features import FeatureSpec

__all__ = ["Base", "load_base", "architecture_of", "keep_options", "allowed_tasks", "match_features", "base_profile",
           "check_shapes", "load_trunk", "freeze", "TRUNK_PARTS"]  # fmt: skip

TRUNK_PARTS = ("encoders", "trunk")  # the Network's parts a transfer takes; the head is new


@dataclass
class Base:
    """The version a transfer starts from."""

    record: dict[str, Any]
    weights: dict[str, Any]  # torch state-dict key -> array
    reference: str  # as the user wrote it

    @property
    def what(self) -> str:
        return f"base '{self.reference}' (model '{self.record['model']}' version {self.record['version']})"

    @property
    def features(self) -> list[FeatureSpec]:
        return [FeatureSpec(**f) for f in self.record["features"]]


def load_base(registry, reference: Any) -> Base:
    """Resolve option ``base`` and read the version's weights.

    Raises:
        OptionError: ``base`` is not a model reference; ModelNotFoundError /
            VersionNotFoundError: no such model, version or alias; TrainingError: a foreign graph.
    """
    from dbml.names import parse_reference
    from dbml.tasks import task_of
    from dbml.training import finetune

    if not isinstance(reference, str) or not reference.strip():
        raise OptionError(f"option 'base' must be a model reference ('model', 'model:3' or 'model@alias'), got {reference!r}")
    try:
        model, version, alias = parse_reference(reference)
        rec = registry.get(model, version, alias)
    except DbmlError as err:  # the same class, the option named first
        raise type(err)(f"option 'base' = '{reference}': {str(err).removeprefix('dbml: ')}") from None
    task = task_of(rec["task"])
    if task is None or task.foreign:
        raise OptionError(
            f"option 'base' = '{reference}': model '{rec['model']}' version {rec['version']} is a foreign ONNX graph "
            f"(IMPORT, architecture {rec['architecture']}); its graph exposes no dbml trunk to start from: "
            "name a version trained by dbml"
        )
    parent = finetune.load_parent(registry, rec["model"], rec["version"])
    first = finetune.member_weights(parent, 0).weights  # an ensemble's members each have a trunk
    missing = [p for p in TRUNK_PARTS if not any(k.startswith(p + ".") for k in first)]
    if "trunk" in missing:
        raise OptionError(f"option 'base' = '{reference}': the graph of model '{rec['model']}' version {rec['version']} "
                          "has no trunk weights (dbml/model.trunk.*): name a version trained by dbml")  # fmt: skip
    return Base(parent.record, parent.weights, reference.strip())


def architecture_of(base: Base, using: str | None, model: str):
    """The architecture of the transfer: the base's (USING may name it or be left out)."""
    from dbml.architectures import ARCHITECTURES, get_architecture

    name = base.record["architecture"]
    if name not in ARCHITECTURES:
        get_architecture(name)  # an installed plug-in's, or the error naming it
    if using is not None and using.lower() != name:
        raise OptionError(
            f"TRAIN MODEL {model} USING {using} cannot start from {base.what}, which is USING {name}: a transfer keeps "
            f"the base's encoders and trunk; write USING {name} or leave USING out"
        )
    return get_architecture(name)


def keep_options(base: Base, shaping: tuple, given: dict[str, Any], options: dict[str, Any], model: str) -> None:
    """Set the options that shape the encoders and trunk (``shaping``: the architecture's
    and the kinds') to the base's, refusing a given value that differs."""
    stored = base.record["options"]
    given = {k.lower(): v for k, v in given.items()}
    for opt in shaping:
        if opt.name not in stored:
            continue
        try:
            kept = opt.coerce(stored[opt.name])
        except OptionError as err:
            raise OptionError(f"{base.what} stores {str(err).removeprefix('dbml: ')}") from None
        if opt.name in given and opt.coerce(given[opt.name]) != kept:
            raise OptionError(
                f"option '{opt.name}' = {given[opt.name]!r} cannot change in TRAIN MODEL {model}: {base.what} has "
                f"{opt.name} = {kept!r}, and its trunk keeps that shape; leave the option out"
            )
        options[opt.name] = kept


def detection_options(base: Base, shaping: tuple, given: dict[str, Any]) -> dict[str, Any]:
    """The WITH options detection reads: the base's kind options (``text = [...]``) under the user's."""
    names = {o.name for o in shaping}
    kept = {k: v for k, v in base.record["options"].items() if k in names}
    return {**kept, **given}


def allowed_tasks(architecture) -> tuple[str, ...]:
    """The tasks a transfer may learn: any trunk takes a new head, so those of the
    architecture and every task that needs only a head."""
    from dbml.tasks import TASKS

    provides = set(architecture.provides) | {"head"}
    return tuple(t.name for t in TASKS.values() if t.trained and t.needs <= provides)


def match_features(base: Base, detected: list[FeatureSpec], model: str, source: str) -> list[FeatureSpec]:
    """The source's feature columns in the base's order, refusing a missing column, one of
    another kind, and a column the base does not take."""
    have = {f.name.lower(): f for f in detected}
    wanted = base.features
    missing = [f.name for f in wanted if f.name.lower() not in have]
    if missing:
        raise FeatureError(
            f"the source {source} of model '{model}' has no column {', '.join(repr(m) for m in missing)}, which "
            f"{base.what} takes; a transfer reads the base's columns: {', '.join(f.name for f in wanted)}"
        )
    changed = [(f, have[f.name.lower()]) for f in wanted if have[f.name.lower()].kind != f.kind]
    if changed:
        old, new = changed[0]
        raise FeatureError(
            f"column '{new.name}' of the source {source} of model '{model}' is {new.kind} ({new.sql_type}), but in "
            f"{base.what} it is {old.kind} ({old.sql_type}); a transfer needs the same kind: cast it in the query"
        )
    names = {f.name.lower() for f in wanted}
    extra = [f.name for f in detected if f.name.lower() not in names]
    if extra:
        raise FeatureError(
            f"the source {source} of model '{model}' has feature column(s) {', '.join(repr(e) for e in extra)} that "
            f"{base.what} does not take; its trunk reads {', '.join(f.name for f in wanted)} only: leave the others "
            f"out with SELECT * EXCLUDE ({', '.join(extra)})"
        )
    return [have[f.name.lower()] for f in wanted]


def base_profile(base: Base, features: list[FeatureSpec]) -> dict[str, Any]:
    """The base's training profile, keyed by the source's column names."""
    by_lower = {f.name.lower(): f.name for f in base.features}
    return {f.name: base.record["profile"][by_lower[f.name.lower()]] for f in features}


def check_shapes(base: Base, features: list[FeatureSpec], train_table, options: dict[str, Any], prof: dict[str, Any],
                 model: str) -> None:
    """Refuse a column whose input shape (an array's length) differs from the base's: the
    feature settled on the new training rows' own profile against the base's ``prof``.
    Only kinds whose stored feature depends on the profile (:meth:`dbml.kinds.Kind.settle`) are profiled."""
    from dbml.data import rows as data_rows
    from dbml.kinds import Kind, kind_of

    shaped = [f for f in features if type(kind_of(f)).settle is not Kind.settle]
    if not shaped:
        return
    own = data_rows.profile(train_table, shaped, options)
    for f in shaped:
        mine, theirs = kind_of(f).settle(f, own).sql_type, kind_of(f).settle(f, prof).sql_type
        if mine != theirs:
            raise FeatureError(
                f"column '{f.name}' of model '{model}' is {mine} here but {theirs} in {base.what}; a transfer needs the "
                "base's input shape: pad or cut it in the query (list_resize)"
            )


def load_trunk(net, base: Base) -> None:
    """Copy the base's encoder and trunk weights into ``net`` (the head keeps its new ones)."""
    import numpy as np
    import torch

    from dbml.errors import TrainingError

    state = net.state_dict()
    taken = [k for k in state if k.split(".", 1)[0] in TRUNK_PARTS]
    parameters = {k for k, _ in net.named_parameters()}
    missing = [k for k in taken if k in parameters and k not in base.weights]
    wrong = [k for k in taken if k in base.weights and tuple(base.weights[k].shape) != tuple(state[k].shape)]
    if missing or wrong:
        raise TrainingError(
            f"cannot start from {base.what}: its graph lacks or reshapes {', '.join((missing + wrong)[:5])}; its network "
            "has another layout (trained by an older dbml, or with other options): train the base again"
        )
    loaded = dict(state)
    for k in taken:
        if k in base.weights:
            loaded[k] = torch.from_numpy(np.array(base.weights[k])).to(state[k].dtype)
    net.load_state_dict(loaded)


def freeze(net) -> None:
    """Keep the encoders and trunk as the base left them: no gradient, and eval mode while
    the head trains (dropout off, batch-normalisation statistics kept)."""
    for part in TRUNK_PARTS:
        for p in getattr(net, part).parameters():
            p.requires_grad_(False)
    net.frozen = TRUNK_PARTS
