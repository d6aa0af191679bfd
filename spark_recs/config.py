"""YAML configuration: the defaults in one place, validation with clear errors, ``--set`` overrides.

Two schemas: ``gru4rec`` follows GRU4Rec's ``example.yaml`` (sections ``model``, ``data``,
``data_split``, ``training``, ``evaluation``, ``paths``); ``multieval`` describes a LensKit-style
comparison (``data``, ``split``, ``algorithms``, ``evaluation``). Unknown keys are errors naming the
closest valid key; values out of range name the allowed range.
"""

from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration key or value that cannot be used."""


@dataclass(frozen=True)
class Rule:
    """What a config value may be: its type, and a numeric range or a set of choices."""

    kind: type | tuple[type, ...]
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    choices: tuple[str, ...] = ()
    items: Rule | None = None
    nullable: bool = False
    #: An input location: a relative path written in a config file is relative to that file.
    source: bool = False

    def check(self, key: str, value: Any) -> None:
        if value is None and self.nullable:
            return
        if self.items is not None:
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{key} must be a non-empty list, got {value!r}")
            for i, item in enumerate(value):
                self.items.check(f"{key}[{i}]", item)
            return
        if isinstance(value, bool) and self.kind is not bool or not isinstance(value, self.kind):
            raise ConfigError(f"{key} must be {_type_name(self.kind)}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{key} must be one of {list(self.choices)}, got {value!r}")
        too_low = self.low is not None and value < self.low
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            upper = "inf" if self.high is None else f"{self.high:g}"
            bracket = ")" if self.high_open or self.high is None else "]"
            raise ConfigError(f"{key} = {value!r} is out of range [{self.low:g}, {upper}{bracket}")


def _type_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {int: "an integer", float: "a number", str: "a string", bool: "true/false"}[k] for k in kinds
    )


_NUM = (int, float)
_FRACTION = Rule(_NUM, 0, 1, high_open=True)
_POSITIVE_INT = Rule(int, 1)

#: Every key of a GRU4Rec config with its default value and rule, by section.
SCHEMA: dict[str, dict[str, tuple[Any, Rule]]] = {
    "model": {
        "layers": ([100], Rule(list, items=_POSITIVE_INT)),
        "loss": ("cross-entropy", Rule(str, choices=("cross-entropy", "bpr-max", "top1", "top1-max", "bpr"))),
        "batch_size": (64, _POSITIVE_INT),
        "dropout_p_embed": (0.0, _FRACTION),
        "dropout_p_hidden": (0.0, _FRACTION),
        "learning_rate": (0.05, Rule(_NUM, 0, None)),
        "momentum": (0.0, _FRACTION),
        "sample_alpha": (0.5, Rule(_NUM, 0, 1)),
        "n_sample": (2048, Rule(int, 0)),
        "embedding": (0, Rule(int, 0)),
        "constrained_embedding": (True, Rule(bool)),
        "n_epochs": (10, _POSITIVE_INT),
        "bpreg": (1.0, Rule(_NUM, 0)),
        "elu_param": (0.5, Rule(_NUM, 0)),
        "logq": (0.0, Rule(_NUM, 0)),
        "device": ("cpu", Rule(str)),
        "seed": (42, Rule(int, 0)),
    },
    "data": {
        "session_key": ("SessionId", Rule(str)),
        "item_key": ("ItemId", Rule(str)),
        "time_key": ("Time", Rule(str)),
    },
    "data_split": {
        "valid_fraction": (0.1, _FRACTION),
        "test_fraction": (0.1, _FRACTION),
    },
    "training": {
        "sample_cache_max_size": (10_000_000, Rule(int, 0)),
        "compatibility_mode": (True, Rule(bool)),
    },
    "evaluation": {
        "cutoff": ([20], Rule(list, items=_POSITIVE_INT)),
        "batch_size": (512, _POSITIVE_INT),
        "mode": ("conservative", Rule(str, choices=("conservative", "standard", "median"))),
    },
    "paths": {
        "model_save": ("model.pth", Rule(str, nullable=True)),
        "model_load": (None, Rule(str, nullable=True, source=True)),
    },
}


#: Every key of a MultiEval config (``spark-recs multieval``) with its default value and rule, by section.
MULTIEVAL_SCHEMA: dict[str, dict[str, tuple[Any, Rule]]] = {
    "data": {
        "ratings": ("../shared/data/ml-latest-small", Rule(str, source=True)),
        "name": ("ml-latest-small", Rule(str)),
    },
    "split": {
        "partitions": (5, Rule(int, 2)),
        "holdout": (5, Rule(int, 1, nullable=True)),
        "holdout_fraction": (None, Rule(_NUM, 0, 1, high_open=True, nullable=True)),
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
GYM_SCHEMA: dict[str, dict[str, tuple[Any, Rule]]] = {
    "data": {
        "path": ("../shared/data/ml-100k", Rule(str, source=True)),
        "split": ("fold", Rule(str, choices=("fold", "temporal"))),
        "fold": (1, Rule(int, 1, 5)),
    },
    "env": {
        "n_envs": (64, _POSITIVE_INT),
        "episode_length": (None, Rule(int, 1, nullable=True)),
    },
    "ppo": {
        "total_timesteps": (1_000_000, _POSITIVE_INT),
        "learning_rate": (1e-3, Rule(_NUM, 0, None)),
        "n_steps": (128, Rule(int, 2)),
        "batch_size": (1024, Rule(int, 2)),
        "n_epochs": (10, _POSITIVE_INT),
        "gamma": (0.0, Rule(_NUM, 0, 1)),
        "gae_lambda": (0.95, Rule(_NUM, 0, 1)),
        "clip_range": (0.2, Rule(_NUM, 0, None)),
        "ent_coef": (0.0, Rule(_NUM, 0)),
        "vf_coef": (0.5, Rule(_NUM, 0)),
        "max_grad_norm": (0.5, Rule(_NUM, 0)),
        "normalize_advantage": (True, Rule(bool)),
        "hidden": ([64, 64], Rule(list, items=_POSITIVE_INT)),
        "seed": (42, Rule(int, 0)),
        "threads": (1, _POSITIVE_INT),
    },
    "baselines": {
        "bias_damping": (0.0, Rule(_NUM, 0)),
        "mlp_epochs": (10, _POSITIVE_INT),
        "mlp_learning_rate": (1e-3, Rule(_NUM, 0, None)),
        "mlp_batch_size": (256, _POSITIVE_INT),
    },
    "mlflow": {
        "experiment": ("spark_recs-gym", Rule(str)),
        "run_name": (None, Rule(str, nullable=True)),
        "registered_model": ("spark_recs-gym-policy", Rule(str, nullable=True)),
        "alias": ("challenger", Rule(str, nullable=True)),
    },
}

#: Every key of the demo config (``spark-recs demo [--config conf/demo.yaml]``), by section.
DEMO_SCHEMA: dict[str, dict[str, tuple[Any, Rule]]] = {
    "data": {
        "sessions": (
            None,
            Rule(str, nullable=True, source=True),
        ),  # session log (file, path, table); null: synthetic
        "ratings": (
            None,
            Rule(str, nullable=True, source=True),
        ),  # or ratings, each user's history acting as a session
        "sep": (
            None,
            Rule(str, nullable=True),
        ),  # separator of a CSV/TSV file; null: from the suffix or header
        "session_key": ("SessionId", Rule(str)),
        "item_key": ("ItemId", Rule(str)),
        "time_key": ("Time", Rule(str)),
        "n_events": (200_000, _POSITIVE_INT),
        "n_items": (2_000, Rule(int, 2)),
        "seed": (0, Rule(int, 0)),
        "test_days": (1.0, Rule(_NUM, 0, None)),
    },
    "evaluation": {
        "n": (20, _POSITIVE_INT),
        "cutoff": ([20], Rule(list, items=_POSITIVE_INT)),
    },
    "mlflow": {
        "experiment": ("spark_recs-demo", Rule(str)),
        "tracking_uri": (None, Rule(str, nullable=True)),
    },
    "paths": {
        "output": (None, Rule(str, nullable=True)),
    },
}

#: Every key of an RL config (``kind: rl``, :func:`spark_recs.rl.training.train_from_config`), by section.
#: The ``ddpg``/``td3``/``bcq``/``reinforce`` sections hold recnn's update parameters (its defaults here);
#: only the section of ``algorithm.name`` is used.
RL_SCHEMA: dict[str, dict[str, tuple[Any, Rule]]] = {
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
        "dim": (32, _POSITIVE_INT),
        "path": (None, Rule(str, nullable=True, source=True)),
        "mf_iterations": (20, _POSITIVE_INT),
    },
    "env": {
        "frame_size": (10, _POSITIVE_INT),
        "batch_size": (25, _POSITIVE_INT),
        "test_size": (0.05, _FRACTION),
        "min_seq_size": (10, _POSITIVE_INT),
        "rating_center": (2.5, Rule(_NUM)),
        "rating_scale": (2.0, Rule(_NUM, 0, None)),
        "missing_items": ("error", Rule(str, choices=("error", "drop"))),
        "seed": (42, Rule(int, 0)),
    },
    "algorithm": {
        "name": ("ddpg", Rule(str, choices=("ddpg", "td3", "bcq", "reinforce"))),
        "hidden_size": (256, _POSITIVE_INT),
    },
    "ddpg": {
        "gamma": (0.99, Rule(_NUM, 0, 1)),
        "min_value": (-10, Rule(_NUM)),
        "max_value": (10, Rule(_NUM)),
        "policy_step": (3, _POSITIVE_INT),
        "soft_tau": (1e-3, Rule(_NUM, 0, 1)),
        "policy_lr": (1e-5, Rule(_NUM, 0, None)),
        "value_lr": (1e-5, Rule(_NUM, 0, None)),
    },
    "td3": {
        "gamma": (0.99, Rule(_NUM, 0, 1)),
        "noise_std": (0.5, Rule(_NUM, 0)),
        "noise_clip": (3, Rule(_NUM, 0)),
        "soft_tau": (1e-3, Rule(_NUM, 0, 1)),
        "policy_update": (10, _POSITIVE_INT),
        "policy_lr": (1e-5, Rule(_NUM, 0, None)),
        "value_lr": (1e-5, Rule(_NUM, 0, None)),
    },
    "bcq": {
        "gamma": (0.99, Rule(_NUM, 0, 1)),
        "soft_tau": (1e-3, Rule(_NUM, 0, 1)),
        "n_generator_samples": (10, _POSITIVE_INT),
        "perturbator_step": (30, _POSITIVE_INT),
        "perturbator_lr": (1e-5, Rule(_NUM, 0, None)),
        "value_lr": (1e-5, Rule(_NUM, 0, None)),
        "generator_lr": (1e-3, Rule(_NUM, 0, None)),
        "latent_dim": (16, _POSITIVE_INT),  # the generator's latent size
        "phi": (0.05, Rule(_NUM, 0)),  # the perturbation bound, in embedding units
    },
    "reinforce": {
        "K": (10, _POSITIVE_INT),
        "correction": ("topk", Rule(str, choices=("none", "importance", "topk"))),
        "policy_lr": (1e-5, Rule(_NUM, 0, None)),
        "beta_lr": (1e-5, Rule(_NUM, 0, None)),
    },
    "training": {
        "epochs": (10, _POSITIVE_INT),
        "log_every": (100, _POSITIVE_INT),  # per-update losses logged every that many updates
        "device": ("cpu", Rule(str)),
    },
    "recommender": {
        "scoring": ("dot", Rule(str, choices=("dot", "cosine"))),
    },
    "evaluation": {
        "holdout": (False, Rule(bool)),
        "k": (10, _POSITIVE_INT),
        "min_rows": (3, Rule(int, 3)),
    },
    "mlflow": {
        "experiment": ("spark_recs-rl", Rule(str)),
        "run_name": (None, Rule(str, nullable=True)),
        "registered_model": ("spark_recs-rl", Rule(str, nullable=True)),
        "alias": ("challenger", Rule(str, nullable=True)),
    },
}

SCHEMAS = {
    "gru4rec": SCHEMA,
    "multieval": MULTIEVAL_SCHEMA,
    "gym": GYM_SCHEMA,
    "demo": DEMO_SCHEMA,
    "rl": RL_SCHEMA,
}


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
            raise ConfigError(f"{where}.class {spec!r} is unknown{_closest(spec, list(ALGORITHMS))}")
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
        for section, keys in SCHEMAS[schema].items()
    }


def _closest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {valid}"


def validate_config(config: dict, schema: str = "gru4rec") -> dict:
    """Check every section, key and value of ``config``; return it unchanged or raise :class:`ConfigError`."""
    sections = SCHEMAS[schema]
    if not isinstance(config, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(config).__name__}")
    for section, values in config.items():
        if section not in sections:
            raise ConfigError(f"unknown section {section!r}{_closest(section, list(sections))}")
        if section == "algorithms":
            build_algorithms(values)
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"section {section!r} must be a mapping of keys to values")
        for key, value in values.items():
            if key not in sections[section]:
                full = [f"{section}.{k}" for k in sections[section]]
                raise ConfigError(f"unknown key '{section}.{key}'{_closest(f'{section}.{key}', full)}")
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
    if kind not in SCHEMAS:
        raise ConfigError(f"kind: {kind!r} is unknown{_closest(str(kind), list(SCHEMAS))}")
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
        rules = SCHEMAS[schema].get(section)
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
