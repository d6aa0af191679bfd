"""LensKit-exact (0.14) accuracy metrics, each in pandas and in Spark with the same numbers.

**Rating prediction** (:func:`rmse`, :func:`mae`, :func:`global_metric`, :func:`user_metric`,
:func:`prediction_metrics`): the global metric is taken over all rows; the *user* metric per user, then
averaged over users. A row whose prediction or rating is missing (null or NaN) is an error by default
(``missing="error"``: ``ValueError`` with the count); ``missing="ignore"`` drops such rows, logs how many,
and :func:`prediction_metrics` returns the count as ``n_missing``. (LensKit's ``missing`` only looks at
the truth after index alignment and silently skips NaN predictions in the mean; here both sides count.)

**Top-N lists** (:class:`RecListAnalysis`, like LensKit's ``lenskit.topn.RecListAnalysis``). A list is
``rank, item`` rows sharing the group columns (``user``, and e.g. ``RunId``); rank 1 is the best. The
order of a list is *always* its ``rank`` column, never the order rows arrive in (ties in scores do not
matter; equal ranks are taken as given). The metrics (:data:`TOPN_METRICS`) are the formulas of
:mod:`spark_recs.core.ranking`; ``@k`` cuts a list at rank k (precision divides by k even when the list is
shorter). nDCG's gain is 1 (binary, the default) or a truth column (``gain="rating"``, missing gains count
0). Truth should hold one row per (list, item); a duplicated recommended item counts once per row.

Example: recs ``[5, 2, 7]``, test ``{2: 4.0, 9: 5.0}``: precision@10 = 0.1, recall@10 = 0.5,
recip_rank = 0.5, binary nDCG = 0.5, graded nDCG = 4 / (5 + 4) = 4/9.

The Spark versions use only DataFrame functions (joins, windows, aggregations: no UDF, no RDD, nothing
collected but the final numbers), so they run on classic Spark and on Spark Connect alike. Their sums add
the terms of a group in ascending order, so results are the same bits on any partitioning, run after run
(the summaries sort one value per list or user in a single group). nDCG's ``log2`` is the engine's own:
classic Spark's (``log(x) / log(2)``) and pysail's can differ in the last bit.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, Window
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import functions as F

from spark_recs.core import ranking
from spark_recs.data.io import collect_columns

from .ordered import ordered_mean, ordered_sum

log = logging.getLogger(__name__)

MISSING_MODES = ("error", "ignore")
TOPN_METRICS = ("precision", "recall", "hit", "recip_rank", *ranking.DISCOUNTS)


# --------------------------------------------------------------------------------------------------
# Rating prediction
# --------------------------------------------------------------------------------------------------


def _check_missing_mode(missing: str) -> None:
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {MISSING_MODES}, got {missing!r}")


def _left_out(n_missing: int, n_rows: int, missing: str) -> None:
    """Raise (``missing="error"``) or log that ``n_missing`` of ``n_rows`` rows lack a prediction or rating."""
    if n_missing and missing == "error":
        raise ValueError(
            f"{n_missing} of {n_rows} rows have a missing prediction or rating; "
            "pass missing='ignore' to leave them out"
        )
    if n_missing:
        log.info(
            "ignoring %d rows with a missing prediction or rating (%d used)", n_missing, n_rows - n_missing
        )


def _usable(pred: np.ndarray, true: np.ndarray, missing: str) -> np.ndarray:
    """The mask of the rows with both a prediction and a rating (the others: :func:`_left_out`)."""
    _check_missing_mode(missing)
    ok = ~(np.isnan(pred) | np.isnan(true))
    _left_out(int((~ok).sum()), len(ok), missing)
    return ok


def _pairs(predictions, truth) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and truth as two aligned float arrays (Series are aligned on their index)."""
    if truth is None:
        if not isinstance(predictions, pd.DataFrame):
            raise TypeError(
                "without truth, predictions must be a DataFrame with 'prediction' and 'rating' columns"
            )
        return _pairs(predictions["prediction"], predictions["rating"])
    if isinstance(predictions, pd.Series) and isinstance(truth, pd.Series):
        # LensKit's alignment: every prediction keeps its row; truth is matched by index label.
        predictions, truth = predictions.align(truth, join="left")
    pred = np.asarray(predictions, dtype=np.float64).ravel()
    true = np.asarray(truth, dtype=np.float64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"{len(pred)} predictions but {len(true)} truth values")
    return pred, true


def _errors(predictions, truth, missing: str) -> np.ndarray:
    """Prediction - truth for the usable rows."""
    pred, true = _pairs(predictions, truth)
    ok = _usable(pred, true, missing)
    return pred[ok] - true[ok]


def rmse(predictions, truth=None, missing: str = "error") -> float:
    """Root mean squared error of ``predictions`` against ``truth`` (NaN when no row is left).

    ``predictions`` and ``truth`` are Series (aligned on their index, like LensKit) or equal-length arrays;
    without ``truth``, ``predictions`` is a DataFrame with ``prediction`` and ``rating`` columns.
    """
    err = _errors(predictions, truth, missing)
    return float(np.sqrt(np.mean(np.square(err)))) if len(err) else float("nan")


def mae(predictions, truth=None, missing: str = "error") -> float:
    """Mean absolute error; arguments as for :func:`rmse`."""
    err = _errors(predictions, truth, missing)
    return float(np.mean(np.abs(err))) if len(err) else float("nan")


def global_metric(
    predictions: pd.DataFrame,
    metric=rmse,
    *,
    score_column: str = "prediction",
    rating_column: str = "rating",
    missing: str = "error",
) -> float:
    """``metric`` (:func:`rmse`, :func:`mae`, ...) over all rows of a prediction frame."""
    return metric(predictions[score_column].to_numpy(), predictions[rating_column].to_numpy(), missing)


def user_metric(
    predictions: pd.DataFrame,
    metric=rmse,
    *,
    score_column: str = "prediction",
    rating_column: str = "rating",
    user_column: str = "user",
    missing: str = "error",
) -> float:
    """``metric`` per user, averaged over users (LensKit's ``user_metric``).

    Missing rows are checked over the whole frame first (so the error counts them all); with
    ``missing="ignore"`` a user none of whose rows is usable is left out of the average.
    """
    if metric is rmse or metric is mae:
        columns = {"prediction": score_column, "rating": rating_column, "user": user_column}
        return prediction_metrics(predictions, **columns, missing=missing)[f"user_{metric.__name__}"]
    pred = predictions[score_column].astype(np.float64).to_numpy()
    true = predictions[rating_column].astype(np.float64).to_numpy()
    ok = _usable(pred, true, missing)
    frame = pd.DataFrame({"user": predictions[user_column].to_numpy()[ok], "p": pred[ok], "t": true[ok]})
    per_user = frame.groupby("user", sort=False).apply(
        lambda g: metric(g["p"].to_numpy(), g["t"].to_numpy()), include_groups=False
    )
    return float(per_user.mean()) if len(per_user) else float("nan")


def prediction_metrics(
    df,
    *,
    prediction: str = "prediction",
    rating: str = "rating",
    user: str = "user",
    missing: str = "error",
) -> dict[str, float]:
    """Global and user-averaged RMSE and MAE of a pandas or Spark prediction frame.

    Returns ``rmse``, ``mae``, ``user_rmse``, ``user_mae``, ``n_rows`` (rows used), ``n_missing`` (rows
    left out, ``missing="ignore"``) and ``n_users`` (users with at least one usable row). A Spark frame is
    aggregated in Spark in one job; only these numbers come back to the driver.
    """
    _check_missing_mode(missing)
    if isinstance(df, pd.DataFrame):
        pred = df[prediction].astype(np.float64).to_numpy()
        true = df[rating].astype(np.float64).to_numpy()
        ok = _usable(pred, true, missing)
        err = pred[ok] - true[ok]
        frame = pd.DataFrame({"user": df[user].to_numpy()[ok], "sq": np.square(err), "ab": np.abs(err)})
        per_user = frame.groupby("user", sort=False).agg(sq=("sq", "mean"), ab=("ab", "mean"))
        n_rows, n_missing, n_users = len(err), int((~ok).sum()), len(per_user)
        sums = (float(np.square(err).sum()), float(np.abs(err).sum()))
        user_means = (float(np.sqrt(per_user["sq"]).mean()), float(per_user["ab"].mean()))
    elif isinstance(df, SparkDataFrame):
        p, r = F.col(prediction).cast("double"), F.col(rating).cast("double")
        bad = p.isNull() | F.isnan(p) | r.isNull() | F.isnan(r)
        err = F.when(~bad, p - r)
        per_user = df.groupBy(user).agg(
            F.count(err).alias("n"),
            ordered_sum(err * err).alias("sse"),
            ordered_sum(F.abs(err)).alias("sae"),
            F.sum(bad.cast("long")).alias("n_missing"),
        )
        used = F.col("n") > 0
        row = per_user.agg(
            F.sum("n").alias("n_rows"),
            F.sum("n_missing").alias("n_missing"),
            F.count(F.when(used, 1)).alias("n_users"),
            ordered_sum(F.col("sse")).alias("sse"),
            ordered_sum(F.col("sae")).alias("sae"),
            ordered_mean(F.when(used, F.sqrt(F.col("sse") / F.col("n")))).alias("user_rmse"),
            ordered_mean(F.when(used, F.col("sae") / F.col("n"))).alias("user_mae"),
        ).first()
        n_rows, n_missing, n_users = int(row["n_rows"] or 0), int(row["n_missing"] or 0), int(row["n_users"])
        _left_out(n_missing, n_rows + n_missing, missing)
        sums = (float(row["sse"] or 0.0), float(row["sae"] or 0.0))
        user_means = tuple(
            float("nan") if row[c] is None else float(row[c]) for c in ("user_rmse", "user_mae")
        )
    else:
        raise TypeError(f"expected a pandas or Spark DataFrame, got {type(df).__name__}")
    nan = float("nan")
    return {
        "rmse": float(np.sqrt(sums[0] / n_rows)) if n_rows else nan,
        "mae": sums[1] / n_rows if n_rows else nan,
        "user_rmse": user_means[0] if n_users else nan,
        "user_mae": user_means[1] if n_users else nan,
        "n_rows": n_rows,
        "n_missing": n_missing,
        "n_users": n_users,
    }


# --------------------------------------------------------------------------------------------------
# Top-N: one list at a time (pandas), LensKit's per-list metric functions
# --------------------------------------------------------------------------------------------------


def _truth_gains(truth, gain: str | None) -> pd.Series:
    """The test items of one list as a Series item -> gain (1 for binary relevance)."""
    if isinstance(truth, pd.Series):
        gains = truth.astype(np.float64) if gain is not None else pd.Series(1.0, index=truth.index)
    elif isinstance(truth, pd.DataFrame):
        frame = truth.set_index("item") if "item" in truth.columns else truth
        gains = frame[gain].astype(np.float64) if gain is not None else pd.Series(1.0, index=frame.index)
    else:
        if gain is not None:
            raise TypeError("a gain needs truth as a DataFrame (with that column) or a Series item -> gain")
        gains = pd.Series(1.0, index=pd.Index(list(truth)))
    return gains.fillna(0.0)


def _hits(recs: pd.DataFrame, truth, k: int | None, gain: str | None = None):
    """The ranks and gains of one list's hits within the top ``k`` (ranks: the ``rank`` column, else the row
    order), and the gains of all its test items."""
    gains = _truth_gains(truth, gain)
    if "rank" in recs.columns:
        ranks = recs["rank"].to_numpy(dtype=np.float64)
    else:
        ranks = np.arange(1, len(recs) + 1, dtype=np.float64)
    found = recs["item"].isin(gains.index).to_numpy()
    if k is not None:
        found &= ranks <= k
    hit_gains = gains.reindex(recs["item"].to_numpy()[found]).to_numpy()
    return ranks[found], hit_gains, gains


def precision(recs: pd.DataFrame, truth, k: int | None = None) -> float:
    """Precision of one list: hits in the top ``k`` / ``k`` (hits / list length without ``k``)."""
    ranks, _, _ = _hits(recs, truth, k)
    return float(ranking.precision(len(ranks), len(recs), k))


def recall(recs: pd.DataFrame, truth, k: int | None = None) -> float:
    """Recall of one list: hits in the top ``k`` / min(|test items|, ``k``); NaN without test items."""
    ranks, _, gains = _hits(recs, truth, k)
    return float(ranking.recall(len(ranks), len(gains), k))


def hit(recs: pd.DataFrame, truth, k: int | None = None) -> float:
    """1.0 if a test item is in the top ``k`` of one list, else 0.0."""
    ranks, _, _ = _hits(recs, truth, k)
    return float(ranking.hit(len(ranks)))


def recip_rank(recs: pd.DataFrame, truth, k: int | None = None) -> float:
    """1 / the rank of the first test item in the top ``k`` of one list, 0.0 if there is none."""
    ranks, _, _ = _hits(recs, truth, k)
    return float(ranking.reciprocal_rank(ranks.min() if len(ranks) else np.nan))


def _ndcg(recs: pd.DataFrame, truth, k: int | None, gain: str | None, metric: str) -> float:
    ranks, hit_gains, gains = _hits(recs, truth, k, gain)
    ideal_gains = np.sort(gains.to_numpy())[::-1][:k]
    ideal = ranking.discounted(ideal_gains, np.arange(1, len(ideal_gains) + 1), metric).sum()
    return float(ranking.ndcg(ranking.discounted(hit_gains, ranks, metric).sum(), ideal))


def ndcg(recs: pd.DataFrame, truth, k: int | None = None, gain: str | None = None) -> float:
    """nDCG of one list with LensKit's discount, binary (``gain=None``) or with a truth column (e.g.
    ``"rating"``) as the gain."""
    return _ndcg(recs, truth, k, gain, "ndcg")


def ndcg_log2p1(recs: pd.DataFrame, truth, k: int | None = None, gain: str | None = None) -> float:
    """nDCG of one list with the discount log2(rank + 1); arguments as for :func:`ndcg`."""
    return _ndcg(recs, truth, k, gain, "ndcg_log2p1")


_FUNCTIONS = {f: f.__name__ for f in (precision, recall, hit, recip_rank, ndcg, ndcg_log2p1)}


def _column(value) -> Column:
    return value if isinstance(value, Column) else F.lit(value)


#: The metric formulas' operations on Spark columns (Spark evaluates only the chosen branch of ``when``).
SPARK = ranking.Ops(
    where=lambda condition, yes, no: F.when(condition, yes).otherwise(no),
    divide=lambda a, b: a / b,
    minimum=lambda a, b: F.least(_column(a), _column(b)),
    maximum=lambda a, b: F.greatest(_column(a), _column(b)),
    log2=lambda values: F.log2(values.cast("double")),
    isnull=lambda values: values.isNull(),
)


# --------------------------------------------------------------------------------------------------
# Top-N: all lists at once (pandas or Spark)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopNMetric:
    """One column of a :class:`RecListAnalysis`: ``kind`` in :data:`TOPN_METRICS`, cut-off, gain column."""

    kind: str
    name: str
    k: int | None = None
    gain: str | None = None


@dataclass(frozen=True)
class _Keys:
    rec: list[str]  # identifies a recommendation list: rec-only group columns, then the truth key
    truth: list[str]  # group columns that are also in the truth frame (identify a test list)
    context: list[str]  # rec-only group columns + ``shared``: what a run pads its test lists within
    shared: list[str]  # the truth key columns but the user's (``DataSet``, ``Partition``)


def _stat(prefix: str, k: int | None, gain: str | None = None) -> str:
    return f"__{prefix}_{'all' if k is None else k}" + ("" if gain is None else f"_{gain}")


class RecListAnalysis:
    """Top-N metrics of many recommendation lists against their test items (LensKit's ``RecListAnalysis``).

    ``group_cols`` name the columns that identify one list, the user column included (e.g.
    ``["RunId", "user"]``); by default every column of the recommendations but :attr:`DEFAULT_SKIP_COLS`.
    The group columns found in the truth frame match a list to its test items (e.g. ``user``, or
    ``DataSet, Partition, user``); the others (``RunId``) tell lists of the same user apart.
    """

    DEFAULT_SKIP_COLS = ("item", "rank", "score", "rating", "prediction")

    def __init__(
        self,
        group_cols: Sequence[str] | None = None,
        *,
        user_column: str = "user",
        item_column: str = "item",
        rank_column: str = "rank",
    ):
        self.group_cols = None if group_cols is None else list(group_cols)
        self.user_column = user_column
        self.item_column = item_column
        self.rank_column = rank_column
        self.metrics: list[TopNMetric] = []

    def add_metric(
        self, metric, k: int | None = None, name: str | None = None, gain: str | None = None
    ) -> RecListAnalysis:
        """Add a metric: ``"precision"``, ``"recall"``, ``"hit"``, ``"recip_rank"``, ``"ndcg"`` or
        ``"ndcg_log2p1"`` (or the function of that name in this module), cut at ``k`` (``None``: the whole list).

        ``gain`` (nDCG only) is ``None``/``"binary"`` for binary relevance or the truth column holding the
        gain (``"rating"``). The column is named ``name``, by default the metric name with ``@k`` when
        ``k`` is given (``precision@10``, ``recip_rank``); names must be unique. Returns ``self``.
        """
        kind = _FUNCTIONS.get(metric, metric) if callable(metric) else metric
        if kind not in TOPN_METRICS:
            raise ValueError(f"unknown top-N metric {metric!r}; expected one of {TOPN_METRICS}")
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise ValueError(f"k must be a positive integer or None, got {k!r}")
        if gain == "binary":
            gain = None
        if gain is not None and kind not in ranking.DISCOUNTS:
            raise ValueError(
                f"gain applies to ndcg only (either discount: {list(ranking.DISCOUNTS)}), not {kind}"
            )
        name = name or (kind if k is None else f"{kind}@{k}")
        if name in self.metric_names or name in ("nrecs", "ntruth"):
            raise ValueError(f"a column named {name!r} already exists; pass name=... to tell them apart")
        self.metrics.append(TopNMetric(kind, name, None if k is None else int(k), gain))
        return self

    @property
    def metric_names(self) -> list[str]:
        """The metric column names, in the order added."""
        return [m.name for m in self.metrics]

    # ---- shared planning ------------------------------------------------------------------------

    def _keys(self, rec_cols: Sequence[str], truth_cols: Sequence[str]) -> _Keys:
        """The key columns of :meth:`compute` (see :class:`_Keys`), after checking the frames' columns."""
        if not self.metrics:
            raise ValueError("no metrics: call add_metric first")
        for col, where, cols in (
            (self.item_column, "recommendations", rec_cols),
            (self.rank_column, "recommendations", rec_cols),
            (self.item_column, "truth", truth_cols),
        ):
            if col not in cols:
                raise ValueError(f"the {where} have no {col!r} column (columns: {list(cols)})")
        for gain in {m.gain for m in self.metrics} - {None}:
            if gain not in truth_cols:
                raise ValueError(
                    f"gain column {gain!r} is not in the truth frame (columns: {list(truth_cols)})"
                )
        skip = {*self.DEFAULT_SKIP_COLS, self.item_column, self.rank_column}
        group = self.group_cols if self.group_cols is not None else [c for c in rec_cols if c not in skip]
        absent = [c for c in group if c not in rec_cols]
        if absent:
            raise ValueError(f"group columns {absent} are not in the recommendations")
        truth = [c for c in group if c in truth_cols]
        if not truth:
            raise ValueError(f"none of the group columns {group} is in the truth frame; cannot match lists")
        only_recs = [c for c in group if c not in truth_cols]
        shared = [c for c in truth if c != self.user_column] if self.user_column in truth else []
        context = only_recs + shared if only_recs else []
        return _Keys(rec=only_recs + truth, truth=truth, context=context, shared=shared)

    def _gains(self) -> list[str | None]:
        return list(dict.fromkeys(m.gain for m in self.metrics if m.kind in ranking.DISCOUNTS))

    def _cuts(self) -> list[int | None]:
        return list(dict.fromkeys(m.k for m in self.metrics if m.kind not in ranking.DISCOUNTS))

    def _ndcg_cuts(self) -> list[tuple[str, int | None, str | None]]:
        """The distinct (nDCG metric, k, gain) of the metrics."""
        return list(dict.fromkeys((m.kind, m.k, m.gain) for m in self.metrics if m.kind in ranking.DISCOUNTS))

    @staticmethod
    def _metric(m: TopNMetric, stat, nrecs, ntruth, ops: ranking.Ops):
        """Metric ``m`` of every list (arrays or Spark columns, by ``ops``) from the lists' statistics:
        ``stat(name, fill)`` reads one, ``fill`` standing in for a list without recommendations (``None``:
        left missing)."""
        if m.kind in ranking.DISCOUNTS:
            dcg = stat(_stat(f"dcg_{m.kind}", m.k, m.gain), 0.0)
            return ranking.ndcg(dcg, stat(_stat(f"ideal_{m.kind}", m.k, m.gain), None), ops)
        hits = stat(_stat("hits", m.k), 0.0)
        if m.kind == "precision":
            return ranking.precision(hits, nrecs, m.k, ops)
        if m.kind == "recall":
            return ranking.recall(hits, ntruth, m.k, ops)
        if m.kind == "hit":
            return ranking.hit(hits, ops)
        return ranking.reciprocal_rank(stat(_stat("first", m.k), None), ops)

    # ---- entry points ---------------------------------------------------------------------------

    def compute(self, recs, truth, include_missing: bool = True):
        """Per-list metrics of ``recs`` (``group_cols, item, rank``) against ``truth`` (``user, item``
        and the gain columns). Both pandas -> pandas; a Spark side -> Spark (a pandas side is converted
        with ``createDataFrame``).

        Returns one row per list: the group columns, ``nrecs`` (list length), ``ntruth`` (test items) and one
        column per metric (unlike LensKit's, a pandas result is not indexed by the group columns).
        ``include_missing=True`` (the default here; LensKit's is ``False``) gives every test list a row,
        scoring 0 where there are no recommendations: each combination of the rec-only group columns (each
        run) is padded with the test users of the truth contexts (``DataSet``, ``Partition``) it has lists for
        (LensKit 0.14 pads each run with all test users). ``False`` keeps only lists with both
        recommendations and test items. Recommendation lists without test items are never scored.
        """
        is_spark = isinstance(recs, SparkDataFrame), isinstance(truth, SparkDataFrame)
        if any(is_spark):
            if not is_spark[0]:
                recs = truth.sparkSession.createDataFrame(recs)
            if not is_spark[1]:
                truth = recs.sparkSession.createDataFrame(truth)
            return self._compute_spark(recs, truth, include_missing)
        if not isinstance(recs, pd.DataFrame) or not isinstance(truth, pd.DataFrame):
            raise TypeError("recs and truth must be pandas or Spark DataFrames")
        return self._compute_pandas(recs, truth, include_missing)

    def beyond_accuracy(self, recs, train, k: int, item_vectors: pd.DataFrame | None = None) -> pd.DataFrame:
        """The beyond-accuracy metrics at ``k`` (:func:`~spark_recs.evaluation.beyond.beyond_accuracy`:
        coverage, Gini, novelty, popularity, personalisation; diversity given ``item_vectors``) of the
        lists in ``recs`` (pandas or Spark) against ``train``, the interactions they were made from: one
        row per combination of the group columns other than the user column (each run: ``RunId``), in
        sorted order; one row when there are none."""
        from .beyond import beyond_accuracy

        skip = {*self.DEFAULT_SKIP_COLS, self.item_column, self.rank_column, self.user_column}
        group = self.group_cols if self.group_cols is not None else [c for c in recs.columns if c not in skip]
        context = [c for c in group if c != self.user_column]
        names = {"user": self.user_column, "item": self.item_column, "rank": self.rank_column}

        def measured(lists) -> dict[str, float]:
            return beyond_accuracy(lists, train, k, item_vectors=item_vectors, **names)

        if not context:
            return pd.DataFrame([measured(recs)])
        if isinstance(recs, SparkDataFrame):
            keys = collect_columns(recs.select(*context).distinct(), context)
        else:
            keys = recs[context].drop_duplicates()
        rows = []
        for values in keys.sort_values(context).itertuples(index=False):
            chosen = dict(zip(context, values))
            if isinstance(recs, SparkDataFrame):
                lists = recs.where(
                    functools.reduce(operator.and_, [F.col(c) == v for c, v in chosen.items()])
                )
            else:
                lists = recs.loc[(recs[context] == pd.Series(chosen)).all(axis=1)]
            rows.append(chosen | measured(lists))
        return pd.DataFrame(rows)

    def summary(self, per_list) -> dict[str, float]:
        """The mean of every metric column of a :meth:`compute` result (pandas or Spark), over all its rows:
        filter or group a multi-run result first to get one summary per run."""
        names = self.metric_names
        if isinstance(per_list, SparkDataFrame):
            row = per_list.agg(*[ordered_mean(F.col(f"`{n}`")).alias(n) for n in names]).first()
            return {n: float("nan") if row[n] is None else float(row[n]) for n in names}
        return {n: float(per_list[n].mean()) for n in names}

    # ---- pandas ---------------------------------------------------------------------------------

    def _compute_pandas(self, recs: pd.DataFrame, truth: pd.DataFrame, include_missing: bool) -> pd.DataFrame:
        keys = self._keys(list(recs.columns), list(truth.columns))
        item, rank = self.item_column, self.rank_column
        gain_cols = [g for g in self._gains() if g is not None]
        test = truth[keys.truth + [item] + gain_cols].copy()
        for g in gain_cols:
            test[g] = test[g].astype(np.float64).fillna(0.0)

        # Per test list: size and ideal DCGs (test gains sorted descending, discounted, cut at k).
        truth_stats = test.groupby(keys.truth, sort=False).size().rename("ntruth").to_frame()
        for g in self._gains():
            values = 1.0 if g is None else test[g]
            order = test[keys.truth + [item]].assign(__g=values)
            order = order.sort_values(
                keys.truth + ["__g", item], ascending=[True] * len(keys.truth) + [False, True], kind="stable"
            )
            position = (order.groupby(keys.truth, sort=False).cumcount() + 1).to_numpy()
            ideal = order[keys.truth].copy()
            for metric, k, gain in self._ndcg_cuts():
                if gain == g:
                    weighted = ranking.discounted(order["__g"].to_numpy(), position, metric)
                    ideal[_stat(f"ideal_{metric}", k, g)] = (
                        weighted if k is None else np.where(position <= k, weighted, 0.0)
                    )
            truth_stats = truth_stats.join(ideal.groupby(keys.truth, sort=False).sum())
        truth_stats = truth_stats.reset_index()

        # Per recommendation list: length, and per cut-off the hit count, first hit rank and DCG.
        joined = recs[keys.rec + [item, rank]].merge(
            test.assign(__hit=True), on=keys.truth + [item], how="left"
        )
        ranks = joined[rank].to_numpy(dtype=np.float64)
        found = joined["__hit"].notna().to_numpy()
        stats = joined[keys.rec].assign(nrecs=1)
        for k in self._cuts():
            within = found if k is None else found & (ranks <= k)
            stats[_stat("hits", k)] = within.astype(np.int64)
            stats[_stat("first", k)] = np.where(within, ranks, np.nan)
        for metric, k, g in self._ndcg_cuts():
            within = found if k is None else found & (ranks <= k)
            gains = np.ones(len(joined)) if g is None else joined[g].to_numpy(dtype=np.float64)
            stats[_stat(f"dcg_{metric}", k, g)] = np.where(
                within, ranking.discounted(gains, ranks, metric), 0.0
            )
        how = {c: "min" if c.startswith("__first") else "sum" for c in stats.columns if c not in keys.rec}
        rec_stats = stats.groupby(keys.rec, sort=False).agg(how).reset_index()

        if not include_missing:
            lists = rec_stats.merge(truth_stats, on=keys.truth, how="inner")
        else:
            base = truth_stats
            if keys.context:
                combos = recs[keys.context].drop_duplicates()
                base = combos.merge(base, on=keys.shared) if keys.shared else combos.merge(base, how="cross")
            lists = base.merge(rec_stats, on=keys.rec, how="left")
        lists = lists.sort_values(keys.rec, kind="stable").reset_index(drop=True)

        out = lists[keys.rec].copy()
        out["nrecs"] = lists["nrecs"].fillna(0).astype(np.int64)
        out["ntruth"] = lists["ntruth"].astype(np.int64)

        def stat(name: str, fill):
            values = lists[name] if fill is None else lists[name].fillna(fill)
            return values.to_numpy(dtype=np.float64)

        nrecs, ntruth = out["nrecs"].to_numpy(), out["ntruth"].to_numpy()
        for m in self.metrics:
            out[m.name] = self._metric(m, stat, nrecs, ntruth, ranking.NUMPY)
        return out

    # ---- Spark ----------------------------------------------------------------------------------

    def _compute_spark(
        self, recs: SparkDataFrame, truth: SparkDataFrame, include_missing: bool
    ) -> SparkDataFrame:
        keys = self._keys(recs.columns, truth.columns)
        item, rank = self.item_column, self.rank_column
        gain_cols = [g for g in self._gains() if g is not None]
        gains = [F.coalesce(F.col(g).cast("double"), F.lit(0.0)).alias(g) for g in gain_cols]
        test = truth.select(*keys.truth, item, *gains, F.lit(True).alias("__hit"))

        # Per test list: size and ideal DCGs, ranking the gains with a window (gain desc, item asc).
        positions, ideal_aggs = [], []
        for i, g in enumerate(self._gains()):
            order = [F.col(item).asc()] if g is None else [F.col(g).desc(), F.col(item).asc()]
            window = Window.partitionBy(*keys.truth).orderBy(*order)
            positions.append(F.row_number().over(window).alias(f"__pos{i}"))
            position = F.col(f"__pos{i}")
            for metric, k, gain in self._ndcg_cuts():
                if gain == g:
                    weighted = ranking.discounted(
                        F.lit(1.0) if g is None else F.col(g), position, metric, SPARK
                    )
                    term = weighted if k is None else F.when(position <= k, weighted).otherwise(0.0)
                    ideal_aggs.append(ordered_sum(term).alias(_stat(f"ideal_{metric}", k, g)))
        ranked = test.select("*", *positions) if positions else test
        truth_stats = ranked.groupBy(*keys.truth).agg(F.count(F.lit(1)).alias("ntruth"), *ideal_aggs)

        # Per recommendation list: one left join to the test items, one aggregation.
        ranks = recs.select(*keys.rec, item, F.col(rank).cast("double").alias("__rank"))
        joined = ranks.join(test, on=[*keys.truth, item], how="left")
        r = F.col("__rank")
        found = F.col("__hit").isNotNull()
        rec_aggs = [F.count(F.lit(1)).alias("nrecs")]
        for k in self._cuts():
            within = found if k is None else found & (r <= k)
            rec_aggs.append(F.sum(F.when(within, 1).otherwise(0)).alias(_stat("hits", k)))
            rec_aggs.append(F.min(F.when(within, r)).alias(_stat("first", k)))
        for metric, k, g in self._ndcg_cuts():
            within = found if k is None else found & (r <= k)
            term = ranking.discounted(F.lit(1.0) if g is None else F.col(g), r, metric, SPARK)
            rec_aggs.append(
                ordered_sum(F.when(within, term).otherwise(0.0)).alias(_stat(f"dcg_{metric}", k, g))
            )
        rec_stats = joined.groupBy(*keys.rec).agg(*rec_aggs)

        if not include_missing:
            lists = rec_stats.join(truth_stats, on=keys.truth, how="inner")
        else:
            base = truth_stats
            if keys.context:
                combos = recs.select(*keys.context).distinct()
                base = combos.join(base, on=keys.shared) if keys.shared else combos.crossJoin(base)
            lists = base.join(rec_stats, on=keys.rec, how="left")

        nrecs = F.coalesce(F.col("nrecs"), F.lit(0)).cast("long")
        ntruth = F.col("ntruth").cast("long")

        def stat(name: str, fill):
            return F.col(name) if fill is None else F.coalesce(F.col(name), F.lit(fill))

        return lists.select(
            *keys.rec,
            nrecs.alias("nrecs"),
            ntruth.alias("ntruth"),
            *[self._metric(m, stat, nrecs, ntruth, SPARK).alias(m.name) for m in self.metrics],
        )
