"""Column kinds: everything that depends on what a feature column holds.

A kind owns, for its columns: detection from the DuckDB type, the SQL that encodes a
raw column at training and in PREDICT (one expression for both), its twin on raw Arrow
columns for engines that are not DuckDB (the same values, to the float32 bit, and the
same refusals), the profile DuckDB computes, the ONNX input and the UDF parameter type,
the Arrow -> ONNX feed, the Arrow -> tensor conversion at training, the ONNX front
nodes and the torch encoder. Nothing outside this package branches on a kind.

Columns of one *group* become one tensor: the scalar kinds (numeric, boolean,
datetime) share the group ``numbers`` (one [N, F] float tensor, standardised in one
step), categories share ``categories`` ([N, C] int64 codes, one embedding table per
column), and each array or sequence column is a group of its own ([N, L] floats).
The model is encoders (one per group) -> combiner -> trunk -> task head; a batch is a
dict {group: tensor}.

Only :meth:`Kind.encoder` needs torch and only :meth:`Kind.udf_type` and
:meth:`Kind.profile` need DuckDB; they import it when called, so scoring runs in a
process without either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pyarrow as pa

from dbml.errors import FeatureError

if TYPE_CHECKING:
    import duckdb
    from sqlglot import exp

    from dbml.features import FeatureSpec

__all__ = ["Kind", "KINDS", "kind_of", "detect", "groups", "Group", "check_arrow_type"]


class Kind:
    """Interface of a column kind (see the module docstring).

    Attributes:
        name: the kind's name, stored in the version record.
        onnx_elem: the element type of its ONNX input: 'float' or 'string'.
    """

    name: str = ""
    onnx_elem: str = "float"

    # -- one column ---------------------------------------------------------------
    def detect(self, sql_type: str, list_kind: str) -> str | None:
        """The type scoring casts to, when this kind takes a column of ``sql_type``
        (``list_kind``: the kind the architecture wants for LIST columns), else None."""
        raise NotImplementedError

    def sql(self, feature: FeatureSpec, column: exp.Expression, model: str | None) -> exp.Expression:
        """The SQL that encodes a raw column, the same at training and in PREDICT."""
        raise NotImplementedError

    def takes(self, feature: FeatureSpec, arrow_type: pa.DataType) -> bool:
        """Whether :meth:`arrow` takes a raw column of this Arrow type (dictionaries are
        read as their values, Arrow's null type as a column of NULLs)."""
        raise NotImplementedError

    arrow_needs: str = ""  # what :meth:`takes` takes, in words, for messages

    def arrow(self, feature: FeatureSpec, values: pa.Array | pa.ChunkedArray, model: str | None,
              timezone: str = "UTC") -> pa.Array:  # fmt: skip
        """A raw Arrow column -> the encoded column :meth:`sql` gives in DuckDB (same
        values, same refusals as FeatureErrors naming the column and ``model``), for
        engines that are not DuckDB. ``timezone`` stands for DuckDB's TimeZone setting
        (where a time zone and a wall clock meet)."""
        raise NotImplementedError

    def udf_type(self, feature: FeatureSpec) -> duckdb.DuckDBPyType:
        """The DuckDB type of the UDF parameter the encoded column arrives as."""
        raise NotImplementedError

    def input_shape(self, feature: FeatureSpec) -> list[int | str]:
        """The shape of the column's ONNX input."""
        return ["N", 1]

    def feed(self, feature: FeatureSpec, values: pa.Array) -> np.ndarray:
        """An encoded Arrow column -> the ONNX input array."""
        raise NotImplementedError

    def profile(self, con: duckdb.DuckDBPyConnection, table: str, features: Sequence[FeatureSpec],
                options: dict[str, Any]) -> dict[str, dict[str, Any]]:  # fmt: skip
        """Training statistics of encoded columns of this kind in ``table`` (one query
        for many columns where it can), computed by DuckDB: {column: statistics}."""
        raise NotImplementedError

    def monitor_sql(self, value_sql: str) -> str:
        """The scalar MONITOR bins for drift, from the encoded value's SQL."""
        return value_sql

    def settle(self, feature: FeatureSpec, profile: dict[str, Any]) -> FeatureSpec:
        """The feature as stored, once its profile is known (an array's length)."""
        return feature

    def check(self, model: str, feature: FeatureSpec, profile: dict[str, Any], options: dict[str, Any]) -> None:
        """Refuse a column the model cannot take, from its profile, before training."""

    def check_rows(self, model: str, feature: FeatureSpec, values: pa.Array, options: dict[str, Any]) -> None:
        """Refuse a column from every encoded row (held-out rows too), before training."""

    # -- a group of columns -----------------------------------------------------------
    def group_key(self, feature: FeatureSpec) -> str:
        """The name of the tensor this column goes into."""
        raise NotImplementedError

    def tensor(self, features: Sequence[FeatureSpec], columns: Sequence[pa.Array], profile: dict[str, Any]) -> np.ndarray:
        """The group's encoded Arrow columns -> the numpy array its encoder takes."""
        raise NotImplementedError

    def front(self, features: Sequence[FeatureSpec], profile: dict[str, Any], out: str, prefix: str) -> list:
        """ONNX nodes from the group's raw inputs (named after the columns) to ``out``,
        the tensor its encoder takes (names of internal tensors start with ``prefix``)."""
        raise NotImplementedError

    def tensor_shape(self, features: Sequence[FeatureSpec]) -> tuple[int, ...]:
        """The shape (without the batch axis) of the group's tensor."""
        return (len(features),)

    tensor_dtype: str = "float32"  # or int64 (category codes)

    def width(self, features: Sequence[FeatureSpec], profile: dict[str, Any]) -> int:
        """How many network inputs the group makes (for the memory checks)."""
        raise NotImplementedError

    def encoder(self, features: Sequence[FeatureSpec], profile: dict[str, Any], options: dict[str, Any]):
        """The torch module of the group: its tensor -> encoded tensor. It has ``shape``
        (the encoded shape without the batch axis) and ``target(x)``, the fixed
        (unlearned) encoding a reconstruction task rebuilds."""
        raise NotImplementedError


class Group:
    """The columns of one tensor: a kind and its features, in model order."""

    def __init__(self, key: str, kind: Kind, features: list[FeatureSpec]):
        self.key, self.kind, self.features = key, kind, features

    def __repr__(self) -> str:
        return f"Group({self.key!r}, {self.kind.name}, {[f.name for f in self.features]})"


def _builtin() -> dict[str, Kind]:
    from dbml.kinds.array import ArrayKind, SequenceKind
    from dbml.kinds.category import CategoryKind
    from dbml.kinds.scalar import BooleanKind, DatetimeKind, NumericKind

    kinds = (NumericKind(), BooleanKind(), DatetimeKind(), CategoryKind(), ArrayKind(), SequenceKind())
    return {k.name: k for k in kinds}


KINDS: dict[str, Kind] = _builtin()


def kind_of(feature: FeatureSpec) -> Kind:
    return KINDS[feature.kind]


def detect(column: str, sql_type: str, list_kind: str = "array") -> tuple[str, str]:
    """(kind, the type scoring casts to) of a DuckDB column.

    Raises:
        FeatureError: for a type no kind takes, naming the column.
    """
    for kind in KINDS.values():
        cast = kind.detect(sql_type.upper(), list_kind)
        if cast is not None:
            return kind.name, cast
    raise FeatureError(
        f"column '{column}' has type {sql_type}, which no dbml model takes (numbers, booleans, dates, "
        f"text, and arrays or lists of numbers); leave it out with SELECT * EXCLUDE ({column}) or cast it"
    )


def check_arrow_type(feature: FeatureSpec, arrow_type: pa.DataType, model: str | None, shown: str | None = None) -> None:
    """Refuse, before any row is read, a column whose type the feature's kind cannot take.

    Args:
        shown: the column's type as the user knows it (a Spark type), default the Arrow type.

    Raises:
        FeatureError: naming the column, its type, the model and what the feature takes.
    """
    from dbml.kinds.arrow import type_error

    kind = kind_of(feature)
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if not pa.types.is_null(t) and not kind.takes(feature, t):
        raise type_error(feature, shown or str(arrow_type), model, kind.arrow_needs)


def groups(features: Sequence[FeatureSpec]) -> list[Group]:
    """The input tensors of a model, in a fixed order: ``numbers``, ``categories``,
    then one per array or sequence column in feature order."""
    found: dict[str, Group] = {}
    for f in features:
        kind = kind_of(f)
        key = kind.group_key(f)
        if key not in found:
            found[key] = Group(key, kind, [])
        found[key].features.append(f)
    order = {"numbers": 0, "categories": 1}
    return sorted(found.values(), key=lambda g: order.get(g.key, 2))  # stable: arrays keep feature order
