"""GRU4Rec's constructor parameters: declared once, with their defaults, allowed values and docs."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import torch

from ...core.params import FRACTION, NON_NEGATIVE, NUMBER, POSITIVE, POSITIVE_INT, Rule, param
from .losses import LOSSES
from .optim import ALGORITHMS


@dataclass(frozen=True)
class GRU4RecParams:
    """The official implementation's parameters, then recpack's training conveniences."""

    layers: list[int] = param([100], Rule(list, items=POSITIVE_INT), "sizes of the GRU layers")
    loss: str = param("cross-entropy", Rule(str, choices=LOSSES), "training loss")
    batch_size: int = param(64, POSITIVE_INT, "sessions trained in parallel (lanes of a mini-batch)")
    dropout_p_embed: float = param(0.0, FRACTION, "dropout on the input embedding")
    dropout_p_hidden: float = param(0.0, FRACTION, "dropout on the GRU layers' output")
    learning_rate: float = param(0.05, POSITIVE, "step size of the optimiser")
    momentum: float = param(0.0, FRACTION, "momentum of the optimiser (0: none)")
    sample_alpha: float = param(
        0.5, Rule(NUMBER, 0, 1), "negatives drawn by popularity ** sample_alpha (0: uniform, 1: popularity)"
    )
    n_sample: int = param(
        2048, Rule(int, 0), "negatives sampled per step (0: the batch's other targets only)"
    )
    embedding: int | str = param(
        0,
        Rule((int, str), 0, choices=("layersize",)),
        "size of a separate input embedding (0: none; 'layersize': the first layer's size)",
    )
    constrained_embedding: bool = param(
        True, Rule(bool), "an item's input embedding is its output weight row"
    )
    n_epochs: int = param(10, Rule(int, 0), "passes over the training data (0: keep the initial weights)")
    bpreg: float = param(1.0, NON_NEGATIVE, "score regularisation of bpr-max")
    elu_param: float = param(0.5, NON_NEGATIVE, "ELU alpha on the scores of the ranking losses (0: linear)")
    logq: float = param(0.0, NON_NEGATIVE, "logQ correction of cross-entropy (0: off)")
    device: str = param("cpu", Rule(str), "torch device, e.g. cpu or cuda:0")
    seed: int = param(42, Rule(int, 0), "seed of initialisation, dropout and sampling")
    optimization_algorithm: str = param(
        "adagrad", Rule(str, choices=ALGORITHMS), "adagrad (Adagrad with momentum) or sgd"
    )
    clipnorm: float | None = param(
        None,
        Rule(NUMBER, 0, low_open=True, nullable=True),
        "clip the joint L2 norm of all gradients (null: no clipping)",
    )
    stop_early: bool = param(False, Rule(bool), "stop when the validation score stops improving")
    max_iter_no_change: int = param(5, POSITIVE_INT, "epochs without improvement before stopping early")
    min_improvement: float = param(
        0.0, NON_NEGATIVE, "gain of the validation score that counts as an improvement"
    )
    stopping_criterion: str = param(
        "recall", Rule(str, choices=("recall", "mrr")), "validation score: Recall or MRR at stopping_cutoff"
    )
    stopping_cutoff: int = param(20, POSITIVE_INT, "cutoff of the validation score")
    keep_last: bool = param(False, Rule(bool), "keep the last epoch's weights (else the best validated)")
    validation_sample_size: int | None = param(
        None, Rule(int, 1, nullable=True), "sessions drawn once from the validation data (null: all)"
    )
    predict_topK: int | None = param(  # recpack's name
        None, Rule(int, 1, nullable=True), "default list length of recommend (null: 20)"
    )
    checkpoint_dir: str | None = param(
        None,
        Rule(str, nullable=True),
        "folder of per-epoch checkpoints a later fit resumes from (null: none)",
    )


def normalised(params: dict) -> dict:
    """``params`` with ``layers`` given as a tuple or NumPy integers made a list of ints, and a
    ``torch.device`` or a path object made text."""
    params = dict(params)
    layers = params.get("layers")
    if isinstance(layers, (list, tuple)) and all(isinstance(x, numbers.Integral) for x in layers):
        params["layers"] = [int(x) for x in layers]
    if isinstance(params.get("device"), torch.device):
        params["device"] = str(params["device"])
    if isinstance(params.get("checkpoint_dir"), os.PathLike):
        params["checkpoint_dir"] = os.fspath(params["checkpoint_dir"])
    return params
