"""Cases found in review: each once gave a wrong answer, a raw traceback or lost state."""

from __future__ import annotations

import pytest
from conftest import registry_counts

import dbml
from dbml.errors import DbmlSyntaxError, FeatureError, OptionError, TargetError

O = "epochs = 2, progress = false"


@pytest.fixture
def t(con):
    con.sql("CREATE TABLE t AS SELECT i AS x, i * 2.0 AS z, ['a', 'b', 'c'][i % 3 + 1] AS y FROM range(100) r(i)")
    return con


def test_udf_names_of_two_models_never_collide(t):
    t.sql(f"TRAIN MODEL x FROM t TARGET y WITH ({O})")
    t.sql(f"TRAIN MODEL proba_x FROM (SELECT x, z, x + z AS v FROM t) TARGET v WITH ({O})")
    t.sql("SELECT PREDICT(proba_x, *) FROM t").fetchall()
    probs = t.sql("SELECT PREDICT_PROBA(x, *) FROM t LIMIT 2").fetchall()
    assert all(set(p[0]) == {"a", "b", "c"} for p in probs)


def test_predict_works_after_a_rolled_back_transaction(t):
    t.sql(f"TRAIN MODEL m FROM t TARGET y WITH ({O})")
    t.sql("BEGIN")
    t.sql("SELECT PREDICT(m, *) FROM t").fetchall()
    t.sql("ROLLBACK")
    assert len(t.sql("SELECT PREDICT(m, *), PREDICT_PROBA(m, *) FROM t").fetchall()) == 100


def test_positional_parameters_are_never_reordered(t):
    t.sql(f"TRAIN MODEL reg FROM (SELECT x, z, 3 * x AS r FROM t) TARGET r WITH ({O})")
    in_order = t.execute("SELECT PREDICT(reg, ? AS x, ? AS z)", [90, 10.0]).fetchall()
    named = t.execute("SELECT PREDICT(reg, $z AS z, $x AS x)", {"x": 90, "z": 10.0}).fetchall()
    assert in_order == named
    with pytest.raises(FeatureError, match="bind by position"):
        t.execute("SELECT PREDICT(reg, ? AS z, ? AS x)", [10.0, 90])


def test_an_earlier_result_in_a_script_is_read_before_later_statements(con):
    con.sql("CREATE TABLE t5 AS SELECT range AS x FROM range(5)")
    assert con.sql("SELECT count(*) FROM t5; DELETE FROM t5 WHERE x < 3").fetchall() == [(5,)]
    assert con.sql("SELECT count(*) FROM t5").fetchall() == [(2,)]


def test_labels_that_differ_only_in_case_are_refused(con):
    con.sql("CREATE TABLE c AS SELECT i AS x, CASE WHEN i % 2 = 0 THEN 'Yes' ELSE 'yes' END AS y FROM range(40) r(i)")
    with pytest.raises(TargetError, match="differ only in case"):
        con.sql(f"TRAIN MODEL c FROM c TARGET y WITH ({O})")


def test_batch_size_one_trains(t):
    t.sql(f"TRAIN MODEL b FROM t TARGET y WITH ({O}, batch_size = 1)")
    losses = [r[0] for r in t.sql("SELECT train_loss FROM dbml.training_log").fetchall()]
    assert all(loss > 0 for loss in losses)


def test_scoring_values_outside_the_training_type(con):
    con.sql("CREATE TABLE s AS SELECT (i % 100)::TINYINT AS d, i % 2 = 0 AS y FROM range(100) r(i)")
    con.sql(f"TRAIN MODEL s FROM s TARGET y WITH ({O})")
    rows = con.sql("SELECT PREDICT(s, *) FROM (VALUES (1000), (1.7)) v(d)").fetchall()
    assert len(rows) == 2


def test_trailing_comment_in_a_source_query(t):
    t.sql(f"TRAIN MODEL tc FROM (SELECT * FROM t -- a note\n) TARGET y WITH ({O})")
    t.train("tc", "SELECT * FROM t -- a note", target="y", epochs=1, progress=False)
    assert t.sql("SELECT max(version) FROM dbml.model_versions").fetchall() == [(2,)]


@pytest.mark.parametrize(
    "sql, error, words",
    [
        ("TRAIN MODEL e FROM (SELECT i x, i * 1.5 y FROM range(10) r(i)) TARGET y WITH (validation = 0.99)",
         OptionError, "leaves no training rows"),
        ("TRAIN MODEL e FROM (SELECT i x, (i % 3)::HUGEINT y FROM range(30) r(i)) TARGET y WITH (epochs = 1, progress = false)",
         None, None),
        ("TRAIN MODEL e FROM (SELECT i x, (i % 2)::UBIGINT + 18446744073709551610 y FROM range(30) r(i)) TARGET y",
         TargetError, "beyond the BIGINT range"),
        ("TRAIN MODEL e FROM (SELECT i x, i % 2 = 0 AS __dbml_target__, i % 2 AS y FROM range(30) r(i)) TARGET y",
         FeatureError, "reserved"),
        ("TRAIN MODEL e FROM (SELECT i x, i % 2 = 0 AS y FROM range(30) r(i)) TARGET y WITH (hidden = [65536, 65536])",
         OptionError, "parameters"),
        ("TRAIN MODEL e FROM (SELECT i x, CASE WHEN i = 5 THEN 'inf'::DOUBLE ELSE i END y FROM range(30) r(i)) TARGET y",
         TargetError, "infinite or out-of-FLOAT-range"),  # a NaN target is missing, like NULL: see tests/reliability
        ("DROP MODEL m VERSION 1.5", DbmlSyntaxError, "whole version number"),
        ("TRAIN MODEL m FROM", DbmlSyntaxError, "Expected a table"),
    ],
)
def test_more_bad_input(con, sql, error, words):
    before = registry_counts(con)
    if error is None:
        assert con.sql(sql).fetchall()[0][2] == "trained"
        assert con.sql("SELECT typeof(PREDICT(e, *)) FROM (SELECT 1 AS x)").fetchall() == [("HUGEINT",)]
        return
    with pytest.raises(error, match=words):
        con.sql(sql)
    assert registry_counts(con) == before


def test_python_api_type_errors(t):
    with pytest.raises(TargetError, match="target must be a column name"):
        t.train("z", "t", target=5)
    with pytest.raises(dbml.DbmlError, match="SQL text must be a string"):
        t.sql(None)
    with pytest.raises(OptionError, match="given twice"):
        t.train("z", "t", target="y", epochs=2, Epochs=3)


def test_default_alias_and_tables_named_model(t):
    t.sql(f"TRAIN MODEL m FROM t TARGET y WITH ({O})")
    assert len(t.sql("SELECT PREDICT('m@default', *) FROM t").fetchall()) == 100
    t.sql("CREATE TABLE model AS SELECT 1 AS a")
    assert [r[0] for r in t.sql("DESCRIBE model").fetchall()] == ["a"]


def test_insert_returning_gives_rows(con):
    con.sql("CREATE TABLE r(a INT)")
    assert con.sql("INSERT INTO r VALUES (1), (2) RETURNING a").fetchall() == [(1,), (2,)]
