"""Two training steps of GRU4Rec against a dense re-derivation written out from the equations.

The expectation uses full weight matrices and autograd's dense gradients, then applies Adagrad with
momentum only to the rows each step touched (the reference's sparse semantics): rows of the inputs and
outputs for the tied item weights, rows of the outputs for the item biases.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from spark_recs.models.gru4rec import GRU4Rec
from spark_recs.models.gru4rec.iterator import Schedule, build_schedule, group_sessions
from spark_recs.models.gru4rec.network import GRU4RecNet

LR, MOMENTUM, ALPHA, LOGQ, EPS = 0.1, 0.5, 0.5, 1.0, 1e-6


def gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """torch.nn.GRUCell's equations, gates ordered (reset, update, candidate)."""
    gx, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    r = torch.sigmoid(gx[:, :4] + gh[:, :4])
    z = torch.sigmoid(gx[:, 4:8] + gh[:, 4:8])
    n = torch.tanh(gx[:, 8:] + r * gh[:, 8:])
    return (1 - z) * n + z * h


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_two_steps_match_the_dense_derivation_with_sparse_adagrad_momentum():
    # Two sessions of three events: two steps with two lanes, no resets.
    # A later session makes the item counts (and so the logQ correction) uneven.
    train = pd.DataFrame(
        {
            "SessionId": [1, 1, 1, 2, 2, 2] + [3] * 6,
            "ItemId": [0, 1, 2, 3, 4, 5] + [6, 7, 0, 0, 1, 3],
            "Time": [0, 1, 2, 0, 1, 2] + [9, 10, 11, 12, 13, 14],
        }
    )
    params = dict(layers=[4], batch_size=2, n_sample=3, sample_alpha=ALPHA, logq=LOGQ, learning_rate=LR)
    gru = GRU4Rec(**params, momentum=MOMENTUM, n_epochs=0, seed=3).fit(train, compatibility_mode=False)
    w = {k: v.clone().requires_grad_() for k, v in gru.net.state_dict().items()}
    start = gru._sampler.state_dict()
    samples = torch.stack([gru._sampler.next() for _ in range(2)])  # what the next two steps will draw
    gru._sampler.load_state_dict(start)
    # With this seed, items 1 and 4 are outputs of step 1 but only inputs of step 2: their biases must
    # then keep both value and momentum (a zero-gradient update would decay and apply the momentum).
    assert not {1, 4} & set(samples[1].tolist())
    counts = torch.tensor(np.bincount(gru.item_indices(train["ItemId"].to_numpy())), dtype=torch.float32)
    steps = [(torch.tensor([0, 3]), torch.tensor([1, 4])), (torch.tensor([1, 4]), torch.tensor([2, 5]))]

    state = {name: (torch.zeros_like(w[name]), torch.zeros_like(w[name])) for name in w}  # acc, mom
    hidden = torch.zeros(2, 4)
    for (inputs, targets), sample in zip(steps, samples, strict=True):
        outputs = torch.cat([targets, sample])
        top = gru_cell(
            w["Wy"][inputs],
            hidden,
            w["cells.0.weight_ih"],
            w["cells.0.weight_hh"],
            w["cells.0.bias_ih"],
            w["cells.0.bias_hh"],
        )
        scores = top @ w["Wy"][outputs].T + w["By"][outputs]
        log_q = torch.cat([counts[targets].log(), ALPHA * counts[sample].log()])
        loss = -torch.log_softmax(scores - LOGQ * log_q, dim=1).diagonal().sum() / 2
        grads = dict(zip(w, torch.autograd.grad(loss, list(w.values()), allow_unused=True), strict=True))
        touched = {"Wy": torch.cat([inputs, outputs]).unique(), "By": outputs.unique()}
        with torch.no_grad():
            for name, value in w.items():
                rows = touched.get(name, slice(None))
                acc, mom = state[name]
                acc[rows] += grads[name][rows] ** 2
                mom[rows] = MOMENTUM * mom[rows] - LR * grads[name][rows] / torch.sqrt(acc[rows] + EPS)
                value[rows] += mom[rows]
        hidden = top.detach()

    gru._train_epoch(gru_schedule_first_steps(gru, train, 2))
    for name, expected in w.items():
        torch.testing.assert_close(gru.net.state_dict()[name], expected.detach(), rtol=1e-5, atol=1e-6)
    # Items that were never an output kept their (zero-initialised) bias.
    outputs = set(torch.cat([torch.tensor([1, 4, 2, 5]), samples.ravel()]).tolist())
    assert all(math.isclose(gru.net.By[i].item(), 0.0) for i in range(8) if i not in outputs)


def gru_schedule_first_steps(gru, train, n_steps):
    items = gru.item_indices(train["ItemId"].to_numpy())
    full = build_schedule(group_sessions(items, train["SessionId"].to_numpy(), train["Time"].to_numpy()), 2)
    return Schedule(full.inputs, full.targets, full.fresh, full.bounds[: n_steps + 1], {})


def test_hidden_dropout_output_is_both_scored_and_carried():
    net = GRU4RecNet(n_items=50, layers=[64], dropout_p_hidden=0.5)
    net.reset_parameters(torch.Generator().manual_seed(0))
    hidden = net.zero_hidden(8)
    inputs, outputs = torch.arange(8), torch.arange(8, 20)
    scores, _ = net.training_scores(inputs, outputs, hidden, torch.Generator().manual_seed(1))
    carried = hidden[0].detach()
    dropped = carried == 0
    assert 0.35 < dropped.float().mean() < 0.65  # about half of the units dropped
    # The scores are computed from exactly the carried (dropped-out, rescaled) state.
    expected = carried @ net.Wy[outputs].detach().T + net.By[outputs].detach()
    torch.testing.assert_close(scores.detach(), expected)
    # Evaluation feeds the same input without dropout: nothing is zeroed, and kept units were scaled by 2.
    clean = net.zero_hidden(8)
    net.step(inputs, clean)
    torch.testing.assert_close(carried[~dropped], 2 * clean[0][~dropped])
