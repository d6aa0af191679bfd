"""YAML configuration: defaults, validation with clear errors, ``--set`` overrides.

One schema per ``kind`` (:func:`schemas`): ``gru4rec`` follows GRU4Rec's ``example.yaml`` (sections
``model``, ``data``, ``data_split``, ``training``, ``evaluation``, ``paths``), ``multieval`` describes a
LensKit-style comparison, and ``gym``, ``demo`` and ``rl`` their jobs. The sections of a component (GRU4Rec's
``model``, the demo, the RL algorithms) are derived from the parameters it declares beside its code
(:mod:`spark_recs.core.params`). Unknown keys are errors naming the closest valid key; values out of
range name the allowed range.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import yaml

from spark_recs.core.params import FRACTION, NUMBER, POSITIVE_INT, ConfigError, Rule, closest, declarations

#: A schema section: each key's default value and rule.
Section = dict[str, tuple[Any, Rule]]


def _section(declared: Any) -> Section:
    """A schema section from a component's parameter declaration (:mod:`spark_recs.core.params`)."""
    return {name: (p.default, p.rule) for name, p in declarations(declared).items()}


def _demo_schema(demo_config: type) -> dict[str, Section]:
    """The demo's sections: each field of :class:`~spark_recs.demo.DemoConfig` at its ``CONFIG_KEYS`` key."""
    schema: dict[str, Section] = {"data": {}, "evaluation": {}, "mlflow": {}, "paths": {}}
    for name, p in declarations(demo_config).items():
        section, key = demo_config.config_key(name)
        schema[section][key] = (p.default, p.rule)
    return schema


#: The sections of a GRU4Rec config besides ``model`` (GRU4Rec's constructor parameters).
_GRU4REC_SECTIONS: dict[str, Section] = {
    "data": {
        "session_key": ("SessionId", Rule(str)),
        "item_key": ("ItemId", Rule(str)),
        "time_key": ("Time", Rule(str)),
    },
    "data_split": {
        "valid_fraction": (0.1, FRACTION),
        "test_fraction": (0.1, FRACTION),
    },
    "training": {
        "sample_cache_max_size": (10_000_000, Rule(int, 0)),
        "compatibility_mode": (True, Rule(bool)),
    },
    "evaluation": {
        "cutoff": ([20], Rule(list, items=POSITIVE_INT)),
        "batch_size": (512, POSITIVE_INT),
        "mode": ("conservative", Rule(str, choices=("conservative", "standard", "median"))),
    },
    "paths": {
        "model_save": ("model.pth", Rule(str, nullable=True)),
        "model_load": (None, Rule(str, nullable=True, source=True)),
    },
}


#: Every key of a MultiEval config (``spark-recs multieval``) with its default value and rule, by section.
MULTIEVAL_SCHEMA: dict[str, Section] = {
    "data": {
        "ratings": ("../shared/data/ml-latest-small", Rule(str, source=True)),
        "name": ("ml-latest-small", Rule(str)),
    },
    "split": {
        "partitions": (5, Rule(int, 2)),
        "holdout": (5, Rule(int, 1, nullable=True)),
        "holdout_fraction": (None, Rule(NUMBER, 0, 1, high_open=True, nullable=True)),
        "seed": (42, Rule(int, 0)),
    },
    # Each entry: {class: Popular | Bias | BiasedMF | ImplicitMF | ItemKNN | "module:Class", name: ..., params: {...}}
    "algorithms": {},
    "evaluation": {
        "path": (None, Rule(str, nullable=True)),  # null: <work dir>/multieval/<data.name>
        "recommend": (100, Rule(int, 1)),
        "predict": (True, Rule(bool)),
        "experiment": ("spark_recs-multieval", Rule(str)),
        "persist_data": (True, Rule(bool)),
    },
}

#: The baselines a MultiEval config may name by class name.
ALGORITHMS = {
    "Popular": "spark_recs.models.popular:Popular",
    "Bias": "spark_recs.models.bias:Bias",
    "BiasedMF": "spark_recs.models.mf:BiasedMF",
    "ImplicitMF": "spark_recs.models.mf:ImplicitMF",
    "ItemKNN": "spark_recs.models.knn:ItemKNN",
}

#: Every key of a Gym config (``spark-recs train`` with ``kind: gym``): the MovieLens rating Gym, PPO, baselines.
GYM_SCHEMA: dict[str, Section] = {
    "data": {
        "path": ("../shared/data/ml-100k", Rule(str, source=True)),
        "split": ("fold", Rule(str, choices=("fold", "temporal"))),
        "fold": (1, Rule(int, 1, 5)),
    },
    "env": {
        "n_envs": (64, POSITIVE_INT),
        "episode_length": (None, Rule(int, 1, nullable=True)),
    },
    "ppo": {
        "total_timesteps": (1_000_000, POSITIVE_INT),
        "learning_rate": (1e-3, Rule(NUMBER, 0, None)),
        "n_steps": (128, Rule(int, 2)),
        "batch_size": (1024, Rule(int, 2)),
        "n_epochs": (10, POSITIVE_INT),
        "gamma": (0.0, Rule(NUMBER, 0, 1)),
        "gae_lambda": (0.95, Rule(NUMBER, 0, 1)),
        "clip_range": (0.2, Rule(NUMBER, 0, None)),
        "ent_coef": (0.0, Rule(NUMBER, 0)),
        "vf_coef": (0.5, Rule(NUMBER, 0)),
        "max_grad_norm": (0.5, Rule(NUMBER, 0)),
        "normalize_advantage": (True, Rule(bool)),
        "hidden": ([64, 64], Rule(list, items=POSITIVE_INT)),
        "seed": (42, Rule(int, 0)),
        "threads": (1, POSITIVE_INT),
    },
    "baselines": {
        "bias_damping": (0.0, Rule(NUMBER, 0)),
        "mlp_epochs": (10, POSITIVE_INT),
        "mlp_learning_rate": (1e-3, Rule(NUMBER, 0, None)),
        "mlp_batch_size": (256, POSITIVE_INT),
    },
    "mlflow": {
        "experiment": ("spark_recs-gym", Rule(str)),
        "run_name": (None, Rule(str, nullable=True)),
        "registered_model": ("spark_recs-gym-policy", Rule(str, nullable=True)),
        "alias": ("challenger", Rule(str, nullable=True)),
    },
}

#: The sections of an RL config (``kind: rl``, :func:`spark_recs.rl.training.train_from_config`) besides
#: those of the algorithms.
_RL_SECTIONS: dict[str, Section] = {
    "data": {
        "ratings": (
            "../shared/data/ml-latest-small",
            Rule(str, source=True),
        ),  # MovieLens folder, file, path or table
        "items": (
            None,
            Rule(str, nullable=True, source=True),
        ),  # MovieLens folder for features; null: data.ratings
        "user_key": ("user", Rule(str)),  # column names of a ratings file or table
        "item_key": ("item", Rule(str)),
        "rating_key": ("rating", Rule(str)),
        "time_key": ("timestamp", Rule(str)),
    },
    "embeddings": {
        "source": ("features", Rule(str, choices=("features", "mf", "file"))),
        "dim": (32, POSITIVE_INT),
        "path": (None, Rule(str, nullable=True, source=True)),
        "mf_iterations": (20, POSITIVE_INT),
    },
    "env": {
        "frame_size": (10, POSITIVE_INT),
        "batch_size": (25, POSITIVE_INT),
        "test_size": (0.05, FRACTION),
        "min_seq_size": (10, POSITIVE_INT),
        "rating_center": (2.5, Rule(NUMBER)),
        "rating_scale": (2.0, Rule(NUMBER, 0, None)),
        "missing_items": ("error", Rule(str, choices=("error", "drop"))),
        "seed": (42, Rule(int, 0)),
    },
    "algorithm": {
        "name": ("ddpg", Rule(str, choices=("ddpg", "td3", "bcq", "reinforce"))),
        "hidden_size": (256, POSITIVE_INT),
    },
    "training": {
        "epochs": (10, POSITIVE_INT),
        "log_every": (100, POSITIVE_INT),  # per-update losses logged every that many updates
        "device": ("cpu", Rule(str)),
    },
    "recommender": {
        "scoring": ("dot", Rule(str, choices=("dot", "cosine"))),
    },
    "evaluation": {
        "holdout": (False, Rule(bool)),
        "k": (10, POSITIVE_INT),
        "min_rows": (3, Rule(int, 3)),
    },
    "mlflow": {
        "experiment": ("spark_recs-rl", Rule(str)),
        "run_name": (None, Rule(str, nullable=True)),
        "registered_model": ("spark_recs-rl", Rule(str, nullable=True)),
        "alias": ("challenger", Rule(str, nullable=True)),
    },
}


@functools.cache
def schemas() -> dict[str, dict[str, Section]]:
    """Every schema by ``kind``: each key's default value and rule, by section.

    Built on first use: the sections of components are derived from the parameters they declare
    (:mod:`spark_recs.core.params`), whose modules load PyTorch and MLflow. ``gru4rec``'s ``model`` holds
    every GRU4Rec constructor parameter; ``demo`` holds the fields of :class:`~spark_recs.demo.DemoConfig`;
    ``rl``'s ``ddpg``/``td3``/``bcq``/``reinforce`` sections hold the update parameters of the algorithms
    (recnn's defaults), of which only the section of ``algorithm.name`` is used.
    """
    from spark_recs.demo import DemoConfig
    from spark_recs.models.gru4rec.params import GRU4RecParams
    from spark_recs.rl.algos import BCQ, DDPG, TD3, BCQNetworkParams, Reinforce

    algorithms = {
        "ddpg": _section(DDPG),
        "td3": _section(TD3),
        "bcq": _section(BCQ) | _section(BCQNetworkParams),
        "reinforce": _section(Reinforce),
    }
    return {
        "gru4rec": {"model": _section(GRU4RecParams), **_GRU4REC_SECTIONS},
        "multieval": MULTIEVAL_SCHEMA,
        "gym": GYM_SCHEMA,
        "demo": _demo_schema(DemoConfig),
        "rl": _RL_SECTIONS | algorithms,
    }


_SCHEMA_NAMES = {"SCHEMA": "gru4rec", "DEMO_SCHEMA": "demo", "RL_SCHEMA": "rl"}


def __getattr__(name: str):
    """``SCHEMAS`` (:func:`schemas`) and the schemas ``SCHEMA``, ``DEMO_SCHEMA`` and ``RL_SCHEMA``."""
    if name == "SCHEMAS":
        return schemas()
    if name in _SCHEMA_NAMES:
        return schemas()[_SCHEMA_NAMES[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_algorithms(entries: list) -> list[tuple[str, object]]:
    """``(name, unfitted model)`` for each ``algorithms`` entry of a MultiEval config; errors name the entry.

    A ``class`` is a built-in name (:data:`ALGORITHMS`) or the ``module:Class`` of the user's own code,
    whose module is imported: the config names it on purpose (unlike a model file's ``kind``).
    """
    from spark_recs.models.base import import_model_class, model_class

    if not isinstance(entries, list) or not entries:
        raise ConfigError("algorithms must be a non-empty list of {class: ..., params: {...}} entries")
    built = []
    for i, entry in enumerate(entries):
        where = f"algorithms[{i}]"
        if not isinstance(entry, dict) or "class" not in entry:
            raise ConfigError(f"{where} must be a mapping with a 'class' key, got {entry!r}")
        unknown = set(entry) - {"class", "name", "params"}
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {sorted(unknown)}; valid: class, name, params")
        spec = str(entry["class"])
        if spec not in ALGORITHMS and ":" not in spec:
            raise ConfigError(f"{where}.class {spec!r} is unknown{closest(spec, list(ALGORITHMS))}")
        try:
            cls = model_class(ALGORITHMS[spec]) if spec in ALGORITHMS else import_model_class(spec)
        except ValueError as exc:
            raise ConfigError(f"{where}.class: {exc}") from None
        try:
            model = cls(**(entry.get("params") or {}))
        except TypeError as exc:
            raise ConfigError(f"{where}.params: {exc}") from None
        built.append((entry.get("name") or entry["class"], model))
    return built


def defaults(schema: str = "gru4rec") -> dict:
    """A fresh copy of every default value, by section."""
    return {
        section: {k: copy.deepcopy(v[0]) for k, v in keys.items()}
        for section, keys in schemas()[schema].items()
    }


def validate_config(config: dict, schema: str = "gru4rec") -> dict:
    """Check every section, key and value of ``config``; return it unchanged or raise :class:`ConfigError`."""
    sections = schemas()[schema]
    if not isinstance(config, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(config).__name__}")
    for section, values in config.items():
        if section not in sections:
            raise ConfigError(f"unknown section {section!r}{closest(section, list(sections))}")
        if section == "algorithms":
            build_algorithms(values)
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"section {section!r} must be a mapping of keys to values")
        for key, value in values.items():
            if key not in sections[section]:
                full = [f"{section}.{k}" for k in sections[section]]
                raise ConfigError(f"unknown key '{section}.{key}'{closest(f'{section}.{key}', full)}")
            sections[section][key][1].check(f"{section}.{key}", value)
    return config


def apply_override(config: dict, assignment: str) -> None:
    """Apply one ``section.key=value`` override in place (the value is parsed as YAML)."""
    path, sep, raw = assignment.partition("=")
    if not sep or "." not in path:
        raise ConfigError(f"--set expects section.key=value, got {assignment!r}")
    section, key = path.split(".", 1)
    config.setdefault(section, {})[key] = yaml.safe_load(raw)


def config_kind(given: dict, schema: str | None = None) -> str:
    """The schema of a parsed YAML config: its top-level ``kind`` (default ``gru4rec``), checked against ``schema``."""
    kind = given.get("kind", schema or "gru4rec") if isinstance(given, dict) else schema or "gru4rec"
    if kind not in schemas():
        raise ConfigError(f"kind: {kind!r} is unknown{closest(str(kind), list(schemas()))}")
    if schema is not None and kind != schema:
        raise ConfigError(f"this command needs a kind: {schema} config, the file says kind: {kind}")
    return kind


def _resolve_sources(given: dict, schema: str, folder: Path) -> None:
    """Make the relative input paths of a config file (``Rule.source``) relative to the file's ``folder``;
    table names, URIs and absolute paths stay as written."""
    from spark_recs.data.io import is_table_name, is_uri

    if not isinstance(given, dict):
        return
    for section, values in given.items():
        rules = schemas()[schema].get(section)
        if not isinstance(values, dict) or not isinstance(rules, dict):
            continue
        for key, value in values.items():
            rule = rules.get(key, (None, None))[1]
            if not (rule and rule.source and isinstance(value, str) and value):
                continue
            if is_uri(value) or Path(value).expanduser().is_absolute() or is_table_name(value):
                continue
            values[key] = os.path.normpath(folder / value)


def load_config(
    path: str | Path | None = None, overrides: list[str] = (), schema: str | None = "gru4rec"
) -> dict:
    """Defaults, updated by the YAML file at ``path`` and by ``overrides``, validated against ``schema``.

    ``schema=None`` takes it from the file's top-level ``kind`` key (absent: ``gru4rec``, the GRU4Rec
    README's schema). The result carries it as ``config["kind"]``.
    """
    given: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        given = yaml.safe_load(path.read_text()) or {}
        _resolve_sources(given, config_kind(given, schema), path.resolve().parent)
    for assignment in overrides:
        apply_override(given, assignment)
    schema = config_kind(given, schema)
    given = {k: v for k, v in given.items() if k != "kind"} if isinstance(given, dict) else given
    config = defaults(schema)
    validate_config(given, schema)
    for section, values in given.items():
        if section == "algorithms":
            config[section] = values
        else:
            config[section].update(values)
    config["kind"] = schema
    return config
