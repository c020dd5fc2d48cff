"""Option refit (the default for classification and regression): once early stopping has
chosen the epochs on the validation rows, the version is a second network trained from
the same start on every training row for those epochs, at the rates the first run took.
Its stored validation metrics are the first network's. By default it runs from 1,000
source rows."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import dbml
from dbml.errors import OptionError
from conftest import registry_counts


def _rows(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + 0.3 * rng.normal(size=n) > 0.4).astype(np.int64)
    return pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y, "z": x[:, 0] * 2 + x[:, 1]})


@pytest.fixture
def con():
    c = dbml.connect()
    c.duckdb.register("train_rows", _rows(1200, 0))
    c.duckdb.register("test_rows", _rows(400, 1))
    c.sql("CREATE TABLE t AS SELECT * FROM train_rows")
    c.sql("CREATE TABLE h AS SELECT * FROM test_rows")
    yield c
    c.close()


FAST = "epochs = 40, patience = 5, hidden = [16], seed = 1, verbose = 0"


def _record(con, model: str) -> dict:
    row = con.sql("SELECT metrics, train_rows, validation_rows, epochs FROM dbml.model_versions WHERE model = ? "
                  "ORDER BY version DESC LIMIT 1", params=[model]).fetchall()[0]  # fmt: skip
    return {"metrics": json.loads(row[0]), "train_rows": row[1], "validation_rows": row[2], "epochs": row[3]}


def test_refit_trains_again_on_every_row_for_the_epochs_validation_chose(con):
    con.sql(f"TRAIN MODEL m FROM (SELECT a, b, c, y FROM t) TARGET y WITH ({FAST})")
    rec = _record(con, "m")
    refit = rec["metrics"]["refit"]
    assert refit["rows"] == rec["train_rows"] + rec["validation_rows"] == 1200
    log = con.sql("SELECT epoch, val_loss FROM dbml.training_log WHERE model = 'm' ORDER BY epoch").fetchall()
    best = min(log, key=lambda r: (r[1], r[0]))[0]
    assert refit["epochs"] == best  # the epoch of the lowest validation loss
    assert rec["metrics"]["evaluated_on"] == "validation" and rec["metrics"]["rows"] == rec["validation_rows"]
    # the stored network is the second one: its held-out accuracy is that of a real model, and it differs from refit = false's
    con.sql(f"TRAIN MODEL k FROM (SELECT a, b, c, y FROM t) TARGET y WITH ({FAST}, refit = false)")
    assert "refit" not in _record(con, "k")["metrics"]
    again, kept = (con.sql(f"SELECT avg((PREDICT({m}, a, b, c) = y)::INT) FROM h").fetchall()[0][0] for m in ("m", "k"))
    assert again > 0.75 and kept > 0.75
    pm, pk = (np.array([r[0] for r in con.sql(f"SELECT PREDICT_PROBA({m}, a, b, c)['1'] FROM h").fetchall()]) for m in ("m", "k"))
    assert np.abs(pm - pk).max() > 1e-4
    # the same seed and rows give the same refit version
    con.sql(f"TRAIN MODEL m FROM (SELECT a, b, c, y FROM t) TARGET y WITH ({FAST})")
    shas = con.sql("SELECT onnx_sha256 FROM dbml.model_versions WHERE model = 'm' ORDER BY version").fetchall()
    assert shas[0] == shas[1]


def test_refit_for_regression_and_a_fine_tune(con):
    con.sql(f"TRAIN MODEL r FROM (SELECT a, b, c, z FROM t) TARGET z WITH ({FAST})")
    assert _record(con, "r")["metrics"]["refit"]["rows"] == 1200
    con.sql(f"TRAIN MODEL r FROM (SELECT a, b, c, z FROM t) TARGET z WITH (warm_start = true, {FAST})")
    rec = _record(con, "r")
    assert rec["metrics"]["refit"]["epochs"] >= 1
    r2 = con.sql("SELECT 1 - sum((PREDICT(r, a, b, c) - z) ^ 2) / sum((z - (SELECT avg(z) FROM h)) ^ 2) FROM h").fetchall()[0][0]
    assert r2 > 0.9


def test_below_1000_rows_refit_is_off_unless_asked(con):
    con.sql(f"TRAIN MODEL s FROM (SELECT a, b, c, y FROM t LIMIT 999) TARGET y WITH ({FAST})")
    assert "refit" not in _record(con, "s")["metrics"]
    con.sql(f"TRAIN MODEL s FROM (SELECT a, b, c, y FROM t LIMIT 999) TARGET y WITH ({FAST}, refit = true)")
    assert _record(con, "s")["metrics"]["refit"]["rows"] == 999
    con.sql(f"TRAIN MODEL s FROM (SELECT a, b, c, y FROM t LIMIT 1000) TARGET y WITH ({FAST})")
    assert _record(con, "s")["metrics"]["refit"]["rows"] == 1000


def test_no_refit_without_validation_rows_and_a_clear_refusal_where_it_does_not_apply(con):
    con.sql(f"TRAIN MODEL v FROM (SELECT a, b, c, y FROM t) TARGET y WITH ({FAST}, validation = 0)")
    assert "refit" not in _record(con, "v")["metrics"]
    before = registry_counts(con)
    with pytest.raises(OptionError) as err:
        con.sql("TRAIN MODEL odd USING autoencoder FROM (SELECT a, b, c FROM t) WITH (refit = true, epochs = 2)")
    assert "option 'refit'" in str(err.value) and "reconstruction" in str(err.value)
    assert registry_counts(con) == before
    con.sql("TRAIN MODEL odd USING autoencoder FROM (SELECT a, b, c FROM t) WITH (refit = false, epochs = 2, verbose = 0)")
    assert "refit" not in _record(con, "odd")["metrics"]
