"""SQL for EVALUATE MODEL: the metrics of a model version on the rows of a query.

Pure functions: nothing here touches a database. Each builds one SQL query (with
``PREDICT``/``PREDICT_PROBA`` calls for the connection to rewrite) that DuckDB runs
over the source rows, so no row is pulled into Python. The shape of the query::

    WITH "scored" AS MATERIALIZED (     -- PREDICT and PREDICT_PROBA once per row
        SELECT [by AS "_group",] target AS "_actual", PREDICT(...) AS "_predicted", ...
        FROM (\\n<source_sql>\\n) AS src WHERE target IS NOT NULL),
    "probs"  AS (...one probability column per class, per-row log loss...),
    "ranked" AS (...average rank of each class's probability, per group...),
    "totals" AS (...one row (per group) of counts and sums...)
    SELECT [..."by",] "rows", <metrics> FROM "totals" [ORDER BY "by"]

The metrics follow scikit-learn's definitions (checked against it in
tests/statements/test_evaluate.py):

* ``accuracy``: the share of rows whose PREDICT equals the target.
* ``precision_macro``, ``recall_macro``, ``f1_macro``: the unweighted mean over the
  model's labels (``labels=`` in sklearn), with ``zero_division=0``: a label that is
  never predicted has precision 0, one absent from the rows has recall 0, and one
  both never predicted and absent has f1 0 -- and every such label still counts in
  the mean. f1 is computed from counts, ``2 tp / (2 tp + fp + fn)``, as sklearn does.
* ``precision``, ``recall``, ``f1`` (binary models only): those of the positive
  class: ``positive`` when given, else the last of the sorted labels.
* ``log_loss``: ``sklearn.metrics.log_loss(y, P, labels=labels)``: each row's
  probability of its true class, clipped to ``[eps, 1 - eps]`` (``eps`` = float64
  machine epsilon), ``-ln`` of it, averaged. scikit-learn 1.5 and later clip but no
  longer renormalise rows to sum to one, and neither does this.
* ``roc_auc``: binary: the AUC of the positive class's probability; multi-class:
  the unweighted mean of the one-vs-rest AUCs of every label
  (``roc_auc_score(y, P, multi_class='ovr', average='macro', labels=labels)``).
  Each AUC is Mann-Whitney's U over average ranks (ties share the mean of their
  ranks), which equals the trapezoidal area under sklearn's ROC curve.
  A label absent from the rows (or present in every row) has no defined AUC; sklearn
  raises, and here ``roc_auc`` is NULL (for ``by``, in that group's row only).
* Regression: ``mae``, ``rmse`` (root of the mean squared error), ``r2`` (sklearn's
  ``r2_score``: NULL for fewer than two rows, where sklearn gives NaN; 1.0 when the
  target is constant and every prediction exact, 0.0 when constant and not), ``mape`` (``mean_absolute_percentage_error``:
  ``|y - p| / max(|y|, eps)``, a fraction, not a percentage).

Rows whose target is NULL are left out. A row whose target is not among the model's
labels (a class the model never saw) is a wrong prediction for ``accuracy``, a false
positive of the label predicted for it, a negative for every label's AUC, and has
probability 0 (clipped to eps, so ``-ln(eps)`` = 36.04) in ``log_loss``; sklearn
refuses such rows when given ``labels``.

With no rows (or all targets NULL), ``rows`` is 0 and every metric is NULL.

Reconstruction (anomaly) models have no target; :func:`anomaly_evaluation_sql` scores
the rows with ``ANOMALY_SCORE`` and ``IS_ANOMALY`` (both in one materialized CTE):

* ``rows``; ``flagged``: the rows IS_ANOMALY flags (score above the threshold stored at
  training); ``anomaly_rate``: ``flagged / rows``; ``mse``: the mean ANOMALY_SCORE
  (the mean squared reconstruction error). ``mse`` and ``anomaly_rate`` are the
  training-time metrics of the same names, recomputed on these rows.
* With ``label`` (a BOOLEAN column, or an integer one holding 0 and 1; TRUE/1 is a known
  anomaly; rows whose label is NULL are left out): ``positives`` (rows labelled TRUE);
  ``precision``, ``recall``, ``f1`` of IS_ANOMALY against the label
  (``sklearn.metrics.precision_score(label, flag, zero_division=0)`` and so on);
  ``roc_auc``: the AUC of ANOMALY_SCORE against the label (Mann-Whitney over average
  ranks, as above; NULL when every row, or none, is labelled TRUE).

Forecasters (task ``forecast``) are backtested by :func:`forecast_evaluation_sql` on
every complete window of the source's series: the ``window`` values up to a time (the
history, as at training: :func:`dbml.data.series.windows_sql`) and the next ``horizon``
actual values, all non-NULL and not NaN (windows without them are left out, as at
training). ``PREDICT(m, history)`` forecasts each window; each of its ``horizon``
values is compared with the actual one at its step (``unnest ... WITH ORDINALITY``):

* ``windows``: the windows scored; ``rows``: the values compared (``windows * horizon``).
* ``mae``: mean ``|f - y|``; ``rmse``: the root of the mean ``(f - y)^2``.
* ``mape``: mean ``|f - y| / |y|`` over the values whose actual ``y`` is not 0 (a
  fraction; NULL when every actual is 0).
* ``smape``: mean ``2 |f - y| / (|f| + |y|)``, a term being 0 where ``|f| + |y|`` is 0
  (a fraction, from 0 to 2).
* ``seasonal_naive_mae``: the MAE of the seasonal naive forecast on the same windows:
  step ``k`` (1-based) of a window is forecast by its history's value one season
  before it, ``history[window - season + ((k - 1) % season) + 1]`` (the last season,
  repeated beyond it), with ``season`` the version's ``metrics.season``; when ``season
  > window``, the history's last value. A NULL or NaN naive value is left out of it.
* ``mase``: ``mae / seasonal_naive_mae`` (NULL when that is 0 or NULL): below 1, the
  model beats the seasonal naive forecast.

These are the training metrics of the same names, recomputed on the rows given. With
``by`` (a list of series key columns), one row per value of those columns (first),
over the windows of the series with that value; ordered, NULL last.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from dbml.errors import OptionError, TargetError
from dbml.udfs import label_field as _label_field  # the PREDICT_PROBA struct field of a label
from dbml.sqltext import quote as _q, string as _string

__all__ = [
    "evaluation_sql", "classification_sql", "regression_sql", "anomaly_evaluation_sql", "confusion_sql",
    "forecast_evaluation_sql", "positive_label", "EPS",
]  # fmt: skip

EPS = 2.220446049250313e-16  # numpy.finfo(numpy.float64).eps, sklearn's clip and mape epsilon
_EPS = repr(EPS)  # a DOUBLE literal in DuckDB (scientific notation)
_INTEGER_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                           "UINTEGER", "UBIGINT", "UHUGEINT"})  # fmt: skip



def _label_literal(label: Any) -> str:
    """A SQL literal equal to a class label, in the label's own type."""
    if isinstance(label, bool):
        return "TRUE" if label else "FALSE"
    if isinstance(label, int):
        return exp.Literal.number(label).sql(dialect="duckdb")
    if isinstance(label, str):
        return _string(label)
    raise TargetError(f"cannot evaluate a model with class label {label!r} of type {type(label).__name__}")


def _source(source_sql: str, target: str, model_ref: str, by: str | None, kind: str) -> str:
    """The materialized CTE ``scored`` that runs PREDICT (and PREDICT_PROBA) once per row.

    ``kind``: 'proba' (label and probabilities), 'label' (label only) or 'value' (a regression).
    """
    ref = _string(model_ref)
    src = _q("src")
    actual = f"{src}.{_q(target)}"
    cols = [f"{src}.{_q(by)} AS {_q('_group')}"] if by is not None else []
    if kind == "value":
        cols += [f"CAST({actual} AS DOUBLE) AS {_q('_actual')}", f"CAST(PREDICT({ref}, *) AS DOUBLE) AS {_q('_predicted')}"]
    else:
        cols += [f"{actual} AS {_q('_actual')}", f"PREDICT({ref}, *) AS {_q('_predicted')}"]
    if kind == "proba":
        cols.append(f"PREDICT_PROBA({ref}, *) AS {_q('_proba')}")
    select = ",\n        ".join(cols)
    # the source on lines of its own: a trailing -- comment in it ends at its newline
    return (
        f"{_q('scored')} AS MATERIALIZED (\n"
        f"    SELECT\n        {select}\n"
        f"    FROM (\n{source_sql}\n) AS {src}\n"
        f"    WHERE {actual} IS NOT NULL\n)"
    )


def positive_label(labels: list[Any], positive: Any = None) -> Any:
    """The label that ``positive`` names: the label itself, or its text ('yes', '1',
    'true'); the last sorted label when ``positive`` is None."""
    if positive is None:
        return labels[-1]
    for label in labels:
        if type(label) is type(positive) and label == positive:
            return label
    text = str(positive).lower() if not isinstance(positive, bool) else _label_field(positive)
    matches = [label for label in labels if _label_field(label).lower() == text]
    if len(matches) == 1:
        return matches[0]
    raise OptionError(
        f"positive = {positive!r} is not a class label of the model; its labels are "
        f"{', '.join(_label_field(label) for label in labels)}"
    )


def _mean(terms: list[str]) -> str:
    return f"({' + '.join(terms)}) / {len(terms)}"


def _classification_sql(source_sql: str, model_ref: str, target: str, labels: list[Any], by: str | None, positive: Any) -> str:
    if len(labels) < 2:
        raise TargetError(f"a classification model needs two or more labels to evaluate, got {labels!r}")
    binary = len(labels) == 2
    if positive is not None and not binary:
        raise OptionError(
            f"positive applies to binary models; this model has {len(labels)} labels "
            f"({', '.join(_label_field(label) for label in labels)})"
        )
    pos_index = labels.index(positive_label(labels, positive)) if binary else None
    lits = [_label_literal(label) for label in labels]
    K = len(labels)
    group, actual, predicted = _q("_group"), _q("_actual"), _q("_predicted")
    p = [_q(f"_p{k}") for k in range(K)]
    r = [_q(f"_r{k}") for k in range(K)]
    keep_group = [group] if by is not None else []

    # probs: one DOUBLE per class, and each row's log loss term
    true_prob = "CASE " + " ".join(f"WHEN {actual} = {lits[k]} THEN {p[k]}" for k in range(K)) + " ELSE 0.0 END"
    extract = [f"struct_extract({_q('_proba')}, {_string(_label_field(label))}) AS {p[k]}" for k, label in enumerate(labels)]
    probs = (
        f"{_q('probs')} AS (\n    SELECT {', '.join(keep_group + [actual, predicted])},\n        "
        + ",\n        ".join(extract)
        + f"\n    FROM {_q('scored')}\n)"
    )
    loss = f"-ln(least(greatest({true_prob}, {_EPS}), 1 - {_EPS}))"

    # ranked: the average rank of each ranked class's probability (ties share the mean rank)
    ranked_classes = [pos_index] if binary else list(range(K))
    part = f"PARTITION BY {group} " if by is not None else ""
    ranks = []
    for k in ranked_classes:
        same = f"PARTITION BY {', '.join(keep_group + [p[k]])}"
        ranks.append(
            f"rank() OVER ({part}ORDER BY {p[k]}) + CAST(count(*) OVER ({same}) - 1 AS DOUBLE) / 2 AS {r[k]}"
        )
    ranked = (
        f"{_q('ranked')} AS (\n    SELECT *,\n        {loss} AS {_q('_loss')},\n        "
        + ",\n        ".join(ranks)
        + f"\n    FROM {_q('probs')}\n)"
    )

    # totals: per class k, t = rows of class k, n_pred = rows predicted k, tp = both;
    # rs = sum of the ranks of class k's rows (for its AUC)
    n = _q("_n")
    aggs = [f"count(*) AS {n}", f"count_if({actual} = {predicted}) AS {_q('_correct')}", f"sum({_q('_loss')}) AS {_q('_loss_sum')}"]
    t, pn, tp, rs = ([_q(f"_{w}{k}") for k in range(K)] for w in ("t", "pn", "tp", "rs"))
    for k in range(K):
        aggs += [
            f"count_if({actual} = {lits[k]}) AS {t[k]}",
            f"count_if({predicted} = {lits[k]}) AS {pn[k]}",
            f"count_if({actual} = {lits[k]} AND {predicted} = {lits[k]}) AS {tp[k]}",
        ]
        if k in ranked_classes:
            aggs.append(f"sum(CASE WHEN {actual} = {lits[k]} THEN {r[k]} ELSE 0 END) AS {rs[k]}")
    totals = (
        f"{_q('totals')} AS (\n    SELECT {', '.join(keep_group + aggs)}\n    FROM {_q('ranked')}"
        + (f"\n    GROUP BY {group}" if by is not None else "")
        + "\n)"
    )

    def divide(num: str, den: str) -> str:  # zero_division = 0, NULL when there are no rows
        return f"CASE WHEN {n} = 0 THEN NULL WHEN {den} = 0 THEN 0.0 ELSE CAST({num} AS DOUBLE) / {den} END"

    def precision(k: int) -> str:
        return divide(tp[k], pn[k])

    def recall(k: int) -> str:
        return divide(tp[k], t[k])

    def f1(k: int) -> str:
        return divide(f"2 * {tp[k]}", f"({t[k]} + {pn[k]})")

    def auc(k: int) -> str:
        # Mann-Whitney: (sum of positives' ranks - P (P + 1) / 2) / (P * N); NULL when P or N is 0
        pos, neg = f"CAST({t[k]} AS DOUBLE)", f"CAST({n} - {t[k]} AS DOUBLE)"
        return f"({rs[k]} - {pos} * ({pos} + 1) / 2) / NULLIF({pos} * {neg}, 0)"

    metrics = [
        f"{n} AS {_q('rows')}",
        f"CAST({_q('_correct')} AS DOUBLE) / NULLIF({n}, 0) AS {_q('accuracy')}",
    ]
    if binary:
        metrics += [
            f"{precision(pos_index)} AS {_q('precision')}",
            f"{recall(pos_index)} AS {_q('recall')}",
            f"{f1(pos_index)} AS {_q('f1')}",
        ]
    metrics += [
        f"{_mean([precision(k) for k in range(K)])} AS {_q('precision_macro')}",
        f"{_mean([recall(k) for k in range(K)])} AS {_q('recall_macro')}",
        f"{_mean([f1(k) for k in range(K)])} AS {_q('f1_macro')}",
        f"{_q('_loss_sum')} / NULLIF({n}, 0) AS {_q('log_loss')}",
        f"{auc(pos_index) if binary else _mean([auc(k) for k in range(K)])} AS {_q('roc_auc')}",
    ]
    return _final([_source(source_sql, target, model_ref, by, "proba"), probs, ranked, totals], metrics, by)


def _regression_sql(source_sql: str, model_ref: str, target: str, by: str | None) -> str:
    group, actual, predicted, n = _q("_group"), _q("_actual"), _q("_predicted"), _q("_n")
    err = f"({actual} - {predicted})"
    aggs = [
        f"count(*) AS {n}",
        f"sum(abs({err})) AS {_q('_abs')}",
        f"sum({err} * {err}) AS {_q('_ss_res')}",
        f"var_pop({actual}) * count(*) AS {_q('_ss_tot')}",
        f"sum(abs({err}) / greatest(abs({actual}), {_EPS})) AS {_q('_ape')}",
    ]
    totals = (
        f"{_q('totals')} AS (\n    SELECT {', '.join(([group] if by is not None else []) + aggs)}\n"
        f"    FROM {_q('scored')}" + (f"\n    GROUP BY {group}" if by is not None else "") + "\n)"
    )
    ss_res, ss_tot = _q("_ss_res"), _q("_ss_tot")
    metrics = [
        f"{n} AS {_q('rows')}",
        f"{_q('_abs')} / NULLIF({n}, 0) AS {_q('mae')}",
        f"sqrt({ss_res} / NULLIF({n}, 0)) AS {_q('rmse')}",
        # sklearn's r2_score with force_finite=True: undefined (NULL; sklearn gives NaN) for
        # fewer than two rows; a constant target gives 1.0 if every prediction is exact, else 0.0
        f"CASE WHEN {n} < 2 THEN NULL WHEN {ss_tot} = 0 THEN (CASE WHEN {ss_res} = 0 THEN 1.0 ELSE 0.0 END) "
        f"ELSE 1 - {ss_res} / {ss_tot} END AS {_q('r2')}",
        f"{_q('_ape')} / NULLIF({n}, 0) AS {_q('mape')}",
    ]
    return _final([_source(source_sql, target, model_ref, by, "value"), totals], metrics, by)


def _label_sql(column: str, label: str, label_type: str, model_ref: str) -> str:
    """The label column as a BOOLEAN: itself, or an integer's 0/1 (another value stops the
    query with a dbml error naming the column); a TargetError for any other type."""
    t = label_type.upper()
    if t == "BOOLEAN":
        return column
    if t in _INTEGER_TYPES:
        fix = "label must be TRUE/1 (a known anomaly) or FALSE/0: fix the value or filter the row"
        shown = _string(f"dbml: label column '{label}' of EVALUATE MODEL {model_ref} has the value ")
        return (
            f"CASE WHEN {column} = 1 THEN TRUE WHEN {column} = 0 THEN FALSE WHEN {column} IS NULL THEN NULL "
            f"ELSE error({shown} || CAST({column} AS VARCHAR) || {_string(', not 0 or 1: ' + fix)}) END"
        )
    raise TargetError(
        f"the label column '{label}' has type {label_type}; EVALUATE MODEL {model_ref} (an anomaly model) needs a "
        "BOOLEAN label (TRUE for a known anomaly) or an integer one of 0 and 1: compute it in the query, "
        "e.g. ON (SELECT *, status = 'fraud' AS is_fraud FROM ...) WITH (label = is_fraud)"
    )


def anomaly_evaluation_sql(source_sql: str, model_ref: str, label: str | None = None, by: str | None = None,
                           label_type: str = "BOOLEAN", robust: list[str] | None = None) -> str:  # fmt: skip
    """SQL that returns the metrics of an anomaly (reconstruction) model on the rows of
    source_sql: one row, or one row per value of column ``by`` (first, named after it).

    Args:
        source_sql: a query with the model's feature columns (and ``label``, ``by``).
        model_ref: the model reference the scoring functions get, e.g. ``'odd:2'``.
        label: a column telling known anomalies (TRUE or 1) from normal rows (FALSE or
            0); None: no label, only the score's summary.
        by: a column of the source: one row of metrics per value, ordered (NULL last).
        label_type: the SQL type of ``label``: BOOLEAN or an integer type.
        robust: with ``label``, SQL expressions over the source (aliased ``"src"``) of
            the model's scalar inputs as it reads them (numbers, booleans as 0/1, dates
            as days: :func:`dbml.features.feature_sql`); the robust z-score baseline
            (:func:`robust_z_sql`) over them, fitted on the rows evaluated (every group
            together), is ranked against the label too.

    Columns: ``rows, flagged, anomaly_rate, mse``, and with ``label`` also ``positives,
    precision, recall, f1, roc_auc``, and with ``robust`` (one column or more)
    ``roc_auc_robust_z`` (the baseline's AUC, same definition) and ``roc_auc_gain``
    (``roc_auc - roc_auc_robust_z``: above 0 when the model ranks the labelled anomalies
    better). See the module's docstring for the other definitions.
    """
    ref, src = _string(model_ref), _q("src")
    group, actual, score, flag, rank, n = _q("_group"), _q("_actual"), _q("_score"), _q("_flag"), _q("_r"), _q("_n")
    keep_group = [group] if by is not None else []
    cols = [f"{src}.{_q(by)} AS {group}"] if by is not None else []
    where = ""
    baseline = label is not None and bool(robust)
    values = [_q(f"_x{i}") for i in range(len(robust or []))] if baseline else []
    if label is not None:
        column = f"{src}.{_q(label)}"
        cols.append(f"{_label_sql(column, label, label_type, model_ref)} AS {actual}")
        where = f"\n    WHERE {column} IS NOT NULL"
    cols += [f"ANOMALY_SCORE({ref}, *) AS {score}", f"IS_ANOMALY({ref}, *) AS {flag}"]
    cols += [f"CAST({c} AS DOUBLE) AS {v}" for c, v in zip(robust or [], values)]
    ctes = [
        f"{_q('scored')} AS MATERIALIZED (\n    SELECT\n        " + ",\n        ".join(cols)
        + f"\n    FROM (\n{source_sql}\n) AS {src}{where}\n)"
    ]  # fmt: skip
    aggs = [f"count(*) AS {n}", f"count_if({flag}) AS {_q('_flagged')}", f"avg({score}) AS {_q('_mse')}"]
    relation = _q("scored")
    if baseline:
        ctes += robust_z_sql(_q("scored"), values, _q("_z"))
        relation = _q("_robust")
    if label is not None:
        # ranked: the average rank of each row's score (ties share the mean of their ranks)
        part = f"PARTITION BY {group} " if by is not None else ""
        ranks = [(score, rank)] + ([(_q("_z"), _q("_zr"))] if baseline else [])
        ctes.append(
            f"{_q('ranked')} AS (\n    SELECT *,\n        " + ",\n        ".join(
                f"rank() OVER ({part}ORDER BY {s}) + CAST(count(*) OVER (PARTITION BY {', '.join(keep_group + [s])}) - 1 "
                f"AS DOUBLE) / 2 AS {r}" for s, r in ranks)
            + f"\n    FROM {relation}\n)"
        )  # fmt: skip
        relation = _q("ranked")
        aggs += [
            f"count_if({actual}) AS {_q('_pos')}",
            f"count_if({actual} AND {flag}) AS {_q('_tp')}",
            f"sum(CASE WHEN {actual} THEN {rank} ELSE 0 END) AS {_q('_rs')}",
        ]
        if baseline:
            aggs.append(f"sum(CASE WHEN {actual} THEN {_q('_zr')} ELSE 0 END) AS {_q('_zs')}")
    ctes.append(
        f"{_q('totals')} AS (\n    SELECT {', '.join(keep_group + aggs)}\n    FROM {relation}"
        + (f"\n    GROUP BY {group}" if by is not None else "") + "\n)"
    )  # fmt: skip
    flagged = _q("_flagged")
    metrics = [
        f"{n} AS {_q('rows')}",
        f"CAST(coalesce({flagged}, 0) AS BIGINT) AS {_q('flagged')}",  # count_if of no rows is NULL
        f"CAST({flagged} AS DOUBLE) / NULLIF({n}, 0) AS {_q('anomaly_rate')}",
        f"CAST({_q('_mse')} AS DOUBLE) AS {_q('mse')}",
    ]
    if label is not None:
        pos, tp = _q("_pos"), _q("_tp")

        def divide(num: str, den: str) -> str:  # zero_division = 0, NULL when there are no rows
            return f"CASE WHEN {n} = 0 THEN NULL WHEN {den} = 0 THEN 0.0 ELSE CAST({num} AS DOUBLE) / {den} END"

        p, q = f"CAST({pos} AS DOUBLE)", f"CAST({n} - {pos} AS DOUBLE)"

        def auc(rank_sum: str) -> str:
            return f"({rank_sum} - {p} * ({p} + 1) / 2) / NULLIF({p} * {q}, 0)"

        metrics += [
            f"CAST(coalesce({pos}, 0) AS BIGINT) AS {_q('positives')}",
            f"{divide(tp, flagged)} AS {_q('precision')}",
            f"{divide(tp, pos)} AS {_q('recall')}",
            f"{divide(f'2 * {tp}', f'({pos} + {flagged})')} AS {_q('f1')}",
            f"{auc(_q('_rs'))} AS {_q('roc_auc')}",
        ]
        if baseline:
            metrics += [f"{auc(_q('_zs'))} AS {_q('roc_auc_robust_z')}",
                        f"{auc(_q('_rs'))} - {auc(_q('_zs'))} AS {_q('roc_auc_gain')}"]  # fmt: skip
    return _final(ctes, metrics, by)


def robust_z_sql(relation: str, values: list[str], out: str) -> list[str]:
    """CTEs (the last one named ``"_robust"``: every column of ``relation`` and ``out``)
    scoring each row of ``relation`` with the robust z-score baseline of anomaly models
    (:func:`dbml.tasks.reconstruction.robust_z`): for each DOUBLE column of ``values``
    (quoted names), ``|x - median| / (1.4826 MAD)`` (where the MAD is 0, ``1.2533 x`` the
    mean absolute deviation from the median; a column with neither is left out), fitted
    on every row of ``relation``; ``out`` is their mean over the row's non-NULL columns (0
    when it has none)."""
    med, mad, mean = ([_q(f"_{k}{i}") for i in range(len(values))] for k in ("m", "d", "a"))
    fit = ", ".join(f"median({v}) AS {m}, mad({v}) AS {d}" for v, m, d in zip(values, med, mad))
    spread = ", ".join(f"avg(abs({v} - {m})) AS {a}" for v, m, a in zip(values, med, mean))
    terms = [
        f"abs({v} - {m}) / (CASE WHEN {d} > 0 THEN 1.4826 * {d} WHEN {a} > 0 THEN 1.2533 * {a} END)"
        for v, m, d, a in zip(values, med, mad, mean)
    ]
    total = " + ".join(f"coalesce({t}, 0)" for t in terms)
    counted = " + ".join(f"CAST({t} IS NOT NULL AS INTEGER)" for t in terms)
    return [
        f"{_q('_fit')} AS (\n    SELECT {fit}\n    FROM {relation}\n)",
        f"{_q('_spread')} AS (\n    SELECT {spread}\n    FROM {relation}, {_q('_fit')}\n)",
        (f"{_q('_robust')} AS (\n    SELECT {relation}.*,\n        coalesce(({total}) / NULLIF({counted}, 0), 0) AS {out}\n"
         f"    FROM {relation}, {_q('_fit')}, {_q('_spread')}\n)"),
    ]


def _final(ctes: list[str], metrics: list[str], by: str | None) -> str:
    columns = ([f"{_q('_group')} AS {_q(by)}"] if by is not None else []) + metrics
    order = f"\nORDER BY {_q('_group')} NULLS LAST" if by is not None else ""
    return "WITH " + ",\n".join(ctes) + "\nSELECT\n    " + ",\n    ".join(columns) + f"\nFROM {_q('totals')}" + order


def evaluation_sql(source_sql: str, model_ref: str, target: str | None, task: Any,
                   labels: list | None, by: str | None = None, positive: object | None = None) -> str:  # fmt: skip
    """SQL that returns the metrics of model_ref on the rows of source_sql: one row, or one row per
    value of column `by` (first column named after `by`), as the model's task computes them
    (:meth:`dbml.tasks.Task.evaluation_sql`).

    Args:
        source_sql: a query with the target column and the model's feature columns.
        model_ref: the model reference PREDICT gets, e.g. ``'churn:3'``.
        target: the target column.
        task: the task (a :class:`dbml.tasks.Task` or its name): for the built-in tasks a
            classification (:func:`classification_sql`), a regression
            (:func:`regression_sql`) or an anomaly model (then ``target`` is the BOOLEAN
            label column, or None: see :func:`anomaly_evaluation_sql`).
        labels: the model's class labels, sorted (None for a regression).
        by: a column of the source: one row of metrics per value, ordered (NULL last).
        positive: the positive class of a binary model (a label, or its text); default
            the last label.

    Columns: classification: ``rows, accuracy, [precision, recall, f1,] precision_macro,
    recall_macro, f1_macro, log_loss, roc_auc`` (the bracketed three for binary models);
    regression: ``rows, mae, rmse, r2, mape``; anomaly models: see :func:`anomaly_evaluation_sql`.
    See the module's docstring for definitions.
    """
    from dbml.tasks import Task, task_of

    found = task if isinstance(task, Task) else task_of(task)
    if found is None:
        raise TargetError(f"cannot evaluate a model of task {task!r}")
    return found.evaluation_sql(source_sql, model_ref, target, labels, by=by, positive=positive)


def classification_sql(source_sql: str, model_ref: str, target: str, labels: list | None, by: str | None = None,
                       positive: object | None = None) -> str:  # fmt: skip
    """The metrics of a classifier (see the module's docstring); ``labels`` sorted."""
    if not labels:
        raise TargetError(f"cannot evaluate a classification model without its class labels (got {labels!r})")
    return _classification_sql(source_sql, model_ref, target, list(labels), by, positive)


def regression_sql(source_sql: str, model_ref: str, target: str, by: str | None = None) -> str:
    """The metrics of a regression (see the module's docstring)."""
    return _regression_sql(source_sql, model_ref, target, by)


def confusion_sql(source_sql: str, model_ref: str, target: str, by: str | None = None) -> str:
    """SQL that returns the confusion matrix as rows (actual, predicted, count), ordered.

    Every pair of the values seen as target or prediction (within each group for
    ``by``, whose column comes first) has a row, zeros included: the cells of
    ``sklearn.metrics.confusion_matrix(y, pred)`` in row-major order. Rows whose
    target is NULL are left out.
    """
    group, actual, predicted, value, count = _q("_group"), _q("_actual"), _q("_predicted"), _q("_value"), _q("_count")
    scored, seen, grid, cells, a, b = _q("scored"), _q("seen"), _q("grid"), _q("cells"), _q("a"), _q("b")
    g = [group] if by is not None else []
    # seen: every value that occurs as target or prediction (per group)
    values = (
        f"{seen} AS (\n    SELECT {', '.join(g + [f'{actual} AS {value}'])} FROM {scored}\n"
        f"    UNION\n    SELECT {', '.join(g + [predicted])} FROM {scored}\n)"
    )
    # grid: all (actual, predicted) pairs of those values, so empty cells give 0
    pair = ([f"{a}.{group}"] if by is not None else []) + [f"{a}.{value} AS {actual}", f"{b}.{value} AS {predicted}"]
    same_group = f" AND {a}.{group} IS NOT DISTINCT FROM {b}.{group}" if by is not None else ""
    grid_cte = f"{grid} AS (\n    SELECT {', '.join(pair)}\n    FROM {seen} AS {a} JOIN {seen} AS {b} ON TRUE{same_group}\n)"
    keys = g + [actual, predicted]
    cells_cte = (
        f"{cells} AS (\n    SELECT {', '.join(keys + [f'count(*) AS {count}'])}\n"
        f"    FROM {scored} GROUP BY {', '.join(keys)}\n)"
    )
    on = " AND ".join(f"{grid}.{c} IS NOT DISTINCT FROM {cells}.{c}" for c in keys)
    columns = ([f"{grid}.{group} AS {_q(by)}"] if by is not None else []) + [
        f"{grid}.{actual} AS {_q('actual')}",
        f"{grid}.{predicted} AS {_q('predicted')}",
        f"coalesce({cells}.{count}, 0) AS {_q('count')}",
    ]
    ctes = [_source(source_sql, target, model_ref, by, "label"), values, grid_cte, cells_cte]
    return (
        "WITH " + ",\n".join(ctes)
        + "\nSELECT\n    " + ",\n    ".join(columns)
        + f"\nFROM {grid} LEFT JOIN {cells} ON {on}"
        + "\nORDER BY " + ", ".join(f"{grid}.{c} NULLS LAST" for c in keys)
    )  # fmt: skip



def _series_numbers(source_sql: str, series: Any) -> str:
    """The CTE ``_series``: each series' keys and its number, numbered as
    :func:`dbml.data.series.windows_sql` numbers its windows' ``__dbml_series__``
    (``dense_rank()`` over the keys of the same rows)."""
    keys = ", ".join(_q(k) for k in series.keys)
    return (
        f"{_q('_series')} AS (\n    SELECT DISTINCT {keys}, dense_rank() OVER (ORDER BY {keys}) AS {_q('_sid')}\n"
        f"    FROM (\n{source_sql}\n) AS {_q('src')}\n)"
    )


def forecast_evaluation_sql(source_sql: str, model_ref: str, series: Any, window: int, horizon: int,
                            season: int, by: list[str] | None = None) -> str:  # fmt: skip
    """SQL that backtests a forecaster on the series of source_sql: one row of metrics, or
    one row per value of the ``by`` columns (series key columns, first, named as they are).

    Args:
        source_sql: a query with the time, series key and target columns (others ignored).
        model_ref: the model reference PREDICT gets, e.g. ``'demand:2'``.
        series: the :class:`dbml.data.series.Series` that :func:`dbml.data.series.describe_series`
            found in source_sql (it checks the series as training does).
        window, horizon: the version's; each window's history has ``window`` values and
            PREDICT gives ``horizon``.
        season: the seasonal naive forecast's season (the version's ``metrics.season``).
        by: series key columns to group by; None or [] for one row.

    Columns: ``[by...,] windows, rows, mae, rmse, mape, smape, mase, seasonal_naive_mae``.
    See the module's docstring for definitions.
    """
    from dbml.data.series import windows_sql

    for name, value, low in (("window", window, 1), ("horizon", horizon, 1), ("season", season, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise TargetError(f"cannot evaluate a forecaster with {name} = {value!r}; it must be a whole number >= {low}")
    by = list(by or [])
    unknown = [b for b in by if b not in series.keys]
    if unknown:
        raise OptionError(f"by = '{unknown[0]}' is not a series key column of the forecaster; its keys are "
                          f"{', '.join(series.keys) or '(none: one series)'}")  # fmt: skip
    ref, w, g = _string(model_ref), _q("_win"), [_q(f"_g{i}") for i in range(len(by))]
    ctes: list[str] = []
    windows = windows_sql(f"SELECT * FROM (\n{source_sql}\n) AS {_q('src')}", series, window, horizon)
    join, groups = "", []
    if by:
        ctes = [_series_numbers(source_sql, series)]
        s = _q("_s")
        join = f"\n    JOIN {_q('_series')} AS {s} ON {s}.{_q('_sid')} = {w}.{_q('__dbml_series__')}"
        groups = [f"{s}.{_q(b)} AS {gi}" for b, gi in zip(by, g)]
    history, actual, forecast = _q("_history"), _q("_actual"), _q("_forecast")
    ctes.append(
        f"{_q('_windows')} AS MATERIALIZED (\n    SELECT {''.join(x + ', ' for x in groups)}"
        f"{w}.{_q('history')} AS {history}, CAST({w}.{_q('__dbml_future__')} AS DOUBLE[]) AS {actual},\n"
        f"        CAST(PREDICT({ref}, {', '.join(f'{w}.{_q(c)}' for c in ['history', *series.covariates])}) AS DOUBLE[]) AS {forecast}\n"
        f"    FROM (\n{windows}\n) AS {w}{join}\n)"
    )
    f, k, a, nv = _q("_f"), _q("_k"), _q("_a"), _q("_naive")
    if season <= window:
        naive = f"{history}[{window - season} + ({k} - 1) % {season} + 1]"
    else:
        naive = f"{history}[{window}]"
    ctes.append(
        f"{_q('_steps')} AS (\n    SELECT {''.join(x + ', ' for x in g)}{_q('u')}.{f} AS {f}, {_q('u')}.{k} AS {k}, "
        f"{actual}[{_q('u')}.{k}] AS {a},\n"
        f"        CASE WHEN isnan({naive}) THEN NULL ELSE {naive} END AS {nv}\n"
        f"    FROM {_q('_windows')}, unnest({forecast}) WITH ORDINALITY AS {_q('u')}({f}, {k})\n)"
    )
    err = f"abs({f} - {a})"
    n = _q("_n")
    aggs = [
        f"count(*) AS {n}",
        f"count_if({k} = 1) AS {_q('_windows_n')}",
        f"sum({err}) AS {_q('_abs')}",
        f"sum(({f} - {a}) * ({f} - {a})) AS {_q('_sq')}",
        f"sum({err} / abs({a})) FILTER (WHERE {a} <> 0) AS {_q('_ape')}",
        f"count(*) FILTER (WHERE {a} <> 0) AS {_q('_nonzero')}",
        f"sum(CASE WHEN abs({f}) + abs({a}) > 0 THEN 2 * {err} / (abs({f}) + abs({a})) ELSE 0.0 END) AS {_q('_sape')}",
        f"avg(abs({nv} - {a})) AS {_q('_naive_mae')}",
    ]
    ctes.append(
        f"{_q('totals')} AS (\n    SELECT {', '.join(g + aggs)}\n    FROM {_q('_steps')}"
        + (f"\n    GROUP BY {', '.join(g)}" if by else "") + "\n)"
    )  # fmt: skip
    mae = f"{_q('_abs')} / NULLIF({n}, 0)"
    metrics = [
        f"CAST(coalesce({_q('_windows_n')}, 0) AS BIGINT) AS {_q('windows')}",
        f"{n} AS {_q('rows')}",
        f"{mae} AS {_q('mae')}",
        f"sqrt({_q('_sq')} / NULLIF({n}, 0)) AS {_q('rmse')}",
        f"{_q('_ape')} / NULLIF({_q('_nonzero')}, 0) AS {_q('mape')}",
        f"{_q('_sape')} / NULLIF({n}, 0) AS {_q('smape')}",
        f"{mae} / NULLIF({_q('_naive_mae')}, 0) AS {_q('mase')}",
        f"{_q('_naive_mae')} AS {_q('seasonal_naive_mae')}",
    ]
    columns = [f"{gi} AS {_q(b)}" for gi, b in zip(g, by)] + metrics
    order = ("\nORDER BY " + ", ".join(f"{gi} NULLS LAST" for gi in g)) if by else ""
    return "WITH " + ",\n".join(ctes) + "\nSELECT\n    " + ",\n    ".join(columns) + f"\nFROM {_q('totals')}" + order
