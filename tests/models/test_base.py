"""The model contract: payload and save/load round trips without pickle, params, clear errors."""

import numpy as np
import pytest
import torch

from spark_recs.models.base import Model, Payload
from spark_recs.models.popular import Popular


def test_popular_counts_and_payload_round_trip(tmp_path):
    model = Popular().fit(np.array([2, 2, 0, 2, 1]), n_items=4)
    assert model.counts.tolist() == [1.0, 1.0, 3.0, 0.0]
    restored = model.payload().restore()
    assert torch.equal(restored.counts, model.counts)
    loaded = Model.load(model.save(tmp_path / "pop"))
    assert isinstance(loaded, Popular) and torch.equal(loaded.counts, model.counts)
    assert (tmp_path / "pop" / "config.json").read_text().count("spark_recs.models.popular:Popular") == 1


def test_payload_refuses_anything_but_model_classes():
    state = Popular().fit(np.array([0])).payload().state
    for kind in ("os:system", "spark_recs.runtime:get_spark", "builtins:dict"):
        with pytest.raises(ValueError, match="does not name a spark_recs Model subclass"):
            Payload(kind, {}, state).restore()
    with pytest.raises(ValueError, match="package.module:Class"):
        Payload("Popular", {}, state).restore()


def test_fit_rejects_empty_and_unindexed_items():
    with pytest.raises(ValueError, match="empty"):
        Popular().fit(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="IdIndex"):
        Popular().fit(np.array([1, -1]))


def test_set_params_names_unknown_parameter():
    with pytest.raises(ValueError, match="no parameter 'alpha'"):
        Popular().set_params(alpha=1)
