"""Every EVALUATE MODEL run is stored in dbml.evaluation_runs with its time, user, source,
options, result rows and the data of its pictures (dbml.curves), checked here against
scikit-learn and against the rows themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

import dbml
from dbml.errors import DbmlError

FAST = "epochs = 5, progress = false, seed = 3"
ROWS = """
    CREATE TABLE t AS
    SELECT i, (i * 7919 % 100) / 100.0 AS x, ((i * 104729) % 97) / 97.0 AS z,
           ['a', 'b', 'c'][1 + (i * 31 % 3)] AS plan,
           CASE WHEN (i * 7919 % 100) / 100.0 + ((i * 104729) % 97) / 97.0 * 0.3 > 0.6 THEN 'yes' ELSE 'no' END AS y,
           CASE WHEN (i * 7919 % 100) < 33 THEN 'low' WHEN (i * 7919 % 100) < 66 THEN 'mid' ELSE 'high' END AS band,
           (i * 7919 % 100) / 100.0 * 3 + ((i * 104729) % 97) / 97.0 AS r
    FROM range(600) AS s(i)
"""


@pytest.fixture(scope="module")
def con():
    c = dbml.connect(user="evaluator")
    c.sql(ROWS)
    c.sql(f"TRAIN MODEL c FROM (SELECT x, z, plan, y FROM t) TARGET y WITH ({FAST})")
    c.sql(f"TRAIN MODEL k FROM (SELECT x, z, band FROM t) TARGET band WITH ({FAST})")
    c.sql(f"TRAIN MODEL g FROM (SELECT x, z, r FROM t) TARGET r WITH ({FAST})")
    yield c
    c.close()


def _last(con, model: str) -> dict:
    row = con.sql(
        "SELECT run_id, version, who, source_sql, task, options, rows, metrics, curves FROM dbml.evaluation_runs "
        "WHERE model = ? ORDER BY run_id DESC LIMIT 1", params=[model]
    ).fetchall()[0]  # fmt: skip
    keys = ["run_id", "version", "who", "source_sql", "task", "options", "rows", "metrics", "curves"]
    out = dict(zip(keys, row))
    for k in ("options", "metrics", "curves"):
        out[k] = None if out[k] is None else json.loads(out[k])
    return out


def _runs(con) -> int:
    return con.sql("SELECT count(*) FROM dbml.evaluation_runs").fetchall()[0][0]


def test_a_binary_run_is_stored_with_its_metrics_and_curves(con):
    result = con.sql("EVALUATE MODEL c ON (SELECT * FROM t WHERE i < 400)").df()
    run = _last(con, "c")
    assert (run["version"], run["who"], run["task"], run["rows"]) == (1, "evaluator", "classification", 400)
    assert run["source_sql"] == "SELECT * FROM t WHERE i < 400"
    assert run["metrics"] == [pytest.approx(r) for r in result.to_dict(orient="records")]  # the rows EVALUATE returned
    y, p, proba = zip(*con.sql("SELECT y, PREDICT(c, *), PREDICT_PROBA(c, *).yes FROM t WHERE i < 400").fetchall())
    curves = run["curves"]
    assert curves["labels"] == ["no", "yes"] and curves["positive"] == "yes"
    assert curves["confusion"]["matrix"] == confusion_matrix(y, p, labels=["no", "yes"]).tolist()
    roc = curves["roc"]["yes"]
    assert roc["fpr"][0] == 0 and roc["tpr"][0] == 0 and roc["fpr"][-1] == 1 and roc["tpr"][-1] == 1
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    assert abs(roc["auc"] - roc_auc_score(np.asarray(y) == "yes", proba)) < 0.01  # binned at 1/200
    assert abs(roc["auc"] - result["roc_auc"][0]) < 0.01
    cal = curves["calibration"]["yes"]
    assert sum(cal["count"]) == 400 and all(0 <= v <= 1 for v in cal["fraction_positive"])
    assert len(cal["mean_predicted"]) <= 10
    pr = curves["pr"]["yes"]
    assert 0 < pr["average_precision"] <= 1 and len(pr["recall"]) == len(pr["precision"])


def test_a_multiclass_run_has_one_vs_rest_curves_per_label(con):
    con.sql("EVALUATE MODEL k ON (SELECT * FROM t)")
    curves = _last(con, "k")["curves"]
    assert curves["positive"] is None and sorted(curves["roc"]) == sorted(curves["labels"]) == ["high", "low", "mid"]
    y, p = zip(*con.sql("SELECT band, PREDICT(k, *) FROM t").fetchall())
    assert curves["confusion"]["matrix"] == confusion_matrix(y, p, labels=curves["labels"]).tolist()


def test_actual_values_the_model_never_saw_get_an_other_row(con):
    con.sql("EVALUATE MODEL c ON (SELECT * REPLACE (CASE WHEN i % 10 = 0 THEN 'maybe' ELSE y END AS y) FROM t)")
    confusion = _last(con, "c")["curves"]["confusion"]
    assert confusion["labels"] == ["no", "yes", "(other)"]
    assert sum(confusion["matrix"][2]) == 60 and sum(map(sum, confusion["matrix"])) == 600


def test_a_regression_run_keeps_a_sample_of_actual_and_predicted(con):
    con.sql("EVALUATE MODEL g ON (SELECT * FROM t)")
    run = _last(con, "g")
    sample = run["curves"]["sample"]
    assert run["curves"]["sample_of"] == 600 and len(sample["actual"]) == len(sample["predicted"]) == 600
    pairs = {(round(a, 9), round(p, 9)) for a, p in con.sql("SELECT r, PREDICT(g, *) FROM t").fetchall()}
    assert {(round(a, 9), round(p, 9)) for a, p in zip(sample["actual"], sample["predicted"])} == pairs
    assert set(run["metrics"][0]) == {"rows", "mae", "rmse", "r2", "mape"}


def test_by_and_confusion_store_their_rows_without_curves(con):
    rows = con.sql("EVALUATE MODEL c ON (SELECT * FROM t) WITH (by = plan)").fetchall()
    run = _last(con, "c")
    assert run["curves"] is None and run["options"]["by"] == "plan" and len(run["metrics"]) == len(rows) == 3
    assert run["rows"] == 600
    con.sql("EVALUATE MODEL c ON (SELECT * FROM t) WITH (confusion = true)")
    run = _last(con, "c")
    assert run["curves"] is None and run["options"]["confusion"] is True and {"actual", "predicted"} <= set(run["metrics"][0])


def test_curves_false_skips_them(con):
    con.sql("EVALUATE MODEL g ON (SELECT * FROM t) WITH (curves = false)")
    assert _last(con, "g")["curves"] is None


def test_a_failed_evaluate_stores_nothing(con):
    before = _runs(con), con.sql("SELECT count(*) FROM dbml.audit_log").fetchall()[0][0]
    with pytest.raises(DbmlError, match="curvez"):
        con.sql("EVALUATE MODEL c ON (SELECT * FROM t) WITH (curvez = true)")
    with pytest.raises(Exception, match="y"):  # the target is missing from the query
        con.sql("EVALUATE MODEL c ON (SELECT x, z, plan FROM t)")
    assert (_runs(con), con.sql("SELECT count(*) FROM dbml.audit_log").fetchall()[0][0]) == before


def test_each_run_has_an_audit_row_naming_it(con):
    con.sql("EVALUATE MODEL c ON (SELECT * FROM t)")
    run = _last(con, "c")
    detail = con.sql("SELECT detail FROM dbml.audit_log WHERE action = 'EVALUATE' ORDER BY id DESC LIMIT 1").fetchall()[0][0]
    assert json.loads(detail)["run_id"] == run["run_id"]


def test_forecast_and_anomaly_runs_store_their_pictures_data():
    c = dbml.connect()
    c.sql("""
        CREATE TABLE sales AS
        SELECT 'store ' || ['A', 'B'][s + 1] AS store, DATE '2024-01-01' + d::INTEGER AS day,
               20 + 10 * s + (3 + 2 * s) * sin(2 * pi() * d / 7) + ((d * 37 + s * 11) % 13) / 4.0 AS units
        FROM range(2) AS a(s), range(60) AS b(d)
    """)
    c.sql("TRAIN MODEL fc USING lstm FROM sales TARGET units WITH (time = 'day', series = 'store', window = 8, "
          "horizon = 3, epochs = 2, hidden = 8, progress = false, seed = 1)")  # fmt: skip
    c.sql("EVALUATE MODEL fc ON (SELECT * FROM sales)")
    series = _last(c, "fc")["curves"]["series"]
    assert [s["key"] for s in series] == [["store A"], ["store B"]]
    for s in series:
        actual = c.sql("SELECT list(units ORDER BY day) FROM (SELECT * FROM sales WHERE store = ? ORDER BY day DESC LIMIT 11)",
                       params=[s["key"][0]]).fetchall()[0][0]  # fmt: skip
        assert s["history"]["actual"] + s["actual"] == pytest.approx(actual)
        assert s["time"][-1] == "2024-02-29" and len(s["time"]) == 3 and len(s["history"]["time"]) == 8
        assert all(lo <= f <= hi for lo, f, hi in zip(s["lower"], s["predicted"], s["upper"]))
        window = c.sql("SELECT PREDICT(fc, CAST(? AS DOUBLE[]))", params=[s["history"]["actual"]]).fetchall()[0][0]
        assert s["predicted"] == pytest.approx(window, abs=1e-5)
    c.sql("""
        CREATE TABLE normal AS SELECT (i % 20)::DOUBLE AS a, 2.0 * (i % 20) AS b FROM range(300) AS r(i);
        CREATE TABLE payments AS SELECT a, b, 0 AS fraud FROM normal
            UNION ALL SELECT (i % 20)::DOUBLE, 40.0 - 2.0 * (i % 20), 1 FROM range(20) AS r(i)
    """)
    c.sql("TRAIN MODEL odd USING autoencoder FROM normal WITH (epochs = 40, lr = 0.01, progress = false, seed = 1)")
    c.sql("EVALUATE MODEL odd ON (SELECT * FROM payments) WITH (label = fraud)")
    run = _last(c, "odd")
    curves = run["curves"]
    assert sum(curves["scores"]["counts"]) == 320 and len(curves["scores"]["edges"]) == 41
    assert curves["threshold"] == pytest.approx(c.registry.get("odd")["metrics"]["threshold"])
    assert abs(curves["roc"]["anomaly"]["auc"] - run["metrics"][0]["roc_auc"]) < 0.01
    c.close()


def test_options_are_stored_as_written_and_unmeasured_rows_are_null(con):
    con.sql("EVALUATE MODEL c ON (SELECT * FROM t)")
    assert _last(con, "c")["options"] == {}
    con.sql("EVALUATE MODEL c ON (SELECT * FROM t) WITH (CONFUSION = true)")
    run = _last(con, "c")
    assert run["options"] == {"confusion": True} and run["rows"] is None  # a confusion matrix counts, it has no rows


def test_pictures_come_from_the_newest_run_that_has_them(con):
    import dbml.plot

    con.sql("EVALUATE MODEL g ON (SELECT * FROM t WHERE i < 300)")
    pictured = _last(con, "g")["run_id"]
    con.sql("EVALUATE MODEL g ON (SELECT * FROM t) WITH (by = plan)")
    fig = dbml.plot.evaluation(con, "g")
    assert f"run {pictured}" in fig.get_suptitle()
