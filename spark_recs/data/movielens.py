"""MovieLens loaders: 100k (``u.data``/``u.user``/``u.item``), latest-small and the 20M layout (with
``tags.csv``), 1M and 10M (``::``).

Ratings come back validated as ``user, item, rating, timestamp`` (see :func:`~spark_recs.data.schema.validate`):
the result carries the accepted rows, the rejected rows with reasons, and the counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_recs.data.io import read_table
from spark_recs.data.schema import RatingColumns, Validated, validate

GENRES_100K = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
#: The movies file of each layout (:func:`movielens_layout`).
ITEM_FILES = {"100k": "u.item", "csv": "movies.csv", "dat": "movies.dat"}
#: Genre names that say a movie has none (latest-small's, 100k's).
NO_GENRE = ("(no genres listed)", "unknown")
RATINGS = RatingColumns()


def movielens_layout(path: str | Path) -> str:
    """``"100k"`` (``u.data``), ``"csv"`` (latest-small, 20M: ``ratings.csv``) or ``"dat"`` (1M/10M ``::``)."""
    path = Path(path)
    for name, layout in (("u.data", "100k"), ("ratings.csv", "csv"), ("ratings.dat", "dat")):
        if (path / name).is_file():
            return layout
    raise FileNotFoundError(
        f"{path} is not a MovieLens folder: expected u.data (100k), ratings.csv (latest-small, 20M) "
        "or ratings.dat (1M, 10M)"
    )


def has_items(path: str | Path) -> bool:
    """Whether ``path`` is a MovieLens folder with its movies file (what :func:`load_items` reads)."""
    try:
        return (Path(path) / ITEM_FILES[movielens_layout(path)]).is_file()
    except FileNotFoundError:
        return False


def load_ratings(spark: SparkSession, path: str | Path, *, file: str | None = None) -> Validated:
    """Load and validate a MovieLens folder's ratings (or ``file`` inside it, e.g. ``u1.base``)."""
    path = Path(path)
    layout = movielens_layout(path)
    names = ["user", "item", "rating", "timestamp"]
    if layout == "100k":
        raw = read_table(spark, str(path / (file or "u.data")), sep="\t", header=False).toDF(*names)
    elif layout == "csv":
        raw = read_table(spark, str(path / (file or "ratings.csv")), sep=",")
        raw = raw.select(
            *[F.col(c).alias(n) for c, n in zip(["userId", "movieId", "rating", "timestamp"], names)]
        )
    else:
        raw = _read_dat(spark, path / (file or "ratings.dat"), names)
    return validate(
        raw, RATINGS.ids, "timestamp", "rating", id_type="long", what=f"MovieLens ratings {path.name}"
    )


def _read_dat(spark: SparkSession, file: Path, names: list[str]) -> DataFrame:
    """A ``::``-separated file (1M, 10M) as string columns ``names``."""
    parts = F.split(F.col("value"), "::")
    return spark.read.text(str(file)).select(*[parts.getItem(i).alias(n) for i, n in enumerate(names)])


def load_items(spark: SparkSession, path: str | Path) -> DataFrame:
    """Items with ``item, title, genres`` (array of genre names); for 100k also one 0/1 column per genre."""
    path = Path(path)
    layout = movielens_layout(path)
    if layout == "100k":
        cols = ["item", "title", "release_date", "video_release_date", "imdb_url"] + GENRES_100K
        raw = read_table(
            spark, str(path / ITEM_FILES[layout]), sep="|", header=False, encoding="ISO-8859-1"
        ).toDF(*cols)
        flags = [F.col(g).cast("int").alias(g) for g in GENRES_100K]
        genres = F.filter(
            F.array(*[F.when(F.col(g) == "1", F.lit(g)) for g in GENRES_100K]), lambda g: g.isNotNull()
        )
        return raw.select(F.col("item").cast("long"), "title", "release_date", genres.alias("genres"), *flags)
    if layout == "csv":
        raw = read_table(spark, str(path / ITEM_FILES[layout]), sep=",").withColumnRenamed("movieId", "item")
    else:
        raw = _read_dat(spark, path / ITEM_FILES[layout], ["item", "title", "genres"])
    return raw.select(F.col("item").cast("long"), "title", F.split(F.col("genres"), r"\|").alias("genres"))


def genre_vectors(spark: SparkSession, path: str | Path) -> pd.DataFrame:
    """``item, vector``: each movie's genres as 0/1 over the folder's genre names in sorted order (the item
    vectors of intra-list diversity); a movie without a genre (:data:`NO_GENRE`) has no row."""
    pairs = load_items(spark, path).select("item", F.explode("genres").alias("genre"))
    pairs = pairs.where(~F.col("genre").isin(*NO_GENRE) & (F.trim("genre") != "")).distinct().toPandas()
    table = pd.crosstab(pairs["item"], pairs["genre"]).sort_index().sort_index(axis=1)
    return pd.DataFrame({"item": table.index.to_numpy(), "vector": list(table.to_numpy(dtype=np.float64))})


def load_users(spark: SparkSession, path: str | Path) -> DataFrame:
    """ml-100k users: ``user, age, gender, occupation, zip``."""
    path = Path(path)
    if movielens_layout(path) != "100k":
        raise ValueError(f"user features exist only in the ml-100k layout (u.user); {path} has none")
    raw = read_table(spark, str(path / "u.user"), sep="|", header=False).toDF(
        "user", "age", "gender", "occupation", "zip"
    )
    return raw.select(F.col("user").cast("long"), F.col("age").cast("int"), "gender", "occupation", "zip")


def load_tags(spark: SparkSession, path: str | Path) -> DataFrame | None:
    """``item, tag`` of a MovieLens folder's ``tags.csv`` (latest-small, 20M); None when it has none."""
    file = Path(path) / "tags.csv"
    if not file.is_file():
        return None
    return read_table(spark, str(file), sep=",").select(
        F.col("movieId").try_cast("long").alias("item"), "tag"
    )
