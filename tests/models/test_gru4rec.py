"""GRU4Rec end to end on small synthetic sessions: learning, options, determinism, persistence, resume."""

import inspect
import re

import numpy as np
import pandas as pd
import pytest
import torch

from spark_recs.evaluation.sessions import batch_eval, evaluate_sessions
from spark_recs.models.gru4rec import GRU4Rec

SMALL = dict(
    layers=[16], batch_size=16, n_sample=8, n_epochs=4, learning_rate=0.1, momentum=0.1, elu_param=0.0
)


def successor_sessions(n_sessions=300, n_items=20, seed=0, raw=lambda i: 1000 + i):
    """Sessions that walk the items in a cycle: the next item is always the current one plus one."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start, length = int(rng.integers(0, n_items)), int(rng.integers(2, 7))
        rows += [(s, raw((start + p) % n_items), s * 10.0 + p) for p in range(length)]
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def train():
    return successor_sessions()


@pytest.fixture(scope="module")
def test_data():
    return successor_sessions(n_sessions=60, seed=1)


def weights(gru):
    return {k: v.clone() for k, v in gru.net.state_dict().items()}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.mark.parametrize("loss", ["cross-entropy", "bpr-max", "top1", "top1-max", "bpr"])
def test_every_loss_learns_a_deterministic_successor(loss, train, test_data):
    gru = GRU4Rec(**SMALL, loss=loss, bpreg=0.5).fit(train)
    recall, mrr = batch_eval(gru, test_data, cutoff=[1, 3])
    assert recall[3] > 0.95 and mrr[3] > 0.8, (recall, mrr)


def test_progress_lines_inside_an_epoch_are_plain_and_quiet_for_short_epochs(train, capsys):
    GRU4Rec(**SMALL | dict(n_epochs=1)).fit(train)
    assert capsys.readouterr().err == ""  # the default: a line every 20 s at most
    gru = GRU4Rec(**SMALL | dict(n_epochs=2)).fit(train, progress_every=0.0)  # a line every step
    err = capsys.readouterr().err
    assert "\r" not in err
    line = re.compile(
        r"GRU4Rec epoch (\d)/2: ([\d,]+)/([\d,]+) events \(\d+%\) in .*, [\d,]+ events/s, loss ([\d.]+)"
    )
    found = [line.fullmatch(text) for text in err.splitlines()]
    assert all(found) and {m[1] for m in found} == {"1", "2"}
    last = [m for m in found if m[1] == "1"][-1]
    assert last[2] == last[3] == f"{len(train) - train['SessionId'].nunique():,}"  # every transition
    assert float(last[4]) == pytest.approx(gru.history_[0]["loss"], rel=1e-3)  # the epoch's mean loss


@pytest.mark.parametrize(
    "inputs", [dict(constrained_embedding=False, embedding=8), dict(constrained_embedding=False, embedding=0)]
)
def test_separate_and_one_hot_inputs_learn_too(inputs, train, test_data):
    gru = GRU4Rec(**(SMALL | inputs)).fit(train)
    assert batch_eval(gru, test_data, cutoff=[3])[0][3] > 0.95
    assert ("E" in gru.net.state_dict()) == (inputs["embedding"] > 0)


@pytest.mark.parametrize(
    "inputs",
    [dict(), dict(constrained_embedding=False, embedding=6), dict(constrained_embedding=False, embedding=0)],
)
def test_stacked_layers_of_different_sizes_work_in_compatibility_mode(inputs, train):
    # The reference crashes here (compatibility init with unequal sizes, one-hot input with several layers).
    gru = GRU4Rec(**(SMALL | inputs | dict(layers=[12, 8], n_epochs=1))).fit(train, compatibility_mode=True)
    scores = gru.score_sessions([[0, 1, 2]])
    assert scores.shape == (1, 20) and torch.isfinite(scores).all()


def test_compatibility_initialisation_is_the_same_for_every_seed_and_random_init_is_not(train):
    a = GRU4Rec(**SMALL | dict(n_epochs=0), seed=1).fit(train)
    b = GRU4Rec(**SMALL | dict(n_epochs=0), seed=2).fit(train)
    assert_same_weights(a, b)
    c = GRU4Rec(**SMALL | dict(n_epochs=0), seed=1).fit(train, compatibility_mode=False)
    assert not torch.equal(a.net.Wy, c.net.Wy)
    bound = (6 / (20 + 16)) ** 0.5
    assert c.net.Wy.abs().max() <= bound and c.net.By.abs().max() == 0


def test_compatibility_initialisation_follows_the_reference_draw_order(train):
    gru = GRU4Rec(**SMALL | dict(n_epochs=0, layers=[16])).fit(train)
    rs = np.random.RandomState(42)

    def draw(rows, cols):
        bound = np.sqrt(6.0 / (rows + cols))
        return rs.rand(rows, cols).astype(np.float32) * 2 * bound - bound

    # GRU input weights (three gate blocks), recurrent weights (three blocks), then the item weights.
    weight_ih = np.vstack([draw(16, 16) for _ in range(3)])
    weight_hh = np.vstack([draw(16, 16) for _ in range(3)])
    wy = draw(20, 16)
    state = gru.net.state_dict()
    np.testing.assert_allclose(state["cells.0.weight_ih"].numpy(), weight_ih, atol=1e-7)
    np.testing.assert_allclose(state["cells.0.weight_hh"].numpy(), weight_hh, atol=1e-7)
    np.testing.assert_allclose(state["Wy"].numpy(), wy, atol=1e-7)
    assert not state["By"].any() and not state["cells.0.bias_ih"].any()


def test_same_seed_gives_the_same_weights_and_another_seed_does_not(train):
    params = SMALL | dict(dropout_p_embed=0.2, dropout_p_hidden=0.3, n_epochs=2)
    a = GRU4Rec(**params, seed=5).fit(train, compatibility_mode=False)
    b = GRU4Rec(**params, seed=5).fit(train, compatibility_mode=False)
    c = GRU4Rec(**params, seed=6).fit(train, compatibility_mode=False)
    assert_same_weights(a, b)
    assert not torch.equal(a.net.Wy, c.net.Wy)


class Killed(Exception):
    pass


def kill_after(epoch_to_die):
    def callback(epoch, model):
        if epoch == epoch_to_die:
            raise Killed

    return callback


@pytest.mark.parametrize("with_validation", [False, True])
def test_a_killed_training_resumes_to_the_same_weights(tmp_path, train, test_data, with_validation):
    params = SMALL | dict(dropout_p_embed=0.2, dropout_p_hidden=0.3, n_epochs=4, n_sample=5, seed=11)
    # A 40-draw cache is refilled every 8 steps, so the resumed run must restore the sampler exactly.
    fit_args = dict(
        sample_cache_max_size=40, compatibility_mode=False, valid=test_data if with_validation else None
    )
    uninterrupted = GRU4Rec(**params).fit(train, **fit_args)
    with pytest.raises(Killed):
        GRU4Rec(**params).fit(train, **fit_args, checkpoint_dir=tmp_path, epoch_callback=kill_after(2))
    resumed = GRU4Rec(**params).fit(train, **fit_args, checkpoint_dir=tmp_path)
    assert_same_weights(uninterrupted, resumed)
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in uninterrupted.history_]


def test_a_checkpoint_of_another_run_is_refused(tmp_path, train):
    GRU4Rec(**SMALL | dict(n_epochs=1)).fit(train, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different training run"):
        GRU4Rec(**SMALL | dict(n_epochs=2, learning_rate=0.2)).fit(train, checkpoint_dir=tmp_path)


def test_early_stopping_keeps_the_best_epoch_unless_keep_last(train, test_data):
    # No epoch can improve Recall@20 by 1.0, so training stops after epoch 2 with epoch 1 as the best.
    stop = dict(stop_early=True, max_iter_no_change=1, min_improvement=1.0, n_epochs=5)
    best = GRU4Rec(**SMALL | stop).fit(train, valid=test_data)
    assert [h["epoch"] for h in best.history_] == [1, 2] and "validation" in best.history_[0]
    assert_same_weights(best, GRU4Rec(**SMALL | dict(n_epochs=1)).fit(train))
    last = GRU4Rec(**SMALL | stop | dict(keep_last=True)).fit(train, valid=test_data)
    assert_same_weights(last, GRU4Rec(**SMALL | dict(n_epochs=2)).fit(train))


def test_validation_sample_size_samples_sessions(train, test_data):
    gru = GRU4Rec(**SMALL | dict(n_epochs=1, validation_sample_size=5, stopping_criterion="mrr"))
    gru.fit(train, valid=test_data)
    assert 0 <= gru.history_[0]["validation"] <= 1


def test_score_sessions_resets_state_per_session_and_matches_evaluation(train):
    gru = GRU4Rec(**SMALL | dict(n_epochs=1, layers=[10, 6], dropout_p_hidden=0.5)).fit(train)
    sessions = [[1, 2, 3, 4], [7], [3, 4], [0, 0, 1]]
    together = gru.score_sessions(sessions, batch_size=3)
    alone = torch.cat([gru.score_sessions([s]) for s in sessions])
    torch.testing.assert_close(together, alone)
    # Every prefix in one call equals scoring each prefix as its own session.
    prefixes = [s[: p + 1] for s in sessions for p in range(len(s))]
    torch.testing.assert_close(
        gru.score_sessions(sessions, every_prefix=True, batch_size=2), gru.score_sessions(prefixes)
    )
    items = np.array([i for s in sessions for i in s])
    offsets = np.cumsum([0] + [len(s) for s in sessions])
    pairs = [(s[: p + 1], s[p + 1]) for s in sessions for p in range(len(s) - 1)]
    expected = gru.score_sessions([prefix for prefix, _ in pairs])
    batches = list(gru.next_item_scores(items, offsets, batch_size=2))
    got, targets = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert len(got) == len(pairs)
    for row, target in zip(got, targets.tolist(), strict=True):
        # Each evaluation row is the state after one prefix, and its target is the item after that prefix.
        i = int((expected - row).abs().amax(dim=1).argmin())
        torch.testing.assert_close(row, expected[i], atol=1e-5, rtol=1e-5)
        assert pairs[i][1] == target


def test_recommend_returns_raw_ids_in_score_order(train):
    gru = GRU4Rec(**SMALL | dict(predict_topK=3)).fit(train)
    recs = gru.recommend([[1004, 1005], ["unknown"], [1019, "unknown"]])
    assert recs["session"].tolist() == [0, 0, 0, 2, 2, 2]
    assert recs["rank"].tolist() == [1, 2, 3] * 2
    assert recs["item"].tolist()[0] == 1006 and recs["item"].tolist()[3] == 1000
    assert (np.diff(recs["score"].to_numpy().reshape(2, 3), axis=1) <= 0).all()


def test_other_training_options_train(train, test_data):
    for options in (
        dict(optimization_algorithm="sgd", learning_rate=0.5, momentum=0.5),
        dict(clipnorm=1.0),
        dict(n_sample=0, logq=1.0),
        dict(embedding="layersize", constrained_embedding=False),
        dict(batch_size=1000),  # more lanes than sessions
    ):
        gru = GRU4Rec(**SMALL | dict(n_epochs=2) | options).fit(train)
        assert np.isfinite(gru.history_[-1]["loss"]), options
        assert batch_eval(gru, test_data, cutoff=[5])[0][5] > 0.5, options


def test_params_are_sklearn_style():
    gru = GRU4Rec(layers=[32, 16], loss="bpr-max")
    params = gru.get_params()
    assert params["layers"] == [32, 16] and params["loss"] == "bpr-max" and params["n_sample"] == 2048
    assert GRU4Rec(**params).get_params() == params
    assert gru.set_params(batch_size=8, momentum=0.3) is gru and gru.batch_size == 8
    with pytest.raises(ValueError, match="unknown GRU4Rec parameter"):
        gru.set_params(hidden_size=3)
    with pytest.raises(ValueError, match="loss"):
        gru.set_params(loss="mse")
    with pytest.raises(ValueError, match="dropout_p_hidden"):
        GRU4Rec(dropout_p_hidden=1.0)
    assert gru.batch_size == 8  # a refused change leaves the model as it was


def test_the_constructor_signature_and_checks_come_from_the_declaration():
    from spark_recs.core.params import declarations

    declared = declarations(GRU4Rec)
    parameters = inspect.signature(GRU4Rec).parameters
    assert {n: p.default for n, p in parameters.items()} == {n: p.default for n, p in declared.items()}
    assert GRU4Rec().get_params() == {n: p.default for n, p in declared.items()}
    assert all(p.doc for p in declared.values()) and "momentum = 0.0: " in GRU4Rec.__init__.__doc__
    for params, message in [
        (dict(momentum=1.5), "GRU4Rec parameter momentum = 1.5 is out of range [0, 1)"),
        (dict(sample_alpha=2.0), "GRU4Rec parameter sample_alpha = 2.0 is out of range [0, 1]"),
        (dict(n_epochs=-1), "GRU4Rec parameter n_epochs = -1 is out of range [0, inf)"),
        (dict(layers=[8, 0]), "GRU4Rec parameter layers[1] = 0 is out of range [1, inf)"),
        (dict(embedding="big"), "GRU4Rec parameter embedding must be an integer in [0, inf) or one of"),
        (dict(clipnorm=0.0), "GRU4Rec parameter clipnorm = 0.0 is out of range (0, inf)"),
        (dict(stopping_criterion="ndcg"), "GRU4Rec parameter stopping_criterion must be one of"),
        (dict(device=0), "GRU4Rec parameter device must be a string, got 0"),
    ]:
        with pytest.raises(ValueError) as error:
            GRU4Rec(**params)
        assert str(error.value).startswith(message) and "\n" not in str(error.value), params


def test_parameters_given_as_tuples_numpy_ints_devices_or_paths_are_stored_as_plain_values(tmp_path):
    gru = GRU4Rec(layers=(np.int64(8), 4), device=torch.device("cpu"), checkpoint_dir=tmp_path)
    assert gru.layers == [8, 4] and type(gru.layers[0]) is int
    assert gru.device == "cpu" and gru.checkpoint_dir == str(tmp_path)
    assert GRU4Rec(n_epochs=0).n_epochs == 0  # the initial weights, as the RL embeddings use it


def test_bad_training_input_is_refused_clearly(train):
    with pytest.raises(ValueError, match="empty"):
        GRU4Rec().fit(train.iloc[:0])
    with pytest.raises(ValueError, match="lacks column"):
        GRU4Rec().fit(train.rename(columns={"Time": "ts"}))
    singles = pd.DataFrame({"SessionId": [1, 2], "ItemId": [5, 6], "Time": [0.0, 1.0]})
    with pytest.raises(ValueError, match="two or more events"):
        GRU4Rec().fit(singles)
    with pytest.raises(ValueError, match="missing values"):
        GRU4Rec().fit(train.assign(ItemId=train["ItemId"].astype(object).where(train.index != 3)))
    with pytest.raises(RuntimeError, match="not trained"):
        GRU4Rec().score_sessions([[0]])


def test_custom_column_names_and_length_one_sessions(train):
    renamed = train.rename(columns={"SessionId": "s", "ItemId": "i", "Time": "t"})
    extra = pd.DataFrame({"s": [9999], "i": [5555], "t": [0.0]})  # an item seen only in a length-1 session
    gru = GRU4Rec(**SMALL | dict(n_epochs=1)).fit(
        pd.concat([renamed, extra]), session_key="s", item_key="i", time_key="t"
    )
    assert 5555 in set(gru.item_ids)
    test = renamed.iloc[:20]
    result = evaluate_sessions(gru, test, cutoff=[5], session_key="s", item_key="i", time_key="t")
    assert result.n_predictions == len(test) - test["s"].nunique()
