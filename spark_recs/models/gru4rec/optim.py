"""Optimisers that update item-indexed weights only on the rows a mini-batch touched.

``adagrad`` is the reference's Adagrad with momentum: ``acc += g^2``, ``step = lr * g / sqrt(acc + eps)``,
``mom = momentum * mom - step``, ``w += mom``. ``sgd`` is plain SGD with heavy-ball momentum
(``buf = momentum * buf + g``, ``w -= lr * buf``). For item-indexed weights the accumulators and the
momentum of a row change only in steps whose batch uses that row, which is what makes a step cost
O(rows used) instead of O(items).
"""

from __future__ import annotations

import torch

ALGORITHMS = ("adagrad", "sgd")


class RowSparseOptimizer:
    """Adagrad+momentum or SGD+momentum over named tensors; dense and row-sparse steps share the state."""

    def __init__(self, params: dict[str, torch.Tensor], algorithm="adagrad", lr=0.05, momentum=0.0, eps=1e-6):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown optimization_algorithm {algorithm!r}; expected one of {ALGORITHMS}")
        if lr <= 0:
            raise ValueError(f"learning_rate must be positive, got {lr}")
        if momentum < 0:
            raise ValueError(f"momentum must be non-negative, got {momentum}")
        self.algorithm, self.lr, self.momentum, self.eps = algorithm, lr, momentum, eps
        self.state: dict[str, torch.Tensor] = {}
        for name, param in params.items():
            if algorithm == "adagrad":
                self.state[f"{name}.acc"] = torch.zeros_like(param)
            if momentum > 0:
                self.state[f"{name}.mom"] = torch.zeros_like(param)

    @torch.no_grad()
    def step_dense(self, name: str, param: torch.Tensor, grad: torch.Tensor) -> None:
        """Update every element of ``param``."""
        if self.algorithm == "adagrad":
            acc = self.state[f"{name}.acc"].addcmul_(grad, grad)
            denom = (acc + self.eps).sqrt_()
            if self.momentum > 0:
                mom = self.state[f"{name}.mom"].mul_(self.momentum).addcdiv_(grad, denom, value=-self.lr)
                param.add_(mom)
            else:
                param.addcdiv_(grad, denom, value=-self.lr)
        elif self.momentum > 0:
            buf = self.state[f"{name}.mom"].mul_(self.momentum).add_(grad)
            param.add_(buf, alpha=-self.lr)
        else:
            param.add_(grad, alpha=-self.lr)

    @torch.no_grad()
    def step_rows(self, name: str, param: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor) -> None:
        """Update only ``param[rows]`` (``rows`` unique) with the gradient rows ``grad``."""
        if self.algorithm == "adagrad":
            acc_state = self.state[f"{name}.acc"]
            acc = acc_state.index_select(0, rows).addcmul_(grad, grad)
            acc_state.index_copy_(0, rows, acc)
            update = grad / acc.add_(self.eps).sqrt_().mul_(-1.0 / self.lr)
        else:
            update = grad
        if self.momentum > 0:
            mom_state = self.state[f"{name}.mom"]
            mom = mom_state.index_select(0, rows).mul_(self.momentum).add_(update)
            mom_state.index_copy_(0, rows, mom)
            update = mom
        if self.algorithm == "sgd":
            update = update * -self.lr
        param.index_add_(0, rows, update)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.state) ^ set(state)
        if missing:
            raise ValueError(f"optimiser state does not match: {sorted(missing)}")
        for key, value in state.items():
            self.state[key].copy_(value)


def clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> None:
    """Scale all gradients together so that their joint L2 norm is at most ``max_norm``.

    For item-indexed weights the gradient rows passed here are all of that weight's nonzero gradient, so
    the norm equals that of the full dense gradient.
    """
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale)
