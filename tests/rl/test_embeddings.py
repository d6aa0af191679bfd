"""ItemEmbeddings: construction, Parquet/NumPy/Spark round trips, bad tables, feature-derived PCA
(checked against an exact PCA written out in NumPy) and vectors taken from fitted models."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs.data.movielens import GENRES_100K, load_items
from spark_recs.data.schema import SchemaError
from spark_recs.models.bias import Bias
from spark_recs.models.gru4rec import GRU4Rec
from spark_recs.models.mf import BiasedMF, MatrixFactorization
from spark_recs.rl.embeddings import ItemEmbeddings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_ids_are_sorted_and_rows_follow():
    emb = ItemEmbeddings([30, 10, 20], [[3, 3], [1, 1], [2, 2]])
    assert emb.ids.tolist() == [10, 20, 30] and (len(emb), emb.dim) == (3, 2)
    assert emb.vectors.dtype == torch.float32 and emb.vectors[:, 0].tolist() == [1, 2, 3]
    assert emb.indices([20, 99, 10]).tolist() == [1, -1, 0]


@pytest.mark.parametrize("suffix", [".parquet", ".npz"])
@pytest.mark.parametrize("ids", [[5, 1, 3], ["b", "a", "c"]])
def test_file_round_trip(tmp_path, suffix, ids):
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2) / 7
    emb = ItemEmbeddings(ids, vectors)
    path = emb.save(tmp_path / f"emb{suffix}")
    back = ItemEmbeddings.from_file(path)
    assert back.ids.tolist() == sorted(ids)
    assert torch.equal(back.vectors, emb.vectors)
    # The file holds what the format promises, readable without this class (and without pickle).
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            stored = dict(zip(data["items"].tolist(), data["vectors"].tolist()))
    else:
        table = pd.read_parquet(path)
        stored = dict(zip(table["item"].tolist(), [list(v) for v in table["embedding"]]))
    assert stored == {i: list(v) for i, v in zip(ids, vectors.tolist())}


def test_spark_round_trip(any_spark):
    emb = ItemEmbeddings([3, 1, 2], [[0.5, 1.0, 1.5], [1.0, 2.0, 3.0], [0.0, -1.0, 2.5]])
    frame = emb.to_spark(any_spark)
    assert dict(frame.dtypes) == {"item": "bigint", "embedding": "array<float>"}
    back = ItemEmbeddings.from_frame(frame)
    assert back.ids.tolist() == [1, 2, 3] and torch.equal(back.vectors, emb.vectors)


def test_bad_tables_are_refused_with_the_items_named(tmp_path):
    def table(vectors, items=(1, 2, 3)):
        return pd.DataFrame({"item": list(items), "embedding": vectors})

    with pytest.raises(ValueError, match=r"1 items have more than one row, e.g. \[2\]"):
        ItemEmbeddings.from_frame(table([[1.0], [2.0], [3.0]], items=(1, 2, 2)))
    with pytest.raises(ValueError, match=r"1 items have no vector, e.g. \[3\]"):
        ItemEmbeddings.from_frame(table([[1.0], [2.0], None]))
    with pytest.raises(
        ValueError, match=r"1 of 3 items have a vector whose length is not 2.*\[1\] \(lengths \[3\]\)"
    ):
        ItemEmbeddings.from_frame(table([[1.0, 2.0, 3.0], [1.0, 2.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"1 item embeddings have NaN or infinite values, e.g. items \[2\]"):
        ItemEmbeddings.from_frame(table([[1.0], [np.nan], [0.0]]))
    with pytest.raises(SchemaError, match="'embedding'"):
        ItemEmbeddings.from_frame(pd.DataFrame({"item": [1], "vector": [[1.0]]}))
    with pytest.raises(ValueError, match=r"\(2 items, dim >= 1\) matrix, got shape \(3, 2\)"):
        ItemEmbeddings([1, 2], np.zeros((3, 2)))
    (tmp_path / "emb.pkl").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickles are never read"):
        ItemEmbeddings.from_file(tmp_path / "emb.pkl")


ITEMS = pd.DataFrame(
    {
        "item": [11, 12, 13, 14, 15, 16],
        "genres": [
            ["Action", "Comedy"],
            ["Drama"],
            ["Comedy"],
            ["Action", "Drama", "War"],
            [],
            ["Comedy", "War"],
        ],
    }
)
TAGS = pd.DataFrame(
    {"item": [11, 11, 12, 14, 16, 16, 99], "tag": ["Funny", "funny ", "sad", "epic", "dark", "funny", "lost"]}
)


def exact_pca(d):
    """TF-IDF of the documents above written out by hand, centred, projected on NumPy's SVD axes."""
    docs = {
        11: {"g:Action": 1, "g:Comedy": 1, "t:funny": 2},
        12: {"g:Drama": 1, "t:sad": 1},
        13: {"g:Comedy": 1},
        14: {"g:Action": 1, "g:Drama": 1, "g:War": 1, "t:epic": 1},
        15: {},
        16: {"g:Comedy": 1, "g:War": 1, "t:dark": 1, "t:funny": 1},
    }
    tokens = sorted({t for doc in docs.values() for t in doc})
    tf = np.array([[docs[i].get(t, 0) for t in tokens] for i in sorted(docs)], dtype=float)
    idf = np.log((1 + len(docs)) / (1 + (tf > 0).sum(axis=0))) + 1
    x = tf * idf
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:d].T


def test_from_features_is_the_pca_of_tf_idf_features():
    emb = ItemEmbeddings.from_features(ITEMS, 3, tags=TAGS, seed=0)
    assert emb.ids.tolist() == [11, 12, 13, 14, 15, 16] and emb.dim == 3
    expected = exact_pca(3)
    for k in range(3):  # each axis is defined up to its sign
        got = emb.vectors[:, k].double().numpy()
        sign = np.sign(got @ expected[:, k])
        np.testing.assert_allclose(got, sign * expected[:, k], atol=1e-5)


def test_from_features_is_deterministic_and_checks_d():
    a = ItemEmbeddings.from_features(ITEMS, 2, tags=TAGS, seed=4)
    b = ItemEmbeddings.from_features(ITEMS, 2, tags=TAGS, seed=4)
    assert torch.equal(a.vectors, b.vectors)
    with pytest.raises(ValueError, match=r"6 items with 8 distinct genre/tag features to d=9.*1 <= d <= 6"):
        ItemEmbeddings.from_features(ITEMS, 9, tags=TAGS)


def test_from_features_of_ml_100k_genres(spark):
    items = load_items(spark, shared_data("ml-100k")).toPandas()
    emb = ItemEmbeddings.from_features(items, 8, seed=0)
    assert (len(emb), emb.dim) == (1682, 8) and emb.ids.tolist() == list(range(1, 1683))
    # Same genres, same vector: items 1 and 422 are both "Animation|Children's|Comedy" in u.item.
    flags = items.set_index("item")[GENRES_100K]
    assert flags.loc[1].tolist() == flags.loc[422].tolist()
    torch.testing.assert_close(emb.vectors[0], emb.vectors[421])
    with pytest.raises(ValueError, match="19 distinct genre/tag features"):
        ItemEmbeddings.from_features(items, 128)


def small_ratings(seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": rng.integers(0, 30, 400),
            "item": rng.integers(100, 140, 400),
            "rating": rng.integers(1, 6, 400),
        }
    ).drop_duplicates(["user", "item"])


def test_from_model_takes_matrix_factorisation_item_factors():
    model = BiasedMF(features=4, iterations=2, seed=1).fit(small_ratings())
    emb = ItemEmbeddings.from_model(model)
    assert emb.ids.tolist() == model.item_vocab.ids.tolist()
    assert torch.equal(emb.vectors, model.item_factors)
    factors = MatrixFactorization.from_factors([1, 2], [30, 10], np.eye(2), [[3.0, 4.0], [1.0, 2.0]])
    emb = ItemEmbeddings.from_model(factors)
    assert emb.ids.tolist() == [10, 30] and emb.vectors.tolist() == [[1, 2], [3, 4]]
    with pytest.raises(TypeError, match="cannot take item embeddings from a Bias"):
        ItemEmbeddings.from_model(Bias())
    with pytest.raises(RuntimeError, match="not fitted"):
        ItemEmbeddings.from_model(BiasedMF())


@pytest.mark.parametrize("inputs", [{}, {"constrained_embedding": False, "embedding": 5}])
def test_from_model_takes_gru4rec_item_embeddings(inputs):
    sessions = pd.DataFrame(
        {"SessionId": [1, 1, 2, 2, 2], "ItemId": [7, 3, 3, 9, 7], "Time": [1, 2, 3, 4, 5]}
    )
    model = GRU4Rec(layers=[6], n_sample=0, n_epochs=0, batch_size=2, **inputs).fit(sessions)
    emb = ItemEmbeddings.from_model(model)
    weight = model.net.E if inputs else model.net.Wy
    rows = model.item_indices([3, 7, 9])
    assert emb.ids.tolist() == [3, 7, 9] and emb.dim == weight.shape[1]
    assert torch.equal(emb.vectors, weight.detach()[torch.from_numpy(rows)])
