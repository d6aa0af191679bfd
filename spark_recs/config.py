"""YAML configuration: defaults, validation with clear errors, ``--set`` overrides.

One schema per ``kind``, declared by its task (:mod:`spark_recs.tasks`): ``gru4rec`` follows GRU4Rec's
``example.yaml`` (sections ``model``, ``data``, ``data_split``, ``training``, ``evaluation``, ``paths``),
``multieval`` describes a LensKit-style comparison, and ``gym``, ``demo`` and ``rl`` their jobs. Unknown
keys are errors naming the closest valid key; values out of range name the allowed range.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path

import yaml

from spark_recs.core.params import ConfigError, closest


@functools.cache
def schema_of(kind: str) -> dict:
    """The config schema of ``kind``, declared by its task (:func:`spark_recs.tasks.task`): each key's
    default value and rule, by section; a section given as a function (MultiEval's ``algorithms``) checks a
    list of entries. Built on first use: the sections of components are derived from the parameters they
    declare beside their code (:mod:`spark_recs.core.params`), whose modules load PyTorch and MLflow.
    """
    from spark_recs.tasks import task

    return task(kind).schema()


def schemas() -> dict[str, dict]:
    """Every config schema, by ``kind``."""
    from spark_recs.tasks import TASKS

    return {kind: schema_of(kind) for kind in TASKS}


def defaults(schema: str = "gru4rec") -> dict:
    """A fresh copy of every default value, by section."""
    return {
        section: [] if callable(keys) else {k: copy.deepcopy(v[0]) for k, v in keys.items()}
        for section, keys in schema_of(schema).items()
    }


def validate_config(config: dict, schema: str = "gru4rec") -> dict:
    """Check every section, key and value of ``config``; return it unchanged or raise :class:`ConfigError`."""
    sections = schema_of(schema)
    if not isinstance(config, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(config).__name__}")
    for section, values in config.items():
        if section not in sections:
            raise ConfigError(f"unknown section {section!r}{closest(section, list(sections))}")
        if callable(sections[section]):
            sections[section](values)
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
    from spark_recs.tasks import task

    task(kind)  # an unknown kind names the closest
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
        rules = schema_of(schema).get(section)
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
        if isinstance(config[section], list):
            config[section] = values
        else:
            config[section].update(values)
    config["kind"] = schema
    return config


def override(key: str, value) -> str:
    """A ``--set`` assignment giving ``key`` exactly ``value`` (strings quoted, so ``"123"`` stays a string)."""
    return f"{key}={json.dumps(value)}"
