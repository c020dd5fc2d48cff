"""Golden pairs for the PREDICT rewriter: tests/golden/predict.sql holds the inputs,
tests/golden/predict.expected.sql what each one becomes (pure: no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbml.errors import FeatureError, ModelNotFoundError, VersionNotFoundError
from dbml.features import FeatureSpec
from dbml.rewrite import ModelSignature, rewrite_predict, split_statements

GOLDEN = Path(__file__).parent / "golden"

CHURN_FEATURES = (
    FeatureSpec("age", "numeric", "INTEGER"),
    FeatureSpec("plan", "category", "VARCHAR"),
    FeatureSpec("joined", "datetime", "DATE"),
)


def _classifier(model: str, version: int, features, label_type: str, predict_type: str) -> ModelSignature:
    return ModelSignature(
        model, version, features, f"dbml_predict__{model}__v{version}", predict_type, label_type,
        f"dbml_proba__{model}__v{version}",
    )  # fmt: skip


SIGNATURES = {
    ("churn", None): _classifier("churn", 2, CHURN_FEATURES, "VARCHAR", "VARCHAR"),
    ("churn", 1): _classifier("churn", 1, CHURN_FEATURES, "VARCHAR", "VARCHAR"),
    ("price", None): ModelSignature("price", 4, (FeatureSpec("sqft", "numeric", "DOUBLE"),), "dbml_predict__price__v4", "DOUBLE", "DOUBLE"),
    ("rating", None): _classifier("rating", 1, (FeatureSpec("text_len", "numeric", "BIGINT"),), "INTEGER", "BIGINT"),
}


def resolve(ref: str) -> ModelSignature:
    name, _, version = ref.lower().partition(":")
    key = (name, int(version) if version else None)
    if name not in {k[0] for k in SIGNATURES}:
        raise ModelNotFoundError(f"model '{name}' does not exist")
    if key not in SIGNATURES:
        raise VersionNotFoundError(f"model '{name}' has no version {version}")
    return SIGNATURES[key]


def _cases(path: Path) -> list[tuple[str, str]]:
    cases, title = [], None
    for line in path.read_text().splitlines():
        if line.startswith("-- "):
            title = line[3:]
        elif line.strip():
            cases.append((title, line))
    return cases


INPUTS = _cases(GOLDEN / "predict.sql")
EXPECTED = _cases(GOLDEN / "predict.expected.sql")


def test_golden_files_pair_up():
    assert [t for t, _ in INPUTS] == [t for t, _ in EXPECTED]


@pytest.mark.parametrize("case", range(len(INPUTS)), ids=[t for t, _ in INPUTS])
def test_golden(case):
    assert rewrite_predict(INPUTS[case][1], resolve) == EXPECTED[case][1]


def test_sql_without_predict_is_returned_unchanged():
    sql = "SELECT  predict_x, 'PREDICT(a, *)' FROM t -- PREDICT(m, *)"
    assert rewrite_predict(sql, resolve) == sql


def test_unknown_model_and_version():
    with pytest.raises(ModelNotFoundError, match="nope"):
        rewrite_predict("SELECT PREDICT(nope, *) FROM t", resolve)
    with pytest.raises(VersionNotFoundError, match="version 9"):
        rewrite_predict("SELECT PREDICT('churn:9', *) FROM t", resolve)


def test_missing_feature_column_is_named():
    with pytest.raises(FeatureError, match="missing feature column\\(s\\) joined"):
        rewrite_predict("SELECT PREDICT(churn, age, plan) FROM t", resolve)


def test_proba_of_a_regression_model_is_refused():
    with pytest.raises(FeatureError, match="PREDICT_PROBA needs a classification model; model 'price'"):
        rewrite_predict("SELECT PREDICT_PROBA(price, *) FROM t", resolve)


def test_split_statements_keeps_text_and_kinds():
    script = "CREATE TABLE t(a INT);\nTRAIN MODEL m FROM t TARGET a;  SELECT ';' AS s, PREDICT(m, *) FROM t;SHOW MODELS;"
    parts = split_statements(script)
    assert [p.kind for p in parts] == ["sql", "ml", "predict", "ml"]
    assert parts[0].text == "CREATE TABLE t(a INT);"  # plain SQL keeps DuckDB's own statement text
    assert parts[2].text == "SELECT ';' AS s, PREDICT(m, *) FROM t"
