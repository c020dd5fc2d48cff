"""EXPORT and IMPORT of ONNX files through fsspec (local paths, file://, memory://,
s3:// and the rest when their backend is installed).

An exported file carries its registry facts (lineage, metrics, profile) in its
metadata, so importing it elsewhere restores the same model with its history.
Reading is bounded in size and accepts only ONNX: nothing is ever unpickled.
"""

from __future__ import annotations

import json
from typing import Any

import fsspec
import onnx

from dbml.errors import TransferError

__all__ = ["MAX_IMPORT_BYTES", "write_url", "read_url", "with_metadata", "dbml_metadata", "RECORD_KEY"]

MAX_IMPORT_BYTES = 512 * 1024 * 1024
RECORD_KEY = "dbml.record"
# registry facts an exported file carries (the ONNX graph itself carries features, task, labels)
EXPORTED_FACTS = (
    "model", "version", "created_at", "created_by", "architecture", "task", "options", "features", "profile",
    "target", "target_type", "labels", "source_sql", "source_tables", "row_count", "train_rows",
    "validation_rows", "data_fingerprint", "metrics", "epochs", "train_seconds", "device",
    "library_versions", "parity_error", "parent_version",
)  # fmt: skip


def write_url(url: str, data: bytes) -> None:
    """Write bytes to an fsspec URL or local path."""
    try:
        with fsspec.open(url, "wb") as f:
            f.write(data)
    except Exception as err:  # fsspec backends raise many types
        raise TransferError(f"cannot write '{url}': {type(err).__name__}: {err}") from None


def read_url(url: str, max_bytes: int = MAX_IMPORT_BYTES) -> bytes:
    """Read an ONNX file from an fsspec URL or local path.

    Raises:
        TransferError: unreadable, larger than ``max_bytes`` (checked before reading),
            or not an ONNX model.
    """
    try:
        fs, path = fsspec.core.url_to_fs(url)
        size = fs.size(path)
        if size is not None and size > max_bytes:
            raise TransferError(f"'{url}' has {size:,} bytes, over the import limit of {max_bytes:,} (option max_size)")
        with fs.open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except TransferError:
        raise
    except Exception as err:
        raise TransferError(f"cannot read '{url}': {type(err).__name__}: {err}") from None
    if len(data) > max_bytes:
        raise TransferError(f"'{url}' is over the import limit of {max_bytes:,} bytes (option max_size)")
    try:
        proto = onnx.load_from_string(data)
        onnx.checker.check_model(proto)
    except Exception:
        raise TransferError(f"'{url}' is not a valid ONNX model") from None
    if not proto.graph.input or not proto.graph.output:
        raise TransferError(f"'{url}' is an ONNX file without graph inputs or outputs")
    return data


def with_metadata(blob: bytes, record: dict[str, Any]) -> bytes:
    """The blob with the version's registry facts added under ``dbml.record``."""
    proto = onnx.load_from_string(blob)
    facts = {k: record.get(k) for k in EXPORTED_FACTS}
    for entry in list(proto.metadata_props):
        if entry.key == RECORD_KEY:
            proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = RECORD_KEY, json.dumps(facts, default=str)
    return proto.SerializeToString()


def dbml_metadata(blob: bytes) -> dict[str, str]:
    """The graph's metadata entries (empty for a file dbml did not write)."""
    proto = onnx.load_from_string(blob)
    return {p.key: p.value for p in proto.metadata_props}
