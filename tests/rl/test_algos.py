"""Off-policy updates on fixed random batches: losses against hand computations, the direction of each
step, exact soft updates, reproducibility from the seed, test mode, the MLflow writer and input errors.
Each fixed recnn bug has a test here that fails on it (named in the test's docstring)."""

from __future__ import annotations

import copy

import mlflow
import pytest
import torch
import torch.nn.functional as F

from spark_recs.rl.algos import BCQ, DDPG, TD3, MLflowWriter, Reinforce, reinforce_update
from spark_recs.rl.nets import Actor, Critic, DiscreteActor, bcqGenerator, bcqPerturbator

S, A, ITEMS, ROWS = 10, 4, 6, 32
FAST = {
    "ddpg": {"policy_lr": 3e-2, "value_lr": 3e-2},
    "td3": {"policy_lr": 3e-2, "value_lr": 3e-2},
    "bcq": {"perturbator_lr": 3e-2, "value_lr": 3e-2, "generator_lr": 3e-3},
    "reinforce": {"policy_lr": 3e-2, "beta_lr": 3e-2},
}
CONTINUOUS = ["ddpg", "td3", "bcq"]
TARGETS = {
    "ddpg": ["target_value_net", "target_policy_net"],
    "td3": ["target_value_net1", "target_value_net2", "target_policy_net"],
    "bcq": ["target_value_net1", "target_value_net2", "target_perturbator_net"],
}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


def make_batch(seed=0, rows=ROWS, state_dim=S, action_dim=A, items=ITEMS):
    g = torch.Generator().manual_seed(seed)
    return {
        "state": torch.randn(rows, state_dim, generator=g),
        "action": torch.randn(rows, action_dim, generator=g),
        "reward": torch.randn(rows, generator=g),
        "next_state": torch.randn(rows, state_dim, generator=g),
        "done": (torch.rand(rows, generator=g) < 0.25).float(),
        "item": torch.randint(items, (rows,), generator=g),
        "user": torch.randint(1000, (rows,), generator=g),
    }


def build(name, seed=0, state_dim=S, action_dim=A, hidden=16, items=ITEMS, critic_init_w=0.1, **params):
    """The algorithm ``name`` on freshly initialised nets (the same initial weights on every call)."""
    torch.manual_seed(123)
    if name == "ddpg":
        return DDPG(
            Actor(state_dim, action_dim, hidden),
            Critic(state_dim, action_dim, hidden, critic_init_w),
            seed=seed,
            **params,
        )
    if name == "td3":
        critics = [Critic(state_dim, action_dim, hidden, critic_init_w) for _ in range(2)]
        return TD3(Actor(state_dim, action_dim, hidden), *critics, seed=seed, **params)
    if name == "bcq":
        critics = [Critic(state_dim, action_dim, hidden, critic_init_w) for _ in range(2)]
        generator = bcqGenerator(state_dim, action_dim, 8)
        return BCQ(
            generator, bcqPerturbator(state_dim, action_dim, hidden, phi=0.5), *critics, seed=seed, **params
        )
    policy, beta = DiscreteActor(state_dim, items, hidden, 0.3), DiscreteActor(state_dim, items, hidden, 0.3)
    return Reinforce(policy, beta, seed=seed, **params)


def weights(algo):
    return {
        f"{name}.{key}": value.clone()
        for name, net in algo.nets.items()
        for key, value in net.state_dict().items()
    }


def train(algo, batch, steps):
    losses = []
    for _ in range(steps):
        losses.append(algo.update(batch))
        algo.step()
    return losses


@pytest.mark.parametrize(
    "name,keys",
    [("ddpg", ["value"]), ("td3", ["value1", "value2"]), ("bcq", ["value1", "value2", "generator"])],
)
def test_critic_and_generator_losses_fall_on_a_fixed_batch(name, keys):
    params = {"n_generator_samples": 2} if name == "bcq" else {}
    algo = build(name, **FAST[name], **params)
    losses = train(algo, make_batch(), 150)  # RAdam warms up over its first ~40 steps
    for key in keys:
        first = sum(loss[key] for loss in losses[:5]) / 5
        last = sum(loss[key] for loss in losses[-5:]) / 5
        assert last < 0.7 * first, (key, first, last)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_actor_step_raises_the_frozen_critics_q(name):
    """Fails on recnn's ``clip_grad_norm_(params, -1, 1)``, which reversed the actor's gradient."""
    params = {
        "ddpg": {"value_lr": 0.0},
        "td3": {"value_lr": 0.0},
        "bcq": {"value_lr": 0.0, "generator_lr": 0.0},
    }
    algo = build(name, critic_init_w=1.0, **{**FAST[name], **params[name]})
    for net in algo.nets.values():
        net.eval()  # no dropout: Q(s, actor(s)) is a deterministic function of the weights
    batch = make_batch()
    state = batch["state"]
    if name == "bcq":
        with torch.no_grad():  # decoded actions independent of the latent: the same ones in update and here
            algo.nets["generator_net"].d1.weight[:, S:] = 0.0

    actor = algo.nets["perturbator_net" if name == "bcq" else "policy_net"]

    def q_of_policy():
        if name == "bcq":
            with torch.no_grad():
                sampled = algo.nets["generator_net"].decode(state)
            return algo.nets["value_net1"](state, actor(state, sampled)).mean()
        return algo.nets["value_net" if name == "ddpg" else "value_net1"](state, actor(state)).mean()

    before = q_of_policy()
    uphill = torch.autograd.grad(before, list(actor.parameters()))
    critic_before, actor_before = weights(algo), [p.detach().clone() for p in actor.parameters()]
    algo.update(batch)
    after = q_of_policy()
    critic = [key for key in critic_before if key.startswith("value_net")]
    assert all(torch.equal(critic_before[key], weights(algo)[key]) for key in critic)
    step = sum(((p - p0) * g).sum() for p, p0, g in zip(actor.parameters(), actor_before, uphill))
    assert step > 0
    assert after > before


@pytest.mark.parametrize("name", CONTINUOUS)
def test_target_networks_move_exactly_tau_towards_the_online_ones(name):
    """For TD3 this fails on recnn, whose target policy never moved."""
    tau = 0.05
    algo = build(name, soft_tau=tau, **FAST[name])
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # targets away from the online nets, so that a move is visible
        for target in TARGETS[name]:
            for p in algo.nets[target].parameters():
                p.add_(torch.randn(p.shape, generator=g))
    before = weights(algo)
    algo.update(make_batch())  # step 0: a policy step for every algorithm
    after = weights(algo)
    for target in TARGETS[name]:
        online = target.removeprefix("target_")
        for key in algo.nets[target].state_dict():
            expected = (1 - tau) * before[f"{target}.{key}"] + tau * after[f"{online}.{key}"]
            torch.testing.assert_close(after[f"{target}.{key}"], expected)
            assert not torch.equal(after[f"{target}.{key}"], before[f"{target}.{key}"])


def test_ddpg_targets_wait_for_the_policy_step():
    algo = build("ddpg", policy_step=3)
    algo.step()  # step 1: the critic learns, the actor and the targets do not
    before = weights(algo)
    algo.update(make_batch())
    after = weights(algo)
    for key in before:
        changed = not torch.equal(before[key], after[key])
        assert changed == key.startswith("value_net."), key


def constant_critic(critic, value):
    with torch.no_grad():
        critic.linear3.weight.zero_()
        critic.linear3.bias.fill_(value)


def test_ddpg_value_loss_is_the_clamped_td_error():
    algo = build("ddpg")
    for net in algo.nets.values():
        net.eval()
    constant_critic(algo.nets["target_value_net"], 50.0)
    batch = make_batch()
    expected = (batch["reward"] + 0.99 * (1 - batch["done"]) * 50.0).clamp(-10, 10)
    q = algo.nets["value_net"](batch["state"], batch["action"]).squeeze(1)
    policy_q = algo.nets["value_net"](batch["state"], algo.nets["policy_net"](batch["state"])).mean()
    losses = algo.update(batch, learn=False)
    assert losses["value"] == pytest.approx(((q - expected) ** 2).mean().item(), rel=1e-5)
    assert losses["policy"] == pytest.approx(-policy_q.item(), rel=1e-5)


def test_td3_value_target_takes_the_smaller_target_critic():
    algo = build("td3")
    constant_critic(algo.nets["target_value_net1"], 3.0)
    constant_critic(algo.nets["target_value_net2"], -2.0)
    for net in algo.nets.values():
        net.eval()
    batch = make_batch()
    expected = batch["reward"] + 0.99 * (1 - batch["done"]) * -2.0
    losses = algo.update(batch, learn=False)
    for i in (1, 2):
        q = algo.nets[f"value_net{i}"](batch["state"], batch["action"]).squeeze(1)
        assert losses[f"value{i}"] == pytest.approx(((q - expected) ** 2).mean().item(), rel=1e-5)


def test_bcq_losses_use_both_target_critics_and_the_vae_objective():
    """Fails on recnn: ``torch.functional.mse_loss`` raised, and its target read target critic 1 twice
    (which would give a target of 5 here instead of 0.75 * -5 + 0.25 * 5)."""
    algo = build("bcq")
    constant_critic(algo.nets["target_value_net1"], 5.0)
    constant_critic(algo.nets["target_value_net2"], -5.0)
    for net in algo.nets.values():
        net.eval()
    batch = make_batch()
    replay = torch.Generator().set_state(
        algo.generator.get_state()
    )  # the update's first draw: the VAE latent
    losses = algo.update(batch, learn=False)

    recon, mean, std = algo.nets["generator_net"](batch["state"], batch["action"], generator=replay)
    kl = (-0.5 * (1 + 2 * std.log() - mean**2 - std**2)).mean()
    expected_generator = ((recon - batch["action"]) ** 2).mean() + 0.5 * kl
    assert losses["generator"] == pytest.approx(expected_generator.item(), rel=1e-5)
    expected = batch["reward"] + 0.99 * (1 - batch["done"]) * (0.75 * -5.0 + 0.25 * 5.0)
    for i in (1, 2):
        q = algo.nets[f"value_net{i}"](batch["state"], batch["action"]).squeeze(1)
        assert losses[f"value{i}"] == pytest.approx(((q - expected) ** 2).mean().item(), rel=1e-5)


def test_bcq_trains_both_critics():
    """Fails on recnn, which backpropagated the first critic's loss only."""
    algo = build("bcq", **FAST["bcq"])
    before = weights(algo)
    algo.update(make_batch())
    after = weights(algo)
    for critic in ("value_net1", "value_net2", "generator_net", "perturbator_net"):
        keys = [key for key in before if key.startswith(critic + ".")]
        assert all(not torch.equal(before[key], after[key]) for key in keys), critic


@pytest.mark.parametrize("correction", ["none", "importance", "topk"])
def test_reinforce_matches_a_hand_computation(correction):
    """Fails on recnn's double softmax, its critic-valued reward and its gradient through the weights:
    the losses and the gradients of the output biases are computed here from the definitions, in float64."""
    torch.manual_seed(7)
    policy, beta = DiscreteActor(3, 4, 5, init_w=1.0), DiscreteActor(3, 4, 5, init_w=1.0)
    batch = {
        "state": torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-1.0, 1.0, 1.0]]),
        "reward": torch.tensor([2.0, -1.0, 0.5]),
        "item": torch.tensor([3, 0, 3]),
    }
    K, rows = 3, torch.arange(3)

    def probs(net):
        hidden = (batch["state"].double() @ net.linear1.weight.double().T + net.linear1.bias.double()).clamp(
            min=0
        )
        logits = hidden @ net.linear2.weight.double().T + net.linear2.bias.double()
        return logits.exp() / logits.exp().sum(1, keepdim=True)

    pi, b = probs(policy), probs(beta)
    pi_a, b_a, r = pi[rows, batch["item"]], b[rows, batch["item"]], batch["reward"].double()
    w = {"none": torch.ones(3), "importance": pi_a / b_a, "topk": pi_a / b_a * K * (1 - pi_a) ** (K - 1)}[
        correction
    ]
    expected_policy = -(w * r * pi_a.log()).mean()
    expected_beta = -b_a.log().mean()
    onehot = F.one_hot(batch["item"], 4).double()
    # d loss / d logits: policy -(1/B) w r (onehot - pi); beta -(1/B) (onehot - beta). The output bias
    # gradient is their column sum.
    policy_bias_grad = (-(w * r).unsqueeze(1) * (onehot - pi)).mean(0)
    beta_bias_grad = (-(onehot - b)).mean(0)

    nets = {"policy_net": policy, "beta_net": beta}
    params = {"K": K, "correction": correction}
    test_losses = reinforce_update(batch, params, nets, {}, learn=False)
    assert test_losses["policy"] == pytest.approx(expected_policy.item(), rel=1e-5)
    assert test_losses["beta"] == pytest.approx(expected_beta.item(), rel=1e-5)

    bias_before = {name: net.linear2.bias.detach().clone() for name, net in nets.items()}
    optimizer = {
        f"{name[:-4]}_optimizer": torch.optim.SGD(net.parameters(), lr=1.0) for name, net in nets.items()
    }
    losses = reinforce_update(batch, params, nets, optimizer, learn=True)
    assert losses == test_losses
    torch.testing.assert_close(bias_before["policy_net"] - policy.linear2.bias, policy_bias_grad.float())
    torch.testing.assert_close(bias_before["beta_net"] - beta.linear2.bias, beta_bias_grad.float())


def test_reinforce_learns_the_logged_behaviour_and_favours_rewarded_items():
    algo = build("reinforce", **FAST["reinforce"])
    batch = make_batch()
    batch["reward"] = torch.where(batch["item"] == 2, 1.0, -1.0)
    losses = train(algo, batch, 100)
    assert losses[-1]["beta"] < 0.5 * losses[0]["beta"]
    with torch.no_grad():
        share = algo.nets["policy_net"](batch["state"])[:, 2].mean().item()
    assert share > 0.4  # from about 1/6


@pytest.mark.parametrize("name", ["ddpg", "td3", "bcq", "reinforce"])
def test_same_seed_gives_the_same_training(name):
    """Dropout, target-policy noise and VAE draws come from the Algo's generator: the global generator,
    set differently before each run, changes nothing; another seed changes the run (REINFORCE draws
    nothing)."""
    batch = make_batch()

    def run(seed, global_seed):
        algo = build(name, seed=seed, **FAST[name])
        torch.manual_seed(global_seed)
        return train(algo, batch, 4), weights(algo)

    losses, final = run(seed=11, global_seed=1)
    again, final_again = run(seed=11, global_seed=2)
    assert losses == again
    assert all(torch.equal(final[key], final_again[key]) for key in final)
    other, _ = run(seed=12, global_seed=1)
    assert (other == losses) == (name == "reinforce")


def test_to_the_same_device_keeps_the_run():
    batch = make_batch()
    moved = build("td3", seed=3).to("cpu")
    assert moved.device == torch.device("cpu") and moved.generator.device == torch.device("cpu")
    assert train(moved, batch, 3) == train(build("td3", seed=3), batch, 3)


@pytest.mark.parametrize("name", ["ddpg", "td3", "bcq", "reinforce"])
def test_learn_false_changes_nothing(name):
    batch, probe = make_batch(0), make_batch(1)
    algo, reference = build(name, **FAST[name]), build(name, **FAST[name])
    before = weights(algo)
    optimizer_state = copy.deepcopy([opt.state_dict() for opt in algo.optimizers.values()])
    test_losses = algo.update(probe, learn=False)
    assert set(test_losses) == {*algo.loss_layout["test"]}
    assert all(torch.equal(before[key], value) for key, value in weights(algo).items())
    assert [opt.state_dict() for opt in algo.optimizers.values()] == optimizer_state
    assert algo.update(probe, learn=False) == test_losses  # test mode restores the generator
    # and training afterwards is the training of an algorithm never tested
    assert train(algo, batch, 3) == train(reference, batch, 3)


def test_recnn_shapes():
    batch = make_batch(rows=25, state_dim=1290, action_dim=128, items=50)
    for name, keys in [
        ("ddpg", {"value", "policy"}),
        ("td3", {"value1", "value2", "policy"}),
        ("bcq", {"generator", "value1", "value2", "perturbator"}),
        ("reinforce", {"policy", "beta"}),
    ]:
        algo = build(name, state_dim=1290, action_dim=128, hidden=256, items=50)
        losses = algo.update(batch)
        assert set(losses) == keys | {"step"} and losses["step"] == 0
        assert all(torch.isfinite(torch.tensor(value)) for value in losses.values())
    assert DDPG.defaults == {
        "gamma": 0.99,
        "min_value": -10,
        "max_value": 10,
        "policy_step": 3,
        "soft_tau": 1e-3,
        "policy_lr": 1e-5,
        "value_lr": 1e-5,
    }
    assert (TD3.defaults["noise_std"], TD3.defaults["noise_clip"], TD3.defaults["policy_update"]) == (
        0.5,
        3,
        10,
    )
    assert (BCQ.defaults["n_generator_samples"], BCQ.defaults["perturbator_step"]) == (10, 30)
    assert (BCQ.defaults["generator_lr"], Reinforce.defaults["K"]) == (1e-3, 10)


def test_writer_logs_losses_to_the_active_mlflow_run(mlflow_uri):
    algo = build("ddpg")
    algo.writer = MLflowWriter(every=2)
    batch = make_batch()
    algo.update(batch)  # no active run: nothing to log to, and no error
    assert mlflow.search_runs(search_all_experiments=True).empty
    with mlflow.start_run() as run:
        train_losses = train(algo, batch, 5)
        test_losses = algo.update(batch, learn=False)
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "train/value")
    assert [m.step for m in history] == [0, 2, 4]
    by_step = {loss["step"]: loss for loss in train_losses}
    for metric in history:
        assert metric.value == pytest.approx(by_step[metric.step]["value"])
    (test_metric,) = client.get_metric_history(run.info.run_id, "test/policy")
    assert (test_metric.step, test_metric.value) == (5, pytest.approx(test_losses["policy"]))


def test_bad_input_errors_name_the_problem():
    algo = build("ddpg")
    batch = make_batch()
    with pytest.raises(KeyError, match="next_state"):
        algo.update({k: v for k, v in batch.items() if k != "next_state"})
    with pytest.raises(ValueError, match=r"batch\['reward'\] has shape \(32, 1\), expected \(B,\)"):
        algo.update(batch | {"reward": batch["reward"].unsqueeze(1)})
    with pytest.raises(ValueError, match=r"batch\['done'\] has shape \(31,\).*B = 32"):
        algo.update(batch | {"done": batch["done"][:-1]})
    with pytest.raises(TypeError, match="integer item indices"):
        build("reinforce").update(batch | {"item": batch["item"].float()})
    with pytest.raises(ValueError, match=rf"outside \[0, {ITEMS}\)"):
        build("reinforce").update(batch | {"item": batch["item"] + ITEMS})
    with pytest.raises(ValueError, match="did you mean 'soft_tau'"):
        build("ddpg", soft_tua=0.1)
    with pytest.raises(ValueError, match="correction"):
        build("reinforce", correction="topK")


def test_parameters_are_declared_once_and_checked_against_their_ranges():
    from spark_recs.core.params import declarations

    for cls in (DDPG, TD3, BCQ, Reinforce):
        assert cls.defaults == {name: p.default for name, p in declarations(cls).items()}
        assert all(p.doc for p in declarations(cls).values())
    for name, params, message in [
        ("ddpg", {"gamma": 1.5}, "DDPG parameter gamma = 1.5 is out of range [0, 1]"),
        ("td3", {"policy_update": 0}, "TD3 parameter policy_update = 0 is out of range [1, inf)"),
        ("bcq", {"n_generator_samples": 2.5}, "BCQ parameter n_generator_samples must be an integer"),
        ("reinforce", {"correction": "topK"}, "Reinforce parameter correction must be one of"),
    ]:
        with pytest.raises(ValueError) as error:
            build(name, **params)
        assert str(error.value).startswith(message), name
    assert build("ddpg", value_lr=0.0).params["value_lr"] == 0.0  # a frozen critic, as tests above use
