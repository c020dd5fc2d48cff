"""Classification: class labels of a BOOLEAN, integer or text target; softmax head,
cross-entropy loss, a stratified split; outputs ``label``, ``probabilities`` and
``embedding``. PREDICT gives the label in the target's type (from the probabilities),
PREDICT_PROBA a STRUCT of them; EVALUATE computes accuracy, precision, recall, f1,
log loss and ROC AUC (:func:`dbml.evaluate.classification_sql`) or the confusion
matrix; EXPLAIN measures accuracy; MONITOR bins PREDICT by class label."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from onnx import TensorProto, helper

from dbml.registry import records
from dbml.errors import TargetError
from dbml.options import MAX_LABELS
from dbml.outputs import label_field
from dbml.sqltext import quote as _q
from dbml.tasks import INTEGER_TYPES, Evaluation, Layout, Panel, Target, Task

__all__ = ["Classification", "label_types"]

_LABEL_TENSOR = {"string": TensorProto.STRING, "int64": TensorProto.INT64, "bool": TensorProto.BOOL}


def label_types(sql_type: str) -> tuple[str, str]:
    """(the ONNX label tensor type, the SQL type the predict UDF returns) of a class target."""
    t = sql_type.upper()
    if t == "BOOLEAN":
        return "bool", "BOOLEAN"
    if t in INTEGER_TYPES:
        return "int64", "BIGINT"
    return "string", "VARCHAR"


def _plain_labels(target: str, labels: list[Any], onnx_type: str) -> list[Any]:
    """Labels as JSON- and ONNX-friendly Python values, with distinct STRUCT field names."""
    if onnx_type == "int64":
        labels = [int(v) for v in labels]
        if any(not -(2**63) <= v < 2**63 for v in labels):
            raise TargetError(f"target column '{target}' has class labels beyond the BIGINT range; cast it to VARCHAR")
    fields: dict[str, Any] = {}
    for v in labels:
        key = label_field(v).lower()
        if key in fields:
            raise TargetError(
                f"target column '{target}' has labels {fields[key]!r} and {v!r}, which differ only in case; "
                "PREDICT_PROBA's fields could not tell them apart: normalise the case in the source query"
            )
        fields[key] = v
    return labels


class Classification(Task):
    name = "classification"
    refits = True
    ensembles = True
    headline = "accuracy"
    parity_output = "probabilities"
    priority = 30
    plural = "classifiers"
    described = "a classification"
    score_label = "accuracy"
    pictures = ("roc", "precision_recall", "confusion_matrix", "calibration")

    def claims(self, target_type, n_distinct, options):
        categorical = target_type in ("BOOLEAN", "VARCHAR") or target_type.startswith("ENUM")
        return categorical or (target_type in INTEGER_TYPES and n_distinct <= options["max_classes"])

    def check_facts(self, model, target, target_type, facts, options):
        n_distinct, lo, hi = facts["distinct"], facts["min"], facts["max"]
        if n_distinct > options["max_labels"]:
            raise TargetError(
                f"target column '{target}' of model '{model}' has {n_distinct:,} distinct values; a classifier takes at most "
                f"max_labels = {options['max_labels']:,} classes: group rare values in the query, "
                f"or raise WITH (max_labels = ...) (up to {MAX_LABELS:,})"
                + (", or use task = 'regression'" if target_type.upper() not in ("VARCHAR", "BOOLEAN") else "")
            )
        if lo is not None and not (-(2**63) <= lo and hi < 2**63):
            raise TargetError(
                f"target column '{target}' of model '{model}' has class labels beyond the BIGINT range "
                f"({lo if lo < -(2**63) else hi}); cast it to VARCHAR in the query"
            )
        if facts["longest"] > records.MAX_LABEL_TEXT:
            raise TargetError(
                f"target column '{target}' of model '{model}' has a class label of {facts['longest']:,} characters; labels "
                f"are kept up to {records.MAX_LABEL_TEXT:,}: shorten them in the query (left({_q(target)}, 100))"
            )

    def target_sql(self, target, target_type):
        t = target_type.upper()
        if t in ("HUGEINT", "UBIGINT"):
            return f"CAST({_q(target)} AS BIGINT)"  # in range: check_facts looked
        if t not in ("BOOLEAN", *INTEGER_TYPES):
            return f"CAST({_q(target)} AS VARCHAR)"
        return _q(target)

    def prepare(self, model, target, target_type, y, parent):
        from dbml.training import finetune

        labels = sorted(pc.unique(y).to_pylist())
        label_onnx, predict_type = label_types(target_type)
        if parent is not None:
            finetune.check_labels(parent, _plain_labels(target, labels, label_onnx))
            labels = parent.record["labels"]
        if len(labels) < 2:
            raise TargetError(
                f"target column '{target}' has a single value ({labels[0]!r}) in {len(y)} rows; a classifier needs two or more"
            )
        if target_type.upper() in ("FLOAT", "DOUBLE", "REAL") or target_type.upper().startswith("DECIMAL"):
            raise TargetError(f"task = 'classification' on the {target_type} target '{target}' is not supported; cast it to INTEGER or VARCHAR")
        codes = pc.index_in(y, value_set=pa.array(labels, type=y.type)).to_numpy().astype(np.int64)
        return Target(codes, _plain_labels(target, labels, label_onnx), label_onnx, predict_type)

    def strata_sql(self, target):
        return target  # each class splits on its own

    def y_tensor(self, target, y):
        import torch

        codes = pc.index_in(y, value_set=pa.array(target.labels, type=y.type))
        return torch.from_numpy(np.array(codes.to_numpy(zero_copy_only=False), np.int64))

    def head(self, width, target, architecture, net_info, options):
        from torch import nn

        return nn.Linear(width, len(target.labels))

    def loss(self, net, out, batch):
        import torch

        return torch.nn.functional.cross_entropy(out, batch["target"])

    def score(self, net, out, batch):
        return (out.argmax(dim=1) == batch["target"]).float().mean()

    def outputs(self, net, batch):
        import torch

        embedding = net.embed(batch)
        return {"probabilities": torch.softmax(net.head(embedding), dim=1), "embedding": embedding}

    def metrics(self, net, batch, target, idx):
        import torch

        out = net(batch).detach().cpu()
        y = batch["target"].cpu()
        pred = out.argmax(dim=1)
        f1s = []
        for k in range(len(target.labels)):
            tp = float(((pred == k) & (y == k)).sum())
            fp = float(((pred == k) & (y != k)).sum())
            fn = float(((pred != k) & (y == k)).sum())
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        counts = np.bincount(pred.numpy(), minlength=len(target.labels))
        return {
            "accuracy": float((pred == y).float().mean()),
            "log_loss": float(torch.nn.functional.cross_entropy(out, y)),
            "f1_macro": float(np.mean(f1s)) if f1s else 0.0,
            "prediction_distribution": {
                "labels": [label_field(v) for v in target.labels],
                "shares": (counts / max(counts.sum(), 1)).tolist(),
            },
        }

    def baseline(self, net, train, eval_data, target, idx):
        from dbml.training import baseline

        return baseline.classification(net, train, eval_data, len(target.labels))

    def graph_outputs(self, target):
        return {
            "label": "predicted class label, one per row, in the target's type",
            "probabilities": "float [N, K]: class probabilities, columns in the order of dbml.labels",
            "embedding": "float [N, k]: the last hidden layer",
        }

    def onnx_tail(self, target, produced, prefix):
        labels, kind = target.labels, target.label_onnx
        if kind == "string":
            vals: list[Any] = [str(v).encode("utf-8") for v in labels]
        elif kind == "bool":
            vals = [bool(v) for v in labels]
        else:
            vals = [int(v) for v in labels]
        nodes = [
            helper.make_node("Identity", [produced["probabilities"]], ["probabilities"], name=prefix + "probabilities"),
            helper.make_node("ArgMax", ["probabilities"], [prefix + "argmax"], axis=1, keepdims=0, name=prefix + "argmax"),
            helper.make_node("Gather", [prefix + "labels", prefix + "argmax"], ["label"], axis=0, name=prefix + "label"),
        ]
        inits = [helper.make_tensor(prefix + "labels", _LABEL_TENSOR[kind], [len(vals)], vals)]
        outs = [
            helper.make_tensor_value_info("label", _LABEL_TENSOR[kind], ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(vals)]),
        ]
        return nodes, inits, outs

    # -- the record and the functions a version offers ------------------------------------------
    def check_target(self, c, record):
        records.check_class_target(c, records.check_target(c, record))

    def check_labels(self, c, labels, target_type):
        return records.check_class_labels(c, labels, target_type)

    def parity_width(self, record, shape):
        return len(record["labels"]), "class labels"

    def udf_type(self, target_type):
        return label_types(target_type)[1]

    def label_type(self, record):
        return record["target_type"]

    def predict_convert(self, info):
        from dbml.outputs import labels_convert

        return labels_convert(info)

    def proba_output(self, info):
        return "probabilities" if "probabilities" in info.graph_outputs else None

    # -- statements -------------------------------------------------------------------------------
    def evaluation(self, ctx, rec, source_sql, source_label, opts):
        import dbml.curves as curves
        import dbml.evaluate as evaluate
        from dbml.tasks.statement import Rewriting, supervised_source

        _, by = supervised_source(ctx, rec, source_sql, source_label, opts)
        ref, target, labels = f"{rec['model']}:{rec['version']}", rec["target"], rec["labels"]
        if opts["confusion"]:
            return Evaluation(evaluate.confusion_sql(source_sql, ref, target, by=by))
        sql = self.evaluation_sql(source_sql, ref, target, labels, by=by, positive=opts["positive"])
        positive = evaluate.positive_label(labels, opts["positive"]) if len(labels) == 2 else None
        return Evaluation(sql, lambda: curves.classification_curves(Rewriting(ctx), source_sql, ref, target, labels, positive))

    def evaluation_sql(self, source_sql, model_ref, target, labels, by=None, positive=None):
        import dbml.evaluate as evaluate

        return evaluate.classification_sql(source_sql, model_ref, target, labels, by=by, positive=positive)

    def explain_measure(self):
        from dbml.explain import ACCURACY

        return ACCURACY

    def monitor_prediction(self, record, ref):
        import dbml.monitor as monitor

        return monitor.label_prediction(self.name, ref, record)

    def evaluation_layout(self, curves):
        return Layout(tuple(Panel(p, required=False) for p in self.pictures), 2, 2, (10.0, 8.0))
