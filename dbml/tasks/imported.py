"""Imported: a model trained elsewhere, read from a foreign ONNX file (architecture and
task ``imported``, :mod:`dbml.registry.foreign`). dbml never trains it: it has no head,
loss, training profile or torch twin. PREDICT returns the graph's first output in its
own type (the record's ``target_type``), PREDICT_PROBA its probabilities when the graph
has them; EVALUATE and EXPLAIN refuse it (dbml knows neither its target nor its task)."""

from __future__ import annotations

from typing import Any

from dbml.errors import TargetError
from dbml.tasks import Task

__all__ = ["Imported", "IMPORTED"]


class Imported(Task):
    name = "imported"
    trained = False
    foreign = True
    needs = frozenset({"a foreign graph"})  # no architecture provides it
    askable = False
    plural = "imported models"

    def refusal(self, statement, who, model=None):
        backtests = statement.startswith("EVALUATE")  # EVALUATE also takes forecasters
        return TargetError(
            f"{statement} needs a classification or regression model with a target, an anomaly model"
            f"{', or a forecaster' if backtests else ''}; "
            f"{who} was imported from a foreign ONNX file (task '{self.name}'): compare PREDICT with your labels in SQL instead"
        )

    def check_target(self, c, record):
        from dbml.registry import records

        records.check_foreign_target(c, record)

    def udf_type(self, target_type):
        return target_type  # the type of the graph's first output, as IMPORT read it

    def label_type(self, record):
        return record["target_type"]

    def version_outputs(self, record, session):
        layout = record.get("options") or {}
        return {"value": ()} | ({"probabilities": ()} if layout.get("proba") else {})

    def predict_output(self, info):
        return "value" if "value" in info.graph_outputs else None

    def proba_output(self, info):
        return "probabilities" if "probabilities" in info.graph_outputs else None

    def monitor_prediction(self, record: dict[str, Any], ref: str):
        import dbml.monitor as monitor

        return monitor.unreferenced_prediction(self.name, ref)  # PREDICT's own type, no training reference


IMPORTED = Imported()
