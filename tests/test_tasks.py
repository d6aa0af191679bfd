"""The job registry: one task per config kind, each with its schema and steps, called alike by every front end."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from test_cli import _error_line

from spark_recs import tasks
from spark_recs.cli import main
from spark_recs.config import ConfigError, load_config, schemas

CONF = Path(__file__).resolve().parents[1] / "conf"
SHIPPED = {
    "gru4rec": "example.yaml",
    "demo": "demo.yaml",
    "multieval": "multieval-ml-latest-small.yaml",
    "gym": "gym.yaml",
    "rl": "rl-ddpg.yaml",
}


def test_every_kind_has_a_task_whose_steps_take_spark_and_a_config():
    assert set(tasks.TASKS) == set(SHIPPED) == set(schemas())
    for kind, task in tasks.TASKS.items():
        assert task.kind == kind and task.steps
        for name in task.steps:
            step = task.step(name)
            assert list(inspect.signature(step).parameters)[:2] == ["spark", "config"], (kind, name)


@pytest.mark.parametrize("kind", sorted(SHIPPED))
def test_every_shipped_config_loads_with_its_tasks_schema(kind):
    config = load_config(CONF / SHIPPED[kind], schema=kind)
    assert config["kind"] == kind
    assert set(config) - {"kind"} == set(tasks.task(kind).schema())


def test_an_unknown_kind_or_step_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="kind: 'gru4rc' is unknown; did you mean 'gru4rec'"):
        tasks.task("gru4rc")
    with pytest.raises(
        ConfigError,
        match=r"a kind: rl config runs with `spark-recs train` / `spark-recs tune` / `spark-recs promote`, not `spark-recs evaluate`",
    ):
        tasks.run("evaluate", None, {"kind": "rl"})


def test_a_prepared_input_given_to_a_kind_that_names_its_own_data_is_an_error(tmp_path, capsys):
    argv = ["--config", str(CONF / "rl-ddpg.yaml"), "--input", str(tmp_path), "--remote", "sc://nowhere:1"]
    assert main(["train", *argv]) == 2  # refused before Spark starts: no server listens at --remote
    assert "--input is for kind: gru4rec; a kind: rl config names its data" in _error_line(capsys)
    with pytest.raises(ConfigError, match="drop --input"):
        tasks.run("train", None, load_config(CONF / "gym.yaml", schema="gym"), str(tmp_path))
