"""dbml.spark.train: a Spark DataFrame trained through TorchDistributor (local mode, two
processes), recorded in a DuckDB registry that scores it like any other version; bad
input refused on the driver before any Spark job."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import local_spark

pytest.importorskip("pyspark")

import dbml  # noqa: E402
import dbml.spark  # noqa: E402
from dbml.errors import FeatureError, OptionError, TargetError  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    session = local_spark("dbml-train-tests")
    yield session
    session.stop()


def _frame(spark, n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    colour = rng.choice(["red", "green"], n)
    y = (x[:, 0] + x[:, 1] ** 2 + (colour == "red") * 0.5 > 0.8).astype(int)
    rows = [(float(a), float(b), float(c), str(k), int(t)) for (a, b, c), k, t in zip(x, colour, y)]
    return spark.createDataFrame(rows, "a double, b double, c double, colour string, y int").repartition(3)


def test_a_spark_dataframe_trains_through_torchdistributor_and_scores_in_duckdb(spark, tmp_path):
    path = str(tmp_path / "models.duckdb")
    row = dbml.spark.train(_frame(spark, 2000, 0), "sp", target="y", registry=path, num_processes=2, epochs=12,
                           hidden=[16], refit=False, verbose=0)  # fmt: skip
    assert row["status"] == "trained" and row["rows"] == 2000 and row["metrics"]["accuracy"] > 0.85
    con = dbml.connect(path)
    options, source_sql = con.sql("SELECT options, source_sql FROM dbml.model_versions WHERE model = 'sp'").fetchall()[0]
    assert json.loads(options)["streaming"] is True
    assert source_sql.startswith("-- a Spark DataFrame (5 columns)") and "dbml.spark.train" in source_sql
    held = _frame(spark, 500, 1).toPandas()
    con.duckdb.register("held", held)
    acc = con.sql("SELECT avg((PREDICT(sp, a, b, c, colour) = y)::INT) FROM held").fetchall()[0][0]
    assert acc > 0.85
    # the staging folder was temporary
    assert not any(os.path.exists(line.split(", staged to ")[1].split(" by ")[0]) for line in source_sql.splitlines()[:1])
    con.close()


def test_bad_input_is_refused_on_the_driver_before_any_job(spark, tmp_path):
    path = str(tmp_path / "never.duckdb")
    df = _frame(spark, 50, 2)
    with pytest.raises(TargetError, match="target column 'churned' of model 'm' is not in the Spark DataFrame; its columns are a, b"):
        dbml.spark.train(df, "m", target="churned", registry=path)
    with pytest.raises(FeatureError, match="column 'tags' of the Spark DataFrame for model 'm' has type map<string,int>"):
        dbml.spark.train(df.selectExpr("*", "map('x', 1) AS tags"), "m", target="y", registry=path)
    with pytest.raises(OptionError, match="option 'workers' of dbml.spark.train .*is set by dbml.spark.train"):
        dbml.spark.train(df, "m", target="y", registry=path, workers=2)
    assert not os.path.exists(path)  # no registry was opened, no job ran
