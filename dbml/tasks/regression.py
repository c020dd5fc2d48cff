"""Regression: a numeric target, standardised for the loss (mean squared error) and
scaled back in the graph; outputs ``value`` and ``embedding``. EVALUATE computes mae,
rmse, r2 and mape (:func:`dbml.evaluate.regression_sql`), EXPLAIN measures R², MONITOR
bins PREDICT by the training prediction histogram."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, helper

from dbml.errors import OptionError, TargetError
from dbml.kinds.common import FLOAT_MAX, QUANTILES
from dbml.kinds.scalar import bin_index, is_number_type
from dbml.sqltext import quote as _q
from dbml.tasks import Evaluation, Layout, Panel, Target, Task

__all__ = ["Regression", "errors"]


def errors(pred, y) -> dict[str, float]:
    """r2, rmse and mae of predictions ``pred`` against values ``y`` (double tensors): the
    network's validation metrics and its baselines' are computed alike."""
    err = pred - y
    ss_res, ss_tot = float((err**2).sum()), float(((y - y.mean()) ** 2).sum())
    return {"r2": 1 - ss_res / ss_tot if ss_tot > 0 else 0.0, "rmse": math.sqrt(ss_res / max(len(y), 1)),
            "mae": float(err.abs().mean())}  # fmt: skip


def _scaled_head(width: int, mean: float, std: float):
    import torch
    from torch import nn

    class ScaledHead(nn.Linear):
        """Linear to one standardised value; ``y_mean``/``y_std`` bring it back to the target's units."""

        def __init__(self):
            super().__init__(width, 1)
            self.register_buffer("y_mean", torch.tensor(float(mean)))
            self.register_buffer("y_std", torch.tensor(float(std)))

    return ScaledHead()


class Regression(Task):
    name = "regression"
    refits = True
    ensembles = True
    headline = "r2"
    parity_output = "value"
    priority = 40
    plural = "regressors"
    described = "a regression"
    score_label = "R²"
    pictures = ("residuals", "predicted_vs_actual")

    def claims(self, target_type, n_distinct, options):
        return is_number_type(target_type)

    def check_asked(self, model, target, target_type):
        if not is_number_type(target_type.upper()):
            raise TargetError(f"target column '{target}' has type {target_type}; task = '{self.name}' needs a numeric target")

    def target_sql(self, target, target_type):
        return f"CAST({_q(target)} AS DOUBLE)"

    def prepare(self, model, target, target_type, y, parent):
        y_np = y.to_numpy().astype(np.float64)
        bad = ~(np.abs(y_np) <= FLOAT_MAX)
        if bad.any():
            raise TargetError(
                f"target column '{target}' of model '{model}' has {int(bad.sum())} infinite or out-of-FLOAT-range value(s) "
                f"(such as {float(y_np[bad][0])!r}); predictions are FLOAT: filter them (WHERE isfinite({_q(target)})) "
                "or rescale the target in the query"
            )
        mean, std = float(y_np.mean()), float(y_np.std())
        if parent is not None:  # the parent's target scaling, which its weights assume
            w = parent.weights
            mean = float(w.get("head.y_mean", w.get("y_mean", mean)))
            std = float(w.get("head.y_std", w.get("y_std", std)))
        if not std > 0:
            raise TargetError(f"target column '{target}' has a single value ({mean}) in {len(y_np)} rows; nothing to learn")
        return Target(y_np, scale=(mean, std))

    def y_tensor(self, target, y):
        import torch

        mean, std = target.scale
        values = np.array(y.to_numpy(zero_copy_only=False), np.float64)
        return ((torch.from_numpy(values) - mean) / std).float()

    def target_values(self, target, y):
        return np.array(y.to_numpy(zero_copy_only=False), np.float64)

    def head(self, width, target, architecture, net_info, options):
        return _scaled_head(width, *target.scale)

    def loss(self, net, out, batch):
        import torch

        return torch.nn.functional.mse_loss(out[:, 0], batch["target"])

    def score(self, net, out, batch):
        y = batch["target"]
        return 1 - ((out[:, 0] - y) ** 2).sum() / ((y - y.mean()) ** 2).sum().clamp_min(1e-12)

    def outputs(self, net, batch):
        embedding = net.embed(batch)
        return {"value": net.head(embedding)[:, 0] * net.head.y_std + net.head.y_mean, "embedding": embedding}

    def metrics(self, net, batch, target, idx):
        import torch

        mean, std = target.scale
        pred = net(batch)[:, 0].detach().double().cpu() * std + mean
        y = torch.from_numpy(target.y[idx]).double()
        values = pred.numpy()
        edges = sorted(set(np.quantile(values, QUANTILES).tolist())) if len(values) else []
        counts = np.bincount(bin_index(values, edges), minlength=len(edges) + 1)
        return {
            **errors(pred, y),
            "prediction_distribution": {"edges": edges, "shares": (counts / max(counts.sum(), 1)).tolist()},
        }

    def baseline(self, net, train, eval_data, target, idx):
        from dbml.training import baseline

        return baseline.regression(net, train, eval_data, target.y[idx], target.scale)

    def graph_outputs(self, target):
        return {"value": "float [N]: predicted value in the target's units", "embedding": "float [N, k]: the last hidden layer"}

    def onnx_tail(self, target, produced, prefix):
        nodes = [helper.make_node("Identity", [produced["value"]], ["value"], name=prefix + "value")]
        return nodes, [], [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N"])]

    # -- statements -------------------------------------------------------------------------------
    def evaluation(self, ctx, rec, source_sql, source_label, opts):
        import dbml.curves as curves
        from dbml.tasks.statement import Rewriting, supervised_source

        _, by = supervised_source(ctx, rec, source_sql, source_label, opts)
        if opts["confusion"]:
            raise TargetError(f"confusion = true needs a classification model; model '{rec['model']}' is a regression")
        ref, target = f"{rec['model']}:{rec['version']}", rec["target"]
        sql = self.evaluation_sql(source_sql, ref, target, rec["labels"], by=by, positive=opts["positive"])
        return Evaluation(sql, lambda: curves.regression_curves(Rewriting(ctx), source_sql, ref, target))

    def evaluation_sql(self, source_sql, model_ref, target, labels, by=None, positive=None):
        import dbml.evaluate as evaluate

        if positive is not None:
            raise OptionError("positive applies to binary classification models; this model is a regression")
        return evaluate.regression_sql(source_sql, model_ref, target, by)

    def explain_measure(self):
        from dbml.explain import R2

        return R2

    def evaluation_layout(self, curves):
        return Layout((Panel("residuals"), Panel("predicted_vs_actual")), 1, 2, (10.0, 4.0))
