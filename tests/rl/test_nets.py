"""recnn's networks: shapes, constructor defaults, output-layer initialisation bounds, and forward passes
checked against the layer-by-layer definitions (eval mode, so no dropout)."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from spark_recs.rl.nets import Actor, Critic, DiscreteActor, bcqGenerator, bcqPerturbator, dropout


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    torch.manual_seed(0)


def randn(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_recnn_default_init_w():
    defaults = {cls: inspect.signature(cls).parameters["init_w"].default for cls in (Actor, Critic)}
    defaults[DiscreteActor] = inspect.signature(DiscreteActor).parameters["init_w"].default
    defaults[bcqPerturbator] = inspect.signature(bcqPerturbator).parameters["init_w"].default
    assert defaults == {Actor: 0.2, Critic: 3e-5, DiscreteActor: 0, bcqPerturbator: 0.3}


def test_recnn_shapes_and_output_init_bounds():
    actor, critic = Actor(1290, 128, 256, 6e-1), Critic(1290, 128, 256, 54e-2)
    assert [tuple(layer.weight.shape) for layer in (actor.linear1, actor.linear2, actor.linear3)] == [
        (256, 1290),
        (256, 256),
        (128, 256),
    ]
    assert [tuple(layer.weight.shape) for layer in (critic.linear1, critic.linear2, critic.linear3)] == [
        (256, 1290 + 128),
        (256, 256),
        (1, 256),
    ]
    for layer, bound in ((actor.linear3, 6e-1), (critic.linear3, 54e-2)):
        for tensor in (layer.weight, layer.bias):
            assert tensor.abs().max() <= bound
    # The bound really is init_w, not PyTorch's default (1/sqrt(256) = 0.0625) for the last layer.
    assert actor.linear3.weight.abs().max() > 0.5
    state = randn(7, 1290)
    assert actor(state).shape == (7, 128)
    assert critic(state, actor(state)).shape == (7, 1)


def test_actor_and_critic_forward_match_their_definition():
    actor, critic = Actor(6, 3, 8).eval(), Critic(6, 3, 8, init_w=0.5).eval()
    state, action = randn(5, 6), randn(5, 3, seed=2)

    def mlp(net, x):
        return net.linear3(F.relu(net.linear2(F.relu(net.linear1(x)))))

    torch.testing.assert_close(actor(state), mlp(actor, state))
    torch.testing.assert_close(actor(state, tanh=True), torch.tanh(mlp(actor, state)))
    torch.testing.assert_close(critic(state, action), mlp(critic, torch.cat([state, action], 1)))


def test_dropout_is_inverted_and_follows_the_generator():
    x = torch.ones(2000, 50)
    first = dropout(x, 0.5, True, torch.Generator().manual_seed(3))
    again = dropout(x, 0.5, True, torch.Generator().manual_seed(3))
    other = dropout(x, 0.5, True, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert set(first.unique().tolist()) == {0.0, 2.0}
    assert abs(first.mean().item() - 1.0) < 0.02
    assert dropout(x, 0.5, False, None) is x

    actor = Actor(6, 3, 8)
    state = randn(5, 6)
    train_out = actor(state, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(train_out, actor(state, generator=torch.Generator().manual_seed(3)))
    assert not torch.allclose(train_out, actor.eval()(state))


def test_discrete_actor_single_softmax_and_uniform_start():
    actor = DiscreteActor(6, 4, 8)
    state = randn(3, 6)
    torch.testing.assert_close(actor(state), torch.full((3, 4), 0.25))
    torch.nn.init.uniform_(actor.linear2.weight, -1, 1)
    logits = actor.linear2(F.relu(actor.linear1(state)))
    expected = logits.exp() / logits.exp().sum(1, keepdim=True)
    torch.testing.assert_close(actor(state), expected)
    torch.testing.assert_close(actor.log_probs(state), expected.log())


def test_perturbator_moves_an_action_by_at_most_phi():
    net = bcqPerturbator(6, 3, 8, init_w=5.0, phi=0.1).eval()
    state, action = randn(50, 6), randn(50, 3, seed=2)
    change = net.linear3(F.relu(net.linear2(F.relu(net.linear1(torch.cat([state, action], 1))))))
    out = net(state, action)
    torch.testing.assert_close(out, action + 0.1 * torch.tanh(change))
    assert (out - action).abs().max() <= 0.1 + 1e-6
    assert (out - action).abs().max() > 0.09  # init_w = 5 saturates tanh: the bound is reached


def test_generator_clamps_log_std_and_samples_a_clipped_latent():
    net = bcqGenerator(6, 3, 4)
    state, action = randn(5, 6), randn(5, 3, seed=2)
    recon, mean, std = net(state, action, generator=torch.Generator().manual_seed(0))
    assert recon.shape == (5, 3) and mean.shape == std.shape == (5, 4)
    # Reparameterisation: the same draw by hand gives the same reconstruction.
    z = mean + std * torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(recon, net.decode(state, z))

    for bias, bound in ((100.0, 15.0), (-100.0, -4.0)):
        torch.nn.init.constant_(net.log_std.bias, bias)
        _, _, std = net(state, action)
        torch.testing.assert_close(std, torch.full((5, 4), bound).exp())

    sampled = net.decode(state, generator=torch.Generator().manual_seed(9))
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(9))
    assert z.abs().max() > 0.5  # so the clipping below is exercised
    torch.testing.assert_close(sampled, net.decode(state, z.clamp(-0.5, 0.5)))


def test_state_dict_keys_are_recnns():
    """recnn's layer names, so its saved weights load unchanged."""
    linear = [
        "linear1.weight",
        "linear1.bias",
        "linear2.weight",
        "linear2.bias",
        "linear3.weight",
        "linear3.bias",
    ]
    for net in (Actor(6, 3, 8), Critic(6, 3, 8), bcqPerturbator(6, 3, 8)):
        assert list(net.state_dict()) == linear
    assert list(DiscreteActor(6, 3, 8).state_dict()) == linear[:4]
    layers = ["e1", "e2", "mean", "log_std", "d1", "d2", "d3"]
    assert list(bcqGenerator(6, 3, 4).state_dict()) == [
        f"{n}.{p}" for n in layers for p in ("weight", "bias")
    ]
