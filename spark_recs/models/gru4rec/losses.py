"""GRU4Rec losses over a score matrix whose row ``i`` has its target in column ``i``.

Columns are the batch's targets (so the other rows' targets are in-batch negatives) followed by the
shared sampled negatives. Every loss returns the sum over rows; the caller divides by the batch size.
Accidental hits (a negative equal to the target) are not masked, as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("cross-entropy", "bpr-max", "top1", "top1-max", "bpr")


def _target_scores(scores: torch.Tensor) -> torch.Tensor:
    n = scores.shape[0]
    return scores[:, :n].diagonal().unsqueeze(1)


def _negative_mask(scores: torch.Tensor) -> torch.Tensor:
    """True everywhere except on each row's own target column."""
    n = scores.shape[0]
    mask = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    mask[:, :n].fill_diagonal_(False)
    return mask


def cross_entropy(scores: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of each row's target against all columns."""
    rows = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores, rows, reduction="sum")


def bpr_max(scores: torch.Tensor, bpreg: float) -> torch.Tensor:
    """``-log(sum_j s_j sigmoid(r_i - r_j)) + bpreg * sum_j s_j r_j^2``, ``s`` the softmax over the negatives."""
    negatives = _negative_mask(scores)
    weights = scores.masked_fill(~negatives, float("-inf")).softmax(dim=1)
    ranking = (torch.sigmoid(_target_scores(scores) - scores) * weights).sum(dim=1)
    # The reference's 1e-24 keeps the log finite when every negative outscores the target.
    loss = -torch.log(ranking + 1e-24)
    if bpreg:
        loss = loss + bpreg * (scores.square() * weights).sum(dim=1)
    return loss.sum()


def top1_max(scores: torch.Tensor) -> torch.Tensor:
    """``sum_j s_j (sigmoid(r_j - r_i) + sigmoid(r_j^2))``, ``s`` the softmax over the negatives."""
    negatives = _negative_mask(scores)
    weights = scores.masked_fill(~negatives, float("-inf")).softmax(dim=1)
    terms = torch.sigmoid(scores - _target_scores(scores)) + torch.sigmoid(scores.square())
    return (terms * weights).sum()


def top1(scores: torch.Tensor) -> torch.Tensor:
    """Mean over the negatives of ``sigmoid(r_j - r_i) + sigmoid(r_j^2)``."""
    negatives = _negative_mask(scores)
    terms = torch.sigmoid(scores - _target_scores(scores)) + torch.sigmoid(scores.square())
    return (terms * negatives).sum() / (scores.shape[1] - 1)


def bpr(scores: torch.Tensor) -> torch.Tensor:
    """Mean over the negatives of ``-log sigmoid(r_i - r_j)``."""
    negatives = _negative_mask(scores)
    terms = -F.logsigmoid(_target_scores(scores) - scores)
    return (terms * negatives).sum() / (scores.shape[1] - 1)


def logq_correction(
    log_counts: torch.Tensor, outputs: torch.Tensor, n_targets: int, sample_alpha: float, logq: float
) -> torch.Tensor:
    """Per-column ``logq * log(sampling probability)`` (up to a constant per row, which softmax ignores).

    The first ``n_targets`` columns are in-batch targets, present in proportion to ``count``; the rest
    were sampled in proportion to ``count ** sample_alpha``.
    """
    log_q = log_counts[outputs]
    log_q[n_targets:] *= sample_alpha
    return log_q.mul_(logq)


def sampled_loss(
    scores: torch.Tensor,
    loss: str,
    *,
    bpreg: float = 0.0,
    elu_param: float = 0.0,
    log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """The configured loss. ``log_q`` (one value per column) is subtracted for cross-entropy; the
    ranking losses first pass the scores through ELU(``elu_param``) (linear when 0)."""
    if loss == "cross-entropy":
        return cross_entropy(scores if log_q is None else scores - log_q)
    if elu_param > 0:
        scores = F.elu(scores, elu_param)
    if loss == "bpr-max":
        return bpr_max(scores, bpreg)
    if loss == "top1-max":
        return top1_max(scores)
    if loss == "top1":
        return top1(scores)
    if loss == "bpr":
        return bpr(scores)
    raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
