"""A column kind written outside the package (:class:`Length`: a VARCHAR column read as
its length in characters), registered with ``dbml.kinds.register``: it takes some
VARCHAR columns from category by priority, trains with an mlp, scores with PREDICT and
through dbml.score's Arrow path, shows its rule in DESCRIBE MODEL, MONITORs and has its
card row. Detection by priority, options and statistics; the shapes architectures
take; group order; entry points. Nothing inside dbml/ names this kind."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from onnx import helper

import dbml
from dbml import kinds
from dbml.architectures import ARCHITECTURES
from dbml.errors import FeatureError, OptionError, RecordError
from dbml.features import FeatureSpec
from dbml.kinds import Candidate, Claim, Kind, Phrase, Shape
from dbml.kinds.arrow import plain
from dbml.kinds.common import QUANTILES
from dbml.kinds.scalar import histogram
from dbml.options import Option
from dbml.sqltext import quote

O = "epochs = 15, progress = false, seed = 3"
NAME = "length_test_kind"


class Length(Kind):
    """A VARCHAR column as its length in characters (NULL stays missing), standardised."""

    name = NAME
    priority = 10  # above category, which claims every VARCHAR
    group_order = 3  # after the built-in groups
    options = (Option("lengths", "str_list", None, "VARCHAR columns read as their length"),)
    arrow_needs = "text (string or large_string)"

    def claim(self, column):
        if column.sql_type != "VARCHAR":
            return None
        if column.name.lower() in [c.lower() for c in column.options.get("lengths") or []]:
            return Claim("VARCHAR", "option lengths")
        average = column.stats.get("avg_length")
        if average is not None and average >= 20:
            return Claim("VARCHAR", f"statistic avg_length {average:.1f} >= 20")
        if column.name.lower().endswith("_len"):
            return Claim("VARCHAR", "name *_len")
        return None

    def statistics(self, column):
        return {"avg_length": f"avg(length({column.ref}))"} if column.sql_type == "VARCHAR" else {}

    def check_options(self, options, detected):
        mine = {d.name.lower() for d in detected if d.kind == self.name}
        for c in options.get("lengths") or []:
            if c.lower() not in mine:
                raise FeatureError(f"option lengths names column '{c}', which is not a VARCHAR column of the source")

    def sql(self, feature, column, model):
        from sqlglot import exp

        return exp.cast(exp.func("length", exp.cast(column, exp.DataType.build("VARCHAR"))), exp.DataType.build("FLOAT"))

    def takes(self, feature, arrow_type):
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)

    def arrow(self, feature, values, model, timezone="UTC"):
        return pc.cast(pc.utf8_length(plain(values, pa.string())), pa.float32())

    def udf_type(self, feature):
        from duckdb import sqltypes

        return sqltypes.FLOAT

    def feed(self, feature, values):
        return values.cast(pa.float32()).to_numpy(zero_copy_only=False).reshape(-1, 1)

    def profile(self, con, table, features, options):
        out = {}
        for f in features:
            c = quote(f.name)
            n, present, mean, std, qs = con.execute(
                f"SELECT count(*), count({c}), avg({c}), stddev_pop({c}), quantile_cont({c}, {QUANTILES}) FROM {table}"
            ).fetchall()[0]
            quantiles = [float(q) for q in qs or []]
            out[f.name] = {"kind": f.kind, "count": n, "nulls": n - present, "mean": float(mean or 0.0),
                           "std": float(std or 0.0), "histogram": histogram(con, table, c, quantiles)}  # fmt: skip
        return out

    def card_shape(self, profile):
        return [Phrase("mean length {} characters", (profile.get("mean"),))]

    def group_key(self, feature):
        return "lengths"

    def tensor(self, features, columns, profile):
        cols = [pc.fill_null(c.cast(pa.float32()), float("nan")).to_numpy(zero_copy_only=False) for c in columns]
        return np.ascontiguousarray(np.column_stack(cols), np.float32)

    def front(self, features, profile, out, prefix):
        return [helper.make_node("Concat", [f.name for f in features], [out], axis=1, name=prefix + "concat_lengths")]

    def width(self, features, profile):
        return len(features)

    def encoder(self, features, profile, options):
        import torch
        from torch import nn

        class Standardise(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("mean", torch.tensor([[profile[f.name]["mean"] for f in features]]))
                self.register_buffer("std", torch.tensor([[profile[f.name]["std"] or 1.0 for f in features]]))
                self.shape = (len(features),)

            def target_width(self):
                return len(features)

            def target(self, x):
                return self(x)

            def forward(self, x):
                return torch.where(torch.isnan(x), torch.zeros_like(x), (x - self.mean) / self.std)

        return Standardise()


@pytest.fixture
def length_kind():
    kind = kinds.register(Length())
    yield kind
    kinds.KINDS.pop(NAME, None)


@pytest.fixture
def con(tmp_path):
    c = dbml.connect(str(tmp_path / "kinds.duckdb"))
    c.sql(
        "CREATE TABLE t AS SELECT i, repeat('x', i % 10) AS note_len, ['p', 'q', 'r'][1 + i % 3] AS plan, "
        "repeat('long words here ', 2 + i % 3) || i::VARCHAR AS prose, (i % 10) > 4 AS y FROM range(300) r(i)"
    )
    yield c
    c.close()


def test_a_kind_from_outside_trains_scores_describes_and_monitors(con, length_kind, tmp_path):
    row = con.sql(f"TRAIN MODEL lens USING mlp FROM (SELECT note_len, plan, y FROM t) TARGET y WITH ({O})").fetchall()[0]
    assert row[3:5] == ("classification", "mlp")
    described = json.loads(con.sql("DESCRIBE MODEL lens").df()["features"][0])
    # the kind takes note_len from category by priority; plan stays a category
    assert [(f["name"], f["kind"], f["sql_type"]) for f in described] == [("note_len", NAME, "VARCHAR"), ("plan", "category", "VARCHAR")]
    assert con.sql("SELECT avg((PREDICT(lens, *) = y)::INT) FROM t").fetchall()[0][0] > 0.9

    # the exported file scores raw strings outside DuckDB, through the kind's Arrow encoding
    con.sql(f"EXPORT MODEL lens TO '{tmp_path / 'lens.onnx'}'")
    rows = con.sql("SELECT note_len, plan, PREDICT(lens, *) AS p FROM t ORDER BY i LIMIT 40").fetchall()
    scored = dbml.score(str(tmp_path / "lens.onnx"), {"note_len": [r[0] for r in rows], "plan": [r[1] for r in rows]})
    assert scored.column(0).to_pylist() == [r[2] for r in rows]

    # MONITOR bins the kind's encoded value by its profile's histogram
    def monitor(source):
        return {r["feature"]: r for r in con.sql(f"MONITOR MODEL lens ON ({source})").df().to_dict("records")}

    same = monitor("SELECT * FROM t")["note_len"]
    assert same["kind"] == NAME and same["psi"] < 0.1 and len(json.loads(same["detail"])) == 10  # ten deciles' bins
    longer = monitor("SELECT * REPLACE (note_len || 'xxxxxxxx' AS note_len) FROM t")["note_len"]
    assert longer["psi"] > 1.0 and longer["drift"]

    # the card's profile row is in the kind's words
    mean = con.registry.get("lens")["profile"]["note_len"]["mean"]
    assert f"mean length {mean:.5g} characters" in con.model_card("lens")

    # the registry knows the kind only while it is installed
    kinds.KINDS.pop(NAME)
    with pytest.raises(RecordError, match="features\\[0\\].kind"):
        con.registry.get("lens")


def test_detection_reads_options_and_statistics_from_one_pass(con, length_kind):
    columns, types = ["note_len", "plan", "prose", "i"], ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT"]
    options = {"Lengths": ["PLAN"], "epochs": 3}
    asked = kinds.statistics_sql(columns, types, options)
    mine = [f"avg(length({quote(c)}))" for c in columns[:3]]
    assert [a for a in asked.values() if a in mine] == mine  # VARCHAR columns only
    assert not any(quote("i") in a for a in asked.values())  # (the built-in text kind asks of VARCHAR columns too)
    # the kinds' aggregates beside the target's facts, in one SELECT over the rows that train
    values = con.sql(
        f"SELECT count(DISTINCT y) AS dbml_target_distinct, {', '.join(f'{a} AS {k}' for k, a in asked.items())} FROM t"
    ).fetchall()[0]
    statistics = dict(zip(["dbml_target_distinct", *asked], values))
    found = {d.name: d for d in kinds.detect_columns(columns, types, options=options, statistics=statistics)}
    assert {c: (d.kind, d.rule) for c, d in found.items()} == {
        "note_len": (NAME, "name *_len"),
        "plan": (NAME, "option lengths"),
        "prose": (NAME, "statistic avg_length 50.6 >= 20"),
        "i": ("numeric", "type BIGINT"),
    }
    assert found["i"].feature() == FeatureSpec("i", "numeric", "BIGINT")  # a type rule is not kept
    assert found["plan"].feature().to_dict()["rule"] == "option lengths"
    # without the statistics (or the option) the kind claims less, and category the rest
    plain_kinds = {d.name: (d.kind, d.rule) for d in kinds.detect_columns(columns, types)}
    assert plain_kinds["prose"] == plain_kinds["plan"] == ("category", "type VARCHAR")
    with pytest.raises(FeatureError, match="option lengths names column 'nosuch'"):
        kinds.detect_columns(columns, types, options={"lengths": ["nosuch"]})
    with pytest.raises(OptionError, match="option 'lengths' must be a list of strings"):
        kinds.statistics_sql(columns, types, {"lengths": 3})
    assert [o.name for o in kinds.kind_options()].count("lengths") == 1


def test_priority_then_the_architectures_shapes_choose(length_kind):
    lists = ["DOUBLE[]", "INTEGER[4]"]
    for arch, kind in (("mlp", "array"), ("cnn", "array"), ("lstm", "sequence"), ("gru", "sequence")):
        takes = ARCHITECTURES[arch].takes
        assert [d.kind for d in kinds.detect_columns(["a", "b"], lists, takes=takes)] == [kind, kind]
        assert ARCHITECTURES[arch].list_kind == kind
        assert NAME in ARCHITECTURES[arch].kinds  # a FLAT kind joins every family that takes FLAT
    assert kinds.detect("a", "DOUBLE[]", "sequence") == ("sequence", "FLOAT[]")  # the former interface
    assert kinds.detect("x_len", "VARCHAR") == (NAME, "VARCHAR")

    class Steps(Kind):  # claims the same lists with a higher priority: wins whatever the shapes
        name, priority, shape = "steps_test_kind", 5, Shape.STEPS

        def claim(self, column):
            return Claim("FLOAT[]", "always") if column.sql_type.endswith("[]") else None

    kinds.register(Steps())
    try:
        assert kinds.detect_column("a", "DOUBLE[]", takes=ARCHITECTURES["mlp"].takes).kind == "steps_test_kind"
        assert "steps_test_kind" not in ARCHITECTURES["mlp"].kinds and "steps_test_kind" in ARCHITECTURES["lstm"].kinds
    finally:
        kinds.KINDS.pop("steps_test_kind")
    with pytest.raises(FeatureError, match="column 's' has type STRUCT"):
        kinds.detect_column("s", "STRUCT(a INTEGER)")


def test_group_order_comes_from_the_kinds(length_kind):
    features = [FeatureSpec("w", "array", "FLOAT[3]"), FeatureSpec("n_len", NAME, "VARCHAR"),
                FeatureSpec("c", "category", "VARCHAR"), FeatureSpec("x", "numeric", "DOUBLE")]  # fmt: skip
    assert [g.key for g in kinds.groups(features)] == ["numbers", "categories", "array:w", "lengths"]
    length_kind.group_order = -1
    try:
        assert [g.key for g in kinds.groups(features)][0] == "lengths"
    finally:
        del length_kind.group_order


def test_kinds_load_from_the_entry_point_group(monkeypatch):
    from dbml import plugins

    class EntryPoint:
        name, value = "ep_test_kind", "tests:EpKind"

        def load(self):
            return type("EpKind", (Length,), {"name": "ep_test_kind"})

    monkeypatch.setattr(plugins, "entry_points", lambda group: [EntryPoint()] if group == "dbml.kinds" else [])
    monkeypatch.setattr(kinds, "_plugins_loaded", False)
    try:
        assert kinds.get_kind("ep_test_kind").name == "ep_test_kind"
        assert kinds.kind_of(FeatureSpec("a_len", "ep_test_kind", "VARCHAR")).priority == 10
    finally:
        kinds.KINDS.pop("ep_test_kind", None)
    with pytest.raises(FeatureError, match="kind 'nosuch', which is not installed here"):
        kinds.kind_of(FeatureSpec("a", "nosuch", "VARCHAR"))
    with pytest.raises(OptionError, match="lower-case name"):
        kinds.register(type("Bad", (Length,), {"name": "Bad Name"})())


def test_candidate_and_rules():
    c = Candidate('we"ird', "VARCHAR")
    assert c.ref == '"we""ird"' and c.options == {} and c.stats == {} and c.takes is None
    assert kinds.rule_of(FeatureSpec("a", "numeric", "INTEGER")) == "type INTEGER"
    assert kinds.rule_of(FeatureSpec("a", "category", "VARCHAR", rule="option text")) == "option text"
    assert kinds.detect_column("e", "ENUM('a', 'b')").rule == "type ENUM"
    assert kinds.foreign_kind("string") == ("category", "VARCHAR") and kinds.foreign_kind("int32") == ("numeric", "DOUBLE")


@pytest.mark.skipif(
    "detect_columns" not in vars(__import__("dbml.training.pipeline", fromlist=["_"])),
    reason="TRAIN passes options and statistics to detection once dbml/training/pipeline.py calls kinds.detect_columns",
)
def test_train_claims_by_option_and_by_statistic_and_describe_says_which(con, length_kind):
    con.sql(f"TRAIN MODEL opt USING mlp FROM (SELECT note_len, plan, prose, i, y FROM t) TARGET y WITH ({O}, lengths = ['plan'])")
    features = json.loads(con.sql("DESCRIBE MODEL opt").df()["features"][0])
    assert [(f["name"], f["kind"], f.get("rule")) for f in features] == [
        ("note_len", NAME, "name *_len"), ("plan", NAME, "option lengths"),
        ("prose", NAME, "statistic avg_length 50.6 >= 20"), ("i", "numeric", None),  # a type rule is not kept
    ]  # fmt: skip
    assert con.sql("SELECT count(PREDICT(opt, *)) FROM t").fetchall()[0][0] == 300
    with pytest.raises(FeatureError, match="option lengths names column 'nosuch'"):
        con.sql(f"TRAIN MODEL opt USING mlp FROM (SELECT plan, y FROM t) TARGET y WITH ({O}, lengths = ['nosuch'])")
