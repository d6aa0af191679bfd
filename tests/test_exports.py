"""Package-level names: each is the object at its long path, loaded on first use, and the README's
imports keep working."""

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

# Each package's public names and the module that defines each.
LONG_PATHS = {
    "spark_recs.models": {
        "spark_recs.models.base": ["Model", "Recommender"],
        "spark_recs.models.popular": ["Popular"],
        "spark_recs.models.bias": ["Bias"],
        "spark_recs.models.mf": ["MatrixFactorization", "BiasedMF", "ImplicitMF"],
        "spark_recs.models.knn": ["ItemKNN"],
        "spark_recs.models.cooccurrence": ["ItemCoOccurrence"],
        "spark_recs.models.gru4rec.model": ["GRU4Rec"],
    },
    "spark_recs.data": {
        "spark_recs.data.io": ["read_table", "write_table", "read_databricks_table", "load_databricks_table"],
        "spark_recs.data.sources": ["read_source", "read_ratings", "read_sessions"],
        "spark_recs.data.movielens": ["load_ratings", "load_items", "load_users", "load_tags"],
        "spark_recs.data.sessions": ["load_sessions", "load_diginetica"],
        "spark_recs.data.schema": ["validate", "Validated", "SchemaError", "RatingColumns", "SessionColumns"],
        "spark_recs.data.index": ["IdIndex", "UnknownIdError"],
        "spark_recs.data.split": [
            "preprocess_sessions",
            "time_split",
            "gru4rec_time_split",
            "train_valid_test_split",
            "partition_users",
            "partition_rows",
            "sample_users",
            "SampleN",
            "SampleFrac",
            "temporal_holdout",
            "user_split",
            "SessionSplit",
            "GRU4RecSplit",
            "UserSplit",
        ],
        "spark_recs.data.synthetic": ["synthetic_sessions", "synthetic_ratings"],
    },
}


@pytest.mark.parametrize("package", LONG_PATHS)
def test_every_exported_name_is_the_object_at_its_long_path(package):
    exported = importlib.import_module(package)
    expected = {name: module for module, names in LONG_PATHS[package].items() for name in names}
    assert sorted(exported.__all__) == sorted(expected)
    for name, module in expected.items():
        assert getattr(exported, name) is getattr(importlib.import_module(module), name), name
    assert set(exported.__all__) <= set(dir(exported))
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        exported.NoSuchName  # noqa: B018


def test_the_model_classes_import_from_the_package():
    from spark_recs.models import (
        Bias,
        BiasedMF,
        GRU4Rec,
        ImplicitMF,
        ItemCoOccurrence,
        ItemKNN,
        Model,
        Popular,
        Recommender,
    )

    assert all(issubclass(cls, Model) for cls in (Bias, BiasedMF, GRU4Rec, ImplicitMF, ItemCoOccurrence))
    assert all(issubclass(cls, Recommender) for cls in (Popular, Bias, BiasedMF, ImplicitMF, ItemKNN))


def test_importing_a_package_or_the_model_contract_loads_no_model_and_no_data_module():
    """A Spark worker imports ``spark_recs.models.base``: no model module may come with it."""
    code = "import json, sys, spark_recs.data, spark_recs.models.base\nprint(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
    models = set(LONG_PATHS["spark_recs.models"]) - {"spark_recs.models.base"}
    assert "spark_recs.models.base" in loaded and not models & set(loaded)
    assert not [m for m in loaded if m.startswith(("spark_recs.data.", "spark_recs.models.gru4rec"))]


def test_the_readmes_imports_work():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    imports = [line.split("#")[0] for block in blocks for line in block.splitlines()]
    imports = [line for line in imports if re.match(r"(from|import) spark_recs\b", line)]
    assert len(imports) > 10
    for line in imports:
        exec(line, {})
