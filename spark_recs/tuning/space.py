"""Search spaces: the ranges a hyperparameter search draws from, checked against a model's declarations.

A space is read from the official GRU4Rec ``paramspaces`` format (a file of JSON lines, one dimension
each: ``{"name": "learning_rate", "dtype": "float", "values": [0.01, 0.25], "step": 0.005}``) or from a
config section with the same fields (a list, or a mapping from name to the other fields). ``dtype`` is
``int`` or ``float`` (``values`` is ``[low, high]``, both included; optional ``step`` and ``log``) or
``categorical`` (``values`` are the choices). Every dimension must name a declared parameter
(:func:`spark_recs.core.params.declarations`) and stay inside what that parameter accepts, so a search
never starts with a range its model would refuse in the middle of a trial.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any

from spark_recs.core.params import ConfigError, closest, declarations

DTYPES = ("int", "float", "categorical")
FIELDS = ("name", "dtype", "values", "step", "log")


@dataclass(frozen=True)
class Dimension:
    """One parameter's range. ``as_list``: the parameter is a list (GRU4Rec's ``layers``) drawn as one
    number, as the official spaces do: the value ``v`` becomes ``[v]``."""

    name: str
    dtype: str
    values: tuple
    step: float | None = None
    log: bool = False
    as_list: bool = False

    def suggest(self, trial) -> Any:
        """The parameter's value for an Optuna trial."""
        if self.dtype == "categorical":
            value = trial.suggest_categorical(self.name, list(self.values))
        elif self.dtype == "int":
            low, high = self.values
            value = trial.suggest_int(self.name, low, high, step=int(self.step or 1), log=self.log)
        else:
            low, high = self.values
            value = trial.suggest_float(self.name, low, high, step=self.step, log=self.log)
        return self.parameter(value)

    def parameter(self, value: Any) -> Any:
        """A drawn value as the model takes it: a float on a step rounded to 12 digits (0.15, not
        0.15000000000000002), a list parameter's ``v`` as ``[v]``."""
        if self.dtype == "float" and self.step:
            value = round(value, 12)
        return [value] if self.as_list and not isinstance(value, list) else value

    def grid(self) -> list:
        """Every value of the dimension, for a grid search: the choices, or ``low, low + step, ... high``."""
        if self.dtype == "categorical":
            return list(self.values)
        low, high = self.values
        if self.dtype == "int":
            return list(range(low, high + 1, int(self.step or 1)))
        if not self.step:
            raise ConfigError(f"search space: {self.name} is a float range without a step: a grid needs one")
        n = math.floor((high - low) / self.step + 1e-9)
        return [round(low + i * self.step, 12) for i in range(n + 1)]


@dataclass(frozen=True)
class SearchSpace:
    """The dimensions of a search, in the order given."""

    dimensions: tuple[Dimension, ...]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def suggest(self, trial) -> dict[str, Any]:
        """The parameters of one trial, drawn in declaration order of the space."""
        return {d.name: d.suggest(trial) for d in self.dimensions}

    def describe(self) -> list[dict]:
        """The dimensions in the ``paramspaces`` format (what a study records of its space)."""
        return [
            {"name": d.name, "dtype": d.dtype, "values": list(d.values)}
            | ({"step": d.step} if d.step is not None else {})
            | ({"log": True} if d.log else {})
            for d in self.dimensions
        ]

    def grid(self) -> dict[str, list]:
        """The grid of every dimension (Optuna's ``GridSampler`` search space)."""
        return {d.name: d.grid() for d in self.dimensions}


def read_paramspace(path: str | Path) -> list[dict]:
    """The dimensions of a ``paramspaces`` file: one JSON object per line (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no search space file at {path}")
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{number}: not a JSON object ({error.msg})") from None
    return found


def search_space(spec: str | Path | Iterable | Mapping, model: Any) -> SearchSpace:
    """The checked :class:`SearchSpace` of ``spec`` for ``model``'s declared parameters (``model``: a
    class or a declaration, or a tuple of them whose parameters are searched together).

    ``spec``: a ``paramspaces`` file, a list of dimensions or a mapping ``name -> {dtype, values, ...}``.
    """
    if isinstance(spec, (str, Path)):
        entries = read_paramspace(spec)
    elif isinstance(spec, Mapping):
        entries = [{"name": name, **(fields or {})} for name, fields in spec.items()]
    else:
        entries = list(spec)
    if not entries:
        raise ConfigError("search space: no dimensions; name at least one parameter to search")
    models = model if isinstance(model, tuple) else (model,)
    label = getattr(models[0], "__name__", type(models[0]).__name__)
    declared = {}
    for one in models:
        declared |= declarations(one) if hasattr(one, "Params") or is_dataclass(one) else {}
    if not declared:
        raise ConfigError(f"search space: {label} declares no parameters to search")
    dimensions, seen = [], set()
    for entry in entries:
        dimension = _dimension(entry, declared, label)
        if dimension.name in seen:
            raise ConfigError(f"search space: {dimension.name} is given twice")
        seen.add(dimension.name)
        dimensions.append(dimension)
    return SearchSpace(tuple(dimensions))


def configured_space(section: Any, space_file: str | None, model: Any) -> SearchSpace:
    """The search space of a config for ``model``: its ``tune.space`` file, else its ``search_space``
    section (giving both is an error)."""
    if space_file and section:
        raise ConfigError("give the search space once: tune.space (a file) or search_space, not both")
    return search_space(space_file or section, model)


def _dimension(entry: Any, declared: dict, model: str) -> Dimension:
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise ConfigError(f"search space: each dimension is an object with a name, got {entry!r}")
    name = entry["name"]
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"search space: {name} has unknown field(s) {unknown}; the fields are {list(FIELDS)}"
        )
    if name not in declared:
        raise ConfigError(f"search space: {model} has no parameter {name!r}{closest(name, list(declared))}")
    dtype, values = entry.get("dtype"), entry.get("values")
    if dtype not in DTYPES:
        raise ConfigError(f"search space: {name} has dtype {dtype!r}; expected one of {list(DTYPES)}")
    step, log = entry.get("step"), bool(entry.get("log", False))
    rule = declared[name].rule
    as_list = rule.kind is list
    if dtype == "categorical":
        if not isinstance(values, list) or not values:
            raise ConfigError(f"search space: {name} needs its choices as a non-empty list in values")
        if step is not None or log:
            raise ConfigError(f"search space: {name} is categorical: step and log do not apply")
        values = tuple(values)
    else:
        values = _bounds(name, dtype, values, step, log)
    dimension = Dimension(name, dtype, values, step, log, as_list)
    for value in dimension.values:
        rule.check(f"search space: {name}", dimension.parameter(value))
    return dimension


def _bounds(name: str, dtype: str, values: Any, step: Any, log: bool) -> tuple:
    kind = int if dtype == "int" else (int, float)
    numbers = isinstance(values, list) and len(values) == 2
    if not numbers or any(isinstance(v, bool) or not isinstance(v, kind) for v in values):
        raise ConfigError(
            f"search space: {name} ({dtype}) needs values [low, high] of type {dtype}, got {values!r}"
        )
    low, high = values if dtype == "int" else (float(values[0]), float(values[1]))
    if not low < high:
        raise ConfigError(f"search space: {name} needs low < high, got {values!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, kind) or step <= 0):
        raise ConfigError(f"search space: {name} needs a positive {dtype} step, got {step!r}")
    if log and (low <= 0 or (step not in (None, 1) if dtype == "int" else step is not None)):
        raise ConfigError(
            f"search space: {name} on a log scale needs low > 0 and no step, got {values!r}, step {step!r}"
        )
    return low, high
