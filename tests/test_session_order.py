"""recommend_sessions orders each session's events itself (time, then item), whatever order its rows come in.

pysail 0.7 drops a ``sortWithinPartitions`` in front of ``mapInPandas``, so an order set that way never
reaches the workers; on classic Spark it does. This is what made the demo's metrics differ between engines.
"""

import numpy as np
import pandas as pd
import pytest

from spark_recs import batch
from spark_recs.models.cooccurrence import ItemCoOccurrence

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_prefixes_follow_time_then_item_not_the_row_order(any_spark):
    # In training item i is always followed by i + 1, so the top item after a prefix is its last item + 1.
    model = ItemCoOccurrence().fit(np.zeros(10, dtype=int), np.arange(10), n_items=10)
    # Session 1 arrives in reverse time order (0, 1, 2 in time); session 2 has both events at one time.
    events = pd.DataFrame(
        {"SessionId": [1, 1, 1, 2, 2], "ItemId": [2, 1, 0, 7, 4], "Time": [3.0, 2.0, 1.0, 5.0, 5.0]}
    )
    got = batch.recommend_sessions(model, any_spark.createDataFrame(events), 1, every_prefix=True).toPandas()
    got = got.sort_values(["SessionId", "position"])
    # Session 1 is 0, 1, 2 and session 2 is 4, 7 (ties by item): each position's successor.
    assert got[["SessionId", "position", "item"]].values.tolist() == [
        [1, 1, 1],
        [1, 2, 2],
        [1, 3, 3],
        [2, 1, 5],
        [2, 2, 8],
    ]
