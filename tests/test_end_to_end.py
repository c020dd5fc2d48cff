"""TRAIN MODEL -> registry -> PREDICT, end to end on small tabular data."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pytest

import dbml
from dbml.features import FeatureSpec
from dbml.runtime import arrow_feeds

FAST = "epochs = 30, progress = false"


def _load_iris(con, X, y, names, table="iris"):
    cols = {n: X[:, i] for i, n in enumerate(names)}
    cols["species"] = np.array(["setosa", "versicolor", "virginica"])[y]
    con.duckdb.from_arrow(pa.table(cols)).create(table)


def test_multiclass_defaults_beat_chance_by_far(con, iris_rows):
    X, y, names = iris_rows
    _load_iris(con, X[:110], y[:110], names, "iris_train")
    _load_iris(con, X[110:], y[110:], names, "iris_test")
    row = con.sql("TRAIN MODEL iris FROM iris_train TARGET species WITH (progress = false)").fetchall()[0]
    assert row[0:5] == ("iris", 1, "trained", "classification", "mlp")
    accuracy = con.sql("SELECT avg((PREDICT(iris, *) = species)::DOUBLE) FROM iris_test").fetchall()[0][0]
    assert accuracy >= 0.9  # chance is 1/3
    # probabilities: one DOUBLE field per label, summing to one
    probs = con.sql(
        "SELECT PREDICT_PROBA(iris, *) AS p, PREDICT_PROBA(iris, *).setosa AS s FROM iris_test"
    ).fetchall()
    assert set(probs[0][0]) == {"setosa", "versicolor", "virginica"}
    assert all(abs(sum(p.values()) - 1) < 1e-5 and p["setosa"] == s for p, s in probs)


def test_regression_and_binary(con):
    from sklearn.datasets import load_breast_cancer, load_diabetes

    d = load_diabetes()
    con.duckdb.from_arrow(pa.table({**{f"f{i}": d.data[:, i] for i in range(10)}, "y": d.target})).create("diab")
    con.sql("TRAIN MODEL diab FROM (SELECT * FROM diab WHERE rowid % 5 <> 0) TARGET y WITH (progress = false)")
    r2 = con.sql(
        "SELECT 1 - sum((y - PREDICT(diab, *)) ^ 2) / sum((y - (SELECT avg(y) FROM diab)) ^ 2) "
        "FROM diab WHERE rowid % 5 = 0"
    ).fetchall()[0][0]
    assert r2 > 0.3
    assert con.sql("SELECT typeof(PREDICT(diab, *)) FROM diab LIMIT 1").fetchall()[0][0] == "DOUBLE"

    b = load_breast_cancer()
    con.duckdb.from_arrow(pa.table({**{f"f{i}": b.data[:, i] for i in range(30)}, "malignant": b.target == 0})).create("bc")
    con.sql(f"TRAIN MODEL bc FROM (SELECT * FROM bc WHERE rowid % 4 <> 0) TARGET malignant WITH ({FAST})")
    acc, typ = con.sql(
        "SELECT avg((PREDICT(bc, *) = malignant)::DOUBLE), any_value(typeof(PREDICT(bc, *))) FROM bc WHERE rowid % 4 = 0"
    ).fetchall()[0]
    assert acc > 0.9 and typ == "BOOLEAN"
    assert con.sql('SELECT PREDICT_PROBA(bc, *)."true" FROM bc LIMIT 1').fetchall()[0][0] is not None


def test_mixed_table_with_nulls_dates_and_unseen_categories(con, mixed):
    row = con.sql(
        f"TRAIN MODEL churn FROM (SELECT * EXCLUDE (id) FROM {mixed}) TARGET churned WITH ({FAST}, seed = 3)"
    ).fetchall()[0]
    assert row[3] == "classification" and row[5] == 300
    features = json.loads(con.sql("SELECT features FROM dbml.model_versions").fetchall()[0][0])
    kinds = {f["name"]: f["kind"] for f in features}
    assert kinds == {
        "age": "numeric", "spend": "numeric", "member": "boolean", "joined": "datetime",
        "seen_at": "datetime", "plan": "category", "mood": "category",
    }  # fmt: skip
    accuracy = con.sql(f"SELECT avg((PREDICT(churn, *) = churned)::DOUBLE) FROM {mixed}").fetchall()[0][0]
    assert accuracy > 0.8
    # unseen categories, all-NULL rows and strings in numeric columns still score
    rows = con.sql(
        """
        SELECT PREDICT(churn, *) AS p, typeof(PREDICT(churn, *)) AS t FROM (VALUES
            ('7', 1.5, true, DATE '2025-06-01', TIMESTAMP '2025-01-01 10:00', 'enterprise', 'zen'),
            (NULL, NULL, NULL, NULL, NULL, NULL, NULL)
        ) AS v(age, spend, member, joined, seen_at, plan, mood)
        """
    ).fetchall()
    assert [r[1] for r in rows] == ["VARCHAR", "VARCHAR"] and {r[0] for r in rows} <= {"yes", "no"}


def test_versions_if_not_exists_pinning_and_scopes(con, mixed):
    src = f"(SELECT age, plan, churned FROM {mixed})"
    assert con.sql(f"TRAIN MODEL m FROM {src} TARGET churned WITH (epochs = 2, progress = false)").fetchall()[0][1] == 1
    assert con.sql(f"TRAIN MODEL m FROM {src} TARGET churned WITH (epochs = 3, progress = false)").fetchall()[0][1] == 2
    skipped = con.sql(f"TRAIN MODEL IF NOT EXISTS m FROM {src} TARGET churned").fetchall()[0]
    assert skipped[1:3] == (2, "exists")
    assert con.sql("SELECT count(*) FROM dbml.model_versions").fetchall()[0][0] == 2
    # bare name = latest; 'm:1' pinned; both in one query, in CTE, join, WHERE and ORDER BY
    rows = con.sql(
        f"""
        WITH scored AS (SELECT id, PREDICT(m, *) AS p2, PREDICT('m:1', age, plan) AS p1 FROM {mixed})
        SELECT s.id, s.p1, s.p2 FROM scored s JOIN {mixed} x ON x.id = s.id
        WHERE PREDICT_PROBA(m, x.*).yes >= 0 ORDER BY PREDICT_PROBA('m:1', x.*).yes DESC, s.id
        """
    ).fetchall()
    assert len(rows) == 300
    assert {r[1] for r in rows} <= {"yes", "no"}
    assert con.sql("SELECT count(*) FROM dbml.training_log WHERE model = 'm' AND version = 2").fetchall()[0][0] == 3


def test_integer_target_keeps_its_type(con):
    con.sql("CREATE TABLE t AS SELECT i::DOUBLE AS x, (i % 3)::INTEGER AS k FROM range(300) r(i)")
    con.sql(f"TRAIN MODEL k FROM t TARGET k WITH ({FAST})")
    assert con.sql("SELECT typeof(PREDICT(k, *)) FROM t LIMIT 1").fetchall()[0][0] == "INTEGER"
    assert con.sql("SELECT task FROM dbml.model_versions").fetchall()[0][0] == "classification"
    con.sql(f"TRAIN MODEL kr FROM t TARGET k WITH ({FAST}, task = 'regression')")
    assert con.sql("SELECT typeof(PREDICT(kr, *)) FROM t LIMIT 1").fetchall()[0][0] == "DOUBLE"


def test_blob_scores_raw_rows_outside_duckdb(con, mixed):
    con.sql(f"TRAIN MODEL churn FROM (SELECT * EXCLUDE (id) FROM {mixed}) TARGET churned WITH ({FAST})")
    blob, meta_features = con.sql(
        "SELECT b.onnx, v.features FROM dbml.model_blobs b JOIN dbml.model_versions v USING (model, version)"
    ).fetchall()[0]
    proto = onnx.load_from_string(blob)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["dbml.task"] == "classification" and json.loads(meta["dbml.labels"]) == ["no", "yes"]
    assert meta["dbml.target"] == "churned" and meta["dbml.version"] == dbml.__version__
    assert json.loads(meta["dbml.features"]) == json.loads(meta_features)
    assert {o.domain for o in proto.opset_import} <= {"", "ai.onnx.ml"}
    assert [i.name for i in proto.graph.input] == [f["name"] for f in json.loads(meta_features)]
    assert [o.name for o in proto.graph.output] == ["label", "probabilities", "embedding"]

    # raw rows, encoded only as the ONNX contract says (floats; dates as days; strings)
    raw = con.sql(
        f"""SELECT age::FLOAT AS age, spend::FLOAT AS spend, member::FLOAT AS member,
                   (epoch(joined) / 86400)::FLOAT AS joined, (epoch(seen_at) / 86400)::FLOAT AS seen_at,
                   coalesce(plan, '') AS plan, mood::VARCHAR AS mood
            FROM {mixed} ORDER BY id"""
    ).to_arrow_table()
    features = [FeatureSpec(**f) for f in json.loads(meta["dbml.features"])]
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    labels, probs, embedding = session.run(None, arrow_feeds(features, [raw.column(f.name) for f in features]))
    in_sql = con.sql(f"SELECT PREDICT(churn, *), PREDICT_PROBA(churn, *).yes FROM {mixed} ORDER BY id").fetchall()
    assert list(labels) == [r[0] for r in in_sql]
    assert np.allclose(probs[:, 1], [r[1] for r in in_sql], atol=1e-6)


def test_same_seed_same_model(con, mixed):
    src = f"(SELECT * EXCLUDE (id) FROM {mixed})"
    for _ in range(2):
        con.sql(f"TRAIN MODEL s FROM {src} TARGET churned WITH (epochs = 5, progress = false, seed = 11)")
    con.sql(f"TRAIN MODEL s FROM {src} TARGET churned WITH (epochs = 5, progress = false, seed = 12)")
    shas = [r[0] for r in con.sql("SELECT onnx_sha256 FROM dbml.model_versions ORDER BY version").fetchall()]
    assert shas[0] == shas[1] != shas[2]
    fingerprints = {r[0] for r in con.sql("SELECT data_fingerprint FROM dbml.model_versions").fetchall()}
    assert len(fingerprints) == 1


def test_model_scores_in_another_process_after_reopening(tmp_path):
    path = str(tmp_path / "shop.duckdb")
    with dbml.connect(path) as con:
        con.sql("CREATE TABLE t AS SELECT i % 10 AS a, (i % 7)::VARCHAR AS b, i % 10 > 4 AS y FROM range(200) r(i)")
        con.sql(f"TRAIN MODEL persisted FROM t TARGET y WITH ({FAST})")
        expected = con.sql("SELECT list(PREDICT(persisted, *) ORDER BY rowid) FROM t").fetchall()[0][0]
    script = textwrap.dedent(
        f"""
        import dbml
        con = dbml.connect({path!r})
        print(con.sql("SELECT list(PREDICT(persisted, *) ORDER BY rowid) FROM t").fetchall()[0][0])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(expected)


def test_lineage_and_describe(con, mixed):
    con.sql(f"CREATE VIEW recent AS SELECT * EXCLUDE (id) FROM {mixed} WHERE id > 10")
    con.sql("TRAIN MODEL lin FROM recent TARGET churned WITH (epochs = 2, progress = false)")
    desc = con.sql("DESCRIBE MODEL lin")
    row = dict(zip(desc.columns, desc.fetchall()[0]))
    assert row["source_tables"] == ["mixed"]
    assert row["row_count"] == 289 and row["train_rows"] + row["validation_rows"] == 289
    assert row["onnx_size"] > 1000 and len(row["onnx_sha256"]) == 64 and row["parity_error"] < 1e-4
    assert json.loads(row["metrics"])["evaluated_on"] == "validation"
    assert {f["name"] for f in json.loads(row["features"])} >= {"age", "plan", "joined"}
    show = con.sql("SHOW MODELS")
    assert dict(zip(show.columns, show.fetchall()[0]))["latest_version"] == 1


def test_python_twins(con, mixed):
    rel = con.train("py", f"SELECT age, plan, churned FROM {mixed}", target="churned", epochs=2, progress=False)
    assert rel.fetchall()[0][:3] == ("py", 1, "trained")
    scored = con.predict("py", mixed, proba=True)
    assert {"prediction", "probabilities"} <= set(scored.columns) and len(scored.fetchall()) == 300
    assert len(con.show_models().fetchall()) == 1
    assert con.describe_model("py").fetchall()[0][0] == 1
    assert con.drop_model("py").fetchall() == [("py", 1, "dropped")]


def test_drop_keeps_the_audit_row(con, mixed):
    src = f"(SELECT age, churned FROM {mixed})"
    con.sql(f"TRAIN MODEL d FROM {src} TARGET churned WITH (epochs = 1, progress = false)")
    con.sql(f"TRAIN MODEL d FROM {src} TARGET churned WITH (epochs = 1, progress = false)")
    con.sql("SELECT PREDICT(d, *) FROM mixed").fetchall()
    assert con.sql("DROP MODEL d VERSION 1").fetchall() == [("d", 1, "dropped")]
    assert con.sql("SELECT list(version) FROM dbml.model_versions").fetchall()[0][0] == [2]
    con.sql("DROP MODEL d")
    con.sql("DROP MODEL IF EXISTS d")
    for table in ("model_versions", "model_blobs", "training_log"):
        assert con.sql(f"SELECT count(*) FROM dbml.{table}").fetchall()[0][0] == 0
    actions = con.sql("SELECT action, version, who FROM dbml.audit_log ORDER BY id").fetchall()
    assert actions == [("TRAIN", 1, "tester"), ("TRAIN", 2, "tester"), ("DROP", 1, "tester"), ("DROP", None, "tester")]
    # numbers are never reused: the next version is 3
    assert con.sql(f"TRAIN MODEL d FROM {src} TARGET churned WITH (epochs = 1, progress = false)").fetchall()[0][1] == 3


def test_sessions_are_built_once_per_blob(con, mixed, monkeypatch):
    from dbml import runtime

    runtime.clear_sessions()
    built = []
    real = runtime.new_session
    monkeypatch.setattr(runtime, "new_session", lambda blob, threads=1: built.append(1) or real(blob, threads))
    con.sql(f"TRAIN MODEL c FROM (SELECT age, plan, churned FROM {mixed}) TARGET churned WITH (epochs = 1, progress = false)")
    for _ in range(3):
        con.sql(f"SELECT PREDICT(c, *), PREDICT_PROBA(c, *) FROM {mixed}, range(20)").fetchall()  # 6,000 rows: several batches
    assert len(built) == 1


def test_infinite_values_are_named(con):
    from dbml.errors import FeatureError

    con.sql("CREATE TABLE inf AS SELECT CASE WHEN i = 3 THEN 'inf'::DOUBLE ELSE i END AS x, i % 2 = 0 AS y FROM range(40) r(i)")
    with pytest.raises(FeatureError, match="column 'x' of model 'inf' has the value inf"):
        con.sql("TRAIN MODEL inf FROM inf TARGET y")


def test_a_view_over_predict_scores_in_a_new_connection(tmp_path):
    path = str(tmp_path / "v.duckdb")
    with dbml.connect(path) as con:
        con.sql("CREATE TABLE t AS SELECT i % 10 AS a, i % 10 > 4 AS y FROM range(100) r(i)")
        con.sql(f"TRAIN MODEL vm FROM t TARGET y WITH ({FAST})")
        con.sql("CREATE VIEW scored AS SELECT a, PREDICT(vm, *) AS p, PREDICT_PROBA(vm, *).true AS pt FROM t")
        expected = con.sql("SELECT * FROM scored ORDER BY a, p").fetchall()
    with dbml.connect(path) as con:
        assert con.sql("SELECT * FROM scored ORDER BY a, p").fetchall() == expected
        con.sql("DROP MODEL vm")
    with dbml.connect(path) as con:
        with pytest.raises(dbml.DbmlError, match="calls dbml_predict__vm__v1__[0-9a-f]{8}, but model 'vm' does not exist"):
            con.sql("SELECT * FROM scored")


def test_fingerprint_follows_the_data_not_its_order(con):
    con.sql("CREATE TABLE fp AS SELECT i AS x, i % 2 = 0 AS y FROM range(60) r(i)")
    train = "TRAIN MODEL fp FROM ({}) TARGET y WITH (epochs = 1, progress = false)"
    con.sql(train.format("SELECT * FROM fp"))
    con.sql(train.format("SELECT * FROM fp ORDER BY x DESC"))  # same rows, another order
    con.sql("UPDATE fp SET x = x + 1 WHERE x = 7")
    con.sql(train.format("SELECT * FROM fp"))  # one value changed
    prints = [r[0] for r in con.sql("SELECT data_fingerprint FROM dbml.model_versions ORDER BY version").fetchall()]
    assert prints[0] == prints[1] != prints[2]
