"""The GRU4Rec network: item input representation, stacked GRU layers, item output weights.

Three input representations, as in the reference:

- ``constrained_embedding``: the input embedding of an item is its output weight row ``Wy[item]``;
- ``embedding=k``: a separate ``k``-dimensional embedding ``E``;
- otherwise the first GRU layer reads the one-hot item directly, so its input weights ``Wx0`` (one row
  per item) are the embedding. This layer keeps the reference's formulation (reset gate applied before
  the recurrent product) and its output, after embedding dropout, is also that layer's hidden state.

Item-indexed weights (``Wy``, ``By``, ``E``, ``Wx0``) are trained row-sparsely: a training step gathers
the rows it uses into leaf tensors whose gradients feed ``RowSparseOptimizer.step_rows``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

COMPATIBILITY_SEED = 42  # the reference always initialises from NumPy's global seed 42


@dataclass
class RowGradient:
    """The rows of item-indexed weight ``name`` that a step used, gathered into ``leaf``.

    After ``backward``, ``gradient()`` gives the touched rows and their summed gradient: ``extra``
    (gathered once per occurrence at positions ``extra_index`` of ``rows``) is added in, and
    ``select`` keeps only the rows the weight really took part in.
    """

    name: str
    rows: torch.Tensor
    leaf: torch.Tensor
    extra: torch.Tensor | None = None
    extra_index: torch.Tensor | None = None
    select: torch.Tensor | None = None

    def gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        grad = self.leaf.grad
        if self.extra is not None:
            grad = grad.index_add_(0, self.extra_index, self.extra.grad)
        if self.select is not None:
            return self.rows[self.select], grad[self.select]
        return self.rows, grad


def dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout with its own generator (so checkpoints can restore the random stream)."""
    if p <= 0 or generator is None:
        return x
    keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)
    return x * keep.div_(1.0 - p)


class GRU4RecNet(nn.Module):
    """Parameters and forward pass of GRU4Rec; training and scoring steps work on explicit hidden states."""

    def __init__(
        self,
        n_items: int,
        layers: list[int],
        embedding: int = 0,
        constrained_embedding: bool = True,
        dropout_p_embed: float = 0.0,
        dropout_p_hidden: float = 0.0,
    ):
        super().__init__()
        self.n_items, self.layers = n_items, list(layers)
        self.dropout_p_embed, self.dropout_p_hidden = dropout_p_embed, dropout_p_hidden
        if constrained_embedding:
            self.input_mode, n_input = "constrained", layers[-1]
        elif embedding:
            self.input_mode, n_input = "separate", embedding
            self.E = nn.Parameter(torch.empty(n_items, embedding))
        else:
            self.input_mode, n_input = "gru", n_items
            h = layers[0]
            self.Wx0 = nn.Parameter(torch.empty(n_items, 3 * h))
            self.Wrz0 = nn.Parameter(torch.empty(h, 2 * h))
            self.Wh0 = nn.Parameter(torch.empty(h, h))
            self.Bh0 = nn.Parameter(torch.zeros(3 * h))
        self.first_cell = 1 if self.input_mode == "gru" else 0
        self.cells = nn.ModuleList(
            nn.GRUCell(layers[i - 1] if i > 0 else n_input, layers[i])
            for i in range(self.first_cell, len(layers))
        )
        self.Wy = nn.Parameter(torch.empty(n_items, layers[-1]))
        self.By = nn.Parameter(torch.zeros(n_items))

    @property
    def item_weight_names(self) -> tuple[str, ...]:
        """Parameters with one row per item (updated row-sparsely)."""
        extra = {"constrained": (), "separate": ("E",), "gru": ("Wx0",)}[self.input_mode]
        return ("Wy", "By", *extra)

    def dense_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if n not in self.item_weight_names}

    # ---- initialisation -------------------------------------------------------------------------------

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Uniform in +-sqrt(6 / (fan_in + fan_out)) per gate block, biases zero."""

        def uniform(t: torch.Tensor, fan_in: int, fan_out: int) -> None:
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            t.uniform_(-bound, bound, generator=generator)

        if self.input_mode == "separate":
            uniform(self.E, *self.E.shape)
        elif self.input_mode == "gru":
            h = self.layers[0]
            uniform(self.Wx0, self.n_items, h)
            uniform(self.Wrz0, h, h)
            uniform(self.Wh0, h, h)
            self.Bh0.zero_()
        for cell in self.cells:
            uniform(cell.weight_ih, cell.input_size, cell.hidden_size)
            uniform(cell.weight_hh, cell.hidden_size, cell.hidden_size)
            cell.bias_ih.zero_()
            cell.bias_hh.zero_()
        uniform(self.Wy, *self.Wy.shape)
        self.By.zero_()

    @torch.no_grad()
    def reset_parameters_compatible(self) -> None:
        """The reference's initialisation: every matrix drawn from NumPy seed 42 in its original order.

        Gate blocks of the GRU input weights are drawn as ``(input, hidden)`` arrays and laid out row-major
        as ``(hidden, input)``, which is the reference's layout whenever the two sizes are equal (the only
        case it supports) and stays well defined when they differ.
        """
        rs = np.random.RandomState(COMPATIBILITY_SEED)

        def draw(rows: int, cols: int) -> np.ndarray:
            bound = np.float32(np.sqrt(6.0 / (rows + cols)))
            return rs.rand(rows, cols).astype(np.float32) * np.float32(2) * bound - bound

        def put(param: torch.Tensor, value: np.ndarray) -> None:
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)).reshape(param.shape))

        if self.input_mode == "separate":
            put(self.E, draw(*self.E.shape))
        elif self.input_mode == "gru":
            h = self.layers[0]
            put(self.Wx0, np.hstack([draw(self.n_items, h) for _ in range(3)]))
            put(self.Wrz0, np.hstack([draw(h, h) for _ in range(2)]))
            put(self.Wh0, draw(h, h))
            self.Bh0.zero_()
        for cell in self.cells:
            n_in, h = cell.input_size, cell.hidden_size
            put(cell.weight_ih, np.vstack([draw(n_in, h).reshape(h, n_in) for _ in range(3)]))
            put(cell.weight_hh, np.vstack([draw(h, h) for _ in range(3)]))
            cell.bias_ih.zero_()
            cell.bias_hh.zero_()
        put(self.Wy, draw(*self.Wy.shape))
        self.By.zero_()

    # ---- forward --------------------------------------------------------------------------------------

    def zero_hidden(self, n: int) -> list[torch.Tensor]:
        return [torch.zeros(n, h, device=self.Wy.device) for h in self.layers]

    def _gru_embedding_cell(self, x_rows: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """First GRU layer on one-hot input: ``x_rows`` are the items' rows of ``Wx0``."""
        vx_cand, vx_r, vx_z = (x_rows + self.Bh0).chunk(3, dim=1)
        vh_r, vh_z = (h @ self.Wrz0).chunk(2, dim=1)
        r = torch.sigmoid(vx_r + vh_r)
        z = torch.sigmoid(vx_z + vh_z)
        candidate = torch.tanh((r * h) @ self.Wh0 + vx_cand)
        return torch.lerp(h, candidate, z)

    def _recur(self, x: torch.Tensor, hidden: list[torch.Tensor], generator) -> torch.Tensor:
        """One step through all layers; replaces ``hidden`` in place and returns the top output.

        The dropped-out output of a layer is both the next layer's input and the state it carries.
        """
        if self.input_mode == "gru":
            x = self._gru_embedding_cell(x, hidden[0])
        x = dropout(x, self.dropout_p_embed, generator)
        if self.input_mode == "gru":
            hidden[0] = x
        for i, cell in enumerate(self.cells, start=self.first_cell):
            x = torch.gru_cell(x, hidden[i], cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
            x = dropout(x, self.dropout_p_hidden, generator)
            hidden[i] = x
        return x

    def _input_weight(self) -> torch.Tensor:
        return {
            "constrained": self.Wy,
            "separate": getattr(self, "E", None),
            "gru": getattr(self, "Wx0", None),
        }[self.input_mode]

    def training_scores(
        self,
        inputs: torch.Tensor,
        outputs: torch.Tensor,
        hidden: list[torch.Tensor],
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, list[RowGradient]]:
        """Scores of ``outputs`` (targets then negatives) for one training step, with dropout.

        Returns the scores and one ``RowGradient`` per item-indexed weight. Scores are computed for the
        distinct output items and then spread to the output columns, so the output weights' gradient
        comes out of one matrix product already summed per item.
        """
        n = inputs.shape[0]

        def gather(weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return weight.detach().index_select(0, rows).requires_grad_()

        if self.input_mode == "constrained":
            # Wy is both the input embedding and the output weights: its touched rows are inputs and outputs.
            rows, inverse = torch.unique(torch.cat([inputs, outputs]), return_inverse=True)
            out_inverse = inverse[n:]
            w, b, x = gather(self.Wy, rows), gather(self.By, rows), gather(self.Wy, inputs)
            is_output = torch.zeros(rows.shape, dtype=torch.bool, device=rows.device).index_fill_(
                0, out_inverse, True
            )
            grads = [RowGradient("Wy", rows, w, x, inverse[:n]), RowGradient("By", rows, b, select=is_output)]
        else:
            rows, out_inverse = torch.unique(outputs, return_inverse=True)
            in_rows, in_inverse = torch.unique(inputs, return_inverse=True)
            w, b, x_rows = gather(self.Wy, rows), gather(self.By, rows), gather(self._input_weight(), in_rows)
            x = x_rows.index_select(0, in_inverse)
            name = "E" if self.input_mode == "separate" else "Wx0"
            grads = [
                RowGradient("Wy", rows, w),
                RowGradient("By", rows, b),
                RowGradient(name, in_rows, x_rows),
            ]
        top = self._recur(x, hidden, generator)
        return torch.addmm(b, top, w.t()).index_select(1, out_inverse), grads

    @torch.no_grad()
    def step(self, inputs: torch.Tensor, hidden: list[torch.Tensor]) -> torch.Tensor:
        """Feed one item per row (no dropout); updates ``hidden`` and returns the top layer's output."""
        x = self._input_weight().index_select(0, inputs)
        return self._recur(x, hidden, None)

    @torch.no_grad()
    def score_all(self, top: torch.Tensor) -> torch.Tensor:
        """Scores of every item (no final activation) for top-layer outputs ``top``."""
        return torch.addmm(self.By, top, self.Wy.t())
