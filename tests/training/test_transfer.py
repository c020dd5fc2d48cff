"""Transfer (WITH (base = 'big'[, freeze = true])): a new head on another version's
encoders and trunk. The constructed pair: ``big`` learns z = x1 * x2 + [plan = 'b'] as a
regression from 2,000 rows; ``small`` has 60 labelled rows of a related class target,
z > 0.3, with the same columns. An MLP from scratch hardly finds a product's sign in 60
rows; the base's trunk has it already."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import dbml
from dbml.errors import FeatureError, ModelNotFoundError, OptionError
from conftest import registry_counts

COLUMNS = ("x1", "x2", "x3", "x4", "plan")
SHAPE = "hidden = [32, 16], seed = 3, verbose = 0"
FAST = f"epochs = 60, {SHAPE}"
FEW = "epochs = 150, lr = 0.01, hidden = [32, 16], seed = 3, verbose = 0"  # a head alone learns slowly at lr 1e-3


def _rows(n: int, seed: int):
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float64)
    plan = rng.choice(["a", "b", "c"], size=n)
    z = x[:, 0] * x[:, 1] + (plan == "b")
    return pa.table({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "x4": x[:, 3], "plan": plan, "z": z, "urgent": z > 0.3})


@pytest.fixture(scope="module")
def lab():
    """A connection holding big (version 1, trained once), few (60 rows) and hold (1,000 rows)."""
    c = dbml.connect(user="tester")
    big, few, hold = _rows(2000, 1), _rows(60, 2), _rows(1000, 3)  # noqa: F841 - read by DuckDB's replacement scans
    c.duckdb.register("big_rows", big)
    c.duckdb.register("few_rows", few)
    c.duckdb.register("hold_rows", hold)
    c.sql("CREATE TABLE big AS SELECT * EXCLUDE (urgent) FROM big_rows")
    c.sql("CREATE TABLE few AS SELECT * EXCLUDE (z) FROM few_rows")
    c.sql("CREATE TABLE hold AS SELECT * EXCLUDE (z) FROM hold_rows")
    c.sql(f"TRAIN MODEL big FROM big TARGET z WITH ({FAST})")
    yield c
    c.close()


def _accuracy(c, ref: str) -> float:
    return c.sql(f"SELECT avg((PREDICT('{ref}', *) = urgent)::INT) FROM hold").fetchall()[0][0]


def _initializers(c, model: str, version: int) -> dict[str, np.ndarray]:
    blob = c.registry.blob(model, version)
    return {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(blob).graph.initializer}


def test_transfer_beats_scratch_and_scores_raw_rows(lab, tmp_path):
    scratch = lab.sql(f"TRAIN MODEL small FROM few TARGET urgent WITH ({FEW})").fetchall()[0][1]
    tuned = lab.sql(f"TRAIN MODEL small FROM few TARGET urgent WITH ({FEW}, base = 'big')").fetchall()[0][1]
    frozen = lab.sql(f"TRAIN MODEL small FROM few TARGET urgent WITH ({FEW}, base = 'big', freeze = true)").fetchall()[0][1]
    acc = {v: _accuracy(lab, f"small:{v}") for v in (scratch, tuned, frozen)}
    assert acc[tuned] > acc[scratch] + 0.04 and acc[frozen] > acc[scratch] + 0.12, acc  # measured 0.767, 0.840, 0.949
    # a standalone graph: the exported file alone scores raw rows (strings, unscaled numbers) as PREDICT does
    lab.sql(f"EXPORT MODEL small VERSION {frozen} TO '{tmp_path}/small.onnx'")
    rows = lab.sql("SELECT * EXCLUDE (urgent) FROM hold LIMIT 50").arrow().read_all()
    outside = dbml.score(f"{tmp_path}/small.onnx", rows).column(0).to_pylist()
    inside = [r[0] for r in lab.sql(f"SELECT PREDICT('small:{frozen}', *) FROM (FROM hold LIMIT 50)").fetchall()]
    assert outside == inside


def test_the_base_profile_is_kept(lab):
    lab.sql(f"TRAIN MODEL kept FROM few TARGET urgent WITH ({SHAPE}, base = 'big', epochs = 2)")
    base, new = lab.registry.get("big"), lab.registry.get("kept")
    assert new["profile"] == base["profile"]  # means, stds, the vocabulary of plan: the trunk's inputs mean the same
    assert new["features"] == base["features"] and new["labels"] == [False, True] and new["task"] == "classification"


def test_freeze_leaves_the_trunk_and_encoders_as_the_base_had_them(lab):
    v = lab.sql(f"TRAIN MODEL frz FROM few TARGET urgent WITH ({FAST}, base = 'big', freeze = true)").fetchall()[0][1]
    base, new = _initializers(lab, "big", 1), _initializers(lab, "frz", v)
    kept = [k for k in base if k.startswith(("dbml/model.trunk.", "dbml/model.encoders."))]
    assert kept and all(k in new for k in kept)
    assert all(np.array_equal(base[k], new[k]) for k in kept), [k for k in kept if not np.array_equal(base[k], new[k])]
    assert any(k.startswith("dbml/model.head.") for k in new)
    # without freeze the trunk trains on from the base's values
    w = lab.sql(f"TRAIN MODEL thawed FROM few TARGET urgent WITH ({FAST}, base = 'big')").fetchall()[0][1]
    thawed = _initializers(lab, "thawed", w)
    assert not all(np.array_equal(base[k], thawed[k]) for k in kept)


def test_lineage_is_recorded_and_references_resolve(lab):
    lab.sql(f"TRAIN MODEL big2 FROM big TARGET z WITH ({SHAPE}, epochs = 3)")
    lab.sql(f"TRAIN MODEL big2 FROM big TARGET z WITH (hidden = [32, 16], verbose = 0, epochs = 3, seed = 4)")
    lab.sql("ALTER MODEL big2 SET ALIAS production = 1")
    for ref, version in (("big2", 2), ("big2:1", 1), ("big2@production", 1)):
        lab.sql(f"TRAIN MODEL lin FROM few TARGET urgent WITH (epochs = 2, hidden = [32, 16], verbose = 0, base = '{ref}')")
        row = lab.sql("SELECT base_model, base_version, options->>'base' FROM dbml.model_versions WHERE model = 'lin' "
                      "ORDER BY version DESC LIMIT 1").fetchall()  # fmt: skip
        assert row == [("big2", version, ref)]
    described = lab.sql("SELECT version, base_model, base_version FROM (DESCRIBE MODEL lin) ORDER BY version").fetchall()
    assert described == [(1, "big2", 2), (2, "big2", 1), (3, "big2", 1)]
    assert lab.sql("SELECT base_model, base_version FROM (DESCRIBE MODEL big2)").fetchall() == [(None, None)] * 2
    audit = lab.registry.audit_rows("lin", "TRAIN")
    assert {(a["detail"]["base"], a["detail"]["base_version"]) for a in audit} == {("big2", 2), ("big2", 1)}
    meta = {p.key: p.value for p in onnx.load_from_string(lab.registry.blob("lin", 1)).metadata_props}
    assert meta["dbml.base"] == "big2:2"


def test_a_base_of_another_task_and_family(lab):
    """An autoencoder's bottleneck takes a classifier's head (USING follows the base)."""
    lab.sql("TRAIN MODEL ae USING autoencoder FROM (SELECT * EXCLUDE (z) FROM big) WITH (epochs = 5, verbose = 0)")
    row = lab.sql("TRAIN MODEL probe FROM few TARGET urgent WITH (epochs = 5, verbose = 0, base = 'ae', freeze = true)").fetchall()[0]
    assert (row[3], row[4]) == ("classification", "autoencoder")
    assert lab.sql("SELECT count(PREDICT(probe, *)) FROM hold").fetchall() == [(1000,)]


def test_bad_input_names_the_culprit_and_writes_nothing(lab, tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Add", ["x1", "x2"], ["y"])], "g",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in ("x1", "x2")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])])  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "ext.onnx"))
    lab.sql(f"IMPORT MODEL ext FROM '{tmp_path}/ext.onnx'")
    lab.sql("CREATE OR REPLACE TABLE arr AS SELECT [x1, x2, x3, x4]::FLOAT[4] AS a, z FROM big")
    lab.sql("TRAIN MODEL arrbase FROM arr TARGET z WITH (epochs = 2, verbose = 0)")
    before = registry_counts(lab)
    train = "TRAIN MODEL bad {using} FROM {source} TARGET urgent WITH (epochs = 2, verbose = 0{opts})"
    cases = [
        (ModelNotFoundError, r"option 'base' = 'nosuch': model 'nosuch' does not exist", "", "few", ", base = 'nosuch'"),
        (ModelNotFoundError, r"option 'base' = 'big:9': model 'big' has no version 9", "", "few", ", base = 'big:9'"),
        (ModelNotFoundError, r"option 'base' = 'big@gone': model 'big' has no alias 'gone'", "", "few", ", base = 'big@gone'"),
        (FeatureError, r"column 'x1' of the source \(query\) of model 'bad' is category \(VARCHAR\), but in base 'big' "
                       r"\(model 'big' version 1\) it is numeric", "", "(SELECT * REPLACE (x1::VARCHAR AS x1) FROM few)",
         ", base = 'big'"),  # fmt: skip
        (FeatureError, r"column 'a' of model 'bad' is FLOAT\[3\] here but FLOAT\[4\] in base 'arrbase'", "",
         "(SELECT [x1, x2, x3]::FLOAT[3] AS a, urgent FROM few)", ", base = 'arrbase'"),
        (OptionError, r"option 'base' = 'ext': model 'ext' version 1 is a foreign ONNX graph .* no dbml trunk", "", "few",
         ", base = 'ext'"),
        (OptionError, r"option 'freeze' of TRAIN MODEL bad needs option 'base'", "", "few", ", freeze = true"),
        (OptionError, r"TRAIN MODEL bad USING cnn cannot start from base 'big' .* USING mlp: .* write USING mlp or leave "
                      r"USING out", "USING cnn", "few", ", base = 'big'"),  # fmt: skip
        (FeatureError, r"has no column 'x2', which base 'big' \(model 'big' version 1\) takes", "",
         "(SELECT * EXCLUDE (x2) FROM few)", ", base = 'big'"),
        (FeatureError, r"feature column\(s\) 'extra' that base 'big' .* SELECT \* EXCLUDE \(extra\)", "",
         "(SELECT *, 1.0 AS extra FROM few)", ", base = 'big'"),
        (OptionError, r"option 'hidden' = \[8\] cannot change .* hidden = \[32, 16\]", "", "few", ", base = 'big', hidden = [8]"),
        (OptionError, r"gives option 'base' and warm_start", "", "few", ", base = 'big', warm_start = true"),
        (OptionError, r"option 'base' must be a model reference", "", "few", ", base = 3"),
    ]
    for error, words, using, source, opts in cases:
        with pytest.raises(error, match=words):
            lab.sql(train.format(using=using, source=source, opts=opts))
        assert registry_counts(lab) == before, words


def test_a_transferred_version_fine_tunes_exports_and_imports(lab, tmp_path):
    lab.sql(f"TRAIN MODEL moved FROM few TARGET urgent WITH ({SHAPE}, epochs = 2, base = 'big')")
    lab.sql("TRAIN MODEL moved FROM few TARGET urgent WITH (epochs = 2, verbose = 0, warm_start = true)")
    assert lab.sql("SELECT version, parent_version, base_model, base_version FROM dbml.model_versions "
                   "WHERE model = 'moved' ORDER BY version").fetchall() == [(1, None, "big", 1), (2, 1, None, None)]  # fmt: skip
    lab.sql(f"EXPORT MODEL moved VERSION 1 TO '{tmp_path}/moved.onnx'")
    lab.sql(f"IMPORT MODEL moved_copy FROM '{tmp_path}/moved.onnx'")
    same = lab.sql("SELECT count(*) FROM hold WHERE PREDICT('moved:1', *) = PREDICT(moved_copy, *)").fetchall()
    assert same == [(1000,)]


@pytest.mark.parametrize("family", ["cnn", "gru"])
def test_other_families_freeze_their_trunk_batch_norm_statistics_too(lab, family):
    """A cnn's batch normalisation keeps the base's running statistics under freeze; a
    gru's recurrent weights stay; both score raw rows."""
    cast = "FLOAT[4]" if family == "cnn" else "DOUBLE[]"
    lab.sql(f"TRAIN MODEL fam_{family} USING {family} FROM (SELECT [x1, x2, x3, x4]::{cast} AS a, z FROM big) TARGET z "
            "WITH (epochs = 3, verbose = 0)")  # fmt: skip
    lab.sql(f"TRAIN MODEL famt_{family} FROM (SELECT [x1, x2, x3, x4]::{cast} AS a, urgent FROM few) TARGET urgent "
            f"WITH (epochs = 3, verbose = 0, base = 'fam_{family}', freeze = true)")  # fmt: skip
    base, new = _initializers(lab, f"fam_{family}", 1), _initializers(lab, f"famt_{family}", 1)
    kept = [k for k in base if k.startswith("dbml/model.trunk.")]
    assert kept and all(np.array_equal(base[k], new[k]) for k in kept)
    if family == "cnn":
        assert any(k.endswith("running_mean") for k in kept)
    scored = lab.sql(f"SELECT count(PREDICT(famt_{family}, [x1, x2, x3, x4]::{cast})) FROM hold").fetchall()
    assert scored == [(1000,)]
