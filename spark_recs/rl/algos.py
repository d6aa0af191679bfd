"""recnn's off-policy updates (DDPG, TD3, BCQ, REINFORCE with the top-K off-policy correction) as update
functions and :class:`Algo` wrappers, with recnn 0.1's defaults and its bugs fixed.

An update function takes ``(batch, params, nets, optimizer, *, generator=None, learn=False, step=-1)`` and
returns its losses as floats plus ``step``. ``batch`` is a dict of tensors: ``state (B, S)``,
``action (B, A)`` (the logged item's embedding), ``reward (B,)``, ``next_state (B, S)``, ``done (B,)`` 0/1
and, for REINFORCE, ``item (B,)`` (the logged item's dense index); it is moved to the networks' device.
``learn=False`` computes the losses and changes no weight (test mode). Every random draw (dropout masks,
target-policy noise, VAE latents) comes from ``generator``.

An :class:`Algo` wrapper holds the networks, their target copies, the optimisers, ``params`` (recnn's
defaults, declared as its ``Params``, overridden by keyword arguments) and a seeded generator::

    ddpg = DDPG(Actor(1290, 128, 256), Critic(1290, 128, 256), seed=0).to("cuda")
    for batch in batches:
        losses = ddpg.update(batch)  # {"value": ..., "policy": ..., "step": ...}
        ddpg.step()

Optimisers are RAdam with decoupled weight decay 1e-2 at recnn's learning rates (recnn used Ranger, i.e.
RAdam with Lookahead and the same decoupled decay, from the ``torch_optimizer`` package); replace them in
``.optimizers`` if needed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

from spark_recs.core.params import (
    NON_NEGATIVE,
    NUMBER,
    POSITIVE_INT,
    Rule,
    check_params,
    declarations,
    param,
)

MAX_GRAD_NORM = 1.0
WEIGHT_DECAY = 1e-2
CORRECTIONS = ("none", "importance", "topk")
_TRANSITION = ("state", "action", "reward", "next_state", "done")
_COLUMNS = ("reward", "done", "item")
_CRITICS = ("value_net1", "value_net2")
_UNIT = Rule(NUMBER, 0, 1)


def _gamma():
    return param(0.99, _UNIT, "discount of the next state's value")


def _soft_tau():
    return param(1e-3, _UNIT, "how far the target networks move towards the online ones per move")


def soft_update(net: nn.Module, target_net: nn.Module, soft_tau: float) -> None:
    """Move ``target_net`` towards ``net``: ``target = (1 - soft_tau) * target + soft_tau * net``."""
    with torch.no_grad():
        for target, online in zip(target_net.parameters(), net.parameters(), strict=True):
            target.lerp_(online, soft_tau)


def _batch(batch: Mapping[str, torch.Tensor], keys: tuple[str, ...], net: nn.Module) -> list[torch.Tensor]:
    """``batch[key]`` for each key on ``net``'s device and dtype (``item`` as int64), checked; reward and
    done become ``(B, 1)`` columns."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"batch must be a dict of tensors with keys {list(keys)}, got {type(batch).__name__}")
    missing = [key for key in keys if key not in batch]
    if missing:
        raise KeyError(f"batch lacks {missing} (it has {sorted(batch)}); this update needs {list(keys)}")
    weight = next(net.parameters())
    rows = len(batch[keys[0]])
    tensors = []
    for key in keys:
        value = torch.as_tensor(batch[key])
        shape = "(B,)" if key in _COLUMNS else "(B, features)"
        if value.dim() != (1 if key in _COLUMNS else 2) or len(value) != rows:
            raise ValueError(
                f"batch[{key!r}] has shape {tuple(value.shape)}, expected {shape} with B = {rows} rows "
                f"(as batch[{keys[0]!r}]): one row per transition"
            )
        if key == "item":
            if value.is_floating_point() or value.dtype == torch.bool:
                raise TypeError(
                    f"batch['item'] holds {value.dtype}; it must be integer item indices (.long())"
                )
            tensors.append(value.to(weight.device, torch.long))
        else:
            value = value.to(weight.device, weight.dtype)
            tensors.append(value.unsqueeze(1) if key in _COLUMNS else value)
    return tensors


def _td_target(reward, done, gamma, next_value):
    return reward + (1.0 - done) * gamma * next_value


def _optimizer_key(net: str) -> str:
    """recnn's name of the optimiser of network ``net``: ``value_net1`` -> ``value_optimizer1``."""
    return net.replace("_net", "_optimizer")


def _descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, clipped: nn.Module | None = None) -> None:
    """One step on ``loss``; with ``clipped``, that network's gradient norm clipped to ``MAX_GRAD_NORM``."""
    optimizer.zero_grad()
    loss.backward()
    if clipped is not None:
        torch.nn.utils.clip_grad_norm_(clipped.parameters(), MAX_GRAD_NORM)
    optimizer.step()


def _critic_step(nets, optimizer, critics, state, action, expected, learn, generator) -> list[torch.Tensor]:
    """Each critic's loss ``mse(Q(s, a), expected)``; with ``learn``, one step of each on it."""
    with torch.set_grad_enabled(learn):
        losses = [F.mse_loss(nets[name](state, action, generator=generator), expected) for name in critics]
    if learn:
        for name, loss in zip(critics, losses, strict=True):
            _descend(optimizer[_optimizer_key(name)], loss)
    return losses


def _actor_step(nets, optimizer, actor: str, critic: str, inputs, update: bool, generator) -> torch.Tensor:
    """The loss ``-Q(s, actor(*inputs))`` (``s = inputs[0]``) under ``critic``; with ``update``, one clipped
    step on it.

    recnn called ``clip_grad_norm_(params, -1, 1)``: with a negative max norm the clip coefficient is
    negative and multiplies the gradient, so the step went uphill on ``-Q``: the actor minimised Q.
    """
    with torch.set_grad_enabled(update):
        action = nets[actor](*inputs, generator=generator)
        loss = -nets[critic](inputs[0], action, generator=generator).mean()
    if update:
        _descend(optimizer[_optimizer_key(actor)], loss, clipped=nets[actor])
    return loss


def _move_targets(nets, soft_tau: float) -> None:
    """Soft-update every ``target_<name>`` towards ``<name>``."""
    for name in nets:
        if f"target_{name}" in nets:
            soft_update(nets[name], nets[f"target_{name}"], soft_tau)


def ddpg_update(batch, params, nets, optimizer, *, generator=None, learn=False, step=-1) -> dict:
    """DDPG: the critic regresses on ``clamp(r + gamma (1 - done) Q'(s', pi'(s')), min_value, max_value)``
    from the target networks; every ``policy_step`` steps the actor ascends ``Q(s, pi(s))`` and both target
    networks move ``soft_tau`` towards the online ones. Returns ``{"value", "policy", "step"}``."""
    state, action, reward, next_state, done = _batch(batch, _TRANSITION, nets["value_net"])
    with torch.no_grad():
        next_action = nets["target_policy_net"](next_state, generator=generator)
        next_value = nets["target_value_net"](next_state, next_action, generator=generator)
        expected = _td_target(reward, done, params["gamma"], next_value)
        expected = expected.clamp(params["min_value"], params["max_value"])
    (value_loss,) = _critic_step(nets, optimizer, ["value_net"], state, action, expected, learn, generator)
    update_policy = learn and step % params["policy_step"] == 0
    policy_loss = _actor_step(nets, optimizer, "policy_net", "value_net", [state], update_policy, generator)
    if update_policy:
        _move_targets(nets, params["soft_tau"])
    return {"value": value_loss.item(), "policy": policy_loss.item(), "step": step}


def td3_update(batch, params, nets, optimizer, *, generator=None, learn=False, step=-1) -> dict:
    """TD3: both critics regress on ``r + gamma (1 - done) min(Q1', Q2')(s', pi'(s') + clip(noise))`` with
    Gaussian noise (``noise_std``, clipped to ``noise_clip``); every ``policy_update`` steps the actor
    ascends ``Q1(s, pi(s))`` and the three target networks move ``soft_tau`` towards the online ones.
    Returns ``{"value1", "value2", "policy", "step"}``."""
    state, action, reward, next_state, done = _batch(batch, _TRANSITION, nets["value_net1"])
    with torch.no_grad():
        next_action = nets["target_policy_net"](next_state, generator=generator)
        noise = torch.randn(
            next_action.shape, generator=generator, device=next_action.device, dtype=next_action.dtype
        )
        noise = (noise * params["noise_std"]).clamp(-params["noise_clip"], params["noise_clip"])
        next_action = next_action + noise
        next_value = torch.min(
            nets["target_value_net1"](next_state, next_action, generator=generator),
            nets["target_value_net2"](next_state, next_action, generator=generator),
        )
        expected = _td_target(reward, done, params["gamma"], next_value)
    value_loss1, value_loss2 = _critic_step(
        nets, optimizer, _CRITICS, state, action, expected, learn, generator
    )
    update_policy = learn and step % params["policy_update"] == 0
    policy_loss = _actor_step(nets, optimizer, "policy_net", "value_net1", [state], update_policy, generator)
    if update_policy:
        # recnn never updated the target policy, so its TD targets used the initial actor forever.
        _move_targets(nets, params["soft_tau"])
    return {
        "value1": value_loss1.item(),
        "value2": value_loss2.item(),
        "policy": policy_loss.item(),
        "step": step,
    }


def bcq_update(batch, params, nets, optimizer, *, generator=None, learn=False, step=-1) -> dict:
    """Batch-constrained Q-learning (Fujimoto et al. 2019).

    The generator (a conditional VAE) learns the logged actions: ``mse(recon, action) + 0.5 * KL``. Both
    critics regress on ``r + gamma (1 - done) max_j [0.75 min(Q1', Q2') + 0.25 max(Q1', Q2')](s', a_j)``
    over ``n_generator_samples`` generated actions ``a_j`` perturbed by the target perturbator. Every
    ``perturbator_step`` steps the perturbator ascends ``Q1(s, perturbed generated action)``; the target
    critics and target perturbator move ``soft_tau`` every learning step.
    Returns ``{"generator", "value1", "value2", "perturbator", "step"}``.

    Fixed from recnn: it called ``torch.functional.mse_loss`` (no such function: the update raised), read
    the first target critic twice instead of taking the min/max of the two, and backpropagated the first
    critic's loss only, so the second critic (and its target) never trained.
    """
    state, action, reward, next_state, done = _batch(batch, _TRANSITION, nets["value_net1"])
    generator_net = nets["generator_net"]
    with torch.set_grad_enabled(learn):
        recon, mean, std = generator_net(state, action, generator=generator)
        kl = -0.5 * (1 + torch.log(std.pow(2)) - mean.pow(2) - std.pow(2)).mean()
        generator_loss = F.mse_loss(recon, action) + 0.5 * kl
    if learn:
        _descend(optimizer["generator_optimizer"], generator_loss)

    with torch.no_grad():
        samples = params["n_generator_samples"]
        repeated = next_state.repeat_interleave(samples, 0)
        sampled = generator_net.decode(repeated, generator=generator)
        candidates = nets["target_perturbator_net"](repeated, sampled, generator=generator)
        q1 = nets["target_value_net1"](repeated, candidates, generator=generator)
        q2 = nets["target_value_net2"](repeated, candidates, generator=generator)
        next_value = 0.75 * torch.min(q1, q2) + 0.25 * torch.max(q1, q2)
        next_value = next_value.view(-1, samples).max(1).values.unsqueeze(1)
        expected = _td_target(reward, done, params["gamma"], next_value)
    value_loss1, value_loss2 = _critic_step(
        nets, optimizer, _CRITICS, state, action, expected, learn, generator
    )
    with torch.no_grad():
        sampled = generator_net.decode(state, generator=generator)
    update_perturbator = learn and step % params["perturbator_step"] == 0
    perturbator_loss = _actor_step(
        nets, optimizer, "perturbator_net", "value_net1", [state, sampled], update_perturbator, generator
    )
    if learn:
        _move_targets(nets, params["soft_tau"])
    return {
        "generator": generator_loss.item(),
        "value1": value_loss1.item(),
        "value2": value_loss2.item(),
        "perturbator": perturbator_loss.item(),
        "step": step,
    }


def correction_weight(pi_log_prob, beta_log_prob, correction: str, K: int) -> torch.Tensor:
    """The off-policy weight of each logged item (Chen et al. 2019, "Top-K Off-Policy Correction for a
    REINFORCE Recommender System"): ``"none"`` 1, ``"importance"`` ``pi / beta``, ``"topk"``
    ``pi / beta * K (1 - pi)^(K - 1)``. A constant weight: it carries no gradient."""
    pi_log_prob, beta_log_prob = pi_log_prob.detach(), beta_log_prob.detach()
    if correction == "none":
        return torch.ones_like(pi_log_prob)
    weight = torch.exp(pi_log_prob - beta_log_prob)
    if correction == "importance":
        return weight
    if correction == "topk":
        return weight * K * (1 - pi_log_prob.exp()) ** (K - 1)
    raise ValueError(f"params['correction'] is {correction!r}; use one of {list(CORRECTIONS)}")


def reinforce_update(batch, params, nets, optimizer, *, generator=None, learn=False, step=-1) -> dict:
    """REINFORCE on the logged items with an off-policy correction.

    The behaviour policy ``beta_net`` learns the logged items by cross-entropy, ``-mean log beta(a|s)``;
    the policy minimises ``-mean(w * r * log pi(a|s))`` with ``a`` the logged item (``batch["item"]``),
    ``r`` the logged reward (a one-step return: a batch's transitions are not ordered episodes) and ``w``
    :func:`correction_weight` (``params["correction"]``, ``params["K"]``).
    Both networks are :class:`~spark_recs.rl.nets.DiscreteActor` (or anything with ``log_probs``).
    ``generator`` is unused (nothing is sampled). Returns ``{"policy", "beta", "step"}``.

    Fixed from recnn: its behaviour network ended in a softmax and was trained with ``CrossEntropyLoss``
    (a second softmax); its policy weighted log-probabilities by the critic's value of the policy's own
    output instead of the logged reward; it sampled the actions whose probabilities it corrected instead of
    using the logged ones; and its weights carried gradient.
    """
    state, reward, item = _batch(batch, ("state", "reward", "item"), nets["policy_net"])
    taken = item.unsqueeze(1)
    with torch.set_grad_enabled(learn):
        pi_log_probs = nets["policy_net"].log_probs(state)
        n_items = pi_log_probs.shape[1]
        if len(item) and (item.min() < 0 or item.max() >= n_items):
            raise ValueError(
                f"batch['item'] holds indices outside [0, {n_items}) (the policy's item count): "
                "pass dense item indices"
            )
        pi_log_prob = pi_log_probs.gather(1, taken).squeeze(1)
        beta_log_prob = nets["beta_net"].log_probs(state).gather(1, taken).squeeze(1)
        beta_loss = -beta_log_prob.mean()
        weight = correction_weight(pi_log_prob, beta_log_prob, params["correction"], params["K"])
        policy_loss = -(weight * reward.squeeze(1) * pi_log_prob).mean()
    if learn:
        _descend(optimizer["beta_optimizer"], beta_loss)
        _descend(optimizer["policy_optimizer"], policy_loss)
    return {"policy": policy_loss.item(), "beta": beta_loss.item(), "step": step}


class MLflowWriter:
    """Sends an Algo's losses to the active MLflow run as ``train/<loss>`` and ``test/<loss>`` metrics at
    their step: training losses every ``every`` steps, test losses at every call. Without an active run it
    does nothing."""

    def __init__(self, every: int = 100):
        if every < 1:
            raise ValueError(f"every must be >= 1 (log every that many training steps), got {every}")
        self.every = every

    def write(self, losses: Mapping[str, float], kind: str, step: int) -> None:
        if (kind == "train" and step % self.every) or mlflow.active_run() is None:
            return
        mlflow.log_metrics(
            {f"{kind}/{key}": float(v) for key, v in losses.items() if key != "step"}, step=step
        )


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


class Algo:
    """An update function with its state: ``nets`` (the given networks, each in ``targets`` followed by a
    frozen ``target_<name>`` copy), one RAdam optimiser per given network (``<name>_optimizer``, at the
    learning rate ``<name>_lr``, a trailing digit dropped), ``params``, the step counter ``_step`` (advanced
    by :meth:`step`), a ``generator`` seeded with ``seed`` and a ``writer`` (:class:`MLflowWriter`;
    anything with ``write(losses, kind, step)``). ``loss_layout`` lists the loss keys per mode, as recnn.
    A subclass declares its parameters as ``Params``; ``defaults`` is derived from it."""

    Params: ClassVar[type]
    defaults: ClassVar[dict[str, object]]
    loss_keys: ClassVar[tuple[str, ...]]
    update_function: ClassVar[Callable[..., dict]]
    targets: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.defaults = {name: p.default for name, p in declarations(cls).items()}

    def __init__(self, nets: dict[str, nn.Module], seed: int, params: Mapping[str, object]):
        self.params = check_params(self, params)
        self.nets: dict[str, nn.Module] = {}
        for name, net in nets.items():
            self.nets[name] = net
            if name in self.targets:  # frozen, without dropout, moved only by soft_update
                self.nets[f"target_{name}"] = copy.deepcopy(net).eval().requires_grad_(False)
        # foreach: PyTorch's default on CPU is the per-tensor loop, 6x slower for RAdam at recnn's sizes.
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            _optimizer_key(name): torch.optim.RAdam(
                net.parameters(),
                lr=self.params[name.split("_net")[0] + "_lr"],
                weight_decay=WEIGHT_DECAY,
                decoupled_weight_decay=True,
                foreach=True,
            )
            for name, net in nets.items()
        }
        self.device = _device(next(iter(nets.values())))
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.writer = MLflowWriter()
        self.loss_layout = {
            kind: {key: [] for key in (*self.loss_keys, "step")} for kind in ("train", "test")
        }
        self._step = 0

    def update(self, batch: Mapping[str, torch.Tensor], learn: bool = True) -> dict:
        """One update on ``batch`` at the current step; returns the losses. ``learn=False`` only computes
        them (test mode) and restores the generator afterwards, so test calls leave training unchanged."""
        saved = None if learn else self.generator.get_state()
        losses = self.update_function(
            batch,
            self.params,
            self.nets,
            self.optimizers,
            generator=self.generator,
            learn=learn,
            step=self._step,
        )
        if saved is not None:
            self.generator.set_state(saved)
        self.writer.write(losses, "train" if learn else "test", self._step)
        return losses

    def step(self) -> None:
        self._step += 1

    def to(self, device: torch.device | str) -> Algo:
        """Move the networks (before training: optimiser state is not moved) and the generator, reseeded
        from a draw of the current one when its device changes."""
        self.nets = {name: net.to(device) for name, net in self.nets.items()}
        device = _device(next(iter(self.nets.values())))
        if device != self.generator.device:
            seed = int(torch.randint(2**62, (1,), generator=self.generator, device=self.generator.device))
            self.generator = torch.Generator(device=device).manual_seed(seed)
        self.device = device
        return self


@dataclass(frozen=True)
class DDPGParams:
    """:func:`ddpg_update`'s parameters, recnn's defaults."""

    gamma: float = _gamma()
    min_value: float = param(-10, Rule(NUMBER), "lower bound of the critic's TD target")
    max_value: float = param(10, Rule(NUMBER), "upper bound of the critic's TD target")
    policy_step: int = param(3, POSITIVE_INT, "the actor and the targets move every that many steps")
    soft_tau: float = _soft_tau()
    policy_lr: float = param(1e-5, NON_NEGATIVE, "learning rate of the actor")
    value_lr: float = param(1e-5, NON_NEGATIVE, "learning rate of the critic")


class DDPG(Algo):
    """:func:`ddpg_update` on ``policy_net`` (an :class:`~spark_recs.rl.nets.Actor`) and ``value_net`` (a
    :class:`~spark_recs.rl.nets.Critic`) with recnn's defaults."""

    Params = DDPGParams
    loss_keys = ("value", "policy")
    update_function = staticmethod(ddpg_update)
    targets = ("value_net", "policy_net")

    def __init__(self, policy_net: nn.Module, value_net: nn.Module, *, seed: int = 0, **params):
        super().__init__({"value_net": value_net, "policy_net": policy_net}, seed, params)


@dataclass(frozen=True)
class TD3Params:
    """:func:`td3_update`'s parameters, recnn's defaults."""

    gamma: float = _gamma()
    noise_std: float = param(0.5, NON_NEGATIVE, "standard deviation of the target policy's noise")
    noise_clip: float = param(3, NON_NEGATIVE, "the target policy's noise is clipped to +-noise_clip")
    soft_tau: float = _soft_tau()
    policy_update: int = param(10, POSITIVE_INT, "the actor and the targets move every that many steps")
    policy_lr: float = param(1e-5, NON_NEGATIVE, "learning rate of the actor")
    value_lr: float = param(1e-5, NON_NEGATIVE, "learning rate of both critics")


class TD3(Algo):
    """:func:`td3_update` on an actor and two critics with recnn's defaults."""

    Params = TD3Params
    loss_keys = ("value1", "value2", "policy")
    update_function = staticmethod(td3_update)
    targets = ("value_net1", "value_net2", "policy_net")

    def __init__(
        self, policy_net: nn.Module, value_net1: nn.Module, value_net2: nn.Module, *, seed: int = 0, **params
    ):
        nets = {"value_net1": value_net1, "value_net2": value_net2, "policy_net": policy_net}
        super().__init__(nets, seed, params)


@dataclass(frozen=True)
class BCQParams:
    """:func:`bcq_update`'s parameters, recnn's defaults."""

    gamma: float = _gamma()
    soft_tau: float = _soft_tau()
    n_generator_samples: int = param(10, POSITIVE_INT, "generated actions scored per next state")
    perturbator_step: int = param(30, POSITIVE_INT, "the perturbator moves every that many steps")
    perturbator_lr: float = param(1e-5, NON_NEGATIVE, "learning rate of the perturbator")
    value_lr: float = param(1e-5, NON_NEGATIVE, "learning rate of both critics")
    generator_lr: float = param(1e-3, NON_NEGATIVE, "learning rate of the generator (a conditional VAE)")


@dataclass(frozen=True)
class BCQNetworkParams:
    """The sizes of BCQ's generator and perturbator (given to them, not to :class:`BCQ`)."""

    latent_dim: int = param(16, POSITIVE_INT, "the generator's latent size")
    phi: float = param(0.05, NON_NEGATIVE, "the perturbation bound, in embedding units")


class BCQ(Algo):
    """:func:`bcq_update` on a :class:`~spark_recs.rl.nets.bcqGenerator`, a
    :class:`~spark_recs.rl.nets.bcqPerturbator` and two critics with recnn's defaults."""

    Params = BCQParams
    loss_keys = ("generator", "value1", "value2", "perturbator")
    update_function = staticmethod(bcq_update)
    targets = ("perturbator_net", "value_net1", "value_net2")

    def __init__(
        self,
        generator_net: nn.Module,
        perturbator_net: nn.Module,
        value_net1: nn.Module,
        value_net2: nn.Module,
        *,
        seed: int = 0,
        **params,
    ):
        nets = {
            "generator_net": generator_net,
            "perturbator_net": perturbator_net,
            "value_net1": value_net1,
            "value_net2": value_net2,
        }
        super().__init__(nets, seed, params)


@dataclass(frozen=True)
class ReinforceParams:
    """:func:`reinforce_update`'s parameters."""

    K: int = param(10, POSITIVE_INT, "list length of the top-K correction")
    correction: str = param(
        "topk", Rule(str, choices=CORRECTIONS), "off-policy correction of each logged item"
    )
    policy_lr: float = param(1e-5, NON_NEGATIVE, "learning rate of the policy")
    beta_lr: float = param(1e-5, NON_NEGATIVE, "learning rate of the behaviour policy")


class Reinforce(Algo):
    """:func:`reinforce_update` on a policy and a behaviour policy (both
    :class:`~spark_recs.rl.nets.DiscreteActor` over the same items). The top-K correction is the default
    (recnn defaulted to plain REINFORCE and switched to top-K in its example), with recnn's ``K = 10``."""

    Params = ReinforceParams
    loss_keys = ("policy", "beta")
    update_function = staticmethod(reinforce_update)

    def __init__(self, policy_net: nn.Module, beta_net: nn.Module, *, seed: int = 0, **params):
        super().__init__({"policy_net": policy_net, "beta_net": beta_net}, seed, params)
