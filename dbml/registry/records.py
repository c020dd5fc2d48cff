"""The declared schema of a version record: one place that says what a registry row
of ``dbml.model_versions`` holds, and one function that checks a record against it.

A record is checked where it crosses into dbml: when :meth:`dbml.registry.Registry.get`
reads a stored row, when :meth:`~dbml.registry.Registry.add_version` is about to write
one, and when IMPORT MODEL builds one from a file's own metadata (``dbml.record``,
``dbml.features``, ``dbml.task``, ``dbml.labels``, ``dbml.target_type``). Code past that
boundary (features, UDFs, MONITOR, EVALUATE, lifecycle) may take every fact for granted:
``features`` is a list of ``{name, kind, sql_type[, onnx_input]}``, ``labels`` a list of
scalars of the target's type, ``options`` a dict, every number in range, every string
bounded.

The column list of the registry's INSERT and SELECT is :data:`VERSION_COLUMNS`, declared
here to match ``sql/001_registry.sql`` (a test compares it with DuckDB's catalog): no
key of a record ever becomes SQL text.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any, Callable

from dbml.errors import RecordError

# the kinds (and with them numpy and pyarrow) load when a record is checked, not when the
# registry's column names are read

__all__ = [
    "VERSION_COLUMNS", "JSON_COLUMNS", "TASKS", "IMPORTED_FACTS", "validate_record", "check_imported_facts",
    "decode_row", "MAX_FEATURES", "MAX_LABELS", "Check", "check_target", "check_class_target", "check_no_target",
    "check_foreign_target", "check_class_labels", "check_no_labels",
]  # fmt: skip

# The columns of dbml.model_versions, in the order of sql/001_registry.sql.
VERSION_COLUMNS: tuple[str, ...] = (
    "model", "version", "created_at", "created_by", "architecture", "task", "options", "features", "profile",
    "target", "target_type", "labels", "source_sql", "source_tables", "row_count", "train_rows",
    "validation_rows", "data_fingerprint", "metrics", "epochs", "train_seconds", "device",
    "library_versions", "onnx_sha256", "onnx_size", "parity_error", "parent_version",
    "base_model", "base_version",  # sql/004_transfer.sql
)  # fmt: skip
JSON_COLUMNS = ("options", "features", "profile", "labels", "metrics", "library_versions")
# Keys an exported file's dbml.record may carry that IMPORT keeps (the rest of the
# record is the importing registry's own: name, number, time, user, parent).
IMPORTED_FACTS = (
    "architecture", "options", "profile", "source_sql", "source_tables", "row_count", "train_rows",
    "validation_rows", "data_fingerprint", "metrics", "epochs", "train_seconds", "device", "library_versions",
    "parity_error",
)  # fmt: skip
# Keys of dbml.record that IMPORT reads elsewhere or replaces (the graph's own metadata,
# the importing registry's numbering): accepted, not kept from the record.
_REPLACED_FACTS = (
    "model", "version", "created_at", "created_by", "task", "features", "target", "target_type", "labels",
    "parent_version", "onnx_sha256", "onnx_size", "base_model", "base_version",
)  # fmt: skip

MAX_FEATURES = 10_000
MAX_LABELS = 100_000
MAX_VOCABULARY = 1_000_000
MAX_NAME = 1_000  # a column, target, alias of output name
MAX_TEXT = 1_000_000  # source SQL
MAX_LABEL_TEXT = 10_000
MAX_JSON_BYTES = 16 * 1024 * 1024  # one JSON column (profiles carry vocabularies)
MAX_SMALL_JSON_BYTES = 1024 * 1024  # options, metrics, library versions
MAX_DEPTH = 16
INT32 = 2**31 - 1
INT64 = 2**63 - 1

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A DuckDB type name as dbml writes one: words, optional (p[, s]), optional [] suffixes.
_TYPE = re.compile(r"^[A-Z][A-Z0-9_]*(?: [A-Z][A-Z0-9_]*)*(?:\(\d{1,3}(?:, ?\d{1,3})?\))?(?:\[\d{0,7}\])*$")
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_IMPORTED_TYPES = {"DOUBLE", "BIGINT", "VARCHAR", "BOOLEAN"}
_INPUT_DTYPES = {"float32", "float64", "int64", "int32", "bool", "string"}
_FEATURE_KEYS = {"name", "kind", "sql_type", "onnx_input", "rule"}


class _Check:
    """Field checks that raise a RecordError naming the record, the field and the value
    (public as :data:`Check` for the record checks of :mod:`dbml.tasks`)."""

    def __init__(self, what: str):
        self.what = what

    def fail(self, path: str, value: Any, rule: str) -> RecordError:
        return RecordError(f"{self.what}: field '{path}' is {_shown(value)}, which is not {rule}")

    def text(self, v: Any, path: str, max_len: int = MAX_NAME, *, empty: bool = False, none: bool = False) -> Any:
        if v is None and none:
            return None
        if not isinstance(v, str) or len(v) > max_len or (not empty and not v):
            raise self.fail(path, v, f"{'a' if empty else 'a non-empty'} string of at most {max_len:,} characters"
                            + (" (or null)" if none else ""))  # fmt: skip
        return v

    def integer(self, v: Any, path: str, lo: int = 0, hi: int = INT64, *, none: bool = False) -> Any:
        if v is None and none:
            return None
        if isinstance(v, float) and v.is_integer() and lo <= v <= hi:
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(path, v, f"a whole number between {lo:,} and {hi:,}" + (" (or null)" if none else ""))
        return v

    def number(self, v: Any, path: str, *, lo: float | None = None, none: bool = False, finite: bool = True) -> Any:
        if v is None and none:
            return None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok and finite and not math.isfinite(v):
            ok = False
        if ok and lo is not None and not v >= lo:
            ok = False
        if not ok:
            rule = "a finite number" if finite else "a number"
            raise self.fail(path, v, rule + (f" >= {lo}" if lo is not None else "") + (" (or null)" if none else ""))
        return float(v)

    def numbers(self, v: Any, path: str, max_len: int, *, none_items: bool = False) -> list[float | None]:
        if not isinstance(v, list) or len(v) > max_len:
            raise self.fail(path, v, f"a list of at most {max_len:,} numbers")
        return [self.number(x, f"{path}[{i}]", none=none_items) for i, x in enumerate(v)]

    def texts(self, v: Any, path: str, max_len: int, item_len: int = MAX_NAME, *, empty: bool = True) -> list[str]:
        if not isinstance(v, list) or len(v) > max_len:
            raise self.fail(path, v, f"a list of at most {max_len:,} strings")
        return [self.text(x, f"{path}[{i}]", item_len, empty=empty) for i, x in enumerate(v)]

    def mapping(self, v: Any, path: str, max_bytes: int = MAX_SMALL_JSON_BYTES, *, none: bool = False) -> Any:
        if v is None and none:
            return None
        if not isinstance(v, dict):
            raise self.fail(path, v, "a JSON object" + (" (or null)" if none else ""))
        self.json_value(v, path, max_bytes)
        return v

    def json_value(self, v: Any, path: str, max_bytes: int) -> None:
        """Plain JSON (objects with string keys, lists, strings, numbers, booleans, null),
        at most MAX_DEPTH deep and ``max_bytes`` long once written."""
        budget = [max_bytes]

        def walk(x: Any, depth: int, at: str) -> None:
            if depth > MAX_DEPTH:
                raise self.fail(at, "...", f"nested at most {MAX_DEPTH} deep")
            budget[0] -= 8
            if isinstance(x, dict):
                for k, item in x.items():
                    if not isinstance(k, str):
                        raise self.fail(at, k, "an object with string keys")
                    budget[0] -= len(k)
                    walk(item, depth + 1, f"{at}.{k}" if len(at) < 200 else at)
            elif isinstance(x, list):
                for i, item in enumerate(x):
                    walk(item, depth + 1, f"{at}[{i}]" if len(at) < 200 else at)
            elif isinstance(x, str):
                budget[0] -= len(x)
            elif x is not None and not isinstance(x, (bool, int, float)):
                raise self.fail(at, x, "a JSON value")
            if budget[0] < 0:
                raise self.fail(path, "...", f"at most {max_bytes:,} bytes of JSON")

        walk(v, 0, path)

    def sql_type(self, v: Any, path: str) -> str:
        if not isinstance(v, str) or len(v) > 64 or not _TYPE.match(v.upper()):
            raise self.fail(path, v, "a DuckDB type name such as DOUBLE, VARCHAR or DECIMAL(6,2)")
        return v


Check = _Check


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _label_kind(target_type: str) -> str:
    """How the labels of a class target are stored: bool, int or str (as training writes them)."""
    t = target_type.upper()
    if t == "BOOLEAN":
        return "bool"
    if t in _INTEGER_TYPES:
        return "int"
    return "str"


def _features(c: _Check, value: Any, task: str) -> list[dict[str, Any]]:
    from dbml.features import ONNX_INPUT
    from dbml.kinds import get_kind

    if not isinstance(value, list) or not 1 <= len(value) <= MAX_FEATURES:
        raise c.fail("features", value, f"a list of 1 to {MAX_FEATURES:,} feature objects")
    out, seen = [], set()
    for i, f in enumerate(value):
        at = f"features[{i}]"
        if not isinstance(f, dict):
            raise c.fail(at, f, "an object {name, kind, sql_type}")
        unknown = sorted(set(f) - _FEATURE_KEYS, key=str)
        if unknown:
            raise c.fail(f"{at}.{unknown[0]}", f[unknown[0]], "a known key (name, kind, sql_type, onnx_input, rule)")
        name = c.text(f.get("name"), f"{at}.name")
        if name.lower() in seen:
            raise c.fail(f"{at}.name", name, "a name no other feature has")
        seen.add(name.lower())
        kind = f.get("kind")
        known = get_kind(kind)
        if known is None:
            raise c.fail(f"{at}.kind", kind, f"one of {', '.join(ONNX_INPUT)}")
        sql_type = c.sql_type(f.get("sql_type"), f"{at}.sql_type")
        if not known.valid_type(sql_type.upper()):
            raise c.fail(f"{at}.sql_type", sql_type, f"a type of a {kind} feature")
        entry = {"name": name, "kind": kind, "sql_type": sql_type}
        if f.get("rule") is not None:  # the rule that chose the kind, when not the type (records before rules have none)
            entry["rule"] = c.text(f["rule"], f"{at}.rule")
        if "onnx_input" in f and f["onnx_input"] is not None:
            entry["onnx_input"] = c.text(f["onnx_input"], f"{at}.onnx_input")
        elif _foreign(task):
            raise c.fail(f"{at}.onnx_input", None, "the graph input of a feature of an imported model")
        out.append(entry)
    return out


def _profile(c: _Check, value: Any, features: list[dict[str, Any]], task: str) -> dict[str, Any]:
    from dbml.kinds import get_kind

    if not isinstance(value, dict):
        raise c.fail("profile", value, "a JSON object keyed by feature name")
    names = {f["name"]: f for f in features}
    unknown = [k for k in value if k not in names]
    if unknown:
        raise c.fail(f"profile.{str(unknown[0])[:80]}", value[unknown[0]], "the profile of one of the model's features")
    out = {}
    for name, f in names.items():
        entry = value.get(name)
        at = f"profile.{name}"
        if entry is None:
            if not _foreign(task):  # a trained version: fine-tuning rebuilds preprocessing from it
                raise c.fail(at, None, f"the training profile of {f['kind']} feature '{name}'")
            continue
        if not isinstance(entry, dict):
            raise c.fail(at, entry, "an object of statistics")
        c.json_value(entry, at, MAX_JSON_BYTES)
        clean = dict(entry)
        for key in ("count", "nulls", "distinct"):
            if key in entry:
                clean[key] = c.integer(entry[key], f"{at}.{key}")
        clean = get_kind(f["kind"]).check_profile(c, clean, at)  # its shape is the kind's (a kind _features knows)
        out[name] = clean
    return out


def check_no_labels(c: _Check, value: Any, task: str) -> None:
    """A task without class labels: ``labels`` must be null."""
    if value is not None:
        raise c.fail("labels", value, f"null (a {task} model has no class labels)")
    return None


def check_class_labels(c: _Check, value: Any, target_type: str | None) -> list[Any]:
    """Class labels: 2 to MAX_LABELS distinct scalars of the target's type (as training writes them)."""
    from dbml.kinds import clock

    if not isinstance(value, list) or not 2 <= len(value) <= MAX_LABELS:
        raise c.fail("labels", value, f"a list of 2 to {MAX_LABELS:,} class labels")
    kind = _label_kind(target_type or "VARCHAR")
    for i, label in enumerate(value):
        at = f"labels[{i}]"
        if kind == "bool" and not isinstance(label, bool):
            raise c.fail(at, label, f"a boolean (the target type is {target_type})")
        if kind == "int":
            c.integer(label, at, -(2**63), INT64)
        if kind == "str":
            c.text(label, at, MAX_LABEL_TEXT, empty=True)
    if kind == "str" and (target_type or "").upper() in clock.LABEL_TYPES:  # PREDICT casts them back to the target's type
        t = target_type.upper()
        for i, label in enumerate(value):
            try:
                clock.label_value(label, t)
            except ValueError:
                rule = f"a {t} as DuckDB writes one (the target type is {target_type})"
                raise c.fail(f"labels[{i}]", label, rule) from None
    fields = ["true" if v is True else "false" if v is False else str(v) for v in value]
    if len(set(fields)) != len(fields):
        raise c.fail("labels", value, "a list of distinct labels")
    return [int(v) if kind == "int" else v for v in value]


def check_target(c: _Check, r: dict[str, Any]) -> str:
    """A supervised version's target: a column name and a DuckDB type (returned)."""
    r["target"] = c.text(r.get("target"), "target")
    return c.sql_type(r.get("target_type"), "target_type")


def check_class_target(c: _Check, target_type: str) -> None:
    """A class target is not a float or decimal column."""
    if target_type.upper() in _FLOAT_TYPES or target_type.upper().startswith("DECIMAL"):
        raise c.fail("target_type", target_type, "the type of a class target (an integer, boolean or text type)")


def check_no_target(c: _Check, r: dict[str, Any], rule: str) -> None:
    """A version that learns without a target: ``target`` and ``target_type`` null."""
    if r.get("target") is not None or r.get("target_type") is not None:
        raise c.fail("target", r.get("target"), rule)
    r["target"] = r["target_type"] = None


def check_foreign_target(c: _Check, r: dict[str, Any]) -> None:
    """A foreign graph's: an optional target name, and the type PREDICT returns as ``target_type``."""
    r["target"] = c.text(r.get("target"), "target", none=True)
    t = r.get("target_type")
    if not isinstance(t, str) or (t[:-2] if t.endswith("[]") else t) not in _IMPORTED_TYPES:
        raise c.fail("target_type", t, f"the type PREDICT returns: one of {', '.join(sorted(_IMPORTED_TYPES))}, or a list of one")


def _task(name: Any):
    """The task a record names (:func:`dbml.tasks.task_of`), or None."""
    from dbml.tasks import task_of

    return task_of(name)


def _foreign(name: Any) -> bool:
    """Whether a record of this task holds a graph made elsewhere (features name graph
    inputs, no training profile)."""
    task = _task(name)
    return task is not None and task.foreign


def __getattr__(name: str) -> Any:
    if name == "TASKS":  # the task names a record may carry, from the table of dbml.tasks
        from dbml.tasks import TASKS

        return tuple(TASKS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _imported_options(c: _Check, value: dict[str, Any], features: list[dict[str, Any]]) -> None:
    """The graph layout of a foreign model (see :func:`dbml.registry.foreign.describe_graph`)."""
    names = {f["name"] for f in features}
    graph_inputs = value.get("graph_inputs")
    if not isinstance(graph_inputs, list) or not 1 <= len(graph_inputs) <= MAX_FEATURES:
        raise c.fail("options.graph_inputs", graph_inputs, "a list of graph inputs")
    fed = []
    for i, g in enumerate(graph_inputs):
        at = f"options.graph_inputs[{i}]"
        if not isinstance(g, dict):
            raise c.fail(at, g, "an object {name, dtype, shape, columns}")
        c.text(g.get("name"), f"{at}.name")
        if g.get("dtype") not in _INPUT_DTYPES:
            raise c.fail(f"{at}.dtype", g.get("dtype"), f"one of {', '.join(sorted(_INPUT_DTYPES))}")
        shape = g.get("shape")
        if not isinstance(shape, list) or len(shape) not in (1, 2):
            raise c.fail(f"{at}.shape", shape, "a shape of rank 1 or 2")
        columns = c.texts(g.get("columns"), f"{at}.columns", MAX_FEATURES, empty=False)
        if not columns or any(n not in names for n in columns):
            raise c.fail(f"{at}.columns", columns, "feature names of the model")
        fed += columns
    if sorted(fed) != sorted(names):
        raise c.fail("options.graph_inputs", graph_inputs, "a layout that feeds every feature once")
    output = value.get("output")
    if not isinstance(output, dict) or not isinstance(output.get("list", False), bool):
        raise c.fail("options.output", output, "an object {name, type, list}")
    c.text(output.get("name"), "options.output.name")
    proba = value.get("proba")
    if proba is not None:
        if not isinstance(proba, dict):
            raise c.fail("options.proba", proba, "an object {name, fields} or null")
        c.text(proba.get("name"), "options.proba.name")
        fields = c.texts(proba.get("fields"), "options.proba.fields", MAX_LABELS, empty=False)
        if len(fields) < 2 or len(set(fields)) != len(fields):
            raise c.fail("options.proba.fields", fields, "two or more distinct field names")
    if value.get("inputs") is not None:
        c.texts(value["inputs"], "options.inputs", MAX_FEATURES, empty=False)


def _trained_options(c: _Check, value: dict[str, Any]) -> dict[str, Any]:
    """The options a network's scoring and FORECAST read back (the forecasting options of
    dbml.tasks.forecast, which every lstm or gru version stores), when present."""
    out = dict(value)
    if out.get("horizon") is not None:
        out["horizon"] = c.integer(out["horizon"], "options.horizon", 1, 1_000)
    if out.get("window") is not None:
        out["window"] = c.integer(out["window"], "options.window", 0, 10_000)
    if out.get("time") is not None:
        c.text(out["time"], "options.time", empty=True)
    if out.get("series") is not None:
        c.texts(out["series"], "options.series", MAX_FEATURES, empty=False)
    return out


def _metrics(c: _Check, value: Any) -> dict[str, Any]:
    c.mapping(value, "metrics")
    dist = value.get("prediction_distribution")
    if dist is not None:
        if not isinstance(dist, dict):
            raise c.fail("metrics.prediction_distribution", dist, "an object")
        if "shares" in dist:
            c.numbers(dist["shares"], "metrics.prediction_distribution.shares", MAX_LABELS + 1)
        if "edges" in dist:
            c.numbers(dist["edges"], "metrics.prediction_distribution.edges", 1_000)
        if "labels" in dist:
            c.texts(dist["labels"], "metrics.prediction_distribution.labels", MAX_LABELS, MAX_LABEL_TEXT)
    return value


def validate_record(record: dict[str, Any], what: str) -> dict[str, Any]:
    """A checked copy of a version record holding exactly :data:`VERSION_COLUMNS`.

    Args:
        record: the record, JSON columns decoded (a registry row, or one IMPORT or
            training built). ``version``, ``created_at`` and ``created_by`` may be absent
            (the registry sets them when it stores the record).
        what: names the record in messages ("model 'churn' version 3", "'file.onnx'").

    Raises:
        RecordError: naming the first field that breaks the schema, its value and the rule.
    """
    c = _Check(what)
    if not isinstance(record, dict):
        raise RecordError(f"{what}: a version record must be a JSON object, got {_shown(record)}")
    unknown = [k for k in record if k not in VERSION_COLUMNS]
    if unknown:
        raise RecordError(f"{what}: unknown field {_shown(unknown[0])} in the version record; "
                          f"its fields are {', '.join(VERSION_COLUMNS)}")  # fmt: skip
    r = dict(record)
    model = r.get("model")
    if not isinstance(model, str) or not _IDENT.match(model):
        raise c.fail("model", model, "a model name (letters, digits and _, at most 63 characters)")
    r["model"] = model.lower()
    r["version"] = c.integer(r.get("version"), "version", 1, INT32, none=True)
    if r.get("created_at") is not None and not isinstance(r["created_at"], datetime):
        raise c.fail("created_at", r["created_at"], "a timestamp")
    r["created_by"] = c.text(r.get("created_by"), "created_by", empty=True, none=True)
    arch = r.get("architecture")
    if not isinstance(arch, str) or not _IDENT.match(arch):
        raise c.fail("architecture", arch, "an architecture name such as mlp or imported")
    task = r.get("task")
    found = _task(task)
    if found is None:
        from dbml.tasks import TASKS

        raise c.fail("task", task, f"one of {', '.join(TASKS)}")
    features = r["features"] = _features(c, r.get("features"), task)
    r["options"] = c.mapping(r.get("options"), "options")
    if found.foreign:
        _imported_options(c, r["options"], features)
    else:
        r["options"] = _trained_options(c, r["options"])
    r["profile"] = _profile(c, r.get("profile"), features, task)
    found.check_target(c, r)  # target and target_type, as the task has them
    r["labels"] = found.check_labels(c, r.get("labels"), r.get("target_type"))
    r["source_sql"] = c.text(r.get("source_sql"), "source_sql", MAX_TEXT, empty=True)
    r["source_tables"] = c.texts(r.get("source_tables"), "source_tables", MAX_FEATURES)
    for key in ("row_count", "train_rows", "validation_rows"):
        r[key] = c.integer(r.get(key), key)
    r["data_fingerprint"] = c.text(r.get("data_fingerprint"), "data_fingerprint", 256, empty=True)
    r["metrics"] = _metrics(c, r.get("metrics"))
    r["epochs"] = c.integer(r.get("epochs"), "epochs", 0, INT32)
    r["train_seconds"] = c.number(r.get("train_seconds"), "train_seconds", lo=0.0)
    r["device"] = c.text(r.get("device"), "device", 64, empty=True)
    r["library_versions"] = c.mapping(r.get("library_versions"), "library_versions")
    sha = r.get("onnx_sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise c.fail("onnx_sha256", sha, "a sha256 digest (64 lower-case hex digits)")
    r["onnx_size"] = c.integer(r.get("onnx_size"), "onnx_size", 1)
    r["parity_error"] = c.number(r.get("parity_error"), "parity_error", lo=0.0, finite=False)
    r["parent_version"] = c.integer(r.get("parent_version"), "parent_version", 1, INT32, none=True)
    base = r.get("base_model")
    if base is not None and (not isinstance(base, str) or not _IDENT.match(base)):
        raise c.fail("base_model", base, "a model name (or null)")
    r["base_version"] = c.integer(r.get("base_version"), "base_version", 1, INT32, none=True)
    if (base is None) != (r["base_version"] is None):
        raise c.fail("base_version", r["base_version"], "set exactly when base_model is")
    return {k: r.get(k) for k in VERSION_COLUMNS}


def decode_row(row: dict[str, Any], what: str) -> dict[str, Any]:
    """A registry row with its JSON columns decoded; a RecordError for text that is not JSON."""
    out = dict(row)
    for key in JSON_COLUMNS:
        value = out.get(key)
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except ValueError:
                raise RecordError(f"{what}: column '{key}' of its registry row is not valid JSON") from None
    return out


def check_imported_facts(facts: Any, url: str, warn: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The facts of an exported file (its ``dbml.record``) that IMPORT keeps, and the
    names of the keys it dropped.

    Keys of :data:`IMPORTED_FACTS` are kept (their values are checked with the whole
    record by :func:`validate_record`); keys IMPORT takes from elsewhere are accepted
    and not kept; any other key that is a plain identifier (a fact a newer dbml may
    write) is dropped and named. Any other key is refused.

    Raises:
        RecordError: ``dbml.record`` is not a JSON object, or has a key that is not a
            plain identifier (naming it).
    """
    if not isinstance(facts, dict):
        raise RecordError(f"'{url}': its dbml.record metadata must be a JSON object, got {_shown(facts)}")
    kept, dropped = {}, []
    for key, value in facts.items():
        if key in IMPORTED_FACTS:
            kept[key] = value
        elif key in _REPLACED_FACTS:
            continue
        elif isinstance(key, str) and _IDENT.match(key):
            dropped.append(key)
        else:
            raise RecordError(
                f"'{url}': its dbml.record metadata has the key {_shown(key)}, which is not a field of a "
                "version record; the file was not written by dbml's EXPORT or was altered: nothing was imported"
            )
    if dropped and warn is not None:
        warn(f"dbml: '{url}': dropped unknown field(s) {', '.join(dropped)} of its dbml.record metadata")
    return kept, dropped
