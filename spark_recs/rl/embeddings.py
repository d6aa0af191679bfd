"""Item embeddings for the RL recommenders: one vector per raw item id, stored without pickle.

recnn's 128-d embeddings of ML-20M cannot be obtained, so ours are derived: read from a file
(Parquet with ``item`` + ``embedding`` columns, or NumPy ``.npz`` with ``items`` + ``vectors``), built
from item features (genres and tags: TF-IDF, then PCA to ``d``) or taken from a trained model's item
factors (matrix factorisation, GRU4Rec).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from spark_recs.data.io import collect_columns
from spark_recs.data.schema import require_columns
from spark_recs.models.vocabulary import Vocabulary

log = logging.getLogger(__name__)


class ItemEmbeddings:
    """Vectors ``(n_items, dim)`` (float32) for raw item ids; row ``i`` belongs to ``ids[i]``.

    Ids are sorted on construction (rows follow), so the dense index of an item is its rank among the
    ids, as in :class:`~spark_recs.models.vocabulary.Vocabulary`.
    """

    def __init__(self, ids, vectors) -> None:
        ids = np.asarray(ids)
        vectors = np.asarray(vectors.detach().cpu() if isinstance(vectors, torch.Tensor) else vectors)
        if vectors.ndim != 2 or len(vectors) != len(ids) or vectors.shape[1] == 0:
            raise ValueError(
                f"embedding vectors must be a ({len(ids)} items, dim >= 1) matrix, got shape {vectors.shape}"
            )
        vectors = vectors.astype(np.float32)
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} item embeddings have NaN or infinite values, e.g. items "
                f"{ids[bad][:10].tolist()}: fix or remove them"
            )
        order = np.argsort(ids, kind="stable")
        self.vocab = Vocabulary(ids[order])
        self.vectors = torch.from_numpy(vectors[order])

    @property
    def ids(self) -> np.ndarray:
        return self.vocab.ids

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"ItemEmbeddings({len(self)} items, dim={self.dim})"

    def indices(self, ids) -> np.ndarray:
        """Dense index (row) of each raw id; -1 for ids without an embedding."""
        return self.vocab.indices(ids)

    # ---- reading ------------------------------------------------------------------------------------

    @classmethod
    def from_frame(cls, frame, item: str = "item", embedding: str = "embedding") -> ItemEmbeddings:
        """From a pandas or Spark DataFrame with one row per item: ``item`` and an ``embedding`` array."""
        require_columns(frame, [item, embedding], "item embeddings")
        if hasattr(frame, "sparkSession"):
            frame = collect_columns(frame, [item, embedding])
        if len(frame) == 0:
            raise ValueError("the item embeddings table is empty")
        ids, column = frame[item].to_numpy(), frame[embedding]
        if frame[item].isna().any():
            raise ValueError(
                f"item embeddings: column {item!r} has {int(frame[item].isna().sum())} missing ids"
            )
        if not pd.Index(ids).is_unique:
            dupes = pd.Index(ids)[pd.Index(ids).duplicated()].unique()
            raise ValueError(
                f"item embeddings: {len(dupes)} items have more than one row, e.g. {dupes[:10].tolist()}"
            )
        lengths = np.array([-1 if v is None else len(v) for v in column])
        if (lengths < 0).any():
            raise ValueError(
                f"item embeddings: {int((lengths < 0).sum())} items have no vector, e.g. "
                f"{ids[lengths < 0][:10].tolist()}"
            )
        dim = int(np.bincount(lengths).argmax())
        odd = lengths != dim
        if odd.any():
            raise ValueError(
                f"item embeddings must all have the same dimension: {int(odd.sum())} of {len(ids)} items "
                f"have a vector whose length is not {dim}, e.g. items {ids[odd][:10].tolist()} "
                f"(lengths {lengths[odd][:10].tolist()})"
            )
        return cls(ids, np.stack([np.asarray(v, dtype=np.float32) for v in column]))

    @classmethod
    def from_file(cls, path: str | Path) -> ItemEmbeddings:
        """Read Parquet (file or folder with ``item``, ``embedding``) or ``.npz`` (``items``, ``vectors``)."""
        path = Path(path)
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("items", "vectors") if k not in data.files]
                if missing:
                    raise ValueError(f"{path} lacks array(s) {missing}; it has {data.files}")
                return cls(data["items"], data["vectors"])
        if path.suffix.lower() == ".parquet" or path.is_dir():
            return cls.from_frame(pd.read_parquet(path))
        raise ValueError(
            f"cannot read item embeddings from {path}: use a .parquet file (columns item, embedding) or a "
            ".npz file (arrays items, vectors); pickles are never read"
        )

    # ---- deriving -----------------------------------------------------------------------------------

    @classmethod
    def from_features(cls, items, d: int = 128, *, tags=None, seed: int = 0) -> ItemEmbeddings:
        """PCA to ``d`` dimensions of items' TF-IDF genre and tag features.

        ``items``: pandas or Spark DataFrame with ``item`` and ``genres`` (an array of names), e.g.
        :func:`spark_recs.data.movielens.load_items`. ``tags``: optional frame with ``item, tag`` (one row
        per tag application, e.g. MovieLens ``tags.csv`` renamed). Each item is a document of its genres
        and lower-cased tags (a tag applied ``k`` times counts ``k`` times); rows are TF-IDF weighted
        (smoothed idf ``ln((1+n)/(1+df)) + 1``) and L2-normalised, centred, and projected on their first
        ``d`` principal components (randomised PCA drawn from ``seed``; each component's sign fixed so that
        its largest loading is positive). Same inputs and seed, same vectors.
        """
        items = _pandas(items, ["item", "genres"], "item features")
        docs = items[["item", "genres"]].explode("genres").dropna()
        tokens = [pd.DataFrame({"item": docs["item"], "token": "genre:" + docs["genres"].astype(str)})]
        if tags is not None:
            tags = _pandas(tags, ["item", "tag"], "item tags").dropna()
            tokens.append(pd.DataFrame({"item": tags["item"], "token": "tag:" + _normal_tag(tags["tag"])}))
        vocab = Vocabulary.fit(items["item"])
        pairs = pd.concat(tokens, ignore_index=True)
        pairs["row"] = vocab.indices(pairs["item"].to_numpy())
        pairs = pairs[pairs["row"] >= 0]  # tags of items not in `items`
        counts = pairs.groupby(["row", "token"]).size().reset_index(name="tf")
        columns, token_names = pd.factorize(counts["token"], sort=True)
        n_items, n_tokens = len(vocab), len(token_names)
        if d < 1 or d > min(n_items, n_tokens):
            raise ValueError(
                f"cannot reduce {n_items} items with {n_tokens} distinct genre/tag features to d={d} "
                f"dimensions: choose 1 <= d <= {min(n_items, n_tokens)} or give more features (tags)"
            )
        rows = counts["row"].to_numpy()
        df = np.bincount(columns, minlength=n_tokens)
        weights = counts["tf"].to_numpy(np.float64) * (np.log((1 + n_items) / (1 + df)) + 1)[columns]
        norms = np.sqrt(np.bincount(rows, weights=weights**2, minlength=n_items))
        weights /= norms[rows]
        matrix = torch.sparse_coo_tensor(
            np.vstack([rows, columns]), weights.astype(np.float32), (n_items, n_tokens), check_invariants=True
        ).coalesce()
        components, mean = _principal_axes(matrix, d, seed)
        vectors = torch.sparse.mm(matrix, components) - mean @ components
        log.info("Item embeddings from %d features of %d items, PCA to %d", n_tokens, n_items, d)
        return cls(vocab.ids, vectors.numpy())

    @classmethod
    def from_model(cls, model) -> ItemEmbeddings:
        """The item vectors of a fitted model, one per item it knows: its ``item_embeddings()`` (row ``i``
        for ``item_vocab.ids[i]``), e.g. the item factors of matrix factorisation
        (:class:`~spark_recs.models.mf.MatrixFactorization`, ``BiasedMF``, ``ImplicitMF``) or the input item
        embedding of :class:`~spark_recs.models.gru4rec.GRU4Rec`.
        """
        if not callable(getattr(model, "item_embeddings", None)):
            raise TypeError(
                f"cannot take item embeddings from a {type(model).__name__}: use a matrix-factorisation model "
                "(MatrixFactorization, BiasedMF, ImplicitMF) or GRU4Rec"
            )
        vectors = model.item_embeddings()  # first: it says when the model is not fitted
        return cls(model.item_vocab.ids, vectors)

    # ---- writing ------------------------------------------------------------------------------------

    def to_arrow(self) -> pa.Table:
        """``item``, ``embedding`` (list<float>) as an Arrow table."""
        flat = pa.array(self.vectors.numpy().reshape(-1))
        offsets = pa.array(np.arange(len(self) + 1, dtype=np.int32) * self.dim)
        return pa.table({"item": self.ids, "embedding": pa.ListArray.from_arrays(offsets, flat)})

    def to_spark(self, spark):
        """A Spark DataFrame ``item``, ``embedding`` (array<float>) on ``spark``."""
        return spark.createDataFrame(self.to_arrow())

    def save(self, path: str | Path) -> Path:
        """Write ``.parquet`` (``item``, ``embedding``) or ``.npz`` (``items``, ``vectors``), atomically."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".npz"):
            raise ValueError(f"save item embeddings to a .parquet or .npz path, not {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        if suffix == ".npz":
            ids = self.ids if self.vocab.is_integer else self.ids.astype(str)
            with partial.open("wb") as f:
                np.savez(f, items=ids, vectors=self.vectors.numpy())
        else:
            import pyarrow.parquet as pq

            pq.write_table(self.to_arrow(), partial)
        os.replace(partial, path)
        return path


def _principal_axes(
    matrix: torch.Tensor, d: int, seed: int, niter: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``d`` principal axes ``(n_features, d)`` of a sparse matrix's rows, and the rows' mean.

    Randomised subspace iteration (Halko et al. 2011) with ``d + 10`` columns drawn from ``seed``, on the
    centred matrix without densifying it. Each axis's sign makes its largest loading positive.
    """
    n_rows, n_cols = matrix.shape
    mean = torch.sparse.sum(matrix, dim=0).to_dense() / n_rows
    transposed = matrix.t().coalesce()

    def centred(m: torch.Tensor) -> torch.Tensor:  # (X - 1 mean') m
        return torch.sparse.mm(matrix, m) - mean @ m

    def centred_t(m: torch.Tensor) -> torch.Tensor:  # (X - 1 mean')' m
        return torch.sparse.mm(transposed, m) - mean.unsqueeze(1) * m.sum(dim=0)

    q = min(d + 10, n_rows, n_cols)
    start = torch.randn(n_cols, q, generator=torch.Generator().manual_seed(seed), dtype=matrix.dtype)
    basis = torch.linalg.qr(centred(start)).Q
    for _ in range(niter):
        basis = torch.linalg.qr(centred(torch.linalg.qr(centred_t(basis)).Q)).Q
    axes = torch.linalg.svd(centred_t(basis).T, full_matrices=False).Vh[:d].T
    largest = axes.abs().argmax(dim=0)
    return axes * torch.sign(axes[largest, torch.arange(d)]), mean


def _pandas(frame, columns: list[str], what: str) -> pd.DataFrame:
    require_columns(frame, columns, what)
    return collect_columns(frame, columns) if hasattr(frame, "sparkSession") else frame[columns]


def _normal_tag(tags: pd.Series) -> pd.Series:
    return tags.astype(str).str.strip().str.lower()
