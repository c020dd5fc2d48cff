"""Tasks own their SQL side: a task written outside the package (this file) registers
with :func:`dbml.tasks.register` and trains with an existing architecture, scores,
EVALUATEs with its own metrics, EXPLAINs, MONITORs, DESCRIBEs and shows on a model card,
without any edit inside dbml/. The tasks an architecture learns come from what each
task needs and each architecture provides."""

from __future__ import annotations

import numpy as np
import pytest

import dbml
from dbml import architectures, tasks
from dbml.architectures import Architecture, concat
from dbml.tasks import Evaluation, Task
from dbml.tasks.regression import Regression

O = "epochs = 40, progress = false, seed = 3, lr = 0.01, hidden = [16]"


class MedianRegression(Regression):
    """A regression that learns the median (absolute error) and is EVALUATEd by its own
    metrics: rows, mae and median_ae (the median absolute error), and no pictures."""

    name = "median_regression"
    headline = "mae"
    plural = "median regressors"
    pictures = ()

    def claims(self, target_type, n_distinct, options):
        return False  # only when asked: WITH (task = 'median_regression')

    def loss(self, net, out, batch):
        import torch

        return torch.nn.functional.l1_loss(out[:, 0], batch["target"])

    def evaluation(self, ctx, rec, source_sql, source_label, opts):
        target = '"' + rec["target"].replace('"', '""') + '"'
        ref = f"'{rec['model']}:{rec['version']}'"
        err = f"abs(CAST({target} AS DOUBLE) - CAST(PREDICT({ref}, *) AS DOUBLE))"
        return Evaluation(
            f"SELECT count(*) AS rows, avg({err}) AS mae, median({err}) AS median_ae "
            f"FROM (\n{source_sql}\n) AS src WHERE {target} IS NOT NULL"
        )

    def evaluation_layout(self, curves):
        return None

    def card_facts(self, record):
        return [("Loss", "absolute error (learns the median)")]


@pytest.fixture
def med():
    tasks.register(MedianRegression())
    try:
        yield
    finally:
        tasks.TASKS.pop("median_regression")


@pytest.fixture
def con():
    c = dbml.connect()
    c.sql(
        "CREATE TABLE t AS SELECT (i % 10)::DOUBLE AS a, ['p', 'q', 'r'][1 + i % 3] AS c, "
        "((i % 10) * 2.0 + 1 + CASE WHEN i % 3 = 0 THEN 1 ELSE 0 END)::DOUBLE AS v FROM range(300) r(i)"
    )
    yield c
    c.close()


def _row(rel) -> dict:
    return dict(zip(rel.columns, rel.fetchall()[0]))


def test_a_task_registered_outside_the_package_trains_scores_evaluates_and_describes(con, med):
    assert "median_regression" in architectures.get_architecture("mlp").tasks
    assert "median_regression" not in architectures.get_architecture("autoencoder").tasks
    trained = _row(con.sql(f"TRAIN MODEL med FROM t TARGET v WITH ({O}, task = 'median_regression')"))
    assert (trained["task"], trained["architecture"]) == ("median_regression", "mlp")
    assert trained["metric"] == "mae" and trained["score"] < 1.0

    pred = np.array([r[0] for r in con.sql("SELECT PREDICT(med, *) - v FROM t").fetchall()])
    assert np.median(np.abs(pred)) < 1.0

    ev = con.sql("EVALUATE MODEL med ON t")
    assert ev.columns == ["rows", "mae", "median_ae"]
    rows, mae, median_ae = ev.fetchall()[0]
    assert rows == 300
    assert mae == pytest.approx(np.mean(np.abs(pred)), abs=1e-5)
    assert median_ae == pytest.approx(np.median(np.abs(pred)), abs=1e-5)
    stored = con.registry.evaluation_runs("med", 1)
    assert [r["task"] for r in stored] == ["median_regression"] and stored[0]["curves"] is None

    described = _row(con.sql("DESCRIBE MODEL med"))
    assert (described["task"], described["metric"], described["functions"]) == ("median_regression", "mae", ["PREDICT", "EMBED"])
    shown = _row(con.sql("SHOW MODELS"))
    assert (shown["model"], shown["task"], shown["metric"]) == ("med", "median_regression", "mae")

    # what it inherits from Regression: EXPLAIN's R², MONITOR's prediction histogram
    explained = con.sql("EXPLAIN MODEL med ON t WITH (repeats = 1)").fetchall()
    assert {r[0] for r in explained} == {"a", "c"} and {r[4] for r in explained} == {"r2"}
    monitored = {r[1]: r for r in con.sql("MONITOR MODEL med ON t").fetchall()}
    assert monitored["__prediction__"][2] == "median_regression"

    card = con.model_card("med")
    assert "absolute error (learns the median)" in card and "median_regression" in card


def test_auto_never_picks_a_task_that_claims_nothing_and_unknown_tasks_are_named(con, med):
    row = _row(con.sql(f"TRAIN MODEL reg FROM t TARGET v WITH (epochs = 2, progress = false, seed = 3)"))
    assert row["task"] == "regression"
    with pytest.raises(dbml.OptionError, match="must be one of auto, classification, regression, median_regression, got 'ranking'"):
        con.sql(f"TRAIN MODEL x FROM t TARGET v WITH ({O}, task = 'ranking')")


def test_a_registered_task_is_gone_when_unregistered(con):
    with pytest.raises(dbml.OptionError, match="must be one of auto, classification, regression, got 'median_regression'"):
        con.sql(f"TRAIN MODEL x FROM t TARGET v WITH ({O}, task = 'median_regression')")
    assert "median_regression" not in architectures.get_architecture("mlp").tasks


def test_tasks_load_from_the_entry_point_group(monkeypatch):
    from dbml import plugins

    class EntryPoint:
        name, value = "plugged_task", "tests:Plugged"

        @staticmethod
        def load():
            class Plugged(MedianRegression):
                name = "plugged_task"

            return Plugged

    monkeypatch.setattr(plugins, "entry_points", lambda group: [EntryPoint()] if group == "dbml.tasks" else [])
    monkeypatch.setattr(tasks, "_plugins_loaded", False)
    try:
        assert tasks.task_of("plugged_task").name == "plugged_task"
        assert tasks.get_task("plugged_task") is tasks.TASKS["plugged_task"]
    finally:
        tasks.TASKS.pop("plugged_task", None)


def test_register_refuses_what_is_not_a_task():
    with pytest.raises(dbml.OptionError, match="a task is a dbml.tasks.Task"):
        tasks.register(object())
    with pytest.raises(dbml.OptionError, match="lower-case name"):
        tasks.register(type("Bad", (Task,), {"name": "Bad Name"})())


class Rebuilder(Architecture):
    """An architecture written outside the package that provides a decoder: it learns the
    anomaly task without naming it."""

    name = "rebuilder_test_family"
    provides = frozenset({"decoder"})

    def build(self, inputs, task, options):
        from torch import nn

        combine, width = concat(inputs)
        trunk = nn.Sequential(combine, nn.Linear(width, 2), nn.Tanh())
        trunk.width = 2
        return trunk


def test_architectures_learn_the_tasks_whose_needs_they_provide(con):
    assert architectures.get_architecture("lstm").tasks == ("classification", "regression", "forecast")
    assert architectures.get_architecture("autoencoder").tasks == ("reconstruction",)
    architectures.register(Rebuilder())
    try:
        assert Rebuilder().tasks == ("reconstruction",)
        row = _row(con.sql(f"TRAIN MODEL odd USING rebuilder_test_family FROM (SELECT a, c FROM t) WITH (epochs = 5, progress = false, seed = 3)"))
        assert (row["task"], row["architecture"]) == ("reconstruction", "rebuilder_test_family")
        assert con.sql("SELECT count(*) FROM t WHERE ANOMALY_SCORE(odd, *) >= 0").fetchall()[0][0] == 300
    finally:
        architectures.ARCHITECTURES.pop("rebuilder_test_family")
