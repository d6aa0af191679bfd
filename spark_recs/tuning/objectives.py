"""What a trial trains and scores, inside its Spark task: the model's data is read there, by location.

Each objective is a picklable callable ``objective(params, report) -> value`` (:mod:`.trials`) that
holds the Parquet locations of the train and validation data (:func:`.search.task_inputs`), never the
data, and never the test split: ``inputs`` lists everything it reads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd

from spark_recs.core.params import ConfigError

from .study import ERROR_METRICS, RANKING_METRICS
from .trials import Report

#: The metrics GRU4Rec's session evaluation gives, at a cutoff.
SESSION_METRICS = ("recall", "mrr")


@functools.lru_cache(maxsize=2)
def read_input(path: str) -> pd.DataFrame:
    """A trial's input, read once per Python worker (the worker runs the study's later trials too)."""
    return pd.read_parquet(path)


def session_metric(metric: str) -> tuple[str, int]:
    """``(name, cutoff)`` of a GRU4Rec search metric (``recall@20``, ``mrr@20``)."""
    name, _, cutoff = metric.lower().partition("@")
    if name not in SESSION_METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise ConfigError(
            f"tune.metric: GRU4Rec is scored with {[f'{m}@N' for m in SESSION_METRICS]}, not {metric!r}"
        )
    return name, int(cutoff)


@dataclass(frozen=True)
class GRU4RecObjective:
    """GRU4Rec with the config's ``model`` section and a trial's parameters, trained on the train
    sessions and scored on the validation sessions after every epoch; the value is the last epoch's."""

    train: str
    valid: str
    model: dict
    training: dict
    evaluation: dict
    keys: dict
    metric: str

    @property
    def inputs(self) -> list[str]:
        return [self.train, self.valid]

    def __call__(self, params: dict, report: Report) -> float:
        from spark_recs.evaluation.sessions import evaluate_sessions
        from spark_recs.models.gru4rec import GRU4Rec

        name, cutoff = session_metric(self.metric)
        evaluation = self.evaluation | {"cutoff": sorted({*self.evaluation["cutoff"], cutoff})}
        train, valid = read_input(self.train), read_input(self.valid)
        values = []

        def score(epoch: int, model: GRU4Rec) -> None:
            with model.evaluating():
                result = evaluate_sessions(model, valid, **evaluation, **self.keys)
            metrics = {
                "train_loss": model.history_[-1]["loss"],
                "epoch_seconds": model.history_[-1]["seconds"],
            }
            for c in result.recall:
                metrics[f"valid_recall@{c}"] = result.recall[c]
                metrics[f"valid_mrr@{c}"] = result.mrr[c]
            values.append(getattr(result, name)[cutoff])
            report(epoch, values[-1], metrics)

        model = GRU4Rec(**(self.model | params))
        model.fit(train, **self.training, **self.keys, epoch_callback=score, progress_every=None)
        return values[-1]


@dataclass(frozen=True)
class UserModelObjective:
    """A user model (``Popular``, ``Bias``, ``BiasedMF``, ``ImplicitMF``, ``ItemKNN``, ...: ``model``, a
    class) with the ``fixed`` parameters and a trial's, fitted on the train ratings and scored on the
    held-out ratings of the validation users (:func:`user_model_score`)."""

    train: str
    valid: str
    model: type
    fixed: dict
    metric: str
    n: int = 100

    @property
    def inputs(self) -> list[str]:
        return [self.train, self.valid]

    def __call__(self, params: dict, report: Report) -> float:
        fitted = self.model(**(self.fixed | params)).fit(read_input(self.train))
        return user_model_score(fitted, read_input(self.valid), self.metric, self.n)


def user_model_score(model, truth: pd.DataFrame, metric: str, n: int) -> float:
    """``metric`` of a fitted user model on held-out ``truth`` (``user, item, rating``): a top-N metric
    (``ndcg@10``, ``recall@20``, ...) of its ``n``-item lists for the truth's users, every user counted
    (none recommended: 0), as MultiEval measures; or the ``rmse``/``mae`` of its predictions of the
    truth's ratings (pairs it cannot predict left out)."""
    from spark_recs.evaluation.accuracy import RecListAnalysis, mae, rmse
    from spark_recs.models.topn import recommend_frame

    name, _, cutoff = metric.lower().partition("@")
    if name in ERROR_METRICS:
        if not model.predicts_ratings:
            raise ConfigError(f"tune.metric {metric}: {type(model).__name__} does not predict ratings")
        users = model.user_vocab.indices(truth["user"].to_numpy())
        predictions = model.predict_pairs(users, model.item_vocab.indices(truth["item"].to_numpy()))
        error = rmse if name == "rmse" else mae
        return error(predictions, truth["rating"].to_numpy(dtype="float64"), missing="ignore")
    recs = recommend_frame(model, truth["user"].unique(), n)
    analysis = RecListAnalysis(["user"])
    analysis.add_metric("recip_rank" if name == "mrr" else name, int(cutoff))
    return analysis.summary(analysis.compute(recs, truth[["user", "item"]]))[analysis.metric_names[0]]


def check_user_metric(metric: str, n: int, model: type) -> None:
    """A user-model search metric: a top-N metric at a cutoff no longer than the lists, or an error of a
    model class that predicts ratings (one whose ``predicts_ratings`` depends on its parameters, as
    ItemKNN's, is checked by the trial)."""
    name, _, cutoff = metric.lower().partition("@")
    if name in ERROR_METRICS and not cutoff:
        if getattr(model, "predicts_ratings", False) is False:
            raise ConfigError(
                f"tune.metric {metric}: {model.__name__} does not predict ratings; use ndcg@10, ..."
            )
        return
    if name not in RANKING_METRICS or not cutoff.isdigit() or not 1 <= int(cutoff) <= n:
        raise ConfigError(
            f"tune.metric: a user model is scored with rmse, mae or one of {list(RANKING_METRICS)} at a "
            f"cutoff in [1, evaluation.recommend = {n}], not {metric!r}"
        )
