"""The seam every family plugs into: an architecture defined outside the package,
scoring in a process without torch, the training stages one at a time, and the
outputs table as the one list of scoring functions."""

from __future__ import annotations


import pytest

import dbml
from conftest import run_without_torch
from dbml import architectures
from dbml.training import pipeline
from dbml.architectures import Architecture, concat
from dbml.errors import TargetError
from dbml.options import Option
from dbml.outputs import FUNCTION_NAMES, OUTPUTS
from dbml.request import TrainRequest

O = "epochs = 15, progress = false, seed = 3"


class Tiny(Architecture):
    """A family written outside dbml: one linear layer of a chosen width over the inputs."""

    name = "tiny_test_family"
    description = "a test family"
    options = (Option("width", "int", 4, "hidden width", lambda v: 1 <= v <= 64, "1 to 64"),)

    def build(self, inputs, task, options):
        from torch import nn

        combine, width = concat(inputs)
        trunk = nn.Sequential(combine, nn.Linear(width, options["width"]), nn.Tanh())
        trunk.width = options["width"]
        return trunk


@pytest.fixture
def con(tmp_path):
    c = dbml.connect(str(tmp_path / "seam.duckdb"))
    c.sql(
        "CREATE TABLE t AS SELECT i, (i % 10)::DOUBLE AS a, ['p', 'q', 'r'][1 + i % 3] AS c, "
        "(i % 10) > 4 AS y, ((i % 10) * 2.0 + 1)::DOUBLE AS v FROM range(300) r(i)"
    )
    yield c
    c.close()


def test_an_architecture_defined_outside_the_package_trains_and_scores(con):
    architectures.register(Tiny())
    try:
        row = con.sql(f"TRAIN MODEL ext USING tiny_test_family FROM (SELECT a, c, y FROM t) TARGET y WITH ({O}, width = 6)").fetchall()[0]
        assert row[3:5] == ("classification", "tiny_test_family") and row[8]["accuracy"] > 0.8
        pred, emb = con.sql("SELECT PREDICT(ext, *) = y, EMBED(ext, *) FROM t").fetchall()[0]
        assert len(emb) == 6
        assert con.sql("SELECT avg((PREDICT(ext, *) = y)::INT) FROM t").fetchall()[0][0] > 0.8
        with pytest.raises(dbml.OptionError, match="option 'width' must be 1 to 64"):
            con.sql(f"TRAIN MODEL ext2 USING tiny_test_family FROM (SELECT a, y FROM t) TARGET y WITH ({O}, width = 0)")
    finally:
        architectures.ARCHITECTURES.pop("tiny_test_family")


def test_scoring_runs_where_torch_cannot_be_imported(con, tmp_path):
    con.sql(f"TRAIN MODEL cls FROM (SELECT a, c, y FROM t) TARGET y WITH ({O})")
    con.sql(f"TRAIN MODEL odd USING autoencoder FROM (SELECT a, c FROM t) WITH ({O})")
    con.sql("CREATE TABLE img AS SELECT [i % 4, i % 3, 1, 0]::FLOAT[4] AS px, i % 4 < 2 AS y FROM range(200) r(i)")
    con.sql(f"TRAIN MODEL pic USING cnn FROM img TARGET y WITH ({O}, shape = [1, 2, 2])")
    con.close()
    script = (f"""
        import sys
        import dbml
        con = dbml.connect({str(tmp_path / "seam.duckdb")!r})
        rows = con.sql("SELECT PREDICT(cls, *), PREDICT_PROBA(cls, *), EMBED(cls, *), ANOMALY_SCORE(odd, *), "
                       "IS_ANOMALY(odd, *), PREDICT(pic, *) FROM t, img LIMIT 5").fetchall()
        assert len(rows) == 5
        con.sql("DESCRIBE MODEL cls").fetchall()
        con.sql("SHOW MODELS").fetchall()
        con.sql("EVALUATE MODEL cls ON (SELECT a, c, y FROM t)").fetchall()
        con.sql("MONITOR MODEL cls ON (SELECT a, c FROM t)").fetchall()
        con.sql("EXPLAIN MODEL cls ON (SELECT a, c, y FROM t) WITH (repeats = 1)").fetchall()
        con.sql("EVALUATE MODEL odd ON (SELECT a, c, a > 8 AS odd_row FROM t) WITH (label = odd_row)").fetchall()
        try:
            con.sql("TRAIN MODEL again FROM (SELECT a, y FROM t) TARGET y")
        except ImportError as err:
            assert "blocked" in str(err)
        assert "torch" not in sys.modules, "torch was imported"
        print("scored without torch")
    """)
    out = run_without_torch(script)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "scored without torch" in out.stdout


def test_the_stages_run_one_at_a_time(con):
    req = TrainRequest("staged", "SELECT a, c, y FROM t", "t", ["y"], None, {"epochs": 3, "progress": False})
    source = pipeline.resolve_source(con.duckdb, "staged", req)
    assert source.columns == ["a", "c", "y"]
    p = pipeline.plan(con.duckdb, con.registry, "staged", req, source)
    assert (p.task.name, p.architecture.name, [f.kind for f in p.features]) == ("classification", "mlp", ["numeric", "category"])
    table = pipeline.read_rows(con.duckdb, p)
    assert table.num_rows == 300 and table.column_names[:2] == ["a", "c"]
    target, train_idx, val_idx = pipeline.prepare_target(p, table)
    assert target.labels == [False, True] and len(train_idx) + len(val_idx) == 300
    prof, features = pipeline.profile(p, table.take(train_idx))
    assert set(prof["c"]["vocabulary"]) == {"p", "q", "r"}
    arrays = pipeline.batches(table, features, prof)
    assert set(arrays) == {"numbers", "categories"} and arrays["categories"].shape == (300, 1)
    assert con.sql("SELECT count(*) FROM dbml.model_versions").fetchall()[0][0] == 0  # nothing written yet


def test_each_task_needs_its_target(con):
    with pytest.raises(TargetError, match="needs a TARGET column"):
        con.sql(f"TRAIN MODEL x USING mlp FROM (SELECT a, c FROM t) WITH ({O})")
    with pytest.raises(TargetError, match="USING autoencoder takes no TARGET"):
        con.sql(f"TRAIN MODEL x USING autoencoder FROM (SELECT a, y FROM t) TARGET y WITH ({O})")
    with pytest.raises(TargetError, match="needs a TARGET column.*USING autoencoder"):
        con.sql(f"TRAIN MODEL x FROM (SELECT a, c FROM t) WITH ({O})")
    assert con.sql("SELECT count(*) FROM dbml.model_versions").fetchall()[0][0] == 0


def test_describe_lists_the_functions_each_version_offers(con):
    con.sql(f"TRAIN MODEL cls FROM (SELECT a, c, y FROM t) TARGET y WITH ({O})")
    con.sql(f"TRAIN MODEL reg FROM (SELECT a, v FROM t) TARGET v WITH ({O})")
    con.sql(f"TRAIN MODEL odd USING autoencoder FROM (SELECT a, c FROM t) WITH ({O})")
    rel = con.sql("DESCRIBE MODEL cls")
    assert "functions" in rel.columns
    offered = {m: dict(zip(con.sql(f"DESCRIBE MODEL {m}").columns, con.sql(f"DESCRIBE MODEL {m}").fetchall()[0]))["functions"]
               for m in ("cls", "reg", "odd")}  # fmt: skip
    assert offered == {
        "cls": ["PREDICT", "PREDICT_PROBA", "EMBED"],
        "reg": ["PREDICT", "EMBED"],
        "odd": ["PREDICT", "EMBED", "ANOMALY_SCORE", "IS_ANOMALY"],
    }


def test_the_outputs_table_is_the_one_list_of_scoring_functions():
    from dbml.dialect import PREDICT_FUNCTIONS, parse_statement
    from dbml.script import mask, predict_calls
    from dbml.udfs import FUNCTIONS

    assert tuple(PREDICT_FUNCTIONS) == FUNCTION_NAMES == tuple(o.function for o in OUTPUTS)
    assert len(FUNCTIONS) == len(OUTPUTS) and len({o.udf for o in OUTPUTS}) == len(OUTPUTS)
    for name in FUNCTION_NAMES:
        sql = f"SELECT {name}(m, *) FROM t"
        assert len(predict_calls(mask(sql))) == 1
        assert isinstance(parse_statement(sql).expressions[0], PREDICT_FUNCTIONS[name])
