"""SIGKILL during TRAIN MODEL on a file database leaves no trace of the model, and the
database opens and trains afterwards.

A child process trains on the file; at a chosen point (an epoch's end, or the ONNX export
after training) it says so through a marker file and waits, and the test kills it with
SIGKILL, which no handler sees. Then the registry is read in this process.
"""

from __future__ import annotations

import textwrap

import pytest
from conftest import kill_when_ready

import dbml

CHILD = textwrap.dedent(
    """
    import sys, time, pathlib
    import dbml
    from dbml.training import pipeline
    from dbml.training import Callback

    path, marker, point = sys.argv[1:4]

    def stop_here():
        pathlib.Path(marker).write_text("ready")
        time.sleep(60)  # the test kills us during this sleep

    class AtEpoch(Callback):
        def on_epoch_end(self, log):
            if log.epoch == 2:
                stop_here()

    if point == "export":
        real = pipeline.build_onnx
        pipeline.build_onnx = lambda *a, **k: (real(*a, **k), stop_here())[0]
    con = dbml.connect(path)
    con.sql("CREATE TABLE IF NOT EXISTS t AS SELECT i % 10 AS a, (i * 7) % 13 AS b, i % 10 > 4 AS y FROM range(400) r(i)")
    con.train("k", "t", target="y", epochs=50, patience=50, progress=False, hidden=[8],
              callbacks=[AtEpoch()] if point == "epoch" else [])
    print("finished")  # never reached
    """
)


def _kill_child_at(tmp_path, point: str) -> str:
    path, marker = str(tmp_path / "crash.duckdb"), tmp_path / f"{point}.ready"
    kill_when_ready(CHILD, [path, str(marker), point], marker, point, timeout=50)
    return path


def _rows_of(con, model: str) -> dict[str, int]:
    return {
        t: con.duckdb.execute(f"SELECT count(*) FROM dbml.{t} WHERE model = ?", [model]).fetchall()[0][0]
        for t in ("model_versions", "model_blobs", "training_log")
    }


@pytest.mark.parametrize("point", ["epoch", "export"])
def test_sigkill_during_training_leaves_no_version_and_the_file_trains_after(tmp_path, point):
    path = _kill_child_at(tmp_path, point)
    with dbml.connect(path) as con:
        assert con.duckdb.execute("SELECT count(*) FROM t").fetchall() == [(400,)]  # the source survived
        assert _rows_of(con, "k") == {"model_versions": 0, "model_blobs": 0, "training_log": 0}
        row = con.sql("TRAIN MODEL k FROM t TARGET y WITH (epochs = 2, progress = false, hidden = [8])").fetchall()[0]
        assert row[1:3] == (1, "trained")  # the first version is 1: nothing was half-numbered
        assert _rows_of(con, "k") == {"model_versions": 1, "model_blobs": 1, "training_log": 2}
        assert len(con.sql("SELECT PREDICT(k, *) FROM t").fetchall()) == 400
    with dbml.connect(path) as con:  # and it reopens with the new version
        assert con.sql("SELECT count(*) FROM (SELECT PREDICT(k, *) FROM t)").fetchall() == [(400,)]
