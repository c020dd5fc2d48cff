"""The CUDA path: training on the GPU gives a model that scores on the CPU like any other."""

from __future__ import annotations

import pytest


@pytest.mark.gpu
def test_train_on_cuda_and_score(con, mixed):
    row = con.sql(
        f"TRAIN MODEL g FROM (SELECT * EXCLUDE (id) FROM {mixed}) TARGET churned "
        "WITH (device = 'cuda', epochs = 20, progress = false)"
    ).fetchall()[0]
    assert row[-1] == "cuda"
    parity = con.sql("SELECT parity_error FROM dbml.model_versions WHERE model = 'g'").fetchall()[0][0]
    assert parity < 1e-4
    accuracy = con.sql(f"SELECT avg((PREDICT(g, *) = churned)::DOUBLE) FROM {mixed}").fetchall()[0][0]
    assert accuracy > 0.7


@pytest.mark.gpu
def test_auto_device_takes_cuda(con, mixed):
    row = con.sql(f"TRAIN MODEL a FROM {mixed} TARGET churned WITH (epochs = 2, progress = false)").fetchall()[0]
    assert row[-1] == "cuda"
