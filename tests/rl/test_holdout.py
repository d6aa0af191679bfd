"""Next-item holdout evaluation: hand-built split, exact ranks, metrics and catalogue mapping."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from spark_recs.models.popular import Popular
from spark_recs.models.vocabulary import Vocabulary
from spark_recs.rl.holdout import in_catalogue, next_item_holdout, ranking_metrics, user_model_scores

# User 1: items 10, 11, 12, 13 by time -> train 10, 11; valid 12; test 13.
# User 2: 13 and 10 share a time (ties by item: 10 before 13), then 14 -> train 10; valid 13; test 14.
# User 3: two rows only (< min_rows 3): all training, not a test user.
ROWS = [
    (1, 10, 4.0, 1),
    (1, 11, 3.0, 2),
    (1, 12, 5.0, 3),
    (1, 13, 2.0, 4),
    (2, 13, 1.0, 7),
    (2, 10, 4.0, 7),
    (2, 14, 5.0, 9),
    (3, 11, 3.0, 1),
    (3, 12, 3.0, 2),
]


@pytest.fixture
def holdout(spark):
    frame = pd.DataFrame(ROWS, columns=["user", "item", "rating", "timestamp"])
    return next_item_holdout(spark.createDataFrame(frame))


def test_split_prefixes_and_targets(holdout):
    assert holdout.catalogue.ids.tolist() == [10, 11, 12]  # training rows only: 13 and 14 are not there
    assert holdout.users.tolist() == [1, 2]
    # Prefixes are train + validation in time order, restricted to the catalogue.
    assert [holdout.catalogue.ids[p].tolist() for p in holdout.prefixes] == [[10, 11, 12], [10]]
    assert holdout.prefix_ratings[0].tolist() == [4.0, 3.0, 5.0]
    assert holdout.targets.tolist() == [-1, -1]
    assert sorted(holdout.train["user"].tolist()) == [1, 1, 2, 3, 3]


def _toy(targets, prefixes, n_items=6):
    from spark_recs.rl.holdout import NextItemHoldout

    # Catalogue item i * 10 has the training users 0..i.
    users = [u for i in range(n_items) for u in range(i + 1)]
    items = [i * 10 for i in range(n_items) for _ in range(i + 1)]
    return NextItemHoldout(
        train=pd.DataFrame({"user": users, "item": items}),
        catalogue=Vocabulary(np.arange(n_items) * 10),
        users=np.arange(len(targets)),
        prefixes=[np.array(p, dtype=np.int64) for p in prefixes],
        prefix_ratings=[np.ones(len(p), np.float32) for p in prefixes],
        targets=np.array(targets),
    )


def test_exact_ranks_with_ties_seen_items_and_unknown_targets():
    holdout = _toy(targets=[3, 4, -1], prefixes=[[0], [1, 2], []])
    scores = torch.tensor(
        [
            [9.0, 5.0, 7.0, 5.0, 1.0, 0.0],  # item 0 seen; 2 above, 1 tied at a lower index -> rank 3
            [0.0, 9.0, 9.0, 2.0, 2.0, float("nan")],  # 1, 2 seen; 3 tied lower -> rank 2; NaN never ranks
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # target not in the catalogue: a miss
        ]
    )
    got = ranking_metrics(scores, holdout, k=2)
    assert got["hr@2"] == pytest.approx(1 / 3)
    assert got["ndcg_log2p1@2"] == pytest.approx((1 / math.log2(3)) / 3)  # discount log2(rank + 1)
    assert "ndcg@2" not in got  # LensKit's discount would give 1/3: the name tells them apart
    assert got["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 3)
    # Top-2 lists: user 0 -> 2, 1; user 1 -> 3, 4; user 2 -> 5, 4  => items {1, 2, 3, 4, 5} of 6.
    assert got["coverage@2"] == pytest.approx(5 / 6)
    # Exposures 0, 1, 1, 1, 1, 2 (item 40 twice); training users 2, 3, 4, 5, 6, 5 of 6 for the six picks.
    assert got["gini@2"] == pytest.approx((-3 - 1 + 1 + 3 + 5 * 2) / (6 * 6))
    assert got["personalisation@2"] == pytest.approx(1 - 2 / (3 * 2 * 2))
    assert got["popularity@2"] == pytest.approx((3 + 2 + 4 + 5 + 6 + 5) / 6)
    picks = np.array([3, 2, 4, 5, 6, 5]) / 6
    assert got["novelty@2"] == pytest.approx(-np.log2(picks).mean())
    assert got["users"] == 3 and got["unknown_targets"] == 1
    assert "diversity@2" not in got  # only given item vectors

    vectors = pd.DataFrame({"item": [10, 20, 30, 40, 50], "vector": [[1, 0], [0, 1], [1, 1], [1, 0], [0, 1]]})
    # Lists (20, 10), (30, 40), (50, 40): cosine distances 1, 1 - 1/sqrt(2), 1.
    diversity = ranking_metrics(scores, holdout, k=2, item_vectors=vectors)["diversity@2"]
    assert diversity == pytest.approx((3 - 1 / math.sqrt(2)) / 3)


def test_model_items_are_laid_out_over_the_catalogue():
    holdout = _toy(targets=[0], prefixes=[[]], n_items=3)  # catalogue 0, 10, 20
    scores = torch.tensor([[1.0, 2.0, 3.0]])
    got = in_catalogue(scores, Vocabulary([20, 5, 0]), holdout)
    assert got[0, 0] == 3.0 and got[0, 2] == 1.0 and torch.isnan(got[0, 1])


def test_popular_on_the_holdout(spark):
    rng = np.random.default_rng(0)
    rows = [(u, int(i), 3.0, t) for u in range(30) for t, i in enumerate(rng.choice(20, 8, replace=False))]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    holdout = next_item_holdout(spark.createDataFrame(frame))
    assert (holdout.targets >= 0).all()
    model = Popular().fit(holdout.train)
    got = ranking_metrics(user_model_scores(model, holdout), holdout, k=10)
    # Independent check: rank each target among unseen items by training count (ties: lower id first).
    counts = holdout.train["item"].value_counts()
    hits = 0
    for prefix, target in zip(holdout.prefixes, holdout.targets):
        seen = set(holdout.catalogue.ids[prefix])
        order = sorted((i for i in counts.index if i not in seen), key=lambda i: (-counts[i], i))
        hits += holdout.catalogue.ids[target] in order[:10]
    assert got["hr@10"] == pytest.approx(hits / 30)
