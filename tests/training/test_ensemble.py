"""Option ensemble: classification and regression versions that hold several networks,
trained from seeds seed, seed + 1, ... and averaged inside the one ONNX graph. By default
an mlp averages 5 on up to 10,000 training rows in memory; the first network is the
one ensemble = 1 trains. (The rest of the suite trains one network unless it asks,
tests/conftest.py; these tests run under the product's rule.)"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
import torch
from torch import nn

import dbml
from dbml.errors import OptionError
from dbml.tasks import TASKS
from dbml.training.network import Ensemble, Network
from conftest import PRODUCT_ENSEMBLE_MAX_ROWS, registry_counts


@pytest.fixture(autouse=True)
def _product_rule(monkeypatch):
    from dbml.training import pipeline

    monkeypatch.setattr(pipeline, "ENSEMBLE_MAX_ROWS", PRODUCT_ENSEMBLE_MAX_ROWS)


def _rows(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    z = x[:, 0] * 2 + np.sin(2 * x[:, 1]) + 0.5 * rng.normal(size=n)
    return pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "z": z, "y": (z > 0.3).astype(np.int64)})


@pytest.fixture
def con():
    c = dbml.connect()
    c.duckdb.register("train_rows", _rows(1500, 0))
    c.duckdb.register("test_rows", _rows(400, 1))
    c.sql("CREATE TABLE t AS SELECT * FROM train_rows")
    c.sql("CREATE TABLE h AS SELECT * FROM test_rows")
    yield c
    c.close()


FAST = "epochs = 15, patience = 4, hidden = [16], seed = 3, verbose = 0"


def _version(con, model: str, version: int | None = None) -> dict:
    sql = "SELECT metrics, options, version FROM dbml.model_versions WHERE model = ?"
    rows = con.sql(sql + (" AND version = ?" if version else "") + " ORDER BY version DESC LIMIT 1",
                   params=[model] + ([version] if version else [])).fetchall()  # fmt: skip
    metrics, options, v = rows[0]
    return {"metrics": json.loads(metrics), "options": json.loads(options), "version": v}


def _r2(con, model: str) -> float:
    return con.sql(f"SELECT 1 - sum((z - PREDICT({model}, a, b, c)) ^ 2) / sum((z - m) ^ 2) "
                   "FROM h, (SELECT avg(z) AS m FROM h)").fetchall()[0][0]  # fmt: skip


class _Number(nn.Module):
    """The least encoder a Network needs: numbers as they are."""

    shape = (2,)

    def forward(self, x):
        return x

    def target(self, x):
        return x

    def target_width(self):
        return 2


def _network(seed: int, mean: float, std: float) -> Network:
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(2, 4), nn.ReLU())
    trunk.width = 4

    class Trunk(nn.Module):
        width = 4

        def __init__(self):
            super().__init__()
            self.body = trunk

        def forward(self, encoded):
            return self.body(encoded["x"])

    from dbml.tasks.regression import _scaled_head

    return Network(["x"], [_Number()], Trunk(), _scaled_head(4, mean, std), TASKS["regression"])


def test_an_ensemble_averages_its_networks_values_and_joins_their_embeddings():
    members = [_network(s, 10.0, 2.0) for s in (1, 2, 3)]
    both = Ensemble(members)
    batch = {"x": torch.randn(7, 2)}
    with torch.no_grad():
        alone = [m.outputs(batch) for m in members]
        out = both.outputs(batch)
    expected = torch.stack([a["value"] for a in alone]).mean(dim=0)
    assert torch.allclose(out["value"], expected, atol=1e-5)
    assert out["embedding"].shape == (7, 12)
    assert torch.allclose(out["embedding"], torch.cat([a["embedding"] for a in alone], dim=1))
    # each weight is registered once, under its member
    keys = list(both.state_dict())
    assert keys and all(k.startswith("members.") for k in keys)
    assert len(keys) == 3 * len(members[0].state_dict())


def test_ensemble_three_keeps_three_networks_and_the_first_is_what_one_trains(con):
    con.sql(f"TRAIN MODEL one FROM (SELECT a, b, c, z FROM t) TARGET z WITH ({FAST}, ensemble = 1, refit = false)")
    con.sql(f"TRAIN MODEL three FROM (SELECT a, b, c, z FROM t) TARGET z WITH ({FAST}, ensemble = 3, refit = false)")
    one, three = _version(con, "one"), _version(con, "three")
    assert "ensemble" not in one["metrics"] and one["options"]["ensemble"] == 1
    held = three["metrics"]["ensemble"]
    assert three["options"]["ensemble"] == 3
    assert held["members"] == 3 and held["seeds"] == [3, 4, 5] and len(held["epochs"]) == 3
    assert held["first_member"]["r2"] == pytest.approx(one["metrics"]["r2"], abs=1e-6)
    assert three["metrics"]["r2"] != pytest.approx(one["metrics"]["r2"], abs=1e-9)
    assert _r2(con, "three") > 0.6 and _r2(con, "one") > 0.6
    # the graph holds three trunks and scores outside DuckDB alike
    blob = con.registry.blob("three", 1)
    session = ort.InferenceSession(bytes(blob), providers=["CPUExecutionProvider"])
    h = con.sql("SELECT a, b, c FROM h ORDER BY a LIMIT 5").fetchnumpy()
    feeds = {i.name: h[i.name].astype(np.float32).reshape(-1, *([1] * (len(i.shape) - 1))) for i in session.get_inputs()}
    value = session.run(["value"], feeds)[0]
    in_sql = [r[0] for r in con.sql("SELECT PREDICT(three, a, b, c) FROM h ORDER BY a LIMIT 5").fetchall()]
    np.testing.assert_allclose(value, in_sql, rtol=1e-4, atol=1e-4)
    assert con.sql("SELECT len(EMBED(three, a, b, c)) FROM h LIMIT 1").fetchall()[0][0] == 3 * 16


def test_by_default_an_mlp_averages_five_networks_and_other_families_one(con):
    con.sql(f"TRAIN MODEL big FROM (SELECT a, b, c, y FROM t) TARGET y WITH ({FAST})")
    big = _version(con, "big")
    assert big["options"]["ensemble"] == 5 and big["metrics"]["ensemble"]["members"] == 5
    # the refit trains every member again on every row, for the epochs its own validation run chose
    assert len(big["metrics"]["refit"]["member_epochs"]) == 5
    assert con.sql("SELECT avg((PREDICT(big, a, b, c) = y)::INT) FROM h").fetchall()[0][0] > 0.8
    # the baselines are fitted beside an ensemble as beside one network
    assert big["metrics"]["baseline"]["linear"]["model"] == "logistic regression"
    # a small table too (a few hundred training rows)
    con.sql(f"TRAIN MODEL small FROM (SELECT a, b, c, y FROM t LIMIT 300) TARGET y WITH ({FAST})")
    assert _version(con, "small")["metrics"]["ensemble"]["members"] == 5
    # other families train one network unless asked
    con.sql("TRAIN MODEL ae USING autoencoder FROM (SELECT a, b, c FROM t) WITH (epochs = 3, verbose = 0)")
    assert _version(con, "ae")["options"]["ensemble"] == 1
    # the model card says what the version holds
    card = con.model_card("big")
    assert "Networks averaged (option ensemble)" in card and "5, from seeds 3, 4, 5, 6, 7" in card


def test_the_default_count_follows_the_training_rows_the_task_and_the_architecture():
    from types import SimpleNamespace

    from dbml.architectures import ARCHITECTURES
    from dbml.training.pipeline import ENSEMBLE_MAX_ROWS, ENSEMBLE_MEMBERS, members

    high = ENSEMBLE_MAX_ROWS

    def plan(task="classification", arch="mlp", base=None, **options):
        opts = {"ensemble": None, "workers": 1, **options}
        return SimpleNamespace(options=opts, task=TASKS[task], architecture=ARCHITECTURES[arch], base=base,
                               req=SimpleNamespace(fit_with=None))  # fmt: skip

    assert high == 10_000
    assert members(plan(), 1, True) == members(plan(), 200, True) == members(plan(), high, True) == ENSEMBLE_MEMBERS
    assert members(plan(), high + 1, True) == 1
    assert members(plan("regression"), high, True) == ENSEMBLE_MEMBERS
    assert members(plan(), high, False) == 1  # streamed
    assert members(plan(workers=2), high, True) == 1
    assert members(plan(base="other"), high, True) == 1
    assert members(plan("reconstruction", "autoencoder"), high, True) == 1
    assert members(plan(ensemble=3), 10, False) == 3  # asked for: always


def test_fine_tuning_an_ensemble_goes_on_from_each_networks_own_weights(con):
    con.sql(f"TRAIN MODEL m FROM (SELECT a, b, c, z FROM t) TARGET z WITH ({FAST}, ensemble = 2)")
    before = _r2(con, "m")
    con.sql("TRAIN MODEL m FROM (SELECT a, b, c, z FROM t) TARGET z WITH (warm_start = true, epochs = 2, lr = 1e-5, "
            "verbose = 0)")  # fmt: skip
    after = _version(con, "m")
    assert after["version"] == 2 and after["options"]["ensemble"] == 2
    assert abs(_r2(con, "m") - before) < 0.05  # a tiny learning rate: it went on from the stored networks
    with pytest.raises(OptionError, match="option 'ensemble' cannot change when fine-tuning model 'm': version 2 holds 2"):
        con.sql("TRAIN MODEL m FROM (SELECT a, b, c, z FROM t) TARGET z WITH (warm_start = true, ensemble = 3)")
    # each network goes on from its own weights in this process: not with workers
    counts = registry_counts(con)
    with pytest.raises(OptionError, match="option 'ensemble' of TRAIN MODEL m trains its networks one after another"):
        con.sql("TRAIN MODEL m FROM (SELECT a, b, c, z FROM t) TARGET z WITH (warm_start = true, workers = 2)")
    assert registry_counts(con) == counts
    # a transfer from an ensemble: each new network starts from the base's networks in turn
    con.sql("TRAIN MODEL k FROM (SELECT a, b, c, y FROM t) TARGET y WITH (base = 'm', epochs = 3, ensemble = 3, "
            "verbose = 0)")  # fmt: skip
    assert _version(con, "k")["metrics"]["ensemble"]["members"] == 3


def test_ensemble_refuses_what_it_cannot_do_and_writes_nothing(con):
    counts = registry_counts(con)
    cases = [
        ("ensemble = 0", "option 'ensemble' must be between 1 and 16, got 0"),
        ("ensemble = 17", "option 'ensemble' must be between 1 and 16"),
        ("ensemble = 2, workers = 2", "option 'ensemble' of TRAIN MODEL bad trains its networks one after another"),
    ]
    for options, words in cases:
        with pytest.raises(OptionError, match=words):
            con.sql(f"TRAIN MODEL bad FROM (SELECT a, b, c, z FROM t) TARGET z WITH ({options})")
    with pytest.raises(OptionError, match="a reconstruction model is one network; classification and regression average"):
        con.sql("TRAIN MODEL bad USING autoencoder FROM (SELECT a, b, c FROM t) WITH (ensemble = 2)")
    assert registry_counts(con) == counts


def test_tune_tries_one_network_per_trial_and_the_best_options_train_the_ensemble(con):
    con.sql(f"TRAIN MODEL m FROM (SELECT a, b, c, z FROM t) TARGET z WITH ({FAST}, tune = 2, tune_options = ['lr'])")
    rec = _version(con, "m")
    assert rec["options"]["ensemble"] == 5 and rec["metrics"]["ensemble"]["members"] == 5
    assert len(rec["metrics"]["tuning"]["trials"]) == 2
