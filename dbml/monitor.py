"""SQL for MONITOR MODEL: drift of a model version's inputs and predictions against
what it saw at training.

Pure functions: nothing here touches a database. :func:`drift_sql` builds one query
(with a ``PREDICT`` call for the connection to rewrite) that DuckDB runs over the
source rows; no row is pulled into Python. The shape of the query::

    WITH "_rows" AS MATERIALIZED (      -- each feature encoded as at training, PREDICT once per row
        SELECT <feature_sql(f, "_src".f)> AS "_v0", ..., PREDICT('m:3', *) AS "_p"
        FROM (\\n<source_sql>\\n) AS "_src"),
    "_items"  AS (VALUES ...),          -- one per feature and one for the prediction:
                                        --   name, kind, training null rate, shares over all rows?
    "_train"  AS (VALUES ...),          -- training share of every bin of every item (from the registry)
    "_counts" AS (...),                 -- per item, bin and NULL-ness: the current row count
                                        --   (one GROUP BY per item over "_rows", UNION ALL)
    "_totals" AS (...),                 -- per item: rows, NULL rows, non-NULL rows
    "_cells"  AS (...),                 -- per item and training bin: training share, current share
    "_psi"    AS (...)                  -- per item: PSI and the per-bin detail as JSON
    SELECT feature, kind, psi, null_rate_train, null_rate_now, null_rate_change, detail, rows, drift
    FROM "_items" ... ORDER BY psi DESC NULLS LAST, feature

Bins and shares (a feature's are its kind's, :meth:`dbml.kinds.Kind.monitor_bins`):

* numeric, boolean and datetime features: the training histogram's bins (a value's bin is
  the number of edges strictly below it, :func:`dbml.features.bin_sql`), over the
  encoded values (FLOAT; dates and timestamps as days since 1970). Shares are of the
  non-NULL rows, as at training; NULLs show in the null rates only.
* array and sequence features: the same, over each row's mean (``list_avg`` of the
  encoded list, :meth:`dbml.kinds.Kind.monitor_sql`), against the profile's histogram
  of the training rows' means. A NULL list (or one whose elements are all NULL) has no
  mean and counts in ``null_rate_now`` (training refuses NULL lists, so its rate is 0);
  such a row's prediction is NULL too, instead of PREDICT stopping the query. A list of
  another length than at training still stops it, with PREDICT's dbml error.
* category features: one bin per value of the training vocabulary plus one "other" bin
  for every value outside it (training share ``1 - sum(frequencies)``, floored at 0).
  Shares are of all rows, a NULL counting as ``''`` (the encoded value). The null rate
  is the share of ``''`` rows, as in the profile.
* text features: the training histogram of each value's word count (length drift); and
  one more row, ``'<column> (words)'`` (:meth:`dbml.kinds.Kind.monitor_parts`), over every
  word of every row: one bin per word of the training's 50 most frequent and bin 0 for
  the rest, shares of all words (word-share drift).
* the prediction (feature ``'__prediction__'``, kind the task): for a classifier one bin
  per class label (PREDICT's label compared with each label in its own type; the
  detail names the label by its PREDICT_PROBA field, ``'true'``/``'false'`` for
  booleans); for a regression the bins of the training prediction histogram over
  PREDICT's value; for an anomaly model (kind ``reconstruction``) the same over PREDICT's
  value, its ANOMALY_SCORE; for a forecaster (kind ``forecast``) the same over the first
  value of PREDICT's FLOAT[horizon] (the next step's forecast). Shares are of the rows with a non-NULL prediction; the training
  reference is the model's predictions on its held-out rows
  (``metrics.prediction_distribution``); its training null rate is 0.

PSI (population stability index) = sum over bins of ``(now - train) * ln(now / train)``
with both shares floored at :data:`EPS` (``1e-4``) first, so an empty bin on either
side adds a large but finite term. It is 0 for identical distributions; by the usual
rule of thumb below 0.1 is stable, 0.1 to 0.25 a moderate shift, above 0.25 a large one.
``drift`` is ``psi > threshold`` (FALSE where psi is NULL).

``null_rate_train`` is ``nulls / count`` of the profile, ``null_rate_now`` the same
share in the source rows, ``null_rate_change`` their difference (now - train).
``rows`` is the number of source rows. ``detail`` is a JSON array, one object per bin in
bin order: ``{"bin", "low", "high", "train", "now"}`` for histogram bins (the bin holds
``low < x <= high``, a missing bound is null), ``{"value", "train", "now"}`` for
categories and class labels (``"value": null`` is the "other" bin).

A forecaster's source rows are its series (time, keys, target): MONITOR MODEL
(:func:`dbml.statements.monitor.monitor_model`) checks them as training does and gives this query
their complete windows (those EVALUATE backtests), so ``rows`` counts windows; the one
feature, ``history``, is binned by each window's mean against the training windows'.

With no source rows (or, for a histogram, no non-NULL values) the current shares, psi
and ``null_rate_now`` are NULL and ``drift`` is FALSE. A feature (or prediction) whose
registry record has no histogram or vocabulary (a record from before profiles had
them) gets a row with NULL psi and detail.
"""

from __future__ import annotations

import math
from typing import Any

from sqlglot import exp

from dbml.features import FeatureSpec, feature_sql
from dbml.kinds import kind_of
from dbml.udfs import label_field
from dbml.sqltext import quote as _q, string as _string

__all__ = ["drift_sql", "EPS", "PREDICTION", "histogram_prediction", "label_prediction", "unreferenced_prediction"]

EPS = 1e-4  # floor of every share in the PSI sum
PREDICTION = "__prediction__"  # the feature name of the prediction row






def _double(value: float | None) -> str:
    """A DOUBLE literal that round-trips the Python float exactly (NULL for None or non-finite)."""
    if value is None or not math.isfinite(float(value)):
        return "CAST(NULL AS DOUBLE)"
    return format(float(value), ".17e")  # scientific notation: DuckDB reads it as DOUBLE


def _label_literal(label: Any) -> str | None:
    """A SQL literal equal to a class label in its own type; None when there is none."""
    if isinstance(label, bool):
        return "TRUE" if label else "FALSE"
    if isinstance(label, int):
        return str(label)
    if isinstance(label, str):
        return _string(label)
    return None


class _Item:
    """One row of the result: a feature or the prediction, with its SQL and training bins."""

    def __init__(self, name: str, kind: str, value_sql: str, null_sql: str, bin_expr: str | None,
                 all_rows: bool, null_rate_train: float | None, bins: list[tuple] | None, keyed: bool,
                 parts: bool = False):  # fmt: skip
        self.name = name
        self.kind = kind
        self.value_sql = value_sql  # the encoded value, over "_src" (the prediction: PREDICT)
        self.null_sql = null_sql  # is the value NULL, over column "_v" of "_rows"
        self.bin_expr = bin_expr  # the bin of a non-NULL value, over "_v"
        self.all_rows = all_rows  # shares of all rows (categories) or of the non-NULL rows
        self.null_rate_train = null_rate_train
        self.bins = bins  # [(bin, train share, low, high, value)], or None when unknown
        self.keyed = keyed  # bins named by a value (categories, class labels), else by a range
        self.parts = parts  # value_sql is a list: its elements are counted (a text's words), not the rows


def _histogram(hist: dict[str, Any] | None) -> tuple[list[tuple] | None, str | None]:
    """The bins of a stored histogram and the SQL of the bin of "_v"; (None, None) without one."""
    from dbml.kinds.scalar import histogram_bins

    return histogram_bins(hist, _q("_v"))


def _null_rate(prof: dict[str, Any]) -> float | None:
    count, nulls = prof.get("count"), prof.get("nulls")
    if not count or nulls is None:
        return None
    return float(nulls) / float(count)


def _feature_item(spec: FeatureSpec, prof: dict[str, Any] | None) -> _Item:
    kind = kind_of(spec)
    column = exp.column(spec.name, table="_src", quoted=True)
    value_sql = kind.monitor_sql(feature_sql(spec, column).sql(dialect="duckdb"))
    if kind.refuses_null_rows:  # its encoding refuses a NULL row: guarded, a NULL here
        value_sql = f"CASE WHEN {column.sql(dialect='duckdb')} IS NULL THEN NULL ELSE {value_sql} END"
    prof = prof or {}
    b = kind.monitor_bins(spec, prof, _q("_v"))
    return _Item(spec.name, spec.kind, value_sql, b.null_sql, b.bin_sql, b.all_rows, _null_rate(prof), b.bins, b.keyed)


def _part_items(spec: FeatureSpec, prof: dict[str, Any] | None) -> list[_Item]:
    """The feature's rows over the parts of its values (:meth:`dbml.kinds.Kind.monitor_parts`)."""
    kind = kind_of(spec)
    column = exp.column(spec.name, table="_src", quoted=True)
    encoded = feature_sql(spec, column).sql(dialect="duckdb")
    return [
        _Item(m.label, spec.kind, m.parts_sql(encoded), m.bins.null_sql, m.bins.bin_sql, m.bins.all_rows, None, m.bins.bins,
              m.bins.keyed, parts=True)
        for m in kind.monitor_parts(spec, prof or {}, _q("_v"))
    ]  # fmt: skip


def _distribution(record: dict[str, Any]) -> dict[str, Any]:
    """The training reference of the prediction: ``metrics.prediction_distribution``."""
    return (record.get("metrics") or {}).get("prediction_distribution") or {}


def histogram_prediction(kind: str, value_sql: str, record: dict[str, Any]) -> _Item:
    """The prediction row of a model whose PREDICT (``value_sql``, a DOUBLE) is binned by
    the training prediction histogram (a regression; an anomaly model's ANOMALY_SCORE; a
    forecaster's first value)."""
    bins, bin_expr = _histogram(_distribution(record))
    return _Item(PREDICTION, kind, value_sql, f"({_q('_v')} IS NULL)", bin_expr, False, 0.0, bins, False)


def label_prediction(kind: str, ref: str, record: dict[str, Any]) -> _Item:
    """The prediction row of a classifier: one bin per class label, PREDICT's label
    compared with each label in its own type."""
    dist = _distribution(record)
    v = _q("_v")
    fields = dist.get("labels")
    shares = dist.get("shares")
    labels = record.get("labels")
    bins = bin_expr = None
    if fields is not None and shares is not None and len(fields) == len(shares):
        if labels is not None and len(labels) != len(fields):
            labels = None
        whens = []
        for k, field in enumerate(fields):
            literal = _label_literal(labels[k]) if labels is not None else None
            if literal is not None and label_field(labels[k]) == str(field):
                whens.append(f"WHEN {v} = {literal} THEN {k}")
            else:  # no typed label: compare PREDICT's text with the field ('true'/'false' for booleans)
                whens.append(f"WHEN CAST({v} AS VARCHAR) = {_string(str(field))} THEN {k}")
        bin_expr = "CASE " + " ".join(whens) + " END" if whens else None
        bins = [(k, float(s), None, None, str(f)) for k, (f, s) in enumerate(zip(fields, shares))]
    return _Item(PREDICTION, kind, f"PREDICT({ref}, *)", f"({v} IS NULL)", bin_expr, False, 0.0, bins, True)


def unreferenced_prediction(kind: str, ref: str) -> _Item:
    """The prediction row of a model without a training reference (imported): PREDICT in
    its own type, no bins, no training null rate."""
    return _Item(PREDICTION, kind, f"PREDICT({ref}, *)", f"({_q('_v')} IS NULL)", None, False, None, None, False)


def _prediction_item(record: dict[str, Any], ref: str) -> _Item:
    """The prediction row, as the version's task distributes its predictions
    (:meth:`dbml.tasks.Task.monitor_prediction`); a task this process does not know:
    PREDICT as it is, without a training reference."""
    from dbml.tasks import task_of

    task = task_of(record.get("task"))
    if task is None:
        return unreferenced_prediction(str(record.get("task")), ref)
    return task.monitor_prediction(record, ref)


def drift_sql(source_sql: str, model_ref: str, record: dict, threshold: float = 0.2) -> str:
    """SQL returning one row per feature plus one row for the prediction, with columns:
    feature VARCHAR ('__prediction__' for the prediction row), kind VARCHAR,
    psi DOUBLE (population stability index against the training distribution),
    null_rate_train DOUBLE, null_rate_now DOUBLE, null_rate_change DOUBLE,
    detail JSON (per bin or per category: training share, current share),
    rows BIGINT (rows evaluated), drift BOOLEAN (psi > threshold), ordered by psi DESC.

    Args:
        source_sql: a query with the model's feature columns (extra columns are ignored).
        model_ref: the model reference PREDICT gets, e.g. ``'churn:3'`` (the version ``record`` holds).
        record: the decoded registry row of that version: ``features``, ``profile``,
            ``task``, ``labels`` and ``metrics`` (its ``prediction_distribution``) are read.
        threshold: PSI above which a row has ``drift`` TRUE.

    PSI floors both shares of every bin at :data:`EPS` = 1e-4 before
    ``sum((now - train) * ln(now / train))``. The query calls PREDICT, so it must go
    through the connection's rewrite. See the module's docstring for the bins.
    """
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    ref = _string(model_ref)
    profile = record.get("profile") or {}
    specs = [f if isinstance(f, FeatureSpec) else FeatureSpec(f["name"], f["kind"], f["sql_type"], f.get("onnx_input")) for f in record.get("features") or []]
    items = [_feature_item(f, profile.get(f.name)) for f in specs]
    items += [part for f in specs for part in _part_items(f, profile.get(f.name))]
    prediction = _prediction_item(record, ref)
    lists = [exp.column(f.name, table="_src", quoted=True).sql(dialect="duckdb") for f in specs if kind_of(f).refuses_null_rows]
    if lists:  # a NULL list: a NULL prediction (counted in its null rate), not PREDICT's error
        prediction.value_sql = f"CASE WHEN {' OR '.join(f'{c} IS NULL' for c in lists)} THEN NULL ELSE {prediction.value_sql} END"
    items.append(prediction)

    i_, bin_, n_, null_, share_ = _q("_i"), _q("_bin"), _q("_n"), _q("_null"), _q("_share")
    rows_, src = _q("_rows"), _q("_src")
    cols = [f"{_q('_v' + str(i))}" for i in range(len(items))]

    # _rows: every item's value, encoded as at training; PREDICT once per row
    encoded = ",\n        ".join(f"{it.value_sql} AS {c}" for it, c in zip(items, cols))
    ctes = [
        f"{rows_} AS MATERIALIZED (\n    SELECT\n        {encoded}\n    FROM (\n{source_sql}\n) AS {src}\n)"
    ]

    # _items: name, kind, training null rate, shares over all rows (else over non-NULL rows)
    item_rows = ",\n        ".join(
        f"({i}, {_string(it.name)}, {_string(it.kind)}, {_double(it.null_rate_train)}, {'TRUE' if it.all_rows else 'FALSE'})"
        for i, it in enumerate(items)
    )
    ctes.append(
        f"{_q('_items')} AS (\n    SELECT * FROM (VALUES\n        {item_rows}\n    ) AS t({i_}, {_q('feature')}, "
        f"{_q('kind')}, {_q('null_rate_train')}, {_q('_all')})\n)"
    )

    # _train: the training share of every bin (one empty, typed row when no item has bins)
    train_rows = [
        f"({i}, {b}, {_double(share)}, {_double(low)}, {_double(high)}, "
        f"{_string(value) if value is not None else 'CAST(NULL AS VARCHAR)'}, {'TRUE' if it.keyed else 'FALSE'})"
        for i, it in enumerate(items) if it.bins is not None
        for b, share, low, high, value in it.bins
    ]  # fmt: skip
    train_where = ""
    if not train_rows:
        train_rows = ["(-1, -1, CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS VARCHAR), FALSE)"]
        train_where = f" WHERE {i_} >= 0"
    ctes.append(
        f"{_q('_train')} AS (\n    SELECT * FROM (VALUES\n        " + ",\n        ".join(train_rows)
        + f"\n    ) AS t({i_}, {bin_}, {share_}, {_q('_low')}, {_q('_high')}, {_q('_value')}, {_q('_keyed')}){train_where}\n)"
    )  # fmt: skip

    # _counts: rows per item, bin and NULL-ness
    v = _q("_v")
    parts = []
    for i, (it, c) in enumerate(zip(items, cols)):
        bin_expr = it.bin_expr if it.bin_expr is not None else "CAST(NULL AS INTEGER)"
        if not it.all_rows:  # a NULL value has no bin (a category's '' has its own)
            bin_expr = f"CASE WHEN {null_} THEN NULL ELSE {bin_expr} END"
        parts.append(
            f"    SELECT {i} AS {i_}, {bin_expr} AS {bin_}, {null_}, count(*) AS {n_}\n"
            f"    FROM (SELECT {f'unnest({c})' if it.parts else c} AS {v}, {it.null_sql} AS {null_} FROM {rows_})\n"
            f"    GROUP BY ALL"
        )
    ctes.append(f"{_q('_counts')} AS (\n" + "\n    UNION ALL\n".join(parts) + "\n)")

    # _totals: per item, rows, NULL rows and non-NULL rows
    ctes.append(
        f"{_q('_totals')} AS (\n    SELECT {i_}, sum({n_}) AS {_q('_all_n')}, "
        f"coalesce(sum({n_}) FILTER (WHERE {null_}), 0) AS {_q('_null_n')}, "
        f"coalesce(sum({n_}) FILTER (WHERE NOT {null_}), 0) AS {_q('_valued_n')}\n"
        f"    FROM {_q('_counts')} GROUP BY {i_}\n)"
    )

    # _cells: per item and training bin, the training and the current share
    t, it_, tot, cnt = _q("t"), _q("it"), _q("tot"), _q("c")
    now_n = (
        f"(SELECT {i_}, {bin_}, sum({n_}) AS {n_} FROM {_q('_counts')} "
        f"JOIN {_q('_items')} USING ({i_}) WHERE {_q('_all')} OR NOT {null_} GROUP BY ALL)"
    )
    denominator = f"CASE WHEN {it_}.{_q('_all')} THEN {tot}.{_q('_all_n')} ELSE {tot}.{_q('_valued_n')} END"
    ctes.append(
        f"{_q('_cells')} AS (\n"
        f"    SELECT {t}.*, CAST(coalesce({cnt}.{n_}, 0) AS DOUBLE) / NULLIF({denominator}, 0) AS {_q('_now')}\n"
        f"    FROM {_q('_train')} AS {t}\n"
        f"    JOIN {_q('_items')} AS {it_} ON {it_}.{i_} = {t}.{i_}\n"
        f"    LEFT JOIN {_q('_totals')} AS {tot} ON {tot}.{i_} = {t}.{i_}\n"
        f"    LEFT JOIN {now_n} AS {cnt} ON {cnt}.{i_} = {t}.{i_} AND {cnt}.{bin_} = {t}.{bin_}\n)"
    )

    # _psi: per item, PSI over the floored shares, and the per-bin detail
    eps = _double(EPS)

    def floor(share: str) -> str:  # not greatest(), which skips a NULL (no current rows)
        return f"CASE WHEN {share} < {eps} THEN {eps} ELSE {share} END"

    now, train = floor(_q("_now")), floor(share_)
    keyed = f"json_object('value', {_q('_value')}, 'train', {share_}, 'now', {_q('_now')})"
    ranged = f"json_object('bin', {bin_}, 'low', {_q('_low')}, 'high', {_q('_high')}, 'train', {share_}, 'now', {_q('_now')})"
    ctes.append(
        f"{_q('_psi')} AS (\n"
        f"    SELECT {i_}, sum(({now} - {train}) * ln({now} / {train})) AS {_q('psi')},\n"
        f"        to_json(list(CASE WHEN {_q('_keyed')} THEN {keyed} ELSE {ranged} END ORDER BY {bin_})) AS {_q('detail')}\n"
        f"    FROM {_q('_cells')} GROUP BY {i_}\n)"
    )

    null_now = f"CAST({tot}.{_q('_null_n')} AS DOUBLE) / NULLIF({tot}.{_q('_all_n')}, 0)"
    psi = f"{_q('p')}.{_q('psi')}"
    columns = [
        f"{it_}.{_q('feature')} AS {_q('feature')}",
        f"{it_}.{_q('kind')} AS {_q('kind')}",
        f"CAST({psi} AS DOUBLE) AS {_q('psi')}",
        f"CAST({it_}.{_q('null_rate_train')} AS DOUBLE) AS {_q('null_rate_train')}",
        f"{null_now} AS {_q('null_rate_now')}",
        f"{null_now} - {it_}.{_q('null_rate_train')} AS {_q('null_rate_change')}",
        f"CAST({_q('p')}.{_q('detail')} AS JSON) AS {_q('detail')}",
        f"(SELECT count(*) FROM {rows_}) AS {_q('rows')}",
        f"coalesce({psi} > {_double(float(threshold))}, FALSE) AS {_q('drift')}",
    ]
    return (
        "WITH " + ",\n".join(ctes)
        + "\nSELECT\n    " + ",\n    ".join(columns)
        + f"\nFROM {_q('_items')} AS {it_}"
        + f"\nLEFT JOIN {_q('_psi')} AS {_q('p')} ON {_q('p')}.{i_} = {it_}.{i_}"
        + f"\nLEFT JOIN {_q('_totals')} AS {tot} ON {tot}.{i_} = {it_}.{i_}"
        + f"\nORDER BY {_q('psi')} DESC NULLS LAST, {_q('feature')}"
    )  # fmt: skip
