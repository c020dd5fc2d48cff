"""Top-k over a recommender's whole catalogue, without torch: onnxruntime and numpy.

A recommender's graph scores a (user, item) pair and gives both augmented vectors in its
``embedding`` output (their dot product is the score, see
:mod:`dbml.architectures.recommender`). Here the stored graph is run once over the item
vocabulary (the item vectors, cached by the blob's sha256) and once over the users asked
for; a user's scores against every item are one matrix product, and the best k are found
by onnxruntime's TopK in a small graph over the item vectors, for blocks of users
(benchmarks/recommend.py measured it on 100,000 items against numpy's argpartition and
DuckDB over the item vectors: 0.30 s for 1,000 users, against 3.0 s and about 5.6 s).

The training pairs EXCLUDE SEEN removes are read from the blob's initializers
(:data:`dbml.tasks.recommendation.SEEN_USERS`), never written into SQL. Item popularity is
the item column's training profile: its vocabulary is ordered by frequency, so the most
popular items are the first codes.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from dbml.errors import FeatureError, OptionError, TargetError

__all__ = ["Catalogue", "catalogue", "top_k", "recommend", "ranking_metrics", "evaluate", "MAX_K", "check_recommender"]

MAX_K = 10_000  # the largest TOP k
_BLOCK = 256  # users scored per matrix product
_CACHE: dict[str, "Catalogue"] = {}
_LOCK = threading.Lock()


@dataclass
class Catalogue:
    """What RECOMMEND needs of one version, built once per blob."""

    user: str  # the user column
    item: str  # the item column
    items: list[str]  # the item vocabulary: code c is items[c - 1]
    users: pa.Array  # the user vocabulary (strings): code c is users[c - 1]
    item_vectors: np.ndarray  # [n_items, width] float32, row c - 1 for code c
    half: int  # the width of one augmented vector
    seen_start: np.ndarray  # CSR over user codes: the seen items of code u are seen_items[seen_start[u]:seen_start[u + 1]]
    seen_items: np.ndarray
    topk: Any  # the onnxruntime session of top_k over item_vectors
    popularity: np.ndarray  # training share of each item, by code - 1
    item_type: str | None
    user_type: str | None


def check_recommender(rec: dict[str, Any], statement: str) -> None:
    """Refuse a version that is not a recommender, naming it."""
    if rec.get("task") != "recommendation":
        raise TargetError(
            f"{statement} needs a recommender (TRAIN MODEL ... USING recommender WITH (user = ..., item = ...)); "
            f"model '{rec['model']}' version {rec['version']} is a {rec.get('task')} model"
        )


def catalogue(ctx, rec: dict[str, Any]) -> Catalogue:
    """The catalogue of a version (cached by its blob's sha256)."""
    key = rec["onnx_sha256"]
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    from onnx import load_from_string, numpy_helper

    from dbml.tasks.recommendation import ITEM_VECTORS, SEEN_ITEMS, SEEN_USERS

    o, prof = rec["options"], rec["profile"]
    user, item = o["user"], o["item"]
    items = [str(v) for v in prof[item]["vocabulary"]]
    users = pa.array([str(v) for v in prof[user]["vocabulary"]], type=pa.string())
    graph = load_from_string(ctx.registry.blob(rec["model"], rec["version"])).graph
    inits = {i.name: i for i in graph.initializer if i.name in (SEEN_USERS, SEEN_ITEMS, ITEM_VECTORS)}
    if ITEM_VECTORS in inits:  # a two-tower model: each item's vector with its side columns, from training
        vectors = np.ascontiguousarray(numpy_helper.to_array(inits[ITEM_VECTORS]), np.float32)
    else:
        vectors = _item_vectors(ctx.session(rec), rec, items)
    seen_u = numpy_helper.to_array(inits[SEEN_USERS]).astype(np.int64) if SEEN_USERS in inits else np.zeros(0, np.int64)
    seen_i = numpy_helper.to_array(inits[SEEN_ITEMS]).astype(np.int64) if SEEN_ITEMS in inits else np.zeros(0, np.int64)
    start = np.zeros(len(users) + 2, np.int64)
    np.add.at(start, seen_u + 1, 1)
    start = np.cumsum(start)
    order = np.argsort(seen_u, kind="stable")
    m = rec.get("metrics") or {}
    cat = Catalogue(user, item, items, users, vectors, vectors.shape[1], start, seen_i[order], topk_session(vectors),
                    np.asarray(prof[item].get("frequencies") or [0.0] * len(items), np.float64),
                    m.get("item_type"), m.get("user_type"))  # fmt: skip
    with _LOCK:
        if len(_CACHE) >= 4:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = cat
    return cat


def _embedding_half(session, rec: dict[str, Any], columns: dict[str, Any], n: int, side: str) -> np.ndarray:
    """One half of the graph's embedding (``side``: 'user' or 'item') of ``n`` rows whose
    encoded columns are ``columns`` (by feature; a feature missing there is fed as missing:
    '' for an id or a category, NaN for a number)."""
    from dbml.features import FeatureSpec
    from dbml.runtime import arrow_feeds

    features = [FeatureSpec(f["name"], f["kind"], f["sql_type"], f.get("onnx_input"), f.get("rule")) for f in rec["features"]]
    out = []
    for start in range(0, max(n, 1), 65536):
        m = min(65536, n - start)
        values = []
        for f in features:
            if f.name in columns:
                values.append(columns[f.name].slice(start, m))
            elif f.onnx_type == "string":
                values.append(pa.array([""] * m, type=pa.string()))
            else:
                values.append(pa.nulls(m, type=pa.float32()).fill_null(float("nan")))
        emb = session.run(["embedding"], arrow_feeds(features, values))[0]
        half = emb.shape[1] // 2
        out.append(emb[:, :half] if side == "user" else emb[:, half:])
    return np.ascontiguousarray(np.concatenate(out)[:n], np.float32)


def _item_vectors(session, rec: dict[str, Any], items: list[str]) -> np.ndarray:
    """Every catalogue item's augmented vector, from the graph (the ids alone)."""
    return _embedding_half(session, rec, {rec["options"]["item"]: pa.array(items, type=pa.string())}, len(items), "item")


def topk_session(item_vectors: np.ndarray):
    """An onnxruntime session of MatMul + TopK over ``item_vectors`` (standard operators):
    user vectors [N, width] and k [1] -> (values, indices) [N, k], best first."""
    from onnx import TensorProto, helper, numpy_helper

    from dbml.runtime import new_session

    width = item_vectors.shape[1]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["users", "items_t"], ["scores"]),
         helper.make_node("TopK", ["scores", "k"], ["values", "indices"], axis=1, largest=1, sorted=1)],
        "dbml_topk", [helper.make_tensor_value_info("users", TensorProto.FLOAT, ["N", width]),
                      helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", "K"]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, ["N", "K"])],
        [numpy_helper.from_array(np.ascontiguousarray(item_vectors.T, dtype=np.float32), "items_t")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return new_session(model.SerializeToString(), threads=0)


def top_k(user_vectors: np.ndarray, item_vectors: np.ndarray, k: int, exclude: list[np.ndarray] | None = None,
          session=None):  # fmt: skip
    """(item indices [U, k'], scores [U, k']) of the best ``k`` items per user, best first
    (``exclude``: per user, item indices left out; k' = min(k, items), -1 and NaN where
    fewer remain). The scores and the top k come from onnxruntime (``session``: a
    :func:`topk_session` of ``item_vectors``, made here when None), k plus the most any
    user of a block excludes, and the excluded ones are dropped after."""
    n_items = item_vectors.shape[0]
    k = min(k, n_items)
    session = session if session is not None else topk_session(item_vectors)
    idx = np.full((len(user_vectors), k), -1, np.int64)
    val = np.full((len(user_vectors), k), np.nan, np.float32)
    for s in range(0, len(user_vectors), _BLOCK):
        block = np.ascontiguousarray(user_vectors[s : s + _BLOCK], dtype=np.float32)
        drops = exclude[s : s + len(block)] if exclude is not None else [()] * len(block)
        wide = min(n_items, k + max((len(d) for d in drops), default=0))
        values, indices = session.run(["values", "indices"], {"users": block, "k": np.array([wide], np.int64)})
        for r, drop in enumerate(drops):
            row, vals = indices[r], values[r]
            if len(drop):
                keep = ~np.isin(row, drop)
                row, vals = row[keep], vals[keep]
            n = min(k, len(row))
            idx[s + r, :n], val[s + r, :n] = row[:n], vals[:n]
    return idx, val


def _seen(cat: Catalogue, codes: np.ndarray) -> list[np.ndarray]:
    """Per user code, the indices (code - 1) of its training items."""
    return [cat.seen_items[cat.seen_start[c] : cat.seen_start[c + 1]] - 1 if c > 0 else np.zeros(0, np.int64) for c in codes]


def _codes(cat: Catalogue, users: pa.Array) -> np.ndarray:
    import pyarrow.compute as pc

    idx = pc.index_in(users.cast(pa.string()), value_set=cat.users)
    return pc.add(pc.fill_null(idx, -1), 1).to_numpy(zero_copy_only=False).astype(np.int64)


def users_of(ctx, rec: dict[str, Any], source_sql: str, source_label: str, statement: str) -> pa.Table:
    """One row per distinct user of a source: ``u`` (the user as the source gives it, NULL
    left out) and the user's side columns encoded as at training (a user's first row)."""
    import duckdb

    from dbml.features import FeatureSpec, feature_sql
    from dbml.sqltext import quote as _q
    from sqlglot import exp

    o = rec["options"]
    user, side = o["user"], list(o.get("user_features") or [])
    con = ctx.scoped()
    try:
        columns = con.sql(f"SELECT * FROM (\n{source_sql}\n) AS src LIMIT 0").columns
    except duckdb.Error as err:
        raise FeatureError(f"cannot read the source {source_label} of {statement} {rec['model']}: {err}") from None
    lower = {c.lower(): c for c in columns}
    if user.lower() in lower:
        column = lower[user.lower()]
    elif len(columns) == 1 and not side:
        column = columns[0]
    else:
        raise FeatureError(f"the source {source_label} of {statement} {rec['model']} has columns {', '.join(columns)}; "
                           f"it needs the user column '{user}'" + ("" if side else " (or one column of user ids)"))  # fmt: skip
    missing = [c for c in side if c.lower() not in lower]
    if missing:
        raise FeatureError(f"the source {source_label} of {statement} {rec['model']} lacks the user column(s) "
                           f"{', '.join(missing)} the model's user tower reads")  # fmt: skip
    specs = {f["name"]: FeatureSpec(f["name"], f["kind"], f["sql_type"]) for f in rec["features"]}
    encoded = "".join(f", {feature_sql(specs[c], exp.column(lower[c.lower()], quoted=True), rec['model']).sql(dialect='duckdb')} "
                      f"AS {_q(c)}" for c in side)  # fmt: skip
    return con.sql(f"SELECT DISTINCT ON (u) {_q(column)} AS u{encoded} FROM (\n{source_sql}\n) AS src "
                   f"WHERE {_q(column)} IS NOT NULL").to_arrow_table()  # fmt: skip


def recommend(ctx, rec: dict[str, Any], users: pa.Table, k: int, exclude_seen: bool) -> dict[str, Any]:
    """Each user's top ``k`` (``users``: :func:`users_of`'s table): {"user": [...], "item":
    [...], "score", "rank", "cold_start"}, the users as given, the items as the catalogue's
    strings. An unknown user gets the most popular items (``cold_start`` true, ``score``
    their training share)."""
    cat = catalogue(ctx, rec)
    user_col = users.column("u").combine_chunks()
    text = user_col.cast(pa.string())
    codes = _codes(cat, text)
    known = codes > 0
    out: dict[str, list] = {"user": [], "item": [], "score": [], "rank": [], "cold_start": []}
    if known.any():
        mask = pa.array(known)
        columns = {c: users.column(c).combine_chunks().filter(mask) for c in users.column_names if c != "u"}
        columns[cat.user] = text.filter(mask)
        vectors = _embedding_half(ctx.session(rec), rec, columns, int(known.sum()), "user")
        idx, val = top_k(vectors, cat.item_vectors, k, _seen(cat, codes[known]) if exclude_seen else None, cat.topk)
        rows = np.flatnonzero(known)
        for r, i_row, v_row in zip(rows, idx, val):
            for rank, (i, v) in enumerate(zip(i_row, v_row), start=1):
                if i < 0:
                    break
                out["user"].append(r)
                out["item"].append(cat.items[i])
                out["score"].append(float(v))
                out["rank"].append(rank)
                out["cold_start"].append(False)
    popular = list(range(min(k, len(cat.items))))  # the vocabulary is ordered by training frequency
    for r in np.flatnonzero(~known):
        for rank, i in enumerate(popular, start=1):
            out["user"].append(r)
            out["item"].append(cat.items[i])
            out["score"].append(float(cat.popularity[i]))
            out["rank"].append(rank)
            out["cold_start"].append(True)
    out["user"] = user_col.take(pa.array(out["user"], type=pa.int64())) if out["user"] else user_col.slice(0, 0)
    return out


def ranking_metrics(wanted: np.ndarray, user_vectors: np.ndarray, item_vectors: np.ndarray, users: np.ndarray,
                    items: np.ndarray, seen_u: np.ndarray, seen_i: np.ndarray, k: int) -> dict[str, Any]:  # fmt: skip
    """Hit rate, recall and NDCG at ``k`` of held-out pairs (``users``, ``items``: codes),
    for the users ``wanted`` (codes, with their vectors), ranking every item (row c - 1 of
    ``item_vectors`` for code c) except each user's training items (``seen_u``, ``seen_i``)."""
    held: dict[int, set[int]] = {}
    for u, i in zip(users.tolist(), items.tolist()):
        held.setdefault(u, set()).add(i)
    starts = np.searchsorted(seen_u, wanted, side="left"), np.searchsorted(seen_u, wanted, side="right")
    exclude = [seen_i[a:b].astype(np.int64) - 1 for a, b in zip(*starts)]
    idx, _ = top_k(user_vectors.astype(np.float32), item_vectors.astype(np.float32), k, exclude)
    return _figures([held.get(int(u), set()) for u in wanted], [[int(i) + 1 for i in row if i >= 0] for row in idx], k)


def _figures(relevant: list[set], ranked: list[list], k: int) -> dict[str, Any]:
    hits = recall = ndcg = 0.0
    n = 0
    for rel, got in zip(relevant, ranked):
        if not rel:
            continue
        n += 1
        found = [r for r, i in enumerate(got[:k]) if i in rel]
        hits += 1.0 if found else 0.0
        recall += len(found) / len(rel)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        ndcg += sum(1 / math.log2(r + 2) for r in found) / ideal
    per = (lambda x: x / n) if n else (lambda x: None)
    return {f"hit_rate_at_{k}": per(hits), f"recall_at_{k}": per(recall), f"ndcg_at_{k}": per(ndcg), "users": n}


def evaluate(ctx, rec: dict[str, Any], source_sql: str, source_label: str, k: int) -> dict[str, Any]:
    """EVALUATE's figures on held-out interactions: each user of the source ranks the whole
    catalogue (its training items excluded; an unknown user gets the most popular items),
    and the source's items of that user are the relevant ones."""
    import duckdb

    from dbml.sqltext import quote as _q

    cat = catalogue(ctx, rec)
    con = ctx.scoped()
    try:
        rel = con.sql(f"SELECT * FROM (\n{source_sql}\n) AS src LIMIT 0")
    except duckdb.Error as err:
        raise FeatureError(f"cannot read the source {source_label} of EVALUATE MODEL {rec['model']}: {err}") from None
    lower = {c.lower(): c for c in rel.columns}
    missing = [c for c in (cat.user, cat.item) if c.lower() not in lower]
    if missing:
        raise FeatureError(f"the source {source_label} of EVALUATE MODEL {rec['model']} lacks column(s) "
                           f"{', '.join(missing)}; a recommender is evaluated on (user, item) interactions")  # fmt: skip
    u, i = _q(lower[cat.user.lower()]), _q(lower[cat.item.lower()])
    pairs = con.sql(f"SELECT CAST({u} AS VARCHAR) AS u, CAST({i} AS VARCHAR) AS i FROM (\n{source_sql}\n) AS src "
                    f"WHERE {u} IS NOT NULL AND {i} IS NOT NULL").to_arrow_table()  # fmt: skip
    rows = pairs.num_rows
    users = users_of(ctx, rec, source_sql, source_label, "EVALUATE MODEL")
    found = recommend(ctx, rec, users, k, exclude_seen=True)
    ranked: dict[str, list] = {}
    cold: set[str] = set()
    for user, item, is_cold in zip(found["user"].cast(pa.string()).to_pylist(), found["item"], found["cold_start"]):
        ranked.setdefault(user, []).append(item)
        if is_cold:
            cold.add(user)
    relevant: dict[str, set] = {}
    for user, item in zip(pairs.column("u").to_pylist(), pairs.column("i").to_pylist()):
        relevant.setdefault(user, set()).add(item)
    figures = _figures([relevant[x] for x in relevant], [ranked.get(x, []) for x in relevant], k)
    return {"rows": rows, **figures, "cold_users": len(cold)}


def check_k(k: Any) -> int:
    """TOP k: a whole number from 1 to :data:`MAX_K`."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise OptionError(f"TOP must be a whole number from 1 to {MAX_K:,}, got {k!r}")
    return k
