"""Permutation importance (dbml/explain.py): the SQL it builds, and its answers on models
trained on a target that depends strongly on one column, weakly on another and not at
all on a third."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import dbml
from dbml.errors import FeatureError, OptionError, TargetError
from dbml.explain import permutation_importance_sql, permutation_sql

FEATURES = ["strong", "weak", "noise"]
COLUMNS = ["feature", "importance", "importance_std", "baseline", "metric", "rank"]
# the evaluated rows: every row of t, plus rows whose target is NULL (to be left out)
SOURCE = "SELECT * FROM t UNION ALL SELECT 0.5, 0.5, 0.5, NULL, NULL -- rows without a target"


@pytest.fixture(scope="module")
def trained():
    """One connection for the module (training twice per test would be slow): table t with
    300 rows, classifier c (label) and regression r (y), 20 epochs each."""
    con = dbml.connect(user="tester")
    rng = np.random.default_rng(0)
    strong, weak, noise = rng.uniform(size=(3, 300))
    label = np.where(strong + 0.3 * weak > 0.65, "yes", "no")
    y = 3 * strong + 0.6 * weak
    con.duckdb.from_arrow(pa.table({"strong": strong, "weak": weak, "noise": noise, "label": label, "y": y})).create("t")
    opts = "epochs = 20, progress = false"
    con.sql(f"TRAIN MODEL c FROM (SELECT strong, weak, noise, label FROM t) TARGET label WITH ({opts})")
    con.sql(f"TRAIN MODEL r FROM (SELECT strong, weak, noise, y FROM t) TARGET y WITH ({opts})")
    yield con
    con.close()


def _explain(con, task: str, repeats: int = 5, seed: int = 0, source: str = SOURCE) -> list[tuple]:
    ref, target = ("c:1", "label") if task == "classification" else ("r:1", "y")
    rel = con.sql(permutation_importance_sql(source, ref, target, task, FEATURES, repeats=repeats, seed=seed))
    assert rel.columns == COLUMNS
    return rel.fetchall()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_ranking_strong_first_noise_last(trained, task):
    rows = _explain(trained, task)
    assert [r[0] for r in rows] == ["strong", "weak", "noise"]
    assert [r[5] for r in rows] == [1, 2, 3]
    assert {r[4] for r in rows} == {"accuracy" if task == "classification" else "r2"}
    assert len({r[3] for r in rows}) == 1  # one baseline
    imp = {r[0]: r[1] for r in rows}
    assert imp["strong"] > 0.3 and imp["strong"] > 3 * imp["weak"] and imp["weak"] > 0.01
    assert abs(imp["noise"]) < 0.02
    assert all(r[2] >= 0 for r in rows)
    if task == "classification":  # 300 rows, 5 repeats: each importance is a multiple of 1/1500
        assert all(abs(r[1] * 1500 - round(r[1] * 1500)) < 1e-9 for r in rows)


def test_baseline_is_the_metric_computed_with_predict(trained):
    con = trained
    acc = con.sql("SELECT avg((PREDICT('c:1', *) = label)::DOUBLE) FROM t").fetchall()[0][0]
    assert acc > 0.9
    assert _explain(con, "classification")[0][3] == pytest.approx(acc, abs=1e-12)

    y, pred = np.array(con.sql("SELECT y, PREDICT('r:1', *) FROM t").fetchall()).T
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert r2 > 0.8
    assert _explain(con, "regression")[0][3] == pytest.approx(r2, abs=1e-9)
    # the same as EVALUATE's r2 (sklearn's r2_score)
    from sklearn.metrics import r2_score

    assert r2 == pytest.approx(r2_score(y, pred), abs=1e-12)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_same_seed_same_numbers_other_seed_other_numbers(trained, task):
    first = _explain(trained, task, seed=7)
    assert _explain(trained, task, seed=7) == first
    other = _explain(trained, task, seed=8)
    assert [r[1] for r in other] != [r[1] for r in first]
    assert [r[3] for r in other] == [r[3] for r in first]  # the baseline needs no shuffle
    assert [r[0] for r in other] == [r[0] for r in first]  # the ranking is robust here
    # the order the source is read in does not matter: rows are numbered by their values
    reversed_source = "SELECT * FROM (SELECT * FROM t ORDER BY strong DESC) UNION ALL SELECT 0.5, 0.5, 0.5, NULL, NULL"
    assert _explain(trained, task, seed=7, source=reversed_source) == first


def test_shuffles_are_permutations(trained):
    con = trained
    rows = con.sql(permutation_sql(SOURCE, "label", FEATURES, repeats=3, seed=0)).fetchall()
    assert len(rows) == 3 * 3 * 300  # features × repeats × rows with a target
    perms: dict[tuple[str, int], list[int]] = {}
    for feature, repeat, rid, partner, *_ in rows:
        perms.setdefault((feature, repeat), []).append(partner)
        assert 1 <= rid <= 300
    assert set(perms) == {(f, r) for f in FEATURES for r in (1, 2, 3)}
    identity = list(range(1, 301))
    for p in perms.values():
        assert sorted(p) == identity and p != identity
    assert len({tuple(p) for p in perms.values()}) == 9  # each (feature, repeat) its own shuffle
    other = con.sql(permutation_sql(SOURCE, "label", FEATURES, repeats=3, seed=1)).fetchall()
    assert [r[3] for r in other] != [r[3] for r in rows]


def test_matches_a_python_reimplementation_on_the_same_shuffles(trained):
    """Take the shuffles from permutation_sql, shuffle the rows in numpy, score them with
    PREDICT on a plain table, compute accuracy and R² in numpy: the same numbers."""
    con = trained
    repeats, seed = 4, 3
    for task, ref, target in [("classification", "c:1", "label"), ("regression", "r:1", "y")]:
        shuffles = con.sql(permutation_sql(SOURCE, target, FEATURES, repeats=repeats, seed=seed)).to_arrow_table()
        n = 300
        first = shuffles.slice(0, n)  # feature 'strong', repeat 1: every row, by rid 1..n
        assert first.column("rid").to_pylist() == list(range(1, n + 1))
        table = {c: np.array(first.column(c).to_pylist()) for c in [*FEATURES, target]}

        def metric(cols: dict[str, np.ndarray]) -> float:
            con.duckdb.from_arrow(pa.table(cols)).create("shuffled")
            pred = np.array([r[0] for r in con.sql(f"SELECT PREDICT('{ref}', *) FROM shuffled").fetchall()])
            con.duckdb.execute("DROP TABLE shuffled")
            actual = cols[target]
            if task == "classification":
                return float(np.mean(pred == actual))
            return float(1 - np.sum((actual - pred) ** 2) / np.sum((actual - actual.mean()) ** 2))

        baseline = metric(table)
        expected = {}
        for k, feature in enumerate(FEATURES):
            drops = []
            for r in range(repeats):
                block = shuffles.slice((k * repeats + r) * n, n)
                assert block.column("feature")[0].as_py() == feature and block.column("repeat")[0].as_py() == r + 1
                partner = np.array(block.column("partner").to_pylist()) - 1
                drops.append(baseline - metric({**table, feature: table[feature][partner]}))
            expected[feature] = (np.mean(drops), np.std(drops))
        rows = _explain(con, task, repeats=repeats, seed=seed)
        tol = 1e-9
        for feature, importance, std, base, _, _ in rows:
            assert base == pytest.approx(baseline, abs=tol)
            assert importance == pytest.approx(expected[feature][0], abs=tol)
            assert std == pytest.approx(expected[feature][1], abs=tol)


def test_sklearn_agrees_on_the_order_of_magnitude(trained):
    """sklearn's permutation_importance with its own shuffles, on PREDICT as the estimator."""
    from sklearn.inspection import permutation_importance

    con = trained
    X = np.array(con.sql("SELECT strong, weak, noise FROM t").fetchall())
    labels = np.array([r[0] for r in con.sql("SELECT label FROM t").fetchall()])

    class Scorer:
        def fit(self, X, y):  # pragma: no cover - sklearn does not call it here
            return self

        def predict(self, X):
            con.duckdb.from_arrow(pa.table({f: X[:, i] for i, f in enumerate(FEATURES)})).create("xs")
            out = np.array([r[0] for r in con.sql("SELECT PREDICT('c:1', *) FROM xs").fetchall()])
            con.duckdb.execute("DROP TABLE xs")
            return out

        def score(self, X, y):
            return float(np.mean(self.predict(X) == y))

    theirs = permutation_importance(Scorer(), X, labels, n_repeats=5, random_state=0).importances_mean
    ours = {r[0]: r[1] for r in _explain(con, "classification")}
    for feature, value in zip(FEATURES, theirs):
        assert abs(ours[feature] - value) < 0.1
    assert abs(theirs[2]) < 0.02


def test_no_rows_gives_one_null_row_per_feature(trained):
    for task in ("classification", "regression"):
        rows = _explain(trained, task, source="SELECT * FROM t WHERE false")
        assert [r[0] for r in rows] == FEATURES and [r[5] for r in rows] == [1, 2, 3]
        assert all(r[1] is None and r[2] is None and r[3] is None for r in rows)


def test_sql_text_quotes_names_literals_and_keeps_the_source_apart():
    sql = permutation_importance_sql(
        "SELECT * FROM t -- a trailing comment", "it's:3", 'tar"get', "regression", ["a b", 'q"uote', "x"], repeats=2, seed=9
    )
    assert "PREDICT('it''s:3', *)" in sql and "PREDICT('it''s:3',\n" in sql
    assert '"a b"' in sql and '"q""uote"' in sql and '"tar""get"' in sql
    assert "(\nSELECT * FROM t -- a trailing comment\n)" in sql
    assert sql.count("PREDICT(") == 2  # the baseline and one call over all shuffles
    assert "range(1, 3)" in sql and "hash(s.\"_dbml_rid\", 9," in sql
    # a feature named like the internal row number does not collide with it
    assert '"__dbml_rid"' in permutation_importance_sql("SELECT 1", "m:1", "y", "classification", ["_dbml_rid"])


def test_bad_arguments_are_dbml_errors():
    def call(**kw):
        args = dict(source_sql="SELECT 1", model_ref="m:1", target="y", task="classification", features=["a"])
        return permutation_importance_sql(**{**args, **kw})

    with pytest.raises(TargetError, match="task 'clustering'"):
        call(task="clustering")
    with pytest.raises(FeatureError, match="without features"):
        call(features=[])
    with pytest.raises(FeatureError, match="repeat a name"):
        call(features=["a", "A"])
    with pytest.raises(FeatureError, match="also a feature"):
        call(features=["a", "Y"])
    for repeats in (0, -1, 1.5, True):
        with pytest.raises(OptionError, match="repeats"):
            call(repeats=repeats)
    for seed in (-1, 2**63, "1"):
        with pytest.raises(OptionError, match="seed"):
            call(seed=seed)


# -- anomaly (reconstruction) models: the rise of the mean anomaly score ----------------------------

ODD_FEATURES = ["a", "b", "noise"]


@pytest.fixture(scope="module")
def odd():
    """An autoencoder with a one-number code on rows where b follows a (b = 2a + small) and
    noise is independent of both: the code holds a/b, noise is rebuilt as its mean."""
    con = dbml.connect(user="tester")
    rng = np.random.default_rng(1)
    a, noise, jitter = rng.uniform(size=(3, 300))
    con.duckdb.from_arrow(pa.table({"a": a, "b": 2 * a + 0.05 * jitter, "noise": noise})).create("n")
    con.sql("TRAIN MODEL odd USING autoencoder FROM n WITH (epochs = 60, progress = false, hidden = [16], "
            "bottleneck = 1, lr = 0.01, seed = 3)")  # fmt: skip
    yield con
    con.close()


def test_anomaly_model_importance_is_the_rise_of_the_mean_score(odd):
    rel = odd.sql("EXPLAIN MODEL odd ON n WITH (repeats = 3, seed = 2)")
    assert rel.columns == COLUMNS
    rows = rel.fetchall()
    assert {r[4] for r in rows} == {"mse"} and [r[5] for r in rows] == [1, 2, 3]
    imp = {r[0]: r[1] for r in rows}
    assert {rows[0][0], rows[1][0]} == {"a", "b"} and rows[2][0] == "noise"
    assert min(imp["a"], imp["b"]) > 0.1 and min(imp["a"], imp["b"]) > 5 * abs(imp["noise"])
    # the baseline is the mean ANOMALY_SCORE (PREDICT gives it) of the rows, as EVALUATE's mse
    mean = odd.sql("SELECT avg(ANOMALY_SCORE(odd, *)) FROM n").fetchall()[0][0]
    assert rows[0][3] == pytest.approx(mean, abs=1e-9)
    assert odd.sql("EVALUATE MODEL odd ON n").fetchall()[0][3] == pytest.approx(mean, abs=1e-9)


def test_anomaly_model_matches_a_python_reimplementation(odd):
    repeats, seed, n = 2, 5, 300
    shuffles = odd.sql(permutation_sql("SELECT * FROM n", None, ODD_FEATURES, repeats=repeats, seed=seed)).to_arrow_table()
    assert shuffles.column_names == ["feature", "repeat", "rid", "partner", *ODD_FEATURES]  # no target column
    assert shuffles.num_rows == len(ODD_FEATURES) * repeats * n
    first = shuffles.slice(0, n)
    table = {c: np.array(first.column(c).to_pylist()) for c in ODD_FEATURES}

    def mean_score(cols):
        odd.duckdb.from_arrow(pa.table(cols)).create("shuffled")
        value = odd.sql("SELECT avg(ANOMALY_SCORE(odd, *)) FROM shuffled").fetchall()[0][0]
        odd.duckdb.execute("DROP TABLE shuffled")
        return value

    baseline = mean_score(table)
    rows = odd.sql(permutation_importance_sql("SELECT * FROM n", "odd:1", None, "reconstruction", ODD_FEATURES,
                                              repeats=repeats, seed=seed)).fetchall()  # fmt: skip
    for feature, importance, std, base, metric, _ in rows:
        k = ODD_FEATURES.index(feature)
        rises = []
        for r in range(repeats):
            partner = np.array(shuffles.slice((k * repeats + r) * n, n).column("partner").to_pylist()) - 1
            rises.append(mean_score({**table, feature: table[feature][partner]}) - baseline)
        assert base == pytest.approx(baseline, abs=1e-9) and metric == "mse"
        assert importance == pytest.approx(np.mean(rises), abs=1e-9)
        assert std == pytest.approx(np.std(rises), abs=1e-9)


def test_anomaly_model_takes_no_target():
    with pytest.raises(TargetError, match="a reconstruction model is explained without a target"):
        permutation_importance_sql("SELECT 1", "m:1", "y", "reconstruction", ["a"])
    with pytest.raises(TargetError, match="a classification model is explained against its target column"):
        permutation_importance_sql("SELECT 1", "m:1", None, "classification", ["a"])
    sql = permutation_importance_sql("SELECT * FROM t -- note", "m:1", None, "reconstruction", ["a", "b"], repeats=2)
    assert "IS NOT NULL" not in sql and sql.count("PREDICT(") == 2 and "'mse'" in sql


def test_forecaster_is_refused_with_the_tasks_explain_takes():
    con = dbml.connect(user="tester")
    con.sql("CREATE TABLE sales AS SELECT DATE '2024-01-01' + d::INTEGER AS day, 10 + sin(d) AS units FROM range(40) AS r(d)")
    con.sql("TRAIN MODEL fc USING lstm FROM sales TARGET units WITH (time = 'day', window = 8, horizon = 2, epochs = 1, "
            "hidden = 4, progress = false)")  # fmt: skip
    with pytest.raises(TargetError, match=r"EXPLAIN MODEL takes classifiers, regressors and anomaly models; model 'fc' "
                                          r"version 1 is a forecaster, .*backtest it with EVALUATE MODEL fc"):  # fmt: skip
        con.sql("EXPLAIN MODEL fc ON sales")
    with pytest.raises(TargetError, match="EXPLAIN MODEL takes classifiers, regressors and anomaly models; fc:1 is a forecaster"):
        permutation_importance_sql("SELECT * FROM sales", "fc:1", "units", "forecast", ["history"])
    con.close()
