"""Recommendation: which items a user will take, from a table of interactions.

``TRAIN MODEL rec USING recommender FROM interactions WITH (user = 'user_id', item = 'item_id')``
learns from implicit feedback (each row an interaction; every other item is a sampled
negative: ``loss = 'softmax'``, a softmax over the positive and 32 uniformly sampled
items, or ``'bpr'``, Bayesian personalised ranking); ``rating = 'stars'`` learns explicit
ratings instead (squared error on the standardised rating, scaled back in the graph).
The defaults are benchmarks/recommend.py's best on MovieLens-100k (NDCG@10: sampled
softmax 0.459 with l2 = 0.05, 0.432 with 0.03, 0.392 with 0.01; BPR at best 0.402, with
l2 = 0.01, 0.343 with 0.03).

The task makes its own rows (:meth:`Recommendation.source`): the user and the item as
id features (:mod:`dbml.kinds.ident`), the rating (1 without one), the time and a seeded
key. Every other column of the source is left out. The split holds out interactions per
user: each user's latest ones where the source has a time column (one DATE or TIMESTAMP
column, or ``time_column = '...'``), else a seeded share of each user's.

Outputs: ``score`` (FLOAT [N], PREDICT(rec, user_id, item_id)) and ``embedding`` (FLOAT
[N, 2k]: the user's vector, then the item's; their dot product is the score). The graph
also keeps, as initializers no node reads, the training pairs (``dbml/recommend/seen_*``,
codes of the graph's own lookups): RECOMMEND ... EXCLUDE SEEN reads them from the blob,
so an exported file carries them too. Item popularity is the item column's training
profile (its frequencies).

Training metrics, EVALUATE's and RECOMMEND's top-k all run in :mod:`dbml.recommend`
(onnxruntime and numpy, no torch): hit rate, recall and NDCG at 10 of the held-out
interactions, ranking the whole catalogue without each user's training items.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from dbml.errors import FeatureError, OptionError, TargetError
from dbml.kinds.common import QUANTILES
from dbml.kinds.scalar import bin_index, is_number_type
from dbml.options import Option
from dbml.sqltext import quote as _q
from dbml.tasks import Evaluation, Target, Task

__all__ = ["Recommendation", "SEEN_USERS", "SEEN_ITEMS", "ITEM_VECTORS", "CUTOFF", "TIME_TYPES"]

SEEN_USERS, SEEN_ITEMS = "dbml/recommend/seen_users", "dbml/recommend/seen_items"
ITEM_VECTORS = "dbml/recommend/item_vectors"  # a two-tower model's catalogue: each item's vector, by code - 1
CUTOFF = 10  # the k of the metrics
TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
_RATING, _TIME, _KEY = "__dbml_rating__", "__dbml_time__", "__dbml_key__"
RESERVED = ("score", "rank", "cold_start", "embedding")  # RECOMMEND's and the graph's column names


def _ratings(y) -> np.ndarray:
    y = y.combine_chunks() if hasattr(y, "combine_chunks") else y
    return np.array(y.field("r").to_numpy(zero_copy_only=False), np.float64)


def _dot_head(mean: float, std: float):
    import torch
    from torch import nn

    class DotHead(nn.Module):
        """The two halves of the trunk's output -> their dot product (the standardised score);
        ``y_mean``/``y_std`` bring a rating back to its units in :meth:`Recommendation.outputs`."""

        def __init__(self):
            super().__init__()
            self.register_buffer("y_mean", torch.tensor(float(mean)))
            self.register_buffer("y_std", torch.tensor(float(std)))

        def forward(self, embedding):
            k = embedding.shape[1] // 2
            return (embedding[:, :k] * embedding[:, k:]).sum(dim=1, keepdim=True)

    return DotHead()


class Recommendation(Task):
    name = "recommendation"
    headline = "ndcg_at_10"
    needs_target = False
    own_target = True
    parity_output = "score"
    needs = frozenset({"pair_vectors"})
    priority = 5  # before the forecaster's and the anomaly model's shapes
    askable = False
    needs_facts = False
    plural = "recommenders"
    described = "a recommender"
    score_label = "validation pairwise accuracy"
    options = (
        Option("user", "str", "", "recommender: the user id column"),
        Option("item", "str", "", "recommender: the item id column"),
        Option("rating", "str", "", "recommender: a numeric column of explicit ratings ('' for implicit feedback)"),
        Option("time_column", "str", "", "recommender: the column ordering interactions, for the split by time "
               "('' picks the source's one DATE or TIMESTAMP column, if any)"),
        Option("user_features", "str_list", [], "recommender: columns describing the user (a user tower)"),
        Option("item_features", "str_list", [], "recommender: columns describing the item (an item tower)"),
        Option("loss", "str", "softmax", "recommender, implicit feedback: softmax (sampled) or bpr", choices=("softmax", "bpr")),
        Option("negatives", "int", 32, "recommender, implicit feedback: sampled negative items per interaction",
               lambda v: 1 <= v <= 1000, "1 to 1000"),
        Option("l2", "float", 0.05, "recommender: penalty on the vectors of each step's users and items",
               lambda v: 0 <= v <= 10, "in [0, 10]"),
    )  # fmt: skip

    # -- choosing the task ---------------------------------------------------------------------
    def implied(self, target, options):
        # only USING recommender declares these options: its every model is a recommender
        return "user" in options and "item" in options

    def unavailable(self, model, target, allowed):
        return OptionError(f"TRAIN MODEL {model}: options user and item make a recommender, which USING recommender trains")

    # -- the rows ------------------------------------------------------------------------------
    def source(self, con, name, req, columns, types, target, target_type, options):
        import dataclasses

        from dbml.data.rows import COUNT, SUM
        from dbml.features import FeatureSpec
        from dbml.kinds import Shape, detect_column
        from dbml.registry import lineage

        if options.get("base"):
            raise OptionError(f"option 'base' of TRAIN MODEL {name}: a recommender neither lends nor takes a trunk (its "
                              "weights are one vector per user and item): train the model without base")  # fmt: skip
        if options.get("warm_start") or options.get("from_version"):
            raise OptionError(f"model '{name}' is a recommender, which cannot be fine-tuned (its weights are one vector per "
                              "user and item of the rows it learnt): train a new version on the new rows")  # fmt: skip
        if target is not None:
            raise TargetError(f"TRAIN MODEL {name} USING recommender takes no TARGET; name explicit ratings with "
                              f"WITH (rating = '{target}')")  # fmt: skip
        by_lower = {c.lower(): (c, t) for c, t in zip(columns, types)}
        missing = [o for o in ("user", "item") if not options.get(o)]
        if missing:
            raise OptionError(f"TRAIN MODEL {name} USING recommender needs WITH (user = '<column>', item = '<column>'); "
                              f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing "
                              f"(the source has columns {', '.join(columns)})")  # fmt: skip
        picked = {}
        for opt in ("user", "item", "rating", "time_column"):
            if options.get(opt):
                if options[opt].lower() not in by_lower:
                    raise OptionError(f"option {opt} of model '{name}' names column '{options[opt]}', which the source "
                                      f"{req.source_label} lacks; its columns are {', '.join(columns)}")  # fmt: skip
                picked[opt] = by_lower[options[opt].lower()]
        user, item = picked["user"][0], picked["item"][0]
        if user == item:
            raise OptionError(f"options user and item of model '{name}' both name column '{user}'")
        sides: dict[str, list[tuple[str, str]]] = {}
        taken = {user.lower(): "user", item.lower(): "item"}
        for tower in ("user", "item"):
            sides[tower] = []
            for c in options.get(f"{tower}_features") or []:
                if c.lower() not in by_lower:
                    raise OptionError(f"option {tower}_features of model '{name}' names column '{c}', which the source "
                                      f"{req.source_label} lacks; its columns are {', '.join(columns)}")  # fmt: skip
                if c.lower() in taken:
                    raise OptionError(f"column '{c}' of model '{name}' is named twice (as {taken[c.lower()]} and in "
                                      f"{tower}_features); a column feeds one side")  # fmt: skip
                taken[c.lower()] = f"{tower}_features"
                sides[tower].append(by_lower[c.lower()])
        for c in (user, item, *(c for t in sides.values() for c, _ in t)):
            if c.lower() in RESERVED or c.lower() in (_RATING, _TIME, _KEY):
                raise FeatureError(f"column '{c}' of model '{name}' has the name of a column RECOMMEND returns "
                                   f"({', '.join(RESERVED)}): rename it in the source (SELECT * RENAME ({_q(c)} AS {_q(c + '_1')}) FROM ...)")  # fmt: skip
        rating = picked.get("rating")
        if rating is not None and not is_number_type(rating[1].upper()):
            raise TargetError(f"rating column '{rating[0]}' of model '{name}' has type {rating[1]}; ratings are numbers")
        time = picked.get("time_column")
        if time is None:
            timed = [(c, t) for c, t in zip(columns, types) if t.upper() in TIME_TYPES and c not in (user, item)]
            time = timed[0] if len(timed) == 1 else None
        elif not (time[1].upper() in TIME_TYPES or is_number_type(time[1].upper())):
            raise OptionError(f"option time_column of model '{name}' names column '{time[0]}' of type {time[1]}; it needs a "
                              "DATE, a TIMESTAMP or a number")  # fmt: skip
        src = f"(\n{req.source_sql}\n) AS src"
        checks = [f"count(*) FILTER (WHERE {_q(user)} IS NULL)", f"count(*) FILTER (WHERE {_q(item)} IS NULL)", "count(*)"]
        if rating is not None:
            checks.append(f"count(*) FILTER (WHERE {_q(rating[0])} IS NULL OR NOT isfinite(CAST({_q(rating[0])} AS DOUBLE)))")
        counts = con.sql(f"SELECT {', '.join(checks)} FROM {src}", params=req.params).fetchall()[0]
        for column, n in ((user, counts[0]), (item, counts[1])):
            if n:
                raise FeatureError(f"column '{column}' of the source of model '{name}' has {n:,} NULL id(s); every "
                                   f"interaction needs a user and an item: filter them (WHERE {_q(column)} IS NOT NULL)")  # fmt: skip
        if rating is not None and counts[3]:
            raise TargetError(f"rating column '{rating[0]}' of model '{name}' has {counts[3]:,} NULL or non-finite "
                              f"value(s): filter them (WHERE isfinite({_q(rating[0])}))")  # fmt: skip
        if counts[2] < 2:
            raise FeatureError(f"the source of model '{name}' has {counts[2]} interaction(s); a recommender needs more")
        options["user"], options["item"] = user, item
        options["user_features"] = [c for c, _ in sides["user"]]
        options["item_features"] = [c for c, _ in sides["item"]]
        options["rating"] = rating[0] if rating else ""
        options["time_column"] = time[0] if time else ""
        count, total = lineage.fingerprint_sql(columns, window=True)
        key = f"hash({lineage.row_hash_sql(columns)}, {int(options['seed'])}::UBIGINT)"
        rating_sql = f"CAST({_q(rating[0])} AS DOUBLE)" if rating else "1.0::DOUBLE"
        time_sql = "NULL::DOUBLE"
        if time is not None:  # a number to order each user's interactions by
            as_time = time[1].upper() in TIME_TYPES
            time_sql = f"epoch_ms(CAST({_q(time[0])} AS TIMESTAMP))" if as_time else f"CAST({_q(time[0])} AS DOUBLE)"
        selects = [_q(user), _q(item), *(_q(c) for t in sides.values() for c, _ in t), f"{rating_sql} AS {_q(_RATING)}",
                   f"{time_sql} AS {_q(_TIME)}", f"{key} AS {_q(_KEY)}", f"{count} AS {COUNT}", f"{total} AS {SUM}"]  # fmt: skip
        examples = f"SELECT {', '.join(selects)} FROM {src}"
        features = [FeatureSpec(user, "id", "VARCHAR", rule="option user"), FeatureSpec(item, "id", "VARCHAR", rule="option item")]
        for tower, cols in sides.items():
            for c, t in cols:
                found = detect_column(c, t.upper(), options=req.options, takes=frozenset({Shape.FLAT, Shape.FIXED})).feature()
                features.append(dataclasses.replace(found, rule=f"option {tower}_features", tower=tower))
        return examples, features, {"user_type": picked["user"][1], "item_type": picked["item"][1]}

    def target_sql(self, target, target_type):
        return f"struct_pack(r := {_q(_RATING)}, t := {_q(_TIME)}, k := {_q(_KEY)})"

    def split_sql(self, target, key, options):
        """Per user: the latest interactions validate where there is a time column (ties by
        the seeded key), else a seeded share of each user's (a user with one interaction trains)."""
        from dbml.data import split

        user, t, k = _q(options["user"]), f"struct_extract({target}, 't')", f"struct_extract({target}, 'k')"
        if options["time_column"]:
            return split.by_time(user, f"{t} DESC, {k}", options["validation"], 0), [k]  # by_time adds the last DESC
        return split.hashed(k, options["validation"], user), [k]

    def prepare(self, model, target, target_type, y, parent):
        r = _ratings(y)
        extra: dict[str, Any] = {}
        mean, std = 0.0, 1.0
        if len(r) and not np.all(r == 1.0):  # explicit ratings, standardised
            mean, std = float(r.mean()), float(r.std())
            if not std > 0:
                raise TargetError(f"the ratings of model '{model}' are all {mean}; nothing to learn")
        return Target(r, scale=(mean, std), extra=extra)

    def observe(self, target, arrays, train_idx):
        """Keep the training pairs (codes) and the catalogue size, for the metrics and the graph."""
        user_key, item_key = [k for k in arrays if k.startswith("ids/")]  # the features' order: user, item
        users, items = arrays[user_key][train_idx, 0], arrays[item_key][train_idx, 0]
        side = [k for k in arrays if k.startswith("item/")]
        if side:  # a two-tower model's catalogue: each item's side columns, from its first training row
            codes, first = np.unique(items, return_index=True)
            rows = train_idx[first]
            target.extra["_item_rows"] = {item_key: arrays[item_key][rows], **{k: arrays[k][rows] for k in side}}
        order = np.lexsort((items, users))
        target.extra["_seen"] = (users[order].astype(np.int32), items[order].astype(np.int32))
        target.extra["_held_out"] = len(train_idx) < len(arrays[user_key])  # else the metrics' rows are the training rows

    def y_tensor(self, target, y):
        import torch

        mean, std = target.scale
        return torch.from_numpy((_ratings(y) - mean) / std).float()

    # -- the module ----------------------------------------------------------------------------
    def head(self, width, target, architecture, net_info, options):
        import torch

        head = _dot_head(*target.scale)
        head.opts = {k: options[k] for k in ("loss", "negatives", "l2", "rating")}  # what the loss reads
        rows = target.extra.get("_item_rows")
        if rows is not None:  # a two-tower model: every item's side columns, by code - 1, for sampled negatives
            head.item_keys = [k for k in rows if k.startswith("item/")]
            order = np.argsort(rows[next(k for k in rows if k.startswith("ids/"))][:, 0])
            for i, key in enumerate(head.item_keys):  # not stored: no part of the graph or of its weights
                head.register_buffer(f"item_rows_{i}", torch.from_numpy(np.ascontiguousarray(rows[key][order])), persistent=False)
        return head

    def _parts(self, net, batch):
        trunk = net.trunk
        enc = net.encode(batch)
        return trunk, trunk.user_of(enc), trunk.item_of(enc)

    def _negatives(self, net, user, n, generator=None, item=None):
        """[N, n] negative items' vectors, sampled uniformly from the catalogue (a two-tower
        model's with each item's side columns from its training row)."""
        import torch

        trunk = net.trunk
        table = net.encoders[net.keys.index(trunk.item_key)].table
        size = table.num_embeddings
        codes = torch.randint(1, max(size, 2), (user.shape[0], n), generator=generator, device=user.device)
        if not trunk.has_item_side:
            return trunk.item(table(codes)), codes
        flat = codes.reshape(-1)
        enc = {trunk.item_key: table(flat)}
        for i, key in enumerate(net.head.item_keys):
            rows = getattr(net.head, f"item_rows_{i}").index_select(0, flat - 1)
            enc[key] = net.encoders[net.keys.index(key)](rows)
        return trunk.item_of(enc).reshape(user.shape[0], n, -1), codes

    def loss(self, net, out, batch):
        import torch
        import torch.nn.functional as F

        opts = net.head.opts
        trunk, user, item = self._parts(net, batch)
        pos = (user * item).sum(dim=1)
        reg = opts["l2"] * ((user[:, : trunk.factors] ** 2).sum(1) + (item[:, : trunk.factors] ** 2).sum(1)).mean()
        if opts["rating"]:
            return F.mse_loss(pos, batch["target"]) + (reg if net.training else 0.0)
        generator = None
        if not net.training:  # the same negatives every epoch: validation figures that compare
            generator = torch.Generator(device=user.device).manual_seed(0)
        neg_item, _ = self._negatives(net, user, opts["negatives"], generator, item)
        neg = (user.unsqueeze(1) * neg_item).sum(dim=2)
        reg = reg + opts["l2"] * (neg_item[..., : trunk.factors] ** 2).sum(2).mean()
        if not net.training:  # the validation loss (early stopping) measures the fit alone
            reg = 0.0
        if opts["loss"] == "softmax":
            logits = torch.cat([pos.unsqueeze(1), neg], dim=1)
            return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long, device=pos.device)) + reg
        return -F.logsigmoid(pos.unsqueeze(1) - neg).mean() + reg

    def score(self, net, out, batch):
        import torch

        opts = net.head.opts
        trunk, user, item = self._parts(net, batch)
        pos = (user * item).sum(dim=1)
        if opts["rating"]:
            y = batch["target"]
            return 1 - ((pos - y) ** 2).sum() / ((y - y.mean()) ** 2).sum().clamp_min(1e-12)
        generator = torch.Generator(device=user.device).manual_seed(1)
        neg_item, _ = self._negatives(net, user, opts["negatives"], generator, item)
        neg = (user.unsqueeze(1) * neg_item).sum(dim=2)
        return (pos.unsqueeze(1) > neg).float().mean()

    def outputs(self, net, batch):
        import torch

        emb = net.embed(batch)
        k = emb.shape[1] // 2
        std, mean = net.head.y_std, net.head.y_mean
        user = torch.cat([emb[:, : k - 1] * std, emb[:, k - 1 : k] * std + mean], dim=1)
        item = emb[:, k:]
        return {"score": (user * item).sum(dim=1), "embedding": torch.cat([user, item], dim=1)}

    # -- after training --------------------------------------------------------------------------
    def metrics(self, net, batch, target, idx):
        import torch

        from dbml import recommend

        scores = net.outputs(batch)["score"].detach().double().cpu().numpy()
        trunk = net.trunk
        out: dict[str, Any] = {}
        if net.head.opts["rating"]:
            y = target.y[idx]
            err = scores - y
            ss_tot = float(((y - y.mean()) ** 2).sum())
            out.update(rmse=float(np.sqrt((err**2).mean())), mae=float(np.abs(err).mean()),
                       r2=1 - float((err**2).sum()) / ss_tot if ss_tot > 0 else 0.0)  # fmt: skip
        # ranking metrics of the held-out pairs over the whole catalogue, training pairs excluded
        users = batch[trunk.user_key][:, 0].cpu().numpy()
        items = batch[trunk.item_key][:, 0].cpu().numpy()
        with torch.no_grad():
            all_items = self._catalogue(net, target)
            wanted, first = np.unique(users, return_index=True)
            rows = torch.from_numpy(first).to(batch[trunk.user_key].device)
            user_vectors = trunk.user_of(net.encode(batch)).index_select(0, rows)
            user_vectors = user_vectors.double().cpu().numpy()
        seen_u, seen_i = target.extra.get("_seen", (np.zeros(0, np.int32), np.zeros(0, np.int32)))
        simple: dict[str, Any] = {}
        if net.head.opts["rating"] and len(idx) < len(target.y):  # the training rows' mean rating, for every pair
            kept = np.ones(len(target.y), bool)
            kept[idx] = False
            err = float(np.mean(target.y[kept])) - target.y[idx]
            simple["mean"] = {"rmse": float(np.sqrt((err**2).mean())), "mae": float(np.abs(err).mean())}
        if target.extra.get("_held_out", True):
            out.update(recommend.ranking_metrics(wanted, user_vectors, all_items, users, items, seen_u, seen_i, CUTOFF))
            # the most popular items (by training interactions; ties to the lower code), each user's own left out
            n = all_items.shape[0]
            counts = np.bincount(np.asarray(seen_i, np.int64), minlength=n + 1)[1 : n + 1].astype(np.float64)
            popular = recommend.ranking_metrics(wanted, np.ones((len(wanted), 1)), (counts - np.arange(n) / (n + 1))[:, None],
                                                users, items, seen_u, seen_i, CUTOFF)  # fmt: skip
            simple["popularity"] = {k: v for k, v in popular.items() if k != "users"}
        if simple:
            out["baseline"] = simple
        edges = sorted(set(np.quantile(scores, QUANTILES).tolist())) if len(scores) else []
        counts = np.bincount(bin_index(scores, edges), minlength=len(edges) + 1)
        out["prediction_distribution"] = {"edges": edges, "shares": (counts / max(counts.sum(), 1)).tolist()}
        out["item_type"], out["user_type"] = target.extra.get("item_type"), target.extra.get("user_type")
        out["catalogue"] = int(all_items.shape[0])
        return out

    def _catalogue(self, net, target) -> np.ndarray:
        """Every item's augmented vector (row c - 1 for code c), as the graph's ``embedding``
        gives it; a two-tower model's from one training row of each item (kept in
        ``target.extra`` for the graph)."""
        import torch

        trunk = net.trunk
        table = net.encoders[net.keys.index(trunk.item_key)].table.weight
        if not trunk.has_item_side:
            return trunk.item(table[1:]).double().cpu().numpy()
        if "_item_vectors" not in target.extra:
            rows = target.extra["_item_rows"]
            device = table.device
            enc = {k: net.encoders[net.keys.index(k)](torch.from_numpy(a).to(device)) for k, a in rows.items()}
            vectors = np.zeros((table.shape[0] - 1, trunk.factors + 2), np.float32)
            vectors[rows[trunk.item_key][:, 0] - 1] = trunk.item_of(enc).float().cpu().numpy()
            target.extra["_item_vectors"] = vectors
        return target.extra["_item_vectors"].astype(np.float64)

    def graph_outputs(self, target):
        return {
            "score": "float [N]: the pair's score (a predicted rating with rating = ..., else a preference, higher first)",
            "embedding": "float [N, 2k]: the user's vector, then the item's (their dot product is the score)",
        }

    def onnx_tail(self, target, produced, prefix):
        nodes = [helper.make_node("Identity", [produced["score"]], ["score"], name=prefix + "score")]
        seen_u, seen_i = target.extra.get("_seen", (np.zeros(0, np.int32), np.zeros(0, np.int32)))
        inits = [numpy_helper.from_array(np.asarray(seen_u, np.int32), SEEN_USERS),
                 numpy_helper.from_array(np.asarray(seen_i, np.int32), SEEN_ITEMS)]  # fmt: skip
        if "_item_vectors" in target.extra:
            inits.append(numpy_helper.from_array(np.asarray(target.extra["_item_vectors"], np.float32), ITEM_VECTORS))
        return nodes, inits, [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])]

    # -- scoring and statements ----------------------------------------------------------------------
    def evaluation(self, ctx, rec, source_sql, source_label, opts):
        """Hit rate, recall and NDCG at 10 of the source's interactions (held out from
        training), each user's training items excluded from the ranking."""
        from dbml import recommend

        for key in ("by", "label", "positive"):
            if opts.get(key) is not None:
                raise OptionError(f"EVALUATE of recommender '{rec['model']}' does not take option {key}")
        if opts.get("confusion"):
            raise TargetError(f"confusion = true needs a classification model; model '{rec['model']}' is a recommender")
        figures = recommend.evaluate(ctx, rec, source_sql, source_label, CUTOFF)
        cols = ", ".join(f"{_literal(v)} AS {_q(k)}" for k, v in figures.items())
        return Evaluation(f"SELECT {cols}")

    def explain_measure(self):
        return None

    def monitor_rows(self, ctx, rec, source_sql, source_label):
        o = rec["options"]
        ids = [f"CAST({_q(o[k])} AS VARCHAR) AS {_q(o[k])}" for k in ("user", "item")]
        side = [_q(c) for c in [*(o.get("user_features") or []), *(o.get("item_features") or [])]]
        return f"SELECT {', '.join(ids + side)} FROM (\n{source_sql}\n) AS src"

    def card_facts(self, record):
        o = record.get("options") or {}
        kind = f"explicit ratings ({o.get('rating')})" if o.get("rating") else f"implicit feedback ({o.get('loss')} loss)"
        return [("Recommends", f"items '{o.get('item')}' to users '{o.get('user')}' from {kind}")]


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"{value}::BIGINT"
    return f"{float(value)!r}::DOUBLE" if np.isfinite(value) else "NULL::DOUBLE"


def safe_type(sql_type: Any) -> str | None:
    """A stored SQL type name that may be written into a cast, else None."""
    if isinstance(sql_type, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_ ]{0,40}(\(\d+(, ?\d+)?\))?", sql_type):
        return sql_type
    return None
