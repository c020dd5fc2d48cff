"""Bad training and scoring inputs end as dbml errors, never raw ones or silent wrong answers.

The rules (dbml.features.feature_sql, used by TRAIN and by every rewritten PREDICT):
NULL and NaN are missing and imputed; an infinite value, a number outside FLOAT's range
or an infinite date stops the query with a dbml message naming the column. A NaN target
is missing like a NULL one (the row is skipped); an infinite target is refused. Reserved
column names, class counts and network sizes are checked before training.
"""

from __future__ import annotations

import math
import re

import duckdb
import pytest
from conftest import registry_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dbml
from dbml.errors import DbmlError, FeatureError, TargetError

O = "epochs = 1, progress = false, hidden = [4]"


def _rows(values: list[str], sql_type: str = "DOUBLE") -> str:
    """40 rows: x runs 0..39 with some rows replaced by ``values``; y is a yes/no label of x."""
    cases = " ".join(f"WHEN i = {3 + 7 * k} THEN {v}::{sql_type}" for k, v in enumerate(values))
    x = f"CASE {cases} ELSE i::{sql_type} END" if values else f"i::{sql_type}"
    return (
        f"SELECT {x} AS x, (i % 5)::DOUBLE AS z, "
        "CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END AS y FROM range(40) r(i)"
    )


def _scoring_error(con, sql: str) -> str:
    """The message a user gets from a failing scoring query (a dbml error, or DuckDB's
    wrapping of the error() the encoding raised)."""
    with pytest.raises((DbmlError, duckdb.Error)) as info:
        con.sql(sql).fetchall()
    return str(info.value)


@pytest.fixture
def model(con):
    con.sql(f"CREATE TABLE t AS {_rows([])}")
    con.sql(f"TRAIN MODEL m FROM t TARGET y WITH ({O})")
    return con


@pytest.mark.parametrize("value", ["'inf'", "'-inf'", "1e300", "-1e39"])
def test_infinite_and_out_of_range_values_are_a_dbml_error_at_predict(model, value):
    message = _scoring_error(model, f"SELECT PREDICT_PROBA(m, *) FROM (SELECT {value}::DOUBLE AS x, 1.0 AS z)")
    assert "dbml: column 'x'" in message and "not a finite FLOAT" in message and "isfinite" in message
    # the same rule through a ? parameter (evaluated once, bound once) and inside an expression
    message = _scoring_error(model, f"SELECT PREDICT(m, x * 1 AS x, z) FROM (SELECT {value}::DOUBLE AS x, 1.0 AS z)")
    assert "dbml: column 'x'" in message
    with pytest.raises((DbmlError, duckdb.Error), match="dbml: column 'x'"):
        model.execute("SELECT PREDICT(m, ? AS x, ? AS z)", [float(value.strip("'")), 1.0]).fetchall()


def test_nan_and_null_impute_alike_at_predict(model):
    rows = model.sql(
        "SELECT PREDICT_PROBA(m, *).a FROM (VALUES (NULL::DOUBLE, 1.0), ('nan'::DOUBLE, 1.0), (NULL, 1.0)) v(x, z)"
    ).fetchall()
    assert rows[0] == rows[1] == rows[2] and all(0 < r[0] < 1 for r in rows)
    assert model.execute("SELECT PREDICT_PROBA(m, ? AS x, ? AS z).a", [float("nan"), 1.0]).fetchall() == rows[:1]


@pytest.mark.parametrize(
    "value, shown",
    [("'inf'", "inf"), ("'-inf'", "-inf"), ("1e300", "1e+300"), ("3.5e38", "3.5e+38")],
)
def test_infinite_and_out_of_range_values_are_refused_at_training(con, value, shown):
    before = registry_counts(con)
    with pytest.raises(FeatureError, match=re.escape(f"column 'x' of model 'e' has the value {shown}")):
        con.sql(f"TRAIN MODEL e FROM ({_rows([value])}) TARGET y WITH ({O})")
    assert registry_counts(con) == before


def test_nan_features_are_missing_at_training(con):
    src = _rows(["NULL", "'nan'", "'nan'"])
    con.sql(f"TRAIN MODEL e FROM ({src}) TARGET y WITH ({O}, validation = 0)")
    profile = con.registry.get("e")["profile"]["x"]
    assert profile["nulls"] == 3 and math.isfinite(profile["mean"]) and math.isfinite(profile["std"])
    same = con.sql("SELECT PREDICT_PROBA(e, *).a FROM (VALUES (NULL::DOUBLE, 1.0), ('nan', 1.0)) v(x, z)").fetchall()
    assert same[0] == same[1]


@pytest.mark.parametrize(
    "sql_type, value",
    [("FLOAT", "'inf'"), ("UHUGEINT", "340282366920938463463374607431768211455"), ("DATE", "'infinity'"),
     ("TIMESTAMP", "'-infinity'")],
)  # fmt: skip
def test_the_same_rule_for_every_type_that_can_hold_such_values(con, sql_type, value):
    usual = f"(DATE '2024-01-01' + i::INTEGER)::{sql_type}" if sql_type in ("DATE", "TIMESTAMP") else f"i::{sql_type}"
    src = f"SELECT CASE WHEN i = 3 THEN {value}::{sql_type} ELSE {usual} END AS x, i % 2 = 0 AS y FROM range(40) r(i)"
    with pytest.raises(FeatureError, match="column 'x' of model 'e' has the value"):
        con.sql(f"TRAIN MODEL e FROM ({src}) TARGET y WITH ({O})")
    con.sql(f"TRAIN MODEL e FROM ({src.replace(f'WHEN i = 3 THEN {value}', 'WHEN i = 3 THEN NULL')}) TARGET y WITH ({O})")
    message = _scoring_error(con, f"SELECT PREDICT(e, *) FROM ({src})")
    assert "dbml: column 'x'" in message


def test_nan_targets_are_skipped_like_null_ones_and_infinite_ones_refused(con):
    src = "SELECT i AS x, CASE WHEN i % 10 = 0 THEN 'nan'::DOUBLE WHEN i % 10 = 1 THEN NULL ELSE i * 1.5 END AS y FROM range(40) r(i)"
    assert con.sql(f"TRAIN MODEL r FROM ({src}) TARGET y WITH ({O})").fetchall()[0][5] == 32
    before = registry_counts(con)
    with pytest.raises(TargetError, match="target column 'y' of model 'r2' has 4 infinite or out-of-FLOAT-range value.s. .such as inf"):
        con.sql(f"TRAIN MODEL r2 FROM ({src.replace(chr(39) + 'nan', chr(39) + 'inf')}) TARGET y WITH ({O})")
    assert registry_counts(con) == before


@pytest.mark.parametrize(
    "column, task_target",
    [("label", "i % 2 = 0"), ("probabilities", "i % 2 = 0"), ("value", "i * 1.5"), ("dbml/x", "i % 2 = 0"),
     ("__dbml_target__", "i * 1.5"), ("DBML/Q", "i * 1.5")],
)  # fmt: skip
def test_reserved_column_names_are_refused_before_training_with_a_fix_that_runs(con, column, task_target, monkeypatch):
    from dbml.training import pipeline

    monkeypatch.setattr(pipeline, "fit_model", lambda *a, **k: pytest.fail("training started"))
    quoted = '"' + column + '"'
    con.sql(f"CREATE TABLE src AS SELECT i AS x, i % 3 AS {quoted}, {task_target} AS y FROM range(40) r(i)")
    before = registry_counts(con)
    with pytest.raises(FeatureError, match=f"feature column '{re.escape(column)}' of model 'e' has a reserved name") as info:
        con.sql(f"TRAIN MODEL e FROM src TARGET y WITH ({O})")
    assert registry_counts(con) == before
    fix = re.search(r"for example FROM (.*)$", str(info.value)).group(1)
    assert fix.startswith("(SELECT * RENAME (")
    monkeypatch.undo()
    assert con.sql(f"TRAIN MODEL e FROM {fix} TARGET y WITH ({O})").fetchall()[0][2] == "trained"


def test_a_fix_for_a_query_source_runs_too(con):
    with pytest.raises(FeatureError) as info:
        con.sql(f"TRAIN MODEL e FROM (SELECT i AS x, i % 2 AS label, i % 2 = 0 AS y FROM range(40) r(i)) TARGET y WITH ({O})")
    fix = re.search(r"for example FROM (.*)$", str(info.value)).group(1)
    assert con.sql(f"TRAIN MODEL e FROM {fix} TARGET y WITH ({O})").fetchall()[0][2] == "trained"


def test_class_labels_beyond_bigint_are_refused_before_reading_rows(con):
    src = ("SELECT i AS x, CASE WHEN i % 2 = 0 THEN 170141183460469231731687303715884105727::HUGEINT ELSE 1 END AS y "
           "FROM range(40) r(i)")  # fmt: skip
    with pytest.raises(TargetError, match="target column 'y' of model 'h' has class labels beyond the BIGINT range"):
        con.sql(f"TRAIN MODEL h FROM ({src}) TARGET y WITH ({O})")
    # a HUGEINT class target within range trains and predicts its labels
    con.sql(f"TRAIN MODEL h FROM (SELECT i AS x, (i % 3)::HUGEINT * 1000000000000 AS y FROM range(40) r(i)) TARGET y WITH ({O})")
    assert {r[0] for r in con.sql("SELECT PREDICT(h, x) FROM range(40) r(x)").fetchall()} <= {0, 10**12, 2 * 10**12}


def test_too_many_classes_are_refused_before_training_naming_the_option(con, monkeypatch):
    from dbml.training import pipeline

    monkeypatch.setattr(pipeline, "fit_model", lambda *a, **k: pytest.fail("training started"))
    src = "SELECT i % 7 AS x, 'c' || i AS y FROM range(1500) r(i)"
    with pytest.raises(TargetError, match=r"target column 'y' of model 'k' has 1,500 distinct values.*max_labels = 1,000"):
        con.sql(f"TRAIN MODEL k FROM ({src}) TARGET y WITH ({O})")
    with pytest.raises(TargetError, match="max_labels = 20"):
        con.sql(f"TRAIN MODEL k FROM ({src}) TARGET y WITH ({O}, max_labels = 20)")
    with pytest.raises(TargetError, match="1,500 classes and 1,500 held-out rows"):
        monkeypatch.setattr(pipeline, "MEMORY_LIMIT", 1_000_000)
        con.sql(f"TRAIN MODEL k FROM ({src}) TARGET y WITH ({O}, max_labels = 2000)")


def test_wide_inputs_are_refused_before_training_and_categories_are_embedded(con, monkeypatch):
    from dbml.training import pipeline
    from dbml.kinds import KINDS

    spec = dbml.features.FeatureSpec("c", "category", "VARCHAR")
    # a category column is one embedding table: memory linear in its vocabulary, width bounded
    huge = {"c": {"vocabulary": [str(i) for i in range(100_000)]}}
    encoder = KINDS["category"].encoder([spec], huge, {})
    assert sum(p.numel() for p in encoder.parameters()) == 100_001 * encoder.shape[0] and encoder.shape[0] <= 64
    assert sum(b.numel() for b in encoder.buffers()) < 200_000
    monkeypatch.setattr(pipeline, "fit_model", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(pipeline, "MEMORY_LIMIT", 4096 * 10 * 4)
    src = "SELECT 'k' || i AS c, i AS a, i * 2 AS b, i % 2 = 0 AS y FROM range(3000) r(i)"
    with pytest.raises(FeatureError, match=r"the features of model 'w' make \d+ network inputs.*max_categories \(now 5,000\)"):
        con.sql(f"TRAIN MODEL w FROM ({src}) TARGET y WITH ({O}, max_categories = 5000)")


# -- property: ordinary bad input gives dbml errors only --------------------------------

_VALUES = {
    "INTEGER": ["0", "1", "-1", "2147483647", "-2147483648"],
    "BIGINT": ["9223372036854775807", "-9223372036854775808", "3"],
    "HUGEINT": ["170141183460469231731687303715884105727", "-170141183460469231731687303715884105727", "2"],
    "UHUGEINT": ["340282366920938463463374607431768211455", "0", "5"],
    "UBIGINT": ["18446744073709551615", "1"],
    "DOUBLE": ["'nan'", "'inf'", "'-inf'", "1e300", "-1e300", "1.5", "0", "5e-324", "3.4e38", "-3.4e38"],
    "FLOAT": ["'nan'", "'inf'", "3.4e38", "1.5", "-0.0"],
    "DECIMAL(38,0)": ["99999999999999999999999999999999999999", "-99999999999999999999999999999999999999", "7"],
    "DECIMAL(18,4)": ["12345678901234.5678", "0.0001"],
    "VARCHAR": ["''", "'a'", "'b'", "repeat('x', 100000)", "'nan'", "'é'", "''''", "'label'"],
    "BOOLEAN": ["true", "false"],
    "DATE": ["'2024-01-01'", "'infinity'", "'-infinity'", "'5877642-06-25'"],
    "TIMESTAMP": ["'2024-01-01 10:00:00'", "'infinity'", "'294246-01-01'"],
    "TIMESTAMPTZ": ["'2024-01-01 10:00:00+00'", "'infinity'"],
    "INTERVAL": ["INTERVAL 1 DAY", "INTERVAL 3 MONTH"],
    "INTEGER[]": ["[1, 2]", "[]"],
    "STRUCT(a INTEGER)": ["{'a': 1}"],
    "UUID": ["'00000000-0000-0000-0000-000000000001'"],
    "BLOB": ["'\\x00'::BLOB"],
    "TIME": ["'10:00:00'"],
}
_TARGET_TYPES = ["INTEGER", "BIGINT", "HUGEINT", "UHUGEINT", "UBIGINT", "DOUBLE", "FLOAT", "DECIMAL(38,0)", "VARCHAR",
                 "BOOLEAN", "DATE", "INTERVAL"]  # fmt: skip
_NAMES = ["a", "b", "A b", 'q"t', "é", "x" * 300, "a;b", "c'd"]
_RESERVED = ["label", "value", "dbml/x", "probabilities", "__dbml_target__"]


_ORDINARY = {"DATE": "(DATE '2024-01-01' + i::INTEGER)", "TIMESTAMP": "(DATE '2024-01-01' + i::INTEGER)",
             "TIMESTAMPTZ": "(DATE '2024-01-01' + i::INTEGER)", "VARCHAR": "('c' || (i % 3))", "BOOLEAN": "(i % 2 = 0)"}  # fmt: skip
_ODD_TYPES = {"INTERVAL", "INTEGER[]", "STRUCT(a INTEGER)", "UUID", "BLOB", "TIME"}


@st.composite
def tables(draw):
    n_features = draw(st.integers(1, 3))
    name = st.sampled_from(_NAMES * 6 + _RESERVED)  # a reserved name now and then
    names = draw(st.lists(name, min_size=n_features, max_size=n_features, unique_by=str.lower))
    usual = ["INTEGER", "DOUBLE", "FLOAT", "VARCHAR", "BOOLEAN", "DATE", "DECIMAL(38,0)", "HUGEINT", "UHUGEINT", "TIMESTAMP"]
    types = [draw(st.sampled_from(usual * 3 + sorted(_VALUES))) for _ in names]
    target_type = draw(st.sampled_from(["INTEGER", "VARCHAR", "DOUBLE", "BOOLEAN"] * 3 + _TARGET_TYPES))
    n_rows = draw(st.integers(2, 16))
    columns = []
    for name, sql_type in zip([*names, "y"], [*types, target_type]):
        pool = st.sampled_from([*_VALUES[sql_type], "NULL"])  # odd values, and ordinary ones (i) most of the time
        ordinary = st.just(_ORDINARY.get(sql_type, "(i % 3)")) if sql_type not in _ODD_TYPES else pool
        odd = draw(st.sampled_from([0.0, 0.1, 0.3, 1.0]))  # the share of odd values in this column
        cells = [draw(pool) if draw(st.floats(0, 1)) < odd else draw(ordinary) for _ in range(n_rows)]
        quoted = '"' + name.replace('"', '""') + '"'
        columns.append((quoted, sql_type, cells))
    task = draw(st.sampled_from(["auto", "auto", "classification", "regression"]))
    return columns, n_rows, task


def _raw(err: BaseException) -> bool:
    """True for an exception that is not dbml's own (DuckDB's wrapping of dbml text counts as dbml's)."""
    return not isinstance(err, DbmlError) and "dbml: " not in str(err)


def train_and_score(case) -> str:
    """TRAIN on the generated table, then PREDICT on it; returns what happened, and fails
    on any exception that is not dbml's (or on a failed TRAIN that wrote to the registry)."""
    columns, n_rows, task = case
    selects = ", ".join(
        f"CASE {' '.join(f'WHEN i = {r} THEN CAST({cells[r]} AS {t})' for r in range(n_rows))} END AS {q}"
        for q, t, cells in columns
    )
    with dbml.connect() as con:
        con.duckdb.execute(f"CREATE TABLE src AS SELECT {selects} FROM range({n_rows}) r(i)")
        before = registry_counts(con)
        try:
            con.sql(f"TRAIN MODEL p FROM src TARGET y WITH ({O}, task = '{task}')").fetchall()
        except Exception as err:  # noqa: BLE001 - the property: only dbml errors
            assert not _raw(err), f"raw {type(err).__name__} at TRAIN: {err}"
            assert registry_counts(con) == before
            return f"train: {type(err).__name__}: {str(err)[6:80]}"
        try:
            con.sql("SELECT PREDICT(p, *) FROM src").fetchall()
        except Exception as err:  # noqa: BLE001
            assert not _raw(err), f"raw {type(err).__name__} at PREDICT: {err}"
            return f"predict: {type(err).__name__}"
        return "trained and scored"


@settings(max_examples=90, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(tables())
def test_training_and_scoring_raise_only_dbml_errors(case):
    train_and_score(case)
