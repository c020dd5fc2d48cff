"""``numeric_encoding``: the piecewise-linear encoding of numbers over their training
deciles (the default for classification and regression), its graph, and the versions
that keep standardised numbers (other tasks, and fine-tunes of versions that had them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dbml
from dbml.errors import OptionError
from dbml.features import FeatureSpec
from dbml.kinds.encoders import NumberEncoder, quantile_bins


def _flag(nulls=0):
    return {"kind": "numeric", "mean": 0.4, "std": 0.49, "nulls": nulls, "min": 0.0, "max": 1.0,
            "quantiles": [0.0] * 5 + [1.0] * 4}  # fmt: skip


def _entry(values, kind="numeric"):
    v = np.asarray(values, float)
    return {"kind": kind, "mean": float(v.mean()), "std": float(v.std()), "nulls": 0, "min": float(v.min()),
            "max": float(v.max()), "quantiles": [float(q) for q in np.quantile(v, np.arange(1, 10) / 10)]}  # fmt: skip


def test_bins_follow_the_deciles_and_leave_flags_alone():
    x = np.arange(101.0)
    assert quantile_bins(_entry(x)) == [0.0, *[float(10 * k) for k in range(1, 10)], 100.0]
    assert quantile_bins(_flag()) == []  # two distinct edges: a flag gains nothing
    assert quantile_bins(_entry([0, 1, 2] * 30, kind="boolean")) == []


def test_the_encoding_is_piecewise_linear_and_open_at_both_ends():
    features = [FeatureSpec("a", "DOUBLE", "numeric"), FeatureSpec("flag", "DOUBLE", "numeric")]
    profile = {"a": _entry(np.arange(101.0)), "flag": _flag(nulls=3)}
    enc = NumberEncoder(features, profile, bins=True)
    assert enc.shape == (2 + 10 + 1,)  # both standardised, ten bins of a, the flag's missing indicator
    out = enc(torch.tensor([[-10.0, 0.0], [15.0, 1.0], [150.0, float("nan")], [float("nan"), 0.0]]))
    bins = out[:, 2:12]
    assert torch.allclose(bins[0], torch.tensor([-1.0] + [0.0] * 9))  # below the minimum: the first bin goes negative
    assert torch.allclose(bins[1], torch.tensor([1.0, 0.5] + [0.0] * 8))
    assert torch.allclose(bins[2], torch.tensor([1.0] * 9 + [6.0]))  # above the maximum: the last bin goes past 1
    assert torch.allclose(bins[3], torch.tensor([1.0] * 5 + [0.0] * 5))  # missing reads as the mean, 50
    assert out[:, 12].tolist() == [0.0, 0.0, 1.0, 0.0]
    plain = NumberEncoder(features, profile)
    assert plain.shape == (3,) and torch.equal(plain(torch.tensor([[15.0, 1.0]])), out[1:2, [0, 1, 12]])


@pytest.fixture
def con():
    c = dbml.connect()
    c.sql("""CREATE TABLE t AS SELECT a, b, CASE WHEN i % 9 = 0 THEN NULL ELSE b END AS nb, i % 2 = 0 AS flag,
                 sin(6 * a) + b * b + CASE WHEN i % 2 = 0 THEN 0.3 ELSE 0 END AS y
             FROM (SELECT i, (hash(i, 1) % 1000) / 1000.0 AS a, (hash(i, 2) % 1000) / 1000.0 AS b FROM range(1200) r(i))""")
    yield c
    c.close()


def test_regression_defaults_to_bins_and_scores_the_same_outside_torch(con, tmp_path):
    con.sql("TRAIN MODEL r FROM t TARGET y WITH (progress = false, epochs = 30, seed = 1)")
    rec = con.registry.get("r")
    assert rec["options"]["numeric_encoding"] == "quantile" and rec["parity_error"] < 1e-4
    assert rec["metrics"]["r2"] > 0.9
    # PREDICT (onnxruntime in DuckDB) on rows with NULLs and values beyond the training range
    got = con.sql("SELECT PREDICT(r, a, b, nb, flag) FROM (VALUES (2.0, -1.0, NULL, true), (0.5, 0.5, 0.5, false)) v(a, b, nb, flag)").fetchall()
    assert all(np.isfinite(v[0]) for v in got)


def test_other_tasks_and_old_parents_keep_standardised_numbers(con):
    con.sql("TRAIN MODEL odd USING autoencoder FROM (SELECT a, b FROM t) WITH (progress = false, epochs = 3)")
    assert con.registry.get("odd")["options"]["numeric_encoding"] == "standard"
    con.sql("TRAIN MODEL s FROM t TARGET y WITH (progress = false, epochs = 3, numeric_encoding = 'standard')")
    con.sql("TRAIN MODEL s FROM t TARGET y WITH (progress = false, epochs = 3, warm_start = true)")
    assert con.registry.get("s", 2)["options"]["numeric_encoding"] == "standard"  # the parent's weights expect it
    with pytest.raises(OptionError, match="option 'numeric_encoding' cannot change when fine-tuning model 's'"):
        con.sql("TRAIN MODEL s FROM t TARGET y WITH (progress = false, epochs = 3, warm_start = true, numeric_encoding = 'quantile')")
    with pytest.raises(OptionError, match="numeric_encoding' must be one of auto, standard, quantile"):
        con.sql("TRAIN MODEL s2 FROM t TARGET y WITH (numeric_encoding = 'log')")
