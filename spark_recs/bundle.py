"""The Databricks Asset Bundle (``databricks.yml`` and the ``resources/*.yml`` it includes) read as Databricks
reads it, and its jobs run on this machine.

:class:`Bundle` resolves the bundle's ``${...}`` references for a target; :func:`run_job` runs one of its
jobs locally: the same tasks in the order of their ``depends_on``, each ``python_wheel_task`` as its entry
point (a console script of the installed package) with the same parameters, the job's
``{{job.parameters.*}}`` taken from their defaults or ``params``, a ``for_each_task`` once per input
(``{{input}}``). Cluster, library and environment settings do not apply: the tasks run in this Python, each
in its own process (so its own local Spark), as each Databricks task is. A task that fails stops the job.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

_PRINTING = threading.Lock()
BUNDLE_REF = re.compile(r"\$\{([^}]+)\}")
TASK_REF = re.compile(r"\{\{([^}]+)\}\}")
#: The ``${...}`` references outside ``var`` and ``resources`` a bundle may use here.
CONTEXT = ("workspace.file_path", "workspace.current_user.userName", "bundle.target", "bundle.name")


@dataclass
class Bundle:
    """The bundle in folder ``root``; ``user`` stands for ``${workspace.current_user.userName}`` and the
    folder itself for ``${workspace.file_path}`` (where the deployed files are)."""

    root: Path
    user: str = field(default_factory=getpass.getuser)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        file = self.root / "databricks.yml"
        if not file.is_file():
            raise FileNotFoundError(f"no databricks.yml in {self.root}: pass the bundle's folder")
        self.config = yaml.safe_load(file.read_text())
        self.files = sorted(f for pattern in self.config.get("include", []) for f in self.root.glob(pattern))
        self.resources: dict[str, dict] = {}
        for path in self.files:
            for kind, items in (yaml.safe_load(path.read_text()).get("resources") or {}).items():
                self.resources.setdefault(kind, {}).update(items)

    @property
    def jobs(self) -> dict[str, dict]:
        return self.resources.get("jobs", {})

    def variables(self, target: str) -> dict:
        """The variables' values in ``target``: their defaults, then the target's."""
        if target not in self.config["targets"]:
            raise ValueError(f"target {target!r} is not one of the bundle's {sorted(self.config['targets'])}")
        values = {name: spec.get("default") for name, spec in self.config.get("variables", {}).items()}
        return values | (self.config["targets"][target].get("variables") or {})

    def resolve(self, value, target: str):
        """``value`` (a string, list or mapping) with every ``${...}`` reference resolved for ``target``."""
        if isinstance(value, list):
            return [self.resolve(v, target) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v, target) for k, v in value.items()}
        if not isinstance(value, str):
            return value
        variables = self.variables(target)
        context = {
            "workspace.file_path": str(self.root),
            "workspace.current_user.userName": self.user,
            "bundle.target": target,
            "bundle.name": self.config["bundle"]["name"],
        }

        def one(match: re.Match) -> str:
            reference, path = match.group(1), match.group(1).split(".")
            try:
                if path[0] == "var":
                    return str(self.resolve(variables[path[1]], target))
                if path[0] == "resources":
                    return str(self.resolve(self.resources[path[1]][path[2]][path[3]], target))
                return context[reference]
            except (KeyError, IndexError):
                raise ValueError(f"${{{reference}}} names nothing the bundle defines") from None

        return BUNDLE_REF.sub(one, value)

    def job(self, name: str, target: str) -> dict:
        """Job ``name`` with its references resolved for ``target``."""
        if name not in self.jobs:
            raise ValueError(f"the bundle has no job {name!r}; its jobs: {', '.join(sorted(self.jobs))}")
        return self.resolve(self.jobs[name], target)


def job_parameters(job: dict, given: Mapping[str, str] = ()) -> dict[str, str]:
    """The job's parameters: their defaults, replaced by ``given`` (each must be one of them)."""
    values = {p["name"]: str(p.get("default", "")) for p in job.get("parameters", [])}
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise ValueError(f"the job has no parameter(s) {unknown}; its parameters: {', '.join(values)}")
    return values | dict(given)


def task_arguments(task: dict, parameters: Mapping[str, str], item: str | None = None) -> list[str]:
    """A wheel task's parameters as its process gets them: ``{{job.parameters.<name>}}`` and, in a
    ``for_each_task``, ``{{input}}`` (``item``) substituted; any other dynamic reference is refused."""

    def one(match: re.Match) -> str:
        reference = match.group(1).strip()
        name = reference.removeprefix("job.parameters.")
        if name != reference and name in parameters:
            return parameters[name]
        if reference == "input" and item is not None:
            return item
        raise ValueError(f"task {task['task_key']}: {{{{{reference}}}}} cannot be resolved on this machine")

    listed = (task.get("python_wheel_task") or {}).get("parameters", [])
    return [TASK_REF.sub(one, str(p)) for p in listed]


def for_each_inputs(task: dict) -> list[str]:
    """The inputs of a ``for_each_task``: a JSON list in the job definition; each item as ``{{input}}``
    gets it (strings as they are, other values as JSON)."""
    text = task["for_each_task"]["inputs"]
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"task {task['task_key']}: for_each_task.inputs is not JSON ({exc}): {text!r}"
        ) from None
    if not isinstance(items, list):
        raise ValueError(f"task {task['task_key']}: for_each_task.inputs must be a JSON list, got {text!r}")
    return [item if isinstance(item, str) else json.dumps(item) for item in items]


def task_order(job: dict) -> list[dict]:
    """The job's tasks, each after every task it depends on (in file order otherwise)."""
    ordered, done, pending = [], set(), list(job["tasks"])
    while pending:
        ready = [t for t in pending if {d["task_key"] for d in t.get("depends_on", [])} <= done]
        if not ready:
            keys = [t["task_key"] for t in pending]
            raise ValueError(f"the job's tasks {keys} depend on each other or on tasks it does not have")
        ordered.append(ready[0])
        done.add(ready[0]["task_key"])
        pending.remove(ready[0])
    return ordered


def entry_point_command(name: str) -> list[str]:
    """The command running console script ``name`` of the installed spark_recs in this Python (only its
    own: a bundle file cannot make this run another package's code)."""
    scripts = importlib.metadata.distribution("spark_recs").entry_points.select(group="console_scripts")
    found = [e for e in scripts if e.name == name]
    if not found:
        raise ValueError(
            f"{name} is not a console script of spark_recs; its scripts: {sorted(scripts.names)}"
        )
    module, _, function = found[0].value.partition(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {function}; {function}()"
    return [sys.executable, "-c", code]


def run_job(
    bundle: Bundle,
    name: str,
    *,
    target: str,
    params: Mapping[str, str] = (),
    concurrency: int = 1,
    logs: Path,
    stream=None,
) -> int:
    """Run job ``name`` of ``bundle`` here (see the module docstring); ``concurrency``: at most this many
    iterations of a ``for_each_task`` at once (and at most its own ``concurrency``). Each task's output
    goes to ``logs/<task>[-<i>].log``; one line per task on ``stream`` (default stderr). Returns 0, or the
    exit status of the first task that failed."""
    stream = stream or sys.stderr
    job = bundle.job(name, target)
    parameters = job_parameters(job, params)
    ordered = task_order(job)
    plans = [_runs_of(task, parameters) for task in ordered]  # every reference checked before anything runs
    logs.mkdir(parents=True, exist_ok=True)
    _say(stream, f"job {name} (target {target}): {len(ordered)} tasks, logs in {logs}")
    for task, runs in zip(ordered, plans):
        width = min(concurrency, task.get("for_each_task", {}).get("concurrency", 1), len(runs)) or 1
        with ThreadPoolExecutor(max_workers=width) as pool:
            codes = list(pool.map(lambda run: _run_task(run, logs, stream), runs))
        failed = next((code for code in codes if code), 0)
        if failed:
            _say(stream, f"job {name}: task {task['task_key']} failed (exit {failed}); later tasks not run")
            return failed
    _say(stream, f"job {name}: every task succeeded")
    return 0


def _runs_of(task: dict, parameters: Mapping[str, str]) -> list[tuple[str, list[str], str | None]]:
    """``(label, command, input)`` per process the task runs: one, or one per ``for_each_task`` input."""
    if "for_each_task" in task:
        inner = task["for_each_task"]["task"]
        items = for_each_inputs(task)
        return [
            (f"{task['task_key']}-{i}", _command(inner, task_arguments(inner, parameters, item)), item)
            for i, item in enumerate(items, 1)
        ]
    return [(task["task_key"], _command(task, task_arguments(task, parameters)), None)]


def _command(task: dict, arguments: list[str]) -> list[str]:
    wheel = task.get("python_wheel_task") or {}
    if wheel.get("package_name") != "spark_recs":
        raise ValueError(
            f"task {task['task_key']}: only python_wheel_tasks of spark_recs run on this machine"
        )
    return [*entry_point_command(task["python_wheel_task"]["entry_point"]), *arguments]


def _run_task(run: tuple[str, list[str], str | None], logs: Path, stream) -> int:
    label, command, item = run
    log = logs / f"{label}.log"
    started = time.perf_counter()
    given = "" if item is None else f" (input {item})"
    _say(stream, f"task {label}{given}: started {datetime.now(UTC):%H:%M:%S}")
    with log.open("w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    took = time.perf_counter() - started
    if code == 0:
        _say(stream, f"task {label}: succeeded in {took:.1f}s")
    else:
        tail = log.read_text().strip().splitlines()[-5:]
        lines = [
            f"task {label}: failed with exit {code} in {took:.1f}s, see {log}",
            *(f"  | {t}" for t in tail),
        ]
        _say(stream, "\n".join(lines))
    return code


def _say(stream, text: str) -> None:
    with _PRINTING:
        print(text, file=stream, flush=True)
