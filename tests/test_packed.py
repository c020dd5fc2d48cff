"""The packed scoring graph: PREDICT runs a graph derived in memory from the stored one,
its Concat of scalar columns replaced by one [N, F] input, and must give the stored
graph's numbers bit for bit."""

from __future__ import annotations

import numpy as np
import onnx
import pyarrow as pa
import pytest
import torch
from onnx import TensorProto, helper

from dbml import runtime
from dbml.features import FeatureSpec
from dbml.runtime import arrow_feeds, new_session, packed_graph, scoring_session_for


def _stored(con, model: str) -> tuple[bytes, dict]:
    rec = con.registry.get(model, None)
    return con.registry.blob(model, rec["version"]), rec


def test_the_packed_graph_scores_the_stored_graphs_numbers_bit_for_bit(con, mixed):
    con.sql(f"TRAIN MODEL p FROM (SELECT * EXCLUDE (id) FROM {mixed}) TARGET churned WITH (epochs = 2, progress = false)")
    blob, rec = _stored(con, "p")
    features = [FeatureSpec(**f) for f in rec["features"]]
    scalars = [f.name for f in features if f.kind in ("numeric", "boolean", "datetime")]
    proto = onnx.load_from_string(blob)
    packed = packed_graph(proto, features)
    # one input for every scalar column, in feature order; text columns keep their own
    assert list(packed.values()) == [[i for i, f in enumerate(features) if f.name in scalars]]
    names = [i.name for i in proto.graph.input]
    assert not set(scalars) & set(names)
    assert {"plan", "mood"} <= set(names)
    wide = next(i for i in proto.graph.input if i.name in packed)
    assert wide.type.tensor_type.shape.dim[0].dim_value == len(scalars)  # [k, N], a row per column
    assert [n.op_type for n in proto.graph.node if wide.name in n.input] == ["Transpose"]
    onnx.checker.check_model(proto)

    scoring = scoring_session_for(rec["onnx_sha256"], rec["onnx_size"], lambda: blob, "model 'p'", features)
    assert scoring.packed == packed
    stored = new_session(blob)
    rng = np.random.default_rng(0)
    n = 777
    values = rng.normal(size=(n, len(scalars))).astype(np.float32) * 50
    values[rng.random(values.shape) < 0.2] = np.nan  # NULLs reach the graph as NaN
    columns = []
    for f in features:
        if f.name in scalars:
            col = values[:, scalars.index(f.name)]
            columns.append(pa.array(col, mask=np.isnan(col) & (rng.random(n) < 0.5), type=pa.float32()))
        else:
            columns.append(pa.array(rng.choice(["basic", "plus", "pro", "calm", "wild", "never seen", ""], n)))
    outputs = [o.name for o in stored.get_outputs()]
    expected = stored.run(outputs, arrow_feeds(features, columns))
    got = scoring.session.run(outputs, scoring.feeds(columns))
    for name, a, b in zip(outputs, expected, got):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert (a == b).all() if a.dtype == object else np.array_equal(a, b, equal_nan=True), name


@pytest.mark.parametrize("rows", [1, 300, 2049, 6000])
def test_predict_gives_what_the_stored_graph_gives(con, mixed, rows):
    from sqlglot import exp

    from dbml.features import feature_sql

    con.sql(f"TRAIN MODEL q FROM (SELECT * EXCLUDE (id) FROM {mixed}) TARGET churned WITH (epochs = 2, progress = false)")
    blob, rec = _stored(con, "q")
    features = [FeatureSpec(**f) for f in rec["features"]]
    source = f"(SELECT m.*, k FROM {mixed} m, range(20) r(k) ORDER BY id, k LIMIT {rows})"
    encoded = ", ".join(feature_sql(f, exp.column(f.name, quoted=True)).sql(dialect="duckdb") for f in features)
    table = con.duckdb.sql(f"SELECT {encoded} FROM {source} ORDER BY id, k").to_arrow_table()
    probabilities = new_session(blob).run(["probabilities"], arrow_feeds(features, table.columns))[0]
    got = con.sql(f"SELECT PREDICT_PROBA(q, *) AS p FROM {source} ORDER BY id, k").fetchall()
    assert len(got) == rows
    labels = [str(k) for k in rec["labels"]]
    assert np.array_equal(np.array([[row[0][k] for k in labels] for row in got]), probabilities.astype(np.float64))


def test_a_column_read_twice_or_a_foreign_graph_is_scored_as_stored():
    features = [FeatureSpec("a", "numeric", "DOUBLE"), FeatureSpec("b", "numeric", "DOUBLE")]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 1]) for n in ("a", "b")]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    nodes = [helper.make_node("Concat", ["a", "b"], ["ab"], axis=1), helper.make_node("ReduceSum", ["ab"], ["s"], keepdims=1),
             helper.make_node("Add", ["s", "a"], ["y"])]  # 'a' is read twice: packing it would lose it
    proto = helper.make_model(helper.make_graph(nodes, "g", inputs, [out]), opset_imports=[helper.make_opsetid("", 13)])
    before = proto.SerializeToString()
    assert packed_graph(proto, features) == {}
    assert proto.SerializeToString() == before
    # a graph whose inputs are not dbml's feature columns at all
    assert packed_graph(proto, [FeatureSpec("x", "numeric", "DOUBLE")]) == {}


def test_one_packed_session_per_blob(con, mixed, monkeypatch):
    runtime.clear_sessions()
    built = []
    real = runtime.new_session
    monkeypatch.setattr(runtime, "new_session", lambda blob, threads=1, proto=None: built.append(1) or real(blob, threads, proto))
    con.sql(f"TRAIN MODEL r FROM (SELECT age, spend, member, plan, churned FROM {mixed}) TARGET churned WITH (epochs = 1, progress = false)")
    built.clear()
    for _ in range(3):
        con.sql(f"SELECT PREDICT(r, *), PREDICT_PROBA(r, *), EMBED(r, *) FROM {mixed}, range(20)").fetchall()
    assert len(built) == 1  # the packed graph's; the stored graph needs no session of its own to score


def test_the_number_encoder_standardises_as_before():
    from dbml.kinds.encoders import NumberEncoder

    features = [FeatureSpec(n, "numeric", "DOUBLE") for n in "abc"]
    profile = {"a": {"mean": 3.25, "std": 0.7, "nulls": 1}, "b": {"mean": -1e4, "std": 123.0, "nulls": 0},
               "c": {"mean": 0.1, "std": 0.0, "nulls": 2}}  # fmt: skip
    enc = NumberEncoder(features, profile)
    x = torch.tensor(np.random.default_rng(1).normal(size=(500, 3)) * 1e3, dtype=torch.float32)
    x[::3, 0] = float("nan")
    x[::5, 2] = float("nan")
    before = (torch.where(torch.isnan(x), enc.mean, x) - enc.mean) / enc.std  # the earlier formula
    assert torch.equal(enc.target(x), before)
    assert torch.equal(torch.signbit(enc.target(x)), torch.signbit(before))  # +0.0 where missing, as before
    out = enc(x)
    assert torch.equal(out[:, :3], before)
    assert torch.equal(out[:, 3:], torch.isnan(x)[:, [0, 2]].float())


def _concat_graph(nodes, names, extra_inputs=()):
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 1]) for n in names] + list(extra_inputs)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", None])
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, [out]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_several_unnamed_concats_pack_into_their_own_inputs():
    names = ["a", "b", "c", "d", "e"]
    features = [FeatureSpec(n, "numeric", "DOUBLE") for n in names]
    nodes = [helper.make_node("Concat", ["d", "b"], ["db"], axis=1), helper.make_node("Concat", ["a", "e", "c"], ["aec"], axis=-1),
             helper.make_node("Concat", ["db", "aec"], ["y"], axis=1)]  # fmt: skip
    proto = _concat_graph(nodes, names)
    stored = new_session(proto.SerializeToString())
    packed = packed_graph(proto, features)
    assert sorted(packed.values()) == [[0, 4, 2], [3, 1]]
    assert len({n.name for n in proto.graph.node}) == len(proto.graph.node)  # every node named once
    onnx.checker.check_model(proto)
    scoring = runtime.ScoringSession(new_session(proto.SerializeToString()), features, packed)
    rng = np.random.default_rng(3)
    columns = [pa.array(rng.normal(size=50).astype(np.float32)) for _ in names]
    assert np.array_equal(stored.run(["y"], arrow_feeds(features, columns))[0], scoring.session.run(["y"], scoring.feeds(columns))[0])


def test_a_graph_with_a_subgraph_is_scored_as_stored():
    features = [FeatureSpec(n, "numeric", "DOUBLE") for n in ("a", "b")]
    branch = helper.make_graph([helper.make_node("Identity", ["b"], ["r"])], "then", [],
                               [helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 1])])  # reads outer 'b'
    nodes = [helper.make_node("Concat", ["a", "b"], ["ab"], axis=1), helper.make_node("ReduceSum", ["ab"], ["s"], keepdims=0),
             helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
             helper.make_node("If", ["t"], ["y"], then_branch=branch, else_branch=branch)]  # fmt: skip
    proto = _concat_graph(nodes, ["a", "b"])
    before = proto.SerializeToString()
    assert packed_graph(proto, features) == {}
    assert proto.SerializeToString() == before


def test_a_packed_graph_that_fails_to_load_falls_back_to_the_stored_one(monkeypatch):
    names = ["a", "b"]
    features = [FeatureSpec(n, "numeric", "DOUBLE") for n in names]
    proto = _concat_graph([helper.make_node("Concat", names, ["y"], axis=1)], names)
    blob = proto.SerializeToString()
    real = runtime._load

    def refuse_packed(data, what, proto=None):
        if proto is not None:
            raise runtime.CorruptBlobError("cannot load the packed graph")
        return real(data, what)

    monkeypatch.setattr(runtime, "_load", refuse_packed)
    import hashlib

    scoring = scoring_session_for(hashlib.sha256(blob).hexdigest(), len(blob), lambda: blob, "model 'f'", features)
    assert scoring.packed == {}
    columns = [pa.array(np.arange(4, dtype=np.float32)), pa.array(np.ones(4, dtype=np.float32))]
    assert scoring.session.run(["y"], scoring.feeds(columns))[0].tolist() == [[0, 1], [1, 1], [2, 1], [3, 1]]


def test_threads_meeting_a_new_version_build_one_session(monkeypatch):
    import hashlib
    import threading

    names = ["a", "b", "c"]
    features = [FeatureSpec(n, "numeric", "DOUBLE") for n in names]
    blob = _concat_graph([helper.make_node("Concat", names, ["y"], axis=1)], names).SerializeToString()
    built = []
    real = runtime.new_session
    monkeypatch.setattr(runtime, "new_session", lambda data, threads=1, proto=None: built.append(1) or real(data, threads, proto))
    runtime.clear_sessions()
    got = []
    start = threading.Barrier(6)

    def score():
        start.wait()
        got.append(scoring_session_for(hashlib.sha256(blob).hexdigest(), len(blob), lambda: blob, "model 't'", features))

    workers = [threading.Thread(target=score) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(built) == 1 and len({id(s) for s in got}) == 1
