"""The GRU4Rec README workflow: load_config -> split_data -> build_model -> fit -> evaluate, on pandas input."""

import numpy as np
import pandas as pd

from spark_recs.gru4rec import build_model, evaluate, load_config, split_data


def _sessions(n_sessions=120, n_items=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start = int(rng.integers(0, n_items))
        for pos in range(int(rng.integers(2, 6))):
            rows.append((s, (start + pos) % n_items, 100.0 * s + pos))
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


def test_readme_workflow_on_pandas(spark, tmp_path):
    config_path = tmp_path / "gru.yaml"
    config_path.write_text(
        "model:\n  layers: [16]\n  batch_size: 8\n  n_epochs: 3\n  n_sample: 0\n  learning_rate: 0.1\n"
        "data_split:\n  valid_fraction: 0.1\n  test_fraction: 0.2\nevaluation:\n  cutoff: [1, 20]\n"
    )
    config = load_config(config_path)
    df = _sessions()
    train, valid, test = split_data(df, config)

    assert all(isinstance(part, pd.DataFrame) for part in (train, valid, test))
    assert len(train) + len(valid) + len(test) == len(df)
    sessions = [set(part["SessionId"]) for part in (train, valid, test)]
    assert not (sessions[0] & sessions[1] or sessions[0] & sessions[2] or sessions[1] & sessions[2])
    assert len(sessions[2]) == round(0.2 * 120) and len(sessions[1]) == round(0.1 * 120)
    # Sessions are split by time: every test session ends after every training session.
    assert train.groupby("SessionId")["Time"].max().max() < test.groupby("SessionId")["Time"].max().min()

    gru = build_model(config)
    assert gru.get_params()["layers"] == [16]
    gru.fit(train, **config["training"], **config["data"])
    recall, mrr = evaluate(gru, test, config)
    assert set(recall) == set(mrr) == {1, 20}
    # Every session walks item i -> i+1; popularity would put the successor first about 1 time in 8.
    assert recall[1] > 0.5 and recall[20] == 1.0 and mrr[20] >= recall[1]
