"""Recommenders: USING recommender, PREDICT and EMBED of a pair, RECOMMEND MODEL (composing
with SQL, EXCLUDE SEEN, cold start), EVALUATE's ranking metrics, MONITOR, EXPORT and
dbml.score, and the refusals (each naming its culprit, the registry as it was).

The synthetic interactions have structure: three groups of users, each taking mostly the
15 items of its own group (the first ones more often), plus a few random ones; so a
recommender can beat the popularity baseline, which mixes the groups."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

import dbml
from dbml.errors import DbmlError
from tests.conftest import registry_counts

OPTIONS = "epochs = 40, lr = 0.05, batch_size = 128, factors = 8, progress = false, seed = 3"

INTERACTIONS = """
CREATE TABLE interactions AS
SELECT DISTINCT ON (user_id, item_id) user_id, item_id, ts FROM (
    SELECT u AS user_id,
           CASE WHEN hash(u, j, 'noise') % 6 = 0 THEN 100 + (hash(u, j, 'any') % 45)::INTEGER
                ELSE 100 + (u % 3) * 15 + floor(15 * pow((hash(u, j) % 1000) / 1000.0, 2))::INTEGER END AS item_id,
           TIMESTAMP '2024-01-01' + INTERVAL (j) HOUR AS ts, j
    FROM range(90) a(u), range(14) b(j)
) ORDER BY user_id, item_id, ts
"""


@pytest.fixture(scope="module")
def rec():
    c = dbml.connect(user="tester")
    c.sql(INTERACTIONS)
    c.sql("CREATE TABLE train AS SELECT * FROM interactions WHERE ts < TIMESTAMP '2024-01-01 10:00:00'")
    c.sql("CREATE TABLE test AS SELECT * FROM interactions WHERE ts >= TIMESTAMP '2024-01-01 10:00:00' "
          "AND (user_id, item_id) NOT IN (SELECT (user_id, item_id) FROM train)")  # fmt: skip
    c.sql(f"TRAIN MODEL rec USING recommender FROM (SELECT user_id, item_id FROM train) "
          f"WITH (user = 'user_id', item = 'item_id', validation = 0, {OPTIONS})").fetchall()  # fmt: skip
    yield c
    c.close()


def _popularity_ndcg(c) -> float:
    """NDCG@10 of the most popular training items, each user's training items left out."""
    rows = c.sql("""
        WITH pop AS (SELECT item_id, count(*) AS n FROM train GROUP BY ALL),
        ranked AS (
            SELECT u.user_id, p.item_id, row_number() OVER (PARTITION BY u.user_id ORDER BY p.n DESC, p.item_id) AS r
            FROM (SELECT DISTINCT user_id FROM test) u, pop p
            WHERE (u.user_id, p.item_id) NOT IN (SELECT (user_id, item_id) FROM train)
            QUALIFY r <= 10)
        SELECT t.user_id, count(*) AS rel, list(r) FILTER (WHERE r IS NOT NULL) AS hits
        FROM test t LEFT JOIN ranked USING (user_id, item_id) GROUP BY ALL""").fetchall()
    total = 0.0
    for _, rel, hits in rows:
        ideal = sum(1 / np.log2(r + 2) for r in range(min(rel, 10)))
        total += sum(1 / np.log2(r + 1) for r in hits or []) / ideal
    return total / len(rows)


def test_beats_popularity_on_held_out_interactions(rec):
    ev = rec.sql("EVALUATE MODEL rec ON test")
    assert ev.columns == ["rows", "hit_rate_at_10", "recall_at_10", "ndcg_at_10", "users", "cold_users"]
    rows, hit, recall, ndcg, users, cold = ev.fetchall()[0]
    assert (rows, users) == rec.sql("SELECT count(*), count(DISTINCT user_id) FROM test").fetchall()[0] and cold == 0
    popular = _popularity_ndcg(rec)
    assert ndcg > popular + 0.1, (ndcg, popular)
    assert 0 < recall <= hit <= 1


def test_predict_scores_a_pair_and_embed_gives_both_vectors(rec):
    rows = rec.sql("SELECT PREDICT(rec, user_id, item_id) AS s, EMBED(rec, user_id, item_id) AS e FROM train LIMIT 20").fetchall()
    for s, e in rows:
        half = len(e) // 2
        assert len(e) == 2 * (8 + 2)
        assert abs(float(np.dot(e[:half], e[half:])) - s) < 1e-4
    # the same from SQL's own vectors: the user half depends on the user only
    a = rec.sql("SELECT EMBED(rec, 1, 100)[1:10] = EMBED(rec, 1, 130)[1:10]").fetchall()[0][0]
    assert a is True


def test_recommend_rows_and_composition(rec):
    out = rec.sql("RECOMMEND MODEL rec FOR (SELECT DISTINCT user_id FROM train WHERE user_id < 5) TOP 3")
    assert out.columns == ["user_id", "item_id", "score", "rank", "cold_start"]
    item_type = str(rec.sql("SELECT item_id FROM train").types[0])
    assert [str(t) for t in out.types] == ["BIGINT", item_type, "DOUBLE", "INTEGER", "BOOLEAN"]
    rows = out.fetchall()
    assert len(rows) == 15 and [r[3] for r in rows[:3]] == [1, 2, 3]
    scores = [r[2] for r in rows[:3]]
    assert scores == sorted(scores, reverse=True)
    # the score is PREDICT's
    u, i, s = rows[0][:3]
    assert abs(rec.sql(f"SELECT PREDICT(rec, {u}, {i})").fetchall()[0][0] - s) < 1e-4
    # inside a query, a CTE and CREATE TABLE AS, joined with a table
    assert rec.sql("SELECT count(*) FROM (RECOMMEND MODEL rec FOR (SELECT 1 AS user_id) TOP 4) WHERE rank <= 2").fetchall() == [(2,)]
    assert rec.sql("WITH r AS (RECOMMEND MODEL rec FOR (SELECT 2 AS user_id) TOP 5) "
                   "SELECT count(*) FROM r JOIN train USING (user_id, item_id)").fetchall()[0][0] >= 0  # fmt: skip
    rec.sql("CREATE TABLE recs AS FROM (RECOMMEND MODEL rec FOR (SELECT user_id FROM train) TOP 2 EXCLUDE SEEN)")
    assert rec.sql("SELECT count(*), count(DISTINCT user_id) FROM recs").fetchall() == [(180, 90)]
    # the Python twin
    twin = rec.recommend("rec", "SELECT DISTINCT user_id FROM train WHERE user_id < 5", top=3).fetchall()
    assert twin == rows


def test_exclude_seen_leaves_out_training_pairs(rec):
    seen = "SELECT count(*) FROM (RECOMMEND MODEL rec FOR (SELECT DISTINCT user_id FROM train) TOP 10{}) JOIN train USING (user_id, item_id)"
    assert rec.sql(seen.format("")).fetchall()[0][0] > 0  # the group's favourites, trained on
    assert rec.sql(seen.format(" EXCLUDE SEEN")).fetchall() == [(0,)]
    per_user = rec.sql("SELECT min(n), max(n) FROM (SELECT count(*) AS n FROM (RECOMMEND MODEL rec FOR "
                       "(SELECT DISTINCT user_id FROM train) TOP 10 EXCLUDE SEEN) GROUP BY user_id)").fetchall()  # fmt: skip
    assert per_user == [(10, 10)]


def test_unknown_user_gets_the_most_popular_items_flagged(rec):
    rows = rec.sql("RECOMMEND MODEL rec FOR (SELECT 12345 AS user_id UNION ALL SELECT 0) TOP 3").fetchall()
    cold = [r for r in rows if r[0] == 12345]
    assert [r[4] for r in cold] == [True] * 3 and all(not r[4] for r in rows if r[0] == 0)
    popular = rec.sql("SELECT item_id, count(*) AS n FROM train GROUP BY item_id ORDER BY n DESC, item_id::VARCHAR LIMIT 3").fetchall()
    assert [r[1] for r in cold] == [p[0] for p in popular]


def test_export_score_outside_describe_and_monitor(rec, tmp_path):
    path = str(tmp_path / "rec.onnx")
    rec.sql(f"EXPORT MODEL rec TO '{path}'")
    outside = dbml.score(path, pa.table({"user_id": [1, 2, 999], "item_id": [100, 131, 100]}))
    inside = rec.sql("SELECT PREDICT(rec, u, i) FROM (VALUES (1, 100), (2, 131), (999, 100)) v(u, i)").fetchall()
    assert np.allclose(outside.column("prediction").to_pylist(), [r[0] for r in inside], atol=1e-5)
    described = rec.sql("SELECT task, architecture, features FROM (DESCRIBE MODEL rec)").fetchall()[0]
    assert described[:2] == ("recommendation", "recommender") and "option user" in described[2]
    # IMPORT reads the file back: the same recommendations, the seen pairs from the file
    rec.sql(f"IMPORT MODEL rec_copy FROM '{path}'")
    same = "RECOMMEND MODEL {} FOR (SELECT DISTINCT user_id FROM train WHERE user_id < 6) TOP 4 EXCLUDE SEEN"
    assert rec.sql(same.format("rec_copy")).fetchall() == rec.sql(same.format("rec")).fetchall()
    drift = rec.sql("SELECT feature, psi FROM (MONITOR MODEL rec ON (SELECT user_id, item_id FROM test))").fetchall()
    assert {"item_id", "user_id", "__prediction__"} <= {r[0] for r in drift}


def test_explicit_ratings_and_the_time_split(con):
    con.sql(INTERACTIONS)
    con.sql("CREATE TABLE rated AS SELECT *, 1 + (item_id % 5) + (user_id % 2) * 0.5 AS stars FROM interactions")
    row = con.sql(f"TRAIN MODEL stars USING recommender FROM rated WITH (user = 'user_id', item = 'item_id', "
                  f"rating = 'stars', {OPTIONS})").fetchall()[0]  # fmt: skip
    assert row[3] == "recommendation" and row[8]["rmse"] < 1.0
    opts = con.sql("SELECT options FROM dbml.model_versions WHERE model = 'stars'").fetchall()[0][0]
    assert '"time_column": "ts"' in opts  # the one TIMESTAMP column splits by time
    got = con.sql("SELECT avg(abs(PREDICT(stars, user_id, item_id) - stars)) FROM rated").fetchall()[0][0]
    assert got < 1.0


def test_bad_input_names_the_culprit_and_writes_nothing(rec):
    before = registry_counts(rec)
    bad = {
        "TRAIN MODEL r2 USING recommender FROM train WITH (item = 'item_id')": "user",
        "TRAIN MODEL r2 USING recommender FROM train WITH (user = 'user_id', item = 'nope')": "nope",
        "TRAIN MODEL r2 USING recommender FROM (SELECT NULL::INTEGER AS user_id, item_id FROM train UNION ALL "
        "SELECT user_id, item_id FROM train) WITH (user = 'user_id', item = 'item_id')": "user_id",
        "TRAIN MODEL r2 USING recommender FROM (SELECT user_id, CASE WHEN user_id = 3 THEN NULL ELSE item_id END AS item_id "
        "FROM train) WITH (user = 'user_id', item = 'item_id')": "'item_id'",
        "TRAIN MODEL r2 USING recommender FROM train TARGET item_id WITH (user = 'user_id', item = 'item_id')": "TARGET",
        "TRAIN MODEL rec USING recommender FROM train WITH (user = 'user_id', item = 'item_id', warm_start = true)":
            "fine-tuned",
        "TRAIN MODEL r2 USING recommender FROM train WITH (user = 'user_id', item = 'item_id', base = 'rec')": "base",
        "TRAIN MODEL r2 FROM train TARGET item_id WITH (base = 'rec')": "base",
        "RECOMMEND MODEL rec FOR (SELECT 1 AS user_id) TOP 0": "TOP",
        "RECOMMEND MODEL rec FOR (SELECT 1 AS user_id) TOP -2": "got -2",
        "RECOMMEND MODEL rec FOR (SELECT 1 AS user_id) TOP 1000000": "TOP",
        "RECOMMEND MODEL rec FOR (SELECT 1 AS a, 2 AS b) TOP 3": "user_id",
        "RECOMMEND MODEL nosuch FOR (SELECT 1 AS user_id) TOP 3": "nosuch",
        "EVALUATE MODEL rec ON (SELECT 1 AS user_id)": "item_id",
    }  # fmt: skip
    for sql, culprit in bad.items():
        with pytest.raises(DbmlError) as err:
            rec.sql(sql).fetchall()
        assert culprit in str(err.value), (sql, str(err.value))
    assert registry_counts(rec) == before
    rec.sql("CREATE TABLE plain AS SELECT i AS x, i % 2 AS y FROM range(40) t(i)")
    rec.sql("TRAIN MODEL plain FROM plain TARGET y WITH (epochs = 2, progress = false)").fetchall()
    with pytest.raises(DbmlError, match="model 'plain' version 1 is a classification model"):
        rec.sql("RECOMMEND MODEL plain FOR (SELECT 1 AS user_id) TOP 3").fetchall()


def test_recommend_composes_in_every_form(rec, tmp_path):
    from tests.statements.test_compose import FORMS

    statement = "RECOMMEND MODEL rec FOR (SELECT DISTINCT user_id FROM train WHERE user_id < 4) TOP 3 EXCLUDE SEEN"
    direct = len(rec.sql(statement).fetchall())
    assert direct == 12
    for form, sql in FORMS.items():
        assert rec.sql(sql.format(s=statement, path=tmp_path / "out.csv")).fetchall() == [(direct,)], form


def test_two_towers_with_user_and_item_columns(rec):
    rec.sql("CREATE TABLE rich AS SELECT user_id, item_id, 'g' || (user_id % 3) AS grp, (user_id % 7) * 1.5 AS age, "
            "'genre' || ((item_id - 100) // 15) AS genre FROM train")  # fmt: skip
    rec.sql("CREATE TABLE rich_test AS SELECT user_id, item_id, 'g' || (user_id % 3) AS grp, (user_id % 7) * 1.5 AS age "
            "FROM test")  # fmt: skip
    rec.sql(f"TRAIN MODEL towers USING recommender FROM rich WITH (user = 'user_id', item = 'item_id', "
            f"user_features = ['grp', 'age'], item_features = ['genre'], validation = 0, {OPTIONS})").fetchall()  # fmt: skip
    features = rec.sql("SELECT features FROM (DESCRIBE MODEL towers)").fetchall()[0][0]
    assert "option user_features" in features and "option item_features" in features
    ndcg = rec.sql("SELECT ndcg_at_10 FROM (EVALUATE MODEL towers ON rich_test)").fetchall()[0][0]
    assert ndcg > _popularity_ndcg(rec) + 0.1
    # RECOMMEND reads the user's columns from its source; its scores are PREDICT's on the item's training columns
    top = rec.sql("RECOMMEND MODEL towers FOR (SELECT user_id, grp, age FROM rich_test WHERE user_id = 4) TOP 2").fetchall()
    u, i, s = top[0][:3]
    genre = rec.sql(f"SELECT any_value(genre) FROM rich WHERE item_id = {i}").fetchall()[0][0]
    again = rec.sql(f"SELECT PREDICT(towers, *) FROM (SELECT {u} AS user_id, {i} AS item_id, 'g1' AS grp, 6.0 AS age, "
                    f"'{genre}' AS genre)").fetchall()[0][0]  # fmt: skip
    assert abs(again - s) < 1e-4
    with pytest.raises(DbmlError, match="lacks the user column.* age"):
        rec.sql("RECOMMEND MODEL towers FOR (SELECT user_id, grp FROM rich_test) TOP 2").fetchall()
    with pytest.raises(DbmlError, match="'nope'"):
        rec.sql("TRAIN MODEL t2 USING recommender FROM rich WITH (user = 'user_id', item = 'item_id', "
                "item_features = ['nope'])").fetchall()  # fmt: skip


def test_bpr_loss_learns_too(rec):
    rec.sql(f"TRAIN MODEL rec_bpr USING recommender FROM (SELECT user_id, item_id FROM train) "
            f"WITH (user = 'user_id', item = 'item_id', loss = 'bpr', negatives = 8, l2 = 0.01, validation = 0, {OPTIONS})").fetchall()  # fmt: skip
    ndcg = rec.sql("SELECT ndcg_at_10 FROM (EVALUATE MODEL rec_bpr ON test)").fetchall()[0][0]
    assert ndcg > _popularity_ndcg(rec) + 0.1


def test_top_k_in_onnxruntime_matches_numpy_with_exclusions():
    from dbml.recommend import top_k

    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(300, 6)).astype(np.float32), rng.normal(size=(500, 6)).astype(np.float32)
    exclude = [rng.choice(500, size=rng.integers(0, 40), replace=False) for _ in range(300)]
    idx, val = top_k(users, items, 7, exclude)
    scores = users @ items.T
    for r in range(300):
        scores[r, exclude[r]] = -np.inf
    want = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    assert np.array_equal(idx, want)
    assert np.allclose(val, np.take_along_axis(scores, want, axis=1), atol=1e-5)
    few, _ = top_k(users[:2], items[:5], 10, [np.array([0, 1]), np.array([], np.int64)])
    assert (few[0] >= 0).sum() == 3 and (few[1] >= 0).sum() == 5 and set(few[0][:3]) == {2, 3, 4}


def test_the_split_holds_out_each_users_latest_interactions(con):
    from dbml.tasks.recommendation import Recommendation

    role, _ = Recommendation().split_sql("y", '"dbml/key"', {"user": "u", "time_column": "ts", "validation": 0.25})
    rows = con.sql(f"SELECT u, struct_extract(y, 't') AS t, {role} AS role FROM (SELECT u, "
                   "struct_pack(t := j::DOUBLE, k := hash(u, j)) AS y FROM range(3) a(u), range(8) b(j))").fetchall()  # fmt: skip
    held = sorted((u, t) for u, t, r in rows if r == 1)
    assert held == [(u, t) for u in range(3) for t in (6.0, 7.0)]


def test_a_version_keeps_the_popularity_baseline(rec):
    """metrics.baseline.popularity: the most popular training items on the same held-out pairs;
    on grouped tastes the network beats it, and DESCRIBE says by how much."""
    rec.sql(f"TRAIN MODEL rec_held USING recommender FROM (SELECT user_id, item_id FROM interactions) "
            f"WITH (user = 'user_id', item = 'item_id', {OPTIONS})")  # fmt: skip
    m = json.loads(rec.sql("SELECT metrics FROM dbml.model_versions WHERE model = 'rec_held'").fetchall()[0][0])
    popular = m["baseline"]["popularity"]
    assert set(popular) == {"hit_rate_at_10", "recall_at_10", "ndcg_at_10"}
    assert 0 < popular["ndcg_at_10"] < m["ndcg_at_10"] - 0.05, (popular, m["ndcg_at_10"])
    words = rec.sql("SELECT baseline FROM (DESCRIBE MODEL rec_held)").fetchall()[0][0]
    assert "over the most popular items" in words and words.startswith("+")


def test_the_popularity_baseline_ranks_by_training_counts_without_seen_items(con):
    """Everyone takes from the same 8 items: whatever a user has not taken yet is among the
    most popular items they have not seen, so the baseline finds every held-out pair."""
    con.sql("CREATE TABLE same AS SELECT u AS user_id, 100 + i AS item_id FROM range(40) a(u), range(8) b(i) "
            "WHERE hash(u, i) % 4 <> 0")  # fmt: skip
    con.sql(f"TRAIN MODEL same_rec USING recommender FROM same WITH (user = 'user_id', item = 'item_id', {OPTIONS})")
    m = json.loads(con.sql("SELECT metrics FROM dbml.model_versions WHERE model = 'same_rec'").fetchall()[0][0])
    assert m["baseline"]["popularity"]["hit_rate_at_10"] == pytest.approx(1.0)
    assert m["baseline"]["popularity"]["recall_at_10"] == pytest.approx(1.0)


def test_a_rating_model_keeps_the_mean_rating(con):
    con.sql("CREATE TABLE rated AS SELECT u AS user_id, 100 + i AS item_id, ((u + i) % 5 + 1)::DOUBLE AS stars "
            "FROM range(40) a(u), range(12) b(i)")  # fmt: skip
    con.sql(f"TRAIN MODEL rated_rec USING recommender FROM rated WITH (user = 'user_id', item = 'item_id', "
            f"rating = 'stars', {OPTIONS})")  # fmt: skip
    m = json.loads(con.sql("SELECT metrics FROM dbml.model_versions WHERE model = 'rated_rec'").fetchall()[0][0])
    mean = m["baseline"]["mean"]
    assert mean["rmse"] == pytest.approx(math.sqrt(2), abs=0.35)  # ratings 1..5 evenly: their spread is sqrt(2)
    assert m["rmse"] < mean["rmse"]
