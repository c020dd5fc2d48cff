"""Feature columns as the registry stores them, and the one encoding of each.

:class:`FeatureSpec` is one raw column (name, kind, type). :func:`feature_sql` says how
a raw column becomes a model input; the training query and every rewritten PREDICT
call use it, so a column is encoded the same way at training and at scoring.
:func:`feature_arrow` gives the same encoded column from a raw Arrow column, for
engines that are not DuckDB. What each kind does lives in :mod:`dbml.kinds`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Iterator, Mapping

from dbml.kinds import KINDS, all_kinds, detect, kind_of
from dbml.kinds.common import FLOAT_MAX, QUANTILES
from dbml.kinds.scalar import DATETIME_TYPES, NUMERIC_TYPES, bin_index, bin_sql

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlglot import exp

__all__ = [
    "FeatureSpec", "feature_kind", "feature_sql", "feature_arrow", "FLOAT_MAX", "QUANTILES", "bin_sql", "bin_index",
    "NUMERIC_TYPES", "DATETIME_TYPES", "ONNX_INPUT",
]  # fmt: skip



class _OnnxInputs(Mapping):
    """Kinds and the element type of the ONNX input each one takes: a live view of
    :data:`dbml.kinds.KINDS` (registered and installed kinds included)."""

    def __getitem__(self, name: str) -> str:
        return KINDS[name].onnx_elem

    def __iter__(self) -> Iterator[str]:
        return iter([k.name for k in all_kinds()])

    def __len__(self) -> int:
        return len(all_kinds())

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True


ONNX_INPUT: Mapping[str, str] = _OnnxInputs()


@dataclass(frozen=True)
class FeatureSpec:
    """One raw feature column as the model sees it.

    Attributes:
        name: the column name (the ONNX input has the same name).
        kind: a kind of :data:`dbml.kinds.KINDS` (numeric, boolean, datetime, category, array, sequence).
        sql_type: the column's type as scoring casts it (FLOAT[n] for arrays).
        onnx_input: for a model imported from a foreign ONNX file (architecture
            'imported'), the graph input this column feeds; its numbers then reach the
            UDF as DOUBLE (cast to ``sql_type``) and take the input's own dtype there.
            None for dbml's own graphs: one input per column, named after it.
        rule: the rule that chose the kind when it is not the column's type alone
            (``option text``; see :func:`dbml.kinds.rule_of`), else None. Records
            before rules, and features chosen by their type, have none.
        tower: at training only, the part of the network the column feeds apart from the
            others (a recommender's ``user`` or ``item`` side columns): its group's tensor
            is its own (:func:`dbml.kinds.groups`). Not stored: the graph keeps the split.
    """

    name: str
    kind: str
    sql_type: str
    onnx_input: str | None = None
    rule: str | None = None
    tower: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, str]:
        out = asdict(self)
        del out["tower"]
        for key in ("onnx_input", "rule"):
            if out[key] is None:
                del out[key]  # dbml's own features chosen by type keep their three keys
        return out

    @property
    def onnx_type(self) -> str:
        return kind_of(self).onnx_elem


def feature_kind(column: str, sql_type: str, list_kind: str | None = None) -> tuple[str, str]:
    """(kind, the type scoring casts to) of a DuckDB column; see :func:`dbml.kinds.detect`."""
    return detect(column, sql_type, list_kind)


def feature_sql(feature: FeatureSpec, column: exp.Expression, model: str | None = None) -> exp.Expression:
    """The SQL expression that turns a raw column into the model's input.

    One rule for values, the same at training and at scoring (this expression is used
    by both): NULL and NaN are missing (the graph imputes them); an infinite value, a
    number outside FLOAT's range, an infinite date, a NULL array or an array of the
    wrong length stops the query with DuckDB's ``error()``, whose message names the
    column (and ``model`` when given), the value and the fix. The check is a CASE whose
    first branch is the plain CAST; ``error()`` runs only for the rows that reach it.
    """
    return kind_of(feature).sql(feature, column, model)


def feature_arrow(feature: FeatureSpec, values: pa.Array | pa.ChunkedArray, model: str | None = None,
                  timezone: str = "UTC") -> pa.Array:  # fmt: skip
    """The encoded column :func:`feature_sql` gives in DuckDB, from a raw Arrow column:
    the same values (to the float32 bit) and the same refusals, as FeatureErrors.

    Args:
        timezone: DuckDB's TimeZone setting it stands for, used only where a time zone and
            a wall clock meet (a TIMESTAMPTZ column for a model trained on TIMESTAMP or
            DATE, or the reverse).

    Raises:
        FeatureError: a type the feature's kind cannot take, or a value its SQL encoding
            refuses (naming the column, ``model`` and the value).
    """
    from dbml.kinds import check_arrow_type

    check_arrow_type(feature, values.type, model)
    return kind_of(feature).arrow(feature, values, model, timezone)
