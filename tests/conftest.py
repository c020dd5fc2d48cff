"""Shared fixtures: an in-memory dbml connection, seeded data sets, and the gpu marker."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import dbml

# DBML_TEST_TORCH_THREADS=1 (or 2) runs the suite with that many torch threads, to find
# tests whose floats depend on how torch splits its work
if _threads := os.environ.get("DBML_TEST_TORCH_THREADS"):
    torch.set_num_threads(int(_threads))

# An mlp classifier or regression averages 5 networks by default on every table of up to
# 10,000 training rows (option ensemble), at 5 times the training time. The tests that
# train in this process are not about that default, so here it trains one network (a
# bound no table is under), which keeps the suite inside CI's time: tests/training/test_ensemble.py
# restores the product's rule (PRODUCT_ENSEMBLE_MAX_ROWS) and checks it, and tests that train
# in a subprocess (notebooks, the shell, the crash tests, the examples) run it as shipped.
from dbml.training import pipeline as _pipeline  # noqa: E402

# (kept on the module: a test that imports conftest runs this file a second time)
PRODUCT_ENSEMBLE_MAX_ROWS = _pipeline.__dict__.setdefault("_product_ensemble_max_rows", _pipeline.ENSEMBLE_MAX_ROWS)
_pipeline.ENSEMBLE_MAX_ROWS = -1


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def con():
    c = dbml.connect(user="tester")
    yield c
    c.close()


def registry_counts(c) -> dict[str, int]:
    """Row counts of every registry table, to check that a failure wrote nothing."""
    c.registry  # noqa: B018 - created on first use
    tables = ["model_versions", "model_blobs", "training_log", "audit_log", "aliases"]
    return {t: c.duckdb.execute(f"SELECT count(*) FROM dbml.{t}").fetchall()[0][0] for t in tables}


def udf_names(c) -> list[str]:
    rows = c.duckdb.execute(
        "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE 'dbml_%'"
    ).fetchall()
    return sorted(r[0] for r in rows)


# an integer, a DECIMAL, a BOOLEAN and a DATE column of i (a row number), each NULL in some rows
NULLABLE_COLUMNS = """CASE WHEN i % 17 = 0 THEN NULL ELSE (i % 50)::INTEGER END AS age,
    CASE WHEN i % 19 = 0 THEN NULL ELSE ((i * 37) % 100) / 10.0 END::DECIMAL(6, 2) AS spend,
    CASE WHEN i % 23 = 0 THEN NULL ELSE i % 2 = 0 END AS member,
    CASE WHEN i % 29 = 0 THEN NULL ELSE DATE '2024-01-01' + (i % 90)::INTEGER END AS joined"""


@pytest.fixture
def mixed(con):
    """300 rows with numbers, a decimal, booleans, dates, timestamps, strings, an enum
    and NULLs in every feature column; the label depends on several of them."""
    con.sql(
        f"""
        CREATE TYPE mood AS ENUM ('calm', 'tense', 'wild');
        CREATE TABLE mixed AS
        SELECT
            i AS id,
            {NULLABLE_COLUMNS},
            CASE WHEN i % 31 = 0 THEN NULL ELSE TIMESTAMP '2024-01-01 00:00:00' + to_hours(i % 48) END AS seen_at,
            CASE WHEN i % 13 = 0 THEN NULL ELSE ['basic', 'plus', 'pro'][1 + i % 3] END AS plan,
            (['calm', 'tense', 'wild'][1 + (i // 3) % 3])::mood AS mood,
            CASE WHEN (i % 3 = 2) OR (i % 50 > 40) THEN 'yes' ELSE 'no' END AS churned
        FROM range(300) AS r(i)
        """
    )
    return "mixed"


@pytest.fixture(scope="session")
def iris_rows():
    from sklearn.datasets import load_iris

    data = load_iris()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.target))
    return data.data[order], data.target[order], [n.replace(" (cm)", "").replace(" ", "_") for n in data.feature_names]


def kill_when_ready(code: str, args: list[str], marker, what: str, timeout: float = 60) -> None:
    """Run ``python -c code *args`` and SIGKILL it (which no handler sees) once it has
    written the file ``marker``; fail the test if it never does."""
    import os
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if child.poll() is not None or time.monotonic() > deadline:
                err = child.communicate(timeout=5)[1] if child.poll() is not None else b""
                pytest.fail(f"the child did not reach {what}: rc {child.returncode}, {err.decode()[-2000:]}")
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=20) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


_NO_TORCH = '''
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this process")
sys.meta_path.insert(0, NoTorch())
'''


def run_without_torch(script: str, timeout: float = 120):
    """Run ``script`` in a fresh Python where importing torch raises ImportError; it
    should end with ``assert "torch" not in sys.modules``. Returns the finished process."""
    import subprocess
    import sys
    import textwrap

    return subprocess.run([sys.executable, "-c", _NO_TORCH + textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout)


# -- models exported for scoring outside DuckDB (dbml.score, dbml.spark) ---------------------

SCORING_FEATURES = "age, spend, member, joined, seen_at, stamped, plan"
_SCORING_ROWS = """
    SELECT
        i AS id,
        {nullable},
        CASE WHEN i % 31 = 0 THEN NULL ELSE TIMESTAMP '2024-01-01 00:00:00' + to_minutes(i * 37 % 2880) END AS seen_at,
        TIMESTAMP '2023-06-01 08:00:00' + to_seconds(i * 4001) AS stamped,
        CASE WHEN i % 13 = 0 THEN NULL ELSE {plans}[1 + i % {n_plans}] END AS plan,
        ((i % 3 + (i % 50 > 40)::INTEGER) % 3)::INTEGER AS tier,
        ['small', 'medium', 'large'][1 + (i % 3 + (i % 50 > 40)::INTEGER) % 3] AS band,
        DATE '2024-03-01' + (7 * ((i % 3 + (i % 50 > 40)::INTEGER) % 3))::INTEGER AS due,
        TIMESTAMP '2024-03-01 08:00:00.25' + to_minutes(90 * ((i % 3 + (i % 50 > 40)::INTEGER) % 3)) AS slot,
        i % 3 = 2 OR i % 50 > 40 AS churned,
        coalesce(i % 50, 7) * 0.5 + ((i * 37) % 100) / 10.0 + (i % 2) AS amount
    FROM range({start}, {stop}) AS r(i)
"""


@pytest.fixture(scope="session")
def exported_models(tmp_path_factory):
    """A DuckDB connection with table ``train_rows`` (300 rows) and ``score_rows`` (120
    rows: NULLs in every feature, a plan no training row has), and seven models trained on
    the features ``SCORING_FEATURES`` and exported: ``tier`` (an INTEGER class), ``churn``
    (a BOOLEAN class), ``band`` (a VARCHAR class), ``due`` (a DATE class), ``slot`` (a
    TIMESTAMP class, with fractions of a second), ``amount`` (a regression) and ``odd``
    (an autoencoder). Returns (connection, {model: (path, sha256, bytes)})."""
    folder = tmp_path_factory.mktemp("exported")
    c = dbml.connect(user="tester")
    c.sql("CREATE TABLE train_rows AS " + _SCORING_ROWS.format(plans="['basic', 'plus', 'pro']", n_plans=3, start=0, stop=300,
                                                           nullable=NULLABLE_COLUMNS))
    c.sql("CREATE TABLE score_rows AS "
          + _SCORING_ROWS.format(plans="['basic', 'plus', 'pro', 'enterprise']", n_plans=4, start=300, stop=420,
                                nullable=NULLABLE_COLUMNS))  # fmt: skip
    trains = {
        "tier": f"TRAIN MODEL tier FROM (SELECT {SCORING_FEATURES}, tier FROM train_rows) TARGET tier",
        "churn": f"TRAIN MODEL churn FROM (SELECT {SCORING_FEATURES}, churned FROM train_rows) TARGET churned",
        "band": f"TRAIN MODEL band FROM (SELECT {SCORING_FEATURES}, band FROM train_rows) TARGET band",
        "due": f"TRAIN MODEL due FROM (SELECT {SCORING_FEATURES}, due FROM train_rows) TARGET due",
        "slot": f"TRAIN MODEL slot FROM (SELECT {SCORING_FEATURES}, slot FROM train_rows) TARGET slot",
        "amount": f"TRAIN MODEL amount FROM (SELECT {SCORING_FEATURES}, amount FROM train_rows) TARGET amount",
        "odd": f"TRAIN MODEL odd USING autoencoder FROM (SELECT {SCORING_FEATURES} FROM train_rows)",
    }
    files = {}
    for name, sql in trains.items():
        task = ", task = 'classification'" if name in ("due", "slot") else ""  # a date or time target is no class by itself
        c.sql(sql + f" WITH (epochs = 3, seed = 7, progress = false{task})")
        path = folder / f"{name}.onnx"
        _, _, _, size, sha = c.sql(f"EXPORT MODEL {name} TO '{path}'").fetchall()[0]
        files[name] = (str(path), sha, size)
    yield c, files
    c.close()


def foreign_add_model(path) -> None:
    """A foreign ONNX file of plain float inputs: out = x + 2 * y ([N, 1] each)."""
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    nodes = [helper.make_node("Mul", ["y", "two"], ["y2"]), helper.make_node("Add", ["x", "y2"], ["out"])]
    graph = helper.make_graph(nodes, "add", [x, y], [out], initializer=[two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    save(model, str(path))


def local_spark(app: str, config: dict[str, str] | None = None):
    """A local[2] SparkSession for tests: two shuffle partitions, no UI, bound to the
    loopback address, quiet logs; ``config``: more settings."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[2]").appName(app)
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
    )  # fmt: skip
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
