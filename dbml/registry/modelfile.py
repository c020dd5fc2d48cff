"""What an ONNX file holds, read and checked once where it enters dbml.

A file EXPORT MODEL wrote describes itself in its metadata (``dbml.features``,
``dbml.task``, ``dbml.labels``, ``dbml.target``, ``dbml.target_type`` and the registry
facts under ``dbml.record``); any other ONNX file is foreign, and its graph's inputs
and outputs say how columns feed it (:func:`dbml.registry.foreign.describe_graph`). Either way
:func:`describe_file` gives the version record IMPORT MODEL stores, checked against the
record schema (:func:`dbml.registry.records.validate_record`) and against the graph; IMPORT and
scoring outside DuckDB (:mod:`dbml.scoring`) share this one validation. The metadata
is data, never trusted. Nothing here touches a database or imports torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from dbml.errors import DbmlError, RecordError, TransferError
from dbml.names import check_model_name, check_version
from dbml.registry.records import check_imported_facts, validate_record
from dbml.registry.transfer import RECORD_KEY, dbml_metadata

__all__ = ["ModelFile", "describe_file", "open_session", "TRAINED_TASKS"]


def __getattr__(name: str) -> Any:
    if name == "TRAINED_TASKS":  # the tasks a graph dbml trained may carry, from the table of dbml.tasks
        from dbml.tasks import trainable

        return tuple(t.name for t in trainable())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class ModelFile:
    """An ONNX file, described.

    Attributes:
        record: the version record, checked (:func:`dbml.registry.records.validate_record`).
        origin: ``'model:version'`` it was exported from, when its ``dbml.record`` says
            so in a well-formed way (lineage text only), else None.
        dropped: unknown identifier-shaped keys of its ``dbml.record``, left out.
        foreign: True for a file dbml did not write (architecture and task ``imported``).
    """

    record: dict[str, Any]
    origin: str | None = None
    dropped: list[str] = field(default_factory=list)
    foreign: bool = False


def open_session(blob: bytes, url: str):
    """An onnxruntime session of a file's bytes, after the graph checks of
    :func:`dbml.runtime.new_session`.

    Raises:
        UnsafeGraphError, ResourceLimitError: the graph breaks a rule of dbml.registry.graphcheck.
        TransferError: onnxruntime cannot load the graph (naming ``url``).
    """
    from dbml.runtime import new_session

    try:
        return new_session(blob)
    except DbmlError:
        raise  # already names what is wrong (an unsafe graph, a resource bound)
    except Exception as err:  # onnxruntime's own errors
        raise TransferError(f"onnxruntime cannot load '{url}': {err}") from None


def describe_file(blob: bytes, url: str, session: Any, name: str | None = None, inputs: list[str] | None = None,
                  warn: Callable[[str], None] | None = None) -> ModelFile:  # fmt: skip
    """The version record of an ONNX file (its bytes as read, after the transfer checks).

    Args:
        blob: the file's bytes.
        url: where it came from, for messages.
        session: the graph loaded in onnxruntime (:func:`open_session`).
        name: the model name the record takes (IMPORT's); default the name the file was
            exported under, else ``model``.
        inputs: a foreign file's feature column names, one per graph column, in graph
            order (IMPORT's ``WITH (inputs = [...])``); refused for a file dbml wrote.
        warn: told the unknown keys of ``dbml.record`` that were dropped.

    Raises:
        RecordError: metadata that is not valid JSON or breaks the record schema (naming
            the field and value).
        TransferError: a graph that is not the one its metadata describes, or a foreign
            graph of inputs or outputs dbml cannot feed or read.
    """
    meta = dbml_metadata(blob)
    raw = _json_meta(meta, RECORD_KEY, url, {})
    facts, dropped = check_imported_facts(raw, url, warn)  # raw is a dict from here on
    origin = None
    if isinstance(raw.get("model"), str) and isinstance(raw.get("version"), int) and not isinstance(raw.get("version"), bool):
        try:
            origin = f"{check_model_name(raw['model'])}:{check_version(raw['version'])}"
        except DbmlError:
            origin = None  # lineage text only: a malformed origin is left out, not refused
    name = check_model_name(name) if name is not None else (origin.split(":")[0] if origin else "model")
    if "dbml.features" not in meta or "dbml.task" not in meta:
        record = _foreign_record(blob, url, session, name, facts, inputs)
        return ModelFile(record, origin, dropped, foreign=True)
    if inputs is not None:
        raise TransferError(f"'{url}' was written by dbml: its feature columns are its own; leave out option inputs")
    from dbml.tasks import task_of, trainable

    task = meta["dbml.task"]
    found = task_of(task)
    if found is None or not found.trained:
        kinds = [t.described or f"a {t.name}" for t in sorted(trainable(), key=_table_order)]
        raise RecordError(
            f"'{url}': its dbml.task metadata is {task[:80]!r}; a graph dbml trained is "
            + (", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else "".join(kinds))
        )
    record = {
        "architecture": meta.get("dbml.architecture", "imported"), "options": {}, "profile": {},
        "source_sql": f"IMPORT FROM '{url}'", "source_tables": [], "row_count": 0, "train_rows": 0,
        "validation_rows": 0, "data_fingerprint": "", "metrics": {}, "epochs": 0, "train_seconds": 0.0,
        "device": "", "library_versions": {}, "parity_error": 0.0,
        **facts,
        "model": name, "task": task, "features": _json_meta(meta, "dbml.features", url, None),
        "labels": _json_meta(meta, "dbml.labels", url, None),
        "target": meta.get("dbml.target"), "target_type": meta.get("dbml.target_type"),
        "onnx_sha256": hashlib.sha256(blob).hexdigest(), "onnx_size": len(blob), "parent_version": None,
    }  # fmt: skip
    record = validate_record(record, f"'{url}'")
    _check_graph(session, record, url)
    return ModelFile(record, origin, dropped)


def _json_meta(meta: dict[str, str], key: str, url: str, default: Any) -> Any:
    """One metadata entry decoded from JSON (``default`` when absent); a RecordError naming
    the file and the key when it is not JSON."""
    if key not in meta:
        return default
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError):
        raise RecordError(f"'{url}': its {key} metadata is not valid JSON; the file was altered or not written by dbml") from None


def _check_graph(session: Any, record: dict[str, Any], url: str) -> None:
    """The graph of a dbml file must be the one its metadata describes: one input per
    feature, of the feature's type, and the outputs its task scores with."""
    from dbml.kinds import KINDS
    from dbml.tasks import TASKS

    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    if names != [f["name"] for f in record["features"]]:
        raise TransferError(f"'{url}' has inputs {names}, which do not match its dbml.features metadata")
    for node, f in zip(inputs, record["features"]):
        wanted = f"tensor({KINDS[f['kind']].onnx_elem})"
        if node.type != wanted or len(node.shape or []) != 2:
            raise TransferError(
                f"'{url}': graph input '{node.name}' is {node.type} of rank {len(node.shape or [])}, but its "
                f"dbml.features metadata says a {f['kind']} feature ({wanted}, rank 2)"
            )
    outputs = {o.name: o for o in session.get_outputs()}
    task = TASKS[record["task"]]  # validate_record: a task of the table
    wanted = task.parity_output
    out = outputs.get(wanted)
    if out is None or out.type != "tensor(float)":
        raise TransferError(
            f"'{url}': a {record['task']} graph of dbml has a float output '{wanted}'; this one has "
            f"{', '.join(f'{o.name} ({o.type})' for o in outputs.values())}"
        )
    shape = list(out.shape or [])
    width, counted = task.parity_width(record, shape)
    if len(shape) == 1 and width == 1:  # one value per row: [N]
        return
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != width):
        raise TransferError(f"'{url}': output '{wanted}' has shape {shape}, but its metadata says {width} {counted}")


def _table_order(task: Any) -> int:
    """A task's place in the table of dbml.tasks (messages list tasks as it does)."""
    from dbml.tasks import TASKS

    return list(TASKS).index(task.name)


def _foreign_record(blob: bytes, url: str, session: Any, name: str, facts: dict[str, Any],
                    inputs: list[str] | None) -> dict[str, Any]:  # fmt: skip
    """The record of a foreign ONNX file: architecture and task ``imported``."""
    import onnx

    from dbml.registry.foreign import describe_graph
    from dbml.tasks.imported import IMPORTED

    names = inputs
    if names is None and facts.get("architecture") == IMPORTED.name:  # exported by dbml after an import
        names = (facts.get("options") or {}).get("inputs") if isinstance(facts.get("options"), dict) else None
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise RecordError(f"'{url}': field 'options.inputs' of its dbml.record is {str(names)[:80]!r}, not a list of column names")
    graph = describe_graph(session, url, names)
    proto = onnx.load_from_string(blob)
    producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p)

    record = {
        "model": name, "architecture": IMPORTED.name, "task": IMPORTED.name,
        "options": {"inputs": names, "graph_inputs": graph["graph_inputs"], "output": graph["output"],
                    "proba": graph["proba"]},
        "features": graph["features"], "profile": {}, "target": None, "target_type": graph["predict_type"],
        "labels": None, "source_sql": f"IMPORT FROM '{url}'", "source_tables": [], "row_count": 0,
        "train_rows": 0, "validation_rows": 0, "data_fingerprint": "", "metrics": {"outputs": graph["outputs"]},
        "epochs": 0, "train_seconds": 0.0, "device": "",
        "library_versions": {"producer": producer[:1000], "ir_version": proto.ir_version,
                             "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import}},
        "onnx_sha256": hashlib.sha256(blob).hexdigest(), "onnx_size": len(blob), "parity_error": 0.0,
        "parent_version": None,
    }  # fmt: skip
    return validate_record(record, f"'{url}'")
