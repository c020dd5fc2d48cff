"""dbml.evaluate: the SQL of EVALUATE MODEL, checked metric by metric against scikit-learn
computed on the same PREDICT / PREDICT_PROBA outputs."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pytest
from sklearn import metrics as skm

import dbml
from dbml.errors import FeatureError, OptionError, TargetError
from dbml.evaluate import EPS, anomaly_evaluation_sql, confusion_sql, evaluation_sql, forecast_evaluation_sql, positive_label
from dbml.data.series import describe_series
from dbml.tasks.reconstruction import robust_z

# the model's float32 probabilities sum to one within ~1e-7, which sklearn's log_loss warns about
# sklearn's warnings for a group with one class (its AUC is undefined; ours is NULL there)
pytestmark = [
    pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one"),
    pytest.mark.filterwarnings("ignore:Only one class is present in y_true"),
    pytest.mark.filterwarnings("ignore:A single label was found"),
]

O = "epochs = 4, progress = false, hidden = [16], seed = 3"
TOL = 1e-6


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _field(label) -> str:
    return ("true" if label else "false") if isinstance(label, bool) else str(label)


@pytest.fixture(scope="module")
def db():
    """One connection with every table and model of this module (trained once: ~1 s)."""
    c = dbml.connect(user="tester")
    # Features repeat every 60 rows, so many rows share their scores (ties for the AUC).
    c.sql(
        """
        CREATE TABLE bin AS
        SELECT i AS id, (i % 20) / 4.0 AS x1, ['red', 'green', 'blue'][1 + i % 3] AS color, (i % 4 = 0) AS flag,
               CASE WHEN (i % 20) > 9 OR i % 7 = 0 THEN 'yes' ELSE 'no' END AS "Churn d'it",
               CASE WHEN i < 30 THEN 'only-no' ELSE 'g' || (i % 3) END AS grp
        FROM range(240) AS r(i);
        UPDATE bin SET "Churn d'it" = 'no' WHERE grp = 'only-no';
        CREATE TABLE bools AS
        SELECT i AS id, (i % 12)::DOUBLE AS a, (i % 5)::DOUBLE AS b, (i % 12) + (i % 5) > 9 OR i % 11 = 0 AS churned,
               'g' || (i % 2) AS grp
        FROM range(200) AS r(i);
        CREATE TABLE multi AS
        SELECT i AS id, (i % 15)::DOUBLE AS u, ['p', 'q'][1 + i % 2] AS v,
               CASE WHEN i % 15 < 5 THEN 'alpha' WHEN i % 15 < 10 OR i % 13 = 0 THEN 'b''eta' ELSE 'gam ma' END AS kind,
               CASE WHEN i % 15 >= 10 AND i % 13 <> 0 THEN 'g1' ELSE ['g0', 'g2'][1 + i % 2] END AS grp
        FROM range(240) AS r(i);
        CREATE TABLE ints AS
        SELECT i AS id, (i % 9)::DOUBLE AS u, (i % 4)::DOUBLE AS w,
               (CASE WHEN i % 9 < 3 THEN 0 WHEN i % 9 < 6 THEN 1 ELSE 2 END + (i % 17 = 0)::INT) % 3 AS cls
        FROM range(200) AS r(i);
        CREATE TABLE reg AS
        SELECT i AS id, (i % 25) / 5.0 AS x, ['a', 'b'][1 + i % 2] AS c,
               CASE WHEN i % 40 = 3 THEN 5.0 WHEN i % 10 = 0 THEN 0.0 ELSE 3 * (i % 25) / 5.0 - 2 + (i % 7) / 10.0 END AS y,
               CASE WHEN i = 7 THEN 'single' WHEN i % 40 = 3 THEN 'constant' ELSE 'g' || (i % 2) END AS grp
        FROM range(200) AS r(i);
        CREATE TABLE flat AS
        SELECT i AS id, 1.0 AS k, CASE WHEN i % 3 = 0 THEN 'yes' ELSE 'no' END AS churned FROM range(90) AS r(i);
        """
    )
    c.sql(f"""TRAIN MODEL bin FROM (SELECT * EXCLUDE (id, grp) FROM bin) TARGET "Churn d'it" WITH ({O})""")
    c.sql(f"TRAIN MODEL bools FROM (SELECT * EXCLUDE (id, grp) FROM bools) TARGET churned WITH ({O})")
    c.sql(f"TRAIN MODEL multi FROM (SELECT * EXCLUDE (id, grp) FROM multi) TARGET kind WITH ({O})")
    c.sql(f"TRAIN MODEL ints FROM (SELECT * EXCLUDE (id) FROM ints) TARGET cls WITH ({O})")
    c.sql(f"TRAIN MODEL reg FROM (SELECT * EXCLUDE (id, grp) FROM reg) TARGET y WITH ({O})")
    # a constant feature: every row gets the same probabilities (all scores tied, one class predicted)
    c.sql(f"TRAIN MODEL flat FROM (SELECT * EXCLUDE (id) FROM flat) TARGET churned WITH ({O})")
    # a second version, so a pinned reference is told apart from the latest
    c.sql(f"TRAIN MODEL bin FROM (SELECT x1, \"Churn d'it\" FROM bin) TARGET \"Churn d'it\" WITH ({O})")
    # rows with a NULL target, which evaluation leaves out
    c.sql("""INSERT INTO bin VALUES (1000, 1.0, 'red', true, NULL, 'g0'), (1001, 4.5, 'blue', false, NULL, 'g1')""")
    c.sql("INSERT INTO multi VALUES (1000, 3.0, 'p', NULL, 'g0')")
    c.sql("INSERT INTO reg VALUES (1000, 1.0, 'a', NULL, 'g0')")
    yield c
    c.close()


def _record(con, ref):
    model, _, version = ref.partition(":")
    return con.registry.get(model, int(version) if version else None)


def _rows(con, ref, source, target, by=None):
    """(y, pred, probabilities or None, groups) for the rows with a target, in one query."""
    rec = _record(con, ref)
    lit = "'" + ref.replace("'", "''") + "'"
    proba = f", PREDICT_PROBA({lit}, *)" if rec["task"] == "classification" else ", NULL"
    group = f", {_q(by)}" if by else ", NULL"
    rows = con.sql(
        f"SELECT {_q(target)}, PREDICT({lit}, *){proba}{group} FROM (\n{source}\n) AS s WHERE {_q(target)} IS NOT NULL"
    ).fetchall()
    y = [r[0] for r in rows]
    pred = [r[1] for r in rows]
    groups = [r[3] for r in rows]
    if rec["task"] != "classification":
        return np.array(y, dtype=float), np.array(pred, dtype=float), None, groups
    P = np.array([[r[2][_field(label)] for label in rec["labels"]] for r in rows], dtype=float)
    return np.array(y), np.array(pred), P, groups  # bool, int or str arrays, as sklearn wants


def _sklearn_or_none(fn, *args, **kwargs):
    try:
        value = fn(*args, **kwargs)
    except ValueError:  # sklearn refuses (e.g. a class absent from y_true for the AUC)
        return None
    return None if math.isnan(value) else float(value)


def sklearn_classification(y, pred, P, labels, positive=None):
    labels = list(labels)
    out = {
        "rows": len(y),
        "accuracy": skm.accuracy_score(y, pred),
        "precision_macro": skm.precision_score(y, pred, labels=labels, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y, pred, labels=labels, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0),
        "log_loss": skm.log_loss(list(y), P, labels=labels),
    }
    if len(labels) == 2:
        pos = labels[-1] if positive is None else positive
        k = labels.index(pos)
        out["precision"] = skm.precision_score(y, pred, pos_label=pos, average="binary", zero_division=0)
        out["recall"] = skm.recall_score(y, pred, pos_label=pos, average="binary", zero_division=0)
        out["f1"] = skm.f1_score(y, pred, pos_label=pos, average="binary", zero_division=0)
        out["roc_auc"] = _sklearn_or_none(skm.roc_auc_score, np.array([v == pos for v in y]), P[:, k])
    else:
        out["roc_auc"] = _sklearn_or_none(
            skm.roc_auc_score, list(y), P, multi_class="ovr", average="macro", labels=labels
        )
    return out


def sklearn_regression(y, pred):
    return {
        "rows": len(y),
        "mae": skm.mean_absolute_error(y, pred),
        "rmse": math.sqrt(skm.mean_squared_error(y, pred)),
        "r2": _sklearn_or_none(skm.r2_score, y, pred) if len(y) >= 2 else None,
        "mape": skm.mean_absolute_percentage_error(y, pred),
    }


def assert_metrics(got: dict, expected: dict):
    assert set(got) == set(expected)
    for name, want in expected.items():
        have = got[name]
        if want is None:
            assert have is None, (name, have)
        elif name == "rows":
            assert have == want
        else:
            assert have is not None and abs(have - want) <= TOL * max(1.0, abs(want)), (name, have, want)


def _evaluate(con, ref, source, by=None, positive=None):
    rec = _record(con, ref)
    rel = con.sql(evaluation_sql(source, ref, rec["target"], rec["task"], rec["labels"], by=by, positive=positive))
    return rel.columns, [dict(zip(rel.columns, row)) for row in rel.fetchall()], rel.types


CLASSIFIERS = {
    # ref, source (with extra columns and NULL targets)
    "varchar": ("bin:1", "SELECT * FROM bin -- a trailing comment"),
    "boolean": ("bools", "SELECT * FROM bools"),
    "three-strings": ("multi", "SELECT * FROM multi"),
    "integers": ("ints", "SELECT * FROM ints"),
    "constant": ("flat", "SELECT * FROM flat"),
}


@pytest.mark.parametrize("case", CLASSIFIERS)
def test_classification_metrics_match_sklearn(db, case):
    ref, source = CLASSIFIERS[case]
    rec = _record(db, ref)
    columns, rows, types = _evaluate(db, ref, source)
    binary = len(rec["labels"]) == 2
    assert columns == ["rows", "accuracy"] + (["precision", "recall", "f1"] if binary else []) + [
        "precision_macro", "recall_macro", "f1_macro", "log_loss", "roc_auc"
    ]  # fmt: skip
    assert [str(t) for t in types] == ["BIGINT"] + ["DOUBLE"] * (len(columns) - 1)
    y, pred, P, _ = _rows(db, ref, source, rec["target"])
    assert len(set(map(tuple, P))) < len(P)  # tied scores
    assert len(rows) == 1
    assert_metrics(rows[0], sklearn_classification(y, pred, P, rec["labels"]))


def test_constant_model_ties_every_score(db):
    _, rows, _ = _evaluate(db, "flat", "SELECT * FROM flat")
    y, pred, P, _ = _rows(db, "flat", "SELECT * FROM flat", "churned")
    assert len(set(map(tuple, P))) == 1 and len(set(pred)) == 1
    assert rows[0]["roc_auc"] == pytest.approx(0.5, abs=1e-12)
    # one class never predicted: its precision is 0 (zero_division=0), and it counts in the mean
    assert rows[0]["precision_macro"] == pytest.approx(skm.accuracy_score(y, pred) / 2, abs=1e-12)


def test_pinned_version_differs_from_latest(db):
    _, v1, _ = _evaluate(db, "bin:1", "SELECT * FROM bin")
    _, v2, _ = _evaluate(db, "bin:2", "SELECT * FROM bin")
    rec = _record(db, "bin:2")
    y, pred, P, _ = _rows(db, "bin:2", "SELECT * FROM bin", rec["target"])
    assert_metrics(v2[0], sklearn_classification(y, pred, P, rec["labels"]))
    assert v1[0]["log_loss"] != v2[0]["log_loss"]


BY_CASES = {
    # a group with only one class (AUC NULL), groups lacking a class (zero_division)
    "varchar": ("bin:1", "SELECT * FROM bin", "grp"),
    "boolean": ("bools", "SELECT * FROM bools", "grp"),
    "three-strings": ("multi", "SELECT * FROM multi", "grp"),
    "integers-by-feature": ("ints", "SELECT * FROM ints", "w"),
}


@pytest.mark.parametrize("case", BY_CASES)
def test_by_gives_one_row_per_group_equal_to_sklearn_on_it(db, case):
    ref, source, by = BY_CASES[case]
    rec = _record(db, ref)
    columns, rows, _ = _evaluate(db, ref, source, by=by)
    assert columns[0] == by and columns[1] == "rows"
    y, pred, P, groups = _rows(db, ref, source, rec["target"], by=by)
    groups = np.array(groups, dtype=object)
    assert [r[by] for r in rows] == sorted(set(groups))
    nulls = 0
    for row in rows:
        mask = groups == row[by]
        assert_metrics(
            {k: v for k, v in row.items() if k != by},
            sklearn_classification(y[mask], pred[mask], P[mask], rec["labels"]),
        )
        nulls += row["roc_auc"] is None
    if case in ("varchar", "three-strings"):
        assert nulls >= 1  # a group without every class: AUC undefined, NULL


def test_regression_metrics_match_sklearn(db):
    columns, rows, types = _evaluate(db, "reg", "SELECT * FROM reg")
    assert columns == ["rows", "mae", "rmse", "r2", "mape"]
    assert [str(t) for t in types] == ["BIGINT"] + ["DOUBLE"] * 4
    y, pred, _, _ = _rows(db, "reg", "SELECT * FROM reg", "y")
    assert (y == 0).any()  # mape's max(|y|, eps) denominator
    assert_metrics(rows[0], sklearn_regression(y, pred))


def test_regression_by_group(db):
    _, rows, _ = _evaluate(db, "reg", "SELECT * FROM reg", by="grp")
    y, pred, _, groups = _rows(db, "reg", "SELECT * FROM reg", "y", by="grp")
    groups = np.array(groups, dtype=object)
    assert [r["grp"] for r in rows] == sorted(set(groups))
    for row in rows:
        mask = groups == row["grp"]
        assert_metrics({k: v for k, v in row.items() if k != "grp"}, sklearn_regression(y[mask], pred[mask]))
    by_name = {r["grp"]: r for r in rows}
    assert by_name["constant"]["r2"] == 0.0  # constant target, inexact predictions (sklearn's force_finite)
    assert by_name["single"]["r2"] is None and by_name["single"]["rows"] == 1  # sklearn: NaN


@pytest.mark.parametrize(
    "ref, positive, expected",
    [("bin:1", "no", "no"), ("bin:1", None, "yes"), ("bools", False, False), ("bools", "false", False),
     ("ints", None, 2), ("multi", None, "gam ma")],
)  # fmt: skip
def test_positive_label(db, ref, positive, expected):
    assert positive_label(_record(db, ref)["labels"], positive) == expected


@pytest.mark.parametrize("ref, positive", [("bin:1", "no"), ("bools", False), ("bools", "true")])
def test_positive_class_metrics(db, ref, positive):
    rec = _record(db, ref)
    source = f"SELECT * FROM {ref.split(':')[0]}"
    _, rows, _ = _evaluate(db, ref, source, positive=positive)
    y, pred, P, _ = _rows(db, ref, source, rec["target"])
    assert_metrics(rows[0], sklearn_classification(y, pred, P, rec["labels"], positive_label(rec["labels"], positive)))


def test_positive_errors(db):
    with pytest.raises(OptionError, match="positive = 'maybe' is not a class label of the model; its labels are no, yes"):
        evaluation_sql("SELECT 1", "m", "y", "classification", ["no", "yes"], positive="maybe")
    with pytest.raises(OptionError, match="positive applies to binary models; this model has 3 labels"):
        evaluation_sql("SELECT 1", "m", "y", "classification", ["a", "b", "c"], positive="a")
    with pytest.raises(OptionError, match="this model is a regression"):
        evaluation_sql("SELECT 1", "m", "y", "regression", None, positive=1)
    with pytest.raises(TargetError, match="without its class labels"):
        evaluation_sql("SELECT 1", "m", "y", "classification", None)
    with pytest.raises(TargetError, match="task 'clustering'"):
        evaluation_sql("SELECT 1", "m", "y", "clustering", None)


@pytest.mark.parametrize(
    "ref, source, by",
    [("bin:1", "SELECT * FROM bin", None), ("multi", "SELECT * FROM multi -- note", None),
     ("ints", "SELECT * FROM ints", None), ("bools", "SELECT * FROM bools", None),
     ("flat", "SELECT * FROM flat", None), ("multi", "SELECT * FROM multi", "grp")],
)  # fmt: skip
def test_confusion_matrix_matches_sklearn(db, ref, source, by):
    rec = _record(db, ref)
    rel = db.sql(confusion_sql(source, ref, rec["target"], by=by))
    assert rel.columns == ([by] if by else []) + ["actual", "predicted", "count"]
    got = rel.fetchall()
    assert got == sorted(got, key=lambda r: tuple(v for v in r[:-1]))
    y, pred, _, groups = _rows(db, ref, source, rec["target"], by=by)
    groups = np.array(groups, dtype=object)
    for group in sorted(set(groups)) if by else [None]:
        mask = groups == group if by else np.ones(len(y), dtype=bool)
        cells = [r[1:] for r in got if r[0] == group] if by else got
        values = sorted(set(y[mask]) | set(pred[mask]))
        matrix = skm.confusion_matrix(list(y[mask]), list(pred[mask]), labels=values)
        expected = [(a, p, int(matrix[i, j])) for i, a in enumerate(values) for j, p in enumerate(values)]
        assert cells == expected  # every cell, zeros included, row-major


def test_target_outside_the_labels(db):
    """A class the model never saw: wrong, a false positive of what was predicted, a negative
    for the AUC, and probability 0 (clipped to eps) in the log loss."""
    source = "SELECT * REPLACE (CASE WHEN id % 10 = 0 THEN 'maybe' ELSE \"Churn d'it\" END AS \"Churn d'it\") FROM bin"
    rec = _record(db, "bin:1")
    _, rows, _ = _evaluate(db, "bin:1", source)
    y, pred, P, _ = _rows(db, "bin:1", source, rec["target"])
    labels = rec["labels"]
    got = rows[0]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=TOL)
    for avg in ("precision", "recall", "f1"):
        fn = getattr(skm, f"{avg}_score")
        assert got[f"{avg}_macro"] == pytest.approx(fn(y, pred, labels=labels, average="macro", zero_division=0), abs=TOL)
    true_p = np.array([P[i, labels.index(v)] if v in labels else 0.0 for i, v in enumerate(y)])
    assert got["log_loss"] == pytest.approx(np.mean(-np.log(np.clip(true_p, EPS, 1 - EPS))), rel=TOL)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(np.array([v == "yes" for v in y]), P[:, 1]), abs=TOL)


def test_enum_target(con, mixed):
    con.sql(f"TRAIN MODEL mood FROM (SELECT * EXCLUDE (id, churned) FROM {mixed}) TARGET mood WITH ({O})")
    rec = _record(con, "mood")
    _, rows, _ = _evaluate(con, "mood", "SELECT * FROM mixed")
    y, pred, P, _ = _rows(con, "mood", "SELECT * FROM mixed", "mood")
    assert_metrics(rows[0], sklearn_classification(y, pred, P, rec["labels"]))


def test_no_rows_gives_zero_and_nulls(db):
    _, rows, _ = _evaluate(db, "multi", "SELECT * FROM multi WHERE kind IS NULL")
    assert rows[0]["rows"] == 0 and all(v is None for k, v in rows[0].items() if k != "rows")
    _, rows, _ = _evaluate(db, "reg", "SELECT * FROM reg WHERE false")
    assert rows == [{"rows": 0, "mae": None, "rmse": None, "r2": None, "mape": None}]
    _, rows, _ = _evaluate(db, "reg", "SELECT * FROM reg WHERE false", by="grp")
    assert rows == []


def test_sql_shape():
    sql = evaluation_sql("SELECT * FROM t -- note", "it's:3", 'my "y"', "classification", ["no", "yes"], by="a b")
    assert "PREDICT('it''s:3', *)" in sql and "PREDICT_PROBA('it''s:3', *)" in sql
    assert sql.count("PREDICT(") == 1 and sql.count("PREDICT_PROBA(") == 1  # once per row, in one CTE
    assert '"scored" AS MATERIALIZED' in sql
    assert "FROM (\nSELECT * FROM t -- note\n) AS \"src\"" in sql
    assert '"src"."my ""y"""' in sql and '"src"."a b" AS "_group"' in sql and 'AS "a b"' in sql
    reg = evaluation_sql("SELECT 1", "m", "y", "regression", None)
    assert reg.count("PREDICT(") == 1 and "PREDICT_PROBA" not in reg
    conf = confusion_sql("SELECT 1 -- x", "m:1", "y")
    assert conf.count("PREDICT('m:1', *)") == 1 and "FROM (\nSELECT 1 -- x\n)" in conf


# -- anomaly (reconstruction) models: EVALUATE with and without a label ----------------------------

AE = "epochs = 60, progress = false, hidden = [16], seed = 3, lr = 0.01, bottleneck = 2"
ANOMALY_COLUMNS = ["rows", "flagged", "anomaly_rate", "mse"]
LABELLED_COLUMNS = ANOMALY_COLUMNS + ["positives", "precision", "recall", "f1", "roc_auc", "roc_auc_robust_z", "roc_auc_gain"]


@pytest.fixture(scope="module")
def odd():
    """An autoencoder trained on normal payments (b = 2a), and table payments: those rows,
    30 planted anomalies (b = 40 - 2a, some of them near normal), 3 rows of NULL label."""
    c = dbml.connect(user="tester")
    c.sql(
        """
        CREATE TABLE normal AS
        SELECT i AS id, (i % 20)::DOUBLE AS a, 2.0 * (i % 20) + (i % 3) * 0.1 AS b, ['p', 'q'][1 + i % 2] AS c
        FROM range(400) AS r(i);
        CREATE TABLE payments AS
        SELECT id, a, b, c, false AS fraud, 'g' || (id % 2) AS grp FROM normal
        UNION ALL
        SELECT 1000 + i, (i % 20)::DOUBLE, 40.0 - 2.0 * (i % 20), 'p', true, 'g' || (i % 2) FROM range(30) AS r(i)
        UNION ALL
        SELECT 2000 + i, 1.0, 2.0, 'q', NULL, 'g0' FROM range(3) AS r(i);
        """
    )
    c.sql(f"TRAIN MODEL odd USING autoencoder FROM (SELECT a, b, c FROM normal) WITH ({AE})")
    yield c
    c.close()


def _anomaly_rows(con, source, label=None, by=None):
    """(label, score, flag, group) arrays of the rows with a label (every row without one);
    ``_anomaly_rows.z``: the robust z-score baseline of those rows (numbers a and b, fitted on them)."""
    where = f" WHERE {_q(label)} IS NOT NULL" if label else ""
    rows = con.sql(
        f"SELECT {_q(label) if label else 'NULL'}, ANOMALY_SCORE(odd, *), IS_ANOMALY(odd, *), {_q(by) if by else 'NULL'}, a, b "
        f"FROM (\n{source}\n) AS s{where}"
    ).fetchall()
    y, score, flag, group = (np.array([r[k] for r in rows], dtype=object) for k in range(4))
    scalars = np.array([[r[4], r[5]] for r in rows], dtype=float).reshape(-1, 2)
    _anomaly_rows.z = robust_z(scalars, scalars)
    return y.astype(bool) if label else y, score.astype(float), flag.astype(bool), group


def sklearn_anomaly(y, score, flag, z=None):
    out = {"rows": len(score), "flagged": int(flag.sum()), "anomaly_rate": float(flag.mean()), "mse": float(score.mean())}
    if y is None:
        return out
    return out | {
        "positives": int(y.sum()),
        "precision": skm.precision_score(y, flag, zero_division=0),
        "recall": skm.recall_score(y, flag, zero_division=0),
        "f1": skm.f1_score(y, flag, zero_division=0),
        "roc_auc": _sklearn_or_none(skm.roc_auc_score, y, score),
        # the robust z-score baseline beside it, and the difference
        "roc_auc_robust_z": _sklearn_or_none(skm.roc_auc_score, y, z),
        "roc_auc_gain": (None if _sklearn_or_none(skm.roc_auc_score, y, score) is None
                         else skm.roc_auc_score(y, score) - skm.roc_auc_score(y, z)),
    }


def _statement(con, sql):
    rel = con.sql(sql)
    return rel.columns, [dict(zip(rel.columns, row)) for row in rel.fetchall()], [str(t) for t in rel.types]


def test_anomaly_metrics_with_a_label_match_sklearn(odd):
    columns, rows, types = _statement(odd, "EVALUATE MODEL odd ON (SELECT * FROM payments -- note\n) WITH (label = fraud)")
    assert columns == LABELLED_COLUMNS
    assert types == ["BIGINT", "BIGINT", "DOUBLE", "DOUBLE", "BIGINT", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE"]
    y, score, flag, _ = _anomaly_rows(odd, "SELECT * FROM payments", "fraud")
    assert len(set(score)) < len(score) / 4  # rows repeat: many tied scores (average ranks)
    assert len(rows) == 1 and rows[0]["rows"] == 430 and rows[0]["positives"] == 30  # NULL labels left out
    assert_metrics(rows[0], sklearn_anomaly(y, score, flag, _anomaly_rows.z))
    got = rows[0]
    assert got["roc_auc"] > 0.8  # the planted anomalies score high
    assert got["roc_auc_gain"] > 0.2  # b = 40 - 2a breaks a relation: each value alone is ordinary
    assert got["flagged"] > 0 and got["recall"] > 0.3 and got["precision"] > 0.5
    # IS_ANOMALY is the score above the threshold stored at training
    threshold = odd.registry.get("odd")["metrics"]["threshold"]
    assert np.all(flag == (score > threshold))


def test_anomaly_metrics_by_group(odd):
    columns, rows, _ = _statement(odd, "EVALUATE MODEL odd ON (SELECT * FROM payments) WITH (label = fraud, by = grp)")
    assert columns == ["grp"] + LABELLED_COLUMNS
    y, score, flag, groups = _anomaly_rows(odd, "SELECT * FROM payments", "fraud", by="grp")
    z = _anomaly_rows.z  # fitted once on every row, ranked per group
    assert [r["grp"] for r in rows] == ["g0", "g1"]
    for row in rows:
        mask = groups == row["grp"]
        assert_metrics({k: v for k, v in row.items() if k != "grp"}, sklearn_anomaly(y[mask], score[mask], flag[mask], z[mask]))


def test_anomaly_metrics_without_a_label(odd):
    columns, rows, types = _statement(odd, "EVALUATE MODEL odd ON payments")
    assert columns == ANOMALY_COLUMNS and types == ["BIGINT", "BIGINT", "DOUBLE", "DOUBLE"]
    _, score, flag, _ = _anomaly_rows(odd, "SELECT * FROM payments")
    assert rows[0]["rows"] == 433  # every row, NULL labels too
    assert_metrics(rows[0], sklearn_anomaly(None, score, flag))
    _, rows, _ = _statement(odd, "EVALUATE MODEL odd ON (SELECT * FROM payments) WITH (by = grp)")
    assert [(r["grp"], r["rows"]) for r in rows] == [("g0", 218), ("g1", 215)]
    _, rows, _ = _statement(odd, "EVALUATE MODEL odd ON (SELECT * FROM payments WHERE false)")
    assert rows == [{"rows": 0, "flagged": 0, "anomaly_rate": None, "mse": None}]
    _, rows, _ = _statement(odd, "EVALUATE MODEL odd ON (SELECT * FROM payments WHERE false) WITH (label = fraud)")
    assert rows == [dict.fromkeys(LABELLED_COLUMNS) | {"rows": 0, "flagged": 0, "positives": 0}]


def test_anomaly_label_of_one_class_and_integers(odd):
    # no known anomaly among the rows: the AUC is undefined (NULL), recall 0 (zero_division)
    _, rows, _ = _statement(odd, "EVALUATE MODEL odd ON (SELECT * FROM payments WHERE NOT fraud) WITH (label = fraud)")
    assert rows[0]["positives"] == 0 and rows[0]["roc_auc"] is None and rows[0]["recall"] == 0.0
    # an integer label of 0 and 1 is the boolean one
    _, as_bool, _ = _statement(odd, "EVALUATE MODEL odd ON payments WITH (label = fraud)")
    _, as_int, _ = _statement(odd, "EVALUATE MODEL odd ON (SELECT *, fraud::TINYINT AS f01 FROM payments) WITH (label = F01)")
    assert as_int == as_bool
    with pytest.raises(duckdb.Error, match="dbml: label column 'f' of EVALUATE MODEL odd:1 has the value 2, not 0 or 1"):
        odd.sql("EVALUATE MODEL odd ON (SELECT *, CASE WHEN fraud THEN 2 ELSE 0 END AS f FROM payments) WITH (label = f)").fetchall()


def test_anomaly_refusals(odd, db):
    with pytest.raises(TargetError, match=r"the label column 'nope' of model 'odd' is not in \(query\); its columns are id, a, b, c, fraud, grp"):
        odd.sql("EVALUATE MODEL odd ON (SELECT * FROM payments) WITH (label = nope)")
    with pytest.raises(TargetError, match="the by column 'nope' of model 'odd' is not in payments"):
        odd.sql("EVALUATE MODEL odd ON payments WITH (by = nope)")
    with pytest.raises(TargetError, match="the label column 'c' has type VARCHAR; .* needs a BOOLEAN label"):
        odd.sql("EVALUATE MODEL odd ON payments WITH (label = c)")
    with pytest.raises(TargetError, match="the label column 'a' has type DOUBLE"):
        odd.sql("EVALUATE MODEL odd ON payments WITH (label = a)")
    with pytest.raises(TargetError, match="confusion = true needs a classification model; model 'odd' is an anomaly model"):
        odd.sql("EVALUATE MODEL odd ON payments WITH (label = fraud, confusion = true)")
    with pytest.raises(OptionError, match="positive applies to binary classification models; model 'odd' is an anomaly model"):
        odd.sql("EVALUATE MODEL odd ON payments WITH (label = fraud, positive = true)")
    with pytest.raises(OptionError, match="positive applies to binary classification models; this model is an anomaly model"):
        evaluation_sql("SELECT 1", "odd:1", "fraud", "reconstruction", None, positive=True)
    with pytest.raises(OptionError, match="label applies to anomaly models .*model 'reg' is a regression model, evaluated against its target 'y'"):
        db.sql("EVALUATE MODEL reg ON reg WITH (label = y)")


def test_anomaly_sql_shape():
    sql = anomaly_evaluation_sql("SELECT * FROM t -- note", "it's:3", "my label", by="a b")
    assert sql.count("ANOMALY_SCORE('it''s:3', *)") == 1 and sql.count("IS_ANOMALY('it''s:3', *)") == 1
    assert "PREDICT" not in sql and '"scored" AS MATERIALIZED' in sql
    assert "FROM (\nSELECT * FROM t -- note\n) AS \"src\"" in sql and 'WHERE "src"."my label" IS NOT NULL' in sql
    assert evaluation_sql("SELECT 1", "m:1", None, "reconstruction", None) == anomaly_evaluation_sql("SELECT 1", "m:1")


# -- metrics once per engine: training's torch metrics = EVALUATE's SQL on the held-out rows ---------


@pytest.mark.parametrize("task", ["classification", "regression", "reconstruction"])
def test_training_metrics_agree_with_evaluate_on_the_held_out_rows(con, task):
    """TRAIN MODEL stores metrics computed in torch (dbml/tasks/*.py) on its validation rows;
    EVALUATE computes them in SQL over the ONNX graph. Re-derive the split in SQL with
    dbml.data.split.roles_sql (a seeded hash of each row's training columns; strata: the
    class) and EVALUATE those rows only: both engines agree. With refit = false the
    stored network is the one the metrics measured; the default refit's metrics are of
    that same first network (tests/training/test_refit.py)."""
    from dbml.data import split

    con.sql(
        """
        CREATE TABLE held AS
        SELECT i AS id, sin(i) * 3 AS u, (i % 7)::DOUBLE AS w, ['p', 'q', 'r'][1 + i % 3] AS c,
               CASE WHEN sin(i) * 3 + (i % 7) / 3.0 + cos(i * 7) * 1.5 > 1.5 THEN 'hi'
                    WHEN i % 5 = 0 THEN 'mid' ELSE 'lo' END AS kind,
               sin(i) * 3 + (i % 7) / 2.0 + cos(i * 13) AS amount
        FROM range(300) AS r(i) ORDER BY i
        """
    )
    seed, validation = 11, 0.2
    opts = f"epochs = 15, progress = false, hidden = [16], seed = {seed}, validation = {validation}"
    if task != "reconstruction":
        opts += ", refit = false"
    if task == "classification":
        train, target = "SELECT u, w, c, kind FROM held ORDER BY id", "TARGET kind"
    elif task == "regression":
        train, target = "SELECT u, w, c, amount FROM held ORDER BY id", "TARGET amount"
    else:
        train, target = "SELECT u, w, c FROM held ORDER BY id", ""
    using = "USING autoencoder " if task == "reconstruction" else ""
    con.sql(f"TRAIN MODEL h {using}FROM ({train}) {target} WITH ({opts})")
    rec = con.registry.get("h")
    assert rec["task"] == task
    columns = {"classification": ["u", "w", "c", "kind"], "regression": ["u", "w", "c", "amount"],
               "reconstruction": ["u", "w", "c"]}[task]  # fmt: skip
    roles = split.roles_sql(f"SELECT id, {', '.join(columns)} FROM held", columns, validation, seed,
                            '"kind"' if task == "classification" else None)  # fmt: skip
    ids, role = (np.array(v) for v in zip(*con.sql(f'SELECT id, "dbml/role" FROM ({roles}) ORDER BY id').fetchall()))
    train_idx, val_idx = np.flatnonzero(role == split.TRAIN), np.flatnonzero(role == split.VALIDATION)
    metrics = rec["metrics"]
    assert metrics["evaluated_on"] == "validation"
    assert len(val_idx) == rec["validation_rows"] == metrics["rows"] and len(train_idx) == rec["train_rows"]
    held = ", ".join(str(int(i)) for i in ids[val_idx])
    label = " WITH (label = flag)" if task == "reconstruction" else ""
    _, rows, _ = _statement(con, f"EVALUATE MODEL h ON (SELECT *, id % 2 = 0 AS flag FROM held WHERE id IN ({held})){label}")
    got = rows[0]
    assert got["rows"] == metrics["rows"]
    names = {"classification": ["accuracy", "f1_macro", "log_loss"], "regression": ["r2", "rmse", "mae"],
             "reconstruction": ["mse", "anomaly_rate"]}[task]  # fmt: skip
    for name in names:
        assert got[name] == pytest.approx(metrics[name], abs=1e-4), name
    # the other rows give other numbers: the comparison is of the same rows, not a coincidence
    rest = ", ".join(str(int(i)) for i in ids[train_idx])
    _, other, _ = _statement(con, f"EVALUATE MODEL h ON (SELECT *, id % 2 = 0 AS flag FROM held WHERE id IN ({rest})){label}")
    continuous = {"classification": "log_loss", "regression": "rmse", "reconstruction": "mse"}[task]
    assert abs(other[0][continuous] - metrics[continuous]) > 1e-3


# -- forecasters: EVALUATE backtests every complete window ----------------------------------------

WINDOW, HORIZON, SEASON = 14, 3, 7
FORECAST_COLUMNS = ["windows", "rows", "mae", "rmse", "mape", "smape", "mase", "seasonal_naive_mae"]
# two stores of 100 days: a weekly wave of its own size per store, a deterministic wiggle, and a few
# zero days in store A (left out of MAPE only)
SALES = """
    CREATE TABLE sales AS
    SELECT 'store ' || ['A', 'B'][s + 1] AS store, DATE '2024-01-01' + d::INTEGER AS day,
           CASE WHEN s = 0 AND d % 23 = 5 THEN 0.0
                ELSE 20 + 10 * s + (3 + 2 * s) * sin(2 * pi() * d / 7) + ((d * 37 + s * 11) % 13) / 4.0 END AS units
    FROM range(2) AS a(s), range(100) AS b(d)
"""


@pytest.fixture(scope="module")
def fc():
    c = dbml.connect(user="tester")
    c.sql(SALES)
    c.sql(f"TRAIN MODEL fc USING lstm FROM sales TARGET units WITH (time = 'day', series = 'store', window = {WINDOW}, "
          f"horizon = {HORIZON}, epochs = 2, hidden = 8, progress = false, seed = 1)")  # fmt: skip
    yield c
    c.close()


def _series(con, where: str = "TRUE") -> dict[str, np.ndarray]:
    rows = con.sql(f"SELECT store, list(units ORDER BY day) FROM sales WHERE {where} GROUP BY store ORDER BY store").fetchall()
    return {r[0]: np.asarray(r[1], dtype=np.float64) for r in rows}


def _numpy_windows(con, y: np.ndarray, ref: str = "fc"):
    """(history, actual, forecast) of every complete window of y, built here in numpy; the
    forecast is PREDICT's on each history."""
    ends = range(WINDOW - 1, len(y) - HORIZON)
    hist = np.stack([y[e - WINDOW + 1 : e + 1] for e in ends])
    actual = np.stack([y[e + 1 : e + 1 + HORIZON] for e in ends])
    got = con.sql(
        f"SELECT PREDICT('{ref}', h) FROM unnest(?::DOUBLE[][]) WITH ORDINALITY AS u(h, k) ORDER BY k", [hist.tolist()]
    ).fetchall()
    return hist, actual, np.asarray([r[0] for r in got], dtype=np.float64)


def _seasonal_naive(hist: np.ndarray, season: int) -> np.ndarray:
    steps = np.arange(HORIZON)
    if season > hist.shape[1]:
        return np.repeat(hist[:, -1:], HORIZON, axis=1)
    return hist[:, hist.shape[1] - season + steps % season]


def numpy_forecast_metrics(hist, actual, forecast, season=SEASON) -> dict:
    err = forecast - actual
    nonzero = actual != 0
    denom = np.abs(forecast) + np.abs(actual)
    naive_mae = float(np.mean(np.abs(_seasonal_naive(hist, season) - actual)))
    mae = float(np.mean(np.abs(err)))
    return {
        "windows": len(hist), "rows": err.size, "mae": mae, "rmse": math.sqrt(float(np.mean(err**2))),
        "mape": float(np.mean(np.abs(err[nonzero]) / np.abs(actual[nonzero]))),
        "smape": float(np.mean(np.where(denom > 0, 2 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0))),
        "mase": mae / naive_mae, "seasonal_naive_mae": naive_mae,
    }  # fmt: skip


def _assert_close(got: dict, expected: dict):
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name


def _frame(rel) -> list[dict]:
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


def test_forecast_metrics_match_numpy_on_the_same_windows(fc):
    rel = fc.sql("EVALUATE MODEL fc ON (SELECT * FROM sales)")
    assert rel.columns == FORECAST_COLUMNS
    (got,) = _frame(rel)
    parts = [_numpy_windows(fc, y) for y in _series(fc).values()]
    hist, actual, forecast = (np.concatenate([p[i] for p in parts]) for i in range(3))
    assert (actual == 0).any()  # MAPE leaves these out; the rest count
    expected = numpy_forecast_metrics(hist, actual, forecast)
    assert got["windows"] == 2 * (100 - WINDOW - HORIZON + 1) and got["rows"] == got["windows"] * HORIZON
    _assert_close(got, expected)
    assert fc.registry.get("fc")["metrics"]["season"] == SEASON


def test_forecast_by_series_key_and_by_series(fc):
    by_store = _frame(fc.sql("EVALUATE MODEL fc ON (SELECT day, units, store FROM sales) WITH (by = STORE)"))
    by_series = _frame(fc.sql("EVALUATE MODEL fc ON sales WITH (by = 'series')"))
    assert [r["store"] for r in by_store] == ["store A", "store B"]
    assert list(by_store[0]) == ["store"] + FORECAST_COLUMNS
    # one key: 'series' is that key (float32 scores may differ in the last bits with the batch a window lands in)
    assert [r["store"] for r in by_series] == ["store A", "store B"]
    assert [{k: v for k, v in r.items() if k != "store"} for r in by_store] == [
        pytest.approx({k: v for k, v in r.items() if k != "store"}, rel=1e-5) for r in by_series
    ]
    for row, (store, y) in zip(by_store, _series(fc).items()):
        assert row["store"] == store
        _assert_close(row, numpy_forecast_metrics(*_numpy_windows(fc, y)))
    assert by_store[0]["mae"] != pytest.approx(by_store[1]["mae"], rel=1e-3)
    # a store's own rows give its row
    (alone,) = _frame(fc.sql("EVALUATE MODEL fc ON (SELECT * FROM sales WHERE store = 'store B')"))
    _assert_close(alone, {k: v for k, v in by_store[1].items() if k != "store"})


def test_forecast_training_metrics_agree_on_the_held_out_windows(fc):
    """The latest 20% of windows validated at training: the series from 13 days before the
    first of their ends give exactly those windows."""
    rec = fc.registry.get("fc")
    m, n = rec["metrics"], 2 * (100 - WINDOW - HORIZON + 1)
    ends = (n - m["rows"]) // 2 + WINDOW - 1  # the first validation window's end, per store
    (got,) = _frame(fc.sql(f"EVALUATE MODEL fc ON (SELECT * FROM sales WHERE day >= DATE '2024-01-01' + {ends - WINDOW + 1})"))
    assert got["windows"] == m["rows"]
    for name in ("mae", "rmse", "mape", "smape", "mase", "seasonal_naive_mae"):
        assert got[name] == pytest.approx(m[name], rel=1e-4, abs=1e-5), name


def _naive_sql(sql: str, ref: str, window: int, season: int) -> str:
    """The backtest SQL with PREDICT replaced by the seasonal naive forecast itself."""
    call = f"PREDICT('{ref}', \"_win\".\"history\")"
    assert sql.count(call) == 1
    if season <= window:
        naive = f'"_win"."history"[{window - season} + (k - 1) % {season} + 1]'
    else:
        naive = f'"_win"."history"[{window}]'
    return sql.replace(call, f"list_transform(range(1, {HORIZON + 1}), lambda k: {naive})")


@pytest.mark.parametrize("season", [1, 3, 7, 14, 30])
def test_seasonal_naive_scores_mase_one(season):
    """MASE of the seasonal naive forecast itself is 1, and its MAE is numpy's naive's."""
    con = duckdb.connect()
    con.sql(SALES)
    types = dict(zip(*[con.sql("SELECT * FROM sales").columns, [str(t) for t in con.sql("SELECT * FROM sales").types]]))
    src = "SELECT * FROM sales"
    series = describe_series(con, src, None, "n", "day", ["store"], "units", types, WINDOW, HORIZON)
    for by in (None, ["store"]):
        sql = _naive_sql(forecast_evaluation_sql(src, "n:1", series, WINDOW, HORIZON, season, by=by), "n:1", WINDOW, season)
        rows = _frame(con.sql(sql))
        ys = [np.asarray(r[0]) for r in con.sql("SELECT list(units ORDER BY day) FROM sales GROUP BY store ORDER BY store").fetchall()]
        hists, actuals = [], []
        for y in ys:
            ends = range(WINDOW - 1, len(y) - HORIZON)
            hists.append(np.stack([y[e - WINDOW + 1 : e + 1] for e in ends]))
            actuals.append(np.stack([y[e + 1 : e + 1 + HORIZON] for e in ends]))
        groups = [(np.concatenate(hists), np.concatenate(actuals))] if by is None else list(zip(hists, actuals))
        assert len(rows) == len(groups)
        for row, (hist, actual) in zip(rows, groups):
            naive = _seasonal_naive(hist, season)
            assert row["mase"] == pytest.approx(1.0, abs=1e-12)
            assert row["mae"] == pytest.approx(row["seasonal_naive_mae"], abs=1e-12)
            _assert_close(row, numpy_forecast_metrics(hist, actual, naive, season))


def test_forecast_by_a_key_of_several():
    """by one key of two: every series with that key's value; by 'series': every key."""
    con = duckdb.connect()
    con.sql(SALES)
    con.sql("CREATE TABLE items AS SELECT store, i AS item, day, units * (1 + i) AS units FROM sales, range(2) AS r(i)")
    src = "SELECT * FROM items"
    rel = con.sql(src)
    types = dict(zip(rel.columns, [str(t) for t in rel.types]))
    series = describe_series(con, src, None, "n", "day", ["store", "item"], "units", types, WINDOW, HORIZON)
    one = _frame(con.sql(_naive_sql(forecast_evaluation_sql(src, "n", series, WINDOW, HORIZON, 7, by=["store"]), "n", WINDOW, 7)))
    every = _frame(con.sql(_naive_sql(forecast_evaluation_sql(src, "n", series, WINDOW, HORIZON, 7, by=["store", "item"]), "n", WINDOW, 7)))
    assert [r["store"] for r in one] == ["store A", "store B"] and all(r["windows"] == 2 * 84 for r in one)
    assert [(r["store"], r["item"]) for r in every] == [("store A", 0), ("store A", 1), ("store B", 0), ("store B", 1)]
    for r in one:  # item 1 is item 0 doubled: twice its MAE, the same MAPE
        mine = [e for e in every if e["store"] == r["store"]]
        assert r["mae"] == pytest.approx((mine[0]["mae"] + mine[1]["mae"]) / 2, rel=1e-9)
        assert mine[1]["mae"] == pytest.approx(2 * mine[0]["mae"], rel=1e-9)
    with pytest.raises(OptionError, match="by = 'day' is not a series key column of the forecaster; its keys are store, item"):
        forecast_evaluation_sql(src, "n", series, WINDOW, HORIZON, 7, by=["day"])


def test_forecast_no_complete_window_gives_zero_and_nulls(fc):
    (got,) = _frame(fc.sql("EVALUATE MODEL fc ON (SELECT * FROM sales WHERE units IS NULL)"))
    assert got["windows"] == 0 and got["rows"] == 0
    assert all(got[k] is None for k in FORECAST_COLUMNS[2:])


def test_forecast_refusals(fc):
    with pytest.raises(OptionError, match=r"by = 'day': model 'fc' version 1 is a forecaster, evaluated per series: by names a "
                                          r"series key column \(store\) or is 'series'"):  # fmt: skip
        fc.sql("EVALUATE MODEL fc ON sales WITH (by = day)")
    for option in ("label = units", "confusion = true", "positive = 'x'"):
        with pytest.raises(OptionError, match=f"{option.split(' ')[0]} out"):
            fc.sql(f"EVALUATE MODEL fc ON sales WITH ({option})")
    with pytest.raises(TargetError, match=r"the series key 'store' column 'store' of model 'fc' is not in \(query\)"):
        fc.sql("EVALUATE MODEL fc ON (SELECT day, units FROM sales)")
    with pytest.raises(TargetError, match="target column 'units' of .* has type VARCHAR; model 'fc' version 1 forecasts a number"):
        fc.sql("EVALUATE MODEL fc ON (SELECT store, day, CAST(units AS VARCHAR) AS units FROM sales)")
    with pytest.raises(FeatureError, match=r"series \{'store': 'store [AB]'\} of model 'fc' has 9 rows; .* needs at least 17"):
        fc.sql("EVALUATE MODEL fc ON (SELECT * FROM sales WHERE day < DATE '2024-01-10')")
    with pytest.raises(TargetError, match=r"series \{'store': 'store [AB]'\} of \(query\) is weekly; model 'fc' version 1 was trained on daily"):
        fc.sql("EVALUATE MODEL fc ON (SELECT store, day + CAST((day - DATE '2024-01-01') * 6 AS INTEGER) AS day, units FROM sales)")
    with pytest.raises(FeatureError, match="has 2 rows at 2024-01-01"):
        fc.sql("EVALUATE MODEL fc ON (SELECT * FROM sales UNION ALL SELECT * FROM sales WHERE day = DATE '2024-01-01')")
