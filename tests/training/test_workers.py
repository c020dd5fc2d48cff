"""Option workers: one version trained by N processes, data parallel (dbml.training.distributed)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import dbml
from dbml.errors import OptionError, TrainingError
from conftest import registry_counts


def _rows(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + 0.3 * rng.normal(size=n) > 0.4).astype(np.int64)
    return pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


@pytest.fixture
def con():
    c = dbml.connect()
    c.duckdb.register("train_rows", _rows(1500, 0))
    c.duckdb.register("test_rows", _rows(500, 1))
    c.sql("CREATE TABLE t AS SELECT * FROM train_rows")
    c.sql("CREATE TABLE h AS SELECT * FROM test_rows")
    yield c
    c.close()


FAST = "epochs = 15, patience = 5, hidden = [16], seed = 2, refit = false, verbose = 0"


def _workers() -> list[int]:
    """The pids of this process's spawned workers (not the resource tracker)."""
    me, found = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == me and b"spawn_main" in cmd:
            found.append(int(pid))
    return found


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two workers need two cores")
def test_two_workers_train_one_version_as_accurate_as_one(con):
    wide = FAST.replace("hidden = [16]", "hidden = [256, 256]")  # weights of ~270 KB: more than a pipe holds
    con.sql(f"TRAIN MODEL one FROM t TARGET y WITH ({wide})")
    con.sql(f"TRAIN MODEL two FROM t TARGET y WITH ({wide}, workers = 2)")
    acc = {m: con.sql(f"SELECT avg((PREDICT({m}, a, b, c) = y)::INT) FROM h").fetchall()[0][0] for m in ("one", "two")}
    assert acc["two"] > 0.8 and abs(acc["two"] - acc["one"]) < 0.05, acc
    options, metrics = (json.loads(v) for v in con.sql("SELECT options, metrics FROM dbml.model_versions WHERE model = 'two'").fetchall()[0])
    assert options["workers"] == 2 and metrics["evaluated_on"] == "validation"
    log = con.sql("SELECT count(*) FROM dbml.training_log WHERE model = 'two'").fetchall()[0][0]
    assert log >= 1
    assert _workers() == []  # every worker has ended


def test_workers_beyond_the_cores_are_named(con):
    before = registry_counts(con)
    n = (os.cpu_count() or 1) + 1
    with pytest.raises(OptionError, match=f"option 'workers' = {n} .*has {n - 1} CPU cores"):
        con.sql(f"TRAIN MODEL w FROM t TARGET y WITH (workers = {n})")
    with pytest.raises(OptionError, match="option 'workers' must be between 1 and 1024"):
        con.sql("TRAIN MODEL w FROM t TARGET y WITH (workers = 0)")
    assert registry_counts(con) == before


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two workers need two cores")
def test_a_killed_worker_stops_the_others_and_nothing_is_written(con):
    before = registry_counts(con)
    failure: list[BaseException] = []

    def train():
        try:
            con.sql("TRAIN MODEL k FROM t TARGET y WITH (epochs = 100000, patience = 100000, hidden = [16], "
                    "refit = false, workers = 2, verbose = 0)")  # fmt: skip
        except BaseException as err:  # noqa: BLE001
            failure.append(err)

    thread = threading.Thread(target=train)
    thread.start()
    deadline = time.time() + 120
    while len(_workers()) < 2 and time.time() < deadline:
        time.sleep(0.2)
    workers = _workers()
    assert len(workers) == 2, "the workers did not start"
    time.sleep(3)  # well into training
    os.kill(workers[1], signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], TrainingError), failure
    assert "stopped (signal SIGKILL)" in str(failure[0]) and "nothing was saved" in str(failure[0])
    assert _workers() == []
    assert registry_counts(con) == before


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two workers need two cores")
def test_two_workers_stream_their_shares_of_the_staged_rows(con):
    con.sql(f"TRAIN MODEL one FROM t TARGET y WITH ({FAST}, streaming = true)")
    con.sql(f"TRAIN MODEL two FROM t TARGET y WITH ({FAST}, streaming = true, workers = 2)")
    acc = {m: con.sql(f"SELECT avg((PREDICT({m}, a, b, c) = y)::INT) FROM h").fetchall()[0][0] for m in ("one", "two")}
    assert acc["two"] > 0.8 and abs(acc["two"] - acc["one"]) < 0.05, acc
    options = json.loads(con.sql("SELECT options FROM dbml.model_versions WHERE model = 'two'").fetchall()[0][0])
    assert options["workers"] == 2 and options["streaming"] is True
    assert _workers() == []


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two workers need two cores")
def test_fewer_validation_rows_than_workers(con):
    # one validation row: one worker's shard holds none, and both still validate together
    con.sql("TRAIN MODEL few FROM (SELECT a, b, c FROM t LIMIT 60) TARGET c WITH (validation = 0.01, epochs = 3, hidden = [8], "
            "workers = 2, verbose = 0)")  # fmt: skip
    assert con.sql("SELECT validation_rows FROM dbml.model_versions WHERE model = 'few'").fetchall() == [(1,)]
