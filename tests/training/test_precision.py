"""Option precision: bfloat16 autocast in training; the weights and the exported graph stay float32."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import dbml
from dbml.errors import OptionError


@pytest.fixture
def con():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.4).astype(np.int64)
    c = dbml.connect()
    c.duckdb.register("rows_", pa.table({"i": np.arange(1500), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}))
    c.sql("CREATE TABLE t AS SELECT a, b, c, y FROM rows_ WHERE i < 1100")
    c.sql("CREATE TABLE h AS SELECT a, b, c, y FROM rows_ WHERE i >= 1100")
    yield c
    c.close()


def test_bf16_trains_a_float32_graph(con):
    con.sql("TRAIN MODEL b FROM t TARGET y WITH (epochs = 15, hidden = [16], seed = 3, precision = 'bf16', verbose = 0)")
    options, parity = con.sql("SELECT options, parity_error FROM dbml.model_versions WHERE model = 'b'").fetchall()[0]
    assert json.loads(options)["precision"] == "bf16"
    assert parity < 1e-4  # the exported graph is the float32 network
    assert con.sql("SELECT avg((PREDICT(b, a, b, c) = y)::INT) FROM h").fetchall()[0][0] > 0.8
    with pytest.raises(OptionError, match="option 'precision' must be one of fp32, bf16"):
        con.sql("TRAIN MODEL b2 FROM t TARGET y WITH (precision = 'fp16')")


def test_a_device_out_of_memory_is_a_dbml_error_naming_batch_size(con, monkeypatch):
    import torch

    from conftest import registry_counts
    from dbml.errors import TrainingError
    from dbml.training.loop import Trainer

    def full(self, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Trainer, "train_step", full)
    before = registry_counts(con)
    with pytest.raises(TrainingError, match="ran out of memory while training with 64 rows a step; try a smaller batch_size"):
        con.sql("TRAIN MODEL o FROM t TARGET y WITH (epochs = 3, batch_size = 64, verbose = 0)")
    assert registry_counts(con) == before
