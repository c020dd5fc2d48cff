"""Text columns: prose read as words, tokenized inside the ONNX graph.

**The rule.** A text value is lowercased (Unicode simple case mapping: DuckDB's
``lower`` and onnxruntime's ``StringNormalizer`` agree on every code point, tested),
then cut at every ASCII whitespace character (space, tab, newline, carriage return,
vertical tab, form feed) and every ASCII punctuation character
(``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``); the non-empty pieces, in order, are its
tokens, and the first ``max_tokens`` of them are kept. Letters, digits and every
non-ASCII character (accents, CJK, emoji, typographic dashes and quotes) stay inside
tokens. NULL reads as the empty string: no tokens.

**Where it runs.** DuckDB applies the rule in SQL to count the vocabulary over the
training rows (``string_split_regex`` on one character class: :data:`TOKEN_SPLIT`);
the graph applies it with standard operators only (``StringNormalizer``,
``StringSplit`` once per separator, ``Unique`` so that punctuation is cut once per
distinct word of a batch, ``ai.onnx.ml.LabelEncoder`` for the look-up, ``TopK`` to
drop the empty pieces in order), so an exported file scores raw strings in any ONNX
runtime. Training tensors come from the same graph nodes (:meth:`TextKind.tensor`),
so training and scoring cannot disagree; the tests compare DuckDB's tokens with the
graph's on unicode, tabs, newlines, punctuation, empty strings and NULL.

onnxruntime's ``StringSplit`` with an empty delimiter splits on the space alone
(though the ONNX spec says whitespace), so every separator gets its own explicit
``StringSplit``. Standard ONNX has no substring or string hash, so there are no
sub-word pieces: a word the vocabulary lacks is the unknown token (id 1).

Codes: 0 pads, 1 is an unknown word, 2.. the vocabulary by falling count.
"""

from __future__ import annotations

import math
import string
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dbml.errors import FeatureError
from dbml.kinds import Claim, Kind, MonitorBins, Phrase, Shape
from dbml.kinds.arrow import plain
from dbml.kinds.category import StringInput
from dbml.kinds.common import once, refuse, refusal
from dbml.options import Option
from dbml.sqltext import quote as _q

__all__ = ["TextKind", "SEPARATORS", "TOKEN_SPLIT", "tokens_sql", "MAX_TEXT_CHARS", "tokenizer_nodes", "code_width", "code_count"]

WHITESPACE = " \t\n\r\x0b\x0c"
PUNCTUATION = string.punctuation
SEPARATORS = WHITESPACE + PUNCTUATION
# one RE2 character class (DuckDB and the tests); each character as \x{..}, so no escaping question arises
TOKEN_SPLIT = "[" + "".join("\\x{%02x}" % ord(c) for c in SEPARATORS) + "]"
MAX_TEXT_CHARS = 20_000  # per value, at PREDICT: bounds what one row may make the graph hold
LOCALE = "C.UTF-8"  # onnxruntime's StringNormalizer needs a locale it can open; this one is everywhere
PAD, UNKNOWN = 0, 1
TOO_LONG = f"has a value of more than {MAX_TEXT_CHARS:,} characters, the most a text value may have"
CUT = f"cut it (left(col, {MAX_TEXT_CHARS})) or leave such rows out"
OPSET = 20  # StringSplit

# prose by statistics: most values distinct, several words each
PROSE_WORDS = 4.0
PROSE_DISTINCT = 0.5
PROSE_MIN_ROWS = 20

TEXT = Option("text", "str_list", [], "VARCHAR columns read as text (words), not categories", None, None)
MAX_TOKENS = Option("max_tokens", "int", 64, "tokens kept per text value (the first ones)",
                    lambda v: 1 <= v <= 1024, "between 1 and 1024")  # fmt: skip
VOCABULARY = Option("vocabulary", "int", 20_000, "words kept per text column (the most frequent)",
                    lambda v: 10 <= v <= 200_000, "between 10 and 200000")  # fmt: skip
MIN_COUNT = Option("min_count", "int", 2, "times a word must occur in the training rows to be kept",
                   lambda v: 1 <= v <= 1_000_000, "between 1 and 1000000")  # fmt: skip
NGRAMS = Option("ngrams", "int", 2, "1: words alone; 2: words and pairs of neighbouring words (kept like words)",
                lambda v: v in (1, 2), "1 or 2")  # fmt: skip
TEXT_DROPOUT = Option("text_dropout", "float", 0.5, "dropout on a text column's pooled vector while training",
                      lambda v: 0 <= v < 1, "in [0, 1)")  # fmt: skip
WORD_DROPOUT = Option("word_dropout", "float", 0.4, "share of a text value's words and pairs hidden at random in each "
                      "training step", lambda v: 0 <= v < 1, "in [0, 1)")  # fmt: skip
TEXT_WIDTH = Option("text_width", "int", 64, "width of a text column's word embeddings and of its encoding",
                    lambda v: 4 <= v <= 1024, "between 4 and 1024")  # fmt: skip


def tokens_sql(value: str) -> str:
    """DuckDB SQL of the tokens of ``value`` (SQL text of a VARCHAR), every one of them."""
    return f"list_filter(string_split_regex(lower(coalesce({value}, '')), '{TOKEN_SPLIT}'), lambda t: t <> '')"


def tokenizer_nodes(source: str, out: str, vocabulary: list[str], max_tokens: int, prefix: str,
                    bigrams: list[str] | None = None) -> list:  # fmt: skip
    """ONNX nodes from ``source`` (strings [N, 1]) to ``out`` (int64 codes [N, width]):
    the module docstring's rule, then the look-up; with ``bigrams`` ("word word", both
    words in ``vocabulary``), the codes of each pair of neighbouring kept words follow
    the words' own (:func:`code_width`)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []

    def const(name: str, value) -> str:  # Constant nodes: the front is nodes alone
        nodes.append(helper.make_node("Constant", [], [prefix + name], name=prefix + name + "_const",
                                      value=numpy_helper.from_array(np.asarray(value), prefix + name)))
        return prefix + name

    def node(op: str, inputs: list[str], outputs: list[str] | str, **attrs) -> str:
        outs = [outputs] if isinstance(outputs, str) else outputs
        outs = [prefix + o for o in outs]
        nodes.append(helper.make_node(op, inputs, outs, name=f"{prefix}{op.lower()}_{len(nodes)}", **attrs))
        return outs[0]

    flat = const("flat", np.array([-1], np.int64))
    rest = const("rest", np.array([-1], np.int64))
    one1 = const("one1", np.array([1], np.int64))
    zero, one = const("zero", np.array(0, np.int64)), const("one", np.array(1, np.int64))
    big = const("big", np.array(1 << 40, np.int64))
    width = const("width", np.array([max_tokens], np.int64))

    def blanks(count: str, tag: str) -> str:
        """A column of empty strings, [count, 1] (so that no tensor is ever 0 wide)."""
        zeros = node("ConstantOfShape", [node("Concat", [count, one1], f"{tag}_blank_shape", axis=0)], f"{tag}_zeros",
                     value=helper.make_tensor(f"{tag}_zero", TensorProto.INT64, [1], [0]))  # fmt: skip
        return node("LabelEncoder", [zeros], f"{tag}_blank", domain="ai.onnx.ml", keys_int64s=[0], values_strings=[""],
                    default_string="")  # fmt: skip

    def compact(values: str, mask: str, k: str, tag: str) -> str:
        """The columns of ``values`` where ``mask`` (int64 0/1) is 1, in order, first ``k`` per row."""
        cols = node("Squeeze", [node("Shape", [values], f"{tag}_shape", start=1)], f"{tag}_cols")
        pos = node("Range", [zero, cols, one], f"{tag}_pos")
        key = node("Sub", [node("Mul", [mask, big], f"{tag}_mb"), pos], f"{tag}_key")
        node("TopK", [key, k], [f"{tag}_top", f"{tag}_idx"], axis=1, largest=1, sorted=1)
        return node("GatherElements", [values, prefix + f"{tag}_idx"], f"{tag}_kept", axis=1)

    text = node("StringNormalizer", [node("Reshape", [source, flat], "in")], "lower", case_change_action="LOWER", locale=LOCALE)
    rows = node("Shape", [text], "rows")  # [N]
    # the space on whole values; every other separator on the distinct pieces of the batch only,
    # each pass keeping at most max_tokens pieces per distinct piece (so no width multiplies)
    current = node("StringSplit", [text], ["spaced", "spaced_n"], delimiter=" ")
    current = node("Concat", [current, blanks(rows, "rows")], "w_all", axis=1)  # never 0 wide
    # one word with no separator joins the pieces, so that no split below is ever 0 wide; its code is never read
    sentinel = const("sentinel", np.array(["a"], dtype=object))
    node("Unique", [node("Concat", [node("Reshape", [current, flat], "words"), sentinel], "words_s", axis=0)],
         ["distinct", "first", "inverse_s", "counts"], sorted=0)  # fmt: skip
    n_words = node("Shape", [prefix + "words"], "n_words")
    node("Slice", [prefix + "inverse_s", const("zero1", np.array([0], np.int64)), n_words], "inverse")
    distinct = prefix + "distinct"
    n_distinct = node("Shape", [distinct], "n_distinct")
    current = node("Reshape", [distinct, node("Concat", [n_distinct, one1], "d1", axis=0)], "d")
    for i, sep in enumerate(SEPARATORS[1:]):
        t = f"p{i}"
        pieces = node("StringSplit", [node("Reshape", [current, flat], f"{t}_in")], [f"{t}_pieces", f"{t}_n"], delimiter=sep)
        pieces = node("Reshape", [pieces, node("Concat", [n_distinct, rest], f"{t}_to", axis=0)], f"{t}_w")
        mask = node("LabelEncoder", [pieces], f"{t}_mask", domain="ai.onnx.ml", keys_strings=[""], values_int64s=[0],
                    default_int64=1)  # fmt: skip
        most = node("ReduceMax", [node("ReduceSum", [mask, one1], f"{t}_count", keepdims=0)], f"{t}_most", keepdims=1)
        k = node("Min", [node("Max", [most, one1], f"{t}_k1"), width], f"{t}_k")
        current = compact(pieces, mask, k, t)
    vocab = [str(v) for v in vocabulary]
    codes = node("LabelEncoder", [current], "codes", domain="ai.onnx.ml", keys_strings=[""] + vocab,
                 values_int64s=[PAD] + list(range(2, len(vocab) + 2)), default_int64=UNKNOWN)  # fmt: skip
    per_word = node("Gather", [codes, prefix + "inverse"], "per_word", axis=0)  # [N * W, pieces]
    per_row = node("Reshape", [per_word, node("Concat", [rows, rest], "row_to", axis=0)], "per_row")
    pad = node("ConstantOfShape", [node("Concat", [rows, width], "pad_to", axis=0)], "pad",
               value=helper.make_tensor("pad_value", TensorProto.INT64, [1], [PAD]))  # fmt: skip
    padded = node("Concat", [per_row, pad], "padded", axis=1)
    present = node("Min", [padded, one], "present")  # codes are >= 0: 1 where a token is
    kept = compact(padded, present, width, "final")
    if bigrams:
        # a pair's key is first * (V + 2) + second, looked up among the training pairs (0 when absent)
        index = {w: i + 2 for i, w in enumerate(vocab)}
        base = len(vocab) + 2
        keys = [index[a] * base + index[b] for a, b in (pair.split(" ", 1) for pair in bigrams)]
        first = node("Slice", [kept, const("b_s0", np.array([0], np.int64)), const("b_e0", np.array([max_tokens - 1], np.int64)),
                               one1], "b_first")  # fmt: skip
        second = node("Slice", [kept, one1, width, one1], "b_second")
        key = node("Add", [node("Mul", [first, const("b_base", np.array(base, np.int64))], "b_scaled"), second], "b_key")
        pairs = node("LabelEncoder", [key], "b_codes", domain="ai.onnx.ml", keys_int64s=keys,
                     values_int64s=list(range(base, base + len(keys))), default_int64=PAD)  # fmt: skip
        kept = node("Concat", [kept, pairs], "with_pairs", axis=1)
    nodes.append(helper.make_node("Identity", [kept], [out], name=prefix + "tokens"))
    return nodes


def code_width(entry: dict[str, Any]) -> int:
    """Codes per row of a text column: its words, then its pairs of neighbouring words."""
    tokens = int(entry.get("max_tokens", MAX_TOKENS.default))
    return 2 * tokens - 1 if entry.get("bigrams") and tokens > 1 else tokens


def code_count(entry: dict[str, Any]) -> int:
    """Distinct codes: padding, unknown, the words, the pairs."""
    return 2 + len(entry.get("vocabulary") or []) + len(entry.get("bigrams") or [])


class TextKind(StringInput, Kind):
    """VARCHAR columns the user names (``text = ['body']``) or that read as prose."""

    name = "text"
    onnx_elem = "string"
    tensor_dtype = "int64"
    shape = Shape.FLAT  # the encoder pools the words into one vector
    group_order = 2  # after numbers and categories
    priority = 1  # above category, which takes every VARCHAR by its type
    options = (TEXT, MAX_TOKENS, VOCABULARY, MIN_COUNT, NGRAMS, TEXT_WIDTH, TEXT_DROPOUT, WORD_DROPOUT)
    opset = OPSET
    arrow_needs = "text (string, large_string, string_view or a dictionary of strings)"

    # -- detection ------------------------------------------------------------------------
    def _named(self, column) -> bool:
        return column.name.lower() in {str(n).lower() for n in column.options.get("text") or []}

    def statistics(self, column):
        if column.sql_type != "VARCHAR" or self._named(column):
            return {}
        c = column.ref
        return {
            "rows": f"count({c})",
            "distinct": f"approx_count_distinct({c})",
            "words": f"avg(length({tokens_sql(c)})) FILTER (WHERE {c} IS NOT NULL)",
        }

    def claim(self, column):
        if column.sql_type != "VARCHAR":
            return None
        if self._named(column):
            return Claim("VARCHAR", "option text")
        if column.prior is not None and column.prior.kind == self.name:  # a fine-tune or a transfer keeps it text
            return Claim("VARCHAR", column.prior.rule or "option text")
        s = column.stats
        rows, distinct, words = s.get("rows"), s.get("distinct"), s.get("words")
        if not rows or rows < PROSE_MIN_ROWS or distinct is None or words is None:
            return None
        if distinct >= PROSE_DISTINCT * rows and words >= PROSE_WORDS:
            return Claim("VARCHAR", f"prose: {min(int(distinct), int(rows)):,} distinct values in {int(rows):,} rows, "
                                    f"{float(words):.1f} words each on average")  # fmt: skip
        return None

    def check_options(self, options, detected):
        named = [str(n) for n in options.get("text") or []]
        by_name = {d.name.lower(): d for d in detected}
        for n in named:
            d = by_name.get(n.lower())
            if d is None:
                raise FeatureError(f"option text names column '{n}', which is not a feature column of the source "
                                   f"(features: {', '.join(d.name for d in detected) or 'none'})")  # fmt: skip
            if d.kind != self.name:
                raise FeatureError(f"option text names column '{d.name}', which is {d.cast}, not VARCHAR: "
                                   f"only VARCHAR columns are read as text; cast it (CAST({_q(d.name)} AS VARCHAR))")  # fmt: skip

    def valid_type(self, sql_type):
        return sql_type == "VARCHAR"

    # -- one column -----------------------------------------------------------------------
    def sql(self, feature, column, model):
        from sqlglot import exp

        typed = exp.cast(column, exp.DataType.build("VARCHAR"))

        def body(v):
            too_long = exp.GT(this=exp.func("length", v.copy()), expression=exp.Literal.number(MAX_TEXT_CHARS))
            reason = refuse(feature, None, model, TOO_LONG, CUT)
            return exp.Case(ifs=[exp.If(this=too_long, true=reason)], default=exp.func("COALESCE", v.copy(), exp.Literal.string("")))

        return once(typed, body)

    def takes(self, feature, arrow_type):
        t = arrow_type
        return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)

    def arrow(self, feature, values, model, timezone="UTC"):
        values = plain(values, pa.string())
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        if len(values):
            longest = pc.max(pc.utf8_length(values)).as_py()
            if longest is not None and longest > MAX_TEXT_CHARS:
                raise FeatureError(refusal(feature, None, model, TOO_LONG, CUT))
        return pc.fill_null(values, "") if values.null_count else values

    def profile(self, con, table, features, options):
        out = {}
        for f in features:
            c = _q(f.name)
            toks = tokens_sql(c)
            total, empty, distinct, n_tokens, mean = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE length({toks}) = 0), approx_count_distinct({c}), "
                f"coalesce(sum(length({toks})), 0), avg(length({toks})) FROM {table}"
            ).fetchall()[0]  # fmt: skip
            rows = con.execute(
                f"SELECT t, count(*) AS n FROM (SELECT unnest({toks}) AS t FROM {table}) GROUP BY t HAVING count(*) >= ? "
                f"ORDER BY n DESC, t LIMIT ?",
                [options["min_count"], options["vocabulary"]],
            ).fetchall()  # fmt: skip
            from dbml.kinds.scalar import QUANTILES, histogram

            bigrams: list[str] = []
            if options["ngrams"] == 2 and options["max_tokens"] > 1 and rows:
                known = {t for t, _ in rows}
                kept = f"({toks})[1:{int(options['max_tokens'])}]"
                pairs = con.execute(
                    f"SELECT p, count(*) AS n FROM (SELECT unnest(list_transform(range(1, length(t)), "
                    f"lambda i: t[i] || ' ' || t[i + 1])) AS p FROM (SELECT {kept} AS t FROM {table})) "
                    f"GROUP BY p HAVING count(*) >= ? ORDER BY n DESC, p LIMIT ?",
                    [options["min_count"], 4 * options["vocabulary"]],
                ).fetchall()  # fmt: skip
                bigrams = [p for p, _ in pairs if all(w in known for w in p.split(" ", 1))][: options["vocabulary"]]

            length = f"length({toks})"
            qs = con.execute(f"SELECT quantile_cont({length}, {QUANTILES}) FROM {table}").fetchall()[0][0]
            quantiles = [float(q) for q in qs] if qs is not None else []
            out[f.name] = {
                "kind": f.kind, "count": int(total), "nulls": int(empty), "distinct": int(distinct),
                "vocabulary": [t for t, _ in rows], "frequencies": [n / n_tokens for _, n in rows] if n_tokens else [],
                "max_tokens": int(options["max_tokens"]), "tokens_mean": float(mean or 0.0), "bigrams": bigrams,
                "histogram": histogram(con, table, length, quantiles),
            }  # fmt: skip
        return out

    def check_profile(self, check, entry, at):
        from dbml.kinds.scalar import check_histogram
        from dbml.registry.records import MAX_LABEL_TEXT, MAX_VOCABULARY

        clean = dict(entry)
        vocab = check.texts(entry.get("vocabulary"), f"{at}.vocabulary", MAX_VOCABULARY, MAX_LABEL_TEXT)
        if any(v == "" for v in vocab):
            raise check.fail(f"{at}.vocabulary", "", "words, none empty")
        clean["vocabulary"] = vocab
        freqs = check.numbers(entry.get("frequencies"), f"{at}.frequencies", MAX_VOCABULARY)
        if len(freqs) != len(vocab):
            raise check.fail(f"{at}.frequencies", entry.get("frequencies"), "one frequency per vocabulary entry")
        clean["frequencies"] = freqs
        clean["max_tokens"] = check.integer(entry.get("max_tokens"), f"{at}.max_tokens", 1, 1024)
        pairs = check.texts(entry.get("bigrams") or [], f"{at}.bigrams", MAX_VOCABULARY, 2 * MAX_LABEL_TEXT + 1)
        known = set(vocab)
        for pair in pairs:
            words = pair.split(" ")
            if len(words) != 2 or not all(w in known for w in words):
                raise check.fail(f"{at}.bigrams", pair, "two words of the vocabulary, one space between them")
        clean["bigrams"] = pairs
        clean["tokens_mean"] = check.number(entry.get("tokens_mean"), f"{at}.tokens_mean")
        if entry.get("histogram") is not None:
            clean["histogram"] = check_histogram(check, entry["histogram"], f"{at}.histogram")
        return clean

    def check(self, model, feature, profile, options):
        entry = profile[feature.name]
        if entry["count"] and entry["nulls"] >= entry["count"]:
            raise FeatureError(
                f"text column '{feature.name}' of model '{model}' has no words on any training row (every value is NULL, "
                f"empty or punctuation): leave it out with SELECT * EXCLUDE ({_q(feature.name)})"
            )

    def monitor_sql(self, value_sql):
        """MONITOR bins each value's token count (length drift) against the training histogram."""
        return f"length({tokens_sql(value_sql)})"

    def monitor_bins(self, feature, profile, value):
        from dbml.kinds.scalar import histogram_bins

        bins, bin_sql = histogram_bins(profile.get("histogram"), value)
        return MonitorBins(f"({value} = 0)", bin_sql, bins)

    def monitor_parts(self, feature, profile, value):
        """Word shares: the training's 50 most frequent words, each a bin with its share of
        all words, and bin 0 for every other word (its training share the rest)."""
        from dbml.kinds import MonitorParts
        from dbml.sqltext import string as _string

        vocab, freqs = profile.get("vocabulary") or [], profile.get("frequencies") or []
        if not vocab or len(vocab) != len(freqs):
            return []
        top = list(zip(vocab, freqs))[:50]
        other = max(0.0, 1.0 - math.fsum(float(f) for _, f in top))
        bins = [(0, other, None, None, None)] + [(k + 1, float(f), None, None, w) for k, (w, f) in enumerate(top)]
        listed = "[" + ", ".join(_string(w) for w, _ in top) + "]::VARCHAR[]"
        return [MonitorParts(f"{feature.name} (words)", tokens_sql,
                             MonitorBins("FALSE", f"coalesce(list_position({listed}, {value}), 0)", bins, all_rows=True,
                                         keyed=True))]  # fmt: skip

    def card_shape(self, profile):
        vocab, freq = profile.get("vocabulary") or [], profile.get("frequencies") or []
        out = [Phrase("{} words per value on average, {} words kept", (round(profile.get("tokens_mean") or 0.0, 1), len(vocab)))]
        if vocab:
            top = list(zip(vocab, freq))[:5]
            out += [Phrase("; most frequent: "), Phrase(", ".join("{} ({}%)" for _ in top),
                                                         tuple(x for w, f in top for x in (w, round(100 * f, 1))))]  # fmt: skip
        return out

    # -- the group ------------------------------------------------------------------------
    def group_key(self, feature) -> str:
        return "text:" + feature.name

    def tensor_shape(self, features, profile=None):
        return (code_width((profile or {}).get(features[0].name, {})),)

    def tensor(self, features, columns, profile) -> np.ndarray:
        """The codes of every row, from the graph's own tokenizer (so training sees what
        scoring will), run by onnxruntime in batches."""
        session = _session(profile[features[0].name])
        values = self.arrow(features[0], columns[0], None)
        chunk = 8192
        parts = []
        for start in range(0, len(values), chunk):
            part = values.slice(start, chunk).to_numpy(zero_copy_only=False).reshape(-1, 1)
            parts.append(session.run(None, {"text": part})[0])
        if not parts:
            return np.zeros((0, code_width(profile[features[0].name])), np.int64)
        return np.ascontiguousarray(np.concatenate(parts), np.int64)

    def front(self, features, profile, out, prefix) -> list:
        f = features[0]
        entry = profile[f.name]
        return tokenizer_nodes(f.name, out, entry["vocabulary"], entry["max_tokens"], prefix, entry.get("bigrams"))

    def width(self, features, profile) -> int:
        return 64

    def encoder(self, features, profile, options):
        from dbml.kinds.encoders import TextEncoder

        entry = profile[features[0].name]
        return TextEncoder(
            code_count(entry), int(entry["max_tokens"]), int(options.get("text_width") or TEXT_WIDTH.default),
            layers=int(options.get("text_layers") or 0), heads=int(options.get("text_heads") or 4),
            dropout=float(options.get("attention_dropout") or 0.0), pooled_dropout=float(options.get("text_dropout") or 0.0),
            word_dropout=float(options.get("word_dropout") or 0.0),
        )  # fmt: skip


_SESSIONS: dict[tuple, Any] = {}


def _session(entry: dict[str, Any]):
    """An onnxruntime session of the tokenizer alone (for training tensors)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    key = (tuple(entry["vocabulary"]), int(entry["max_tokens"]), tuple(entry.get("bigrams") or ()))
    if key in _SESSIONS:
        return _SESSIONS[key]
    nodes = tokenizer_nodes("text", "codes", entry["vocabulary"], int(entry["max_tokens"]), "tok/", entry.get("bigrams"))
    graph = helper.make_graph(nodes, "tokenizer", [helper.make_tensor_value_info("text", TensorProto.STRING, ["N", 1])],
                              [helper.make_tensor_value_info("codes", TensorProto.INT64, ["N", code_width(entry)])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 3)])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    if len(_SESSIONS) > 8:
        _SESSIONS.clear()
    _SESSIONS[key] = session
    return session
