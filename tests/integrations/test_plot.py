"""dbml.plot: each picture draws what the registry stores (line data, bar heights, the
confusion image, thresholds, labels), and bad input is refused with a dbml error naming
the model, version or run at fault. Agg backend, no pyplot state."""

import json
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import dbml  # noqa: E402
from dbml.integrations import plot  # noqa: E402
from dbml.errors import DbmlError, ModelNotFoundError, OptionError, VersionNotFoundError  # noqa: E402
from dbml.integrations.plot import _draw  # noqa: E402
from conftest import foreign_add_model  # noqa: E402

TINY = "epochs = 3, seed = 1, progress = false"
SOURCE = "SELECT a, b, c, k, r FROM t"


@pytest.fixture(scope="module")
def lab():
    """A binary classifier ``m`` (two versions, 'default' on version 1), a multiclass ``k``
    and a regression ``r``, on 200 rows of ``t``."""
    c = dbml.connect(user="tester")
    c.sql(
        "CREATE TABLE t AS SELECT (i % 7) * 1.0 AS a, (i % 5) * 1.0 AS b, "
        "CASE WHEN i % 7 > 3 THEN 'y' ELSE 'n' END AS c, ['p', 'q', 'u'][1 + i % 3] AS k, "
        "(i % 7) * 2.0 + (i % 5) AS r FROM range(200) AS s(i)"
    )
    c.sql(f"TRAIN MODEL m FROM (SELECT a, b, c FROM t) TARGET c WITH ({TINY})")
    c.sql("TRAIN MODEL m FROM (SELECT a, b, c FROM t) TARGET c WITH (epochs = 4, seed = 2, progress = false)")
    c.sql("ALTER MODEL m SET ALIAS default = 1")
    c.sql(f"TRAIN MODEL k FROM (SELECT a, b, k FROM t) TARGET k WITH ({TINY})")
    c.sql(f"TRAIN MODEL r FROM (SELECT a, b, r FROM t) TARGET r WITH ({TINY})")
    yield c
    c.close()


def _log(c, model, version):
    return c.duckdb.execute(
        "SELECT epoch, train_loss, val_loss, val_metric, lr FROM dbml.training_log WHERE model = ? AND version = ? ORDER BY epoch",
        [model, version],
    ).fetchall()


# -- training curves -----------------------------------------------------------------


def test_training_curves_draw_the_default_versions_log(lab):
    fig = plot.training_curves(lab, "m")  # 'default' points to version 1 (3 epochs), not the latest (4)
    log = _log(lab, "m", 1)
    loss, metric, lr = fig.axes
    train, val = loss.lines
    assert list(train.get_xdata()) == [1, 2, 3]
    assert list(train.get_ydata()) == [r[1] for r in log]
    assert list(val.get_ydata()) == [r[2] for r in log]
    assert list(metric.lines[0].get_ydata()) == [r[3] for r in log]
    assert list(lr.lines[0].get_ydata()) == [r[4] for r in log]
    assert (loss.get_ylabel(), metric.get_ylabel(), lr.get_ylabel()) == ("Loss", "Validation accuracy", "Learning rate")
    assert "model 'm' version 1" in fig.get_suptitle()
    assert len(plot.training_curves(lab, "m", 2).axes[0].lines[0].get_xdata()) == 4


def test_training_curves_name_r2_for_a_regression_and_take_a_figure(lab):
    from matplotlib.figure import Figure

    mine = Figure()
    fig = plot.training_curves(lab, "r", fig=mine)
    assert fig is mine
    assert fig.axes[1].get_ylabel() == "Validation R²"
    assert list(fig.axes[1].lines[0].get_ydata()) == [row[3] for row in _log(lab, "r", 1)]


def test_training_curves_refuse_unknown_models_and_imported_ones(lab, tmp_path):
    with pytest.raises(ModelNotFoundError, match="model 'nope' does not exist"):
        plot.training_curves(lab, "nope")
    with pytest.raises(VersionNotFoundError, match="model 'm' has no version 9"):
        plot.training_curves(lab, "m", 9)
    with pytest.raises(DbmlError, match=r"reads a dbml Connection \(dbml.connect\(...\) or dbml.install\(duckdb_con\)\), not a DuckDBPyConnection"):
        plot.training_curves(lab.duckdb, "m")
    foreign_add_model(tmp_path / "add.onnx")
    lab.sql(f"IMPORT MODEL adder FROM '{tmp_path}/add.onnx'")
    with pytest.raises(DbmlError, match=r"model 'adder' version 1 has no training log \(an imported model has none\)"):
        plot.training_curves(lab, "adder")


# -- EXPLAIN -------------------------------------------------------------------------------


def test_explain_ranks_one_bar_per_feature_with_its_spread(lab):
    result = lab.sql("EXPLAIN MODEL m ON (SELECT a, b, c FROM t)")
    rows = result.fetchall()  # feature, importance, importance_std, baseline, metric, rank
    ax = plot.explain(result)
    assert len(ax.patches) == 2
    ranked = sorted(rows, key=lambda r: -r[1])
    # barh draws bottom up: the most important feature on top
    assert [t.get_text() for t in ax.get_yticklabels()] == [r[0] for r in ranked][::-1]
    assert [p.get_width() for p in ax.patches] == pytest.approx([r[1] for r in ranked][::-1])
    (errorbar,) = [c for c in ax.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
    spread = errorbar.lines[2][0].get_segments()
    assert [s[1][0] - s[0][0] for s in spread] == pytest.approx([2 * r[2] for r in ranked][::-1])
    assert ax.get_xlabel() == "Permutation importance (drop in accuracy)"
    # the same picture from a DataFrame and an Arrow table
    df_ax = plot.explain(result.df())
    arrow_ax = plot.explain(result.fetch_arrow_table())
    for other in (df_ax, arrow_ax):
        assert [p.get_width() for p in other.patches] == pytest.approx([p.get_width() for p in ax.patches])


def test_explain_refuses_what_is_not_an_explain_result(lab):
    with pytest.raises(DbmlError, match="has no column importance, importance_std"):
        plot.explain(lab.sql("SELECT 'a' AS feature"))
    with pytest.raises(DbmlError, match="not a list"):
        plot.explain([1, 2])
    with pytest.raises(DbmlError, match="no rows"):
        plot.explain(lab.sql("SELECT 'a' AS feature, 1.0 AS importance, 0.0 AS importance_std WHERE false"))
    twice = lab.sql("SELECT * FROM (VALUES ('a', 1.0, 0.1), ('a', 2.0, 0.1)) AS v(feature, importance, importance_std)")
    with pytest.raises(DbmlError, match="one group at a time; feature a appears more than once"):
        plot.explain(twice)


# -- MONITOR ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitored(lab):
    with pytest.raises(DbmlError, match=r"model 'k' version 1 has no stored MONITOR run; run MONITOR MODEL k ON \(...\) first"):
        plot.drift(lab, "k")
    first = lab.sql("MONITOR MODEL k ON (SELECT a + 3 AS a, b, k FROM t)").fetchall()[0][0]
    second = lab.sql("MONITOR MODEL k ON (SELECT a, b, k FROM t)").fetchall()[0][0]
    return first, second


def test_drift_bars_are_the_stored_psi_with_the_threshold_line(lab, monitored):
    first, second = monitored
    stored = lab.duckdb.execute(
        "SELECT feature, psi, drift FROM dbml.monitor_results WHERE run_id = ? ORDER BY feature = '__prediction__', feature",
        [first],
    ).fetchall()
    ax = plot.drift(lab, "k", run_id=first)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "(prediction)"]
    assert [p.get_height() for p in ax.patches] == pytest.approx([r[1] for r in stored])
    red = matplotlib.colors.to_rgba("tab:red")
    assert [p.get_facecolor() == red for p in ax.patches] == [r[2] for r in stored]
    assert stored[0][2] is True  # 'a' moved by 3: drifted
    (threshold,) = [line for line in ax.lines if line.get_label().startswith("threshold")]
    assert list(threshold.get_ydata()) == [0.2, 0.2]
    assert ax.get_ylabel() == "PSI"
    latest = plot.drift(lab, "k")  # the latest run: nothing moved
    assert f"MONITOR run {second}" in latest.get_title()


def test_drift_history_has_a_line_per_feature_over_the_runs(lab, monitored):
    first, second = monitored
    ax = plot.drift_history(lab, "k")
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"a", "b", "(prediction)", "threshold 0.2"}
    psi = dict(lab.duckdb.execute(
        "SELECT run_id, psi FROM dbml.monitor_results WHERE feature = 'a' AND run_id IN (?, ?)", [first, second]
    ).fetchall())  # fmt: skip
    assert list(lines["a"].get_ydata()) == pytest.approx([psi[first], psi[second]])
    only = plot.drift_history(lab, "k", feature="__prediction__")
    assert [line.get_label() for line in only.lines] == ["(prediction)", "threshold 0.2"]
    with pytest.raises(DbmlError, match="model 'k' version 1 has no feature 'zz' in its MONITOR runs; they have a, b, __prediction__"):
        plot.drift_history(lab, "k", feature="zz")


def test_drift_refuses_a_run_of_another_model(lab, monitored):
    first, _ = monitored
    with pytest.raises(OptionError, match=f"MONITOR run {first} is of model 'k' version 1, not of model 'm'"):
        plot.drift(lab, "m", run_id=first)
    with pytest.raises(DbmlError, match="there is no stored MONITOR run 999"):
        plot.drift(lab, "k", run_id=999)
    with pytest.raises(OptionError, match="run_id must be an integer"):
        plot.drift(lab, "k", run_id="1")


# -- EVALUATE: drawing from hand-built curves ------------------------------------------------

BINARY = {
    "labels": ["n", "y"],
    "positive": "y",
    "confusion": {"labels": ["n", "y"], "matrix": [[50, 7], [3, 40]]},
    "roc": {"y": {"fpr": [0.0, 0.1, 0.4, 1.0], "tpr": [0.0, 0.6, 0.9, 1.0], "auc": 0.87}},
    "pr": {"y": {"recall": [0.0, 0.5, 1.0], "precision": [1.0, 0.9, 0.5], "average_precision": 0.82}},
    "calibration": {"y": {"mean_predicted": [0.05, 0.5, 0.95], "fraction_positive": [0.1, 0.45, 0.9], "count": [30, 40, 30]}},
}
SAMPLE = {"sample": {"actual": [1.0, 2.0, 4.0], "predicted": [1.5, 2.0, 3.0]}, "sample_of": 3}
FORECAST = {"series": [
    {"key": f"s{i}", "time": ["2024-01-05", "2024-01-06"], "actual": [5.0, 6.0], "predicted": [5.5, 5.8],
     "lower": [4.0, 4.2], "upper": [7.0, 7.4], "confidence": 0.9,
     "history": {"time": ["2024-01-03", "2024-01-04"], "actual": [4.0, 4.5]}}
    for i in range(5)
]}  # fmt: skip
ANOMALY = {"scores": {"edges": [0.0, 1.0, 2.0, 3.0], "counts": [80, 15, 5]}, "threshold": 2.5,
           "roc": {"anomaly": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "auc": 0.5}}}  # fmt: skip


def test_draw_confusion_image_is_the_stored_counts():
    ax = _draw.draw_confusion(_draw.new_axes(None), BINARY["confusion"])
    assert np.array_equal(ax.images[0].get_array(), np.array([[50, 7], [3, 40]]))
    assert [t.get_text() for t in ax.texts] == ["50", "7", "3", "40"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Predicted", "Actual")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["n", "y"]


def test_draw_roc_pr_calibration_lines_are_the_stored_points():
    ax = _draw.draw_roc(_draw.new_axes(None), BINARY["roc"])
    assert list(ax.lines[0].get_xdata()) == [0.0, 0.1, 0.4, 1.0] and list(ax.lines[0].get_ydata()) == [0.0, 0.6, 0.9, 1.0]
    assert ax.lines[0].get_label() == "y (AUC 0.870)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("False positive rate", "True positive rate")
    ax = _draw.draw_pr(_draw.new_axes(None), BINARY["pr"])
    assert list(ax.lines[0].get_ydata()) == [1.0, 0.9, 0.5] and ax.get_xlabel() == "Recall"
    ax = _draw.draw_calibration(_draw.new_axes(None), BINARY["calibration"])
    assert list(ax.lines[0].get_xdata()) == [0.05, 0.5, 0.95] and list(ax.lines[0].get_ydata()) == [0.1, 0.45, 0.9]


def test_draw_regression_residuals_and_the_y_equals_x_line():
    ax = _draw.draw_residuals(_draw.new_axes(None), SAMPLE["sample"])
    assert ax.collections[0].get_offsets().tolist() == [[1.5, -0.5], [2.0, 0.0], [3.0, 1.0]]
    ax = _draw.draw_predicted_vs_actual(_draw.new_axes(None), SAMPLE["sample"])
    assert ax.collections[0].get_offsets().tolist() == [[1.0, 1.5], [2.0, 2.0], [4.0, 3.0]]
    (diagonal,) = ax.lines
    assert diagonal.get_label() == "y = x" and list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [1.0, 4.0]


def test_draw_forecast_band_history_and_scores_threshold():
    ax = _draw.draw_forecast(_draw.new_axes(None), FORECAST["series"][0])
    assert [line.get_label() for line in ax.lines] == ["history", "actual", "forecast"]
    assert list(ax.lines[2].get_ydata()) == [5.5, 5.8]
    band = ax.collections[0]
    assert band.get_label() == "90% interval"
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(4.0) and max(ys) == pytest.approx(7.4)
    ax = _draw.draw_scores(_draw.new_axes(None), ANOMALY["scores"], 2.5)
    assert list(ax.patches[0].get_data()[0]) == [80, 15, 5]
    (threshold,) = ax.lines
    assert list(threshold.get_xdata()) == [2.5, 2.5]


# -- EVALUATE: reading stored runs ----------------------------------------------------------
# Hand-built runs stored in the migration's table test the reading apart from EVALUATE.

def _store(c, model, version, task, curves):
    return c.duckdb.execute(
        "INSERT INTO dbml.evaluation_runs (model, version, run_at, who, source_sql, task, options, rows, metrics, curves)"
        " VALUES (?, ?, now()::TIMESTAMP, 'tester', ?, ?, '{}', 100, '[]', ?) RETURNING run_id",
        [model, version, SOURCE, task, None if curves is None else json.dumps(curves)],
    ).fetchall()[0][0]


@pytest.fixture(scope="module")
def evaluated(lab):
    with pytest.raises(DbmlError, match=r"model 'm' version 1 has no stored EVALUATE run; run EVALUATE MODEL m ON \(...\) first"):
        plot.evaluation(lab, "m")
    return {
        "m": _store(lab, "m", 1, "classification", BINARY),
        "r": _store(lab, "r", 1, "regression", SAMPLE),
        "k": _store(lab, "k", 1, "forecast", FORECAST),  # a forecast run stored under k only to test the drawing
        "bare": _store(lab, "m", 2, "classification", None),
    }


def test_evaluation_of_a_classifier_is_four_panels_of_the_stored_run(lab, evaluated):
    fig = plot.evaluation(lab, "m")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["ROC", "Precision-recall", "Confusion matrix", "Calibration"]
    assert np.array_equal(fig.axes[2].images[0].get_array(), np.array(BINARY["confusion"]["matrix"]))
    assert f"EVALUATE run {evaluated['m']}" in fig.get_suptitle()
    from matplotlib.figure import Figure

    mine = Figure().add_subplot()
    ax = plot.confusion_matrix(lab, "m", run_id=evaluated["m"], ax=mine)
    assert ax is mine
    assert np.array_equal(ax.images[0].get_array(), np.array([[50, 7], [3, 40]]))
    assert list(plot.roc(lab, "m").lines[0].get_ydata()) == [0.0, 0.6, 0.9, 1.0]


def test_evaluation_of_a_regression_and_a_forecast(lab, evaluated):
    fig = plot.evaluation(lab, "r")
    assert [ax.get_title() for ax in fig.axes] == ["Residuals", "Predicted against actual"]
    assert plot.residuals(lab, "r").collections[0].get_offsets().tolist()[0] == [1.5, -0.5]
    fig = plot.evaluation(lab, "k")
    assert [ax.get_title() for ax in fig.axes] == ["Forecast: s0", "Forecast: s1", "Forecast: s2", "Forecast: s3"]
    assert plot.forecast(lab, "k", series=4).get_title() == "Forecast: s4"


def test_evaluation_pictures_refuse_the_wrong_task_and_foreign_runs(lab, evaluated):
    with pytest.raises(DbmlError, match="model 'r' version 1 is a regression model: ROC is drawn for classification or reconstruction models"):
        plot.roc(lab, "r")
    with pytest.raises(DbmlError, match="model 'm' version 1 is a classification model: a forecast plot is drawn for forecast models"):
        plot.forecast(lab, "m")
    with pytest.raises(OptionError, match=f"EVALUATE run {evaluated['r']} is of model 'r' version 1, not of model 'm'"):
        plot.evaluation(lab, "m", run_id=evaluated["r"])
    with pytest.raises(OptionError, match=f"EVALUATE run {evaluated['m']} is of model 'm' version 1, not of model 'm' version 2"):
        plot.evaluation(lab, "m", 2, run_id=evaluated["m"])
    with pytest.raises(DbmlError, match=f"EVALUATE run {evaluated['bare']} of model 'm' version 2 stored no curves"):
        plot.evaluation(lab, "m", 2)
    with pytest.raises(OptionError, match="series 5 is out of range"):
        plot.forecast(lab, "k", series=5)


# -- embedding and the optional extra ---------------------------------------------------------


def test_png_and_svg_are_self_contained_and_stable(lab):
    fig = plot.training_curves(lab, "m")
    png = plot.figure_png(fig)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    svg = plot.figure_svg(fig.axes[0])  # an Axes gives its Figure
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<text" not in svg  # glyphs as paths
    assert plot.figure_svg(fig) == svg  # no date, fixed ids
    with pytest.raises(DbmlError, match="take a matplotlib Figure or Axes, not a str"):
        plot.figure_png("fig")


def test_missing_matplotlib_names_the_extra(lab, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(DbmlError, match=r"pip install 'dbml\[plot\]'"):
        plot.training_curves(lab, "m")


# -- EVALUATE end to end: the runs EVALUATE MODEL stores --------------------------------------


@pytest.fixture(scope="module")
def live():
    """Models of every task, each EVALUATEd once: a binary classifier ``bin``, a multiclass
    ``multi``, a regression ``reg``, an autoencoder ``odd`` (evaluated with a label) and an
    lstm forecaster ``fc`` of two stores."""
    c = dbml.connect(user="tester")
    c.sql(
        """CREATE TABLE t AS SELECT (i % 7) * 1.0 AS a, (i % 5) * 1.0 AS b,
        CASE WHEN i % 7 > 3 THEN 'y' ELSE 'n' END AS c, ['p', 'q', 'u'][1 + i % 3] AS k,
        (i % 7) * 2.0 + (i % 5) AS r, i % 50 = 0 AS odd FROM range(200) AS s(i);
        CREATE TABLE sales AS SELECT s AS store, DATE '2024-01-01' + i::INTEGER AS day,
        (10 * s + 20 + 5 * sin(2 * pi() * i / 7))::DOUBLE AS units FROM range(2) a(s), range(40) b(i)"""
    )
    c.sql(f"TRAIN MODEL bin FROM (SELECT a, b, c FROM t) TARGET c WITH ({TINY})")
    c.sql(f"TRAIN MODEL multi FROM (SELECT a, b, k FROM t) TARGET k WITH ({TINY})")
    c.sql(f"TRAIN MODEL reg FROM (SELECT a, b, r FROM t) TARGET r WITH ({TINY})")
    c.sql(f"TRAIN MODEL odd USING autoencoder FROM (SELECT a, b FROM t) WITH ({TINY})")
    c.sql("TRAIN MODEL fc USING lstm FROM sales TARGET units WITH (time = 'day', series = 'store', window = 8, "
          "horizon = 2, epochs = 1, hidden = 4, progress = false, seed = 0)")  # fmt: skip
    for sql in ("EVALUATE MODEL bin ON (SELECT a, b, c FROM t)", "EVALUATE MODEL multi ON (SELECT a, b, k FROM t)",
                "EVALUATE MODEL reg ON (SELECT a, b, r FROM t)", "EVALUATE MODEL odd ON (SELECT a, b, odd FROM t) WITH (label = odd)",
                "EVALUATE MODEL fc ON (SELECT * FROM sales)"):  # fmt: skip
        c.sql(sql).fetchall()
    yield c
    c.close()


def _stored_curves(c, model):
    return json.loads(c.duckdb.execute(
        "SELECT curves FROM dbml.evaluation_runs WHERE model = ? ORDER BY run_id DESC LIMIT 1", [model]
    ).fetchall()[0][0])  # fmt: skip


def test_live_classifier_pictures_are_the_stored_curves(live):
    curves = _stored_curves(live, "bin")
    fig = plot.evaluation(live, "bin")
    roc_ax, pr_ax, cm_ax, cal_ax = fig.axes[:4]
    assert np.array_equal(cm_ax.images[0].get_array(), np.array(curves["confusion"]["matrix"]))
    assert cm_ax.images[0].get_array().sum() == 200
    assert list(roc_ax.lines[0].get_ydata()) == curves["roc"]["y"]["tpr"]
    assert list(pr_ax.lines[0].get_ydata()) == curves["pr"]["y"]["precision"]
    assert list(cal_ax.lines[0].get_xdata()) == curves["calibration"]["y"]["mean_predicted"]
    multi = plot.roc(live, "multi")  # one-vs-rest: a line per label, and chance
    assert [line.get_label().split(" ")[0] for line in multi.lines] == ["p", "q", "u", "chance"]
    assert plot.confusion_matrix(live, "multi").images[0].get_array().shape == (3, 3)


def test_live_regression_anomaly_and_forecast_pictures(live):
    sample = _stored_curves(live, "reg")["sample"]
    ax = plot.predicted_vs_actual(live, "reg")
    assert ax.collections[0].get_offsets()[:, 0].tolist() == pytest.approx(sample["actual"])
    assert [ax.get_title() for ax in plot.evaluation(live, "reg").axes] == ["Residuals", "Predicted against actual"]
    odd = _stored_curves(live, "odd")
    fig = plot.evaluation(live, "odd")
    hist, roc_ax = fig.axes
    assert list(hist.lines[0].get_xdata()) == [odd["threshold"]] * 2
    assert list(hist.patches[0].get_data()[0]) == odd["scores"]["counts"]
    assert roc_ax.lines[0].get_label().startswith("anomaly (AUC")
    assert plot.scores(live, "odd").get_xlabel() == "Anomaly score"
    series = _stored_curves(live, "fc")["series"]
    fig = plot.evaluation(live, "fc")
    assert len(fig.axes) == len(series) == 2
    assert [ax.get_title() for ax in fig.axes] == ["Forecast: 0", "Forecast: 1"]
    assert list(fig.axes[0].lines[2].get_ydata()) == series[0]["predicted"]
    with pytest.raises(DbmlError, match="model 'fc' version 1 is a forecast model: ROC is drawn for"):
        plot.roc(live, "fc")
    with pytest.raises(DbmlError, match="model 'bin' version 1 is a classification model: a forecast plot"):
        plot.forecast(live, "bin")
    with pytest.raises(DbmlError, match="model 'reg' version 1 is a regression model: a confusion matrix"):
        plot.confusion_matrix(live, "reg")


def test_size_of_an_embedded_picture(live):
    """The model card embeds these: the largest picture (a classifier's 2x2) stays well under
    100 kB as SVG (text as paths; measured about 75 kB, PNG about 79 kB, 106 kB in base64)."""
    fig = plot.evaluation(live, "bin")
    assert len(plot.figure_svg(fig)) < 100_000
