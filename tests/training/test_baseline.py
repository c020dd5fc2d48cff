"""Every classification and regression version stores simple models measured on its own
validation rows (``metrics.baseline``: the majority class or the mean, and a linear model
on the same preprocessing), and TRAIN's result, SHOW MODELS, DESCRIBE MODEL and the model
card say by how much the network beats them, or that it does not."""

from __future__ import annotations

import pytest

import dbml
from dbml.summary import versus

FAST = "progress = false, seed = 3"


def _row(rel) -> dict:
    return dict(zip(rel.columns, rel.fetchall()[0]))


@pytest.fixture
def con():
    c = dbml.connect()
    # y: which side of a circle (no linear rule); lin: a noisy linear function; c: a category moving the label
    c.sql("""CREATE TABLE t AS SELECT a, b, c,
                 (a * a + b * b < 0.5) = (c = 'p') AS y,
                 3 * a - 2 * b + CASE c WHEN 'p' THEN 1.0 ELSE 0.0 END + 0.05 * sin(i) AS lin
             FROM (SELECT i, (hash(i, 1) % 2000) / 1000.0 - 1 AS a, (hash(i, 2) % 2000) / 1000.0 - 1 AS b,
                          CASE WHEN hash(i, 3) % 4 = 0 THEN 'p' ELSE 'q' END AS c FROM range(1500) r(i))""")
    yield c
    c.close()


def test_classifier_stores_majority_and_logistic_and_beats_them(con):
    trained = _row(con.sql(f"TRAIN MODEL circle FROM (SELECT a, b, c, y FROM t) TARGET y WITH ({FAST})"))
    metrics = con.registry.get("circle")["metrics"]
    simple = metrics["baseline"]
    share = con.sql("SELECT avg(y::INT) FROM t").fetchall()[0][0]
    assert abs(simple["majority"]["accuracy"] - max(share, 1 - share)) < 0.06  # the same held-out rows, near the table's share
    assert simple["linear"]["model"] == "logistic regression" and simple["linear"]["rows"] == con.registry.get("circle")["train_rows"]
    assert simple["linear"]["accuracy"] < 0.8  # no line separates a circle
    assert metrics["accuracy"] > simple["linear"]["accuracy"] + 0.1
    assert trained["baseline"].startswith("+") and "over logistic regression" in trained["baseline"]
    show = {r[0]: r for r in con.sql("SELECT model, baseline FROM (SHOW MODELS)").fetchall()}
    assert show["circle"][1] == trained["baseline"]
    assert con.sql("SELECT baseline FROM (DESCRIBE MODEL circle)").fetchall()[0][0] == trained["baseline"]


def test_regression_stores_mean_and_ridge(con):
    con.sql(f"TRAIN MODEL line FROM (SELECT a, b, c, lin FROM t) TARGET lin WITH ({FAST})")
    simple = con.registry.get("line")["metrics"]["baseline"]
    assert abs(simple["mean"]["r2"]) < 0.05  # the training mean explains nothing of the held-out rows
    assert simple["linear"]["model"] == "ridge regression" and simple["linear"]["r2"] > 0.98  # the truth is linear
    assert simple["linear"]["rmse"] < 0.2 and simple["linear"]["mae"] < simple["mean"]["mae"]


def test_text_gets_a_bag_of_words_baseline():
    con = dbml.connect()
    con.sql("""CREATE TABLE reviews AS SELECT
                 CASE WHEN i % 2 = 0 THEN 'great film, loved it ' || (i % 13)::VARCHAR ELSE 'dull film, hated it ' || (i % 11)::VARCHAR END AS review,
                 i % 2 = 0 AS good FROM range(600) r(i)""")
    con.sql(f"TRAIN MODEL senti FROM reviews TARGET good WITH ({FAST}, epochs = 3)")
    linear = con.registry.get("senti")["metrics"]["baseline"]["linear"]
    assert linear["accuracy"] > 0.95  # the words alone give the label
    con.close()


def test_streaming_versions_store_a_baseline_too(con):
    con.sql(f"TRAIN MODEL s FROM (SELECT a, b, c, lin FROM t) TARGET lin WITH ({FAST}, streaming = true, epochs = 3)")
    simple = con.registry.get("s")["metrics"]["baseline"]
    assert simple["linear"]["r2"] > 0.95 and abs(simple["mean"]["r2"]) < 0.05


def test_card_shows_the_baseline(con):
    con.sql(f"TRAIN MODEL circle FROM (SELECT a, b, c, y FROM t) TARGET y WITH ({FAST}, epochs = 3)")
    html = con.model_card("circle")
    assert "Against simple models" in html and "logistic regression" in html


def test_versus_says_plainly_when_a_simpler_model_does_as_well():
    better = {"accuracy": 0.93, "baseline": {"majority": {"accuracy": 0.5},
                                             "linear": {"model": "logistic regression", "accuracy": 0.91}}}  # fmt: skip
    assert versus("classification", better) == ("+2.0 points of accuracy over logistic regression (0.9100); "
                                                "+43.0 points over the majority class (0.5000)")  # fmt: skip
    worse = {**better, "accuracy": 0.90}
    assert versus("classification", worse).startswith("a simpler model does as well: 1.0 points of accuracy below logistic")
    assert versus("forecast", {"mae": 9.0, "baseline": {"seasonal_naive": {"mae": 10.0}}}) == "mae 10.0% below seasonal naive (10)"
    assert versus("forecast", {"mae": 11.0, "baseline": {"seasonal_naive": {"mae": 10.0}}}).startswith("a simpler model does as well")
    assert versus("regression", {"r2": 0.5}) is None  # a version stored before baselines
    assert versus("regression", {"r2": 0.5, "baseline": {"linear": {"skipped": "too wide"}}}) is None


def test_linear_fits_match_scikit_learns_defaults():
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    linear_model = pytest.importorskip("sklearn.linear_model")
    from dbml.training.baseline import fit_linear

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 5)).astype(np.float32)
    signal = X @ np.array([1.0, -2.0, 0.5, 0.0, 1.0], np.float32)
    y2 = (signal + rng.normal(size=500) > 0).astype(np.int64)
    y3 = np.digitize(signal, [-1.0, 1.0]).astype(np.int64)
    yr = (signal + rng.normal(size=500)).astype(np.float32)
    ce, mse = torch.nn.functional.cross_entropy, torch.nn.functional.mse_loss
    binary = fit_linear(torch.from_numpy(X), [], torch.from_numpy(y2), [], 2, ce, 1.0).dense.weight.detach().numpy()
    assert np.allclose(binary[1] - binary[0], linear_model.LogisticRegression(C=1.0).fit(X, y2).coef_[0], atol=2e-3)
    three = fit_linear(torch.from_numpy(X), [], torch.from_numpy(y3), [], 3, ce, 0.5).dense.weight.detach().numpy()
    assert np.allclose(three, linear_model.LogisticRegression(C=1.0).fit(X, y3).coef_, atol=2e-2)
    ridge = fit_linear(torch.from_numpy(X), [], torch.from_numpy(yr)[:, None], [], 1, mse, 1.0).dense.weight.detach().numpy()
    assert np.allclose(ridge[0], linear_model.Ridge(alpha=1.0).fit(X, yr).coef_, atol=1e-3)


def test_an_anomaly_model_says_how_it_ranks_beside_a_robust_z_score():
    said = versus("reconstruction", {"mse": 1.2, "baseline": {"robust_z": {"spearman": 0.5, "anomaly_rate": 0.01}}})
    assert said.startswith("ranks rows with Spearman 0.50 against a robust z-score") and "roc auc" in said.lower()
    assert versus("reconstruction", {"mse": 1.2}) is None
