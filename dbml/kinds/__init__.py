"""Column kinds: everything that depends on what a feature column holds.

A kind owns, for its columns: detection (a rule and a priority, see below), the SQL
that encodes a raw column at training and in PREDICT (one expression for both), its
twin on raw Arrow columns for engines that are not DuckDB (the same values, to the
float32 bit, and the same refusals), the profile DuckDB computes and how the registry
checks it, the ONNX input and the UDF parameter type, the Arrow -> ONNX feed, the Arrow
-> tensor conversion at training, the ONNX front nodes, the torch encoder and the
shape of what it gives, MONITOR's bins, the model card's profile row, and which inputs
of a foreign ONNX graph it takes. Nothing outside this package branches on a kind.

Kinds register like architectures: the built-in ones in :data:`KINDS`, others through
:func:`register` or the entry-point group ``dbml.kinds`` (a class or an instance).

**Detection.** Every kind is asked to :meth:`Kind.claim` each source column (a
:class:`Candidate`: its name, DuckDB type, the user's WITH options, the statistics the
kind asked DuckDB for, and the shapes the architecture takes). Of the kinds that claim
it, the highest :attr:`Kind.priority` wins; among kinds of one priority, one whose
encoder gives a :class:`Shape` the architecture takes comes first (a LIST of numbers is
an ``array`` for an mlp or a cnn, a ``sequence`` for an lstm), then the order of the
table. Built-in kinds have priority 0 and claim by type alone, so a kind with a higher
priority can take some of their columns (a text kind some VARCHAR columns from
category) by an option (``text = ['body']``) or by statistics. The claim says which
rule chose the kind (``type VARCHAR``, ``option text``); a feature keeps the rule in
the version record unless it is the type rule (see :func:`rule_of`).

Statistics: :meth:`Kind.statistics` names SQL aggregates over a candidate column
(``{'distinct': 'approx_count_distinct("body")'}``). :func:`statistics_sql` gathers
every kind's, under aliases, for one SELECT over the source's rows (beside the target
facts: one pass); :func:`detect_columns` takes the row's values back and hands each
kind its own, by the names it chose. Without them (``statistics=None``) a kind sees
an empty mapping and claims by type and options alone.

**Groups.** Columns of one *group* become one tensor: the scalar kinds (numeric,
boolean, datetime) share the group ``numbers`` (one [N, F] float tensor, standardised
in one step), categories share ``categories`` ([N, C] int64 codes, one embedding table
per column), and each array or sequence column is a group of its own ([N, L] floats).
Groups sit in the order of their kinds' :attr:`Kind.group_order` (then feature order).
The model is encoders (one per group) -> combiner -> trunk -> task head; a batch is a
dict {group: tensor}. An architecture declares the :class:`Shape` s it takes
(:attr:`dbml.architectures.Architecture.takes`); each kind declares the one its encoder
gives (:attr:`Kind.shape`), so a new kind joins every architecture that takes its shape.

Only :meth:`Kind.encoder` needs torch and only :meth:`Kind.udf_type` and
:meth:`Kind.profile` need DuckDB; they import it when called, so scoring runs in a
process without either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

import numpy as np
import pyarrow as pa

from dbml.errors import FeatureError, OptionError
from dbml.sqltext import quote as _q

if TYPE_CHECKING:
    import duckdb
    from sqlglot import exp

    from dbml.features import FeatureSpec
    from dbml.options import Option

__all__ = [
    "Kind", "KINDS", "Shape", "Candidate", "Claim", "Detection", "MonitorBins", "MonitorParts", "Phrase", "register", "unregister", "get_kind",
    "kind_of", "all_kinds", "detect", "detect_column", "detect_columns", "statistics_sql", "kind_options", "rule_of",
    "shape_of", "foreign_kind", "groups", "Group", "check_arrow_type",
]  # fmt: skip


class Shape:
    """What a kind's encoder gives per row, and what an architecture's trunk reads."""

    FLAT = "flat"  # [N, F]: features that concatenate with others (numbers, category embeddings)
    FIXED = "fixed"  # [N, L]: one fixed-length array (an image's pixels, a signal window): convolutions read it
    STEPS = "steps"  # [N, L, C]: a sequence of steps with channels: recurrent layers read it


@dataclass(frozen=True)
class Candidate:
    """A source column as detection sees it.

    Attributes:
        name: the column's name.
        sql_type: its DuckDB type, upper case.
        options: the user's WITH options (names lower case); the kinds' own options
            (:attr:`Kind.options`) checked and filled with their defaults.
        stats: the values of the aggregates this kind asked for this column
            (:meth:`Kind.statistics`), by the names it gave them; empty when none were
            asked or computed.
        takes: the shapes the architecture takes (None: any).
        prior: the column's feature in the version this training continues (a fine-tune's
            parent, a transfer's base), None for a new model: a kind that chose the column
            there by statistics may keep it on rows too few to show them.
    """

    name: str
    sql_type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
    takes: frozenset[str] | None = None
    prior: FeatureSpec | None = None

    @property
    def ref(self) -> str:
        """The column as a quoted SQL identifier, for :meth:`Kind.statistics`."""
        return _q(self.name)


class Claim(NamedTuple):
    """A kind's claim on a column: the type scoring casts it to, and the rule that
    chose the kind (None: the column's type alone, shown as ``type T``)."""

    cast: str
    rule: str | None = None


class Detection(NamedTuple):
    """The kind detection chose for a column.

    Attributes:
        name: the column.
        kind: the kind's name.
        cast: the type scoring casts the column to (the feature's ``sql_type``).
        rule: the rule that chose it, in words (``type VARCHAR``, ``option text``).
        stored_rule: the rule as the feature keeps it: None for the type rule.
    """

    name: str
    kind: str
    cast: str
    rule: str
    stored_rule: str | None

    def feature(self) -> FeatureSpec:
        from dbml.features import FeatureSpec

        return FeatureSpec(self.name, self.kind, self.cast, rule=self.stored_rule)


@dataclass
class MonitorBins:
    """How MONITOR bins a feature's encoded value against its training profile.

    Attributes:
        null_sql: SQL that is true where the value is missing.
        bin_sql: SQL of the bin of a present value (an integer), None without a training reference.
        bins: [(bin, training share, low, high, value)] (low/high for ranges, value for
            keyed bins), None without a training reference.
        all_rows: shares are of all rows (missing ones included), else of the present ones.
        keyed: bins are named by a value (categories), else by a range.
    """

    null_sql: str
    bin_sql: str | None = None
    bins: list[tuple] | None = None
    all_rows: bool = False
    keyed: bool = False


@dataclass
class MonitorParts:
    """One more MONITOR row for a feature, over the parts of each value (a text's words):
    ``label`` names the row, ``parts_sql(value)`` gives the list of parts of an encoded
    value (SQL), and ``bins`` bins one part (``"_v"``) against the training shares of all
    parts."""

    label: str
    parts_sql: Any
    bins: MonitorBins


class Phrase(NamedTuple):
    """A piece of the model card's profile row: ``template`` (plain text, ``{}`` for
    each value), the values (escaped and formatted by the card), and whether it is a note."""

    template: str
    values: tuple = ()
    note: bool = False


class Kind:
    """Interface of a column kind (see the module docstring).

    Detection asks every kind to :meth:`claim` each source column; the claim of highest
    :attr:`priority` wins. A kind that needs facts about a column's values first (a
    text kind: distinct values, words per value) names them in :meth:`statistics` as
    SQL aggregates over ``column.ref``; the data module computes every kind's in the
    same SELECT as the target's facts (:func:`statistics_sql`) and hands each kind its
    own values in :attr:`Candidate.stats`, by the names it chose. The user's WITH
    options are in :attr:`Candidate.options` (the kind's own, :attr:`options`,
    checked); :meth:`check_options` refuses those that name columns it did not get.
    A claim by type alone has no rule (``type T`` is implied); any other claim says
    its rule in words, which the version record keeps and DESCRIBE MODEL shows.

    Attributes:
        name: the kind's name, stored in the version record.
        onnx_elem: the element type of its ONNX input: 'float' or 'string'.
        priority: detection's order: the claiming kind of highest priority wins (built-in kinds: 0).
        shape: the :class:`Shape` its encoder gives; architectures take some shapes.
        group_order: where its group's tensor sits among the model's inputs (lower first).
        options: TRAIN options it reads (``text = [...]``), checked like an architecture's.
        reads_timezone: its Arrow encoding reads the time zone (dates and times): callers check it once.
        refuses_null_rows: its encoding stops a query on a NULL row (arrays): MONITOR guards it.
        arrow_needs: what :meth:`takes` takes, in words, for messages.
        tensor_dtype: the dtype of its group's tensor (float32, or int64 codes).
        opset: the ai.onnx opset its :meth:`front` needs at least (text's StringSplit: 20).
    """

    name: str = ""
    onnx_elem: str = "float"
    priority: int = 0
    shape: str = Shape.FLAT
    group_order: int = 100
    options: tuple[Option, ...] = ()
    reads_timezone: bool = False
    refuses_null_rows: bool = False
    opset: int = 0  # the ai.onnx opset its front nodes need at least (0: any the exporter writes)

    # -- detection ----------------------------------------------------------------------
    def claim(self, column: Candidate) -> Claim | None:
        """The kind's claim on a source column, or None when it does not take it."""
        return None

    def statistics(self, column: Candidate) -> dict[str, str]:
        """SQL aggregates this kind needs to decide on ``column`` ({name: aggregate over
        ``column.ref``}, for example ``{'distinct': f'approx_count_distinct({column.ref})'}``);
        their values come back in :attr:`Candidate.stats` under the same names. Ask only
        for the columns whose type could be claimed; none by default."""
        return {}

    def check_options(self, options: Mapping[str, Any], detected: Sequence[Detection]) -> None:
        """Refuse options of this kind that do not fit the columns detected (a column named
        that is missing or of the wrong type), as FeatureErrors naming them."""

    def detect(self, sql_type: str, list_kind: str = "array") -> str | None:
        """The type scoring casts to, when this kind claims a bare column of ``sql_type``
        (by its type: no options, no statistics), else None. Kept for callers of the
        former interface; detection calls :meth:`claim`."""
        claim = self.claim(Candidate("", sql_type.upper()))
        return None if claim is None else claim.cast

    def foreign_type(self, dtype: str) -> str | None:
        """The SQL type a foreign ONNX graph's input of element ``dtype`` (numpy's name:
        float32, int64, bool, string, ...) is read as, when this kind takes such inputs."""
        return None

    # -- one column ---------------------------------------------------------------------
    def sql(self, feature: FeatureSpec, column: exp.Expression, model: str | None) -> exp.Expression:
        """The SQL that encodes a raw column, the same at training and in PREDICT."""
        raise NotImplementedError

    def takes(self, feature: FeatureSpec, arrow_type: pa.DataType) -> bool:
        """Whether :meth:`arrow` takes a raw column of this Arrow type (dictionaries are
        read as their values, Arrow's null type as a column of NULLs)."""
        raise NotImplementedError

    arrow_needs: str = ""

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

    def check_profile(self, check: Any, entry: dict[str, Any], at: str) -> dict[str, Any]:
        """A stored profile entry of this kind, checked (the registry reads it back):
        ``check`` is the registry's field checker (``number``, ``integer``, ``numbers``,
        ``texts``, ``fail``: each names the field ``at...`` and raises a RecordError).
        ``count``, ``nulls`` and ``distinct`` are checked before. Returns the entry as kept."""
        return entry

    def valid_type(self, sql_type: str) -> bool:
        """Whether a stored feature of this kind may have ``sql_type`` (upper case)."""
        return True

    def monitor_sql(self, value_sql: str) -> str:
        """The scalar MONITOR bins for drift, from the encoded value's SQL."""
        return value_sql

    def monitor_bins(self, feature: FeatureSpec, profile: dict[str, Any], value: str) -> MonitorBins:
        """MONITOR's bins of :meth:`monitor_sql`'s value (SQL ``value``) against the
        feature's training profile: by default the profile's histogram over present values."""
        from dbml.kinds.scalar import histogram_bins

        bins, bin_sql = histogram_bins(profile.get("histogram"), value)
        return MonitorBins(f"({value} IS NULL)", bin_sql, bins)

    def monitor_parts(self, feature: FeatureSpec, profile: dict[str, Any], value: str) -> list[MonitorParts]:
        """More MONITOR rows over the parts of each value (a text's word shares); none by default."""
        return []

    def card_shape(self, profile: dict[str, Any]) -> list[Phrase]:
        """The model card's words for the shape of a training profile (empty: not measured)."""
        return []

    def settle(self, feature: FeatureSpec, profile: dict[str, Any]) -> FeatureSpec:
        """The feature as stored, once its profile is known (an array's length)."""
        return feature

    def check(self, model: str, feature: FeatureSpec, profile: dict[str, Any], options: dict[str, Any]) -> None:
        """Refuse a column the model cannot take, from its profile, before training."""

    def check_rows(self, model: str, feature: FeatureSpec, values: pa.Array, options: dict[str, Any]) -> None:
        """Refuse a column from every encoded row (held-out ones too), before training."""

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

    def tensor_shape(self, features: Sequence[FeatureSpec], profile: dict[str, Any] | None = None) -> tuple[int, ...]:
        """The shape (without the batch axis) of the group's tensor (``profile``: the
        training profile, for kinds that keep a length there)."""
        return (len(features),)

    tensor_dtype: str = "float32"

    def width(self, features: Sequence[FeatureSpec], profile: dict[str, Any]) -> int:
        """How many network inputs the group makes (for the memory checks)."""
        raise NotImplementedError

    def encoder(self, features: Sequence[FeatureSpec], profile: dict[str, Any], options: dict[str, Any]):
        """The torch module of the group: its tensor -> encoded tensor. It has ``shape``
        (the encoded shape without the batch axis, of the form :attr:`shape` says) and
        ``target(x)``, the fixed (unlearned) encoding a reconstruction task rebuilds."""
        raise NotImplementedError


class Group:
    """The columns of one tensor: a kind and its features, in model order."""

    def __init__(self, key: str, kind: Kind, features: list[FeatureSpec]):
        self.key, self.kind, self.features = key, kind, features

    def __repr__(self) -> str:
        return f"Group({self.key!r}, {self.kind.name}, {[f.name for f in self.features]})"


def _builtin() -> dict[str, Kind]:
    from dbml.kinds.array import ArrayKind, CovariateKind, SequenceKind
    from dbml.kinds.category import CategoryKind
    from dbml.kinds.ident import IdKind
    from dbml.kinds.scalar import BooleanKind, DatetimeKind, NumericKind
    from dbml.kinds.text import TextKind

    kinds = (NumericKind(), BooleanKind(), DatetimeKind(), CategoryKind(), TextKind(), ArrayKind(), SequenceKind(), CovariateKind(), IdKind())
    return {k.name: k for k in kinds}


class _Table(dict):
    """The kinds by name; a name it lacks is looked for among installed plugins."""

    def __missing__(self, name: str) -> Kind:
        _load_plugins()
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        raise KeyError(name)


KINDS: dict[str, Kind] = _Table(_builtin())
_plugins_loaded = False


def _load_plugins() -> None:
    """Add the kinds of the entry-point group ``dbml.kinds`` (once; the table's own win)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from dbml import plugins

    plugins.load_entry_points("dbml.kinds", _Names(KINDS), register)


class _Names:
    """The kinds' names, read without the table's look-up of plugins (for the loader)."""

    def __init__(self, table: dict):
        self.table = table

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self.table, name)


def _check_kind(kind: Kind) -> Kind:
    if not isinstance(kind, Kind):
        raise OptionError(f"a column kind is an instance of dbml.kinds.Kind, got {kind!r}")
    if not kind.name or not kind.name.isidentifier() or kind.name != kind.name.lower():
        raise OptionError(f"a column kind needs a lower-case name made of letters, digits and _, got {kind.name!r}")
    return kind


def register(kind: Kind, *, replace: bool = False) -> Kind:
    """Add a kind to the table (a kind defined outside the package). A name the table
    holds (a built-in one too) is refused unless ``replace`` (:mod:`dbml.plugins`).
    Returns the kind."""
    from dbml import plugins

    _check_kind(kind)
    if dict.__contains__(KINDS, kind.name) and not replace:
        raise OptionError(f"kind '{kind.name}' is registered already; pass replace=True to replace it")
    dict.__setitem__(KINDS, kind.name, kind)
    return kind


def unregister(name: str) -> Kind:
    """Remove a kind from the table; returns it."""
    if not isinstance(name, str) or not dict.__contains__(KINDS, name):
        raise OptionError(f"no kind is registered as {name!r}; the registered ones are {', '.join(sorted(KINDS))}")
    return dict.pop(KINDS, name)


def all_kinds() -> list[Kind]:
    """Every kind, the table's then the installed plugins', in the table's order."""
    _load_plugins()
    return list(KINDS.values())


def get_kind(name: str) -> Kind | None:
    """The kind of this name (the table first, then installed plugins), None when unknown."""
    if not isinstance(name, str):
        return None
    try:
        return KINDS[name]
    except KeyError:
        return None


def kind_of(feature: FeatureSpec) -> Kind:
    """The kind of a feature.

    Raises:
        FeatureError: a kind neither the table nor an installed plugin has.
    """
    kind = get_kind(feature.kind)
    if kind is None:
        raise FeatureError(
            f"feature '{feature.name}' is of kind '{feature.kind}', which is not installed here; known kinds: "
            f"{', '.join(KINDS)} (a kind from a plugin needs its package, or dbml.kinds.register)"
        )
    return kind


def rule_of(feature: FeatureSpec) -> str:
    """The rule that chose a feature's kind, in words: the stored one, else its type's."""
    return feature.rule or f"type {feature.sql_type}"


def kind_options() -> tuple[Option, ...]:
    """The TRAIN options the kinds read, one per name (for option checks beside the
    architecture's)."""
    seen: dict[str, Option] = {}
    for kind in all_kinds():
        for option in kind.options:
            seen.setdefault(option.name, option)
    return tuple(seen.values())


def _options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's options, names lower case, the kinds' own checked and defaulted."""
    given = {str(k).lower(): v for k, v in (options or {}).items()}
    for option in kind_options():
        given[option.name] = option.coerce(given[option.name]) if option.name in given else option.default
    return given


def _type_rule(sql_type: str) -> str:
    t = sql_type.upper()
    return "type ENUM" if t.startswith("ENUM") else f"type {t}"


def _asked(columns: Sequence[str], types: Sequence[str], options: dict[str, Any],
           takes: frozenset[str] | None) -> list[tuple[str, str, str, str, str]]:  # fmt: skip
    """(alias, column, kind, statistic, aggregate) of every aggregate the kinds ask, in a
    fixed order (so that the aliases of :func:`statistics_sql` are found again)."""
    out = []
    for column, sql_type in zip(columns, types):
        candidate = Candidate(column, str(sql_type).upper(), options, {}, takes)
        for kind in all_kinds():
            for stat, aggregate in kind.statistics(candidate).items():
                out.append((f"dbml_stat_{len(out)}", column, kind.name, stat, aggregate))
    return out


def statistics_sql(columns: Sequence[str], types: Sequence[str], options: Mapping[str, Any] | None = None,
                   takes: frozenset[str] | None = None) -> dict[str, str]:  # fmt: skip
    """{alias: SQL aggregate} of the statistics the kinds ask of these source columns,
    for one SELECT over the source's rows (beside the target facts); its row, as
    {alias: value}, is :func:`detect_columns`'s ``statistics``. Empty when no kind asks
    (every built-in kind).

    Raises:
        OptionError: a kind's option of the wrong type.
    """
    return {alias: aggregate for alias, _, _, _, aggregate in _asked(columns, types, _options(options), takes)}


def detect_column(column: str, sql_type: str, *, options: Mapping[str, Any] | None = None,
                  stats: Mapping[str, Mapping[str, Any]] | None = None,
                  takes: frozenset[str] | None = None) -> Detection:  # fmt: skip
    """The kind of one source column (see the module docstring).

    Args:
        options: the user's WITH options.
        stats: {kind name: {statistic: value}} of this column.
        takes: the shapes the architecture takes (None: any).

    Raises:
        FeatureError: for a type no kind takes, naming the column.
    """
    return _detect(column, sql_type, _options(options), stats or {}, takes)


def _detect(column: str, sql_type: str, options: dict[str, Any], stats: Mapping[str, Mapping[str, Any]],
            takes: frozenset[str] | None, prior: FeatureSpec | None = None) -> Detection:  # fmt: skip
    best = None
    for order, kind in enumerate(all_kinds()):
        claim = kind.claim(Candidate(column, sql_type.upper(), options, stats.get(kind.name) or {}, takes, prior))
        if claim is None:
            continue
        rank = (-kind.priority, takes is not None and kind.shape not in takes, order)
        if best is None or rank < best[0]:
            best = (rank, kind, claim)
    if best is None:
        raise FeatureError(
            f"column '{column}' has type {sql_type}, which no dbml model takes (numbers, booleans, dates, "
            f"text, and arrays or lists of numbers); leave it out with SELECT * EXCLUDE ({column}) or cast it"
        )
    _, kind, claim = best
    return Detection(column, kind.name, claim.cast, claim.rule or _type_rule(sql_type), claim.rule)


def detect_columns(columns: Sequence[str], types: Sequence[str], *, options: Mapping[str, Any] | None = None,
                   statistics: Mapping[str, Any] | None = None, takes: frozenset[str] | None = None,
                   prior: Sequence[FeatureSpec] | None = None) -> list[Detection]:  # fmt: skip
    """The kinds of a source's feature columns, then each kind's :meth:`Kind.check_options`.

    Args:
        options: the user's WITH options (as written; the kinds' own are checked here).
        statistics: {alias: value}, the row of :func:`statistics_sql`'s aggregates for
            the same columns, types and options; None when they were not computed.
        takes: the shapes the architecture takes (:attr:`dbml.architectures.Architecture.takes`).
        prior: the features of the version this training continues (:attr:`Candidate.prior`).

    Raises:
        FeatureError: a column no kind takes, or a kind's option that does not fit.
        OptionError: a kind's option of the wrong type.
    """
    opts = _options(options)
    per_column: dict[str, dict[str, dict[str, Any]]] = {}
    if statistics is not None:
        for alias, column, kind, stat, _ in _asked(columns, types, opts, takes):
            if alias in statistics:
                per_column.setdefault(column, {}).setdefault(kind, {})[stat] = statistics[alias]
    before = {f.name.lower(): f for f in prior or ()}
    found = [_detect(c, str(t), opts, per_column.get(c, {}), takes, before.get(c.lower())) for c, t in zip(columns, types)]
    for kind in all_kinds():
        kind.check_options(opts, found)
    return found


def shape_of(column: str, sql_type: str, options: Mapping[str, Any] | None = None,
             stats: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:  # fmt: skip
    """The :class:`Shape` a column's kind gives, whatever the architecture (None where
    no kind takes the column): a FIXED one makes the default architecture a cnn."""
    try:
        return KINDS[detect_column(column, sql_type, options=options, stats=stats).kind].shape
    except FeatureError:
        return None


def detect(column: str, sql_type: str, list_kind: str | None = None) -> tuple[str, str]:
    """(kind, the type scoring casts to) of a DuckDB column, by its type alone: the
    former interface, kept for its callers (:func:`detect_columns` takes options and
    statistics too). ``list_kind`` names the kind LIST columns become (its shape is the
    one the architecture takes); None: the table's order decides (array).

    Raises:
        FeatureError: for a type no kind takes, naming the column.
    """
    listed = get_kind(list_kind) if list_kind is not None else None
    takes = frozenset({Shape.FLAT, listed.shape}) if listed is not None else None
    found = detect_column(column, sql_type, takes=takes)
    return found.kind, found.cast


def foreign_kind(dtype: str) -> tuple[str, str] | None:
    """(kind, SQL type) of a foreign ONNX graph's input of element ``dtype`` (numpy's
    name), by priority; None when no kind takes it."""
    best = None
    for order, kind in enumerate(all_kinds()):
        sql_type = kind.foreign_type(dtype)
        if sql_type is not None and (best is None or (-kind.priority, order) < best[0]):
            best = ((-kind.priority, order), kind.name, sql_type)
    return None if best is None else best[1:]


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
    """The input tensors of a model, in the order of their kinds' :attr:`Kind.group_order`
    (``numbers``, ``categories``, then one per array or sequence column), groups of one
    order in feature order. A feature with a ``tower`` goes into a group of that tower's
    (key ``<tower>/<key>``)."""
    found: dict[str, Group] = {}
    for f in features:
        kind = kind_of(f)
        key = kind.group_key(f) if getattr(f, "tower", None) is None else f"{f.tower}/{kind.group_key(f)}"
        if key not in found:
            found[key] = Group(key, kind, [])
        found[key].features.append(f)
    return sorted(found.values(), key=lambda g: g.kind.group_order)  # stable: first-feature order within an order
