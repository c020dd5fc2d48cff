"""dbml.score and dbml.load_model: files EXPORT MODEL wrote score outside DuckDB with
PREDICT's answers (the same labels, in the same types; probabilities to 1e-6), from Arrow,
pandas, polars or a dict; bad files and bad data are refused with dbml errors, before
anything is scored; foreign ONNX files score as IMPORT reads them; no DuckDB and no torch
are imported on the way."""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings

import numpy as np
import onnx
import pyarrow as pa
import pytest
from conftest import SCORING_FEATURES, foreign_add_model, run_without_torch

import dbml
from dbml.errors import FeatureError, IntegrityError, OptionError, RecordError, SourceError, TargetError, TransferError


def _rows(con, table: str = "score_rows") -> pa.Table:
    return con.sql(f"SELECT * FROM {table} ORDER BY id").arrow().read_all()


def _sql(con, select: str, table: str = "score_rows") -> pa.Table:
    return con.sql(f"SELECT {select} FROM {table} ORDER BY id").arrow().read_all()


def _assert_probabilities(got: pa.ChunkedArray, want: pa.ChunkedArray) -> None:
    got, want = got.combine_chunks(), want.combine_chunks()
    assert got.type == want.type
    for field in want.type:
        np.testing.assert_allclose(np.asarray(got.field(field.name)), np.asarray(want.field(field.name)), atol=1e-6, rtol=0)


def test_classifier_scores_as_predict(exported_models):
    con, files = exported_models
    path, sha, size = files["tier"]
    want = _sql(con, "PREDICT(tier, *) AS p, PREDICT_PROBA(tier, *) AS q")
    model = dbml.load_model(path, sha256=sha, size=size)
    assert (model.name, model.version, model.task, model.labels) == ("tier", 1, "classification", (0, 1, 2))
    assert [f.name for f in model.features] == SCORING_FEATURES.split(", ")
    assert model.functions == ("PREDICT", "PREDICT_PROBA", "EMBED")
    assert (model.output_type("PREDICT"), model.output_type("predict_proba")) == ("INTEGER", {"0": "DOUBLE", "1": "DOUBLE", "2": "DOUBLE"})
    got = model.score(_rows(con), ("PREDICT", "PREDICT_PROBA"))
    assert got.column_names == ["prediction", "probabilities"]
    assert got.schema.field("prediction").type == pa.int32()  # the target's INTEGER, as PREDICT's CAST gives it
    assert got.column("prediction").to_pylist() == want.column("p").to_pylist()
    _assert_probabilities(got.column("probabilities"), want.column("q"))
    # the rows have NULLs in every feature and a plan no training row had
    assert None in _rows(con).column("plan").to_pylist() and "enterprise" in _rows(con).column("plan").to_pylist()


@pytest.mark.parametrize("name,function,column,arrow_type", [
    ("churn", "PREDICT", "prediction", pa.bool_()),  # a BOOLEAN target stays BOOLEAN
    ("amount", "PREDICT", "prediction", pa.float64()),
    ("odd", "ANOMALY_SCORE", "anomaly_score", pa.float64()),
    ("odd", "IS_ANOMALY", "is_anomaly", pa.bool_()),
    ("tier", "EMBED", "embedding", None),  # FLOAT[k]
])  # fmt: skip
def test_every_function_in_its_sql_type(exported_models, name, function, column, arrow_type):
    con, files = exported_models
    want = _sql(con, f"{function}({name}, *) AS v").column("v")
    got = dbml.score(files[name][0], _rows(con), functions=(function,))
    assert got.column_names == [column]
    got = got.column(0)
    assert got.type == want.type == (arrow_type or want.type)
    if pa.types.is_boolean(want.type):
        assert got.to_pylist() == want.to_pylist()
    else:
        flat = (lambda a: a.combine_chunks().flatten()) if function == "EMBED" else (lambda a: a)  # noqa: E731
        np.testing.assert_allclose(np.asarray(flat(got), np.float64), np.asarray(flat(want), np.float64), rtol=1e-6, atol=1e-6)


def test_every_form_of_data(exported_models):
    """Arrow Table and RecordBatch, pandas, polars (when installed) and a dict of columns;
    columns in any order, in another case, with columns the model does not read."""
    con, files = exported_models
    path = files["tier"][0]
    want = _sql(con, "PREDICT(tier, *) AS p").column("p").to_pylist()
    table = _rows(con)
    renamed = table.rename_columns([c.upper() if c in ("age", "plan") else c for c in table.column_names])
    shuffled = renamed.select(list(reversed(renamed.column_names)))
    forms = {
        "table": shuffled,
        "batch": shuffled.combine_chunks().to_batches()[0],
        "pandas": table.to_pandas(),
        "dict": {c: table.column(c).to_pylist() for c in table.column_names},
    }
    try:
        import polars

        forms["polars"] = polars.from_arrow(table)
    except ImportError:
        pass
    model = dbml.load_model(path)
    for form, data in forms.items():
        assert model.score(data).column("prediction").to_pylist() == want, form
    assert model.score(table.slice(0, 0)).num_rows == 0
    with pytest.raises(SourceError, match="data must be an Arrow Table or RecordBatch, a pandas or polars DataFrame"):
        model.score([[1, 2]])


def test_missing_ambiguous_and_mistyped_columns_are_refused_before_scoring(exported_models):
    con, files = exported_models
    model = dbml.load_model(files["tier"][0])
    table = _rows(con)
    with pytest.raises(FeatureError, match=r"the data is missing feature column\(s\) spend, plan of model 'tier' version 1"):
        model.score(table.drop_columns(["spend", "plan"]))
    with pytest.raises(FeatureError, match=r"the data has columns 'plan', 'PLAN', which all match feature column 'plan'"):
        model.score(table.append_column("PLAN", table.column("plan")))
    wrong = table.set_column(table.column_names.index("age"), "age", pa.array(["x"] * table.num_rows))
    with pytest.raises(FeatureError, match=r"column 'age' has type string, but the numeric feature 'age' of model 'tier' "
                                           r"version 1 from '.*tier.onnx' \(trained as INTEGER\) takes numbers"):  # fmt: skip
        model.score(wrong)
    with pytest.raises(FeatureError, match=r"column 'age' has type string, but the numeric feature 'age' of model 'tier' version 1 "):
        model.score_columns([wrong.column(f.name) for f in model.features], ["PREDICT"])
    infinite = table.set_column(table.column_names.index("spend"), "spend", pa.array([float("inf")] * table.num_rows))
    with pytest.raises(FeatureError, match=r"column 'spend' of model 'tier' has the value inf, not a finite FLOAT"):
        model.score(infinite)
    with pytest.raises(FeatureError, match=r"ANOMALY_SCORE needs an anomaly model.*model 'tier' version 1 .* is a classification "
                                           r"model: use PREDICT, PREDICT_PROBA or EMBED"):  # fmt: skip
        model.score(table, ("ANOMALY_SCORE",))
    with pytest.raises(OptionError, match="unknown scoring function 'FORECAST'"):
        model.score(table, ("FORECAST",))
    with pytest.raises(OptionError, match="unknown time zone 'Mars/Olympus'"):
        model.score(table, timezone="Mars/Olympus")


def test_bad_files_are_refused(exported_models, tmp_path):
    _, files = exported_models
    path, sha, size = files["churn"]
    data = open(path, "rb").read()
    with pytest.raises(IntegrityError, match=rf"has sha256 [0-9a-f]{{64}}, not the {'0' * 64} given"):
        dbml.load_model(path, sha256="0" * 64)
    with pytest.raises(IntegrityError, match=rf"has {size:,} bytes, not the {size + 1:,} given"):
        dbml.load_model(path, size=size + 1)
    with pytest.raises(OptionError, match="sha256 must be 64 hexadecimal digits"):
        dbml.load_model(path, sha256="abc")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(TransferError, match=f"'{truncated}' is not a valid ONNX model"):
        dbml.load_model(str(truncated))
    with pytest.raises(IntegrityError, match="not the"):  # the digest is checked before the bytes are parsed
        dbml.load_model(str(truncated), sha256=sha)
    text = tmp_path / "notes.txt"
    text.write_text("not a model at all")
    with pytest.raises(TransferError, match="is not a valid ONNX model"):
        dbml.score(str(text), {"x": [1]})
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    with pytest.raises(TransferError, match="is not a valid ONNX model"):
        dbml.load_model(pickled)
    with pytest.raises(TransferError, match="cannot read"):
        dbml.load_model(str(tmp_path / "absent.onnx"))
    with pytest.raises(TransferError, match=r"over the import limit of 1,000 \(option max_size\)"):
        dbml.load_model(path, max_size=1000)
    # bytes and fsspec URLs load the same file
    assert dbml.load_model(data, sha256=sha).sha256 == sha
    import fsspec

    fsspec.filesystem("memory").pipe("/models/churn.onnx", data)
    assert dbml.load_model("memory://models/churn.onnx", sha256=sha, size=size).name == "churn"


def _altered(path: str, out, key: str, value: str) -> str:
    proto = onnx.load(path)
    for entry in proto.metadata_props:
        if entry.key == key:
            entry.value = value
    onnx.save(proto, str(out))
    return str(out)


@pytest.mark.parametrize("key,value,error,message", [
    ("dbml.labels", json.dumps([0, 0, 1]), RecordError, "field 'labels'"),
    ("dbml.features", "not json", RecordError, "its dbml.features metadata is not valid JSON"),
    ("dbml.task", "telepathy", RecordError, "its dbml.task metadata is 'telepathy'"),
    ("dbml.record", json.dumps({"metrics": {}, "bad key!": 1}), RecordError, "has the key 'bad key!'"),
    ("dbml.features", "reversed", TransferError, "which do not match its dbml.features metadata"),
])  # fmt: skip
def test_import_and_score_share_one_validation(exported_models, tmp_path, key, value, error, message):
    """A file whose metadata was altered is refused alike by IMPORT MODEL and dbml.score."""
    con, files = exported_models
    if value == "reversed":  # the graph's inputs in another order than the metadata says
        meta = {p.key: p.value for p in onnx.load(files["tier"][0]).metadata_props}
        value = json.dumps(list(reversed(json.loads(meta[key]))))
    altered = _altered(files["tier"][0], tmp_path / "altered.onnx", key, value)
    _refused_alike(con, altered, "altered", error, message)


def _refused_alike(con, altered, name: str, error: type, message: str) -> None:
    """IMPORT MODEL and dbml.load_model refuse the altered file with the same error and text."""
    with pytest.raises(error, match=message) as by_import:
        con.sql(f"IMPORT MODEL {name} FROM '{altered}'")
    with pytest.raises(error, match=message) as by_load:
        dbml.load_model(altered)
    assert str(by_import.value) == str(by_load.value)


def test_unknown_record_keys_are_dropped_with_a_warning(exported_models, tmp_path):
    con, files = exported_models
    record = json.loads({p.key: p.value for p in onnx.load(files["amount"][0]).metadata_props}["dbml.record"])
    altered = _altered(files["amount"][0], tmp_path / "newer.onnx", "dbml.record", json.dumps({**record, "future_fact": 1}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = dbml.load_model(altered)
    assert any("dropped unknown field(s) future_fact" in str(w.message) for w in caught)
    assert model.record["metrics"] == record["metrics"]


def test_foreign_files_score_as_imported(exported_models, tmp_path):
    """A foreign file of plain float inputs: columns matched to its input names, as IMPORT
    matches them; dbml.score gives what PREDICT gives after IMPORT."""
    con, _ = exported_models
    path = tmp_path / "add.onnx"
    foreign_add_model(path)
    model = dbml.load_model(str(path))
    assert (model.task, model.functions, [f.name for f in model.features]) == ("imported", ("PREDICT",), ["x", "y"])
    data = {"X": [1.0, 2.5, None, -4.0], "y": pa.array([10, 20, 30, None], pa.int32()), "other": ["a", "b", "c", "d"]}
    got = model.score(data)
    con.sql(f"IMPORT MODEL adder FROM '{path}'")
    con.duckdb.register("data_rows", pa.table(data))
    want = con.sql("SELECT PREDICT(adder, *) AS p FROM data_rows").fetchall()
    assert got.column("prediction").to_pylist()[:2] == [21.0, 42.5] == [r[0] for r in want][:2]
    np.testing.assert_array_equal(np.asarray(got.column("prediction")), np.array([r[0] for r in want], dtype=np.float64))
    # an [N, F] input takes its column names from inputs=, as IMPORT's WITH (inputs = [...])
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [1.0, -1.0])
    graph = helper.make_graph([helper.make_node("MatMul", ["X", "w"], ["Y"])], "diff", [x], [y], initializer=[w])
    wide = tmp_path / "diff.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(wide))
    with pytest.raises(TransferError, match=r"input 'X' of '.*diff.onnx' has shape \[N, 2\]: it takes 2 columns"):
        dbml.load_model(str(wide))
    diff = dbml.score(str(wide), {"a": [5.0, 1.0], "b": [2.0, 3.0]}, inputs=["a", "b"])
    assert diff.column("prediction").to_pylist() == [3.0, -2.0]


def test_times_follow_the_timezone_argument(exported_models):
    """A timestamp with a time zone for a model trained on TIMESTAMP: read in ``timezone``,
    as DuckDB reads a TIMESTAMPTZ in its TimeZone setting."""
    con, files = exported_models
    zone = "America/New_York"
    con.sql(f"SET TimeZone = '{zone}'")
    try:
        aware_rows = f"(SELECT * REPLACE (timezone('{zone}', seen_at) AS seen_at) FROM score_rows)"
        want = con.sql(f"SELECT PREDICT(amount, *) AS p FROM {aware_rows} ORDER BY id").arrow().read_all()
    finally:
        con.sql("SET TimeZone = 'UTC'")
    rows = _rows(con)
    import zoneinfo

    aware = [None if v is None else v.replace(tzinfo=zoneinfo.ZoneInfo(zone)) for v in rows.column("seen_at").to_pylist()]
    column = pa.array(aware, pa.timestamp("us", "Asia/Tokyo"))  # the label is not what counts: the instant is
    rows = rows.set_column(rows.column_names.index("seen_at"), "seen_at", column)
    got = dbml.score(files["amount"][0], rows, timezone=zone)
    np.testing.assert_array_equal(np.asarray(got.column(0)), np.asarray(want.column(0)))
    in_utc = dbml.score(files["amount"][0], rows)  # five hours off: other inputs, other answers
    assert not np.array_equal(np.asarray(in_utc.column(0)), np.asarray(want.column(0)))


def test_scoring_imports_neither_duckdb_nor_torch(exported_models, tmp_path):
    """Nor sqlglot: the kinds build SQL only when DuckDB asks for it."""
    con, files = exported_models
    path = files["tier"][0]
    rows = _rows(con)
    import pyarrow.feather as feather

    feather.write_feather(rows, tmp_path / "rows.arrow")
    want = _sql(con, "PREDICT(tier, *) AS p").column("p").to_pylist()
    proc = run_without_torch(f"""
        import sys
        sys.modules["duckdb"] = None  # importing duckdb fails from here on
        import dbml
        import pyarrow.feather as feather
        rows = feather.read_table({str(tmp_path / "rows.arrow")!r})
        got = dbml.score({path!r}, rows, ("PREDICT", "PREDICT_PROBA"))
        print(got.column("prediction").to_pylist())
        print(dbml.load_model({path!r}).task)
        assert sys.modules["duckdb"] is None
        assert "torch" not in sys.modules
        assert not [m for m in sys.modules if m.startswith("sqlglot")]  # SQL is only built for DuckDB
    """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines == [str(want), "classification"]


def test_a_loaded_model_is_reused(exported_models):
    _, files = exported_models
    path, sha, _ = files["churn"]
    first = dbml.load_model(path)
    assert dbml.load_model(path, sha256=sha) is first  # the same bytes: the same checked session
    with pytest.raises(IntegrityError):
        dbml.score(first, {"age": [1]}, sha256="1" * 64)
    assert dbml.score(first, {c: [None] for c in SCORING_FEATURES.split(", ")}).num_rows == 1


def test_dbml_imports_duckdb_only_when_connecting():
    proc = run_without_torch("""
        import sys
        import dbml
        assert "duckdb" not in sys.modules and "dbml.connection" not in sys.modules
        assert callable(dbml.score) and dbml.FeatureError.__module__ == "dbml.errors"
        dbml.connect
        assert "duckdb" in sys.modules
        assert "torch" not in sys.modules
    """)
    assert proc.returncode == 0, proc.stderr


def test_dates_and_times_of_every_arrow_unit_score_alike(exported_models):
    """The same instants as timestamp[s], [ms], [ns] and date64 give PREDICT's answers."""
    con, files = exported_models
    want = _sql(con, "PREDICT(amount, *) AS p").column("p")
    rows = _rows(con)
    stamped = rows.column("stamped").combine_chunks()
    for unit in ("s", "ms", "ns"):
        data = rows.set_column(rows.column_names.index("stamped"), "stamped", stamped.cast(pa.timestamp(unit)))
        np.testing.assert_array_equal(np.asarray(dbml.score(files["amount"][0], data).column(0)), np.asarray(want))
    joined = rows.column("joined").combine_chunks().cast(pa.date64())
    data = rows.set_column(rows.column_names.index("joined"), "joined", joined)
    np.testing.assert_array_equal(np.asarray(dbml.score(files["amount"][0], data).column(0)), np.asarray(want))
    assert dt.date(2024, 1, 1) in rows.column("joined").to_pylist()


# -- class targets of every type PREDICT casts to; time zones; metadata; the cache ---------------


@pytest.mark.parametrize("name,arrow_type", [
    ("band", pa.string()),  # a text label: plain strings, as PREDICT gives (its UDF returns a dictionary array)
    ("due", pa.date32()),  # DATE: PREDICT is CAST(label AS DATE)
    ("slot", pa.timestamp("us")),  # TIMESTAMP, with fractions of a second
])  # fmt: skip
def test_class_targets_of_every_type_score_as_predict(exported_models, name, arrow_type):
    con, files = exported_models
    want = _sql(con, f"PREDICT({name}, *) AS p, PREDICT_PROBA({name}, *) AS q")
    model = dbml.load_model(files[name][0])
    got = model.score(_rows(con), ("PREDICT", "PREDICT_PROBA"))
    assert got.schema.field("prediction").type == want.schema.field("p").type == arrow_type
    assert got.column("prediction").to_pylist() == want.column("p").to_pylist()
    assert len(set(want.column("p").to_pylist())) > 1  # not one class for every row
    _assert_probabilities(got.column("probabilities"), want.column("q"))
    if name == "band":
        assert all(type(v) is str for v in got.column("prediction").to_pylist())


def test_date_and_timestamp_labels_read_as_duckdbs_cast(exported_models):
    """dbml.kinds.clock reads the text DuckDB writes for a value (the labels of a date or
    time target) as DuckDB's CAST of that text reads it: BC dates, years past 9999,
    infinities, every unit."""
    from dbml.kinds import clock

    con, _ = exported_models
    values = {
        "DATE": ["DATE '2024-02-29'", "DATE '1969-12-31'", "DATE '-0044-03-15'", "DATE '0001-01-01'", "DATE '12345-06-07'",
                 "'infinity'::DATE", "'-infinity'::DATE"],
        "TIMESTAMP": ["TIMESTAMP '2024-01-01 12:00:00.5'", "TIMESTAMP '1969-12-31 23:59:59.999999'", "'infinity'::TIMESTAMP",
                      "TIMESTAMP '0044-03-15 (BC) 01:02:03'", "TIMESTAMP '294247-01-10 04:00:54.775806'", "'-infinity'::TIMESTAMP"],
        "TIMESTAMP_S": ["TIMESTAMP_S '2024-01-01 12:00:01'", "TIMESTAMP_S '1900-01-01 00:00:00'", "'infinity'::TIMESTAMP_S"],
        "TIMESTAMP_MS": ["TIMESTAMP_MS '2024-01-01 12:00:01.123'", "TIMESTAMP_MS '1969-12-31 23:59:59.999'", "'-infinity'::TIMESTAMP_MS"],
        "TIMESTAMP_NS": ["TIMESTAMP_NS '2024-01-01 12:00:01.123456789'", "TIMESTAMP_NS '1677-09-22 00:00:00'"],
    }  # fmt: skip
    for t, vals in values.items():
        texts = [con.sql(f"SELECT CAST(CAST({v} AS {t}) AS VARCHAR)").fetchall()[0][0] for v in vals]
        con.duckdb.register("label_texts", pa.table({"x": texts}))
        want = con.duckdb.sql(f"SELECT CAST(x AS {t}) AS v FROM label_texts").arrow().read_all().column("v").combine_chunks()
        got = clock.label_values(texts, t)
        assert got.type == want.type and got.equals(want), (t, texts, got, want)
    assert "0045-03-15 (BC)" in [con.sql("SELECT CAST(DATE '-0044-03-15' AS VARCHAR)").fetchall()[0][0]]
    for t, bad in (("DATE", "March 8"), ("DATE", "2024-02-30"), ("TIMESTAMP_S", "2024-01-01 00:00:00.5"), ("TIMESTAMP", "2024-01-01")):
        with pytest.raises(ValueError, match=f"{bad!r} is not a {t} as DuckDB writes one"):
            clock.label_values([bad], t)


def test_date_labels_that_are_no_dates_are_refused_by_import_and_load(exported_models, tmp_path):
    con, files = exported_models
    altered = _altered(files["due"][0], tmp_path / "due.onnx", "dbml.labels", json.dumps(["2024-03-01", "March 8", "2024-03-15"]))
    message = r"field 'labels\[1\]' is 'March 8', which is not a DATE as DuckDB writes one \(the target type is DATE\)"
    _refused_alike(con, altered, "altered_due", RecordError, message)


def test_class_targets_scored_only_in_duckdb_are_refused_at_load(exported_models, tmp_path):
    """A TIME target trains and PREDICT gives TIME in DuckDB; outside it the file is refused
    when loaded, naming the model, its target type and the types scored there."""
    con, files = exported_models
    con.sql("TRAIN MODEL alarm FROM (SELECT age, plan, CAST(slot AS TIME) AS alarm FROM train_rows) TARGET alarm "
            "WITH (task = 'classification', epochs = 1, seed = 7, progress = false)")  # fmt: skip
    assert con.sql("SELECT typeof(PREDICT(alarm, *)) FROM score_rows LIMIT 1").fetchall() == [("TIME",)]
    path = tmp_path / "alarm.onnx"
    con.sql(f"EXPORT MODEL alarm TO '{path}'")
    supported = r"DATE, TIMESTAMP, TIMESTAMP_S, TIMESTAMP_MS, TIMESTAMP_NS: score it with PREDICT in DuckDB"
    with pytest.raises(TargetError, match=r"model 'alarm' version 1 from '.*alarm.onnx' is a classifier of the TIME target "
                                          r"'alarm'; outside DuckDB, dbml.score and dbml.spark give PREDICT for class targets "
                                          r"of type VARCHAR, BOOLEAN, TINYINT, .*" + supported):  # fmt: skip
        dbml.load_model(str(path))
    with pytest.raises(TargetError, match="is a classifier of the TIME target"):
        dbml.score(str(path), _rows(con))
    for i, t in enumerate(("UUID", "VARCHAR[]", "TIMESTAMP WITH TIME ZONE", "INTERVAL")):
        altered = _altered(files["band"][0], tmp_path / f"band{i}.onnx", "dbml.target_type", t)
        with pytest.raises(TargetError, match=rf"is a classifier of the {re.escape(t)} target 'band'; outside DuckDB"):
            dbml.load_model(altered)
    beyond = _altered(files["tier"][0], tmp_path / "beyond.onnx", "dbml.labels", json.dumps([0, 1, 3_000_000_000]))
    with pytest.raises(TargetError, match=r"has class labels \[0, 1, 3000000000\] beyond its target type INTEGER"):
        dbml.load_model(beyond)


def test_fixed_offsets_read_as_duckdb_reads_them(exported_models):
    """GMT+2, UTC-05:00, GMT+02:30 as DuckDB's TimeZone read as those offsets east of UTC;
    +02:00 and Z (which Spark takes and DuckDB does not) as the same offsets."""
    con, files = exported_models
    rows = _rows(con)
    aware = pa.array([None if v is None else v.replace(tzinfo=dt.timezone.utc) for v in rows.column("seen_at").to_pylist()],
                     pa.timestamp("us", "UTC"))  # fmt: skip
    rows = rows.set_column(rows.column_names.index("seen_at"), "seen_at", aware)
    answers = {}
    for zone, same in (("GMT+2", "+02:00"), ("UTC-05:00", "-05"), ("GMT+02:30", "+0230"), ("UTC", "Z")):
        con.sql(f"SET TimeZone = '{zone}'")
        try:
            want = con.sql("SELECT PREDICT(amount, *) AS p FROM (SELECT * REPLACE (timezone('UTC', seen_at) AS seen_at) "
                           "FROM score_rows) ORDER BY id").arrow().read_all().column(0)  # fmt: skip
        finally:
            con.sql("SET TimeZone = 'UTC'")
        for z in (zone, same):
            got = dbml.score(files["amount"][0], rows, timezone=z).column(0)
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=z)
        answers[zone] = np.asarray(want)
    assert not np.array_equal(answers["GMT+2"], answers["UTC-05:00"])  # the offset counts
    with pytest.raises(OptionError, match=r"time zone 'UTC\+01:30' is ambiguous: DuckDB reads it as UTC\+01 \(Etc/GMT-1\)"):
        dbml.score(files["amount"][0], rows, timezone="UTC+01:30")
    with pytest.raises(OptionError, match=r"time zone '\+25:00' is out of range"):
        dbml.score(files["amount"][0], rows, timezone="+25:00")


def test_a_time_zone_is_checked_only_for_a_model_with_a_datetime_feature(tmp_path):
    path = tmp_path / "add.onnx"
    foreign_add_model(path)
    got = dbml.score(str(path), {"x": [1.0], "y": [2.0]}, timezone="Mars/Olympus")  # no date or time feature
    assert got.column(0).to_pylist() == [5.0]


@pytest.mark.parametrize("value", ["two", [3], 0, 1001, True])
def test_options_the_scoring_path_reads_are_validated_at_the_boundary(exported_models, tmp_path, value):
    """options.horizon (int() in the graph check) and the other forecasting options:
    refused by IMPORT and load_model alike, naming the file and the field."""
    con, files = exported_models
    record = json.loads({p.key: p.value for p in onnx.load(files["tier"][0]).metadata_props}["dbml.record"])
    record["options"]["horizon"] = value
    altered = _altered(files["tier"][0], tmp_path / "horizon.onnx", "dbml.record", json.dumps(record))
    message = rf"'{re.escape(altered)}': field 'options.horizon' is .*, which is not a whole number between 1 and 1,000"
    _refused_alike(con, altered, "altered_horizon", RecordError, message)
    record["options"]["horizon"], record["options"]["window"] = 1, "eight"
    altered = _altered(files["tier"][0], tmp_path / "window.onnx", "dbml.record", json.dumps(record))
    with pytest.raises(RecordError, match="field 'options.window' is 'eight'"):
        dbml.load_model(altered)


def test_the_cache_is_keyed_by_what_makes_the_scorer(exported_models, tmp_path):
    """The same bytes from another place name that place; a foreign file's external data
    beside it is read again, wherever and whenever it is loaded."""
    _, files = exported_models
    data = open(files["churn"][0], "rb").read()
    import fsspec

    fsspec.filesystem("memory").pipe("/elsewhere/churn.onnx", data)
    here, there = dbml.load_model(files["churn"][0]), dbml.load_model("memory://elsewhere/churn.onnx")
    assert here.sha256 == there.sha256 and here.url != there.url and "memory://elsewhere" in there.what
    assert dbml.load_model(files["churn"][0]) is here
    assert dbml.load_model(files["churn"][0], max_size=10**8) is not here  # another limit: checked under it

    from onnx import TensorProto, helper, numpy_helper

    def times(folder, w: float) -> str:
        folder.mkdir()
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
        out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1])
        weight = numpy_helper.from_array(np.full((1, 1), w, np.float32), "w")
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["out"])], "times", [x], [out], initializer=[weight])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save_model(model, str(folder / "times.onnx"), save_as_external_data=True, location="w.bin", size_threshold=0)
        return str(folder / "times.onnx")

    a, b = times(tmp_path / "a", 2.0), times(tmp_path / "b", 3.0)
    assert open(a, "rb").read() == open(b, "rb").read()  # one file, other data beside it
    assert dbml.score(a, {"x": [1.0]}).column(0).to_pylist() == [2.0]
    assert dbml.score(b, {"x": [1.0]}).column(0).to_pylist() == [3.0]
    first = dbml.load_model(a)
    assert dbml.load_model(a) is first  # the same data beside it: the same Scorer
    (tmp_path / "a" / "w.bin").write_bytes(np.full(1, 5.0, np.float32).tobytes())
    assert dbml.score(a, {"x": [1.0]}).column(0).to_pylist() == [5.0]


def test_bytes_over_the_limit_are_refused_before_any_copy():
    import tracemalloc

    big = bytearray(32 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(TransferError, match=r"'<33,554,432 bytes>' is over the import limit of 1,000 bytes"):
            dbml.load_model(memoryview(big), max_size=1000)
        with pytest.raises(TransferError, match="is over the import limit"):
            dbml.load_model(big, max_size=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
    wide = memoryview(np.zeros(1000, np.float64))  # 1,000 items, 8,000 bytes
    with pytest.raises(TransferError, match=r"'<8,000 bytes>' is over the import limit of 5,000 bytes"):
        dbml.load_model(wide, max_size=5000)


def test_submodules_are_reached_from_import_dbml_alone():
    """dbml's messages say dbml.runtime.configure_limits(...): it works after `import dbml`,
    without DuckDB; submodules that need DuckDB import it when touched."""
    proc = run_without_torch("""
        import sys
        import dbml
        assert callable(dbml.runtime.configure_limits)
        assert "duckdb" not in sys.modules, "dbml.runtime imported DuckDB"
        assert "KINDS" in dir(dbml.kinds) and callable(dbml.registry.records.validate_record)
        assert "duckdb" not in sys.modules
        assert dbml.registry.Registry.__module__ == "dbml.registry.store"
        try:
            dbml.no_such_module
        except AttributeError as err:
            assert "no attribute 'no_such_module'" in str(err)
        else:
            raise AssertionError("dbml.no_such_module")
        assert not hasattr(dbml, "__no_such_dunder__")
        assert "torch" not in sys.modules
    """)
    assert proc.returncode == 0, proc.stderr
