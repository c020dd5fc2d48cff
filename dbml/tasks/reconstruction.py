"""Reconstruction (anomaly detection): no target; the network rebuilds the fixed
encoding of its inputs (standardised numbers, one-hot categories, standardised array
elements), and a row's anomaly score, computed inside the exported graph with standard
ONNX operators, combines two terms:

* ``reconstruction``: the mean squared reconstruction error, each value's error divided
  by that value's typical squared error (plus a tenth of the mean and
  :data:`ERROR_FLOOR`, so that a value rebuilt almost exactly does not dominate). It sees
  rows that break the relations between columns.
* ``values``: the mean surprise of the row's values, each -log of its bin's density in
  its column's histogram relative to the densest bin (HBOS, Goldstein and Dengel 2012:
  :func:`histograms`). It sees values that are rare by themselves, which an autoencoder
  learns to rebuild too (the rare rows are in its training rows).

Each term becomes the -log of its tail share among the reference rows (the share of them
scoring at least as high, smoothed; beyond them a Pareto tail), and the score is their
sum: Fisher's method of combining two tests, so neither term's scale decides, and one
term's extreme value counts for at most about log(REFERENCE) = 7 more than the other's.
The reference rows are the held-out rows and a sample of the training rows, weighted to
their number; they also fix each value's typical error and the histograms.

Measured with benchmarks/families.py's section 2 (six tables with planted or labelled
rare rows, 105 to 5,000 rows; ROC AUC with defaults, seed 42), against the reconstruction
error alone of the former default network (hidden [64, 32], a code of a third of the
inputs): breast cancer 0.830 -> 0.966, wine 0.39 -> 0.900, digits 0.46 -> 0.832,
penguins 0.68 -> 0.970, iris 0.78 -> 0.874, the mixed table 0.907 -> 0.859
(IsolationForest: 0.968, 0.855, 0.744, 0.828, 0.842, 0.851). Neither term alone does as
well everywhere: the values term scores about 0.975 on breast cancer and 0.95 on iris but
0.61 on the mixed table, whose rare rows only break relations; the reconstruction term of
the linear default about 0.91, 0.59 and 0.89. The sum lies between the two terms, above
both on wine, 0.01 to 0.08 below the better elsewhere.

``contamination`` fixes the threshold at training: the (1 - contamination) quantile of
the reference rows' scores, stored in the graph, so IS_ANOMALY flags about that share of
the rows the model learnt from (``training_anomaly_rate`` for the training rows,
``anomaly_rate`` for the held-out ones). Outputs ``anomaly_score``, ``is_anomaly`` and
``embedding`` (the bottleneck). Anchor: BigQuery ML's ML.DETECT_ANOMALIES on autoencoders
(contamination, is_anomaly).

``metrics.baseline.robust_z`` is the robust z-score baseline (:func:`robust_z`) on the
same held-out rows: the share it flags at the same contamination and the rank
correlation of its scores with the model's; EVALUATE with a ``label`` reports its ROC AUC
beside the model's (``roc_auc_robust_z``, ``roc_auc_gain``).

PREDICT is the anomaly score. EVALUATE scores the rows with ANOMALY_SCORE and IS_ANOMALY
(:func:`dbml.evaluate.anomaly_evaluation_sql`, against a ``label`` column when given),
EXPLAIN measures the rise of the mean score, MONITOR bins the score by the training
histogram."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from onnx import TensorProto, helper

from dbml.errors import FeatureError, OptionError, TargetError
from dbml.kinds.common import QUANTILES
from dbml.kinds.scalar import bin_index
from dbml.options import Option
from dbml.tasks import Evaluation, Layout, Panel, Task, join_or, trainers

__all__ = ["Reconstruction", "MAX_TARGET_WIDTH"]

MAX_TARGET_WIDTH = 20_000  # values one row's reconstruction rebuilds
TERMS = ("reconstruction", "values")  # the anomaly score's terms, in the head's order
BINS = 10  # equal-share bins of a column's histogram
ATOMS = 5  # a column with at most this many distinct training values: one bin per value
EDGES = max(BINS + 1, 2 * ATOMS)  # edges per column in the graph (padded)
FLOOR = 1e-3  # relative density of a value outside every bin of its column
HISTOGRAM_ROWS = 8192  # training rows kept for after training (a seeded sample); the histograms' rows of each part
MAD_NORMAL = 1.4826  # MAD x this estimates a normal's standard deviation
MEAN_AD_NORMAL = 1.2533  # mean absolute deviation x this does (where the MAD is 0)
FLOAT_MAX = float(np.finfo(np.float32).max)  # a padded edge: no value reaches it
HISTOGRAM_VALUES = 16_000_000  # rows x rebuilt values the histograms are made from, at most (each part)
CHUNK_VALUES = 4_000_000  # rows x rebuilt values scored at once after training
REFERENCE = 1024  # quantiles of each term's reference distribution kept in the graph
RAMP = 0.5  # a reference quantile counts over at least this share of its term's tail scale,
SMALLEST = 0.01  # and over at least this much of the term (the smallest tail scale too)
ERROR_FLOOR = 1e-4  # a rebuilt value's typical squared error, at least (1% of a standard deviation, squared)


def _head(decoder, width: int):
    import torch
    from torch import nn

    class ReconstructionHead(nn.Module):
        """The decoder, and what is fixed after training: each rebuilt value's typical
        error, the values' histograms, each term's reference distribution and the anomaly
        threshold. Shapes depend on the layout only, so a fine-tune loads them."""

        def __init__(self):
            super().__init__()
            self.decoder = decoder
            self.register_buffer("threshold", torch.tensor(float("inf")))
            # each rebuilt value's typical squared error on held-out rows (set after training)
            self.register_buffer("unit_scale", torch.ones(width))
            self.register_buffer("value_edges", torch.full((EDGES, width), FLOAT_MAX))
            self.register_buffer("value_surprise", torch.zeros(width * (EDGES + 1)))
            # each term's reference distribution (ascending quantiles), the width over which
            # each quantile counts (half the gap to its neighbours), and the tail's scale
            self.register_buffer("reference", torch.zeros(len(TERMS), REFERENCE))
            self.register_buffer("ramp", torch.ones(len(TERMS), REFERENCE))
            self.register_buffer("tail", torch.ones(len(TERMS)))

        def forward(self, h):
            return self.decoder(h)

    return ReconstructionHead()


def _surprise(values, edges, table):
    """Each value's surprise [N, w] from its column's histogram: ``edges`` [EDGES, w]
    (ascending, padded with FLOAT_MAX), ``table`` [w * (EDGES + 1)] (flat, per column: the
    surprise of the values below the first edge, of each bin, above the last edge). The
    bin is the count of edges at or below the value, one comparison per edge, so the
    graph holds [N, w] and never [N, w, EDGES]."""
    import torch

    index = (values >= edges[0]).to(torch.int64)
    for i in range(1, EDGES):
        index = index + (values >= edges[i]).to(torch.int64)
    offsets = torch.arange(values.shape[1], dtype=torch.int64, device=values.device) * (EDGES + 1)
    flat = (index + offsets).reshape(-1)
    return table.index_select(0, flat).reshape(values.shape)


def histograms(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edges [EDGES, w], surprise [w * (EDGES + 1)]) of the columns of ``values`` [n, w].

    A column with at most :data:`ATOMS` distinct values gets one narrow bin per value (a
    one-hot column, a boolean, a small count); any other, :data:`BINS` bins holding equal
    shares of its rows (edges at its quantiles, ties merged). A value's surprise is
    -log of its bin's density relative to the column's densest bin (0 in the densest,
    -log :data:`FLOOR` outside every bin), as in HBOS (Goldstein and Dengel, 2012)."""
    n, w = values.shape
    edges = np.full((EDGES, w), FLOAT_MAX, dtype=np.float64)
    surprise = np.full((w, EDGES + 1), -np.log(FLOOR))
    if n == 0:
        return edges.astype(np.float32), surprise.ravel().astype(np.float32)
    ordered = np.sort(values, axis=0)
    distinct = 1 + (np.diff(ordered, axis=0) > 0).sum(axis=0)
    for j in range(w):
        column = ordered[:, j]
        if distinct[j] <= ATOMS:
            atoms, counts = np.unique(column, return_counts=True)
            half = 0.25 * float(np.min(np.diff(atoms))) if len(atoms) > 1 else 0.5  # bins never overlap
            cut = np.ravel(np.column_stack([atoms - half, atoms + half]))
            density = counts / counts.max()
            edges[: len(cut), j] = cut
            surprise[j, 1 : len(cut) : 2] = -np.log(np.maximum(density, FLOOR))
        else:
            cut = np.unique(np.quantile(column, np.linspace(0, 1, BINS + 1)))
            # no edge on a value (a float's last bit would choose its bin): each inner edge
            # halfway to the value below it, the ends just outside the smallest and largest
            below = np.searchsorted(column, cut[1:-1], side="left") - 1
            cut[1:-1] = (column[below] + column[below + 1]) / 2
            cut[0] = np.nextafter(np.float32(cut[0]), np.float32(-np.inf))
            cut[-1] = np.nextafter(np.float32(cut[-1]), np.float32(np.inf))
            cut = np.unique(cut)
            inside = np.clip(np.searchsorted(cut, column, side="right") - 1, 0, len(cut) - 2)
            density = np.bincount(inside, minlength=len(cut) - 1) / np.maximum(np.diff(cut), 1e-12)
            edges[: len(cut), j] = cut
            surprise[j, 1 : len(cut)] = -np.log(np.maximum(density / density.max(), FLOOR))
    return edges.astype(np.float32), surprise.ravel().astype(np.float32)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q):
    """The smallest of ``values`` at or below which lies a ``q`` share of the total weight
    (numpy's ``inverted_cdf``, weighted), for a number or an array of them; inf when there
    are no values."""
    qs = np.asarray(q, dtype=np.float64)
    if len(values) == 0:
        return np.full(qs.shape, np.inf) if qs.ndim else float("inf")
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    at = np.minimum(np.searchsorted(cumulative, qs * cumulative[-1] * (1 - 1e-12)), len(values) - 1)
    out = values[order][at]
    return out.astype(np.float64) if qs.ndim else float(out)


def _tail_surprise(terms, reference, ramp, tail):
    """-log of each term's tail share [N, T]: ``(reference quantiles at or above the term
    + 1) / (REFERENCE + 1)``, each quantile counted linearly over its ``ramp`` around it
    (the empirical distribution smoothed: continuous, so the graph's float rounding cannot
    flip a count); above the largest quantile the share also falls as ``1 / (1 + distance /
    tail)`` (a Pareto tail at the term's ``tail`` scale), so rows beyond every reference row
    keep their order. ``reference``, ``ramp`` [T, REFERENCE], ``reference`` ascending."""
    import torch

    at_least = torch.clamp((reference.unsqueeze(0) - terms.unsqueeze(2)) / ramp.unsqueeze(0) + 0.5, 0.0, 1.0).sum(dim=2)
    beyond = torch.log1p(torch.relu(terms - reference[:, -1]) / tail)
    return torch.log((REFERENCE + 1.0) / (at_least + 1.0)) + beyond


def _reference(terms: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of the reference rows' ``terms`` [n, T] (``weights`` [n]): each term's weighted
    quantiles at (i + 0.5) / REFERENCE [T, REFERENCE]; each quantile's ramp, half the gap
    between its neighbours, at least :data:`RAMP` of the tail scale and :data:`SMALLEST`;
    and the tail scale [T], the mean excess of the top tenth over the 90th percentile (else
    the 90th percentile's distance from the median), at least :data:`SMALLEST`. The ramps
    smooth the empirical distribution so that the float rounding between torch and an ONNX
    runtime (1e-7 of a rebuilt value) moves a score by far less than the parity check's 1e-4."""
    levels = (np.arange(REFERENCE) + 0.5) / REFERENCE
    quantiles, ramps, scales = [], [], []
    for t in terms.T:
        w = weights if len(t) else np.ones(1)
        t = t if len(t) else np.zeros(1)
        q = weighted_quantile(t, w, levels)
        q90, q50 = weighted_quantile(t, w, 0.9), weighted_quantile(t, w, 0.5)
        top = t > q90
        excess = float(np.average(t[top] - q90, weights=w[top])) if top.any() else 0.0
        scale = max(excess if excess > 0 else q90 - q50, SMALLEST)
        padded = np.concatenate([q[:1], q, q[-1:]])
        ramps.append(np.maximum((padded[2:] - padded[:-2]) / 2, max(RAMP * scale, SMALLEST)))
        quantiles.append(q)
        scales.append(scale)
    return np.array(quantiles), np.array(ramps), np.array(scales)


def _rows(batch) -> int:
    return int(next(iter(batch.values())).shape[0])


def _spread_rows(n: int, cap: int) -> np.ndarray:
    """At most ``cap`` of ``n`` row positions, evenly spread (all of them when there are fewer)."""
    return np.arange(n) if n <= cap else np.linspace(0, n - 1, cap).round().astype(np.int64)


def _chunked(fn, batch, size: int = 4096):
    """``fn`` (a batch -> a tensor of one row per batch row) over ``batch`` a slice of
    ``size`` rows at a time, concatenated: the scores' [N, terms, REFERENCE] comparisons
    stay small however many rows are held out."""
    import torch

    n = _rows(batch)
    return torch.cat([fn({k: v[i : i + size] for k, v in batch.items()}) for i in range(0, max(n, 1), size)])


def _numeric(net, batch):
    """The scalar inputs of ``batch`` [N, F] as the model reads them (numbers, booleans as
    0/1, dates as days; NaN where NULL): every number encoder's, in the network's order."""
    import torch

    from dbml.kinds.encoders import NumberEncoder

    parts = [batch[k].float() for k, enc in zip(net.keys, net.encoders) if isinstance(enc, NumberEncoder)]
    if not parts:
        n = next(iter(batch.values())).shape[0]
        return torch.zeros(n, 0)
    return torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=1).cpu()


def _scalar_sql(rec: dict[str, Any], ref: str) -> list[str]:
    """The SQL of the version's scalar inputs (numbers, booleans, dates) as the model reads
    them, over the source aliased ``"src"``: the robust z-score's columns in EVALUATE."""
    from sqlglot import exp

    from dbml.features import FeatureSpec, feature_sql
    from dbml.kinds import kind_of

    specs = [FeatureSpec(**f) for f in rec.get("features") or []]
    return [feature_sql(f, exp.column(f.name, table="src", quoted=True), ref).sql("duckdb")
            for f in specs if kind_of(f).group_key(f) == "numbers"]  # fmt: skip


def robust_z(train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The robust z-score baseline: each scalar column's |x - median| / (1.4826 MAD) (where
    the MAD is 0, 1.2533 x the mean absolute deviation from the median; a column with neither
    is left out), fitted on ``train``, averaged over the non-NULL columns of each of ``rows``
    (0 for a row with none). Categories, arrays and text are ignored. The same as
    :func:`dbml.evaluate.robust_z_sql`, which fits it in SQL."""
    if train.shape[1] == 0 or len(train) == 0:
        return np.zeros(len(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NULL column
        median = np.nanmedian(train, axis=0)
        dev = np.abs(train - median)
        scale = np.where(np.nanmedian(dev, axis=0) > 0, MAD_NORMAL * np.nanmedian(dev, axis=0),
                         MEAN_AD_NORMAL * np.nanmean(dev, axis=0))  # fmt: skip
    keep = np.isfinite(scale) & (scale > 0)
    z = np.abs(rows[:, keep] - median[keep]) / scale[keep]
    counted = np.isfinite(z)
    return np.where(counted, z, 0.0).sum(axis=1) / np.maximum(counted.sum(axis=1), 1)


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (ties at their mean rank); None for fewer than 3 rows or a constant."""
    if len(a) < 3:
        return None

    def ranks(x):
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=r)
        return (sums / counts)[inverse]

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


class Reconstruction(Task):
    name = "reconstruction"
    headline = "mse"
    needs_target = False
    parity_output = "anomaly_score"
    needs = frozenset({"decoder"})
    priority = 20
    askable = False
    plural = "anomaly models"
    described = "a reconstruction (autoencoder)"
    score_label = "−reconstruction MSE"
    pictures = ("scores", "roc", "precision_recall")
    options = (
        Option("contamination", "float", 0.01, "share of the rows it learns from (training and validation) IS_ANOMALY "
               "flags: fixes the threshold",
               lambda v: 0 < v < 0.5, "in (0, 0.5)"),
    )  # fmt: skip

    def implied(self, target, options):
        return target is None

    def unavailable(self, model, target, allowed):
        return TargetError(
            f"TRAIN MODEL {model} needs a TARGET column: its architecture learns {join_or([t.name for t in allowed])}; "
            f"to find unusual rows without a target, use USING {trainers(self)}"
        )

    def takes_no_target(self, model, target):
        return TargetError(
            f"TRAIN MODEL {model} USING {trainers(self)} takes no TARGET (it learns to rebuild its inputs); "
            f"leave TARGET {target} out, or train a supervised architecture such as mlp"
        )

    def head(self, width, target, architecture, net_info, options):
        out = net_info["target_width"]
        if out > MAX_TARGET_WIDTH:
            raise FeatureError(
                f"the inputs of model '{net_info['model']}' make {out:,} values to rebuild per row (categories count one "
                f"per vocabulary entry); an autoencoder rebuilds at most {MAX_TARGET_WIDTH:,}: lower max_categories "
                f"(now {options['max_categories']:,}) or leave wide columns out"
            )
        return _head(architecture.decoder(width, out, options), out)

    def observe(self, target, arrays, train_idx):
        """Keep a seeded sample of the training rows: the histograms are made from them."""
        rows = train_idx
        if len(rows) > HISTOGRAM_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(train_idx, HISTOGRAM_ROWS, replace=False))
        held_out = any(len(train_idx) < len(a) for a in arrays.values())  # else the metrics' rows are these
        target.extra["_histogram_rows"] = {"rows": {k: a[rows] for k, a in arrays.items()}, "count": len(train_idx),
                                           "held_out": held_out}  # fmt: skip

    def loss(self, net, out, batch):
        import torch

        return torch.nn.functional.mse_loss(out, net.targets(batch))

    def score(self, net, out, batch):
        return -((out - net.targets(batch)) ** 2).mean()

    def _terms(self, net, batch):
        """([N, 2] the terms of :data:`TERMS`, the code [N, k]) of ``batch``."""
        import torch

        code = net.embed(batch)
        values = net.targets(batch)
        head = net.head
        rebuilt = ((head(code) - values) ** 2 / head.unit_scale).mean(dim=1)
        marginal = _surprise(values, head.value_edges, head.value_surprise).mean(dim=1)
        return torch.stack([rebuilt, marginal], dim=1), code

    def _scores(self, net, batch):
        terms, code = self._terms(net, batch)
        head = net.head
        return _tail_surprise(terms, head.reference, head.ramp, head.tail).sum(dim=1), code

    def outputs(self, net, batch):
        score, embedding = self._scores(net, batch)
        return {"anomaly_score": score, "is_anomaly": score > net.head.threshold, "embedding": embedding}

    def after_fit(self, net, batch, target, options):
        """Fix, in the head's buffers, from the reference rows (the held-out rows ``batch``
        and the training rows, a sample of them weighted to their number): the values'
        histograms (on at most :data:`HISTOGRAM_ROWS` of each), each rebuilt value's typical
        error, each term's distribution, and the threshold, the ``1 - contamination``
        quantile of the reference rows' scores, so that IS_ANOMALY flags about that share of
        the rows the model learnt from."""
        import torch

        head = net.head
        device = head.unit_scale.device
        width = int(head.unit_scale.numel())
        step = max(64, min(4096, CHUNK_VALUES // max(width, 1)))
        kept = target.extra.get("_histogram_rows")
        with torch.no_grad():
            parts, weights = [batch], [np.ones(_rows(batch))]
            if kept and kept["held_out"] and kept["count"]:  # the training rows (in memory); a stream's: the held-out rows alone
                sample = {k: torch.from_numpy(a).to(device) for k, a in kept["rows"].items()}
                parts.append(sample)
                weights.append(np.full(_rows(sample), kept["count"] / max(_rows(sample), 1)))
            cap = max(256, min(HISTOGRAM_ROWS, HISTOGRAM_VALUES // max(width, 1)))  # rows of each part
            values = torch.cat([net.targets({k: v[_spread_rows(_rows(part), cap)] for k, v in part.items()}) for part in parts])
            e, s = histograms(values.double().cpu().numpy())
            del values
            head.value_edges.copy_(torch.from_numpy(e))
            head.value_surprise.copy_(torch.from_numpy(s))
            w = torch.from_numpy(np.concatenate(weights)).to(device)
            err = torch.cat([_chunked(lambda b: (net(b) - net.targets(b)) ** 2, part, step) for part in parts]).double()
            typical = (err * w.unsqueeze(1)).sum(dim=0) / w.sum() if len(w) else torch.ones(width, dtype=torch.float64)
            del err
            head.unit_scale.copy_((typical + 0.1 * typical.mean() + ERROR_FLOOR).float())
            terms = torch.cat([_chunked(lambda b: self._terms(net, b)[0], part, step) for part in parts]).double().cpu().numpy()
            reference, ramp, tail = _reference(terms, w.cpu().numpy())
            head.reference.copy_(torch.from_numpy(reference))
            head.ramp.copy_(torch.from_numpy(ramp))
            head.tail.copy_(torch.from_numpy(tail))
            scores = [_chunked(lambda b: self._scores(net, b)[0], part, step).double().cpu().numpy() for part in parts]
        c = options["contamination"]
        threshold = weighted_quantile(np.concatenate(scores), np.concatenate(weights), 1 - c)
        head.threshold.fill_(threshold)
        target.extra["threshold"] = threshold
        target.extra["contamination"] = c
        if len(scores) > 1:
            target.extra["_training_rate"] = {"anomaly_rate": float((scores[1] > threshold).mean()) if len(scores[1]) else 0.0}

    def metrics(self, net, batch, target, idx):
        import torch

        with torch.no_grad():
            step = max(64, min(4096, CHUNK_VALUES // max(int(net.head.unit_scale.numel()), 1)))
            scores = _chunked(lambda b: self._scores(net, b)[0], batch, step).double().cpu().numpy()
        target.extra["_scores"] = scores
        edges = sorted(set(np.quantile(scores, QUANTILES).tolist())) if len(scores) else []
        counts = np.bincount(bin_index(scores, edges), minlength=len(edges) + 1)
        out = {
            "mse": float(scores.mean()) if len(scores) else 0.0,
            "threshold": target.extra["threshold"],
            "contamination": target.extra["contamination"],
            "anomaly_rate": float((scores > target.extra["threshold"]).mean()) if len(scores) else 0.0,
            "prediction_distribution": {"edges": edges, "shares": (counts / max(counts.sum(), 1)).tolist()},
        }
        training = target.extra.pop("_training_rate", None)
        if training is not None:  # the share of the training rows (their sample) IS_ANOMALY flags
            out["training_anomaly_rate"] = training["anomaly_rate"]
        return out

    def baseline(self, net, train, eval_data, target, idx):
        """``metrics.baseline.robust_z``: :func:`robust_z` fitted on the training rows (the
        first of epoch 1's order, as the other tasks' baselines), on the same held-out rows as
        the model: the share it flags at the model's contamination (its threshold, the
        training rows' quantile), and the rank correlation of its scores with the model's."""
        import torch

        target.extra.pop("_histogram_rows", None)
        scores = target.extra.pop("_scores", None)
        with torch.no_grad():
            rows = _numeric(net, eval_data).double().numpy()
            if rows.shape[1] == 0:
                return {"robust_z": {"skipped": "the model has no number, boolean or date column"}}
            if hasattr(train, "epoch"):
                from dbml.training.baseline import training_sample

                fitted = training_sample(net, train, lambda b: _numeric(net, b), False)[2].double().numpy()
            else:  # the training rows were read elsewhere (a Spark cluster's processes)
                fitted = rows
        train_z, z = robust_z(fitted, fitted), robust_z(fitted, rows)
        c = target.extra["contamination"]
        threshold = float(np.quantile(train_z, 1 - c)) if len(train_z) else float("inf")
        out: dict[str, Any] = {
            "model": "a robust z-score",
            "anomaly_rate": float((z > threshold).mean()) if len(z) else 0.0,
            "threshold": threshold,
            "columns": int(rows.shape[1]),
            "rows": len(fitted),
        }
        if scores is not None and len(scores) == len(z):
            out["spearman"] = _spearman(scores, z)
            flagged = scores > target.extra["threshold"]
            out["agreement"] = float(((z > threshold) & flagged).sum() / max(flagged.sum(), 1))
        return {"robust_z": out}

    def versus(self, metrics):
        simple = (metrics.get("baseline") or {}).get("robust_z")
        if not isinstance(simple, dict) or not isinstance(simple.get("spearman"), (int, float)):
            return None
        return (f"ranks rows with Spearman {simple['spearman']:.2f} against a robust z-score on the validation rows "
                "(no labels at training: EVALUATE ... WITH (label = col) gives both ROC AUCs)")  # fmt: skip

    def graph_outputs(self, target):
        return {
            "anomaly_score": "float [N]: -log of the reconstruction error's and the values' histogram surprise's tail "
                             "shares among the training rows, summed; 0 is an ordinary row, higher is more unusual",
            "is_anomaly": "bool [N]: anomaly_score above the threshold fixed at training (dbml.threshold)",
            "embedding": "float [N, k]: the bottleneck",
        }  # fmt: skip

    def onnx_tail(self, target, produced, prefix):
        nodes = [
            helper.make_node("Identity", [produced["anomaly_score"]], ["anomaly_score"], name=prefix + "anomaly_score"),
            helper.make_node("Identity", [produced["is_anomaly"]], ["is_anomaly"], name=prefix + "is_anomaly"),
        ]
        outs = [
            helper.make_tensor_value_info("anomaly_score", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("is_anomaly", TensorProto.BOOL, ["N"]),
        ]
        return nodes, [], outs

    # -- the record ---------------------------------------------------------------------------------
    def check_target(self, c, record):
        from dbml.registry import records

        records.check_no_target(c, record, "no target (an anomaly model learns without one)")

    # -- statements -------------------------------------------------------------------------------
    def evaluation(self, ctx, rec, source_sql, source_label, opts):
        import dbml.curves as curves
        import dbml.evaluate as evaluate
        from dbml.sqltext import quote
        from dbml.tasks.statement import Rewriting, columns

        what = f"model '{rec['model']}'"
        if opts["confusion"]:
            raise TargetError(
                f"confusion = true needs a classification model; {what} is an anomaly model: "
                "give WITH (label = <a BOOLEAN column>) for precision, recall, f1 and roc_auc"
            )
        if opts["positive"] is not None:
            raise OptionError(
                f"positive applies to binary classification models; {what} is an anomaly model, "
                "whose positive class is its label's TRUE (a known anomaly)"
            )
        ref = f"{rec['model']}:{rec['version']}"
        lowered, types = columns(ctx, rec, source_sql, source_label, {"label": opts["label"], "by": opts["by"]}, "evaluate")
        label = lowered[opts["label"].lower()] if opts["label"] else None
        by = lowered[opts["by"].lower()] if opts["by"] else None
        sql = evaluate.anomaly_evaluation_sql(source_sql, ref, label, by=by, label_type=types[label] if label else "BOOLEAN",
                                              robust=_scalar_sql(rec, ref))  # fmt: skip
        label_sql = evaluate._label_sql(f'"src".{quote(label)}', label, types[label], ref) if label else None
        threshold = (rec["metrics"] or {}).get("threshold")
        return Evaluation(sql, lambda: curves.anomaly_curves(Rewriting(ctx), source_sql, ref, threshold, label_sql))

    def evaluation_sql(self, source_sql, model_ref, target, labels, by=None, positive=None):
        import dbml.evaluate as evaluate

        if positive is not None:
            raise OptionError(
                "positive applies to binary classification models; this model is an anomaly model (its label's TRUE is the positive class)"
            )
        return evaluate.anomaly_evaluation_sql(source_sql, model_ref, target, by)

    def explain_measure(self):
        from dbml.explain import MEAN_SCORE

        return MEAN_SCORE

    def evaluation_layout(self, curves):
        panels = (Panel("scores"), Panel("roc")) if curves.get("roc") else (Panel("scores"),)
        return Layout(panels, 1, len(panels), (10.0, 4.0))
