"""dbml.monitor: the drift SQL of MONITOR MODEL, run through a connection (which rewrites
its PREDICT call) and checked against the stored profile and a numpy reimplementation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import dbml
from dbml.features import bin_index
from dbml.monitor import EPS, PREDICTION, drift_sql

O = "epochs = 5, progress = false, hidden = [32], lr = 0.01, seed = 3"
COLUMNS = ["feature", "kind", "psi", "null_rate_train", "null_rate_now", "null_rate_change", "detail", "rows", "drift"]
REGION = "user's region"  # a feature name that needs quoting


@pytest.fixture(scope="module")
def db():
    """One connection with table t (numeric, boolean, date and category features, NULLs in
    most) and two models trained on it: a boolean classifier and a regression (~2 s)."""
    c = dbml.connect(user="tester")
    c.sql(
        """
        CREATE TABLE t AS
        SELECT i AS id,
            CASE WHEN i % 11 = 0 THEN NULL ELSE sin(i) * 10 + (i % 7) END AS x,
            (i % 13)::INTEGER AS n,
            CASE WHEN i % 17 = 0 THEN NULL ELSE i % 3 = 0 END AS flag,
            CASE WHEN i % 19 = 0 THEN NULL ELSE DATE '2024-01-01' + (i % 200)::INTEGER END AS d,
            CASE WHEN i % 9 = 0 THEN NULL ELSE ['basic', 'plus', 'pro', 'max'][1 + (i * 7) % 4] END AS plan,
            CASE WHEN i % 23 = 0 THEN NULL ELSE ['north', 'south', 'east'][1 + i % 3] END AS "user's region",
            (sin(i) * 10 + (i % 7)) > 3 OR i % 5 = 0 AS y,
            2 * sin(i) * 10 + (i % 13) + (i % 3) AS score
        FROM range(1000) AS r(i)
        """
    )
    c.sql(f"TRAIN MODEL m FROM (SELECT * EXCLUDE (id, score) FROM t) TARGET y WITH ({O})")
    c.sql(f"TRAIN MODEL reg FROM (SELECT * EXCLUDE (id, y) FROM t) TARGET score WITH ({O})")
    yield c
    c.close()


def _monitor(db, source: str, model: str = "m", threshold: float = 0.2, record: dict | None = None) -> dict[str, dict]:
    rec = record if record is not None else db.registry.get(model)
    rel = db.sql(drift_sql(source, f"{rec['model']}:{rec['version']}", rec, threshold=threshold))
    assert rel.columns == COLUMNS
    rows = [dict(zip(COLUMNS, r)) for r in rel.fetchall()]
    psis = [r["psi"] for r in rows if r["psi"] is not None]
    assert psis == sorted(psis, reverse=True)  # ordered by psi, descending
    for r in rows:
        r["detail"] = json.loads(r["detail"]) if r["detail"] is not None else None
    return {r["feature"]: r for r in rows}


def _psi(train: list[float], now: list[float]) -> float:
    t = np.maximum(np.asarray(train, dtype=np.float64), EPS)
    c = np.maximum(np.asarray(now, dtype=np.float64), EPS)
    return float(np.sum((c - t) * np.log(c / t)))


SHIFTED = """
SELECT * REPLACE (
    x + {shift} AS x,                                                        -- numeric: +3 std
    CASE WHEN id % 2 = 0 THEN 'brand-new' ELSE plan END AS plan,             -- unseen category
    CASE WHEN id % 2 = 0 THEN NULL ELSE "user's region" END AS "user's region",  -- NULLs in a category
    CASE WHEN id % 2 = 0 THEN NULL ELSE d END AS d                           -- NULLs in a date
) FROM t"""


def _shifted(db) -> str:
    std = db.registry.get("m")["profile"]["x"]["std"]
    return SHIFTED.format(shift=repr(3 * std))


def test_result_shape_and_types(db):
    sql = drift_sql("SELECT * FROM t -- a trailing comment", "m:1", db.registry.get("m"))
    assert "(\nSELECT * FROM t -- a trailing comment\n)" in sql
    rel = db.sql(sql)
    assert [str(t) for t in rel.types] == ["VARCHAR", "VARCHAR", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE", "JSON", "BIGINT", "BOOLEAN"]
    rows = {r[0]: r for r in rel.fetchall()}
    assert set(rows) == {"x", "n", "flag", "d", "plan", REGION, PREDICTION}
    assert {f: r[1] for f, r in rows.items()} == {
        "x": "numeric", "n": "numeric", "flag": "boolean", "d": "datetime",
        "plan": "category", REGION: "category", PREDICTION: "classification",
    }  # fmt: skip
    assert all(r[7] == 1000 for r in rows.values())


def test_model_ref_is_a_quoted_literal():
    rec = {"model": "it's", "version": 2, "task": "regression", "features": [], "profile": {}, "labels": None,
           "metrics": {"prediction_distribution": {"edges": [1.0], "shares": [0.5, 0.5]}}}  # fmt: skip
    sql = drift_sql("SELECT 1 AS a", "it's:2", rec)
    assert "PREDICT('it''s:2', *)" in sql


def test_training_rows_show_no_drift(db):
    for model in ("m", "reg"):
        rec = db.registry.get(model)
        out = _monitor(db, "SELECT * FROM t", model)
        assert set(out) == {f["name"] for f in rec["features"]} | {PREDICTION}
        for name, r in out.items():
            assert r["rows"] == 1000
            assert r["drift"] is False, (model, name, r["psi"])
            if name == PREDICTION:  # held-out predictions at training vs all rows now
                assert 0 <= r["psi"] < 0.1, (model, r["psi"])
                assert r["null_rate_train"] == 0.0 and r["null_rate_now"] == 0.0
                continue
            prof = rec["profile"][name]
            # the profile is of the training split; these are all rows: sampling noise only
            assert 0 <= r["psi"] < 0.05, (model, name, r["psi"])
            assert r["null_rate_train"] == pytest.approx(prof["nulls"] / prof["count"], abs=1e-12)
            assert r["null_rate_now"] == pytest.approx(r["null_rate_train"], abs=0.02)
            assert r["null_rate_change"] == pytest.approx(r["null_rate_now"] - r["null_rate_train"], abs=1e-12)
            shares = [b["now"] for b in r["detail"]]
            assert sum(shares) == pytest.approx(1.0, abs=1e-9)
            train = [b["train"] for b in r["detail"]]
            if prof["kind"] == "category":  # the "other" bin, then the vocabulary
                assert train == [pytest.approx(1 - sum(prof["frequencies"]), abs=1e-12)] + prof["frequencies"]
            else:
                assert train == prof["histogram"]["shares"]
    # the true null rates of t
    out = _monitor(db, "SELECT * FROM t")
    assert out["x"]["null_rate_now"] == pytest.approx(91 / 1000)
    assert out["plan"]["null_rate_now"] == pytest.approx(112 / 1000)


def test_shifts_flag_exactly_the_changed_features(db):
    out = _monitor(db, _shifted(db))
    # a numeric shift of 3 std: most rows leave their bins
    assert out["x"]["psi"] > 1.0 and out["x"]["drift"] is True
    assert out["x"]["null_rate_change"] == pytest.approx(0.0, abs=0.01)
    # half the rows take a category never seen at training: the "other" bin fills
    plan = out["plan"]
    assert plan["psi"] > 1.0 and plan["drift"] is True
    other = [b for b in plan["detail"] if b["value"] is None]
    assert len(other) == 1 and other[0]["train"] == pytest.approx(0.0, abs=1e-12) and other[0]["now"] == pytest.approx(0.5)
    # NULLs in a category: the '' bin fills (a NULL counts as ''), and the null rate jumps
    region = out[REGION]
    assert region["psi"] > 0.5 and region["drift"] is True
    assert region["null_rate_change"] > 0.4
    empty = [b for b in region["detail"] if b["value"] == ""]
    assert empty[0]["now"] == pytest.approx(region["null_rate_now"])
    # NULLs in a date: a null-rate change; the histogram of the non-NULL values (all PSI
    # measures for numeric kinds) hardly moves, so drift (psi > threshold) stays false
    assert out["d"]["null_rate_change"] > 0.4
    assert out["d"]["null_rate_now"] == pytest.approx(0.5 + 0.5 * 26 / 500, abs=0.01)
    assert out["d"]["psi"] < 0.05 and out["d"]["drift"] is False
    # untouched features stay low
    for name in ("n", "flag"):
        assert out[name]["psi"] < 0.05 and out[name]["drift"] is False
        assert abs(out[name]["null_rate_change"]) < 0.02
    # the prediction moves with the features it depends on
    assert out[PREDICTION]["psi"] > _monitor(db, "SELECT * FROM t")[PREDICTION]["psi"]


def test_threshold_decides_drift(db):
    low = _monitor(db, "SELECT * FROM t", threshold=1e-9)
    assert all(r["drift"] is (r["psi"] > 1e-9) for r in low.values())
    assert any(r["drift"] for r in low.values())
    high = _monitor(db, _shifted(db), threshold=1e6)
    assert not any(r["drift"] for r in high.values())


def test_numeric_psi_matches_numpy(db):
    rec = db.registry.get("m")
    for source in ("SELECT * FROM t", _shifted(db), "SELECT * FROM t WHERE n < 4"):
        out = _monitor(db, source)
        for name in ("x", "n"):
            hist = rec["profile"][name]["histogram"]
            rows = db.sql(f"SELECT CAST({name} AS FLOAT) FROM ({source}) WHERE {name} IS NOT NULL").fetchall()
            values = np.array([v for (v,) in rows], dtype=np.float32).astype(np.float64)
            counts = np.bincount(bin_index(values, hist["edges"]), minlength=len(hist["edges"]) + 1)
            now = counts / counts.sum()
            assert [b["now"] for b in out[name]["detail"]] == pytest.approx(now.tolist(), abs=1e-12)
            assert out[name]["psi"] == pytest.approx(_psi(hist["shares"], now), abs=1e-9), (source, name)


def test_category_psi_matches_numpy(db):
    rec = db.registry.get("m")
    prof = rec["profile"]["plan"]
    out = _monitor(db, _shifted(db))
    values = [v for (v,) in db.sql(f"SELECT coalesce(plan, '') FROM ({_shifted(db)})").fetchall()]
    vocab = prof["vocabulary"]
    now = [sum(v not in vocab for v in values) / len(values)] + [values.count(w) / len(values) for w in vocab]
    train = [max(0.0, 1.0 - math.fsum(prof["frequencies"]))] + prof["frequencies"]
    assert [b["value"] for b in out["plan"]["detail"]] == [None] + vocab
    assert out["plan"]["psi"] == pytest.approx(_psi(train, now), abs=1e-9)


def test_prediction_row_moves_with_predictions(db):
    rec = db.registry.get("m")
    dist = rec["metrics"]["prediction_distribution"]
    assert dist["labels"] == ["false", "true"]
    base = _monitor(db, "SELECT * FROM t")[PREDICTION]
    # rows the model calls true: every prediction in one class
    only_true = _monitor(db, "SELECT * FROM t WHERE PREDICT(m, *)")[PREDICTION]
    assert [b["value"] for b in only_true["detail"]] == ["false", "true"]
    assert [b["now"] for b in only_true["detail"]] == [0.0, 1.0]
    assert only_true["psi"] == pytest.approx(_psi(dist["shares"], [0.0, 1.0]), abs=1e-9)
    assert only_true["psi"] > 1.0 > 10 * base["psi"] and only_true["drift"] is True
    # the class shares agree with PREDICT's own labels
    preds = [p for (p,) in db.sql("SELECT PREDICT(m, *) FROM t").fetchall()]
    now = [preds.count(False) / len(preds), preds.count(True) / len(preds)]
    assert [b["now"] for b in base["detail"]] == pytest.approx(now, abs=1e-12)
    assert base["psi"] == pytest.approx(_psi(dist["shares"], now), abs=1e-9)


def test_regression_prediction_row_moves(db):
    rec = db.registry.get("reg")
    dist = rec["metrics"]["prediction_distribution"]
    base = _monitor(db, "SELECT * FROM t", "reg")[PREDICTION]
    assert base["kind"] == "regression"
    values = np.array([p for (p,) in db.sql("SELECT CAST(PREDICT(reg, *) AS DOUBLE) FROM t").fetchall()])
    counts = np.bincount(bin_index(values, dist["edges"]), minlength=len(dist["edges"]) + 1)
    assert base["psi"] == pytest.approx(_psi(dist["shares"], counts / counts.sum()), abs=1e-9)
    top = _monitor(db, f"SELECT * FROM t WHERE PREDICT(reg, *) > {dist['edges'][-3]!r}", "reg")[PREDICTION]
    assert top["psi"] > 1.0 and top["drift"] is True
    assert sum(b["now"] for b in top["detail"][-3:]) == pytest.approx(1.0)  # above edges[-3]: the top 3 bins
    assert top["detail"][-1]["low"] == dist["edges"][-1] and top["detail"][-1]["high"] is None


def test_no_rows(db):
    out = _monitor(db, "SELECT * FROM t WHERE false")
    for r in out.values():
        assert r["rows"] == 0 and r["psi"] is None and r["drift"] is False and r["null_rate_now"] is None
        assert all(b["now"] is None for b in r["detail"])


def test_record_without_histograms(db):
    """A record from before profiles had histograms or vocabularies: NULL psi, null rates still."""
    rec = dict(db.registry.get("m"))
    rec["profile"] = {
        k: {kk: vv for kk, vv in v.items() if kk not in ("histogram", "vocabulary", "frequencies")}
        for k, v in rec["profile"].items()
    }
    rec["metrics"] = {k: v for k, v in rec["metrics"].items() if k != "prediction_distribution"}
    out = _monitor(db, "SELECT * FROM t", record=rec)
    assert set(out) == {"x", "n", "flag", "d", "plan", REGION, PREDICTION}
    for r in out.values():
        assert r["psi"] is None and r["detail"] is None and r["drift"] is False and r["rows"] == 1000
    assert out["x"]["null_rate_now"] == pytest.approx(91 / 1000)


# -- anomaly models, arrays and sequences ------------------------------------------------------------


@pytest.fixture(scope="module")
def lists():
    """Table s with a number, a FLOAT[4] array and a LIST of 1 to 6 numbers; an autoencoder
    over (x, arr) and a GRU classifier over (x, seq) (~7 s)."""
    c = dbml.connect(user="tester")
    c.sql(
        """
        CREATE TABLE s AS
        SELECT i AS id, sin(i) * 2 + (i % 5) AS x,
            [sin(i), cos(i), sin(i * 3) + 1, (i % 4) / 2.0]::FLOAT[4] AS arr,
            list_transform(range(1 + i % 6), lambda j: sin(i + j) + (i % 3))::DOUBLE[] AS seq,
            (sin(i) * 2 + (i % 5)) > 2 AS y
        FROM range(600) AS r(i)
        """
    )
    c.sql("TRAIN MODEL odd USING autoencoder FROM (SELECT x, arr FROM s) WITH (epochs = 30, progress = false, "
          "hidden = [16], seed = 3, lr = 0.01)")  # fmt: skip
    c.sql("TRAIN MODEL rnn USING gru FROM (SELECT x, seq, y FROM s) TARGET y WITH (epochs = 5, progress = false, hidden = 8, seed = 3)")
    yield c
    c.close()


def _binned(values, hist) -> np.ndarray:
    counts = np.bincount(bin_index(np.asarray(values, dtype=np.float64), hist["edges"]), minlength=len(hist["edges"]) + 1)
    return counts / counts.sum()


SHIFTED_LISTS = "SELECT * REPLACE (list_transform(arr, lambda v: v + 3)::FLOAT[4] AS arr, list_transform(seq, lambda v: v + 3) AS seq) FROM s"


def test_anomaly_model_prediction_row_is_the_anomaly_score(lists):
    rec = lists.registry.get("odd")
    dist = rec["metrics"]["prediction_distribution"]
    for source in ("SELECT * FROM s", SHIFTED_LISTS):
        out = _monitor(lists, source, "odd")
        assert set(out) == {"x", "arr", PREDICTION}
        pred = out[PREDICTION]
        assert pred["kind"] == "reconstruction" and pred["rows"] == 600 and pred["null_rate_now"] == 0.0
        scores = [v for (v,) in lists.sql(f"SELECT ANOMALY_SCORE(odd, *) FROM ({source})").fetchall()]
        now = _binned(scores, dist)
        assert [b["train"] for b in pred["detail"]] == dist["shares"]
        assert [b["now"] for b in pred["detail"]] == pytest.approx(now.tolist(), abs=1e-12)
        assert pred["psi"] == pytest.approx(_psi(dist["shares"], now), abs=1e-9)
    assert _monitor(lists, "SELECT * FROM s", "odd")[PREDICTION]["psi"] < 0.2  # held-out scores vs all rows
    shifted = _monitor(lists, SHIFTED_LISTS, "odd")[PREDICTION]
    assert shifted["psi"] > 1.0 and shifted["drift"] is True  # unusual rows: high scores
    # the statement stores the run, the prediction row among its results
    rows = lists.sql("MONITOR MODEL odd ON s").fetchall()
    assert {r[1] for r in rows} == {"x", "arr", PREDICTION}


@pytest.mark.parametrize("model, feature", [("odd", "arr"), ("rnn", "seq")])
def test_list_features_are_monitored_by_their_row_mean(lists, model, feature):
    rec = lists.registry.get(model)
    spec = next(f for f in rec["features"] if f["name"] == feature)
    hist = rec["profile"][feature]["histogram"]
    # the mean of each row as the model reads it: FLOAT elements; a sequence's last L values
    read = f"{feature}::FLOAT[4]" if spec["kind"] == "array" else f"list_slice({feature}::FLOAT[], -{spec['sql_type'][6:-1]}, -1)"
    for source in ("SELECT * FROM s", SHIFTED_LISTS, "SELECT * FROM s WHERE id % 6 = 5"):
        r = _monitor(lists, source, model)[feature]
        assert r["kind"] == spec["kind"] and r["null_rate_train"] == 0.0 and r["null_rate_now"] == 0.0
        means = [v for (v,) in lists.sql(f"SELECT list_avg({read}) FROM ({source})").fetchall()]
        now = _binned(means, hist)
        assert [b["train"] for b in r["detail"]] == hist["shares"]
        assert [b["now"] for b in r["detail"]] == pytest.approx(now.tolist(), abs=1e-12)
        assert r["psi"] == pytest.approx(_psi(hist["shares"], now), abs=1e-9)
    assert _monitor(lists, "SELECT * FROM s", model)[feature]["psi"] < 0.05
    assert _monitor(lists, SHIFTED_LISTS, model)[feature]["psi"] > 1.0
    assert spec["kind"] == "array" or spec["sql_type"] == "FLOAT[6]"  # rows longer than 6 keep their last 6
    longer = "SELECT * REPLACE (list_concat([100.0, 100.0, 100.0], seq) AS seq) FROM s WHERE id % 6 = 5"
    if feature == "seq":
        assert _monitor(lists, longer, model)[feature]["detail"] == _monitor(lists, "SELECT * FROM s WHERE id % 6 = 5", model)[feature]["detail"]


@pytest.mark.parametrize("model, feature", [("odd", "arr"), ("rnn", "seq")])
def test_null_lists_count_as_nulls_not_errors(lists, model, feature):
    """Training refuses NULL lists and PREDICT stops on them; MONITOR counts them instead."""
    source = f"SELECT * REPLACE (CASE WHEN id % 4 = 0 THEN NULL ELSE {feature} END AS {feature}) FROM s"
    out = _monitor(lists, source, model)
    assert out[feature]["null_rate_now"] == pytest.approx(0.25) and out[feature]["null_rate_change"] == pytest.approx(0.25)
    assert out[PREDICTION]["null_rate_now"] == pytest.approx(0.25)
    assert out["x"]["null_rate_now"] == 0.0 and out["x"]["rows"] == 600
    assert sum(b["now"] for b in out[feature]["detail"]) == pytest.approx(1.0)  # shares of the non-NULL rows


# -- forecasters: the windows of the series, by their mean; the first forecast value ---------------

WINDOW, HORIZON = 14, 3
SALES = """
    CREATE TABLE sales AS
    SELECT 'store ' || ['A', 'B'][s + 1] AS store, DATE '2024-01-01' + d::INTEGER AS day,
           20 + 10 * s + (3 + 2 * s) * sin(2 * pi() * d / 7) + ((d * 37 + s * 11) % 13) / 4.0 AS units
    FROM range(2) AS a(s), range(100) AS b(d)
"""
SHIFTED_SALES = "SELECT store, day, units * 3 + 40 AS units FROM sales"


@pytest.fixture(scope="module")
def fc():
    """A daily forecaster of two stores' sales, 100 days each (~10 s)."""
    c = dbml.connect(user="tester")
    c.sql(SALES)
    c.sql(f"TRAIN MODEL fc USING lstm FROM sales TARGET units WITH (time = 'day', series = 'store', window = {WINDOW}, "
          f"horizon = {HORIZON}, epochs = 2, hidden = 8, progress = false, seed = 1)")  # fmt: skip
    yield c
    c.close()


def _monitor_statement(con, sql: str) -> dict[str, dict]:
    rel = con.sql(sql)
    assert rel.columns == ["run_id"] + COLUMNS
    rows = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    for r in rows:
        r["detail"] = json.loads(r["detail"]) if r["detail"] is not None else None
    return {r["feature"]: r for r in rows}


def _windows(con, source: str) -> np.ndarray:
    """Every complete window's history, built here in numpy from the series of source."""
    hists = []
    for (y,) in con.sql(f"SELECT list(units ORDER BY day) FROM ({source}) GROUP BY store ORDER BY store").fetchall():
        y = np.asarray(y, dtype=np.float64)
        hists += [y[e - WINDOW + 1 : e + 1] for e in range(WINDOW - 1, len(y) - HORIZON)]
    return np.stack(hists)


def test_forecaster_monitors_history_means_and_first_forecast(fc):
    rec = fc.registry.get("fc")
    hist_profile = rec["profile"]["history"]["histogram"]
    dist = rec["metrics"]["prediction_distribution"]
    runs = fc.duckdb.execute("SELECT count(*) FROM dbml.monitor_runs").fetchall()[0][0]
    for source in ("SELECT * FROM sales", SHIFTED_SALES):
        out = _monitor_statement(fc, f"MONITOR MODEL fc ON ({source})")
        assert set(out) == {"history", PREDICTION}
        h, p = out["history"], out[PREDICTION]
        assert (h["kind"], p["kind"]) == ("sequence", "forecast")
        windows = _windows(fc, source)
        assert h["rows"] == p["rows"] == len(windows) == 2 * (100 - WINDOW - HORIZON + 1)  # rows are windows
        assert h["null_rate_now"] == p["null_rate_now"] == 0.0
        means = windows.astype(np.float32).astype(np.float64).mean(axis=1)  # the model reads FLOAT values
        now = _binned(means, hist_profile)
        assert [b["train"] for b in h["detail"]] == hist_profile["shares"]
        assert [b["now"] for b in h["detail"]] == pytest.approx(now.tolist(), abs=1e-12)
        assert h["psi"] == pytest.approx(_psi(hist_profile["shares"], now), abs=1e-9)
        first = [r[0][0] for r in fc.sql("SELECT PREDICT('fc', h) FROM unnest(?::DOUBLE[][]) AS u(h)", [windows.tolist()]).fetchall()]
        now = _binned(first, dist)
        assert [b["train"] for b in p["detail"]] == dist["shares"]
        assert [b["now"] for b in p["detail"]] == pytest.approx(now.tolist(), abs=1e-12)
        assert p["psi"] == pytest.approx(_psi(dist["shares"], now), abs=1e-9)
    assert fc.duckdb.execute("SELECT count(*) FROM dbml.monitor_runs").fetchall()[0][0] == runs + 2
    same = _monitor_statement(fc, "MONITOR MODEL fc ON sales")
    assert not same["history"]["drift"] and same["history"]["psi"] < 0.05
    shifted = _monitor_statement(fc, f"MONITOR MODEL fc ON ({SHIFTED_SALES})")
    assert shifted["history"]["drift"] and shifted["history"]["psi"] > 1.0
    assert shifted[PREDICTION]["drift"] and shifted[PREDICTION]["psi"] > 1.0


def test_forecaster_monitor_checks_the_series(fc):
    from dbml.errors import FeatureError, TargetError

    with pytest.raises(TargetError, match=r"the time column 'day' of model 'fc' is not in \(query\)"):
        fc.sql("MONITOR MODEL fc ON (SELECT store, units FROM sales)")
    with pytest.raises(FeatureError, match=r"has 9 rows; a forecaster with window = 14 and horizon = 3 needs at least 17"):
        fc.sql("MONITOR MODEL fc ON (SELECT * FROM sales WHERE day < DATE '2024-01-10')")
    with pytest.raises(FeatureError, match="irregular step"):
        fc.sql("MONITOR MODEL fc ON (SELECT * FROM sales WHERE day <> DATE '2024-02-01')")
