"""Model classes of the user's own code: named on purpose in a MultiEval config or trained by
``batch.train_isolated`` (its child imports the class), unlike a model file's kind (tests/models/test_base.py)."""

import sys

import pandas as pd
import pytest
import torch

from spark_recs import batch
from spark_recs.config import ConfigError
from spark_recs.models.base import Model
from spark_recs.models.popular import Popular
from spark_recs.tasks.multieval import build_algorithms

RATINGS = pd.DataFrame({"user": [7, 7, 3, 3, 3, 9], "item": [30, 10, 30, 20, 10, 30]})
MODULE = """
from spark_recs.models.popular import Popular


class Doubled(Popular):
    '''Popular with every count doubled.'''

    def fit(self, ratings):
        super().fit(ratings)
        self.counts = self.counts * 2
        return self
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``my_models.Doubled``, a module of the user's own on sys.path (not imported yet)."""
    (tmp_path / "my_models.py").write_text(MODULE)
    monkeypatch.syspath_prepend(tmp_path)
    yield "my_models"
    sys.modules.pop("my_models", None)


def test_a_config_entry_imports_the_users_own_class(user_module):
    built = build_algorithms([{"class": f"{user_module}:Doubled", "name": "x2"}, {"class": "Popular"}])
    assert [name for name, _ in built] == ["x2", "Popular"]
    assert type(built[0][1]).__qualname__ == "Doubled" and type(built[1][1]) is Popular
    with pytest.raises(
        ConfigError, match=r"algorithms\[0\].class: model class 'no_such_module:X': No module"
    ):
        build_algorithms([{"class": "no_such_module:X"}])
    with pytest.raises(ConfigError, match=r"algorithms\[0\].class: .* does not name a spark_recs Model"):
        build_algorithms([{"class": "os:system"}])


def test_train_isolated_trains_a_users_own_class(user_module, tmp_path):
    from my_models import Doubled

    trained = batch.train_isolated(Doubled(), RATINGS, file=tmp_path / "doubled.pt")
    assert trained.kind == "my_models:Doubled"
    model = trained.load()
    assert type(model) is Doubled and model.counts.tolist() == [4.0, 2.0, 6.0]
    assert torch.equal(Model.load(trained.path).counts, model.counts)


def test_train_isolated_refuses_a_class_the_child_cannot_import(tmp_path):
    class Local(Popular):
        pass

    with pytest.raises(
        ValueError, match=r"cannot train .*<locals>.Local: .* define it in an importable module"
    ):
        batch.train_isolated(Local(), RATINGS, file=tmp_path / "local.pt")
    assert not (tmp_path / "local.pt").exists()


def test_batch_scores_a_users_own_class_on_the_workers(spark, user_module, tmp_path):
    """The worker resolves the file's kind through the class the driver ships (its module sent as Spark
    users send code, with ``addPyFile``), importing nothing the file names."""
    from my_models import Doubled

    spark.sparkContext.addPyFile(str(tmp_path / "my_models.py"))
    model = Doubled().fit(RATINGS)
    got = batch.recommend(model, [7, 5], 3, spark=spark).toPandas().sort_values(["user", "rank"])
    assert got.groupby("user")["item"].apply(list).to_dict() == {5: [30, 10, 20], 7: [20]}
    assert got["score"].tolist() == [6.0, 4.0, 2.0, 2.0]
