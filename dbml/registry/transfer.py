"""EXPORT and IMPORT of ONNX files through fsspec (local paths, file://, memory://,
s3:// and the rest when their backend is installed).

An exported file carries its registry facts (lineage, metrics, profile) in its
metadata, so importing it elsewhere restores the same model with its history.
Reading is bounded in size and accepts only ONNX: nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

import fsspec
import onnx
from fsspec.implementations.local import LocalFileSystem

from dbml.errors import IntegrityError, TransferError

__all__ = ["MAX_IMPORT_BYTES", "write_url", "read_url", "fetch", "checked_onnx", "with_metadata", "dbml_metadata", "RECORD_KEY"]

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
    """Write bytes to an fsspec URL or local path, whole or not at all, and verify them.

    On a local file system the bytes go to a temporary file beside the target
    (``.<name>.<random>.partial``, same directory, so the same file system), are
    flushed to disk, and the file is renamed over the target (``os.replace``, atomic
    on POSIX and Windows). A crash or an error before the rename leaves the old file,
    if any, untouched, and nothing under the target's name but the old file; a
    leftover ``.partial`` file may stay after a crash and can be deleted.

    Other file systems (s3://, gcs://, az://, memory://, ...) have no atomic rename;
    the bytes are uploaded as one whole object (``pipe_file``), which object stores
    make visible only once complete: a crash leaves the old object or none, never a
    truncated one. (On a non-object remote file system, such as sftp, the write is
    in place.)

    Afterwards the target is read back and its size and sha256 are compared with the
    bytes written.

    Raises:
        TransferError: the target cannot be written, or does not read back as written
            (naming the URL).
    """
    try:
        fs, path = fsspec.core.url_to_fs(url)
        if isinstance(fs, LocalFileSystem):
            _write_local(path, data)
        else:
            fs.pipe_file(path, data)
    except Exception as err:  # fsspec backends raise many types
        raise TransferError(f"cannot write '{url}': {type(err).__name__}: {err}") from None
    try:
        written = fs.cat_file(path)
    except Exception as err:
        raise TransferError(f"wrote '{url}' but cannot read it back to verify it: {type(err).__name__}: {err}") from None
    if len(written) != len(data) or hashlib.sha256(written).digest() != hashlib.sha256(data).digest():
        raise TransferError(
            f"'{url}' does not read back as written ({len(written):,} bytes, {len(data):,} written): "
            "the file system changed or lost it; export again"
        )


def _write_local(path: str, data: bytes) -> None:
    """Temporary file beside ``path``, fsync, atomic rename, fsync of the directory."""
    folder, base = os.path.split(os.path.abspath(path))
    temp = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:12]}.partial")
    try:
        with open(temp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException as err:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(err, OSError) and err.strerror:  # name the target, not the hidden temporary file
            raise type(err)(err.errno, err.strerror, path) from None
        raise
    try:  # make the rename itself durable (POSIX; not possible on every platform)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_url(url: str, max_bytes: int = MAX_IMPORT_BYTES) -> bytes:
    """Read an ONNX file from an fsspec URL or local path: :func:`fetch`, then
    :func:`checked_onnx`.

    Raises:
        TransferError: unreadable, larger than ``max_bytes`` (checked before reading),
            or not an ONNX model.
    """
    data, fs, path = fetch(url, max_bytes)
    return checked_onnx(data, url, max_bytes, fs, path)


def fetch(url: str, max_bytes: int = MAX_IMPORT_BYTES) -> tuple[bytes, Any, str]:
    """(the bytes, the fsspec file system, the path on it) of the file at ``url``,
    nothing parsed.

    Raises:
        TransferError: unreadable, or larger than ``max_bytes`` (checked before reading).
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
    return data, fs, path


def checked_onnx(data: bytes, url: str, max_bytes: int = MAX_IMPORT_BYTES, fs: Any = None, path: str | None = None) -> bytes:
    """The bytes of an ONNX model, checked as IMPORT checks a file: ONNX only (never
    unpickled), the ONNX checker, graph inputs and outputs, :func:`dbml.registry.graphcheck.check_graph`.
    External data beside the model (on ``fs`` next to ``path``) goes inside the bytes
    returned; without ``fs`` (bytes given in memory) :func:`check_graph` refuses it.

    Raises:
        TransferError: not an ONNX model, or a graph dbml will not load (naming ``url``).
    """
    from dbml.registry import graphcheck  # what a graph may do: no outside files, standard operators, bounded sizes

    try:
        proto = onnx.load_from_string(data)
    except Exception:
        raise TransferError(f"'{url}' is not a valid ONNX model") from None
    # data kept beside the model goes inside the stored blob; anything else is refused
    if fs is not None and graphcheck.inline_external_data(proto, fs, path, url, max_bytes - len(data)):
        try:
            data = proto.SerializeToString()
        except Exception as err:  # protobuf's 2 GiB limit
            raise TransferError(f"'{url}' with its external data inside is too large for one ONNX file: {err}") from None
    try:
        onnx.checker.check_model(proto)
    except Exception as err:
        raise TransferError(f"'{url}' is not a valid ONNX model: {err}") from None
    if not proto.graph.input or not proto.graph.output:
        raise TransferError(f"'{url}' is an ONNX file without graph inputs or outputs")
    graphcheck.check_graph(proto, f"'{url}'", infer=True, file_bytes=len(data))
    return data


def with_metadata(blob: bytes, record: dict[str, Any], what: str | None = None) -> bytes:
    """The blob with the version's registry facts added under ``dbml.record``.

    Raises:
        IntegrityError: the blob is not a readable ONNX graph (naming ``what``, the
            model version), as when it was changed together with its recorded sha256.
    """
    try:
        proto = onnx.load_from_string(blob)
    except Exception as err:  # protobuf's DecodeError and friends
        who = what or f"model '{record.get('model')}' version {record.get('version')}"
        raise IntegrityError(
            f"the ONNX blob of {who} matches its recorded size and sha256 but is not a readable ONNX graph "
            f"({type(err).__name__}: {err}); the blob and its registry row were changed together: "
            "train or import that version again, or drop it"
        ) from None
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
