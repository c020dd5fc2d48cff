"""The text kind: one tokenizing rule in DuckDB and in the graph, detection, training
(mlp and transformer), scoring raw strings inside and outside DuckDB, and bad input."""

from __future__ import annotations

import os

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import dbml
from dbml.errors import DbmlError
from dbml.kinds.text import SEPARATORS, _session, tokens_sql

HARD = [
    "Hello, World!", "don't\tstop\nbelieving", "", "   ", "\t\n\r\x0b\x0c", "...,,,!!!", "École—École a.b.c",
    "straße İstanbul ΣΑΣ ǅemal", "日本語のテキスト 中文", "emoji 🙂🙃 ok", "e\u0301 combining", "a\r\nb\r\nc",
    "MiXeD CaSe WoRdS", "tabs\t\tand  spaces   mixed", "(parens) [brackets] {braces} <angles>", "quote\"inside'quotes`",
    "under_score and-dash/slash\\back", "numbers 3.14 1,000 #42 $5 100%", "x" * 300, " ".join(f"w{i}" for i in range(80)),
    "trailing punctuation?!", "\u00a0non-breaking\u00a0space", "“typographic” ‘quotes’ – dash", None,
]  # fmt: skip


def _duckdb_tokens(values: list[str | None]) -> list[list[str]]:
    con = duckdb.connect()
    rows = con.execute(f"SELECT {tokens_sql('v')} FROM (SELECT unnest(?) AS v, generate_subscripts(?, 1) AS i) ORDER BY i",
                       [values, values]).fetchall()  # fmt: skip
    return [r[0] for r in rows]


def _graph_tokens(values: list[str | None], vocab: list[str], max_tokens: int) -> np.ndarray:
    session = _session({"vocabulary": vocab, "max_tokens": max_tokens, "bigrams": []})
    feed = np.array([["" if v is None else v] for v in values], dtype=object)
    return session.run(None, {"text": feed})[0]


@pytest.mark.parametrize("max_tokens", [1, 5, 64])
def test_duckdb_and_the_graph_cut_text_alike(max_tokens):
    """Every token DuckDB finds is a vocabulary word; the graph's codes, decoded, are
    DuckDB's tokens in order, cut at max_tokens: unicode, tabs, newlines, punctuation,
    empty strings and NULL included."""
    tokens = _duckdb_tokens(HARD)
    vocab = sorted({t for row in tokens for t in row})
    codes = _graph_tokens(HARD, vocab, max_tokens)
    assert codes.shape == (len(HARD), max_tokens)
    words = {i + 2: w for i, w in enumerate(vocab)}
    for value, want, got in zip(HARD, tokens, codes):
        assert [words[c] for c in got if c] == want[:max_tokens], value
        assert all(c == 0 for c in got[len(want[:max_tokens]) :]), value  # padding after the words
    assert tokens[0] == ["hello", "world"]
    assert tokens[1] == ["don", "t", "stop", "believing"]
    assert tokens[2] == tokens[3] == tokens[4] == tokens[5] == [] and tokens[-1] == []
    assert tokens[6] == ["école—école", "a", "b", "c"]  # non-ASCII punctuation stays inside words


def test_unknown_words_get_code_one_and_lowercase_matches_duckdb_on_every_letter():
    codes = _graph_tokens(["Known UNSEEN known"], ["known"], 4)
    assert codes.tolist() == [[2, 1, 2, 0]]
    # lowercase: the graph and DuckDB agree on every code point of the first planes
    letters = [chr(c) for c in range(0x41, 0x3000) if not (0xD800 <= c < 0xE000) and chr(c) not in SEPARATORS]
    want = [r[0] for r in duckdb.execute("SELECT lower(v) FROM (SELECT unnest(?) AS v, generate_subscripts(?, 1) AS i) ORDER BY i",
                                         [letters, letters]).fetchall()]  # fmt: skip
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="LOWER", locale="C.UTF-8")],
                              "lower", [helper.make_tensor_value_info("x", TensorProto.STRING, ["N"])],
                              [helper.make_tensor_value_info("y", TensorProto.STRING, ["N"])])  # fmt: skip
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString())
    got = session.run(None, {"x": np.array(letters, dtype=object)})[0].tolist()
    assert got == want


def _reviews(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    good, bad = ["great", "loved", "superb", "fun", "moving"], ["dull", "awful", "boring", "weak", "mess"]
    filler = ["the", "film", "was", "a", "plot", "and", "it", "acting", "story", "very"]
    body, stars, label = [], [], []
    for i in range(n):
        y = int(rng.integers(2))
        words = list(rng.choice(filler, 7)) + list(rng.choice(good if y else bad, 2))
        rng.shuffle(words)
        sep = ["\t", "\n", ", ", "! ", " "]
        body.append("".join(w + sep[int(rng.integers(len(sep)))] for w in words).title())
        stars.append(float(rng.normal()))
        label.append(y)
    return pa.table({"body": body, "stars": stars, "liked": label})


@pytest.fixture
def reviews():
    con = dbml.connect()
    con.duckdb.register("train_arrow", _reviews(400, 0))
    con.duckdb.register("test_arrow", _reviews(200, 1))
    con.sql("CREATE TABLE reviews AS SELECT * FROM train_arrow")
    con.sql("CREATE TABLE fresh AS SELECT * FROM test_arrow")
    yield con
    con.close()


FAST = "epochs = 25, seed = 0, text_width = 16, max_tokens = 16"


@pytest.mark.parametrize("using,extra", [("mlp", ""), ("transformer", ", layers = 1, heads = 2"), ("bag", "")])
def test_text_models_learn_and_score_raw_strings(reviews, tmp_path, using, extra):
    con = reviews
    con.sql(f"TRAIN MODEL r USING {using} FROM reviews TARGET liked WITH ({FAST}{extra})")
    acc = con.sql("SELECT avg((PREDICT(r, body, stars) = liked)::INT) FROM fresh").fetchall()[0][0]
    assert acc > 0.9
    features = {f["name"]: f for f in __import__("json").loads(con.sql("DESCRIBE MODEL r").fetchall()[0][16])}
    assert features["body"]["kind"] == "text" and features["body"]["rule"].startswith("prose:")
    # the exported file alone scores raw strings as PREDICT does, NULL, tabs and unicode included
    path = os.path.join(tmp_path, "r.onnx")
    con.sql(f"EXPORT MODEL r TO '{path}'")
    odd = pa.table({"body": ["Loved\tit,\nsuperb!", None, "", "AWFUL… boring—mess", "ÉCOLE 🙂 fun"], "stars": [0.0] * 5})
    outside = dbml.score(path, odd).column("prediction").to_pylist()
    con.duckdb.register("odd_arrow", odd)
    inside = [r[0] for r in con.sql("SELECT PREDICT(r, body, stars) FROM odd_arrow").fetchall()]
    assert inside == outside
    assert outside[0] == 1
    emb = con.sql("SELECT EMBED(r, body, stars) FROM fresh LIMIT 1").fetchall()[0][0]
    assert len(emb) > 0 and all(np.isfinite(emb))


def test_categories_stay_categories_and_the_option_names_text(reviews):
    con = reviews
    con.sql("CREATE TABLE t AS SELECT body, CASE WHEN liked = 1 THEN 'yes please' ELSE 'no thank you' END AS tag, "
            "'short' AS word, liked FROM reviews")  # fmt: skip
    con.sql(f"TRAIN MODEL m FROM t TARGET liked WITH ({FAST})")
    kinds = {f["name"]: (f["kind"], f.get("rule")) for f in __import__("json").loads(con.sql("DESCRIBE MODEL m").fetchall()[0][16])}
    assert kinds["body"][0] == "text"
    assert kinds["tag"] == ("category", None) and kinds["word"] == ("category", None)
    con.sql(f"TRAIN MODEL n FROM t TARGET liked WITH ({FAST}, text = ['tag'])")
    kinds = {f["name"]: (f["kind"], f.get("rule")) for f in __import__("json").loads(con.sql("DESCRIBE MODEL n").fetchall()[0][16])}
    assert kinds["tag"] == ("text", "option text")


@pytest.mark.parametrize("sql,words", [
    ("TRAIN MODEL bad FROM (SELECT NULL::VARCHAR AS body, stars, liked FROM reviews) TARGET liked WITH (text = ['body'])",
     ["text column 'body'", "'bad'", "no words"]),
    ("TRAIN MODEL bad FROM (SELECT '' AS body, stars, liked FROM reviews) TARGET liked WITH (text = ['body'])",
     ["text column 'body'", "no words"]),
    ("TRAIN MODEL bad FROM reviews TARGET liked WITH (text = ['stars'])", ["option text", "'stars'", "DOUBLE", "VARCHAR"]),
    ("TRAIN MODEL bad FROM reviews TARGET liked WITH (text = ['nope'])", ["option text", "'nope'", "not a feature column"]),
    ("TRAIN MODEL bad FROM reviews TARGET liked WITH (max_tokens = 0)", ["max_tokens", "between 1 and 1024"]),
    ("TRAIN MODEL bad FROM reviews TARGET liked WITH (max_tokens = 5000)", ["max_tokens", "between 1 and 1024"]),
    ("TRAIN MODEL bad USING transformer FROM (SELECT stars, liked FROM reviews) TARGET liked", ["USING transformer", "text"]),
    ("TRAIN MODEL bad USING transformer FROM reviews TARGET liked WITH (heads = 3)", ["heads", "text_width"]),
    ("TRAIN MODEL bad USING bag FROM (SELECT stars, liked FROM reviews) TARGET liked", ["USING bag", "text"]),
    ("TRAIN MODEL bad FROM reviews TARGET liked WITH (word_dropout = 1)", ["word_dropout", "in [0, 1)"]),
])  # fmt: skip
def test_bad_text_input_is_named_and_writes_nothing(reviews, sql, words):
    con = reviews
    before = con.sql("SHOW MODELS").fetchall()
    with pytest.raises(DbmlError) as err:
        con.sql(sql)
    for w in words:
        assert w in str(err.value)
    assert con.sql("SHOW MODELS").fetchall() == before


def test_a_value_over_the_size_limit_is_named_at_predict(reviews, tmp_path):
    con = reviews
    con.sql(f"TRAIN MODEL r FROM reviews TARGET liked WITH ({FAST})")
    with pytest.raises(Exception) as err:
        con.sql("SELECT PREDICT(r, repeat('ab ', 10000), 0.0)").fetchall()
    assert "column 'body'" in str(err.value) and "20,000 characters" in str(err.value)
    path = os.path.join(tmp_path, "r.onnx")
    con.sql(f"EXPORT MODEL r TO '{path}'")
    with pytest.raises(DbmlError, match="20,000 characters"):
        dbml.score(path, pa.table({"body": ["ab " * 10000], "stars": [0.0]}))


def test_explain_and_monitor_read_a_text_column_whole(reviews):
    con = reviews
    con.sql(f"TRAIN MODEL r FROM reviews TARGET liked WITH ({FAST})")
    imp = {r[0]: r[1] for r in con.sql("EXPLAIN MODEL r ON fresh").fetchall()}
    assert imp["body"] > 0.2 and imp["body"] > imp["stars"] + 0.1
    drift = {r[1]: r[3] for r in con.sql(
        "MONITOR MODEL r ON (SELECT * REPLACE (body || ' and then some more words were added here' AS body) FROM fresh)"
    ).fetchall()}  # fmt: skip
    same = {r[1]: r[3] for r in con.sql("MONITOR MODEL r ON fresh").fetchall()}
    assert drift["body"] > 1.0 > same["body"]  # length drift
    assert drift["body (words)"] > 0.5 > same["body (words)"]  # word-share drift: new words take a share


def test_pairs_of_words_get_their_own_codes():
    from dbml.kinds.text import code_width

    entry = {"vocabulary": ["not", "good", "bad"], "max_tokens": 4, "bigrams": ["not good", "good bad"]}
    session = _session(entry)
    codes = session.run(None, {"text": np.array([["Not good, bad"], ["good not"], [""]], dtype=object)})[0]
    assert codes.shape == (3, code_width(entry)) == (3, 7)
    # words: not=2 good=3 bad=4; pairs: "not good"=5, "good bad"=6
    assert codes.tolist() == [[2, 3, 4, 0, 5, 6, 0], [3, 2, 0, 0, 0, 0, 0], [0] * 7]


def test_fine_tune_and_transfer_keep_a_text_column_on_few_rows(reviews):
    """A column chosen as text by its statistics stays text on rows too few to show them."""
    con = reviews
    con.sql(f"TRAIN MODEL r FROM reviews TARGET liked WITH ({FAST})")
    con.sql("CREATE TABLE few AS SELECT body, stars, liked, (stars > 0)::INT AS upbeat FROM fresh LIMIT 12")
    con.sql("TRAIN MODEL r FROM (SELECT body, stars, liked FROM few) TARGET liked WITH (warm_start = true, epochs = 2)")
    con.sql("TRAIN MODEL t FROM (SELECT body, stars, upbeat FROM few) TARGET upbeat WITH (base = 'r', epochs = 2)")
    for model in ("r", "t"):
        kinds = {f["name"]: f["kind"] for f in __import__("json").loads(con.sql(f"DESCRIBE MODEL {model}").fetchall()[0][16])}
        assert kinds["body"] == "text", model
    assert con.sql("SELECT count(PREDICT(t, body, stars)) FROM fresh").fetchall()[0][0] == 200


def test_a_text_model_round_trips_through_export_and_import(reviews, tmp_path):
    """IMPORT of an exported text model: the column stays text (its vocabulary and rule
    come back from the file's metadata) and PREDICT gives the same answers, odd strings
    included."""
    import json

    con = reviews
    con.sql(f"TRAIN MODEL r USING bag FROM reviews TARGET liked WITH ({FAST})")
    path = os.path.join(tmp_path, "r.onnx")
    con.sql(f"EXPORT MODEL r TO '{path}'")
    other = dbml.connect()
    try:
        other.sql(f"IMPORT MODEL r2 FROM '{path}'")
        features = {f["name"]: f for f in json.loads(other.sql("DESCRIBE MODEL r2").fetchall()[0][16])}
        assert features["body"]["kind"] == "text"
        odd = pa.table({"body": ["Loved\tit,\nsuperb!", None, "", "AWFUL… boring—mess", "ÉCOLE 🙂 fun"], "stars": [0.5] * 5})
        con.duckdb.register("odd_arrow", odd)
        other.duckdb.register("odd_arrow", odd)
        here = con.sql("SELECT PREDICT_PROBA(r, body, stars) FROM odd_arrow").fetchall()
        there = other.sql("SELECT PREDICT_PROBA(r2, body, stars) FROM odd_arrow").fetchall()
        flat = lambda rows: [p for r in rows for p in r[0].values()]  # noqa: E731
        assert flat(here) == pytest.approx(flat(there), abs=1e-6) and len(flat(here)) == 10
        other.duckdb.register("fresh_arrow", _reviews(200, 1))
        acc = other.sql("SELECT avg((PREDICT(r2, body, stars) = liked)::INT) FROM fresh_arrow").fetchall()[0][0]
        assert acc > 0.9
    finally:
        other.close()
