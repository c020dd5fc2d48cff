"""Bad input gets a dbml error naming the culprit, and leaves the registry as it was."""

from __future__ import annotations

import duckdb
import pytest
from conftest import registry_counts, udf_names

from dbml.training import pipeline
from dbml.errors import (
    ExportError, FeatureError, InvalidNameError, ModelNotFoundError, OptionError,
    SourceError, TargetError, VersionNotFoundError,
)  # fmt: skip
from dbml.training import Callback


@pytest.fixture
def trained(con, mixed):
    con.sql(f"TRAIN MODEL churn FROM (SELECT age, plan, churned FROM {mixed}) TARGET churned WITH (epochs = 2, progress = false)")
    return con


BAD_TRAIN = [
    ("TRAIN MODEL m FROM nowhere TARGET y", SourceError, "source nowhere of model 'm'.*nowhere does not exist"),
    ("TRAIN MODEL m FROM 'missing.parquet' TARGET y", SourceError, "source 'missing.parquet'"),
    ("TRAIN MODEL m FROM mixed TARGET nope", TargetError, "target column 'nope' is not in the source mixed"),
    ("TRAIN MODEL m FROM (SELECT age, 'x' AS y FROM mixed) TARGET y", TargetError, "target column 'y' has a single value \\('x'\\)"),
    ("TRAIN MODEL m FROM (SELECT * FROM mixed WHERE id < 0) TARGET churned", SourceError, "has no rows"),
    ("TRAIN MODEL m FROM mixed TARGET churned WITH (epoch = 3)", OptionError, "unknown option 'epoch'.*valid options are: .*epochs"),
    ("TRAIN MODEL m FROM mixed TARGET churned WITH (epochs = 'many')", OptionError, "option 'epochs' must be a int, got 'many'"),
    ("TRAIN MODEL m FROM mixed TARGET churned WITH (hidden = 64.5)", OptionError, "option 'hidden' must be a list of integers"),
    ("TRAIN MODEL m FROM mixed TARGET churned WITH (validation = 1.5)", OptionError, "option 'validation' must be in \\[0, 1\\)"),
    ("TRAIN MODEL m FROM mixed TARGET churned WITH (device = 'tpu')", OptionError, "option 'device' must be one of auto, cpu, cuda"),
    ("TRAIN MODEL m USING nonet FROM mixed TARGET churned", OptionError, "unknown architecture 'nonet'.*available: autoencoder, bag, cnn, gru, lstm, mlp"),
    ("TRAIN MODEL m FROM mixed", TargetError, "needs a TARGET column"),
    ('TRAIN MODEL "my model" FROM mixed TARGET churned', InvalidNameError, "model name 'my model' is not a valid identifier"),
    ("TRAIN MODEL m FROM (SELECT {'a': 1} AS l, churned FROM mixed) TARGET churned", FeatureError, "column 'l' has type STRUCT"),
    ("TRAIN MODEL m FROM (SELECT ['a'] AS l, churned FROM mixed) TARGET churned", FeatureError, "column 'l' has type VARCHAR\\[\\]"),
    ("TRAIN MODEL m FROM (SELECT age, churned, churned AS label FROM mixed) TARGET churned", FeatureError, "feature column 'label'"),
]


@pytest.mark.parametrize("sql, error, words", BAD_TRAIN, ids=[w for _, _, w in BAD_TRAIN])
def test_bad_train_input(trained, sql, error, words):
    before = registry_counts(trained)
    with pytest.raises(error, match=words) as info:
        trained.sql(sql)
    assert str(info.value).startswith("dbml: ")
    assert registry_counts(trained) == before


BAD_PREDICT = [
    ("SELECT PREDICT(nope, *) FROM mixed", ModelNotFoundError, "model 'nope' does not exist"),
    ("SELECT PREDICT('churn:7', *) FROM mixed", VersionNotFoundError, "model 'churn' has no version 7; its versions are 1"),
    ("SELECT PREDICT('churn@prod', *) FROM mixed", VersionNotFoundError, "model 'churn' has no alias 'prod'"),
    ("SELECT PREDICT(churn, *) FROM (SELECT age FROM mixed)", FeatureError, "needs feature column 'plan'"),
    ("SELECT PREDICT(churn, age) FROM mixed", FeatureError, "missing feature column\\(s\\) plan"),
    ("SELECT PREDICT('bad name', *) FROM mixed", InvalidNameError, "'bad name'"),
]


@pytest.mark.parametrize("sql, error, words", BAD_PREDICT, ids=[w for _, _, w in BAD_PREDICT])
def test_bad_predict_input(trained, sql, error, words):
    before = registry_counts(trained)
    with pytest.raises(error, match=words):
        trained.sql(sql)
    assert registry_counts(trained) == before


def test_plain_sql_errors_are_duckdbs_own(con):
    raw = duckdb.connect()
    for sql in ["SELECT * FROM nowhere", "SELEC 1", "SELECT 'a'::INTEGER", "CREATE TABLE x(a INT); INSERT INTO x VALUES ('b')"]:
        with pytest.raises(duckdb.Error) as ours:
            rel = con.sql(sql)
            rel.fetchall() if rel is not None else None
        with pytest.raises(duckdb.Error) as theirs:
            rel = raw.sql(sql)
            rel.fetchall() if rel is not None else None
        assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


class _Interrupt(Callback):
    def on_epoch_end(self, log):
        if log.epoch == 2:
            raise KeyboardInterrupt


def test_ctrl_c_during_training_writes_nothing(con, mixed, tmp_path):
    before, functions = registry_counts(con), udf_names(con)
    with pytest.raises(KeyboardInterrupt):
        con.train("stopped", mixed, target="churned", epochs=10, callbacks=[_Interrupt()])
    assert registry_counts(con) == before and udf_names(con) == functions
    assert con.duckdb.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT internal").fetchall()[0][0] == len(
        con.duckdb.execute("SELECT * FROM duckdb_tables() WHERE schema_name = 'dbml' OR table_name = 'mixed'").fetchall()
    )


def test_parity_failure_writes_nothing(con, mixed, monkeypatch):
    monkeypatch.setattr(pipeline, "PARITY_TOLERANCE", -1.0)
    before = registry_counts(con)
    with pytest.raises(ExportError, match="disagrees with torch.*not saved"):
        con.sql(f"TRAIN MODEL p FROM {mixed} TARGET churned WITH (epochs = 1, progress = false)")
    assert registry_counts(con) == before


def test_failed_registry_write_rolls_back(con, mixed, monkeypatch):
    from dbml.registry import Registry

    def broken(self, cur, *args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Registry, "_audit", broken)
    before = registry_counts(con)
    with pytest.raises(RuntimeError, match="disk full"):
        con.sql(f"TRAIN MODEL p FROM {mixed} TARGET churned WITH (epochs = 1, progress = false)")
    assert registry_counts(con) == before


def test_cuda_requested_without_cuda(con, mixed):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(OptionError, match="no CUDA device"):
        con.sql(f"TRAIN MODEL g FROM {mixed} TARGET churned WITH (device = 'cuda')")
