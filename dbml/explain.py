"""SQL for EXPLAIN MODEL: permutation importance of each feature of a model version.

Pure functions: nothing here touches a database. :func:`permutation_importance_sql`
builds one query (with ``PREDICT`` calls for the connection to rewrite) that DuckDB
runs over the source rows; no row goes to Python.

The importance of a feature is how much the model's metric (accuracy for a
classification, R² for a regression) drops when that feature's column is shuffled
across the rows while every other column stays in place, averaged over ``repeats``
shuffles (Breiman's permutation importance, as ``sklearn.inspection.
permutation_importance`` computes it, with its own shuffles).

An anomaly (reconstruction) model has no target: its metric is ``mse``, the mean
ANOMALY_SCORE (PREDICT gives it) over the rows, and a feature's importance is how much
that mean *rises* when the feature is shuffled (``metric shuffled - baseline``), so
that here too a larger importance means the model leans more on the feature. Shuffling
breaks how a feature goes with the others; a feature the network rebuilds from the
other columns (or uses to rebuild them) raises the error most. Every row is used (there
is no target to be NULL).

The shape of the query::

    WITH "_src" AS MATERIALIZED (      -- features and target of the rows with a target,
        SELECT <features>, <target>,   -- numbered by the hash of their values
               row_number() OVER (ORDER BY hash(<features>, <target>)) AS "_dbml_rid"
        FROM (\\n<source_sql>\\n) AS "src" WHERE <target> IS NOT NULL),
    "_features"("_k", "feature") AS (VALUES (1, 'a'), ...),
    "_perm" AS (                       -- per (feature k, repeat r) and row: its partner
        SELECT k, r, rid, row_number() OVER (PARTITION BY k, r ORDER BY hash(rid, seed, r, k), rid)
        FROM "_features" × range(1, repeats + 1) × "_src"),
    "_base_totals", "_base" AS (...)   -- the metric with PREDICT('m:3', *) on the rows as they are
    "_scores" AS (                     -- ONE PREDICT over all (k, r, row); feature k from the partner
        SELECT k, r, count(*), count_if(PREDICT('m:3', CASE WHEN k = 1 THEN p.a ELSE s.a END AS a,
                                                       CASE WHEN k = 2 THEN p.b ELSE s.b END AS b) = s.y)
        FROM "_perm" JOIN "_src" AS s (the row) JOIN "_src" AS p (its partner) GROUP BY k, r),
    "_metrics", "_imp", "_agg" AS (...)  -- metric per (k, r); drop = baseline - metric; mean, std
    SELECT feature, importance, importance_std, baseline, metric, rank FROM "_agg" ORDER BY rank

The answer is deterministic given ``seed`` and the rows, whatever order DuckDB reads
them in. A row's number comes from the hash of its own values (rows whose values are
all equal may swap numbers, which changes nothing). Repeat ``r`` of feature ``k``
sorts the row numbers by ``hash(rid, seed, r, k)``: row ``i`` is scored with feature
``k`` taken from row ``partner``, the position of ``i`` in that order, and every other
column its own; each (feature, repeat) has its own shuffle. Sums of doubles (R²'s
squared errors and variance) are taken in row-number order and the mean and std over
repeats in repeat order, so that threads cannot change the last bits.

Why one query over the cross join features × repeats × rows rather than a
``UNION ALL`` of one SELECT per (feature, repeat), each with its own PREDICT: measured
on 10,000 rows × 10 features × 5 repeats (a [128, 64] MLP, 2 CPU cores), the cross
join ran in 0.34-0.37 s (classification) and 0.31-0.33 s (regression, before its sums
were ordered; 0.35 s after) against 0.47-0.51 s for the UNION ALL, with the same
answers; its SQL is 3 kB instead of 24-26 kB, and dbml's rewrite of it takes
0.015-0.035 s instead of 0.23-0.25 s (one PREDICT call to parse instead of 50). Of
the cross join's time, PREDICT over the 500,000 shuffled rows takes about half
(0.17 s). The cost: the window that numbers the shuffles holds rows × features ×
repeats rows (DuckDB spills to disk when it must).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dbml.errors import FeatureError, OptionError, TargetError
from dbml.sqltext import quote as _q, string as _string

__all__ = ["permutation_importance_sql", "permutation_sql", "Measure", "ACCURACY", "R2", "MEAN_SCORE", "measure_of"]


@dataclass(frozen=True)
class Measure:
    """What EXPLAIN MODEL measures for a task (:meth:`dbml.tasks.Task.explain_measure`).

    Attributes:
        metric: its name in the result's ``metric`` column.
        aggregates: (PREDICT's SQL, the target's SQL, the row-order column) -> the
            aggregates the metric needs over a group of rows (sums of doubles taken in
            row order, so that threads cannot change their last bits).
        value: (the relation holding those aggregates, the target's SST) -> the metric.
        target: whether a model of the task is explained against its target column.
        rises: the importance is the metric's rise when a feature is shuffled (an
            error, lower is better), not its drop.
        spread: the baseline also computes the target's total sum of squares around
            its mean (``_sst``), which :attr:`value` reads (R²).
    """

    metric: str
    aggregates: Callable[[str, str, str], list[str]]
    value: Callable[[str, str], str]
    target: bool = True
    rises: bool = False
    spread: bool = False


def _accuracy_aggregates(predicted: str, actual: str, order: str) -> list[str]:
    return [f"count(*) AS {_q('_n')}", f"count_if({predicted} = {actual}) AS {_q('_correct')}"]


def _accuracy(of: str, sst: str) -> str:
    return f"CAST({of}.{_q('_correct')} AS DOUBLE) / NULLIF({of}.{_q('_n')}, 0)"


def _sse_aggregates(predicted: str, actual: str, order: str) -> list[str]:
    err = f"CAST({actual} AS DOUBLE) - CAST({predicted} AS DOUBLE)"
    return [f"count(*) AS {_q('_n')}", f"fsum(pow({err}, 2) ORDER BY {order}) AS {_q('_sse')}"]  # PREDICT written once


def _r2(of: str, sst: str) -> str:
    n, sse = f"{of}.{_q('_n')}", f"{of}.{_q('_sse')}"
    return (
        f"CASE WHEN {n} < 2 THEN NULL WHEN {sst} = 0 THEN (CASE WHEN {sse} = 0 THEN 1.0 ELSE 0.0 END) "
        f"ELSE 1 - {sse} / {sst} END"
    )


def _sum_aggregates(predicted: str, actual: str, order: str) -> list[str]:
    return [f"count(*) AS {_q('_n')}", f"fsum(CAST({predicted} AS DOUBLE) ORDER BY {order}) AS {_q('_sum')}"]


def _mean(of: str, sst: str) -> str:
    return f"{of}.{_q('_sum')} / NULLIF({of}.{_q('_n')}, 0)"


# accuracy: the share of rows whose PREDICT equals the target (a classifier)
ACCURACY = Measure("accuracy", _accuracy_aggregates, _accuracy)
# R²: 1 - SSE / SST around the mean of the rows scored, as EVALUATE MODEL gives it (a regression)
R2 = Measure("r2", _sse_aggregates, _r2, spread=True)
# mse: the mean of PREDICT (an anomaly model's ANOMALY_SCORE), no target; its rise is the importance
MEAN_SCORE = Measure("mse", _sum_aggregates, _mean, target=False, rises=True)


def measure_of(task: Any, model_ref: str) -> Measure:
    """The measure of ``task`` (a :class:`dbml.tasks.Task` or its name); the task's
    refusal when it has none, a TargetError for an unknown task."""
    from dbml.tasks import TASKS, Task, task_of

    found = task if isinstance(task, Task) else task_of(task)
    measure = found.explain_measure() if found is not None else None
    if measure is None:
        if found is not None:
            raise found.refusal("EXPLAIN MODEL", model_ref)
        names = [t.name for t in TASKS.values() if t.explain_measure() is not None]
        raise TargetError(f"cannot explain a model of task {task!r}; tasks are {', '.join(names)}")
    return measure


def _check(target: str | None, features: list[str], repeats: int, seed: int) -> None:
    if not features:
        raise FeatureError("cannot explain a model without features")
    lowered = [f.lower() for f in features]
    if len(set(lowered)) != len(lowered):
        raise FeatureError(f"the features of the model repeat a name: {', '.join(features)}")
    if target is not None and target.lower() in lowered:
        raise FeatureError(f"the target column '{target}' is also a feature")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise OptionError(f"repeats must be a positive integer, got {repeats!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise OptionError(f"seed must be a non-negative integer, got {seed!r}")


def _columns(target: str | None, features: list[str]) -> list[str]:
    """The columns ``_src`` keeps: the features, then the target (if any)."""
    return [*features, target] if target is not None else list(features)


def _rid_name(target: str | None, features: list[str]) -> str:
    """The row-number column: a name no feature or target has."""
    taken = {c.lower() for c in _columns(target, features)}
    name = "_dbml_rid"
    while name in taken:
        name = "_" + name
    return name


def _source_cte(source_sql: str, target: str | None, features: list[str], rid: str) -> str:
    """``_src``: the features and target of the rows with a target (every row without a
    target), numbered by their hash."""
    cols = ", ".join(_q(c) for c in _columns(target, features))
    where = f"\n    WHERE {_q(target)} IS NOT NULL" if target is not None else ""
    # the source on lines of its own: a trailing -- comment in it ends at its newline
    return (
        f"{_q('_src')} AS MATERIALIZED (\n"
        f"    SELECT {cols},\n"
        f"        row_number() OVER (ORDER BY hash({cols})) AS {_q(rid)}\n"
        f"    FROM (\n{source_sql}\n) AS {_q('src')}{where}\n)"
    )


def _features_cte(features: list[str]) -> str:
    values = ", ".join(f"({k}, {_string(f)})" for k, f in enumerate(features, start=1))
    return f"{_q('_features')}({_q('_k')}, {_q('feature')}) AS (VALUES {values})"


def _perm_cte(repeats: int, seed: int, rid: str) -> str:
    """``_perm``: for every (feature k, repeat r) and row, the row number of its partner."""
    k, r, partner = _q("_k"), _q("_r"), _q("_partner")
    shuffle = f"hash(s.{_q(rid)}, {seed}, g.{r}, f.{k})"
    return (
        f"{_q('_perm')} AS (\n"
        f"    SELECT f.{k}, g.{r}, s.{_q(rid)},\n"
        f"        row_number() OVER (PARTITION BY f.{k}, g.{r} ORDER BY {shuffle}, s.{_q(rid)}) AS {partner}\n"
        f"    FROM {_q('_features')} AS f CROSS JOIN range(1, {repeats + 1}) AS g({r}) CROSS JOIN {_q('_src')} AS s\n)"
    )


def permutation_sql(source_sql: str, target: str | None, features: list[str], repeats: int = 5, seed: int = 0) -> str:
    """SQL returning the shuffles that :func:`permutation_importance_sql` scores with: one row
    per (feature, repeat, row) with columns ``feature, repeat, rid, partner`` and then the
    row's own feature and target columns, ordered by feature (in the model's order),
    repeat and rid. ``target`` None (an anomaly model): every row, no target column.

    ``rid`` numbers the rows with a target 1..n; in repeat ``repeat`` (1..repeats) the
    row ``rid`` is scored with ``feature`` taken from the row numbered ``partner``. For
    checking the importances outside SQL; EXPLAIN MODEL itself does not run it.
    """
    _check(target, features, repeats, seed)
    rid = _rid_name(target, features)
    k, r = _q("_k"), _q("_r")
    ctes = [_source_cte(source_sql, target, features, rid), _features_cte(features), _perm_cte(repeats, seed, rid)]
    columns = [
        f"f.{_q('feature')}", f"m.{r} AS {_q('repeat')}", f"m.{_q(rid)} AS {_q('rid')}",
        f"m.{_q('_partner')} AS {_q('partner')}", *(f"s.{_q(c)}" for c in _columns(target, features)),
    ]  # fmt: skip
    return (
        "WITH " + ",\n".join(ctes)
        + "\nSELECT " + ", ".join(columns)
        + f"\nFROM {_q('_perm')} AS m JOIN {_q('_features')} AS f ON f.{k} = m.{k}"
        + f" JOIN {_q('_src')} AS s ON s.{_q(rid)} = m.{_q(rid)}"
        + f"\nORDER BY m.{k}, m.{r}, m.{_q(rid)}"
    )  # fmt: skip


def permutation_importance_sql(source_sql: str, model_ref: str, target: str | None, task: Any,
                               features: list[str], repeats: int = 5, seed: int = 0) -> str:  # fmt: skip
    """SQL returning one row per feature: feature, importance (mean drop of the metric when that
    feature's column is shuffled; for an anomaly model the mean rise of its mse), importance_std
    (population std over repeats), baseline (the metric on the unshuffled rows), metric (the
    task's :class:`Measure`: 'accuracy', 'r2' or 'mse' for the built-in tasks), rank (1 = most
    important), ordered by rank.

    Args:
        source_sql: a query with the target column and the model's feature columns.
        model_ref: the model reference PREDICT gets, e.g. ``'churn:3'``.
        target: the target column; rows where it is NULL are left out. None for an anomaly model.
        task: the task (a :class:`dbml.tasks.Task` or its name), whose
            :meth:`~dbml.tasks.Task.explain_measure` says what is measured: for a
            classifier :data:`ACCURACY` (the share of rows whose PREDICT equals the
            target), for a regression :data:`R2` (``1 - SSE / SST`` with SST around the
            mean of the rows scored; NULL for fewer than two rows; 1.0 or 0.0 for a
            constant target, as EVALUATE MODEL gives), for an anomaly model
            :data:`MEAN_SCORE` (mse, the mean anomaly score, as EVALUATE MODEL gives; no
            target).
        features: the model's feature columns, in the model's order.
        repeats: shuffles per feature (at least 1).
        seed: seed of the shuffles; the same seed on the same rows gives the same numbers.

    Ties in importance take ranks in the model's feature order. With no rows (or only
    NULL targets) every feature has a row with NULL importance, std and baseline.
    """
    measure = measure_of(task, model_ref)
    if (target is None) == measure.target:
        name = getattr(task, "name", task)
        raise TargetError(
            f"a {name} model is explained " + ("against its target column" if measure.target else "without a target")
        )
    _check(target, features, repeats, seed)
    return _cross_join_sql(source_sql, model_ref, target, measure, features, repeats, seed)


def _final(measure: Measure, ctes: list[str]) -> str:
    """The per-feature answer from ``_features``, ``_base`` (one row: ``_m``, the baseline)
    and ``_metrics`` (``_k``, ``_r``, ``_m`` per feature and repeat)."""
    k, r, m, drop = _q("_k"), _q("_r"), _q("_m"), _q("_drop")
    # the drop of a higher-is-better metric; the rise of an error (an anomaly model's mse)
    change = f"x.{m} - b.{m}" if measure.rises else f"b.{m} - x.{m}"
    imp = (
        f"{_q('_imp')} AS (\n"
        f"    SELECT f.{k}, f.{_q('feature')}, b.{m} AS {_q('baseline')}, x.{r}, {change} AS {drop}\n"
        f"    FROM {_q('_features')} AS f CROSS JOIN {_q('_base')} AS b LEFT JOIN {_q('_metrics')} AS x ON x.{k} = f.{k}\n)"
    )
    agg = (
        f"{_q('_agg')} AS (\n"
        f"    SELECT {k}, {_q('feature')}, avg({drop} ORDER BY {r}) AS {_q('importance')},\n"
        f"        stddev_pop({drop} ORDER BY {r}) AS {_q('importance_std')},\n"
        f"        any_value({_q('baseline')}) AS {_q('baseline')}\n"
        f"    FROM {_q('_imp')} GROUP BY {k}, {_q('feature')}\n)"
    )
    rank = _q("rank")
    return (
        "WITH " + ",\n".join([*ctes, imp, agg])
        + f"\nSELECT {_q('feature')}, {_q('importance')}, {_q('importance_std')}, {_q('baseline')},\n"
        + f"    {_string(measure.metric)} AS {_q('metric')},\n"
        + f"    row_number() OVER (ORDER BY {_q('importance')} DESC NULLS LAST, {k}) AS {rank}\n"
        + f"FROM {_q('_agg')}\nORDER BY {rank}"
    )  # fmt: skip


def _base_ctes(model_ref: str, target: str | None, measure: Measure, rid: str) -> list[str]:
    """``_base`` (the metric on the unshuffled rows, and the target's SST) and its totals."""
    ref = _string(model_ref)
    aggs = measure.aggregates(f"PREDICT({ref}, *)", _q(target) if target is not None else "NULL", _q(rid))
    sst = _q("_sst")
    if measure.spread:
        aggs.append(f"var_pop(CAST({_q(target)} AS DOUBLE) ORDER BY {_q(rid)}) * count(*) AS {sst}")
    totals = f"{_q('_base_totals')} AS (\n    SELECT {', '.join(aggs)}\n    FROM {_q('_src')}\n)"
    base = (
        f"{_q('_base')} AS (\n    SELECT {measure.value('t', 't.' + sst)} AS {_q('_m')}, "
        f"{'t.' + sst if measure.spread else 'NULL'} AS {sst}\n    FROM {_q('_base_totals')} AS t\n)"
    )
    return [totals, base]


def _metrics_cte(measure: Measure, scores: str) -> str:
    return (
        f"{_q('_metrics')} AS (\n"
        f"    SELECT x.{_q('_k')}, x.{_q('_r')}, {measure.value('x', 'b.' + _q('_sst'))} AS {_q('_m')}\n"
        f"    FROM {scores} AS x CROSS JOIN {_q('_base')} AS b\n)"
    )


def _cross_join_sql(source_sql: str, model_ref: str, target: str | None, measure: Measure, features: list[str],
                    repeats: int, seed: int) -> str:  # fmt: skip
    rid = _rid_name(target, features)
    k, r, partner = _q("_k"), _q("_r"), _q("_partner")
    ref = _string(model_ref)
    args = [
        f"CASE WHEN m.{k} = {i} THEN p.{_q(f)} ELSE s.{_q(f)} END AS {_q(f)}" for i, f in enumerate(features, start=1)
    ]
    predicted = f"PREDICT({ref},\n            " + ",\n            ".join(args) + ")"
    actual = f"s.{_q(target)}" if target is not None else "NULL"
    scores = (
        f"{_q('_scores')} AS (\n"
        f"    SELECT m.{k}, m.{r}, {', '.join(measure.aggregates(predicted, actual, f'm.{_q(rid)}'))}\n"
        f"    FROM {_q('_perm')} AS m\n"
        f"    JOIN {_q('_src')} AS s ON s.{_q(rid)} = m.{_q(rid)}\n"
        f"    JOIN {_q('_src')} AS p ON p.{_q(rid)} = m.{partner}\n"
        f"    GROUP BY m.{k}, m.{r}\n)"
    )
    ctes = [
        _source_cte(source_sql, target, features, rid), _features_cte(features), _perm_cte(repeats, seed, rid),
        *_base_ctes(model_ref, target, measure, rid), scores, _metrics_cte(measure, _q("_scores")),
    ]  # fmt: skip
    return _final(measure, ctes)
