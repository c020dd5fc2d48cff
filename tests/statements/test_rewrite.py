"""Golden pairs for the rewriter of the scoring functions (PREDICT, EMBED, ...): tests/golden/predict.sql holds the inputs,
tests/golden/predict.expected.sql what each one becomes (pure: no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbml.errors import FeatureError, ModelNotFoundError, VersionNotFoundError
from dbml.features import FeatureSpec
from dbml.outputs import BY_FUNCTION
from dbml.rewrite import ModelSignature, rewrite_predict, split_statements

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

CHURN_FEATURES = (
    FeatureSpec("age", "numeric", "INTEGER"),
    FeatureSpec("plan", "category", "VARCHAR"),
    FeatureSpec("joined", "datetime", "DATE"),
)


def _functions(model: str, version: int, *functions: str) -> dict[str, str]:
    return {f: f"dbml_{BY_FUNCTION[f].udf}__{model}__v{version}" for f in functions}


def _classifier(model: str, version: int, features, label_type: str, predict_type: str, embed: bool = True) -> ModelSignature:
    offered = ("PREDICT", "PREDICT_PROBA") + (("EMBED",) if embed else ())
    return ModelSignature(model, version, features, _functions(model, version, *offered), "classification", predict_type, label_type)


FRAUD_FEATURES = (FeatureSpec("amount", "numeric", "DOUBLE"), FeatureSpec("merchant", "category", "VARCHAR"))

SIGNATURES = {
    ("churn", None): _classifier("churn", 2, CHURN_FEATURES, "VARCHAR", "VARCHAR"),
    # trained before EMBED existed: no embedding output
    ("churn", 1): _classifier("churn", 1, CHURN_FEATURES, "VARCHAR", "VARCHAR", embed=False),
    ("price", None): ModelSignature(
        "price", 4, (FeatureSpec("sqft", "numeric", "DOUBLE"),), _functions("price", 4, "PREDICT", "EMBED"),
        "regression", "DOUBLE", "DOUBLE",
    ),
    ("rating", None): _classifier("rating", 1, (FeatureSpec("text_len", "numeric", "BIGINT"),), "INTEGER", "BIGINT"),
    # an autoencoder: PREDICT gives its anomaly score as a DOUBLE, no target type to cast to
    ("fraud", None): ModelSignature(
        "fraud", 3, FRAUD_FEATURES, _functions("fraud", 3, "PREDICT", "EMBED", "ANOMALY_SCORE", "IS_ANOMALY"),
        "reconstruction", "DOUBLE",
    ),
    # a foreign ONNX file: what its layout maps, never an embedding
    ("onnxfile", None): ModelSignature(
        "onnxfile", 1, (FeatureSpec("x", "numeric", "DOUBLE"),), _functions("onnxfile", 1, "PREDICT"),
        "imported", "BIGINT", "BIGINT",
    ),
}  # fmt: skip


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


@pytest.mark.parametrize(
    "sql, words",
    [
        # a version trained before EMBED existed has no embedding output
        ("SELECT EMBED('churn:1', *) FROM t", ["EMBED needs a model trained by dbml with an embedding output",
                                               "model 'churn' (version 1) is a classification model",
                                               "use PREDICT or PREDICT_PROBA"]),
        ("SELECT embed(onnxfile, *) FROM t", ["EMBED needs a model trained by dbml", "imported files have none",
                                              "model 'onnxfile' (version 1) is an imported model: use PREDICT"]),
        ("SELECT ANOMALY_SCORE(price, *) FROM t", ["ANOMALY_SCORE needs an anomaly model (TRAIN MODEL ... USING autoencoder, "
                                                   "without TARGET); model 'price' (version 4) is a regression model",
                                                   "use PREDICT or EMBED"]),
        ("SELECT * FROM t WHERE IS_ANOMALY(churn, *)", ["IS_ANOMALY needs an anomaly model (TRAIN MODEL ... USING autoencoder, "
                                                        "without TARGET); model 'churn' (version 2) is a classification model",
                                                        "use PREDICT, PREDICT_PROBA or EMBED"]),
        ("SELECT PREDICT_PROBA(fraud, *) FROM t", ["PREDICT_PROBA needs a classification model; model 'fraud' (version 3) "
                                                   "is a reconstruction model: use PREDICT, EMBED, ANOMALY_SCORE or IS_ANOMALY"]),
    ],
)  # fmt: skip
def test_a_function_the_version_does_not_offer_is_refused(sql, words):
    with pytest.raises(FeatureError) as info:
        rewrite_predict(sql, resolve)
    for w in words:
        assert w in str(info.value)


def test_refusal_comes_before_the_feature_columns_are_read():
    # whatever the columns, the function itself is what is wrong
    with pytest.raises(FeatureError, match="PREDICT_PROBA needs a classification model.*use PREDICT"):
        rewrite_predict("SELECT PREDICT_PROBA(price, a, b, c) FROM t", resolve)


def test_feature_errors_name_the_function_called():
    with pytest.raises(FeatureError, match="ANOMALY_SCORE of model 'fraud' \\(version 3\\) needs its feature columns"):
        rewrite_predict("SELECT ANOMALY_SCORE(fraud) + ANOMALY_SCORE(fraud, ) FROM t", resolve)
    with pytest.raises(FeatureError, match="EMBED of model 'fraud' \\(version 3\\) got 3 column\\(s\\)"):
        rewrite_predict("SELECT EMBED(fraud, a + 1, b, c) FROM t", resolve)


def test_only_predict_is_cast_to_the_target_type():
    sig = ModelSignature("r", 1, (FeatureSpec("x", "numeric", "DOUBLE"),),
                         {"PREDICT": "dbml_predict__r__v1", "EMBED": "dbml_embed__r__v1"}, "classification", "BIGINT", "INTEGER")  # fmt: skip
    out = rewrite_predict("SELECT PREDICT(r, x), EMBED(r, x) FROM t", lambda ref: sig)
    assert out.startswith("SELECT CAST(dbml_predict__r__v1(") and ') AS INT) AS "PREDICT(r, x)", dbml_embed__r__v1(' in out


@pytest.mark.parametrize("name", ["embed", "EMBED", "anomaly_score", "is_anomaly", "predict", "predict_proba"])
def test_a_users_own_function_of_that_name_is_left_alone(name):
    # first argument no model reference: keep() decides, as for the user's predict macro
    sql = f"SELECT {name}(41, 1) AS v, {name}(t.a, 2) FROM t"
    assert rewrite_predict(sql, resolve, keep=lambda: True) == sql
    with pytest.raises(ModelNotFoundError, match=f"the first argument of {name.upper()} must be a model name"):
        rewrite_predict(sql, resolve, keep=lambda: False)
    # a name the resolver says is no model (the user's function takes a column first)
    mine = f"SELECT {name}(a, b) FROM t"
    assert rewrite_predict(mine, lambda ref: None if ref == "a" else resolve(ref)) == mine
    # one argument, a qualified name, a definition: DuckDB's, never looked at
    for duckdbs in [f"SELECT {name}(a) FROM t", f"SELECT main.{name}(a, b) FROM t",
                    f"CREATE MACRO {name}(a, b) AS a + b", f"SELECT * FROM pair AS {name}(p, q)",
                    f"WITH {name}(x, y) AS (SELECT 1, 2) SELECT * FROM {name}"]:  # fmt: skip
        assert rewrite_predict(duckdbs, resolve) == duckdbs
        assert split_statements(duckdbs)[0].kind == "sql"


def test_a_users_function_and_a_model_call_in_one_statement():
    out = rewrite_predict("SELECT embed(1, 2), EMBED(churn, *) FROM t", resolve, keep=lambda: True)
    assert out.startswith("SELECT embed(1, 2), dbml_embed__churn__v2(")


def test_every_function_makes_a_predict_statement_and_contains_predict():
    from dbml.outputs import FUNCTION_NAMES
    from dbml.rewrite import contains_predict

    for name in FUNCTION_NAMES:
        for sql in (f"SELECT {name}(m, *) FROM t", f"SELECT 1 FROM t WHERE {name.lower()} (m, a, b) > 0"):
            assert contains_predict(sql) and split_statements(sql)[0].kind == "predict", sql
        assert not contains_predict(f"SELECT '{name}(m, *)', x.{name}(m, *) FROM t -- {name}(m, *)")


def test_longer_names_are_not_read_as_shorter_ones():
    from dbml.script import mask, predict_calls

    sql = "SELECT PREDICT_PROBA(m, *).yes, predict_probability(m, *), embedding(m, *), is_anomaly_x(m, *) FROM t"
    assert [sql[s : e + 1] for s, e in predict_calls(mask(sql))] == ["PREDICT_PROBA(m, *)"]
