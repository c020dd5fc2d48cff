"""The plug-in seam end to end, from this one file: a column kind, a task and a statement
registered through dbml's public registration (nothing inside dbml/ names them), then a
model trained on the new kind with the new task, scored with PREDICT in SQL and through
dbml.score, EVALUATEd with the task's own metrics, DESCRIBEd (with the kind's rule), and
the new statement run from SQL, inside a query and through its Python twin."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import dbml
from dbml import kinds, statements, tasks
from dbml.kinds import Claim
from dbml.kinds.scalar import NumericKind
from dbml.options import Option
from dbml.tasks import Evaluation
from dbml.tasks.regression import Regression

# -- a kind: a VARCHAR column named in WITH (words = [...]) read as its number of words ------


class Words(NumericKind):
    """Text read as how many words it has (split on spaces; NULL stays missing)."""

    name = "words_plugin_kind"
    priority = 5  # above category, which claims every VARCHAR
    options = (Option("words", "str_list", None, "VARCHAR columns read as their number of words"),)
    arrow_needs = "text"

    def claim(self, column):
        named = [c.lower() for c in column.options.get("words") or []]
        if column.sql_type == "VARCHAR" and column.name.lower() in named:
            return Claim("VARCHAR", "option words")
        return None

    def valid_type(self, sql_type):
        return sql_type == "VARCHAR"

    def sql(self, feature, column, model):
        from sqlglot import exp

        text = exp.func("trim", exp.cast(column, exp.DataType.build("VARCHAR")))
        return exp.cast(exp.func("len", exp.func("string_split", text, exp.Literal.string(" "))), exp.DataType.build("FLOAT"))

    def takes(self, feature, arrow_type):
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)

    def arrow(self, feature, values, model, timezone="UTC"):
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        words = pc.list_value_length(pc.split_pattern(pc.utf8_trim_whitespace(values.cast(pa.string())), " "))
        return pc.cast(words, pa.float32())


# -- a task: a regression EVALUATEd by its own metrics --------------------------------------


class WithinOne(Regression):
    """A regression whose EVALUATE says how many predictions land within 1 of the target."""

    name = "within_one_plugin_task"
    headline = "mae"
    pictures = ()

    def claims(self, target_type, n_distinct, options):
        return False  # only when asked: WITH (task = 'within_one_plugin_task')

    def evaluation(self, ctx, rec, source_sql, source_label, opts):
        target = '"' + rec["target"].replace('"', '""') + '"'
        err = f"abs(CAST({target} AS DOUBLE) - CAST(PREDICT('{rec['model']}:{rec['version']}', *) AS DOUBLE))"
        return Evaluation(f"SELECT count(*) AS rows, avg({err}) AS mae, avg(CAST({err} <= 1 AS DOUBLE)) AS within_one "
                          f"FROM (\n{source_sql}\n) AS src WHERE {target} IS NOT NULL")  # fmt: skip

    def evaluation_layout(self, curves):
        return None


# -- a statement: WORST MODEL m ON <source> TOP k, the k rows PREDICT misses most ----------


class WorstModel(statements.MLStatement):
    arg_types = {"this": True, "source": True, "source_sql": False, "top": True}


def _parse(r):
    name = r.model_name()
    if not r.match("ON"):
        r.error("Expected ON (query) after the model")
    source, source_sql = r.source("ON")
    if not r.match("TOP"):
        r.error("Expected TOP and a number of rows")
    top = r.number("Expected TOP and a number of rows", "TOP must be a whole number")
    return r.finish(WorstModel(this=name, source=source, source_sql=source_sql, top=top))


def worst(ctx, model: str, source: str, top: int = 5):
    """``WORST MODEL model ON source TOP k``: the k rows whose prediction misses the target most."""
    rec = ctx.registry.get(model)
    sql, _ = statements.source_query(source)
    target = '"' + rec["target"].replace('"', '""') + '"'
    return ctx.query(
        f"SELECT *, PREDICT('{rec['model']}:{rec['version']}', *) AS predicted, "
        f"abs({target} - PREDICT('{rec['model']}:{rec['version']}', *)) AS miss "
        f"FROM (\n{sql}\n) AS src ORDER BY miss DESC LIMIT {int(top)}"
    )


WORST = statements.Statement(
    name="worst_plugin_statement", head=("WORST", "MODEL"), node=WorstModel, parse=_parse,
    generate=lambda gen, e: f"WORST MODEL {gen.sql(e.this)} ON ({e.args['source_sql']}) TOP {e.args['top'].name}",
    run=lambda ctx, node: worst(ctx, node.this.name, f"({statements.source_query(node.args['source'], node.args.get('source_sql'))[0]})",
                                int(node.args["top"].name)),
    twins={"worst": worst}, returns_rows=True, keywords=("ON", "TOP"), summary="the rows a model misses most",
)  # fmt: skip


@pytest.fixture
def plugins():
    kind, task, statement = kinds.register(Words()), tasks.register(WithinOne()), statements.register(WORST)
    try:
        yield kind, task, statement
    finally:
        kinds.unregister(kind.name)
        tasks.unregister(task.name)
        statements.unregister(statement.name)
    assert not hasattr(dbml.Connection, "worst")


def test_a_new_kind_task_and_statement_from_one_file(plugins, tmp_path):
    con = dbml.connect()
    con.sql(
        "CREATE TABLE notes AS SELECT i AS id, "
        "list_aggregate(list_transform(range(1 + i % 6), lambda x: 'word'), 'string_agg', ' ') AS body, "
        "(i % 6 + 1) * 2.0 + (i % 2) * 0.25 AS effort FROM range(240) r(i)"
    )
    row = con.sql("TRAIN MODEL effort FROM (SELECT body, effort FROM notes) TARGET effort "
                  "WITH (task = 'within_one_plugin_task', words = ['body'], epochs = 60, lr = 0.01, hidden = [16], "
                  "progress = false, seed = 1)").fetchall()  # fmt: skip
    assert row[0][3] == "within_one_plugin_task"

    # the kind: DESCRIBE shows it and its rule; PREDICT scores raw text with the kind's SQL encoding
    features = con.sql("SELECT features FROM (DESCRIBE MODEL effort)").fetchall()[0][0]
    assert '"words_plugin_kind"' in features and "option words" in features
    got = con.sql("SELECT PREDICT(effort, *) FROM (SELECT 'a b c' AS body)").fetchall()[0][0]
    assert abs(got - 6.0) < 1.0  # three words: an effort of about 6

    # ... and dbml.score gives the same from the exported file, through the kind's Arrow encoding
    path = str(tmp_path / "effort.onnx")
    con.sql(f"EXPORT MODEL effort TO '{path}'")
    outside = dbml.score(path, pa.table({"body": ["a b c", "one", None]}))
    inside = [r[0] for r in con.sql("SELECT PREDICT(effort, *) FROM (VALUES ('a b c'), ('one'), (NULL)) v(body)").fetchall()]
    assert np.allclose(outside.column("prediction").to_pylist()[:2], inside[:2], atol=1e-5)

    # the task: EVALUATE's own metrics
    ev = con.sql("EVALUATE MODEL effort ON notes")
    assert ev.columns == ["rows", "mae", "within_one"]
    rows, mae, within = ev.fetchall()[0]
    assert rows == 240 and mae < 1.0 and within > 0.8

    # the statement: from SQL, inside a query, and its Python twin
    worst_rows = con.sql("WORST MODEL effort ON (SELECT * FROM notes) TOP 3").fetchall()
    assert len(worst_rows) == 3
    assert con.sql("SELECT count(*) FROM (WORST MODEL effort ON (SELECT * FROM notes) TOP 4) WHERE miss >= 0").fetchall() == [(4,)]
    assert [r[0] for r in con.worst("effort", "notes", top=2).fetchall()] == [r[0] for r in worst_rows[:2]]
    con.close()
