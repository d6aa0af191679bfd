"""Matrix factorisation: the scoring all factor models share, and LensKit 0.14's two ALS trainers.

- :class:`MatrixFactorization` holds user and item factors (float32) and optional biases and scores
  ``global_bias + b_u + b_i + p_u . q_i``; :meth:`MatrixFactorization.from_factors` builds one from
  factors trained elsewhere (e.g. Spark MLlib's ALS).
- :class:`BiasedMF`: explicit-feedback ALS (Zhou et al. 2008) on the residuals of a damped
  :class:`~spark_recs.models.bias.Bias`, with LensKit's weighted regularisation: a row with ``n``
  ratings solves ``(Q_R' Q_R + reg * n * I) p = Q_R' r``.
- :class:`ImplicitMF`: confidence-weighted ALS (Hu, Koren & Volinsky 2008): confidence
  ``c = 1 + weight * r`` (``r`` = the rating when ``use_ratings``, else 1), preference 1 for observed
  pairs and 0 elsewhere; a row solves ``(Q'Q + Q_R' (C - I) Q_R + reg * I) p = Q_R' c``.

Both alternate exact solves (Cholesky, float64): users from the item factors, then items from the new
user factors, once per iteration, as LensKit does. Rows are solved in batches: rows with similar numbers
of ratings are padded to a common length and their normal equations built and solved with batched
tensor operations (no Python loop over ratings or rows).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core.params import POSITIVE_INT, Rule, help_text, param, signature
from .base import Recommender
from .bias import FINITE_NON_NEGATIVE, USER_ITEM_PAIR, bias_offsets, user_item_pair
from .vocabulary import Vocabulary

log = logging.getLogger(__name__)

# Upper bound on the elements of one padded (rows, length, features) float64 batch.
_BATCH_ELEMENTS = 1 << 21


class MatrixFactorization(Recommender):
    """User and item factors (and optional biases) scored as ``global_bias + b_u + b_i + p_u . q_i``.

    Unknown users (index -1) get the bias-only score ``global_bias + b_i`` when the model has biases,
    else no score (NaN); unknown items likewise ``global_bias + b_u`` or NaN. Subclasses train the
    factors; this class alone is what :meth:`from_factors` returns.
    """

    def __init__(self) -> None:
        self.user_factors: torch.Tensor | None = None
        self.item_factors: torch.Tensor | None = None
        self.global_bias: float = 0.0
        self.user_bias: torch.Tensor | None = None
        self.item_bias: torch.Tensor | None = None

    @classmethod
    def from_factors(
        cls,
        user_ids,
        item_ids,
        user_factors,
        item_factors,
        user_bias=None,
        item_bias=None,
        global_bias: float = 0.0,
    ) -> MatrixFactorization:
        """A scoring-ready model from given factors: row ``k`` of ``user_factors`` belongs to ``user_ids[k]``.

        Ids may come in any order (they are sorted, rows following). Biases are optional; a model given
        any of ``user_bias``, ``item_bias`` or a non-zero ``global_bias`` scores with biases (a missing
        one counting as zeros) and falls back to them for unknown users and items. Nothing counts as
        already seen: ``recommend`` excludes no items.
        """
        users = _sorted_rows(user_ids, "user_ids", user_factors, "user_factors", user_bias, "user_bias")
        items = _sorted_rows(item_ids, "item_ids", item_factors, "item_factors", item_bias, "item_bias")
        (user_vocab, user_factors, user_bias), (item_vocab, item_factors, item_bias) = users, items
        if user_factors.shape[1] != item_factors.shape[1]:
            raise ValueError(
                f"user_factors have {user_factors.shape[1]} features but item_factors {item_factors.shape[1]}"
            )
        model = cls()
        model.user_vocab, model.item_vocab = user_vocab, item_vocab
        model.rated_indptr = torch.zeros(len(user_vocab) + 1, dtype=torch.int64)
        model.rated_indices = torch.zeros(0, dtype=torch.int64)
        model.user_factors = torch.as_tensor(user_factors, dtype=torch.float32)
        model.item_factors = torch.as_tensor(item_factors, dtype=torch.float32)
        model.global_bias = float(global_bias)
        if user_bias is not None or item_bias is not None or model.global_bias != 0.0:
            model.user_bias = torch.as_tensor(
                np.zeros(len(user_vocab)) if user_bias is None else user_bias, dtype=torch.float32
            )
            model.item_bias = torch.as_tensor(
                np.zeros(len(item_vocab)) if item_bias is None else item_bias, dtype=torch.float32
            )
        return model

    @property
    def has_bias(self) -> bool:
        return self.item_bias is not None

    @property
    def n_features(self) -> int:
        return int(self.item_factors.shape[1])

    def item_embeddings(self) -> torch.Tensor:
        """A float32 copy of the item factors ``(n_items, n_features)``, row ``i`` for ``item_vocab.ids[i]``."""
        if self.item_factors is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit() first")
        return self.item_factors.to(torch.float32, copy=True)

    # ---- state --------------------------------------------------------------------------------------

    def _tensors(self) -> dict:
        state = {"user_factors": self.user_factors, "item_factors": self.item_factors}
        if self.has_bias:
            state.update(
                global_bias=torch.tensor(self.global_bias, dtype=torch.float64),
                user_bias=self.user_bias,
                item_bias=self.item_bias,
            )
        return state

    def _load_tensors(self, state: dict) -> None:
        self.user_factors, self.item_factors = state["user_factors"], state["item_factors"]
        if "item_bias" in state:
            self.global_bias = float(state["global_bias"])
            self.user_bias, self.item_bias = state["user_bias"], state["item_bias"]

    # ---- scoring ------------------------------------------------------------------------------------

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        users = torch.from_numpy(np.asarray(users, dtype=np.int64))
        unknown = torch.nonzero(users < 0).flatten()
        rows = users.clamp(min=0)
        # In place on the one fresh product: a score matrix is the big allocation of batch scoring.
        scores = self.user_factors[rows] @ self.item_factors.T
        if self.has_bias:
            scores += self.item_bias.unsqueeze(0) + self.global_bias
            scores += self.user_bias[rows].unsqueeze(1)
            if len(unknown):
                scores[unknown] = (self.item_bias + self.global_bias).unsqueeze(0)
        elif len(unknown):
            scores[unknown] = float("nan")
        return scores

    def predict_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        users = torch.from_numpy(np.asarray(users, dtype=np.int64))
        items = torch.from_numpy(np.asarray(items, dtype=np.int64))
        both = (users >= 0) & (items >= 0)
        dots = (self.user_factors[users[both]].double() * self.item_factors[items[both]].double()).sum(dim=1)
        if self.has_bias:
            out = (
                self.global_bias
                + torch.where(users >= 0, self.user_bias[users.clamp(min=0)].double(), 0.0)
                + torch.where(items >= 0, self.item_bias[items.clamp(min=0)].double(), 0.0)
            )
            out[both] += dots
        else:
            out = torch.full((len(users),), float("nan"), dtype=torch.float64)
            out[both] = dots
        return out.numpy()


def _sorted_rows(ids, ids_name, factors, factors_name, bias, bias_name):
    """(vocabulary, factors, bias) with rows reordered to the sorted ids; shapes checked."""
    ids = np.asarray(ids)
    factors = np.asarray(factors.detach().cpu() if isinstance(factors, torch.Tensor) else factors)
    if factors.ndim != 2 or len(factors) != len(ids):
        raise ValueError(f"{factors_name} must be a ({len(ids)}, features) matrix, got shape {factors.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{ids_name} must be unique")
    order = np.argsort(ids, kind="stable")
    if bias is not None:
        bias = np.asarray(bias.detach().cpu() if isinstance(bias, torch.Tensor) else bias, dtype=np.float64)
        if bias.shape != (len(ids),):
            raise ValueError(f"{bias_name} must have one value per id ({len(ids)}), got shape {bias.shape}")
        bias = bias[order]
    return Vocabulary(ids[order]), factors[order], bias


# ---- parameters ---------------------------------------------------------------------------------------


def _features():
    return param(50, POSITIVE_INT, "latent features per user and item")


def _iterations():
    return param(20, POSITIVE_INT, "ALS iterations (each solves the users, then the items)")


def _seed():
    return param(42, Rule(int, 0, nullable=True), "seed of the initial item factors (null: fresh entropy)")


@dataclass(frozen=True)
class BiasedMFParams:
    """:class:`BiasedMF`'s parameters, LensKit's defaults."""

    features: int = _features()
    iterations: int = _iterations()
    reg: float | tuple[float, float] = param(
        0.1, USER_ITEM_PAIR, "regularisation, scaled by each row's number of ratings"
    )
    damping: float | tuple[float, float] = param(5.0, USER_ITEM_PAIR, "damping of the Bias fitted first")
    bias: bool = param(True, Rule(bool), "fit a damped Bias first and factor its residuals")
    seed: int | None = _seed()


@dataclass(frozen=True)
class ImplicitMFParams:
    """:class:`ImplicitMF`'s parameters, LensKit's defaults."""

    features: int = _features()
    iterations: int = _iterations()
    reg: float | tuple[float, float] = param(0.1, USER_ITEM_PAIR, "regularisation")
    weight: float = param(40.0, FINITE_NON_NEGATIVE, "confidence of an observed pair: 1 + weight * r")
    use_ratings: bool = param(False, Rule(bool), "r is the rating (else 1; the rating column is not needed)")
    seed: int | None = _seed()


# ---- ALS ----------------------------------------------------------------------------------------------


class _Side:
    """One side of ALS (the users, or the items): its rows' observations grouped into padded batches.

    Each batch holds rows with similar numbers of observations (within a factor of two), padded to the
    longest: ``cols`` (rows, length) the other side's indices, ``mask`` 1 on observations and 0 on
    padding, ``weights`` the Gram weights and ``targets`` the right-hand side values (both 0 on padding).
    Explicit feedback uses unit weights (its observation-space solve relies on that).
    """

    def __init__(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        weights: np.ndarray,
        targets: np.ndarray,
        n_rows: int,
        n_features: int,
    ) -> None:
        self.n_rows = n_rows
        order = np.argsort(rows, kind="stable")
        cols, weights, targets = cols[order], weights[order], targets[order]
        counts = np.bincount(rows, minlength=n_rows)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        self.batches = []
        nonempty = np.flatnonzero(counts)
        by_count = nonempty[np.argsort(counts[nonempty], kind="stable")]
        octave = np.floor(np.log2(counts[by_count])).astype(np.int64)
        for level in np.unique(octave):
            group = by_count[octave == level]
            length = int(counts[group].max())
            size = max(1, _BATCH_ELEMENTS // (length * n_features))
            for first in range(0, len(group), size):
                batch = group[first : first + size]
                valid = np.arange(length) < counts[batch][:, None]
                pos = np.where(valid, starts[batch][:, None] + np.arange(length), 0)
                self.batches.append(
                    _Batch(
                        rows=torch.from_numpy(batch),
                        cols=torch.from_numpy(cols[pos]),
                        mask=torch.from_numpy(valid.astype(np.float64)),
                        weights=torch.from_numpy(np.where(valid, weights[pos], 0.0)),
                        targets=torch.from_numpy(np.where(valid, targets[pos], 0.0)),
                        counts=torch.from_numpy(counts[batch].astype(np.float64)),
                    )
                )

    def solve(self, other: torch.Tensor, reg: float, implicit: bool) -> torch.Tensor:
        """Every row's exact solution given the other side's factors ``other`` (float64).

        Explicit: ``(O_R' O_R + reg * n * I) x = O_R' r``. Implicit: ``(O'O + reg * I + O_R' W O_R) x =
        O_R' c`` with ``W`` the confidence minus one and ``c`` the confidence. Rows with fewer observations
        than features are solved in the equivalent observation-space form (push-through / Woodbury
        identities: an ``n x n`` system instead of ``k x k``), which is much cheaper for sparse rows.
        """
        k = other.shape[1]
        eye = torch.eye(k, dtype=torch.float64)
        shared = other.T @ other + reg * eye if implicit else None
        inverse = torch.cholesky_inverse(torch.linalg.cholesky(shared)) if implicit and reg > 0 else None
        out = torch.zeros(self.n_rows, k, dtype=torch.float64)
        for batch in self.batches:
            factors = other[batch.cols]  # (batch, length, k)
            length = factors.shape[1]
            if length < k:
                factors = factors * batch.mask.unsqueeze(2)  # padding rows must not enter the kernel
            if length < k and not implicit:
                # x = O' (O O' + reg n I)^-1 r
                kernel = torch.bmm(factors, factors.transpose(1, 2))
                kernel.diagonal(dim1=1, dim2=2).add_(reg * batch.counts.unsqueeze(1) + (1 - batch.mask))
                z = _solve_spd(kernel, batch.targets)
                out[batch.rows] = torch.bmm(z.unsqueeze(1), factors).squeeze(1)
            elif length < k and inverse is not None and bool((batch.weights > 0).eq(batch.mask > 0).all()):
                # With H = (O'O + reg I)^-1 and P = O_R H: x = P' (W^-1 + P O_R')^-1 W^-1 c
                projected = factors @ inverse
                kernel = torch.bmm(projected, factors.transpose(1, 2))
                scale = torch.where(batch.mask > 0, 1.0 / batch.weights.clamp(min=1e-300), 1.0)
                kernel.diagonal(dim1=1, dim2=2).add_(scale)
                z = _solve_spd(kernel, batch.targets * torch.where(batch.mask > 0, scale, 0.0))
                out[batch.rows] = torch.bmm(z.unsqueeze(1), projected).squeeze(1)
            else:
                gram = torch.bmm((factors * batch.weights.unsqueeze(2)).transpose(1, 2), factors)
                if implicit:
                    gram += shared
                else:
                    gram += (reg * batch.counts).view(-1, 1, 1) * eye
                rhs = torch.bmm(batch.targets.unsqueeze(1), factors).squeeze(1)
                out[batch.rows] = _solve_spd(gram, rhs)
        return out


@dataclass(frozen=True)
class _Batch:
    rows: torch.Tensor
    cols: torch.Tensor
    mask: torch.Tensor
    weights: torch.Tensor
    targets: torch.Tensor
    counts: torch.Tensor


def _solve_spd(matrices: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Batched solve of symmetric positive (semi-)definite systems: Cholesky, least squares where singular."""
    factor, info = torch.linalg.cholesky_ex(matrices)
    solution = torch.cholesky_solve(rhs.unsqueeze(2), factor).squeeze(2)
    singular = info != 0
    if bool(singular.any()):
        # Only possible without regularisation: the minimum-norm least-squares solution.
        pseudo = torch.linalg.pinv(matrices[singular], hermitian=True)
        solution[singular] = (pseudo @ rhs[singular].unsqueeze(2)).squeeze(2)
    return solution


def _alternate(
    name: str,
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    targets: np.ndarray,
    n_users: int,
    n_items: int,
    item_init: np.ndarray,
    iterations: int,
    reg: tuple[float, float],
    implicit: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ALS: per iteration, solve every user from the item factors, then every item from the users."""
    k = item_init.shape[1]
    start = time.perf_counter()
    user_side = _Side(users, items, weights, targets, n_users, k)
    item_side = _Side(items, users, weights, targets, n_items, k)
    log.info(
        "%s: %d features, %d observations from %d users on %d items (set up in %.2fs)",
        name,
        k,
        len(users),
        n_users,
        n_items,
        time.perf_counter() - start,
    )
    user_factors = torch.zeros(n_users, k, dtype=torch.float64)
    item_factors = torch.from_numpy(item_init)
    user_index, item_index = torch.from_numpy(users), torch.from_numpy(items)
    residual = torch.from_numpy(targets)
    for epoch in range(1, iterations + 1):
        started = time.perf_counter()
        updated = user_side.solve(item_factors, reg[0], implicit)
        user_change = float(torch.linalg.norm(updated - user_factors))
        user_factors = updated
        updated = item_side.solve(user_factors, reg[1], implicit)
        item_change = float(torch.linalg.norm(updated - item_factors))
        item_factors = updated
        fit = ""
        if not implicit:
            predicted = (user_factors[user_index] * item_factors[item_index]).sum(dim=1)
            fit = f", training RMSE {float(torch.sqrt(torch.mean((residual - predicted) ** 2))):.4f}"
        log.info(
            "%s: iteration %d/%d in %.2fs (|dP|=%.3f, |dQ|=%.3f%s)",
            name,
            epoch,
            iterations,
            time.perf_counter() - started,
            user_change,
            item_change,
            fit,
        )
    return user_factors, item_factors


class BiasedMF(MatrixFactorization):
    """Biased matrix factorisation trained with explicit-feedback ALS (LensKit 0.14's ``als.BiasedMF``).

    With ``bias`` (the default) a :class:`~spark_recs.models.bias.Bias` with ``damping`` (a number or a
    ``(user_damping, item_damping)`` pair) is fitted first and ALS factors its residuals; scores are
    ``mu + b_u + b_i + p_u . q_i``. ``reg`` (a number or a ``(user_reg, item_reg)`` pair) is scaled by each
    row's number of ratings. Item factors start as random unit vectors drawn from ``seed``; the same seed
    gives the same factors. ``fit(ratings)`` needs a ``rating`` column.
    """

    Params = BiasedMFParams
    predicts_ratings = True

    def __init__(self, *args, **params) -> None:
        super().__init__()
        self._init_params(args, params)

    __init__.__signature__ = signature(BiasedMFParams, positional=True)
    __init__.__doc__ = help_text(BiasedMFParams)

    def fit(self, ratings) -> BiasedMF:
        self.set_params()  # also checks attributes assigned directly
        started = time.perf_counter()
        users, items, values = self._index_ratings(ratings, need_rating=True)
        n_users, n_items = len(self.user_vocab), self.n_items
        if self.bias:
            mu, user_bias, item_bias = bias_offsets(users, items, values, n_users, n_items, self.damping)
            values = values - mu - user_bias[users] - item_bias[items]
            self.global_bias = mu
            self.user_bias = torch.from_numpy(user_bias).float()
            self.item_bias = torch.from_numpy(item_bias).float()
        else:
            self.global_bias, self.user_bias, self.item_bias = 0.0, None, None
        rng = np.random.default_rng(self.seed)
        init = rng.standard_normal((n_items, self.features))
        init /= np.linalg.norm(init, axis=1, keepdims=True)
        user_factors, item_factors = _alternate(
            "BiasedMF",
            users,
            items,
            np.ones(len(values)),
            values,
            n_users,
            n_items,
            init,
            self.iterations,
            user_item_pair(self.reg),
            implicit=False,
        )
        self.user_factors, self.item_factors = user_factors.float(), item_factors.float()
        log.info("BiasedMF: trained in %.2fs", time.perf_counter() - started)
        return self


class ImplicitMF(MatrixFactorization):
    """Implicit-feedback matrix factorisation with confidence-weighted ALS (LensKit 0.14's ``als.ImplicitMF``).

    Every observed (user, item) pair has preference 1 and confidence ``1 + weight * r``, where ``r`` is the
    ``rating`` when ``use_ratings`` (the column is then required) and 1 otherwise; unobserved pairs have
    preference 0 and confidence 1. ``reg`` is a number or a ``(user_reg, item_reg)`` pair. Factors start
    as squared small normal draws from ``seed`` (LensKit's initialisation). Scores are ``p_u . q_i``
    (a ranking, not a rating scale); unknown users get none.
    """

    Params = ImplicitMFParams

    def __init__(self, *args, **params) -> None:
        super().__init__()
        self._init_params(args, params)

    __init__.__signature__ = signature(ImplicitMFParams, positional=True)
    __init__.__doc__ = help_text(ImplicitMFParams)

    def fit(self, ratings) -> ImplicitMF:
        self.set_params()  # also checks attributes assigned directly
        started = time.perf_counter()
        users, items, values = self._index_ratings(ratings, need_rating=self.use_ratings)
        if not self.use_ratings:
            values = np.ones(len(values))
        confidence_extra = self.weight * values
        rng = np.random.default_rng(self.seed)
        init = np.square(rng.standard_normal((self.n_items, self.features)) * 0.01)
        user_factors, item_factors = _alternate(
            "ImplicitMF",
            users,
            items,
            confidence_extra,
            1.0 + confidence_extra,
            len(self.user_vocab),
            self.n_items,
            init,
            self.iterations,
            user_item_pair(self.reg),
            implicit=True,
        )
        self.user_factors, self.item_factors = user_factors.float(), item_factors.float()
        log.info("ImplicitMF: trained in %.2fs", time.perf_counter() - started)
        return self
