"""The CUDA path: training on the GPU gives a model that scores on the CPU like any other."""

from __future__ import annotations

import pytest


def _on_cuda(con, mixed, name: str, options: str) -> dict:
    """Train ``name`` on CUDA with ``options``; check what every CUDA version must be (the
    device recorded, torch and the graph agreeing, well above chance on the CPU's PREDICT)."""
    row = _train(con, f"TRAIN MODEL {name} FROM (SELECT * EXCLUDE (id) FROM {mixed}) TARGET churned "
                 f"WITH (device = 'cuda', progress = false, {options})")  # fmt: skip
    assert row["device"] == "cuda"
    parity = con.sql(f"SELECT parity_error FROM dbml.model_versions WHERE model = '{name}'").fetchall()[0][0]
    assert parity < 1e-4
    accuracy = con.sql(f"SELECT avg((PREDICT({name}, *) = churned)::DOUBLE) FROM {mixed}").fetchall()[0][0]
    assert accuracy > 0.7
    return row


@pytest.mark.gpu
def test_train_on_cuda_and_score(con, mixed):
    _on_cuda(con, mixed, "g", "epochs = 20")
    options = con.sql("SELECT options FROM dbml.model_versions WHERE model = 'g'").fetchall()[0][0]
    assert '"gpu"' in options  # the GPU's name is kept with the version


@pytest.mark.gpu
def test_auto_device_takes_cuda(con, mixed):
    row = _train(con, f"TRAIN MODEL a FROM {mixed} TARGET churned WITH (epochs = 2, progress = false)")
    assert row["device"] == "cuda"


@pytest.mark.gpu
def test_streaming_on_cuda(con, mixed):
    _on_cuda(con, mixed, "s", "epochs = 10, streaming = true")


@pytest.mark.gpu
def test_bf16_on_cuda(con, mixed):
    _on_cuda(con, mixed, "b", "precision = 'bf16', epochs = 10")


def _train(con, sql: str) -> dict:
    """TRAIN MODEL's one row, by column name."""
    rel = con.sql(sql)
    return dict(zip(rel.columns, rel.fetchall()[0]))


FAMILIES = {
    "cnn": ("CREATE TABLE src AS SELECT [i % 4, (i // 4) % 4, i % 3, 1]::FLOAT[4] AS px, i % 4 < 2 AS y FROM range(400) r(i)",
            "USING cnn FROM src TARGET y", "shape = [1, 2, 2], ", "PREDICT"),
    "lstm": ("CREATE TABLE src AS SELECT list_transform(range(3 + i % 5), lambda x: (x * (i % 2))::DOUBLE) AS s, i % 2 = 1 AS y "
             "FROM range(400) r(i)", "USING lstm FROM src TARGET y", "", "PREDICT"),
    "gru": ("CREATE TABLE src AS SELECT s % 2 AS k, DATE '2024-01-01' + d::INT AS day, (5 * sin(d / 2) + s)::DOUBLE AS y "
            "FROM range(2) a(s), range(80) b(d)", "USING gru FROM src TARGET y", "time = 'day', series = 'k', horizon = 3, ", None),
    "autoencoder": ("CREATE TABLE src AS SELECT (i % 10)::DOUBLE AS a, (i % 7)::DOUBLE AS b FROM range(400) r(i)",
                    "USING autoencoder FROM src", "", "ANOMALY_SCORE"),
}  # fmt: skip


@pytest.mark.gpu
@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_trains_on_cuda_and_scores_in_a_cpu_process(tmp_path, family):
    import subprocess
    import sys

    import dbml

    create, train, options, function = FAMILIES[family]
    path = str(tmp_path / "gpu.duckdb")
    con = dbml.connect(path)
    con.sql(create)
    row = _train(con, f"TRAIN MODEL g {train} WITH ({options}device = 'cuda', epochs = 5, progress = false)")
    assert row["device"] == "cuda"
    query = f"SELECT {function}(g, *) FROM src" if function else "FORECAST MODEL g HORIZON 4"
    expected = con.sql(query).fetchall()
    con.close()
    script = (f"import os; os.environ['CUDA_VISIBLE_DEVICES'] = ''; import dbml; c = dbml.connect({path!r}); "
              f"print(repr(c.sql({query!r}).fetchall()))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == repr(expected)
