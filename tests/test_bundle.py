"""The Databricks Asset Bundle: YAML that parses, DAGs of wheel tasks whose entry points exist and whose parameters
the CLI accepts (a for_each_task's once per input), existing config files, schedules, compute, and its checks."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from databricks.bundles.experiments import MlflowExperiment
from databricks.bundles.jobs import Job
from databricks.bundles.registered_models import RegisteredModel
from databricks.bundles.volumes import Volume

from spark_recs.bundle import (
    BUNDLE_REF,
    Bundle,
    for_each_inputs,
    job_parameters,
    run_job,
    task_arguments,
    task_order,
)
from spark_recs.cli import build_parser
from spark_recs.config import load_config
from spark_recs.evaluation.multieval.plan import run_ids
from spark_recs.tasks.gru4rec import check_tune

ROOT = Path(__file__).resolve().parents[1]
THE_BUNDLE = Bundle(ROOT, user="someone@example.com")
BUNDLE, RESOURCE_FILES, RESOURCES, JOBS = (
    THE_BUNDLE.config,
    THE_BUNDLE.files,
    THE_BUNDLE.resources,
    THE_BUNDLE.jobs,
)
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
JOB_PARAM = re.compile(r"\{\{job\.parameters\.([a-z_]+)\}\}")


def _wheel_tasks():
    """``(job name, task, input)`` of every wheel task: a ``for_each_task``'s once per input."""
    found = []
    for name, job in JOBS.items():
        for task in job["tasks"]:
            if "for_each_task" in task:
                found += [(name, task["for_each_task"]["task"], item) for item in for_each_inputs(task)]
            else:
                found.append((name, task, None))
    return found


def _task_id(item) -> str:
    return f"{item[0]}:{item[1]['task_key']}" + ("" if item[2] is None else f"[{item[2]}]")


def _arguments(name: str, task: dict, item: str | None = None, target: str = "dev") -> list[str]:
    """A wheel task's parameters as the deployed job passes them, with the job parameters' defaults."""
    return task_arguments(
        THE_BUNDLE.resolve(task, target), job_parameters(THE_BUNDLE.job(name, target)), item
    )


def _parsed(name: str, task_key: str):
    """The CLI arguments of task ``task_key`` of job ``name``."""
    task = next(t for t in JOBS[name]["tasks"] if t["task_key"] == task_key)
    command = task["python_wheel_task"]["entry_point"].removeprefix("spark-recs-")
    return build_parser().parse_args([command, *_arguments(name, task)])


def test_the_bundle_parses_and_includes_every_resource_file():
    assert BUNDLE["bundle"]["name"] == "spark_recs"
    assert {f.name for f in RESOURCE_FILES} == {
        "mlflow.yml",
        "pipeline.job.yml",
        "multieval.job.yml",
        "pipeline_serverless.job.yml",
        "tune.job.yml",
    }
    assert set(JOBS) == {
        "spark_recs_pipeline",
        "spark_recs_pipeline_serverless",
        "spark_recs_tune",
        "spark_recs_multieval",
    }
    assert set(RESOURCES["experiments"]) == {"spark_recs"}
    assert set(RESOURCES["registered_models"]) == {"gru4rec", "rl_ddpg"}
    assert set(RESOURCES["volumes"]) == {"spark_recs", "tuning", "multieval"}
    assert set(BUNDLE["targets"]) == {"dev", "prod"} and BUNDLE["targets"]["dev"]["default"] is True
    assert BUNDLE["artifacts"]["spark_recs_wheel"]["type"] == "whl"


@pytest.mark.parametrize("name", ["spark_recs_pipeline", "spark_recs_pipeline_serverless"])
def test_each_pipeline_is_the_prepare_train_evaluate_promote_recommend_dag(name):
    tasks = {t["task_key"]: {d["task_key"] for d in t.get("depends_on", [])} for t in JOBS[name]["tasks"]}
    assert tasks == {
        "prepare": set(),
        "train_gru4rec": {"prepare"},
        "train_rl": {"prepare"},
        "evaluate": {"train_gru4rec", "train_rl"},
        "promote": {"evaluate"},
        "batch_recommend": {"promote"},
    }
    assert all(t["python_wheel_task"]["package_name"] == "spark_recs" for t in JOBS[name]["tasks"])
    names = [p["name"] for p in JOBS[name]["parameters"]]
    assert names == [
        "catalog",
        "schema",
        "sessions_table",
        "config",
        "rl_config",
        "ratings_table",
        "model_alias",
    ]


@pytest.mark.parametrize("item", _wheel_tasks(), ids=_task_id)
def test_every_task_entry_point_is_a_console_script_of_the_package(item):
    entry_point = item[1]["python_wheel_task"]["entry_point"]
    assert entry_point in SCRIPTS, f"{entry_point} is not in pyproject.toml [project.scripts]"
    module, attribute = SCRIPTS[entry_point].split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


@pytest.mark.parametrize("item", _wheel_tasks(), ids=_task_id)
def test_every_task_parameter_list_is_accepted_by_the_cli(item):
    name, task, given = item
    wheel = task["python_wheel_task"]
    for parameter in wheel["parameters"]:
        for reference in JOB_PARAM.findall(parameter):
            defined = {p["name"] for p in JOBS[name]["parameters"]}
            assert reference in defined, f"undefined job parameter {reference}"
    command = wheel["entry_point"].removeprefix("spark-recs-")
    args = build_parser().parse_args([command, *_arguments(name, task, given)])
    assert args.command == command and args.run.__name__ == f"_{command}"
    if command in ("train", "evaluate", "tune", "promote", "recommend", "multieval"):
        assert args.config.endswith(".yaml")


def _config_files():
    found = []
    for name, task, given in _wheel_tasks():
        arguments = _arguments(name, task, given)
        for flag, value in zip(arguments, arguments[1:]):
            if flag == "--config":
                found.append(pytest.param(Path(value), id=_task_id((name, task, given))))
    return found


@pytest.mark.parametrize("path", _config_files())
def test_every_referenced_config_file_exists(path):
    assert path.is_file(), f"{path} is referenced by a task but does not exist"


def test_the_gru4rec_tasks_use_the_cli_defaults_the_bundle_declares():
    """The registered model and the experiment the tasks name are the bundle's resources."""
    args = _parsed("spark_recs_pipeline", "train_gru4rec")
    assert args.register_as == "main.recs.gru4rec" and args.alias == "challenger"
    assert args.experiment == "/Users/someone@example.com/spark_recs-dev"
    assert args.set == ["paths.model_save=null"]


def test_the_tune_job_keeps_its_study_and_trial_data_on_a_volume_and_trains_the_best():
    """A rerun of the job continues the study (a journal file on a Volume), the trial tasks on the workers
    read their data from the Volume, and the best config is trained, tested once and registered."""
    job = JOBS["spark_recs_tune"]
    tasks = {t["task_key"]: {d["task_key"] for d in t.get("depends_on", [])} for t in job["tasks"]}
    assert tasks == {"prepare": set(), "tune": {"prepare"}}
    args = _parsed("spark_recs_tune", "tune")
    assert args.train_best and args.register_as == "main.recs.gru4rec" and args.alias == "tuned"
    settings = dict(s.split("=", 1) for s in args.set)
    assert settings == {
        "tune.storage": "/Volumes/main/recs/tuning/tuning.journal",
        "tune.data_dir": "/Volumes/main/recs/tuning/data",
        "tune.best_config": "/Volumes/main/recs/tuning/best.yaml",
    }
    config = load_config(args.config, args.set)
    assert config["tune"]["storage"].endswith(".journal") and check_tune(config).names


def test_the_schedule_is_paused_in_dev_and_runs_in_prod():
    schedule = JOBS["spark_recs_pipeline"]["schedule"]
    fields = schedule["quartz_cron_expression"].split()
    assert len(fields) in (6, 7) and schedule["timezone_id"] == "UTC"
    assert THE_BUNDLE.resolve(schedule["pause_status"], "dev") == "PAUSED"
    assert THE_BUNDLE.resolve(schedule["pause_status"], "prod") == "UNPAUSED"
    assert (
        BUNDLE["targets"]["dev"]["mode"] == "development"
        and BUNDLE["targets"]["prod"]["mode"] == "production"
    )


def test_a_job_cluster_variant_and_a_serverless_variant():
    classic = JOBS["spark_recs_pipeline"]
    clusters = {c["job_cluster_key"] for c in classic["job_clusters"]}
    for task in classic["tasks"]:
        assert task["job_cluster_key"] in clusters and task["libraries"] == [{"whl": "../dist/*.whl"}]
    serverless = JOBS["spark_recs_pipeline_serverless"]
    assert "job_clusters" not in serverless
    environments = {e["environment_key"]: e["spec"] for e in serverless["environments"]}
    assert all(
        environments[t["environment_key"]]["dependencies"] == ["../dist/*.whl"] for t in serverless["tasks"]
    )


def test_every_bundle_reference_names_something_defined():
    text = "\n".join(f.read_text() for f in [ROOT / "databricks.yml", *RESOURCE_FILES])
    for reference in BUNDLE_REF.findall(text):
        path = reference.split(".")
        if path[0] == "var":
            assert path[1] in BUNDLE["variables"], reference
        elif path[0] == "resources":
            assert path[3] in RESOURCES[path[1]][path[2]], reference
        else:
            assert reference in {
                "workspace.file_path",
                "workspace.current_user.userName",
                "bundle.target",
                "bundle.name",
            }


# ---- the bundle as Databricks reads it ------------------------------------------------------------------

#: The databricks-bundles class of each resource kind the bundle declares.
RESOURCE_CLASSES = {
    "jobs": Job,
    "experiments": MlflowExperiment,
    "registered_models": RegisteredModel,
    "volumes": Volume,
}
QUARTZ_FIELDS = [  # seconds, minutes, hours, day of month, month, day of week, year (optional)
    (0, 59),
    (0, 59),
    (0, 23),
    (1, 31),
    (1, 12),
    (1, 7),
    (1970, 2099),
]


@pytest.mark.parametrize("target", sorted(BUNDLE["targets"]))
def test_every_resource_loads_into_the_databricks_bundle_classes(target):
    assert set(RESOURCES) == set(RESOURCE_CLASSES)
    for kind, items in RESOURCES.items():
        for name, spec in items.items():
            resolved = THE_BUNDLE.resolve(spec, target)
            assert "${" not in str(resolved), f"{kind}.{name}: unresolved reference in {resolved}"
            loaded = RESOURCE_CLASSES[kind].from_dict(resolved)
            assert loaded.as_dict() == resolved, f"{kind}.{name} does not round-trip"


@pytest.mark.parametrize(
    "broken, message",
    [
        ({"name": "x", "taks": []}, "Unexpected field 'taks'"),
        ({"name": "x", "max_concurrent_runs": "one"}, "invalid literal for int"),
    ],
)
def test_the_bundle_classes_refuse_unknown_fields_and_wrong_types(broken, message):
    with pytest.raises(ValueError, match=message):
        Job.from_dict(broken)


def _quartz_errors(expression: str) -> list[str]:
    """What makes ``expression`` an invalid Quartz cron expression (empty: valid)."""
    fields = expression.split()
    if len(fields) not in (6, 7):
        return [f"{len(fields)} fields, expected 6 or 7"]
    errors = []
    for text, (low, high) in zip(fields, QUARTZ_FIELDS):
        for part in text.split(","):
            if part in ("*", "?"):
                continue
            value, _, step = part.partition("/")
            bounds = value.split("-") if value != "*" else [str(low)]
            numbers = [*bounds, *([step] if step else [])]
            if not all(n.isdigit() for n in numbers) or not all(low <= int(n) <= high for n in bounds):
                errors.append(f"{part!r} is not in [{low}, {high}]")
    if (fields[3] == "?") == (fields[5] == "?"):
        errors.append("exactly one of day-of-month and day-of-week must be '?'")
    return errors


def test_the_quartz_check_knows_a_bad_expression():
    assert _quartz_errors("0 0 3 * * ?") == []
    assert _quartz_errors("0 0 25 * * ?") == ["'25' is not in [0, 23]"]
    assert _quartz_errors("0 0 3 * *") == ["5 fields, expected 6 or 7"]
    assert _quartz_errors("0 0 3 * * 2") == ["exactly one of day-of-month and day-of-week must be '?'"]


@pytest.mark.parametrize("name", sorted(JOBS))
def test_schedules_are_valid_quartz_expressions(name):
    schedule = JOBS[name].get("schedule")
    if schedule is not None:
        assert _quartz_errors(schedule["quartz_cron_expression"]) == []


def test_the_serverless_job_declares_its_environment_and_no_cluster():
    job = Job.from_dict(THE_BUNDLE.resolve(JOBS["spark_recs_pipeline_serverless"], "dev"))
    assert not job.job_clusters
    environments = {e.environment_key: e.spec for e in job.environments}
    for task in job.tasks:
        assert not (task.job_cluster_key or task.new_cluster or task.existing_cluster_id), task.task_key
        assert "../dist/*.whl" in environments[task.environment_key].dependencies


def test_registered_models_are_unity_catalog_three_part_names():
    for name, spec in RESOURCES["registered_models"].items():
        model = RegisteredModel.from_dict(THE_BUNDLE.resolve(spec, "prod"))
        assert model.catalog_name and model.schema_name and "." not in model.name, name


@pytest.mark.parametrize("name", ["spark_recs_pipeline", "spark_recs_pipeline_serverless"])
def test_the_pipeline_scores_the_champion_never_the_unvetted_challenger(name):
    promote = _parsed(name, "promote")
    assert promote.registered_model == "main.recs.gru4rec" and promote.set == [
        "promotion.challenger=challenger"
    ]
    assert _parsed(name, "batch_recommend").model == "models:/main.recs.gru4rec@champion"


# ---- MultiEval fanned out over job tasks ---------------------------------------------------------------


def test_the_multieval_job_plans_runs_every_slice_as_its_own_task_and_collects():
    job = JOBS["spark_recs_multieval"]
    assert [t["task_key"] for t in task_order(job)] == ["plan", "runs", "collect"]
    assert {t["task_key"]: [d["task_key"] for d in t.get("depends_on", [])] for t in job["tasks"]} == {
        "plan": [],
        "runs": ["plan"],
        "collect": ["runs"],
    }
    plan, collect = _parsed("spark_recs_multieval", "plan"), _parsed("spark_recs_multieval", "collect")
    assert plan.plan and not plan.collect and plan.runs is None
    assert collect.collect and not collect.plan and collect.runs is None
    runs = next(t for t in job["tasks"] if t["task_key"] == "runs")
    slices = for_each_inputs(runs)
    assert json.loads(runs["for_each_task"]["inputs"]) == slices  # a JSON list, as Databricks requires
    for item in slices:
        args = build_parser().parse_args(
            ["multieval", *_arguments("spark_recs_multieval", runs["for_each_task"]["task"], item)]
        )
        assert args.runs == [item] and not args.plan and not args.collect
        assert (args.config, args.set) == (plan.config, plan.set)  # every task: the same config and folder
    settings = dict(s.split("=", 1) for s in plan.set)
    assert settings == {
        "data.ratings": "main.recs.ratings",
        "evaluation.path": "/Volumes/main/recs/multieval/ml-latest-small",
        "evaluation.results_table": "main.recs.multieval_runs",
        "evaluation.experiment": "/Users/someone@example.com/spark_recs-dev",
    }
    # The slices cover every run of the job's config exactly once.
    config = load_config(plan.config, plan.set, schema="multieval")
    count = config["split"]["partitions"] * len(config["algorithms"])
    covered = [run_ids(item, count) for item in slices]
    assert sorted(i for ids in covered for i in ids) == list(range(1, count + 1))


def test_a_local_run_refuses_what_it_cannot_resolve_before_running_anything(tmp_path):
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['ratngs'\]; its parameters: config, ratings"):
        run_job(THE_BUNDLE, "spark_recs_multieval", target="dev", params={"ratngs": "x"}, logs=tmp_path)
    with pytest.raises(ValueError, match="no job 'spark_recs_multi'; its jobs: spark_recs_multieval"):
        run_job(THE_BUNDLE, "spark_recs_multi", target="dev", logs=tmp_path)
    with pytest.raises(ValueError, match="target 'test' is not one of the bundle's"):
        run_job(THE_BUNDLE, "spark_recs_multieval", target="test", logs=tmp_path)
    task = {"task_key": "t", "python_wheel_task": {"parameters": ["{{job.run_id}}"]}}
    with pytest.raises(ValueError, match=r"task t: \{\{job.run_id\}\} cannot be resolved on this machine"):
        task_arguments(task, {})
    looped = {
        "tasks": [
            {"task_key": "a", "depends_on": [{"task_key": "b"}]},
            {"task_key": "b", "depends_on": [{"task_key": "a"}]},
        ]
    }
    with pytest.raises(ValueError, match=r"tasks \['a', 'b'\] depend on each other"):
        task_order(looped)
    with pytest.raises(ValueError, match="must be a JSON list"):
        for_each_inputs({"task_key": "f", "for_each_task": {"inputs": '{"a": 1}'}})
    assert not list(tmp_path.iterdir())  # nothing ran, no log written


def test_a_local_run_runs_only_the_packages_own_entry_points(tmp_path):
    """A bundle file cannot make `spark-recs job` run another package's code."""
    (tmp_path / "databricks.yml").write_text(
        yaml.safe_dump(
            {
                "bundle": {"name": "other"},
                "targets": {"dev": {"default": True}},
                "resources": {},
                "include": ["jobs.yml"],
            }
        )
    )
    tasks = [
        {"task_key": "ok", "python_wheel_task": {"package_name": "spark_recs", "entry_point": "spark-recs"}},
        {"task_key": "pip", "python_wheel_task": {"package_name": "spark_recs", "entry_point": "pip"}},
        {"task_key": "evil", "python_wheel_task": {"package_name": "evil", "entry_point": "spark-recs"}},
        {"task_key": "notebook", "notebook_task": {"notebook_path": "x"}},
    ]
    jobs = {f"job_{t['task_key']}": {"name": t["task_key"], "tasks": [t]} for t in tasks}
    (tmp_path / "jobs.yml").write_text(yaml.safe_dump({"resources": {"jobs": jobs}}))
    other, logs = Bundle(tmp_path), tmp_path / "logs"
    with pytest.raises(
        ValueError, match=r"pip is not a console script of spark_recs; its scripts: \['spark-recs',"
    ):
        run_job(other, "job_pip", target="dev", logs=logs)
    for name in ("job_evil", "job_notebook"):
        with pytest.raises(ValueError, match="only python_wheel_tasks of spark_recs run on this machine"):
            run_job(other, name, target="dev", logs=logs)
    assert not logs.exists()
