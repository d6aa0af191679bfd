"""What data preparation costs in Spark work: validate + index + GRU4Rec split run a bounded number of
stages (each shuffle is one), so a change that adds passes over the data fails here, not only in
``benchmarks/prepare.py``. Classic Spark only: Spark Connect has no status tracker."""

from __future__ import annotations

import re

from spark_recs.data.index import IdIndex
from spark_recs.data.schema import validate
from spark_recs.data.split import gru4rec_time_split
from spark_recs.data.synthetic import synthetic_sessions

#: Stages of the whole preparation below, measured; lower it when a change saves passes.
STAGE_BUDGET = 82


def test_preparation_runs_a_bounded_number_of_stages(spark):
    events = synthetic_sessions(spark, 20_000, 300, seed=5, days=5).cache()
    events.count()
    context, tracker = spark.sparkContext, spark.sparkContext.statusTracker()
    context.setJobGroup("prepare-plan", "validate + index + split")
    try:
        checked = validate(events, ["SessionId", "ItemId"], "Time")
        _, indexed = IdIndex.fit_transform(checked.accepted, "ItemId")
        split = gru4rec_time_split(indexed, days=1)
        counts = split.counts()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    jobs = tracker.getJobIdsForGroup("prepare-plan")
    stages = {s for j in jobs for s in tracker.getJobInfo(j).stageIds}
    assert counts["test"] > 0 and counts["train_tr"] > 0
    assert len(stages) <= STAGE_BUDGET, f"{len(jobs)} jobs, {len(stages)} stages"


def test_validated_events_are_shuffled_once_for_the_whole_split(spark):
    events = synthetic_sessions(spark, 5_000, 100, seed=1, days=3)
    checked = validate(events, ["SessionId", "ItemId"], "Time")
    rows = gru4rec_time_split(checked.accepted, days=1).rows
    plan = rows._jdf.queryExecution().executedPlan().toString()  # with the plans of the cached parts
    # validate's duplicate check shuffles by session; no window of the split asks for another shuffle
    # (it would be by a later column of that name), and the per-item counts are broadcast.
    shuffled_by = set(re.findall(r"Exchange hashpartitioning\((SessionId#\d+)L?, \d+\)", plan))
    assert len(shuffled_by) == 1, shuffled_by
    assert "BroadcastHashJoin" in plan
