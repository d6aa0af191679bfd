"""recnn's networks: :class:`Actor`, :class:`Critic`, :class:`DiscreteActor`, :class:`bcqGenerator` and
:class:`bcqPerturbator`, with recnn 0.1's constructor signatures, default ``init_w`` values and layer names
(``linear1``..``linear3``, ``e1``.. ``d3``), so recnn state dicts load unchanged.

``init_w`` bounds the uniform initialisation of the output layer (weights and bias); the other layers keep
PyTorch's default initialisation (seed it with ``torch.manual_seed`` before building a net).

Dropout (p = 0.5 after each hidden layer of :class:`Actor`, :class:`Critic` and :class:`bcqPerturbator`, as
in recnn) and the VAE's latent draws take an optional ``generator``: the update functions pass the Algo's
seeded generator so that training is reproducible; without one they use PyTorch's global generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DROPOUT = 0.5
GENERATOR_HIDDEN = 750


def dropout(x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout drawing its mask from ``generator`` (PyTorch's global one when None)."""
    if not training or p == 0.0:
        return x
    # A uniform draw and a comparison: 3x faster on CPU than bernoulli_ (which F.dropout uses).
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x.mul(keep).mul_(1.0 / (1.0 - p))


def _init_output(layer: nn.Linear, init_w: float) -> None:
    nn.init.uniform_(layer.weight, -init_w, init_w)
    nn.init.uniform_(layer.bias, -init_w, init_w)


class _ThreeLayer(nn.Module):
    """``input -> hidden -> hidden -> output`` with ReLU and dropout after both hidden layers."""

    def __init__(self, input_dim: int, output_dim: int, hidden_size: int, init_w: float):
        super().__init__()
        self.linear1 = nn.Linear(input_dim, hidden_size)
        self.linear2 = nn.Linear(hidden_size, hidden_size)
        self.linear3 = nn.Linear(hidden_size, output_dim)
        _init_output(self.linear3, init_w)

    def _mlp(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = dropout(F.relu(self.linear1(x)), DROPOUT, self.training, generator)
        x = dropout(F.relu(self.linear2(x)), DROPOUT, self.training, generator)
        return self.linear3(x)


class Actor(_ThreeLayer):
    """Continuous actor: state -> action (an item embedding), e.g. ``Actor(1290, 128, 256)``."""

    def __init__(self, input_dim: int, action_dim: int, hidden_size: int, init_w: float = 0.2):
        super().__init__(input_dim, action_dim, hidden_size, init_w)

    def forward(
        self, state: torch.Tensor, tanh: bool = False, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The action for each state row; ``tanh=True`` squashes it into (-1, 1) (recnn's default is off:
        item embeddings are not bounded)."""
        action = self._mlp(state, generator)
        return torch.tanh(action) if tanh else action


class Critic(_ThreeLayer):
    """Q-function: ``(state, action) -> value`` of shape ``(B, 1)`` on ``concat(state, action)``."""

    def __init__(self, input_dim: int, action_dim: int, hidden_size: int, init_w: float = 3e-5):
        super().__init__(input_dim + action_dim, 1, hidden_size, init_w)

    def forward(
        self, state: torch.Tensor, action: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self._mlp(torch.cat([state, action], 1), generator)


class DiscreteActor(nn.Module):
    """Softmax policy over ``action_dim`` items: ``state -> hidden -> item logits``.

    ``init_w`` bounds the output layer's initialisation (recnn accepted it but ignored it); the default 0
    starts from the uniform policy. :meth:`forward` returns probabilities (as recnn did); the losses use
    :meth:`log_probs`, a single log-softmax of the logits.
    """

    def __init__(self, input_dim: int, action_dim: int, hidden_size: int, init_w: float = 0):
        super().__init__()
        self.linear1 = nn.Linear(input_dim, hidden_size)
        self.linear2 = nn.Linear(hidden_size, action_dim)
        _init_output(self.linear2, init_w)

    def logits(self, state: torch.Tensor) -> torch.Tensor:
        return self.linear2(F.relu(self.linear1(state)))

    def log_probs(self, state: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.logits(state), dim=1)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.logits(state), dim=1)


class bcqPerturbator(_ThreeLayer):  # lower-case: recnn's public name
    """BCQ's perturbation model: ``(state, action) -> action + phi * tanh(net(state, action))``.

    The perturbation is bounded to ``[-phi, phi]`` per dimension, as in BCQ (Fujimoto et al. 2019,
    phi = 0.05), so the policy stays near the actions the generator proposes; recnn added the raw,
    unbounded network output. ``phi`` is in the units of the action (item embedding) values.
    """

    def __init__(
        self, num_inputs: int, num_actions: int, hidden_size: int, init_w: float = 0.3, phi: float = 0.05
    ):
        super().__init__(num_inputs + num_actions, num_actions, hidden_size, init_w)
        self.phi = phi

    def forward(
        self, state: torch.Tensor, action: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        change = self._mlp(torch.cat([state, action], 1), generator)
        return action + self.phi * torch.tanh(change)


class bcqGenerator(nn.Module):  # lower-case: recnn's public name
    """BCQ's generative model of the logged actions: a conditional VAE (750-unit layers, as recnn).

    The encoder maps ``(state, action)`` to a Gaussian over the latent (log-std clamped to [-4, 15] for
    numerical stability); the decoder maps ``(state, z)`` to an action.
    """

    def __init__(self, state_dim: int, action_dim: int, latent_dim: int):
        super().__init__()
        self.e1 = nn.Linear(state_dim + action_dim, GENERATOR_HIDDEN)
        self.e2 = nn.Linear(GENERATOR_HIDDEN, GENERATOR_HIDDEN)
        self.mean = nn.Linear(GENERATOR_HIDDEN, latent_dim)
        self.log_std = nn.Linear(GENERATOR_HIDDEN, latent_dim)
        self.d1 = nn.Linear(state_dim + latent_dim, GENERATOR_HIDDEN)
        self.d2 = nn.Linear(GENERATOR_HIDDEN, GENERATOR_HIDDEN)
        self.d3 = nn.Linear(GENERATOR_HIDDEN, action_dim)
        self.latent_dim = latent_dim

    def forward(
        self, state: torch.Tensor, action: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction of ``action`` through a reparameterised latent draw, and the latent ``mean``
        and ``std``."""
        h = F.relu(self.e2(F.relu(self.e1(torch.cat([state, action], 1)))))
        mean = self.mean(h)
        std = self.log_std(h).clamp(-4, 15).exp()
        z = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.decode(state, z), mean, std

    def decode(
        self, state: torch.Tensor, z: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decoded actions; without ``z``, a standard normal latent clipped to [-0.5, 0.5] (BCQ's
        sampling, which keeps generated actions near the data)."""
        if z is None:
            shape = (state.shape[0], self.latent_dim)
            z = torch.randn(shape, generator=generator, device=state.device, dtype=state.dtype)
            z = z.clamp(-0.5, 0.5)
        a = F.relu(self.d1(torch.cat([state, z], 1)))
        return self.d3(F.relu(self.d2(a)))
