"""Next-item evaluation on a per-user temporal holdout, the same for RL actors and their baselines.

Per user (time order, ties by item): the last rating is the test target, the one before it the
validation target, the rest training data (:func:`spark_recs.data.split.temporal_holdout`). Every model
ranks the whole catalogue (the items of the training rows) for each test user after seeing the user's
prefix (training rows + the validation row); the prefix's items are excluded. The rank of the target is
exact, with ties in the order :func:`~spark_recs.models.topn.top_k` lists them in (the ``ordinal`` tie mode
of :mod:`spark_recs.core.ranking`), so HR@k, nDCG@k and MRR need no list cut-off. The nDCG is
``ndcg_log2p1@k`` (discount log2(rank + 1), not LensKit's). A target the catalogue does not hold is a miss
for every model (counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from spark_recs.core.ranking import RankCounts, target_ranks
from spark_recs.models.topn import top_k
from spark_recs.models.vocabulary import Vocabulary


@dataclass
class NextItemHoldout:
    """Training rows, and per test user the prefix and target in one catalogue index space."""

    train: pd.DataFrame  # user, item, rating, timestamp
    catalogue: Vocabulary  # the items of ``train``
    users: np.ndarray  # raw ids of the test users
    prefixes: list[np.ndarray]  # per test user: catalogue indices of train + validation rows, time order
    prefix_ratings: list[np.ndarray]
    targets: np.ndarray  # catalogue index of each test item, -1 when the catalogue lacks it

    @property
    def prefix_frame(self) -> pd.DataFrame:
        """The prefixes as ``user, item, rating, position`` rows (raw ids)."""
        lengths = [len(p) for p in self.prefixes]
        return pd.DataFrame(
            {
                "user": np.repeat(self.users, lengths),
                "item": self.catalogue.ids[np.concatenate(self.prefixes)],
                "rating": np.concatenate(self.prefix_ratings),
                "position": np.concatenate([np.arange(n) for n in lengths]),
            }
        )


def next_item_holdout(ratings, *, min_rows: int = 3) -> NextItemHoldout:
    """Split ``ratings`` (Spark DataFrame ``user, item, rating, timestamp``) per user by time.

    Users with fewer than ``min_rows`` ratings stay wholly in training and are not test users.
    """
    from spark_recs.data.split import temporal_holdout

    train, valid, test = (part.toPandas() for part in temporal_holdout(ratings, min_rows=min_rows))
    return holdout_of_rows(train, pd.concat([train, valid]), test)


def holdout_of_rows(train: pd.DataFrame, history: pd.DataFrame, test: pd.DataFrame) -> NextItemHoldout:
    """The holdout of pandas rows (``user, item, rating, timestamp``): the catalogue of ``train``, and per
    ``test`` user its ``history`` rows in time order as the prefix and its ``test`` item as the target."""
    catalogue = Vocabulary.fit(train["item"])
    history = history.sort_values(["user", "timestamp", "item"], kind="stable")
    test = test.sort_values("user")
    by_user = {u: rows for u, rows in history.groupby("user", sort=False)}
    prefixes, prefix_ratings = [], []
    for user in test["user"]:
        rows = by_user[user]
        known = catalogue.indices(rows["item"].to_numpy())
        prefixes.append(known[known >= 0])
        prefix_ratings.append(rows["rating"].to_numpy(dtype=np.float32)[known >= 0])
    return NextItemHoldout(
        train=train.reset_index(drop=True),
        catalogue=catalogue,
        users=test["user"].to_numpy(),
        prefixes=prefixes,
        prefix_ratings=prefix_ratings,
        targets=catalogue.indices(test["item"].to_numpy()),
    )


def in_catalogue(scores: torch.Tensor, model_items: Vocabulary, holdout: NextItemHoldout) -> torch.Tensor:
    """A model's ``(users, its items)`` scores laid out over the holdout's catalogue (NaN where it has none)."""
    out = torch.full((scores.shape[0], len(holdout.catalogue)), float("nan"), dtype=torch.float32)
    where = holdout.catalogue.indices(model_items.ids)
    known = torch.from_numpy(where >= 0)
    out[:, torch.from_numpy(where[where >= 0])] = scores[:, known].float()
    return out


def ranking_metrics(
    scores: torch.Tensor, holdout: NextItemHoldout, k: int = 10, item_vectors: pd.DataFrame | None = None
) -> dict[str, float]:
    """``hr@k``, ``ndcg_log2p1@k``, ``mrr`` (full ranking) and, of the top-``k`` lists against the
    training rows, ``coverage@k``, ``gini@k``, ``novelty@k``, ``popularity@k``, ``personalisation@k`` and,
    given ``item_vectors`` (``item, vector``), ``diversity@k``
    (:func:`~spark_recs.evaluation.beyond.beyond_accuracy`) of ``(test users, catalogue)`` scores.

    NaN scores and the users' prefix items are never recommended.
    """
    from spark_recs.evaluation.beyond import beyond_accuracy

    scores = scores.clone().float()
    n_users, n_items = scores.shape
    rows = np.repeat(np.arange(n_users), [len(p) for p in holdout.prefixes])
    scores[torch.from_numpy(rows), torch.from_numpy(np.concatenate(holdout.prefixes))] = float("-inf")
    scores[scores.isnan()] = float("-inf")
    targets = torch.from_numpy(holdout.targets)
    ranks = target_ranks(scores, targets.clamp(min=0), "ordinal")
    ranks[targets < 0] = float("inf")
    counts = RankCounts(max(n_items, k)).add(ranks)
    best, values = top_k(scores, k)
    row, position = np.nonzero(torch.isfinite(values).numpy())
    lists = pd.DataFrame(
        {
            "user": holdout.users[row],
            "item": holdout.catalogue.ids[best.numpy()[row, position]],
            "rank": position + 1,
        }
    )
    return {
        f"hr@{k}": counts.recall(k),
        f"ndcg_log2p1@{k}": counts.ndcg(k, "ndcg_log2p1"),
        "mrr": counts.mrr(n_items),
        **beyond_accuracy(lists, holdout.train, k, item_vectors=item_vectors),
        "users": n_users,
        "unknown_targets": int((targets < 0).sum()),
    }


def user_model_scores(model, holdout: NextItemHoldout) -> torch.Tensor:
    """Scores of a fitted user model (:class:`~spark_recs.models.base.Recommender`) for the test users."""
    scores = model.score_users(model.user_vocab.indices(holdout.users))
    return in_catalogue(scores, model.item_vocab, holdout)


def session_model_scores(model, holdout: NextItemHoldout) -> torch.Tensor:
    """Scores of a fitted session model (e.g. GRU4Rec) after each test user's prefix, read as a session."""
    sessions = []
    for prefix in holdout.prefixes:
        indices = model.item_vocab.indices(holdout.catalogue.ids[prefix])
        sessions.append(indices[indices >= 0])
    return in_catalogue(model.score_sessions(sessions), model.item_vocab, holdout)
