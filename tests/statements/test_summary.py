"""SHOW MODELS, DESCRIBE MODEL and TRAIN MODEL's result read well: the headline metric in
a column of its own, sizes in human units, the bulky facts only in the JSON columns."""

from __future__ import annotations

import json

import pytest
from conftest import foreign_add_model

import dbml
from dbml.summary import headline, human_size

FAST = "epochs = 2, progress = false, seed = 1"


@pytest.mark.parametrize("size, text", [(None, None), (0, "0 B"), (812, "812 B"), (1023, "1023 B"), (1024, "1.00 KiB"),
                                        (14_540, "14.2 KiB"), (3_198_000, "3.05 MiB"), (5 << 30, "5.00 GiB"),
                                        (1000 * 1024, "1000 KiB"), (5 << 50, "5120 TiB")])  # fmt: skip
def test_human_size(size, text):
    assert human_size(size) == text


def test_headline_per_task():
    assert headline("classification", {"accuracy": 0.9, "log_loss": 0.2}) == ("accuracy", 0.9)
    assert headline("regression", {"r2": 0.5, "mae": 3.0}) == ("r2", 0.5)
    assert headline("forecast", {"mae": 1.5}) == ("mae", 1.5)
    assert headline("reconstruction", {"mse": 0.1}) == ("mse", 0.1)
    assert headline("imported", {}) == (None, None)
    assert headline("regression", {"mae": 3.0}) == ("r2", None)  # not measured is NULL, never 0


def _row(rel) -> dict:
    return dict(zip(rel.columns, rel.fetchall()[0]))


def test_train_show_and_describe_lead_with_the_headline(tmp_path):
    con = dbml.connect()
    con.sql("CREATE TABLE t AS SELECT i::DOUBLE AS x, i % 2 = 0 AS y, i * 1.5 + (i % 7) AS r FROM range(200) AS s(i)")
    trained = _row(con.sql(f"TRAIN MODEL c FROM (SELECT x, y FROM t) TARGET y WITH ({FAST})"))
    stored = con.registry.get("c")
    assert trained["metric"] == "accuracy" and trained["score"] == round(stored["metrics"]["accuracy"], 4)
    assert trained["size"] == human_size(stored["onnx_size"]) and trained["size"].endswith("KiB")
    assert "prediction_distribution" not in json.dumps(trained["metrics"], default=str)
    con.sql(f"TRAIN MODEL g FROM (SELECT x, r FROM t) TARGET r WITH ({FAST})")
    con.sql("TRAIN MODEL g FROM (SELECT x, r FROM t) TARGET r WITH (epochs = 2, progress = false, seed = 2)")
    con.sql("ALTER MODEL g SET ALIAS default = 1")
    foreign_add_model(tmp_path / "add.onnx")
    con.sql(f"IMPORT MODEL plus FROM '{tmp_path / 'add.onnx'}'")
    show = con.sql("SHOW MODELS")
    assert show.columns[:4] == ["model", "task", "metric", "score"] and "metrics" not in show.columns
    assert show.columns[-1] == "baseline"  # columns added since come last
    rows = {r["model"]: r for r in (dict(zip(show.columns, v)) for v in show.fetchall())}
    g1 = con.registry.get("g", 1)
    assert (rows["g"]["metric"], rows["g"]["score"]) == ("r2", round(g1["metrics"]["r2"], 4))  # the default version's
    assert (rows["g"]["versions"], rows["g"]["default_version"], rows["g"]["latest_version"]) == (2, 1, 2)
    assert rows["g"]["aliases"] == {"default": 1} and rows["g"]["size"] == human_size(g1["onnx_size"])
    assert (rows["plus"]["metric"], rows["plus"]["score"]) == (None, None)
    assert rows["c"]["rows"] == 200 and rows["c"]["updated_at"].microsecond == 0
    desc = con.sql("DESCRIBE MODEL g")
    assert desc.columns[:5] == ["version", "aliases", "metric", "score", "task"]
    assert desc.columns[-4:] == ["size", "created_by", "created_at", "baseline"]
    versions = [dict(zip(desc.columns, v)) for v in desc.fetchall()]
    assert [v["aliases"] for v in versions] == [["default"], None]
    assert [v["score"] for v in versions] == [round(con.registry.get("g", n)["metrics"]["r2"], 4) for n in (1, 2)]
    assert "prediction_distribution" in versions[0]["metrics"]  # the full facts stay in the JSON column
    con.close()
