"""The ranking core by hand: every tie mode, unranked targets, exact rank counts and their merging, and each
metric formula with both nDCG discounts."""

import math

import numpy as np
import pytest
import torch

from spark_recs.core import ranking
from spark_recs.core.ranking import RankCounts, target_ranks

LOG2_3, LOG2_5 = math.log2(3), math.log2(5)

# Row 0: target (col 0) ties with col 2 at the top. Row 1: target (col 3) has two items above, none equal.
# Row 2: target (col 1) ties with two others below one higher item.
# Row 3: target (col 3) ties with cols 1 and 2 (lower indices) at the top, above col 0.
SCORES = torch.tensor(
    [[3.0, 1.0, 3.0, 2.0], [3.0, 1.0, 3.0, 2.0], [5.0, 1.0, 1.0, 1.0], [1.0, 2.0, 2.0, 2.0]]
)
TARGETS = torch.tensor([0, 3, 1, 3])


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("standard", [1, 3, 2, 1]),
        ("conservative", [2, 3, 4, 3]),
        ("median", [1.5, 3, 3, 2]),
        ("ordinal", [1, 3, 2, 3]),  # ties before the target: those at a lower column index
    ],
)
def test_rank_modes_by_hand(mode, expected):
    assert target_ranks(SCORES, TARGETS, mode).tolist() == expected


def test_ordinal_rank_is_the_place_in_an_exact_top_k():
    from spark_recs.models.topn import top_k

    scores = torch.tensor(np.random.default_rng(0).integers(0, 4, (50, 9)), dtype=torch.float32)
    places = torch.argsort(top_k(scores, 9)[0], dim=1) + 1  # places[row, item]: where top_k lists the item
    for target in range(9):
        ranks = target_ranks(scores, torch.full((50,), target), "ordinal")
        assert ranks.tolist() == places[:, target].double().tolist()


def test_unknown_rank_mode_is_refused():
    with pytest.raises(ValueError, match="rank mode"):
        target_ranks(SCORES, TARGETS, "optimistic")


@pytest.mark.parametrize("mode", ranking.TIE_MODES)
def test_a_target_without_a_score_or_excluded_is_a_miss(mode):
    # Before: a NaN target compared false everywhere (conservative rank 0, counted as a hit at every cut-off).
    scores = torch.tensor([[float("nan"), 1.0, 2.0], [float("-inf"), float("-inf"), 2.0], [0.0, 1.0, 2.0]])
    ranks = target_ranks(scores, torch.tensor([0, 0, 1]), mode)
    assert ranks[:2].tolist() == [math.inf, math.inf] and ranks[2] == 2
    counts = RankCounts(3).add(ranks)
    assert (
        counts.n == 3 and counts.recall(3) == pytest.approx(1 / 3) and counts.mrr(3) == pytest.approx(1 / 6)
    )


def test_recall_and_mrr_count_ranks_up_to_and_including_the_cutoff():
    counts = RankCounts(max_cutoff=5).add([1, 2, 2.5, 5, 6, 40])
    assert counts.recall(5) == pytest.approx(4 / 6)
    assert counts.mrr(5) == pytest.approx((1 + 1 / 2 + 1 / 2.5 + 1 / 5) / 6)
    assert counts.recall(1) == pytest.approx(1 / 6) and counts.mrr(1) == pytest.approx(1 / 6)
    assert RankCounts(3).recall(3) == 0.0


def test_infinite_ranks_are_misses_and_weights_count_targets():
    # Before: inf became a negative integer and np.bincount refused it.
    counts = RankCounts(4).add([1, math.inf, 3], times=[2, 5, 1])
    assert counts.n == 8 and counts.counts.sum() == 3
    assert counts.recall(4) == 3 / 8 and counts.mrr(4) == pytest.approx((2 + 1 / 3) / 8)


def test_ndcg_of_one_target_with_both_discounts():
    counts = RankCounts(3).add([1, 2, 3, math.inf])
    # LensKit: 1 / max(1, log2 r): ranks 1 and 2 both weigh 1.  Textbook: 1 / log2(r + 1).
    assert counts.ndcg(3) == pytest.approx((1 + 1 + 1 / LOG2_3) / 4)
    assert counts.ndcg(3, "ndcg_log2p1") == pytest.approx((1 + 1 / LOG2_3 + 1 / 2) / 4)
    assert counts.ndcg(1, "ndcg_log2p1") == counts.ndcg(1) == 1 / 4


def test_a_cutoff_beyond_the_counted_ranks_is_refused():
    with pytest.raises(ValueError, match="beyond the counted ranks"):
        RankCounts(5).recall(6)


def test_merged_shards_give_exactly_the_whole():
    ranks = np.random.default_rng(0).integers(1, 60, size=1001) / 2 + 0.5
    whole = RankCounts(20).add(ranks)
    shards = [RankCounts(20).add(part) for part in np.array_split(ranks, 7)]
    merged = shards[0]
    for shard in shards[1:]:
        merged = merged.merge(shard)
    assert merged.recall(20) == whole.recall(20) and merged.mrr(20) == whole.mrr(20) and merged.n == 1001
    assert merged.ndcg(20) == whole.ndcg(20) and merged.ndcg(20, "ndcg_log2p1") == whole.ndcg(
        20, "ndcg_log2p1"
    )
    # Any order of merging, and an empty shard, give the same integers.
    backwards = RankCounts(20)
    for shard in shards[::-1]:
        backwards = shard.merge(backwards)
    np.testing.assert_array_equal(backwards.counts, whole.counts)
    np.testing.assert_array_equal(whole.merge(RankCounts(20)).counts, whole.counts)
    with pytest.raises(ValueError, match="different max_cutoff"):
        whole.merge(RankCounts(10))


def test_list_metric_formulas_by_hand():
    # Three lists at k = 2: hits 1, 0, 2 of test sizes 3, 1, 2; list lengths 4, 0, 2; first hits at 2, -, 1.
    hits, n_recs, n_truth = np.array([1, 0, 2]), np.array([4, 0, 2]), np.array([3, 1, 2])
    assert ranking.precision(hits, n_recs, 2).tolist() == [0.5, 0, 1]
    assert ranking.precision(hits, n_recs).tolist() == [0.25, 0, 1]  # an empty list scores 0, not NaN
    assert ranking.recall(hits, n_truth, 2).tolist() == [0.5, 0, 1]
    assert ranking.recall(hits, n_truth).tolist() == [1 / 3, 0, 1]
    assert math.isnan(ranking.recall(0, 0))
    assert ranking.hit(hits).tolist() == [1, 0, 1]
    assert ranking.reciprocal_rank(np.array([2, np.nan, 1])).tolist() == [0.5, 0, 1]
    assert ranking.ndcg(np.array([0.5, 0.0]), np.array([2.0, 0.0])).tolist() == [0.25, 0]


@pytest.mark.parametrize(
    "metric, dcg, ideal",
    [
        # Hits at ranks 2 and 4 with gains 3 and 5; test gains 5, 4, 3.
        ("ndcg", 3 / 1 + 5 / 2, 5 / 1 + 4 / 1 + 3 / LOG2_3),
        ("ndcg_log2p1", 3 / LOG2_3 + 5 / LOG2_5, 5 / 1 + 4 / LOG2_3 + 3 / 2),
    ],
)
def test_both_ndcg_discounts_by_hand(metric, dcg, ideal):
    got_dcg = ranking.discounted(np.array([3.0, 5.0]), np.array([2, 4]), metric).sum()
    got_ideal = ranking.discounted(np.array([5.0, 4.0, 3.0]), np.arange(1, 4), metric).sum()
    assert got_dcg == pytest.approx(dcg) and got_ideal == pytest.approx(ideal)
    assert ranking.ndcg(got_dcg, got_ideal) == pytest.approx(dcg / ideal)
