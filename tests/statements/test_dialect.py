"""The dbml dialect parses the ML statements and reports syntax errors precisely."""

from __future__ import annotations

import pytest
from sqlglot import exp

from dbml.dialect import (
    PREDICT_FUNCTIONS, DescribeModel, Dbml, DropModel, ScoringFunction, ShowModels, TrainModel, option_value,
    parse_statement,
)  # fmt: skip
from dbml.errors import DbmlSyntaxError, OptionError
from dbml.outputs import FUNCTION_NAMES


def _options(node: TrainModel) -> dict:
    return {o.this.name: option_value(o.this.name, o.expression) for o in node.args["options"]}


def test_train_model_full_form():
    node = parse_statement(
        "TRAIN MODEL IF NOT EXISTS churn USING mlp FROM customers TARGET churned "
        "WITH (epochs = 30, hidden = [64, 32], lr = 1e-3, validation = 0.2, seed = 7, "
        "device = 'auto', progress = false, weight_decay = -0.0)"
    )
    assert isinstance(node, TrainModel)
    assert node.this.name == "churn" and node.args["exists"] is True
    assert node.args["using"].name == "mlp"
    assert isinstance(node.args["source"], exp.Table) and node.args["source"].name == "customers"
    assert [t.name for t in node.args["targets"]] == ["churned"]
    assert _options(node) == {
        "epochs": 30, "hidden": [64, 32], "lr": 1e-3, "validation": 0.2, "seed": 7,
        "device": "auto", "progress": False, "weight_decay": -0.0,
    }  # fmt: skip


def test_train_model_sources():
    node = parse_statement("TRAIN MODEL m FROM 'data/rows.parquet' TARGET y")
    assert isinstance(node.args["source"], exp.Literal) and node.args["source"].this == "data/rows.parquet"
    node = parse_statement("TRAIN MODEL m FROM main.customers TARGET y")
    assert node.args["source"].db == "main"
    text = "SELECT * EXCLUDE (id) FROM t WHERE x > 1"
    node = parse_statement(f"TRAIN MODEL m FROM ({text}) TARGET y")
    assert isinstance(node.args["source"], exp.Subquery)
    assert node.args["source_sql"] == text


def test_train_model_round_trips():
    sql = "TRAIN MODEL m USING mlp FROM (SELECT a, b FROM t) TARGET b WITH (epochs = 3)"
    assert parse_statement(sql).sql(dialect=parse_statement.__globals__["Dbml"]) == sql


def test_other_statements():
    assert isinstance(parse_statement("SHOW MODELS"), ShowModels)
    node = parse_statement("DESCRIBE MODEL churn")
    assert isinstance(node, DescribeModel) and node.this.name == "churn"
    node = parse_statement("DROP MODEL IF EXISTS churn VERSION 2")
    assert isinstance(node, DropModel) and node.args["exists"] and node.args["version"].name == "2"


@pytest.mark.parametrize(
    "sql, token, col",
    [
        ("TRAIN MODEL m FORM t TARGET y", "FORM", 15),
        ("TRAIN MODEL m FROM t TARGET y WITH (epochs 3)", "3", 44),
        ("DROP MODEL m VERSION two", "two", 22),
        ("TRAIN MODEL m FROM t TARGET y extra", "extra", 31),
    ],
)
def test_syntax_errors_name_token_and_position(sql, token, col):
    with pytest.raises(DbmlSyntaxError) as info:
        parse_statement(sql)
    assert info.value.token == token and info.value.line == 1 and info.value.col == col
    assert f"near '{token}'" in str(info.value) and "line 1" in str(info.value)
    assert str(info.value).startswith("dbml: syntax error")


def test_option_value_refuses_expressions():
    node = parse_statement("TRAIN MODEL m FROM t TARGET y WITH (epochs = now())")
    with pytest.raises(OptionError, match="option 'epochs'"):
        _options(node)


def test_one_expression_class_per_scoring_function():
    assert tuple(PREDICT_FUNCTIONS) == FUNCTION_NAMES
    from dbml.dialect import AnomalyScore, Embed, IsAnomaly, Predict, PredictProba

    assert [Predict, PredictProba, Embed, AnomalyScore, IsAnomaly] == list(PREDICT_FUNCTIONS.values())
    assert len({cls.key for cls in PREDICT_FUNCTIONS.values()}) == len(FUNCTION_NAMES)
    assert all(issubclass(cls, ScoringFunction) for cls in PREDICT_FUNCTIONS.values())


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_each_scoring_function_parses_and_regenerates(name):
    cls = PREDICT_FUNCTIONS[name]
    sql = (
        f"SELECT {name.lower()}(churn, *) AS a, {name}('churn:2', c.*), {name}(m, x + 1 AS age, plan) "
        f"FROM t AS c WHERE {name}(m, *) IS NOT NULL"
    )
    tree = parse_statement(sql)
    assert len(list(tree.find_all(cls))) == 4 and all(type(n) is cls for n in tree.find_all(ScoringFunction))
    calls = [tree.expressions[0].this, *tree.expressions[1:]]
    assert all(type(n) is cls for n in calls)
    assert calls[0].this.name == "churn" and isinstance(calls[0].expressions[0], exp.Star)
    assert calls[1].this.is_string and calls[1].this.this == "churn:2"
    aliased = calls[2].expressions[0]  # x + 1 AS age keeps the feature name it stands for
    assert isinstance(aliased, exp.PropertyEQ) and aliased.this.name == "age"
    assert isinstance(aliased.expression, exp.Add)
    out = tree.sql(dialect=Dbml)
    assert out == (
        f"SELECT {name}(churn, *) AS a, {name}('churn:2', c.*), {name}(m, age := x + 1, plan) "
        f"FROM t AS c WHERE NOT {name}(m, *) IS NULL"
    )
    assert parse_statement(out) == tree


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_a_scoring_function_without_arguments_is_a_syntax_error(name):
    with pytest.raises(DbmlSyntaxError, match=f"{name} needs a model as its first argument"):
        parse_statement(f"SELECT {name}() FROM t")


def test_forecast_model_parses_and_regenerates():
    from dbml.dialect import ForecastModel

    node = parse_statement("FORECAST MODEL demand VERSION 2 HORIZON 14 FROM (SELECT * FROM sales WHERE store = 1) WITH (confidence = 0.8)")
    assert isinstance(node, ForecastModel)
    assert (node.this.name, node.args["version"].name, node.args["horizon"].name) == ("demand", "2", "14")
    assert node.args["source_sql"] == "SELECT * FROM sales WHERE store = 1"
    assert node.sql(dialect=Dbml) == (  # the options print too (they were dropped before the statements table)
        "FORECAST MODEL demand VERSION 2 HORIZON 14 FROM (SELECT * FROM sales WHERE store = 1) WITH (confidence = 0.8)"
    )
    assert isinstance(parse_statement("FORECAST MODEL demand HORIZON 3"), ForecastModel)
    for bad, words in [("FORECAST MODEL demand", "HORIZON"), ("FORECAST MODEL demand HORIZON 1.5", "whole number"),
                       ("FORECAST MODEL demand HORIZON 3 extra", "Unexpected")]:  # fmt: skip
        with pytest.raises(DbmlSyntaxError, match=words):
            parse_statement(bad)
