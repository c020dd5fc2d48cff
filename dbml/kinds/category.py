"""Text and ENUM columns: a VARCHAR input per column, looked up in the training
vocabulary (``ai.onnx.ml.LabelEncoder``; unknown values and NULL get code 0) and
embedded with one ``nn.Embedding`` per column, so memory grows linearly with the
vocabulary (100,000 user ids fit)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dbml.kinds import Claim, Kind, MonitorBins, Phrase, Shape
from dbml.kinds.arrow import plain
from dbml.sqltext import quote as _q, string as _string

__all__ = ["CategoryKind", "StringInput", "embedding_dim"]


def embedding_dim(k: int) -> int:
    """Embedding width of a column of ``k`` codes: 1.6 * k^0.56, between 2 and 64
    (the rule of thumb fast.ai measured on tabular benchmarks)."""
    return int(max(2, min(64, round(1.6 * k**0.56))))


class StringInput:
    """A kind whose column reaches the UDF as VARCHAR and the graph as strings [N, 1]
    (NULL as the empty string): categories and text."""

    def udf_type(self, feature):
        from duckdb import sqltypes

        return sqltypes.VARCHAR

    def feed(self, feature, values: pa.Array) -> np.ndarray:
        if values.null_count:
            values = pc.fill_null(values.cast(pa.string()), "")
        return values.to_numpy(zero_copy_only=False).reshape(-1, 1)


class CategoryKind(StringInput, Kind):
    name = "category"
    onnx_elem = "string"
    tensor_dtype = "int64"
    shape = Shape.FLAT  # the embeddings, concatenated
    group_order = 1  # after the numbers

    def claim(self, column):
        t = column.sql_type
        return Claim("VARCHAR") if t == "VARCHAR" or t.startswith("ENUM") else None

    def valid_type(self, sql_type):
        return sql_type == "VARCHAR"

    def foreign_type(self, dtype):
        return "VARCHAR" if dtype == "string" else None

    def check_profile(self, check, entry, at):
        from dbml.registry.records import MAX_LABEL_TEXT, MAX_VOCABULARY

        clean = dict(entry)
        vocab = check.texts(entry.get("vocabulary"), f"{at}.vocabulary", MAX_VOCABULARY, MAX_LABEL_TEXT)
        clean["vocabulary"] = vocab
        if "frequencies" in entry:
            freqs = check.numbers(entry["frequencies"], f"{at}.frequencies", MAX_VOCABULARY)
            if len(freqs) != len(vocab):
                raise check.fail(f"{at}.frequencies", entry["frequencies"], "one frequency per vocabulary entry")
            clean["frequencies"] = freqs
        if "nulls" not in clean:
            clean["nulls"] = 0
        return clean

    def monitor_bins(self, feature, profile, value):
        """One bin per value of the training vocabulary and an "other" bin (0) for the
        rest (training share ``1 - sum(frequencies)``, floored at 0); shares of all rows,
        NULL counting as ``''``, the encoded value."""
        vocab, freqs = profile.get("vocabulary"), profile.get("frequencies")
        bins = bin_sql = None
        if vocab is not None and freqs is not None and len(vocab) == len(freqs):
            vocab = [str(w) for w in vocab]
            other = max(0.0, 1.0 - math.fsum(float(f) for f in freqs))
            bins = [(0, other, None, None, None)] + [(k + 1, float(f), None, None, w) for k, (w, f) in enumerate(zip(vocab, freqs))]
            listed = "[" + ", ".join(_string(w) for w in vocab) + "]::VARCHAR[]"
            # 1-based position in the vocabulary; 0 (the "other" bin) when absent
            bin_sql = f"coalesce(list_position({listed}, {value}), 0)" if vocab else "0"
        return MonitorBins(f"({value} = '')", bin_sql, bins, all_rows=True, keyed=True)

    def card_shape(self, profile):
        """The five most frequent values with their shares, and how many are distinct."""
        if profile.get("vocabulary") is None:
            return []
        vocab, freq = profile.get("vocabulary") or [], profile.get("frequencies") or []
        top = sorted(zip(vocab, freq), key=lambda vf: -(vf[1] or 0))[:5]
        out = [Phrase(", ".join("{} ({}%)" if isinstance(f, (int, float)) else "{}" for _, f in top),
                      tuple(x for v, f in top for x in ((v, round(100 * f, 1)) if isinstance(f, (int, float)) else (v,))))]  # fmt: skip
        if profile.get("distinct") is not None:
            out += [Phrase(" "), Phrase("of {} distinct", (profile["distinct"],), note=True)]
        return out

    def sql(self, feature, column, model):
        from sqlglot import exp

        typed = exp.cast(column, exp.DataType.build(feature.sql_type, dialect="duckdb"))
        return exp.func("COALESCE", typed, exp.Literal.string(""))

    arrow_needs = "text (string, large_string, string_view or a dictionary of strings), or integers or booleans"

    def takes(self, feature, arrow_type):
        t = arrow_type
        return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or \
            pa.types.is_integer(t) or pa.types.is_boolean(t)  # fmt: skip

    def arrow(self, feature, values, model, timezone="UTC"):
        # COALESCE(CAST(x AS VARCHAR), ''): Arrow writes integers and booleans as DuckDB does (-5, true)
        values = plain(values, pa.string())
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        return pc.fill_null(values, "") if values.null_count else values

    def profile(self, con, table, features, options):
        out = {}
        for f in features:
            c = _q(f.name)
            rows = con.execute(
                f"SELECT {c} AS v, count(*) AS n FROM {table} GROUP BY ALL ORDER BY n DESC, v LIMIT ?",
                [options["max_categories"]],
            ).fetchall()
            total, distinct = con.execute(f"SELECT count(*), approx_count_distinct({c}) FROM {table}").fetchall()[0]
            out[f.name] = {
                "kind": f.kind, "count": total, "nulls": int(sum(n for v, n in rows if v == "")),
                "distinct": int(distinct), "vocabulary": [v for v, _ in rows],
                "frequencies": [n / total for _, n in rows] if total else [],
            }  # fmt: skip
        return out

    def group_key(self, feature) -> str:
        return "categories"

    def tensor(self, features, columns, profile) -> np.ndarray:
        codes = []
        for f, col in zip(features, columns):
            vocab = pa.array(profile[f.name]["vocabulary"], type=pa.string())
            idx = pc.index_in(col.cast(pa.string()), value_set=vocab)  # 1-based codes, 0 unknown
            codes.append(pc.add(pc.fill_null(idx, -1), 1).to_numpy().astype(np.int64))
        return np.ascontiguousarray(np.column_stack(codes), np.int64)

    def front(self, features, profile, out, prefix) -> list:
        from onnx import helper  # here: plain SQL and the shell never load onnx

        nodes, codes = [], []
        for i, f in enumerate(features):
            vocab = [str(v) for v in profile[f.name]["vocabulary"]]
            code = f"{prefix}code_{i}"
            nodes.append(helper.make_node(
                "LabelEncoder", [f.name], [code], domain="ai.onnx.ml", keys_strings=vocab or [""],
                values_int64s=list(range(1, len(vocab) + 1)) or [0], default_int64=0, name=f"{prefix}lookup_{i}",
            ))  # fmt: skip
            codes.append(code)
        nodes.append(helper.make_node("Concat", codes, [out], axis=1, name=prefix + "concat_codes"))
        return nodes

    def width(self, features, profile) -> int:
        return sum(embedding_dim(len(profile[f.name]["vocabulary"]) + 1) for f in features)

    def encoder(self, features, profile, options):
        from dbml.kinds.encoders import CategoryEncoder

        return CategoryEncoder([len(profile[f.name]["vocabulary"]) + 1 for f in features])
