"""RECOMMEND MODEL: each user's best k items of a recommender's whole catalogue.

``RECOMMEND MODEL rec [VERSION n] FOR <table | 'file' | (query)> TOP k [EXCLUDE SEEN]``:
one row per user and rank: the user (under the model's user column name, as the FOR
source gives it), the item (under the item column name, in the training column's type),
``score`` (PREDICT's score of the pair), ``rank`` (1 is best) and ``cold_start`` (TRUE
for a user the model never saw, who gets the most popular training items, ``score``
then their share of the training interactions). ``EXCLUDE SEEN`` leaves out each user's
training interactions (kept in the version's ONNX blob, see :mod:`dbml.recommend`).

The FOR source gives the users: the column named like the model's user column, else
its only column. It composes with SQL like every statement that returns rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbml.statements.base import MLStatement, Statement, source_query, version_of

if TYPE_CHECKING:
    from dbml.statements.context import Context

__all__ = ["RecommendModel", "STATEMENT", "recommend", "recommend_model"]


class RecommendModel(MLStatement):
    """``RECOMMEND MODEL m [VERSION n] FOR <source> TOP k [EXCLUDE SEEN]``."""

    arg_types = {"this": True, "version": False, "source": True, "source_sql": False, "top": True, "negative": False,
                 "exclude_seen": False}  # fmt: skip


def parse(r) -> RecommendModel:
    name = r.model_name()
    version = r.version()
    if not r.match("FOR"):
        r.error("Expected FOR (SELECT user_id FROM ...) after the model")
    source, source_sql = r.source("FOR")
    if not r.match("TOP"):
        r.error("Expected TOP and a whole number of items per user")
    negative = r.match("-")
    top = r.number("Expected TOP and a whole number of items per user", "TOP must be a whole number of items")
    exclude = False
    if r.match("EXCLUDE"):
        if not r.match("SEEN"):
            r.error("Expected SEEN after EXCLUDE")
        exclude = True
    return r.finish(RecommendModel(this=name, version=version, source=source, source_sql=source_sql, top=top,
                                   negative=negative or None, exclude_seen=exclude or None))  # fmt: skip


def generate(gen, e: RecommendModel) -> str:
    version = f" VERSION {e.args['version'].name}" if e.args.get("version") else ""
    source = f"({e.args['source_sql']})" if e.args.get("source_sql") else gen.sql(e.args["source"])
    top = ("-" if e.args.get("negative") else "") + e.args["top"].name
    seen = " EXCLUDE SEEN" if e.args.get("exclude_seen") else ""
    return f"RECOMMEND MODEL {gen.sql(e.this)}{version} FOR {source} TOP {top}{seen}"


def run(ctx: "Context", node: RecommendModel):
    sql, label = source_query(node.args["source"], node.args.get("source_sql"))
    top = int(node.args["top"].name) * (-1 if node.args.get("negative") else 1)
    return recommend_model(ctx, node.this.name, version_of(node), ctx.rewrite(sql), label, top,
                           bool(node.args.get("exclude_seen")))  # fmt: skip


def recommend(ctx: "Context", model: str, users: str, top: int = 10, *, exclude_seen: bool = False,
              version: int | None = None):  # fmt: skip
    """``RECOMMEND MODEL model [VERSION n] FOR users TOP top [EXCLUDE SEEN]``.

    Args:
        model: the recommender ('name', 'name:3' or 'name@alias').
        users: a table, file or query whose rows name the users.
        top: items per user (1 to 10,000).
        exclude_seen: leave out each user's training interactions.
        version: the version (default: the one a bare name scores with).
    """
    sql, label = source_query(users)
    return recommend_model(ctx, model, version, ctx.rewrite(sql), label, top, exclude_seen)


def recommend_model(ctx: "Context", model: str, version: int | None, source_sql: str, source_label: str, top: Any,
                    exclude_seen: bool):  # fmt: skip
    import pyarrow as pa

    from dbml import recommend as engine
    from dbml.sqltext import quote as _q
    from dbml.tasks.recommendation import safe_type

    rec = ctx.record(model, version)
    engine.check_recommender(rec, "RECOMMEND MODEL")
    k = engine.check_k(top)
    user, item = rec["options"]["user"], rec["options"]["item"]
    users = engine.users_of(ctx, rec, source_sql, source_label, "RECOMMEND MODEL")
    out = engine.recommend(ctx, rec, users, k, exclude_seen)
    table = pa.table({
        "u": out["user"], "i": pa.array(out["item"], type=pa.string()), "score": pa.array(out["score"], type=pa.float64()),
        "rank": pa.array(out["rank"], type=pa.int32()), "cold_start": pa.array(out["cold_start"], type=pa.bool_()),
    })  # fmt: skip
    item_type = safe_type((rec.get("metrics") or {}).get("item_type")) or "VARCHAR"
    name = f"dbml_recommend_{id(table):x}"
    db = ctx.db()
    db.register(name, table)
    try:
        result = db.sql(
            f"SELECT u AS {_q(user)}, CAST(i AS {item_type}) AS {_q(item)}, score, rank, cold_start FROM {_q(name)} "
            "ORDER BY u, rank"
        ).to_arrow_table()
    finally:
        db.unregister(name)
    return db.from_arrow(result)


STATEMENT = Statement(
    name="recommend", head=("RECOMMEND", "MODEL"), node=RecommendModel, parse=parse, generate=generate, run=run,
    twins={"recommend": recommend}, returns_rows=True, keywords=("VERSION", "FOR", "TOP", "EXCLUDE SEEN"),
    columns=("<user>", "<item>", "score", "rank", "cold_start"),
    summary="each user's best k items of a recommender's catalogue (EXCLUDE SEEN: not those it trained on)",
)  # fmt: skip
