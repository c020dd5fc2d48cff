"""dbml.spark: models trained in DuckDB and exported score Spark DataFrames with PREDICT's
answers row for row (labels exactly and in the target's type, probabilities to 1e-6),
through mapInArrow, in Python workers that import neither DuckDB nor torch; bad input is
refused on the driver, before any Spark job.

One local Spark session serves the module (its start takes tens of seconds)."""

from __future__ import annotations

import hashlib
import sys
import zoneinfo
from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pytest
from conftest import foreign_add_model, local_spark

pytest.importorskip("pyspark")

import dbml.scoring  # noqa: E402
import dbml.spark  # noqa: E402
from dbml.errors import FeatureError, IntegrityError, OptionError, TransferError  # noqa: E402

ZONE = "America/New_York"
SCHEMA = ("id bigint, age int, spend decimal(6,2), member boolean, joined date, seen_at timestamp, stamped timestamp_ntz, "
          "plan string, x double, y double")  # fmt: skip


@pytest.fixture(scope="module")
def spark():
    session = local_spark("dbml-tests", {"spark.sql.session.timeZone": ZONE,
                                         "spark.sql.execution.arrow.maxRecordsPerBatch": "50"})  # several Arrow batches per task
    yield session
    session.stop()


@pytest.fixture(scope="module")
def scoring(exported_models, spark, tmp_path_factory):
    """(DuckDB connection, exported files, the Spark DataFrame of view ``spark_rows``)."""
    con, files = exported_models
    path = tmp_path_factory.mktemp("foreign") / "add.onnx"
    foreign_add_model(path)
    con.sql(f"IMPORT MODEL adder FROM '{path}'")
    files = {**files, "adder": (str(path), None, None)}
    con.sql("CREATE OR REPLACE VIEW spark_rows AS SELECT *, (id % 7)::DOUBLE AS x, "
            "CASE WHEN id % 5 = 0 THEN NULL ELSE id / 3.0 END AS y FROM score_rows")  # fmt: skip
    rows = con.sql("SELECT id, age, spend, member, joined, seen_at, stamped, plan, x, y FROM spark_rows ORDER BY id").fetchall()
    # seen_at becomes a TimestampType (an instant) showing the same wall clock in the session's zone,
    # stamped a TimestampNTZType (a wall clock, like DuckDB's TIMESTAMP)
    zone = zoneinfo.ZoneInfo(ZONE)
    rows = [r[:5] + (None if r[5] is None else r[5].replace(tzinfo=zone),) + r[6:] for r in rows]
    return con, files, spark.createDataFrame(rows, SCHEMA)


def test_spark_gives_predicts_answers_row_for_row(scoring):
    con, files, df = scoring
    tier, tier_sha, tier_size = files["tier"]
    scored = dbml.spark.predict(df, tier, sha256=tier_sha, size=tier_size)
    scored = dbml.spark.predict_proba(scored, tier, output="tier_proba")
    scored = dbml.spark.predict(scored, files["churn"][0], output="churn")
    scored = dbml.spark.predict(scored, dbml.load_model(files["amount"][0]), output="amount")
    scored = dbml.spark.predict(scored, files["adder"][0], output="added")
    for name in ("band", "due", "slot"):  # VARCHAR, DATE and TIMESTAMP class targets
        scored = dbml.spark.predict(scored, files[name][0], output=name)
    types = {f.name: f.dataType.simpleString() for f in scored.schema.fields}
    assert {k: types[k] for k in ("prediction", "tier_proba", "churn", "amount", "added", "band", "due", "slot")} == {
        "prediction": "int", "tier_proba": "struct<0:double,1:double,2:double>", "churn": "boolean",
        "amount": "double", "added": "double", "band": "string", "due": "date", "slot": "timestamp_ntz",
    }  # fmt: skip
    got = sorted(scored.select("id", "prediction", "tier_proba", "churn", "amount", "added", "band", "due", "slot").collect(),
                 key=lambda r: r.id)  # fmt: skip
    want = con.sql(
        "SELECT id, PREDICT(tier, *), PREDICT_PROBA(tier, *), PREDICT(churn, *), PREDICT(amount, *), PREDICT(adder, *), "
        "PREDICT(band, *), PREDICT(due, *), PREDICT(slot, *) FROM spark_rows ORDER BY id"
    ).fetchall()
    assert [r.id for r in got] == [w[0] for w in want] and len(got) == 120
    assert [r.prediction for r in got] == [w[1] for w in want]
    assert [r.churn for r in got] == [w[3] for w in want]
    for k, name in enumerate(("band", "due", "slot"), start=6):
        assert [r[name] for r in got] == [w[k] for w in want], name
        assert len({w[k] for w in want}) > 1, name
    assert all(type(r.band) is str for r in got)
    proba = np.array([[r.tier_proba[k] for k in ("0", "1", "2")] for r in got])
    np.testing.assert_allclose(proba, np.array([[w[2][k] for k in ("0", "1", "2")] for w in want]), atol=1e-6, rtol=0)
    np.testing.assert_allclose([r.amount for r in got], [w[4] for w in want], rtol=1e-6, atol=1e-6)
    added = np.array([r.added for r in got], dtype=np.float64)
    np.testing.assert_array_equal(added, np.array([w[5] for w in want], dtype=np.float64))  # NaN where y is NULL
    # the rows hold NULLs in every feature, a plan no training row had, and both kinds of timestamp
    plans = {r[0] for r in con.sql("SELECT plan FROM spark_rows").fetchall()}
    assert None in plans and "enterprise" in plans


def test_workers_import_neither_duckdb_nor_torch(scoring):
    """The scoring function itself, wrapped to report its worker's modules once it scored."""
    _, files, df = scoring
    from pyspark.sql import types as T

    score, schema = dbml.spark.scoring_function(df, files["tier"][0])

    def report(batches):
        for batch in score(batches):
            loaded = ",".join(m for m in ("duckdb", "torch", "dbml.connection", "sqlglot") if m in sys.modules)
            yield batch.append_column("loaded", pa.array([loaded or "-"] * batch.num_rows, pa.string()))

    rows = df.mapInArrow(report, T.StructType([*schema.fields, T.StructField("loaded", T.StringType())])).collect()
    assert len(rows) == 120 and {r.loaded for r in rows} == {"-"}
    assert "duckdb" in sys.modules  # the driver has it: the test would see it if the workers shared this process


def test_bad_input_is_refused_on_the_driver_before_any_job(scoring, tmp_path):
    con, files, df = scoring
    tier, sha, size = files["tier"]
    sc = df.sparkSession.sparkContext
    sc.setJobGroup("dbml-refusals", "bad input for dbml.spark")
    try:
        with pytest.raises(FeatureError, match=r"the data is missing feature column\(s\) plan of model 'tier' version 1"):
            dbml.spark.predict(df.drop("plan"), tier)
        with pytest.raises(FeatureError, match=r"column 'age' has type string, but the numeric feature 'age' of model 'tier' "
                                               r"version 1 from '.*tier.onnx' \(trained as INTEGER\) takes numbers"):  # fmt: skip
            dbml.spark.predict(df.withColumn("age", df.age.cast("string")), tier)
        from pyspark.sql import functions as F

        with pytest.raises(FeatureError, match=r"column 'joined' has type array<int>, but the datetime feature 'joined' of model "
                                               r"'tier' version 1 .*takes dates or timestamps"):  # fmt: skip
            dbml.spark.predict(df.withColumn("joined", F.array(df.age)), tier)
        with pytest.raises(FeatureError, match=r"columns 'plan', 'PLAN', which all match"):
            dbml.spark.predict(df.select("*", df.plan.alias("PLAN")), tier)  # withColumn would replace plan
        with pytest.raises(IntegrityError, match=f"not the {'0' * 64} given"):
            dbml.spark.predict(df, tier, sha256="0" * 64)
        with pytest.raises(IntegrityError, match=f"not the {size + 1:,} given"):
            dbml.spark.predict(df, tier, size=size + 1)
        truncated = tmp_path / "truncated.onnx"
        truncated.write_bytes(open(tier, "rb").read()[:1000])
        with pytest.raises(TransferError, match="is not a valid ONNX model"):
            dbml.spark.predict(df, str(truncated))
        notes = tmp_path / "notes.onnx"
        notes.write_text("PREDICT me")
        with pytest.raises(TransferError, match="is not a valid ONNX model"):
            dbml.spark.predict(df, str(notes))
        with pytest.raises(FeatureError, match="PREDICT_PROBA needs a classification model"):
            dbml.spark.predict_proba(df, files["amount"][0])
        with pytest.raises(OptionError, match="already has a column 'plan'"):
            dbml.spark.predict(df, tier, output="PLAN")
        assert sc.statusTracker().getJobIdsForGroup("dbml-refusals") == []
    finally:
        sc.setJobGroup("", "")


def test_spark_types_of_sql_types():
    from pyspark.sql import types as T

    assert dbml.spark.spark_type("VARCHAR") == T.StringType()
    assert dbml.spark.spark_type("BIGINT") == T.LongType()
    assert dbml.spark.spark_type("INTEGER") == T.IntegerType()
    assert dbml.spark.spark_type("FLOAT[7]") == T.ArrayType(T.FloatType(), True)
    assert dbml.spark.spark_type({"yes": "DOUBLE"}) == T.StructType([T.StructField("yes", T.DoubleType(), True)])
    assert dbml.spark.spark_type("DATE") == T.DateType()
    assert dbml.spark.spark_type("TIMESTAMP") == dbml.spark.spark_type("TIMESTAMP_MS") == T.TimestampNTZType()
    with pytest.raises(OptionError, match="has no Spark type"):
        dbml.spark.spark_type("INTERVAL")
    with pytest.raises(OptionError, match=r"TIMESTAMP_NS holds nanoseconds, which Spark's TimestampNTZType \(microseconds\) cannot"):
        dbml.spark.spark_type("TIMESTAMP_NS")


def test_an_offset_session_time_zone_scores_as_duckdb(scoring):
    """A fixed offset as the session's zone (which Spark takes and DuckDB spells GMT+2):
    the instants of a TimestampType column read at that offset."""
    con, files, df = scoring
    spark = df.sparkSession
    spark.conf.set("spark.sql.session.timeZone", "+02:00")
    try:
        got = sorted(dbml.spark.predict(df, files["amount"][0]).select("id", "prediction").collect(), key=lambda r: r.id)
    finally:
        spark.conf.set("spark.sql.session.timeZone", ZONE)
    instants = f"(SELECT * REPLACE (timezone('{ZONE}', seen_at) AS seen_at) FROM spark_rows)"
    con.sql("SET TimeZone = 'GMT+2'")
    try:
        want = con.sql(f"SELECT id, PREDICT(amount, *) FROM {instants} ORDER BY id").fetchall()
    finally:
        con.sql("SET TimeZone = 'UTC'")
    assert [r.id for r in got] == [w[0] for w in want]
    np.testing.assert_allclose([r.prediction for r in got], [w[1] for w in want], rtol=1e-6, atol=1e-6)
    in_new_york = [w[0] for w in con.sql("SELECT PREDICT(amount, *) FROM spark_rows ORDER BY id").fetchall()]
    assert not np.allclose([r.prediction for r in got], in_new_york, rtol=1e-6, atol=1e-6)  # the offset counts


def test_a_session_time_zone_dbml_cannot_read_is_refused_on_the_driver(scoring):
    """Java's short id PST, which Spark takes: refused before any job for a model with a
    date or time feature; a model without one does not read the zone."""
    _, files, df = scoring
    spark, sc = df.sparkSession, df.sparkSession.sparkContext
    spark.conf.set("spark.sql.session.timeZone", "PST")
    sc.setJobGroup("dbml-zone", "a session time zone dbml cannot read")
    try:
        with pytest.raises(OptionError, match=r"the Spark session's time zone \(spark.sql.session.timeZone\), which model "
                                              r"'amount' version 1 from '.*amount.onnx' reads: unknown time zone 'PST'"):  # fmt: skip
            dbml.spark.predict(df, files["amount"][0])
        assert sc.statusTracker().getJobIdsForGroup("dbml-zone") == []
        added = dbml.spark.predict(df.select("id", "x", "y"), files["adder"][0]).collect()
        assert len(added) == 120
    finally:
        spark.conf.set("spark.sql.session.timeZone", ZONE)
        sc.setJobGroup("", "")


def test_workers_load_under_the_drivers_max_size(scoring, monkeypatch):
    """A Scorer loaded with a larger max_size than the default: its workers take the same
    limit (here the default is made smaller than the file)."""
    con, files, df = scoring
    monkeypatch.setitem(dbml.scoring.load_model.__kwdefaults__, "max_size", 1000)
    monkeypatch.setattr(dbml.spark, "_workers", OrderedDict())
    scorer = dbml.scoring.load_model(files["tier"][0], max_size=10**8)
    score, schema = dbml.spark.scoring_function(df, scorer)
    rows = con.sql("SELECT id, age, spend, member, joined, seen_at, stamped, plan, x, y FROM spark_rows ORDER BY id").arrow()
    out = pa.Table.from_batches(list(score(iter(rows.read_all().to_batches()))))  # the function a worker runs
    want = [r[0] for r in con.sql("SELECT PREDICT(tier, *) FROM spark_rows ORDER BY id").fetchall()]
    assert out.column("prediction").to_pylist() == want and schema.names[-1] == "prediction"


def test_workers_keep_a_few_models(exported_models, monkeypatch):
    _, files = exported_models
    monkeypatch.setattr(dbml.spark, "_workers", OrderedDict())
    names = ["tier", "churn", "band", "due", "slot", "amount"]
    for name in names:
        model = dbml.load_model(files[name][0])
        sha = hashlib.sha256(model.blob).hexdigest()
        assert dbml.spark._worker_scorer(model.blob, sha, None, model.max_size).name == name
    assert len(dbml.spark._workers) == dbml.spark._WORKER_MODELS < len(names)
    assert [s.name for s in dbml.spark._workers.values()] == names[-dbml.spark._WORKER_MODELS:]


def test_spark_scores_raw_text_as_predict_does(spark, tmp_path):
    """A text column reaches the workers as raw strings and the graph tokenizes them there:
    tabs, newlines, unicode, punctuation, empty strings and NULL score as in DuckDB."""
    con = dbml.connect()
    con.sql("CREATE TABLE notes AS SELECT CASE WHEN i % 2 = 0 THEN 'Great,\tloved it! ' ELSE 'awful…\\nboring; ' END "
            "|| 'note ' || (i % 13)::VARCHAR AS body, (i % 2) AS good FROM range(120) r(i)")  # fmt: skip
    con.sql("TRAIN MODEL notes FROM notes TARGET good WITH (text = ['body'], epochs = 10, seed = 1, text_width = 8)")
    path = str(tmp_path / "notes.onnx")
    con.sql(f"EXPORT MODEL notes TO '{path}'")
    texts = ["GREAT\tloved it", "awful\nboring", "École 🙂 great", "", None, "...", "loved,loved,loved", "boring\r\nawful"]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id INT, body STRING")
    got = [r.prediction for r in sorted(dbml.spark.predict(df, path).collect(), key=lambda r: r.id)]
    con.sql("CREATE TABLE odd AS SELECT * FROM (SELECT unnest(?) AS body, generate_subscripts(?, 1) AS i)", params=[texts, texts])
    want = [r[0] for r in con.sql("SELECT PREDICT(notes, body) FROM odd ORDER BY i").fetchall()]
    assert got == want
    assert got[0] != got[1]  # the words, not the note numbers, decide
