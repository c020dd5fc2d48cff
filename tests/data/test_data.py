"""The data seam (dbml/data/): the split as DuckDB SQL, the facts and profile, the
fingerprint of the read that trains, the batches, the loop over them, and how many times
TRAIN runs its source."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import torch

import dbml
from dbml.data import rows as data_rows
from dbml.data import series, source, split
from dbml.data.batches import TensorBatches, epoch_order
from dbml.registry import lineage
from dbml.training import Callback, Trainer

FAST = "epochs = 3, progress = false, hidden = [8]"


def _roles(con, sql: str) -> list[tuple]:
    return con.execute(f'SELECT * FROM ({sql}) ORDER BY ALL').fetchall()


# -- the split ---------------------------------------------------------------------------------


@pytest.fixture
def db():
    c = duckdb.connect()
    c.execute("CREATE TABLE r AS SELECT i AS id, i % 7 AS a, ['x', 'y', 'z'][1 + i % 3] AS c, i % 10 < 3 AS y "
              "FROM range(200) t(i)")  # fmt: skip
    yield c
    c.close()


def test_the_split_is_a_seeded_function_of_each_row_not_of_its_position(db):
    cols = ["id", "a", "c", "y"]
    once = _roles(db, split.roles_sql("SELECT * FROM r", cols, 0.2, 7))
    again = _roles(db, split.roles_sql("SELECT * FROM r", cols, 0.2, 7))
    shuffled = _roles(db, split.roles_sql("SELECT * FROM r ORDER BY hash(id) DESC", cols, 0.2, 7))
    other_seed = _roles(db, split.roles_sql("SELECT * FROM r", cols, 0.2, 8))
    assert once == again == shuffled != other_seed
    assert sum(r[-1] == split.VALIDATION for r in once) == 40  # max(1, round(200 * 0.2))


def test_copies_of_a_row_split_like_other_rows(db):
    # 9 distinct rows, each about 22 times (no id): copies must not all land on one side
    got = _roles(db, split.roles_sql("SELECT a % 3 AS a, c FROM r WHERE id < 100 UNION ALL SELECT a % 3, c FROM r WHERE id < 100",
                                     ["a", "c"], 0.2, 1))  # fmt: skip
    sides = {}
    for a, c, role in got:
        sides.setdefault((a, c), set()).add(role)
    assert sum(r[-1] == split.VALIDATION for r in got) == 40
    assert sum(len(s) == 2 for s in sides.values()) >= len(sides) // 2


def test_a_stratified_split_takes_each_class_share_and_leaves_each_class_a_training_row(db):
    db.execute("CREATE TABLE s AS SELECT i AS id, CASE WHEN i < 3 THEN 'rare' WHEN i < 4 THEN 'single' "
               "WHEN i < 70 THEN 'mid' ELSE 'big' END AS k FROM range(200) t(i)")  # fmt: skip
    got = db.execute(f'SELECT k, count(*), count(*) FILTER (WHERE "dbml/role" = 1) FROM ('
                     f'{split.roles_sql("SELECT * FROM s", ["id", "k"], 0.3, 5, stratum="k")}) GROUP BY k').fetchall()  # fmt: skip
    assert {k: (n, v) for k, n, v in got} == {"rare": (3, 1), "single": (1, 0), "mid": (66, 20), "big": (130, 39)}


def test_small_sources_and_no_validation_train_on_every_row(db):
    for sql, fraction in (("SELECT * FROM r LIMIT 9", 0.5), ("SELECT * FROM r", 0.0)):
        roles = {r[-1] for r in _roles(db, split.roles_sql(sql, ["id", "a"], fraction, 1))}
        assert roles == {split.TRAIN}


def test_a_forecaster_splits_each_series_by_time_leaving_a_gap(db):
    db.execute("CREATE TABLE w AS SELECT s, t FROM range(2) a(s), range(20) b(t) UNION ALL SELECT 2, t FROM range(3) b(t)")
    role = split.by_time("s", "t", 0.2, 2)
    got = db.execute(f"SELECT s, t, {role} FROM w ORDER BY s, t").fetchall()
    by = {}
    for s, t, r in got:
        by.setdefault(s, []).append(r)
    assert by[0] == by[1] == [0] * 14 + [2, 2] + [1] * 4  # the last 4 of 20 validate, 2 before them left out
    assert by[2] == [0, 0, 0]  # too short to hold out


# -- the facts pass and the profile --------------------------------------------------------------


def test_the_target_facts_are_one_query(db):
    f = source.source_facts(db, "SELECT * FROM r", None, "a", "BIGINT")
    assert f == {"distinct": 7, "min": 0, "max": 6, "longest": 1, "rows": 200}  # and the rows that train, in the same query
    f = source.source_facts(db, "SELECT * FROM r", None, "c", "VARCHAR", columns={"a": {"top": "max(a)", "n": "count(a)"}})
    assert f["distinct"] == 3 and f["min"] is None and f["columns"] == {"a": {"top": 6, "n": 200}}


def test_the_profile_reads_the_training_rows_of_the_read_only():
    table = pa.table({"n": pa.array([1.0, 2.0, 3.0, 100.0], pa.float32()), "dbml/role": pa.array([0, 0, 0, 1], pa.int8())})
    spec = dbml.features.FeatureSpec("n", "numeric", "FLOAT")
    prof = data_rows.profile(table, [spec], {"max_categories": 10})
    assert prof["n"]["max"] == 3.0 and prof["n"]["count"] == 3
    assert data_rows.profile(table.drop_columns(["dbml/role"]), [spec], {})["n"]["max"] == 100.0


def test_series_facts_are_one_pass_and_find_what_describe_series_did(db):
    db.execute("CREATE TABLE ts AS SELECT s, DATE '2024-01-01' + t::INT AS d, CASE WHEN t = 38 THEN NULL ELSE t * 1.0 + s END AS v "
               "FROM range(2) a(s), range(40) b(t)")  # fmt: skip
    types = {"s": "BIGINT", "d": "DATE", "v": "DOUBLE"}
    s = series.describe_series(db, "SELECT * FROM ts", None, "m", "d", ["s"], "v", types, 5, 2)
    assert {k: v["frequency"] for k, v in s.steps.items()} == {(0,): "daily", (1,): "daily"}
    ends = series.ends(s, 5)
    assert ends[1]["history"][:3] == [36.0, 37.0, 38.0] and np.isnan(ends[1]["history"][3]) and ends[1]["last"] == "2024-02-09"
    s.ends = {}  # the query the facts pass saves gives the same ends
    assert [e["history"][:3] for e in series.last_windows(db, "SELECT * FROM ts", None, s, 5)] == [e["history"][:3] for e in ends]
    db.execute("INSERT INTO ts VALUES (1, DATE '2024-01-05', 0), (1, DATE '2024-01-03', 0)")
    with pytest.raises(dbml.FeatureError, match=r"has 2 rows at 2024-01-03 of series \{'s': 1\}"):
        series.describe_series(db, "SELECT * FROM ts", None, "m", "d", ["s"], "v", types, 5, 2)


# -- the fingerprint: the same read that trains ---------------------------------------------------


def test_the_fingerprint_is_of_the_rows_that_trained(con):
    con.sql("CREATE TABLE t AS SELECT i AS x, i % 3 AS c, i % 2 = 0 AS y FROM range(100) r(i)")
    con.sql(f"TRAIN MODEL f FROM t TARGET y WITH ({FAST})")
    rec = con.registry.get("f")
    assert rec["data_fingerprint"] == lineage.fingerprint(con.duckdb, "SELECT * FROM t", ["x", "c", "y"])
    con.sql("UPDATE t SET x = 1000 WHERE x = 5")
    con.sql(f"TRAIN MODEL f FROM t TARGET y WITH ({FAST})")
    assert con.registry.get("f", 2)["data_fingerprint"] != rec["data_fingerprint"]


def test_a_source_that_changes_between_reads_is_fingerprinted_as_it_was_read(con):
    """A source whose rows differ at every pass (a counting function drops one more row each
    time it has seen them all): the fingerprint counts the rows the read that trained saw."""
    seen = [0]

    def shrinking(x):
        seen[0] += len(x)
        passes = seen[0] // 100
        return pa.array(np.asarray(x.to_numpy(zero_copy_only=False)) >= passes)

    con.duckdb.create_function("shrinking", shrinking, [duckdb.sqltypes.BIGINT], duckdb.sqltypes.BOOLEAN, type="arrow",
                               side_effects=True)  # fmt: skip
    con.sql("CREATE TABLE t AS SELECT i AS x, i % 2 = 0 AS y FROM range(100) r(i)")
    con.sql(f"TRAIN MODEL f FROM (SELECT * FROM t WHERE shrinking(x)) TARGET y WITH ({FAST})")
    rec = con.registry.get("f")
    assert rec["data_fingerprint"].split("-")[0] == str(rec["row_count"]) == str(rec["train_rows"] + rec["validation_rows"])


# -- the same seed and data give the same model ---------------------------------------------------


def test_the_same_rows_in_any_order_give_the_same_model(con):
    con.sql("CREATE TABLE t AS SELECT i AS x, (i * 7) % 11 AS z, ['p', 'q'][1 + i % 2] AS c, i % 3 = 0 AS y FROM range(120) r(i)")
    for order in ("", " ORDER BY x DESC", ""):
        con.sql(f"TRAIN MODEL s FROM (SELECT * FROM t{order}) TARGET y WITH ({FAST}, seed = 4)")
    con.sql(f"TRAIN MODEL s FROM t TARGET y WITH ({FAST}, seed = 5)")
    shas = [r[0] for r in con.sql("SELECT onnx_sha256 FROM dbml.model_versions ORDER BY version").fetchall()]
    assert shas[0] == shas[1] == shas[2] != shas[3]


def test_a_forecaster_trains_the_same_model_twice(con):
    con.sql("CREATE TABLE ts AS SELECT s, t, sin(t / 3.0) + s AS v FROM range(2) a(s), range(40) b(t)")
    for _ in range(2):
        con.sql("TRAIN MODEL f USING lstm FROM ts TARGET v WITH (time = 't', series = ['s'], horizon = 2, window = 6, "
                "epochs = 2, progress = false)")  # fmt: skip
    a, b = (con.registry.get("f", v) for v in (1, 2))
    assert a["onnx_sha256"] == b["onnx_sha256"] and a["metrics"] == b["metrics"]
    assert (a["train_rows"], a["validation_rows"], a["row_count"]) == (50, 14, 66)  # per series: 33 windows, 7 validate, 1 gap


# -- the source runs at most twice per TRAIN ------------------------------------------------------


PASSES = {
    "mlp": ("SELECT * FROM t WHERE seam_count(a)", "TARGET y", ""),
    "regression": ("SELECT * FROM t WHERE seam_count(a)", "TARGET a", ""),
    "autoencoder": ("SELECT a, b, c FROM t WHERE seam_count(a)", "", "USING autoencoder"),
    "lstm": ("SELECT [a, b, a + b] AS s, y FROM t WHERE seam_count(a)", "TARGET y", "USING lstm"),
    "cnn": ("SELECT [a, b, a + b, b]::FLOAT[4] AS px, y FROM t WHERE seam_count(a)", "TARGET y", "USING cnn",
            ", shape = [1, 2, 2]"),
    "fine-tune": ("SELECT * FROM t WHERE seam_count(a)", "TARGET y", "", ", warm_start = true"),
    "forecaster": ("SELECT * FROM ts WHERE seam_count(v)", "TARGET v",
                   "USING gru", ", time = 't', series = ['k'], horizon = 3"),
}  # fmt: skip


@pytest.mark.parametrize("family", list(PASSES))
def test_the_source_runs_at_most_twice_per_train(con, family):
    seen = [0]

    def counting(x):
        seen[0] += len(x)
        return pa.array(np.ones(len(x), dtype=bool))

    con.duckdb.create_function("seam_count", counting, [duckdb.sqltypes.DOUBLE], duckdb.sqltypes.BOOLEAN, type="arrow",
                               side_effects=True)  # fmt: skip
    con.sql("CREATE TABLE t AS SELECT (i % 13)::DOUBLE AS a, (i % 7)::DOUBLE AS b, ['x', 'y'][1 + i % 2] AS c, "
            "i % 13 > 6 AS y FROM range(300) r(i)")  # fmt: skip
    con.sql("CREATE TABLE ts AS SELECT k, t, sin(t / 4.0) + k AS v FROM range(3) a(k), range(100) b(t)")
    sql, target, using, *more = PASSES[family]
    if family == "fine-tune":  # the parent's training is not counted
        con.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1, progress = false)")
    con.sql(f"TRAIN MODEL m {using} FROM ({sql}) {target} WITH (epochs = 1, progress = false{''.join(more)})")
    assert 0 < seen[0] <= 2 * 300


# -- batches ----------------------------------------------------------------------------------------


def test_each_epoch_has_its_own_order_drawn_from_the_seed_and_the_epoch():
    assert np.array_equal(epoch_order(50, 3, 1), epoch_order(50, 3, 1))
    assert not np.array_equal(epoch_order(50, 3, 1), epoch_order(50, 3, 2))
    assert not np.array_equal(epoch_order(50, 3, 1), epoch_order(50, 4, 1))
    assert sorted(epoch_order(50, 3, 7)) == list(range(50))


def test_shards_cover_every_row_once_each_epoch():
    data = {"x": torch.arange(103).float().unsqueeze(1), "target": torch.arange(103)}
    for epoch in (1, 2):
        got = []
        for shard in range(3):
            b = TensorBatches(data, 8, seed=1, shard=shard, shards=3)
            assert b.rows in (34, 35)
            got += [int(v) for batch in b.epoch(epoch) for v in batch["target"]]
        assert sorted(got) == list(range(103))
    fixed = [int(v) for batch in TensorBatches(data, 10, shuffle=False) for v in batch["target"]]
    assert fixed == list(range(103))


def test_a_last_batch_of_one_row_is_left_out_of_training():
    data = {"x": torch.zeros(9, 1)}
    sizes = [len(b["x"]) for b in TensorBatches(data, 4, drop_single=True).epoch(1)]
    assert sizes == [4, 4]
    assert [len(b["x"]) for b in TensorBatches(data, 4).epoch(1)] == [4, 4, 1]


# -- the loop -----------------------------------------------------------------------------------------


class _Squares:
    """A task for the loop alone: mean squared error of a one-column output."""

    def loss(self, net, out, batch):
        return torch.nn.functional.mse_loss(out[:, 0], batch["target"])

    def score(self, net, out, batch):
        return -self.loss(net, out, batch)


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)

    def forward(self, batch):
        return self.lin(batch["x"])


def test_the_loop_runs_its_hooks_in_order_and_keeps_the_best_weights():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    train = TensorBatches({"x": x, "target": 2 * x[:, 0]}, 16, seed=0)
    val = TensorBatches({"x": x, "target": -2 * x[:, 0]}, 64, shuffle=False)  # gets worse as training improves
    events, weights = [], {}

    class Spy(Callback):
        def on_train_begin(self, epochs):
            events.append(("begin", epochs))

        def on_epoch_end(self, log):
            events.append(("epoch", log.epoch))
            weights[log.epoch] = (log.val_loss, net.lin.weight.item())

        def on_train_end(self, logs):
            events.append(("end", len(logs)))

    net = _Net()
    trainer = Trainer(net, _Squares(), {"epochs": 50, "lr": 0.05, "weight_decay": 0.0, "patience": 3}, [Spy()])
    logs = trainer.fit(train, val)
    assert events[0] == ("begin", 50) and events[-1] == ("end", len(logs)) and len(logs) < 50
    assert trainer.step == 4 * len(logs)
    best = min(weights.values())
    assert net.lin.weight.item() == best[1]


def test_the_loop_places_batches_through_an_overridable_method():
    moved = []

    class Counting(Trainer):
        def to_device(self, batch):
            moved.append(len(batch["x"]))
            return super().to_device(batch)

    x = torch.ones(10, 1)
    Counting(_Net(), _Squares(), {"epochs": 2, "lr": 0.01, "weight_decay": 0.0, "patience": 5}).fit(
        TensorBatches({"x": x, "target": x[:, 0]}, 4, drop_single=True))
    assert moved == [4, 4, 2] * 2
