"""Every error dbml raises on purpose. Each message names the thing at fault and what to do."""

from __future__ import annotations

__all__ = [
    "DbmlError",
    "DbmlSyntaxError",
    "InvalidNameError",
    "ModelNotFoundError",
    "VersionNotFoundError",
    "OptionError",
    "SourceError",
    "TargetError",
    "FeatureError",
    "TrainingError",
    "ExportError",
    "IntegrityError",
    "TransferError",
    "RecordError",
    "RegistrySchemaError",
    "UnsafeGraphError",
    "CorruptBlobError",
    "ResourceLimitError",
    "ScoringError",
]


class DbmlError(Exception):
    """Base class of dbml's errors; the message always starts with ``dbml:``."""

    def __init__(self, message: str):
        if not message.startswith("dbml:"):
            message = f"dbml: {message}"
        super().__init__(message)


class DbmlSyntaxError(DbmlError):
    """An ML statement that the dbml dialect cannot parse."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None, token: str | None = None):
        self.line, self.col, self.token = line, col, token
        super().__init__(message)


class InvalidNameError(DbmlError):
    """A model name that is not a plain SQL identifier."""


class ModelNotFoundError(DbmlError):
    """A model name with no version in the registry."""


class VersionNotFoundError(ModelNotFoundError):
    """A model exists but not the version asked for."""


class OptionError(DbmlError):
    """An unknown option, an option of the wrong type, or a value out of range."""


class SourceError(DbmlError):
    """The FROM source of TRAIN MODEL cannot be read, or holds no usable rows; or the data
    given to :func:`dbml.score` is of a kind it does not read."""


class TargetError(DbmlError):
    """The TARGET column is missing or unusable."""


class FeatureError(DbmlError):
    """A feature column is missing, or of a type no architecture takes."""


class TrainingError(DbmlError):
    """Training failed (for example the loss diverged); nothing was saved."""


class ExportError(DbmlError):
    """The ONNX graph could not be built or disagrees with torch; nothing was saved."""


class IntegrityError(DbmlError):
    """A stored blob whose size or sha256 no longer matches the registry."""


class TransferError(DbmlError):
    """EXPORT or IMPORT: a file that cannot be written or read, is too large, or is not ONNX."""


class RecordError(DbmlError):
    """A version record (a registry row, or the facts of an imported file) that breaks
    the declared schema of :mod:`dbml.registry.records`; the message names the field and value."""


class RegistrySchemaError(DbmlError):
    """A registry this dbml cannot use: a newer schema version than it knows, or a
    read-only database where the registry would have to be created or upgraded."""


class UnsafeGraphError(TransferError):
    """An ONNX graph dbml will not load: external data, an operator outside the standard
    ONNX domains, a loop without a small constant trip count, or a tensor over the size
    bounds of :mod:`dbml.registry.graphcheck`."""


class CorruptBlobError(IntegrityError):
    """A stored blob whose digest matches the registry but that is not a graph onnxruntime
    can load: the registry row itself was changed (the digest proves integrity, not origin)."""


class ResourceLimitError(DbmlError):
    """PREDICT of a version ran past a bound of :mod:`dbml.runtime` (memory, time or output
    size for one batch); the query was stopped."""


class ScoringError(DbmlError):
    """onnxruntime failed on one batch of PREDICT for a reason other than a bound."""
