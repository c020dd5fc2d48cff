"""The data of EVALUATE's pictures, stored with each run (the ``curves`` of its registry row).

Each ``*_sql`` function builds one query (PREDICT calls for the connection to rewrite)
whose few aggregated rows the matching function turns into short lists: DuckDB bins the
scores, Python only accumulates a few hundred numbers. The curves are over the whole
source (EVALUATE's ``by`` groups get none):

* classification: the confusion matrix (actual rows, predicted columns, in the model's
  label order, plus ``(other)`` for actual values the model never saw); per label
  (binary: the positive label only) ROC and precision-recall curves from the label's
  probability binned at 1/200 (``auc`` and ``average_precision`` are computed on those
  bins, so they can differ from EVALUATE's exact ``roc_auc`` by the binning), and a
  10-bin calibration (mean predicted probability against the share of that label).
* regression: a sample of at most 1,000 (actual, predicted) pairs, fixed seed.
* reconstruction: a 40-bin histogram of ANOMALY_SCORE with the stored threshold; with a
  label, the anomaly score's ROC and precision-recall curves.
* forecast: the last complete window of up to 8 series: the history before it, the
  actual values, the forecast and its interval (as FORECAST computes it).

The curves are a second pass over the source, after the metrics: it scores the rows
again, and a source that gives other rows each time it runs (``random()``, ``USING
SAMPLE`` without a seed, a table another connection is writing) gives curves of other
rows than the metrics. ``WITH (curves = false)`` skips the pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dbml.sqltext import quote as _q, string as _string
from dbml.udfs import label_field as _label_text  # a label's PREDICT_PROBA field, also its name here

__all__ = ["classification_curves", "regression_curves", "anomaly_curves", "forecast_curves", "BINS"]

BINS = 200  # probability bins of ROC and precision-recall curves
_CALIBRATION_BINS = 10
_SAMPLE = 1000
_SCORE_BINS = 40
_SERIES = 8


def _case_index(column: str, literals: list[str]) -> str:
    return "CASE " + " ".join(f"WHEN {column} = {lit} THEN {i}" for i, lit in enumerate(literals)) + " ELSE -1 END"


def _binned(rows: list[tuple], scale: float = 1.0) -> dict[str, Any] | None:
    """ROC, precision-recall and calibration from (bin, rows, positives, sum of scores)."""
    n = np.zeros(BINS, dtype=np.int64)
    pos = np.zeros(BINS, dtype=np.int64)
    total = np.zeros(BINS, dtype=np.float64)
    for b, count, positives, s in rows:
        n[b], pos[b], total[b] = count, positives, s or 0.0
    P, N = int(pos.sum()), int((n - pos).sum())
    if P == 0 or N == 0:
        return None  # one class only: no curve is defined
    # thresholds from the top bin down: everything at or above the bin is predicted positive
    tp = np.concatenate([[0], np.cumsum(pos[::-1])])
    fp = np.concatenate([[0], np.cumsum((n - pos)[::-1])])
    keep = np.concatenate([[True], n[::-1] > 0])  # one point per bin that holds rows
    tpr, fpr = tp[keep] / P, fp[keep] / N
    predicted = tp[keep] + fp[keep]
    precision = np.where(predicted > 0, tp[keep] / np.maximum(predicted, 1), 1.0)
    recall = tpr
    ap = float(np.sum(np.diff(recall) * precision[1:]))
    per = BINS // _CALIBRATION_BINS
    cal_n = n.reshape(_CALIBRATION_BINS, per).sum(axis=1)
    cal_pos = pos.reshape(_CALIBRATION_BINS, per).sum(axis=1)
    cal_sum = total.reshape(_CALIBRATION_BINS, per).sum(axis=1)
    filled = cal_n > 0
    return {
        "roc": {"fpr": fpr.round(6).tolist(), "tpr": tpr.round(6).tolist(), "auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))},
        "pr": {"recall": recall.round(6).tolist(), "precision": precision.round(6).tolist(), "average_precision": ap},
        "calibration": {
            "mean_predicted": (cal_sum[filled] / cal_n[filled] * scale).round(6).tolist(),
            "fraction_positive": (cal_pos[filled] / cal_n[filled]).round(6).tolist(),
            "count": cal_n[filled].tolist(),
        },
    }


def classification_curves_sql(source_sql: str, model_ref: str, target: str, labels: list[Any],
                              ranked: list[int]) -> str:  # fmt: skip
    """Rows (part, i, j, rows, positives, score sum): part 0 is the confusion matrix
    (i actual, j predicted, -1 for a value outside the labels), part k + 1 the bins j of
    label k's probability (only for the labels in ``ranked``)."""
    from dbml.evaluate import _label_literal

    lits = [_label_literal(label) for label in labels]
    src, actual, predicted, proba = _q("src"), _q("_actual"), _q("_predicted"), _q("_proba")
    ref = _string(model_ref)
    parts = [
        f"SELECT 0 AS part, {_case_index(actual, lits)} AS i, {_case_index(predicted, lits)} AS j, count(*) AS n, "
        f"0 AS pos, 0.0 AS s FROM {_q('scored')} GROUP BY ALL"
    ]
    for k in ranked:
        p = f"struct_extract({proba}, {_string(_label_text(labels[k]))})"
        parts.append(
            f"SELECT {k + 1} AS part, 0 AS i, least(CAST(floor({p} * {BINS}) AS INTEGER), {BINS - 1}) AS j, count(*) AS n, "
            f"count_if({actual} = {lits[k]}) AS pos, sum({p}) AS s FROM {_q('scored')} WHERE {p} IS NOT NULL GROUP BY ALL"
        )
    return (
        f"WITH {_q('scored')} AS MATERIALIZED (\n    SELECT {src}.{_q(target)} AS {actual}, PREDICT({ref}, *) AS {predicted}, "
        f"PREDICT_PROBA({ref}, *) AS {proba}\n    FROM (\n{source_sql}\n) AS {src}\n    WHERE {src}.{_q(target)} IS NOT NULL\n)\n"
        + "\nUNION ALL\n".join(parts)
    )


def classification_curves(con, source_sql: str, model_ref: str, target: str, labels: list[Any],
                          positive: Any) -> dict[str, Any]:  # fmt: skip
    """The curves of a classifier on the source's rows (see the module's docstring)."""
    names = [_label_text(label) for label in labels]
    ranked = [labels.index(positive)] if len(labels) == 2 else list(range(len(labels)))
    rows = con.sql(classification_curves_sql(source_sql, model_ref, target, labels, ranked)).fetchall()
    confusion = [r for r in rows if r[0] == 0]
    other = any(i == -1 for _, i, _, _, _, _ in confusion)
    size = len(labels) + (1 if other else 0)
    matrix = [[0] * size for _ in range(size)]
    for _, i, j, n, _, _ in confusion:
        matrix[i if i >= 0 else size - 1][j if j >= 0 else size - 1] += int(n)
    out: dict[str, Any] = {
        "labels": names,
        "positive": _label_text(positive) if len(labels) == 2 else None,
        "confusion": {"labels": names + (["(other)"] if other else []), "matrix": matrix},
        "roc": {}, "pr": {}, "calibration": {},
    }  # fmt: skip
    for k in ranked:
        binned = _binned([(j, n, pos, s) for part, _, j, n, pos, s in rows if part == k + 1])
        if binned is not None:
            for key in ("roc", "pr", "calibration"):
                out[key][names[k]] = binned[key]
    return out


def regression_curves(con, source_sql: str, model_ref: str, target: str) -> dict[str, Any]:
    """A fixed-seed sample of (actual, predicted) pairs of a regression."""
    src, actual, predicted = _q("src"), _q("_actual"), _q("_predicted")
    row = con.sql(
        f"WITH {_q('scored')} AS MATERIALIZED (\n    SELECT CAST({src}.{_q(target)} AS DOUBLE) AS {actual}, "
        f"CAST(PREDICT({_string(model_ref)}, *) AS DOUBLE) AS {predicted}\n    FROM (\n{source_sql}\n) AS {src}\n"
        f"    WHERE {src}.{_q(target)} IS NOT NULL\n),\n"
        f"{_q('sample')} AS (SELECT * FROM {_q('scored')} USING SAMPLE reservoir({_SAMPLE} ROWS) REPEATABLE (42))\n"
        f"SELECT (SELECT count(*) FROM {_q('scored')}), list({actual} ORDER BY {actual}, {predicted}), "
        f"list({predicted} ORDER BY {actual}, {predicted}) FROM {_q('sample')}"
    ).fetchall()[0]
    return {"sample": {"actual": row[1] or [], "predicted": row[2] or []}, "sample_of": int(row[0])}


def anomaly_curves(con, source_sql: str, model_ref: str, threshold: float | None, label_sql: str | None) -> dict[str, Any]:
    """ANOMALY_SCORE's histogram (and, with a label, its ROC and precision-recall curves)."""
    src, score, flag = _q("src"), _q("_score"), _q("_label")
    label = f", {label_sql} AS {flag}" if label_sql else ""
    scored = (
        f"WITH {_q('scored')} AS MATERIALIZED (\n    SELECT ANOMALY_SCORE({_string(model_ref)}, *) AS {score}{label}\n"
        f"    FROM (\n{source_sql}\n) AS {src}" + (f"\n    WHERE {label_sql} IS NOT NULL" if label_sql else "") + "\n),\n"
        f"{_q('range')} AS (SELECT min({score}) AS lo, max({score}) AS hi FROM {_q('scored')})\n"
    )

    def bins(count: int) -> str:
        width = f"greatest((r.hi - r.lo) / {count}, 1e-300)"
        return f"least(CAST(floor(({score} - r.lo) / {width}) AS INTEGER), {count - 1})"

    rows = con.sql(
        scored + f"SELECT 0 AS part, {bins(_SCORE_BINS)} AS b, count(*), 0, any_value(r.lo), any_value(r.hi) "
        f"FROM {_q('scored')}, {_q('range')} AS r WHERE {score} IS NOT NULL GROUP BY ALL"
        + (f"\nUNION ALL\nSELECT 1, {bins(BINS)}, count(*), count_if({flag}), sum(({score} - r.lo) / greatest(r.hi - r.lo, 1e-300)), "
           f"any_value(r.hi) FROM {_q('scored')}, {_q('range')} AS r WHERE {score} IS NOT NULL GROUP BY ALL" if label_sql else "")
    ).fetchall()  # fmt: skip
    hist = [r for r in rows if r[0] == 0]
    counts = [0] * _SCORE_BINS
    lo = hi = None
    for _, b, n, _, low, high in hist:
        counts[b] += int(n)
        lo, hi = low, high
    out: dict[str, Any] = {"threshold": threshold}
    if lo is not None:
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, _SCORE_BINS + 1)
        out["scores"] = {"edges": edges.round(6).tolist(), "counts": counts}
    if label_sql:
        binned = _binned([(b, n, pos, s) for part, b, n, pos, s, _ in rows if part == 1])
        if binned is not None:
            out["roc"] = {"anomaly": binned["roc"]}
            out["pr"] = {"anomaly": binned["pr"]}
    return out


def forecast_curves(ctx, rec: dict[str, Any], source_sql: str, series: Any) -> dict[str, Any]:
    """The last complete window of up to 8 series: history, actual values, forecast and
    the 90% interval, computed as FORECAST computes them (``ctx``: the handler context)."""
    from dbml.data.series import half_widths, roll as _roll
    from dbml.tasks.statement import session

    window, horizon = int(rec["options"]["window"]), int(rec["options"]["horizon"])
    t, y = _q(series.time), _q(series.target)
    keys = ", ".join(_q(k) for k in series.keys)
    by = f"PARTITION BY {keys} " if series.keys else ""
    group = f"{keys}, " if series.keys else ""
    known = list(getattr(series, "covariates", []))
    lists = "".join(f", list(CAST({_q(c)} AS DOUBLE) ORDER BY {t})" for c in known)
    rows = ctx.db().sql(
        f"SELECT {group}list(CAST({t} AS VARCHAR) ORDER BY {t}), list(CAST({y} AS DOUBLE) ORDER BY {t}){lists} FROM ("
        f"SELECT *, row_number() OVER ({by}ORDER BY {t} DESC) AS __dbml_r FROM (\n{source_sql}\n)) "
        f"WHERE __dbml_r <= {window + horizon} GROUP BY ALL HAVING count(*) = {window + horizon} ORDER BY ALL LIMIT {_SERIES}"
    ).fetchall()  # fmt: skip
    if not rows:
        return {"series": []}
    confidence = 0.9
    n = len(series.keys)
    rows = [(*r[: n + 2], r[n + 2 :]) for r in rows]  # keys, times, values, the covariates' lists
    history = np.asarray([[np.nan if v is None else v for v in r[-2][:window]] for r in rows], dtype=np.float32)
    covariates = {c: np.asarray([[np.nan if v is None else v for v in r[-1][j]] for r in rows], dtype=np.float32)
                  for j, c in enumerate(known)}  # fmt: skip
    values = _roll(session(ctx, rec), history, horizon, horizon, window, covariates=covariates)
    spreads = half_widths(rec["metrics"], history, horizon, horizon, confidence,
                          [series.scales.get(tuple(r[: len(series.keys)])) for r in rows])  # fmt: skip
    out = []
    for i, r in enumerate(rows):
        times, ys = r[-3], r[-2]
        f, half = values[i].astype(float), spreads[i].astype(float)
        out.append({
            "key": list(r[: len(series.keys)]) if series.keys else None,
            "history": {"time": times[:window], "actual": ys[:window]},
            "time": times[window:], "actual": ys[window:],
            "predicted": f.round(6).tolist(), "lower": (f - half).round(6).tolist(), "upper": (f + half).round(6).tolist(),
            "confidence": confidence,
        })  # fmt: skip
    return {"series": out}
