"""``train_isolated``: a model fitted in a child process (``python -m spark_recs.serving.isolated``), saved to
a file the parent never loaded, and served by batch from that file."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs import batch
from spark_recs.data.movielens import load_ratings
from spark_recs.models.base import Model
from spark_recs.models.mf import BiasedMF
from spark_recs.models.popular import Popular
from spark_recs.serving import TrainedModel, train_isolated

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RATINGS = pd.DataFrame(
    {
        "user": [1, 1, 2, 2, 3, 3, 3, 4],
        "item": [10, 20, 10, 30, 10, 20, 40, 50],
        "rating": [5.0, 3.0, 4.0, 2.0, 1.0, 4.0, 5.0, 3.0],
    }
)  # counts: 10 -> 3, 20 -> 2, 30, 40, 50 -> 1


def test_batch_keeps_its_public_name():
    assert batch.train_isolated is train_isolated


def test_the_package_imports_its_names_on_first_use():
    """So ``python -m spark_recs.serving.isolated`` imports the package without the module it runs."""
    probe = (
        "import sys, spark_recs.serving as s; "
        "print(sorted({'mlflow', 'torch', 'pyspark', 'spark_recs.serving.isolated'} & set(sys.modules))); "
        "s.train_isolated; print('spark_recs.serving.isolated' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


def test_saved_file_and_train_isolated_references(any_spark, tmp_path):
    trained = train_isolated(Popular(), RATINGS, file=tmp_path / "pop.pt")
    assert trained == TrainedModel(tmp_path / "pop.pt", "spark_recs.models.popular:Popular")
    in_process = Popular().fit(RATINGS)
    assert torch.equal(Model.load(trained.path).counts, in_process.counts)
    for reference in (trained, str(trained.path)):
        got = batch.recommend(reference, [1], 2, spark=any_spark).toPandas()
        assert got.sort_values("rank")[["user", "item"]].to_numpy().tolist() == [[1, 30], [1, 40]]
        predicted = batch.predict(reference, RATINGS.head(2), spark=any_spark).toPandas()
        assert predicted.sort_values("item")["prediction"].tolist() == [3.0, 2.0]


def test_train_isolated_fits_the_same_weights_as_in_process(spark, tmp_path):
    ratings = load_ratings(spark, shared_data("ml-latest-small")).accepted.toPandas()
    test_mask = np.random.default_rng(7).random(len(ratings)) < 0.1
    train, test = ratings[~test_mask].reset_index(drop=True), ratings[test_mask].reset_index(drop=True)
    params = dict(features=8, iterations=3, seed=5)
    trained = train_isolated(BiasedMF(**params), spark.createDataFrame(train), file=tmp_path / "mf.pt")
    in_process = BiasedMF(**params).fit(train)
    loaded = Model.load(trained.path)
    assert torch.equal(loaded.user_factors, in_process.user_factors)
    assert torch.equal(loaded.item_factors, in_process.item_factors)
    got = batch.predict(trained, test.head(300), spark=spark).toPandas()
    expected = in_process.predict_pairs(
        in_process.user_vocab.indices(got["user"].to_numpy()),
        in_process.item_vocab.indices(got["item"].to_numpy()),
    )
    np.testing.assert_allclose(got["prediction"], expected, rtol=0, atol=1e-9)


def test_train_isolated_reports_a_failing_child(tmp_path):
    with pytest.raises(RuntimeError, match="child process failed"):
        train_isolated(Popular(), RATINGS.rename(columns={"item": "movie"}), file=tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
