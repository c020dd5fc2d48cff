"""IMPORT MODEL of foreign ONNX files (architecture 'imported'): a scikit-learn pipeline
converted with skl2onnx, a torch model exported by the user, and hand-built graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import registry_counts

from dbml.errors import FeatureError, TargetError, TrainingError, TransferError

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture
def iris_table(con, iris_rows):
    x, y, _ = iris_rows
    con.duckdb.execute("CREATE TABLE iris (id INTEGER, sepal_length FLOAT, sepal_width FLOAT, petal_length FLOAT, petal_width FLOAT, species INTEGER)")
    con.duckdb.executemany("INSERT INTO iris VALUES (?, ?, ?, ?, ?, ?)", [[i, *map(float, row), int(t)] for i, (row, t) in enumerate(zip(x, y))])
    return x.astype(np.float32), y


def _sklearn_pipeline(x, y, path, zipmap):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    clf = LogisticRegression(max_iter=500)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)]).fit(x, y)
    options = None if zipmap else {id(clf): {"zipmap": False}}
    onx = to_onnx(pipe, x[:1], options=options, target_opset=17)
    path.write_bytes(onx.SerializeToString())
    return pipe


def test_sklearn_pipeline_predicts_like_sklearn(con, iris_table, tmp_path):
    x, y = iris_table
    pipe = _sklearn_pipeline(x, y, tmp_path / "pipe.onnx", zipmap=False)
    names = ", ".join(f"'{c}'" for c in COLUMNS)
    row = con.sql(f"IMPORT MODEL iris FROM '{tmp_path}/pipe.onnx' WITH (inputs = [{names}])").fetchall()
    assert row == [("iris", 1, f"{tmp_path}/pipe.onnx", None)]
    got = con.sql("SELECT PREDICT(iris, *) AS p, PREDICT_PROBA(iris, *) AS q FROM iris ORDER BY id")
    assert [str(t) for t in got.types] == ["BIGINT", 'STRUCT("0" DOUBLE, "1" DOUBLE, "2" DOUBLE)']
    rows = got.fetchall()
    assert [r[0] for r in rows] == pipe.predict(x).tolist()
    proba = np.array([[r[1][k] for k in ("0", "1", "2")] for r in rows])
    np.testing.assert_allclose(proba, pipe.predict_proba(x), atol=1e-5)
    assert con.sql("SELECT PREDICT_PROBA(iris, *).\"2\" FROM iris ORDER BY id LIMIT 1").fetchall()[0][0] == pytest.approx(proba[0, 2])
    rec = con.sql(
        "SELECT architecture, task, source_sql, row_count, features, options FROM dbml.model_versions WHERE model = 'iris'"
    ).fetchall()[0]
    assert rec[:4] == ("imported", "imported", f"IMPORT FROM '{tmp_path}/pipe.onnx'", 0)
    assert [f["name"] for f in json.loads(rec[4])] == COLUMNS
    assert {f["sql_type"] for f in json.loads(rec[4])} == {"DOUBLE"}
    graph = json.loads(rec[5])["graph_inputs"]
    assert [(g["name"], g["dtype"], g["columns"]) for g in graph] == [("X", "float32", COLUMNS)]
    assert con.sql("SELECT action FROM dbml.audit_log").fetchall() == [("IMPORT",)]

    # the ZipMap form imports too; PREDICT gives the label, PREDICT_PROBA is refused
    _sklearn_pipeline(x, y, tmp_path / "zip.onnx", zipmap=True)
    con.import_model("iris_zip", f"{tmp_path}/zip.onnx", inputs=COLUMNS)
    labels = [r[0] for r in con.sql("SELECT PREDICT(iris_zip, *) FROM iris ORDER BY id").fetchall()]
    assert labels == pipe.predict(x).tolist()
    with pytest.raises(FeatureError, match="PREDICT_PROBA needs a classification model"):
        con.sql("SELECT PREDICT_PROBA(iris_zip, *) FROM iris")

    # EXPORT then IMPORT keeps the column names given at the first import
    con.sql(f"EXPORT MODEL iris TO '{tmp_path}/again.onnx'")
    assert con.sql(f"IMPORT MODEL iris_copy FROM '{tmp_path}/again.onnx'").fetchall()[0][3] == "iris:1"
    same = "SELECT count(*) FROM iris WHERE PREDICT(iris, *) = PREDICT(iris_copy, *)"
    assert con.sql(same).fetchall() == [(150,)]

    # no target: EVALUATE and EXPLAIN say so; MONITOR runs without a profile
    with pytest.raises(TargetError, match="imported from a foreign ONNX file"):
        con.sql("EVALUATE MODEL iris ON iris")
    with pytest.raises(TargetError, match="imported from a foreign ONNX file"):
        con.sql("EXPLAIN MODEL iris ON iris")
    drift = con.sql("MONITOR MODEL iris ON iris").fetchall()
    assert len(drift) == 5 and all(r[3] is None for r in drift)  # psi NULL: nothing to compare with
    with pytest.raises(TrainingError, match="no dbml weights"):
        con.sql("TRAIN MODEL iris FROM iris TARGET species WITH (warm_start = true, epochs = 1, progress = false)")


def _torch_model(path):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def forward(self, a, b):
            return torch.tanh(self.lin(torch.cat([a, b], dim=1))) * 3.0

    torch.manual_seed(0)
    net = Net().eval()
    a, b = torch.randn(5, 1), torch.randn(5, 1)
    torch.onnx.export(
        net, (a, b), str(path), input_names=["a", "b"], output_names=["y"], dynamo=False,
        dynamic_axes={"a": {0: "N"}, "b": {0: "N"}, "y": {0: "N"}},
    )  # fmt: skip
    return net


def test_torch_export_scores_by_column_name(con, tmp_path):
    import torch

    net = _torch_model(tmp_path / "net.onnx")
    con.sql(f"IMPORT MODEL net FROM '{tmp_path}/net.onnx'")
    con.sql("CREATE TABLE t AS SELECT i AS id, 'x' || i AS note, (i % 7) / 3.0 AS b, (i % 5)::INTEGER - 2 AS a FROM range(50) r(i)")
    got = con.sql("SELECT PREDICT(net, *) FROM t ORDER BY id")
    assert [str(t) for t in got.types] == ["DOUBLE"]
    a, b = con.duckdb.sql("SELECT a::DOUBLE, b::DOUBLE FROM t ORDER BY id").fetchnumpy().values()
    with torch.no_grad():
        want = net(torch.tensor(a, dtype=torch.float32)[:, None], torch.tensor(b, dtype=torch.float32)[:, None])
    np.testing.assert_allclose([r[0] for r in got.fetchall()], want.numpy().reshape(-1), atol=1e-5)
    explicit = con.sql("SELECT PREDICT(net, b, a) FROM t ORDER BY id").fetchall()  # matched by name
    assert explicit == con.sql("SELECT PREDICT(net, *) FROM t ORDER BY id").fetchall()
    with pytest.raises(FeatureError, match="needs feature column 'b'"):
        con.sql("SELECT PREDICT(net, *) FROM (SELECT id, a FROM t)")
    with pytest.raises(FeatureError, match="PREDICT_PROBA needs a classification model"):
        con.sql("SELECT PREDICT_PROBA(net, *) FROM t")
    # EXPORT then IMPORT keeps it working
    con.sql(f"EXPORT MODEL net TO '{tmp_path}/again.onnx'")
    con.sql(f"IMPORT MODEL net2 FROM '{tmp_path}/again.onnx'")
    assert con.sql("SELECT PREDICT(net2, *) FROM t ORDER BY id").fetchall() == con.sql("SELECT PREDICT(net, *) FROM t ORDER BY id").fetchall()


def _graph(path, inputs, outputs, nodes):
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_bad_inputs_name_the_input(con, tmp_path):
    from onnx import TensorProto, helper

    wide = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])]
    _graph(tmp_path / "w.onnx", wide, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
           [helper.make_node("ReduceSum", ["X"], ["y"], keepdims=1)])  # fmt: skip
    before = registry_counts(con)
    with pytest.raises(TransferError, match=r"input 'X' .* \[N, 3\]: it takes 3 columns.*inputs ="):
        con.sql(f"IMPORT MODEL w FROM '{tmp_path}/w.onnx'")
    with pytest.raises(TransferError, match=r"names 2 column\(s\).*input 'X' \[N, 3\] takes 3"):
        con.sql(f"IMPORT MODEL w FROM '{tmp_path}/w.onnx' WITH (inputs = ['p', 'q'])")
    with pytest.raises(TransferError, match="names column 'P' twice"):
        con.sql(f"IMPORT MODEL w FROM '{tmp_path}/w.onnx' WITH (inputs = ['p', 'q', 'P'])")
    cube = [helper.make_tensor_value_info("img", TensorProto.FLOAT, [None, 2, 2])]
    _graph(tmp_path / "c.onnx", cube, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2, 2])],
           [helper.make_node("Identity", ["img"], ["y"])])  # fmt: skip
    with pytest.raises(TransferError, match="input 'img' .* shape"):
        con.sql(f"IMPORT MODEL c FROM '{tmp_path}/c.onnx'")
    fixed = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])]
    _graph(tmp_path / "f.onnx", fixed, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
           [helper.make_node("Identity", ["x"], ["y"])])  # fmt: skip
    with pytest.raises(TransferError, match="input 'x' .* fixed batch size of 1"):
        con.sql(f"IMPORT MODEL f FROM '{tmp_path}/f.onnx'")
    assert registry_counts(con) == before
    # the right list works, stacking the columns in its order
    con.sql(f"IMPORT MODEL w FROM '{tmp_path}/w.onnx' WITH (inputs = ['p', 'q', 'r'])")
    assert con.sql("SELECT PREDICT(w, *) FROM (SELECT 1 AS r, 10 AS q, 100.5 AS p)").fetchall() == [(111.5,)]


def test_inputs_named_alike_but_for_case_ask_for_names(con, tmp_path):
    """Graph inputs 'A' and 'a' cannot both be columns; with no inputs option, the message
    says so (it used to blame an option that was never given)."""
    from onnx import TensorProto, helper

    two = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in ("A", "a")]
    _graph(tmp_path / "aa.onnx", two, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
           [helper.make_node("Add", ["A", "a"], ["y"])])  # fmt: skip
    before = registry_counts(con)
    with pytest.raises(TransferError, match=r"has inputs 'A' and 'a', whose names differ only in case.*WITH \(inputs = "):
        con.sql(f"IMPORT MODEL aa FROM '{tmp_path}/aa.onnx'")
    assert registry_counts(con) == before
    con.sql(f"IMPORT MODEL aa FROM '{tmp_path}/aa.onnx' WITH (inputs = ['big', 'small'])")
    assert con.sql("SELECT PREDICT(aa, *) FROM (SELECT 1 AS big, 2 AS small)").fetchall() == [(3.0,)]


def test_types_and_describe_shows_outputs(con, tmp_path):
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("big", TensorProto.INT64, [None]),
        helper.make_tensor_value_info("flag", TensorProto.BOOL, [None, 1]),
        helper.make_tensor_value_info("word", TensorProto.STRING, [None, 1]),
        helper.make_tensor_value_info("d", TensorProto.DOUBLE, ["batch", 1]),
    ]
    outputs = [
        helper.make_tensor_value_info("same", TensorProto.INT64, [None]),
        helper.make_tensor_value_info("w", TensorProto.STRING, [None, 1]),
        helper.make_tensor_value_info("f", TensorProto.BOOL, [None, 1]),
        helper.make_tensor_value_info("dd", TensorProto.DOUBLE, ["batch", 1]),
    ]
    nodes = [
        helper.make_node("Identity", ["big"], ["same"]),
        helper.make_node("Identity", ["word"], ["w"]),
        helper.make_node("Identity", ["flag"], ["f"]),
        helper.make_node("Identity", ["d"], ["dd"]),
    ]
    _graph(tmp_path / "t.onnx", inputs, outputs, nodes)
    con.sql(f"IMPORT MODEL ids FROM '{tmp_path}/t.onnx'")
    src = "SELECT 9007199254740993 AS big, true AS flag, NULL AS word, 0.1::DOUBLE AS d"
    # a BIGINT above 2^53 goes through DOUBLE: the nearest double, not a FLOAT's rounding
    assert con.sql(f"SELECT PREDICT(ids, *) FROM ({src})").fetchall() == [(9007199254740992,)]
    assert [str(t) for t in con.sql(f"SELECT PREDICT(ids, *) FROM ({src})").types] == ["BIGINT"]
    with pytest.raises(Exception, match="column 'big' has NULLs"):
        con.sql("SELECT PREDICT(ids, *) FROM (SELECT NULL::BIGINT AS big, true AS flag, 'a' AS word, 1.0 AS d)").fetchall()
    described = con.sql("DESCRIBE MODEL ids")
    row = dict(zip(described.columns, described.fetchall()[0]))
    assert row["architecture"] == "imported" and row["task"] == "imported" and row["target_type"] == "BIGINT"
    outs = json.loads(row["metrics"])["outputs"]
    assert [(o["name"], o["type"], o["shape"]) for o in outs] == [
        ("same", "tensor(int64)", [None]), ("w", "tensor(string)", [None, 1]),
        ("f", "tensor(bool)", [None, 1]), ("dd", "tensor(double)", ["batch", 1]),
    ]  # fmt: skip
    kinds = {f["name"]: f["kind"] for f in json.loads(row["features"])}
    assert kinds == {"big": "numeric", "flag": "numeric", "word": "category", "d": "numeric"}
    # MONITOR over a BIGINT prediction and an empty profile
    assert len(con.sql(f"MONITOR MODEL ids ON ({src})").fetchall()) == 5
