"""The HTML model card (dbml.integrations.card): con.model_card, EXPORT MODEL CARD, escaping, and a
real headless browser (Debian's chromium through playwright) that loads nothing but the file."""

from __future__ import annotations

import os
import shutil
from html.parser import HTMLParser

import pytest
from conftest import foreign_add_model

import dbml
from dbml.dialect import ExportModel, ExportModelCard, parse_statement
from dbml.errors import DbmlError, ModelNotFoundError, TransferError

CHROMIUM = "/usr/bin/chromium"
EVIL = "<script>alert(1)</script>"


class Page(HTMLParser):
    """The parts of a card the tests look at: tags seen, section ids, headings, table rows."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.sections: list[str] = []
        self.headings: list[str] = []
        self.tables: list[list[list[str]]] = []  # per table, per row, the cells' text
        self.notes: list[str] = []
        self.images: list[str] = []
        self._heading: list[str] | None = None
        self._cell: list[str] | None = None
        self._note: list[str] | None = None
        self._depth = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag in ("h2", "h3"):
            self._heading = []
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
        elif tag == "p" and a.get("class") == "note":
            self._note = []
        elif tag == "img":
            self.images.append(a.get("src") or "")

    def handle_endtag(self, tag):
        if tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "p" and self._note is not None:
            self.notes.append("".join(self._note))
            self._note = None

    def handle_data(self, data):
        for part in (self._heading, self._cell, self._note):
            if part is not None:
                part.append(data)

    def table_after(self, heading: str, nth: int = 0) -> list[list[str]]:
        """Rows of the ``nth`` table whose header row starts with the column name ``heading``."""
        found = [t for t in self.tables if t and t[0] and t[0][0] == heading]
        if len(found) <= nth:
            raise AssertionError(f"no table {nth} headed {heading!r}: {[t[0] for t in self.tables if t]}")
        return found[nth]

    def fact(self, label: str) -> str:
        for table in self.tables:
            for row in table:
                if len(row) == 2 and row[0] == label:
                    return row[1]
        raise AssertionError(f"no fact {label!r}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """churn v1 and v2 (2 epochs), an EVALUATE run, production moved 1 -> 2, staging set,
    two MONITOR runs of v2 (the second on shifted rows)."""
    c = dbml.connect(user="tester")
    c.sql("CREATE TABLE t AS SELECT i, (i % 7)::DOUBLE AS x, ['a', 'b', 'c'][1 + i % 3] AS plan, "
          "CASE WHEN i % 3 = 0 THEN 'yes' ELSE 'no' END AS churned FROM range(200) r(i)")  # fmt: skip
    c.sql("CREATE TABLE shifted AS SELECT x * 3 + 10 AS x, 'a' AS plan, churned FROM t")
    for seed in (1, 2):
        c.sql(f"TRAIN MODEL churn FROM (SELECT * EXCLUDE (i) FROM t) TARGET churned WITH (epochs = 2, seed = {seed}, progress = false)")
    c.sql("EVALUATE MODEL churn VERSION 2 ON t")
    c.sql("ALTER MODEL churn SET ALIAS production = 1")
    c.sql("ALTER MODEL churn SET ALIAS production = 2")
    c.sql("ALTER MODEL churn SET ALIAS staging = 1")
    c.sql("MONITOR MODEL churn VERSION 2 ON t")
    c.sql("MONITOR MODEL churn VERSION 2 ON shifted")
    yield c
    c.close()


def test_card_sections_and_values(trained):
    page = Page(trained.model_card("churn", version=2))
    assert page.sections == ["model", "data", "evaluation", "deployment", "drift", "audit"]
    for heading in ("What the model is", "Which data shaped it", "How it was evaluated", "Where it is deployed",
                    "What changed since training", "Who did what", "Features", "Training profile", "Alias history"):  # fmt: skip
        assert heading in page.headings
    assert page.fact("Model") == "churn" and page.fact("Version") == "2"
    assert page.fact("Family (architecture)") == "mlp" and page.fact("Task") == "classification"
    assert page.fact("Target") == "churned" and page.fact("Target type") == "VARCHAR"
    assert page.fact("Labels") == "no, yes"
    assert "PREDICT" in page.fact("Functions it offers") and "PREDICT_PROBA" in page.fact("Functions it offers")
    rec = trained.registry.get("churn", 2)
    assert page.fact("ONNX size").endswith(f"({rec['onnx_size']:,} bytes)") and "KiB" in page.fact("ONNX size")
    assert page.fact("Data fingerprint") == rec["data_fingerprint"]
    assert page.fact("Training rows") == "160" and page.fact("Validation rows") == "40"
    assert page.fact("Source tables") == "t"
    features = page.table_after("#")
    assert [r[1:] for r in features[1:]] == [["x", "numeric", "DOUBLE"], ["plan", "category", "VARCHAR"]]
    profile = {r[0]: r for r in page.table_after("feature")[1:]}  # the first "feature" table is the profile
    mean = rec["profile"]["x"]["mean"]
    assert profile["x"][2] == "160" and profile["x"][3] == "0" and f"mean {mean:.5g}" in profile["x"][4]
    assert "a (" in profile["plan"][4]
    options = {r[0]: r for r in page.table_after("option")[1:]}
    assert options["epochs"][1] == "2" and options["seed"][1] == "2"
    assert "lr" not in options  # the default is not listed
    # deployment: aliases now, and the move of production from 1 to 2
    aliases = {r[0]: r for r in page.table_after("alias")[1:]}
    assert aliases["production (this version)"][1] == "2" and aliases["staging"][1] == "1"
    history = page.table_after("when")
    moves = [(r[2], r[3], r[4]) for r in history[1:] if len(r) == 5 and r[2] in ("production", "staging")]
    assert moves == [("staging", "unset", "1"), ("production", "1", "2"), ("production", "unset", "1")]
    # drift: the latest run (on shifted rows) first, x drifted
    drift = {r[0]: r for r in page.table_after("feature", 1)[1:]}
    assert drift["x"][6] == "drifted" and "(the prediction)" in drift
    assert "Drift over time" in page.headings
    # audit: newest first; the fixture's rows are the oldest (other tests of this module,
    # run before this one in some orders, add newer EVALUATE, EXPORT, IMPORT and CARD rows)
    audit = [t for t in page.tables if t and t[0][:3] == ["when", "who", "action"]][0]
    actions = [r[2] for r in audit[1:]]
    assert actions == [r[0] for r in trained.sql("SELECT action FROM dbml.audit_log WHERE model = 'churn' ORDER BY id DESC").fetchall()]
    assert actions[-8:] == ["MONITOR", "MONITOR", "ALTER", "ALTER", "ALTER", "EVALUATE", "TRAIN", "TRAIN"], actions
    # pictures: training curves, the latest EVALUATE run, drift now and over time
    assert not any("no picture" in n for n in page.notes), page.notes
    assert len(page.images) == 4 and all(src.startswith("data:image/svg+xml;base64,") for src in page.images)


def test_evaluation_runs_are_shown_when_stored(trained):
    trained.sql("EVALUATE MODEL churn VERSION 2 ON (SELECT * FROM t WHERE x > 2)")
    page = Page(trained.model_card("churn", version=2))
    runs = page.table_after("run")
    # newest first: this test's run, ..., the fixture's (other tests of the module may add runs between)
    stored = trained.sql("SELECT run_id FROM dbml.evaluation_runs WHERE model = 'churn' AND version = 2 ORDER BY run_id DESC").fetchall()
    assert [r[0] for r in runs[1:]] == [str(r[0]) for r in stored] and runs[-1][0] == "1"
    assert runs[1][2] == "tester" and "x > 2" in runs[1][3] and '"t"' in runs[-1][3]
    assert runs[-1][4] == "200" and "accuracy = " in runs[-1][5] and "roc_auc = " in runs[-1][5]
    assert f"Pictures of run {runs[1][0]} (the latest)" in page.headings
    assert not any("no picture" in n for n in page.notes), page.notes


def test_imported_model_card_has_a_note_instead_of_curves(trained, tmp_path):
    path = tmp_path / "churn.onnx"
    trained.sql(f"EXPORT MODEL churn VERSION 1 TO '{path}'")
    trained.sql(f"IMPORT MODEL copied FROM '{path}'")
    page = Page(trained.model_card("copied"))
    assert any("no training log" in n for n in page.notes)
    assert page.fact("Model") == "copied"


def test_foreign_model_shows_missing_facts_as_missing(con, tmp_path):
    foreign_add_model(tmp_path / "add.onnx")
    con.sql(f"IMPORT MODEL adder FROM '{tmp_path / 'add.onnx'}'")
    page = Page(con.model_card("adder"))
    assert page.fact("Family (architecture)") == "imported"
    for label in ("Epochs run", "Training seconds", "Device", "Data fingerprint", "Rows used", "Training rows"):
        assert page.fact(label) == "not measured", label
    assert page.fact("Parity error (|ONNX - torch|)").startswith("not measured")
    assert any("no training profile" in n for n in page.notes)
    assert any("no training log" in n for n in page.notes)
    assert any("drift was not measured" in n for n in page.notes)


def test_unknown_model_raises_and_writes_nothing(trained, tmp_path):
    with pytest.raises(ModelNotFoundError, match="'nobody'"):
        trained.model_card("nobody")
    target = tmp_path / "nobody.html"
    with pytest.raises(ModelNotFoundError, match="'nobody'"):
        trained.sql(f"EXPORT MODEL CARD nobody TO '{target}'")
    assert not target.exists()


def test_values_from_the_database_are_escaped(con):
    con.sql(f'CREATE TABLE evil AS SELECT (i % 5)::DOUBLE AS "{EVIL}", i % 2 = 0 AS y FROM range(60) r(i)')
    con.sql(f"""TRAIN MODEL evil FROM (SELECT * FROM evil /* </td></tr></table>{EVIL} */) TARGET y
               WITH (epochs = 2, seed = 1, progress = false)""")
    text = con.model_card("evil")
    page = Page(text)
    assert "script" not in page.tags
    assert EVIL not in text and "&lt;script&gt;" in text
    assert page.fact("Model") == "evil"  # the tables still parse as tables
    features = page.table_after("#")
    assert features[1][1] == EVIL  # shown as text, exactly
    assert page.sections == ["model", "data", "evaluation", "deployment", "drift", "audit"]


def test_sql_form_returns_its_row_and_writes_the_file(trained, tmp_path):
    target = tmp_path / "card.html"
    target.write_text("old")  # replaced, as EXPORT MODEL replaces a file
    before = _cards(trained)
    rows = trained.sql(f"EXPORT MODEL CARD churn VERSION 1 TO '{target}'").fetchall()
    assert rows == [("churn", 1, str(target), target.stat().st_size)]
    assert Page(target.read_text()).fact("Version") == "1"
    (model, version, path, size), = trained.sql("EXPORT MODEL CARD churn TO 'memory://cards/churn.html'").fetchall()
    assert (model, version, path) == ("churn", 2, "memory://cards/churn.html")  # the newest version by default
    import fsspec

    with fsspec.open("memory://cards/churn.html", "rb") as f:
        assert len(f.read()) == size
    assert trained.model_card("churn", path=str(tmp_path / "py.html"), version=1) == str(tmp_path / "py.html")
    assert (tmp_path / "py.html").read_text().startswith("<!DOCTYPE html>")
    written = _cards(trained)[len(before):]  # each written card is an audit row with its URL
    assert [(v, d["url"]) for v, d in written] == [(1, str(target)), (2, "memory://cards/churn.html"), (1, str(tmp_path / "py.html"))]


def _cards(con) -> list:
    import json

    rows = con.sql("SELECT version, detail FROM dbml.audit_log WHERE action = 'CARD' ORDER BY id").fetchall()
    return [(v, json.loads(d)) for v, d in rows]


def test_bad_path_is_a_dbml_error_and_writes_nothing(trained, tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "card.html"
    before = _cards(trained)
    with pytest.raises(TransferError, match="no/such/folder"):
        trained.sql(f"EXPORT MODEL CARD churn TO '{missing}'")
    assert not (tmp_path / "no").exists()
    with pytest.raises(DbmlError, match="path or URL"):
        trained.model_card("churn", path="")
    with pytest.raises(TransferError, match="nosuchproto"):
        trained.model_card("churn", path="nosuchproto://x/card.html")
    assert list(tmp_path.iterdir()) == [] and _cards(trained) == before


def test_parse_card_against_a_model_named_card():
    assert isinstance(parse_statement("EXPORT MODEL card TO 'x.onnx'"), ExportModel)
    assert isinstance(parse_statement("EXPORT MODEL card VERSION 2 TO 'x.onnx'"), ExportModel)
    node = parse_statement("export model card card version 3 to 'c.html'")
    assert isinstance(node, ExportModelCard) and node.this.name == "card"
    assert node.sql(dialect=dbml.dialect.Dbml) == "EXPORT MODEL CARD card VERSION 3 TO 'c.html'"


@pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists(CHROMIUM),
                    reason="Debian's chromium is not installed (.ci/run installs it with apt-get)")  # fmt: skip
def test_card_in_a_headless_browser(trained, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    target = tmp_path / "churn.html"
    trained.model_card("churn", path=str(target), version=2)
    url = target.as_uri()
    attempted: list[str] = []

    def only_the_file(route):
        if route.request.url == url:
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    executable = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])  # fmt: skip
        try:
            for width in (1200, 380):  # a desktop and a phone
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.route("**/*", only_the_file)
                page.goto(url, wait_until="load")
                for heading in ("What the model is", "Which data shaped it", "How it was evaluated",
                                "Where it is deployed", "What changed since training", "Who did what"):  # fmt: skip
                    assert page.get_by_role("heading", name=heading, exact=True).is_visible()
                images = page.evaluate(
                    "() => [...document.images].map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])"
                )
                assert len(images) >= 3 and all(done and natural > 0 and shown > 0 for done, natural, shown in images), images
                # on a phone the page itself does not scroll sideways (wide tables scroll in their box)
                overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 1, f"{overflow}px wider than the viewport at width {width}"
                page.screenshot(path=str(tmp_path / f"card-{width}.png"), full_page=True)
                if width == 1200 and os.environ.get("DBML_CARD_SCREENSHOT"):
                    page.screenshot(path=os.environ["DBML_CARD_SCREENSHOT"], full_page=True)
                page.close()
        finally:
            browser.close()
    assert attempted == []
    assert (tmp_path / "card-1200.png").stat().st_size > 10_000


def test_the_card_pictures_the_newest_run_with_pictures(trained):
    trained.sql("EVALUATE MODEL churn ON (SELECT * FROM t) WITH (by = plan)")
    newest = trained.sql("SELECT max(run_id) FROM dbml.evaluation_runs").fetchall()[0][0]
    pictured = trained.sql("SELECT max(run_id) FROM dbml.evaluation_runs WHERE curves IS NOT NULL AND model = 'churn' "
                           "AND version = 2").fetchall()[0][0]  # fmt: skip
    page = Page(trained.model_card("churn"))
    assert pictured < newest
    assert f"Pictures of run {pictured} (the latest with pictures; later runs used by or confusion)" in page.headings
