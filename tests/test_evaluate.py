"""dbml.evaluate: the SQL of EVALUATE MODEL, checked metric by metric against scikit-learn
computed on the same PREDICT / PREDICT_PROBA outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

import dbml
from dbml.errors import OptionError, TargetError
from dbml.evaluate import EPS, confusion_sql, evaluation_sql, positive_label

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
