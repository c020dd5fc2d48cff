"""One model's whole life, in SQL alone: train, evaluate, deploy, score through the alias,
fine-tune, compare, roll back, explain, monitor drifted data, export, import elsewhere, audit."""

from __future__ import annotations

import json

import dbml


def test_the_life_of_a_model(tmp_path):
    con = dbml.connect(user="analyst")
    q = lambda sql: con.sql(sql).fetchall()  # noqa: E731
    con.sql(
        """
        CREATE TABLE customers AS
        SELECT i AS id, (i * 7919) % 100 AS tenure, ['basic', 'plus', 'pro'][1 + i % 3] AS plan,
               ((i * 104729) % 1000) / 10.0 AS spend,
               CASE WHEN tenure < 30 AND plan <> 'pro' THEN 'yes' ELSE 'no' END AS churned
        FROM range(600) r(i);
        CREATE TABLE holdout AS SELECT * FROM customers WHERE id % 5 = 0;
        CREATE TABLE recent AS SELECT * REPLACE (tenure + 60 AS tenure) FROM customers WHERE id % 5 = 1;
        """
    )
    # train: version 1, trained on customers
    v1 = q("TRAIN MODEL churn FROM (SELECT * EXCLUDE (id) FROM customers WHERE id % 5 <> 0) TARGET churned "
           "WITH (epochs = 15, progress = false)")[0]  # fmt: skip
    assert v1[:4] == ("churn", 1, "trained", "classification")
    assert q("SELECT model FROM dbml.model_versions WHERE list_contains(source_tables, 'customers')") == [("churn",)]

    # evaluate on held-out rows
    ev = con.sql("EVALUATE MODEL churn ON (SELECT * FROM holdout)")
    m1 = dict(zip(ev.columns, ev.fetchall()[0]))
    assert m1["rows"] == 120 and m1["accuracy"] > 0.8 and m1["roc_auc"] > 0.85

    # deploy, and score through the alias
    q("ALTER MODEL churn SET ALIAS production = 1")
    assert q("SELECT count(*) FROM holdout WHERE PREDICT('churn@production', *) = churned")[0][0] > 96

    # fine-tune into version 2 and compare on the same rows
    v2 = q("TRAIN MODEL churn FROM (SELECT * EXCLUDE (id) FROM customers WHERE id % 5 <> 0) TARGET churned "
           "WITH (warm_start = true, epochs = 30, progress = false)")[0]  # fmt: skip
    assert v2[1] == 2
    assert q("SELECT parent_version FROM dbml.model_versions WHERE version = 2") == [(1,)]
    ev2 = con.sql("EVALUATE MODEL churn VERSION 2 ON holdout")
    m2 = dict(zip(ev2.columns, ev2.fetchall()[0]))
    assert m2["log_loss"] < m1["log_loss"]

    # promote version 2, then roll back to 1
    q("ALTER MODEL churn SET ALIAS production = 2")
    assert q("SELECT list(PREDICT('churn@production', *) ORDER BY id) FROM holdout") == q(
        "SELECT list(PREDICT('churn:2', *) ORDER BY id) FROM holdout"
    )
    assert q("ALTER MODEL churn SET ALIAS production = 1")[0] == ("churn", "production", 1, 2)

    # explain: tenure and plan matter, spend does not
    ranking = q("EXPLAIN MODEL churn VERSION 2 ON holdout WITH (repeats = 3)")
    order = [r[0] for r in ranking]
    assert set(order[:2]) == {"tenure", "plan"} and order[-1] == "spend"

    # monitor: recent customers have drifted in tenure
    drift = con.sql("MONITOR MODEL churn ON recent")
    rows = {r["feature"]: r for r in (dict(zip(drift.columns, row)) for row in drift.fetchall())}
    assert rows["tenure"]["drift"] and not rows["spend"]["drift"]
    assert q("SELECT count(*) FROM dbml.monitor_runs WHERE model = 'churn'") == [(1,)]

    # export, and import into another database
    path = tmp_path / "churn.onnx"
    q(f"EXPORT MODEL churn VERSION 2 TO '{path}'")
    other = dbml.connect(str(tmp_path / "elsewhere.duckdb"), user="ops")
    assert other.sql(f"IMPORT MODEL churn FROM '{path}'").fetchall()[0][:2] == ("churn", 1)
    imported = other.sql("SELECT source_tables, parent_version, metrics FROM dbml.model_versions").fetchall()[0]
    assert imported[0] == ["customers"] and json.loads(imported[2])["accuracy"] == v2[8]["accuracy"]
    scored_here = q("SELECT list(PREDICT_PROBA('churn:2', *).yes ORDER BY id) FROM holdout")[0][0]
    other.duckdb.from_arrow(con.sql("SELECT * FROM holdout").to_arrow_table()).create("holdout")
    assert other.sql("SELECT list(PREDICT_PROBA(churn, *).yes ORDER BY id) FROM holdout").fetchall()[0][0] == scored_here

    # the audit log tells the story
    story = q("SELECT action, version, who FROM dbml.audit_log ORDER BY id")
    assert [a for a, _, _ in story] == [
        "TRAIN", "EVALUATE", "ALTER", "TRAIN", "EVALUATE", "ALTER", "ALTER", "MONITOR", "EXPORT",
    ]  # fmt: skip
    assert {w for _, _, w in story} == {"analyst"}
    assert other.sql("SELECT action, who FROM dbml.audit_log").fetchall() == [("IMPORT", "ops")]
