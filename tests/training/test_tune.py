"""``WITH (tune = N)``: a seeded random search over the architecture's and the training's
options on the validation rows; trial 0 is the statement as written, the best trial's
options train the version, every trial is kept in ``metrics.tuning``; bad searches are
named errors with nothing written."""

from __future__ import annotations

import json

import pytest
from conftest import registry_counts

import dbml
from dbml.errors import OptionError
from dbml.options import TRAINING_OPTIONS
from dbml.training import tune

QUICK = "progress = false, seed = 5, epochs = 6"
TRIALS_SQL = """SELECT t.trial, t.score, t.options FROM (SELECT unnest(from_json(metrics->'$.tuning.trials',
    '[{"trial":"INTEGER","score":"DOUBLE","epochs":"INTEGER","seconds":"DOUBLE","options":"JSON"}]')) AS t
    FROM dbml.model_versions WHERE model = 'circle') ORDER BY t.trial"""


@pytest.fixture
def con():
    c = dbml.connect()
    c.sql("""CREATE TABLE t AS SELECT a, b, c, (a * a + b * b < 0.5) = (c = 'p') AS y
             FROM (SELECT i, (hash(i, 1) % 2000) / 1000.0 - 1 AS a, (hash(i, 2) % 2000) / 1000.0 - 1 AS b,
                          CASE WHEN hash(i, 3) % 4 = 0 THEN 'p' ELSE 'q' END AS c FROM range(800) r(i))""")
    yield c
    c.close()


def test_search_keeps_the_best_trial_and_records_every_one(con):
    con.sql(f"TRAIN MODEL circle FROM t TARGET y WITH ({QUICK}, tune = 4, tune_options = ['lr', 'hidden'])")
    rec = con.registry.get("circle")
    tuning = rec["metrics"]["tuning"]
    assert tuning["metric"] == "accuracy" and tuning["tuned"] == ["lr", "hidden"] and len(tuning["trials"]) == 4
    assert tuning["trials"][0]["options"] == {"lr": 0.001, "hidden": [128, 64]}  # trial 0: the statement as written
    scores = [t["score"] for t in tuning["trials"]]
    best = tuning["best_trial"]
    assert scores[best] == max(scores) and best == scores.index(max(scores))  # ties keep the earlier trial
    kept = tuning["trials"][best]["options"]
    assert rec["options"]["lr"] == kept["lr"] and rec["options"]["hidden"] == kept["hidden"]
    assert rec["metrics"]["accuracy"] == pytest.approx(scores[best], abs=1e-6)  # the version is the best trial, trained again
    assert rec["options"]["tune"] == 4 and rec["options"]["epochs"] == 6
    rows = con.sql(TRIALS_SQL).fetchall()  # what was tried is a query
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert [json.loads(r[2])["lr"] for r in rows] == [t["options"]["lr"] for t in tuning["trials"]]
    assert len({json.loads(r[2])["lr"] for r in rows}) == 4  # the trials drew other rates


def test_draws_repeat_with_the_seed_and_stay_in_range():
    declared = TRAINING_OPTIONS + dbml.architectures.get_architecture("mlp").options
    chosen = tune.tunable(declared)
    assert set(chosen) >= {"lr", "weight_decay", "batch_size", "hidden", "dropout"}
    first = tune.draw(chosen, declared, 7, 30, 1000)
    assert first == tune.draw(chosen, declared, 7, 30, 1000) and first != tune.draw(chosen, declared, 8, 30, 1000)
    assert all(2e-4 <= d["lr"] <= 1e-2 and 0 <= d["dropout"] <= 0.5 and d["batch_size"] <= 125 for d in first)
    assert len(first) == 29


@pytest.mark.parametrize("options, words", [
    ("tune = -1", "'tune' must be between 0 and 500"),
    ("tune = 501", "'tune' must be between 0 and 500"),
    ("tune = 3, tune_seconds = 0", "'tune_seconds' must be above 0"),
    ("tune_seconds = 10", "option 'tune_seconds' of TRAIN MODEL circle needs option 'tune'"),
    ("tune = 3, tune_options = ['heads']", "names 'heads', which USING mlp does not have"),
    ("tune = 3, tune_options = ['patience']", "names 'patience', which the search does not draw"),
    ("tune = 3, lr = 0.01, tune_options = ['lr']", "option 'lr' of TRAIN MODEL circle is given and named in tune_options"),
    ("tune = 3, tune_options = []", "'tune_options' of TRAIN MODEL circle is empty"),
    ("tune = 3, validation = 0", "validation = 0 holds none out"),
    ("tune = 3, streaming = true", "not available with streaming yet"),
    ("tune = 3, tune_seconds = 0.001", "'tune_seconds' = 0.001 of TRAIN MODEL circle is too small for one trial"),
])  # fmt: skip
def test_bad_searches_are_named_and_write_nothing(con, options, words):
    before = registry_counts(con)
    with pytest.raises(OptionError, match=words.replace("(", r"\(").replace("[", r"\[")):
        con.sql(f"TRAIN MODEL circle FROM t TARGET y WITH ({QUICK}, {options})")
    assert registry_counts(con) == before


def test_tuning_an_already_trained_shape_is_refused(con):
    con.sql(f"TRAIN MODEL circle FROM t TARGET y WITH ({QUICK})")
    with pytest.raises(OptionError, match="fine-tuning keeps from the parent"):
        con.sql(f"TRAIN MODEL circle FROM t TARGET y WITH ({QUICK}, warm_start = true, tune = 2)")


def test_the_trials_are_one_picture(con):
    pytest.importorskip("matplotlib")
    con.sql(f"TRAIN MODEL circle FROM t TARGET y WITH ({QUICK}, tune = 3, tune_options = ['lr', 'hidden', 'dropout'])")
    fig = dbml.plot.tuning(con, "circle")
    assert len(fig.axes) == 4 and "3 trials" in fig._suptitle.get_text()
    con.sql(f"TRAIN MODEL plain FROM t TARGET y WITH ({QUICK})")
    with pytest.raises(dbml.DbmlError, match="was not tuned"):
        dbml.plot.tuning(con, "plain")


def test_better_follows_the_metrics_direction_and_keeps_the_earlier_on_ties():
    assert tune.better(0.9, 0.8, lower=False) and not tune.better(0.8, 0.9, lower=False)
    assert tune.better(1.0, 2.0, lower=True) and not tune.better(2.0, 1.0, lower=True)  # an error (mae): lower wins
    assert not tune.better(0.9, 0.9, lower=False)  # a tie keeps the earlier trial (trial 0: the statement as written)
    assert tune.better(0.1, None, lower=False) and not tune.better(None, 0.1, lower=False)
    assert not tune.better(float("nan"), None, lower=False)  # a trial that measured nothing is never kept
