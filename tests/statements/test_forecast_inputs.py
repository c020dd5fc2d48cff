"""Forecasting on inputs at the edges, each refused by a named dbml error with the registry
unchanged, or taken: a FORECAST over the row limit, infinite or huge target values, an
empty source, series keys of every type (lists and NaN refused; HUGEINT, DATE, TIMESTAMP
and DECIMAL kept and given back in their types), times near the end of their types'
ranges, the confidence option; and the split-conformal intervals a version keeps
(``metrics.intervals``), the seasonal naive baseline, and a version stored before them."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math

import numpy as np
import pytest
from conftest import registry_counts

import dbml
from dbml.data import series as fs
from dbml.errors import FeatureError, OptionError, SourceError, TargetError
from dbml.statements import forecast as forecast_statement

TINY = "window = 8, horizon = 2, epochs = 1, hidden = 4, progress = false, seed = 0"


def _stored(con, model: str) -> dict:
    return json.loads(con.sql(f"SELECT metrics FROM dbml.model_versions WHERE model = '{model}' ORDER BY version DESC LIMIT 1").fetchall()[0][0])


def _series(key: str, n_series: int = 2, days: int = 30) -> str:
    """A source of ``n_series`` daily series keyed by ``key`` (SQL over s, the series number)."""
    return (f"(SELECT {key} AS k, DATE '2024-01-01' + i::INTEGER AS day, (s + i % 7)::DOUBLE AS y "
            f"FROM range({n_series}) a(s), range({days}) b(i))")  # fmt: skip


# -- 1. the size of a FORECAST -------------------------------------------------------------------
def test_a_forecast_past_the_row_limit_is_refused_before_any_forecast(con, monkeypatch):
    con.sql(f"CREATE TABLE many AS SELECT * FROM {_series('s', 100)}")
    con.sql(f"TRAIN MODEL fc USING gru FROM many TARGET y WITH (time = 'day', series = 'k', {TINY})")

    def never(*args, **kwargs):
        raise AssertionError("the forecaster ran")

    monkeypatch.setattr(fs, "roll", never)
    before = registry_counts(con)
    for sql in ("FORECAST MODEL fc HORIZON 100000 FROM many", "FORECAST MODEL fc HORIZON 100000"):
        with pytest.raises(OptionError, match=r"HORIZON 100,000 would give 100 series x 100,000 steps = 10,000,000 rows, "
                                              r"over the 5,000,000 .*MAX_FORECAST_ROWS.*at most 50,000"):
            con.sql(sql)
    assert registry_counts(con) == before
    assert forecast_statement.MAX_FORECAST_ROWS == 5_000_000
    monkeypatch.undo()
    monkeypatch.setattr(forecast_statement, "MAX_FORECAST_ROWS", 2_000)  # the bound, where it is cheap to reach
    with pytest.raises(OptionError, match=r"HORIZON 21 would give 100 series x 21 steps = 2,100 rows, over the 2,000 .*at most 20"):
        con.sql("FORECAST MODEL fc HORIZON 21")
    rel = con.sql("FORECAST MODEL fc HORIZON 20")  # at the bound: the rows, as Arrow columns
    assert rel.columns == ["k", "day", "forecast", "lower", "upper"]
    assert [str(t) for t in rel.types] == ["BIGINT", "DATE", "DOUBLE", "DOUBLE", "DOUBLE"]
    assert con.sql("SELECT count(*), count(DISTINCT k), max(day) FROM rel").fetchall() == [(2_000, 100, dt.date(2024, 2, 19))]


def test_keys_come_back_in_their_type_and_order(con):
    con.sql(f"TRAIN MODEL small USING gru FROM {_series('(s + 1)::SMALLINT', 3)} TARGET y WITH (time = 'day', series = 'k', {TINY})")
    rel = con.sql("FORECAST MODEL small HORIZON 3")
    assert [str(t) for t in rel.types][:2] == ["SMALLINT", "DATE"]
    assert [r[:2] for r in rel.fetchall()] == [(k, dt.date(2024, 1, 30) + dt.timedelta(days=d)) for k in (1, 2, 3) for d in (1, 2, 3)]


# -- 2. target values a FLOAT cannot hold --------------------------------------------------------
@pytest.mark.parametrize("value", ["'inf'::DOUBLE", "'-inf'::DOUBLE", "1e39"])
def test_infinite_or_huge_values_are_refused_everywhere(con, value):
    """In the last ``horizon`` rows too (the windows' range check saw only the histories)."""
    bad = (f"(SELECT s AS store, DATE '2024-01-01' + i::INTEGER AS day, CASE WHEN s = 1 AND i = 38 THEN {value} "
           "ELSE (s + i % 7)::DOUBLE END AS y FROM range(2) a(s), range(40) b(i))")  # fmt: skip
    fine = bad.replace(value, "1.0")
    con.sql(f"TRAIN MODEL ok USING gru FROM {fine} TARGET y WITH (time = 'day', series = 'store', {TINY})")
    before = registry_counts(con)
    pattern = r"target column 'y' of model '\w+' has 1 value\(s\) that are infinite or past FLOAT's range.*\{'store': 1\}.*2024-02-08"
    with pytest.raises(TargetError, match=pattern):
        con.sql(f"TRAIN MODEL inf USING gru FROM {bad} TARGET y WITH (time = 'day', series = 'store', {TINY})")
    with pytest.raises(TargetError, match=pattern):
        con.sql(f"EVALUATE MODEL ok ON {bad}")
    with pytest.raises(TargetError, match=pattern):
        con.sql(f"FORECAST MODEL ok HORIZON 2 FROM {bad}")
    assert registry_counts(con) == before
    assert con.sql("SELECT count(*) FROM dbml.model_versions WHERE model = 'inf'").fetchall() == [(0,)]


def test_the_largest_float_and_nan_are_taken(con):
    src = ("(SELECT DATE '2024-01-01' + i::INTEGER AS day, CASE WHEN i = 38 THEN 'nan'::DOUBLE WHEN i = 5 THEN 3.4e38 "
           "ELSE (i % 7)::DOUBLE END AS y FROM range(40) b(i))")  # fmt: skip
    row = con.sql(f"TRAIN MODEL edge USING gru FROM {src} TARGET y WITH (time = 'day', {TINY})").fetchall()[0]
    assert row[2] == "trained"


# -- 3. sources and keys -------------------------------------------------------------------------
def test_an_empty_source_is_refused(con):
    before = registry_counts(con)
    with pytest.raises(SourceError, match=r"the source of model 'e' has no rows"):
        con.sql(f"TRAIN MODEL e USING gru FROM (SELECT * FROM {_series('s')} WHERE FALSE) TARGET y "
                f"WITH (time = 'day', series = 'k', {TINY})")  # fmt: skip
    assert registry_counts(con) == before


@pytest.mark.parametrize(("key", "error", "pattern"), [
    ("[s]::INTEGER[]", FeatureError, r"series key column 'k' of model 'bad' has type INTEGER\[\].*CAST\(\"k\" AS VARCHAR\)"),
    ("CASE WHEN s = 0 THEN 'nan'::DOUBLE ELSE s::DOUBLE END", FeatureError, r"series key column 'k' of model 'bad' holds nan"),
    ("CASE WHEN s = 0 THEN 'inf'::DOUBLE ELSE s::DOUBLE END", FeatureError, r"series key column 'k' of model 'bad' holds inf"),
])  # fmt: skip
def test_keys_that_name_no_series_are_refused(con, key, error, pattern):
    before = registry_counts(con)
    with pytest.raises(error, match=pattern):
        con.sql(f"TRAIN MODEL bad USING gru FROM {_series(key)} TARGET y WITH (time = 'day', series = 'k', {TINY})")
    assert registry_counts(con) == before


def test_a_list_key_in_a_forecast_source_is_refused(con):
    con.sql(f"TRAIN MODEL fine USING gru FROM {_series('s')} TARGET y WITH (time = 'day', series = 'k', {TINY})")
    with pytest.raises(FeatureError, match=r"series key column 'k' of model 'fine' has type INTEGER\[\]"):
        con.sql(f"FORECAST MODEL fine HORIZON 2 FROM {_series('[s]::INTEGER[]')}")


KEYS = {  # key SQL over s: (type, the first two keys as FORECAST gives them, as series_end keeps them)
    "date": ("DATE '2020-01-01' + s::INTEGER", "DATE", [dt.date(2020, 1, 1), dt.date(2020, 1, 2)], ["2020-01-01", "2020-01-02"]),
    "timestamp": ("TIMESTAMP '2020-01-01 10:30:00' + to_days(s::INTEGER)", "TIMESTAMP",
                  [dt.datetime(2020, 1, 1, 10, 30), dt.datetime(2020, 1, 2, 10, 30)], ["2020-01-01T10:30:00", "2020-01-02T10:30:00"]),
    "decimal": ("(s + 0.5)::DECIMAL(6,2)", "DECIMAL(6,2)", [decimal.Decimal("0.50"), decimal.Decimal("1.50")], ["0.50", "1.50"]),
    "hugeint": ("s::HUGEINT + 170141183460469231731687303715884105000", "HUGEINT",
                [170141183460469231731687303715884105000, 170141183460469231731687303715884105001],
                [170141183460469231731687303715884105000, 170141183460469231731687303715884105001]),
    "uhugeint": ("(s::UHUGEINT + 300000000000000000000000000000000000000)::UHUGEINT", "UHUGEINT",
                 [300000000000000000000000000000000000000, 300000000000000000000000000000000000001],
                 [300000000000000000000000000000000000000, 300000000000000000000000000000000000001]),
    "ubigint": ("(s + 18446744073709551000)::UBIGINT", "UBIGINT", [18446744073709551000, 18446744073709551001],
                [18446744073709551000, 18446744073709551001]),
    "timestamptz": ("TIMESTAMPTZ '2020-01-01 10:30:00+00' + to_days(s::INTEGER)", "TIMESTAMP WITH TIME ZONE",
                    [dt.datetime(2020, 1, 1, 10, 30, tzinfo=dt.timezone.utc), dt.datetime(2020, 1, 2, 10, 30, tzinfo=dt.timezone.utc)],
                    None),
    "text": ("'shop ' || s", "VARCHAR", ["shop 0", "shop 1"], ["shop 0", "shop 1"]),
    "enum": ("CAST('a' || s AS ENUM('a0', 'a1'))", "VARCHAR", ["a0", "a1"], ["a0", "a1"]),
    "boolean": ("s = 1", "BOOLEAN", [False, True], [False, True]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(KEYS))
def test_keys_of_each_type_round_trip(con, case):
    key, sql_type, first, stored = KEYS[case]
    con.sql(f"TRAIN MODEL keyed USING gru FROM {_series(key)} TARGET y WITH (time = 'day', series = 'k', {TINY})")
    metrics = _stored(con, "keyed")
    if stored is not None:
        assert [e["key"][0] for e in metrics["series_end"]] == stored
    for sql in ("FORECAST MODEL keyed HORIZON 2", f"FORECAST MODEL keyed HORIZON 2 FROM {_series(key)}"):
        rel = con.sql(sql)
        assert str(rel.types[0]) == sql_type, sql
        rows = rel.fetchall()
        assert [r[0] for r in rows] == [first[0], first[0], first[1], first[1]], sql
        assert [type(r[0]) for r in rows] == [type(first[0])] * 4
    assert len(con.sql(f"EVALUATE MODEL keyed ON {_series(key)} WITH (by = 'k')").fetchall()) == 2


# -- 4. times near the end of their types' ranges ------------------------------------------------
def _one(con, name: str, time: str, n: int = 30) -> None:
    con.sql(f"TRAIN MODEL {name} USING gru FROM (SELECT {time} AS t, (i % 4)::DOUBLE AS y FROM range({n}) r(i)) "
            f"TARGET y WITH (time = 't', {TINY})")  # fmt: skip


def test_times_past_python_years_but_in_duckdb_range_are_forecast(con):
    _one(con, "yearly", "(DATE '2000-01-01' + INTERVAL (i) YEAR)::DATE", 12)
    assert con.sql("SELECT count(*), min(t), max(t)::VARCHAR FROM (FORECAST MODEL yearly HORIZON 8000)").fetchall() == [
        (8000, dt.date(2012, 1, 1), "10011-01-01")]
    _one(con, "late", "DATE '9990-01-01' + i::INTEGER")
    assert con.sql("SELECT count(*), max(t)::VARCHAR FROM (FORECAST MODEL late HORIZON 5000)").fetchall() == [(5000, "10003-10-09")]
    _one(con, "far", "TIMESTAMP '294246-01-01 00:00:00' + to_days(i::INTEGER)")
    got = con.sql("SELECT t::VARCHAR FROM (FORECAST MODEL far HORIZON 3)").fetchall()
    assert got == [("294246-01-31 00:00:00",), ("294246-02-01 00:00:00",), ("294246-02-02 00:00:00",)]
    assert con.sql("SELECT count(*) FROM (FORECAST MODEL far HORIZON 3 FROM (SELECT TIMESTAMP '294246-01-01 00:00:00' "
                   "+ to_days(i::INTEGER) AS t, 1.0::DOUBLE AS y FROM range(10) r(i)))").fetchall() == [(3,)]  # fmt: skip


@pytest.mark.parametrize("first", ["DATE '294240-01-01' + (i * 365)::INTEGER", "DATE '5877640-01-01' + i::INTEGER"])
def test_a_date_past_timestamps_range_is_refused_naming_it(con, first):
    """Steps are measured in TIMESTAMP's microseconds: a DATE past its range (year 294247) is named."""
    before = registry_counts(con)
    with pytest.raises(FeatureError, match=r"time column 't' of model 'far_date' holds \d+-\d\d-\d\d, past the range.*294247"):
        con.sql(f"TRAIN MODEL far_date USING gru FROM (SELECT {first} AS t, (i % 5)::DOUBLE AS y FROM range(12) r(i)) "
                f"TARGET y WITH (time = 't', {TINY})")  # fmt: skip
    assert registry_counts(con) == before


@pytest.mark.parametrize(("name", "time", "horizon", "pattern"), [
    ("period", "(9223372036854775807 - 100 + i)::BIGINT", 500,
     (r"HORIZON 500 of FORECAST MODEL period: the series ends at 9223372036854775736, and its step 72 would be past "
      r"the range of its time type \(BIGINT\): lower HORIZON to at most 71")),
    ("small_period", "(32000 + 10 * i)::SMALLINT", 100, r"step 48 would be past the range of its time type \(SMALLINT\): lower HORIZON to at most 47"),
    ("instant", "TIMESTAMP '294246-01-01 00:00:00' + to_days(i::INTEGER)", 1000, r"\(TIMESTAMP\): lower HORIZON to at most 345"),
    ("monthly", "TIMESTAMP '294240-01-01 00:00:00' + INTERVAL (i) MONTH", 100, r"step 56 .*\(TIMESTAMP\): lower HORIZON to at most 55\b"),
])  # fmt: skip
def test_a_step_past_its_types_range_is_refused_before_any_forecast(con, monkeypatch, name, time, horizon, pattern):
    _one(con, name, time)
    before = registry_counts(con)
    monkeypatch.setattr(fs, "roll", lambda *a, **k: (_ for _ in ()).throw(AssertionError("the forecaster ran")))
    with pytest.raises(OptionError, match=pattern):
        con.sql(f"FORECAST MODEL {name} HORIZON {horizon}")
    assert registry_counts(con) == before


def test_the_stored_last_time_is_checked(con):
    _one(con, "daily", "DATE '2024-01-01' + i::INTEGER")
    metrics = _stored(con, "daily")
    metrics["series_end"][0]["last"] = "not a date"
    con.duckdb.execute("UPDATE dbml.model_versions SET metrics = ? WHERE model = 'daily'", [json.dumps(metrics)])
    with pytest.raises(dbml.RecordError, match=r"last time of the series of FORECAST MODEL daily, 'not a date', is not a DATE"):
        con.sql("FORECAST MODEL daily HORIZON 2")


# -- 5. the confidence ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "1", "-0.5", "1.5", "'abc'", "NULL"])
def test_a_confidence_outside_0_1_is_refused(con, value):
    _one(con, "c", "DATE '2024-01-01' + i::INTEGER")
    before = registry_counts(con)
    with pytest.raises(OptionError, match=r"option 'confidence'"):
        con.sql(f"FORECAST MODEL c HORIZON 2 WITH (confidence = {value})")
    assert registry_counts(con) == before


def test_a_nan_confidence_is_refused_in_python(con):
    _one(con, "c", "DATE '2024-01-01' + i::INTEGER")
    with pytest.raises(OptionError, match=r"option 'confidence' must be in \(0, 1\), got nan"):
        con.forecast("c", 2, confidence=math.nan)


# -- 6. the intervals and the baseline a version keeps -------------------------------------------
def test_conformal_half_widths_are_the_scores_order_statistic():
    err = np.arange(1, 20, dtype=np.float64)[:, None] * np.array([[1.0, 2.0]])  # 19 windows, 2 steps
    kept = fs.conformal(err, np.zeros((19, 4)), None)
    assert kept["windows"] == 19 and kept["levels"] == list(fs.LEVELS)
    at = dict(zip(fs.LEVELS, np.array(kept["half_width"]).T.tolist()))
    assert at[0.9] == [18.0, 36.0]  # the ceil(20 * 0.9) = 18th smallest
    assert at[0.5] == [10.0, 20.0]
    assert at[0.99] == [19.0, 38.0]  # too few windows for 0.99: the largest
    half = fs.half_widths({"intervals": kept}, np.zeros((1, 4)), 4, 2, 0.9)
    assert half.tolist() == [[18.0, 36.0, 36.0, 36.0 * math.sqrt(2)]]  # widening beyond step 2, never shrinking
    between = fs.half_widths({"intervals": kept}, np.zeros((1, 4)), 2, 2, 0.925)[0, 0]
    assert at[0.9][0] < between < at[0.95][0]


def test_each_series_scale_sizes_its_interval():
    history = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 10.0, 20.0, 30.0], [5.0, 5.0, 5.0, 5.0]])
    assert fs.scales_of(history, "series", [2.0, None, 0.0]).tolist() == [2.0, 10.0, 1.0]  # missing: the window's
    assert fs.scales_of(history, None).tolist() == [1.0, 1.0, 1.0]


def test_a_version_keeps_conformal_intervals_and_its_baseline(con):
    con.sql("CREATE TABLE shops AS SELECT s AS store, DATE '2024-01-01' + i::INTEGER AS day, "
            "((s + 1) * (10 + (i % 7) + ((hash(i * 3 + s) % 100) / 50.0)))::DOUBLE AS units FROM range(3) a(s), range(80) b(i)")
    row = con.sql(f"TRAIN MODEL shops_fc USING gru FROM shops TARGET units WITH (time = 'day', series = 'store', {TINY})").fetchall()[0]
    metrics = con.registry.get("shops_fc")["metrics"]  # as the registry reads and checks it
    assert metrics["baseline"] == {"seasonal_naive": {"mae": metrics["seasonal_naive_mae"]}}
    assert row[8]["seasonal_naive_mae"] == metrics["seasonal_naive_mae"]
    kept = metrics["intervals"]
    assert kept["method"] == "split conformal" and kept["scale"] == "series" and kept["windows"] == metrics["rows"]
    assert len(kept["half_width"]) == 2 and all(len(r) == len(fs.LEVELS) for r in kept["half_width"])
    scales = [e["scale"] for e in metrics["series_end"]]
    assert scales[0] < scales[1] < scales[2]  # each store's mean absolute change, larger for the larger store
    rows = con.sql("FORECAST MODEL shops_fc HORIZON 2 WITH (confidence = 0.8)").fetchall()
    level = fs.LEVELS.index(0.8)
    for i, (store, _, f, lower, upper) in enumerate(rows):
        q = kept["half_width"][0][level] if i % 2 == 0 else max(kept["half_width"][0][level], kept["half_width"][1][level])
        assert upper - f == pytest.approx(q * scales[store]) and f - lower == pytest.approx(q * scales[store])


def test_a_version_stored_before_conformal_intervals_still_forecasts(con):
    src = ("(SELECT s AS k, TIMESTAMP '2024-01-01 00:00:00' + to_days(i::INTEGER) AS t, (s + i % 7)::DOUBLE AS y "
           "FROM range(2) a(s), range(30) b(i))")  # fmt: skip
    con.sql(f"TRAIN MODEL old USING gru FROM {src} TARGET y WITH (time = 't', series = 'k', {TINY})")
    metrics = _stored(con, "old")
    for key in ("intervals", "key_types", "baseline"):
        del metrics[key]
    for e in metrics["series_end"]:  # as it was kept: Python's ISO text, no scale
        assert e.pop("scale") > 0
        e["last"] = dt.datetime.fromisoformat(e["last"]).isoformat()
    assert metrics["series_end"][0]["last"] == "2024-01-30T00:00:00"
    con.duckdb.execute("UPDATE dbml.model_versions SET metrics = ? WHERE model = 'old'", [json.dumps(metrics)])
    rows = con.sql("FORECAST MODEL old HORIZON 3").fetchall()
    assert [r[:2] for r in rows[:3]] == [(0, dt.datetime(2024, 1, 31)), (0, dt.datetime(2024, 2, 1)), (0, dt.datetime(2024, 2, 2))]
    # a normal interval on the residuals' spread, as before: z(0.95) x residual scale (never shrinking) x the window's spread
    sigma = np.maximum.accumulate(np.asarray(metrics["residual_scale"]))
    spread = float(np.std(np.asarray(metrics["series_end"][0]["history"], np.float32)))
    for step, r in enumerate(rows[:2]):
        assert r[4] - r[2] == pytest.approx(1.6448536269514722 * sigma[step] * spread, rel=1e-5)


def test_user_tables_named_like_forecasts_own_relations_do_not_shadow_them(con):
    """FORECAST builds its times over in-memory relations it names; a user's table named e or s
    (what they were once called) must not be read in their place."""
    con.sql("CREATE TABLE e AS SELECT 1 AS x")
    con.sql("CREATE TABLE s AS SELECT 1 AS x")
    _one(con, "shadowed", "DATE '2024-01-01' + i::INTEGER")
    assert con.sql("SELECT count(*) FROM (FORECAST MODEL shadowed HORIZON 3)").fetchall() == [(3,)]


def test_the_loss_is_the_raw_error_in_units_of_each_series_scale():
    """Forecast.loss: the squared error of the forecast in the target's units over each
    window's series scale (its mean absolute change); a window without one falls back to
    its own spread, where the loss is the squared error of the scaled values."""
    import torch

    from dbml.kinds.encoders import window_stats
    from dbml.tasks.forecast import Forecast, _key

    torch.manual_seed(0)
    history = torch.randn(5, 8) * 3 + 10
    future = torch.randn(5, 2) * 3 + 10
    scale = torch.tensor([[2.0], [0.5], [float("nan")], [4.0], [1.0]])
    out = torch.randn(5, 2)
    batch = {_key(): history, "target": torch.cat([future, scale], dim=1)}

    class Net:
        head = torch.nn.Linear(1, 1)  # no covariates: no direct path

    mean, std = window_stats(history)
    unit = torch.where(torch.isnan(scale), std, scale)
    expected = torch.mean(((out * std + mean - future) / unit) ** 2)
    assert float(Forecast().loss(Net(), out, batch)) == pytest.approx(float(expected), rel=1e-5)
