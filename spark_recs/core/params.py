"""Parameter declarations: each component declares its tunable parameters once, beside its code.

A declaration is a dataclass whose fields are made with :func:`param` (default, :class:`Rule`, one-line
doc); a class points to its declaration as ``Params``. Config schemas, ``--set`` validation, CLI help,
constructor signatures and constructor checks are all derived from it, and :func:`declarations` is what
a hyperparameter search reads the ranges from::

    @dataclass(frozen=True)
    class PopularParams:
        n: int = param(10, Rule(int, 1), "list length")

    declarations(PopularParams)["n"].rule.check("n", 0)  # ConfigError: n = 0 is out of range [1, inf)
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list"}


class ConfigError(ValueError):
    """A configuration key or parameter value that cannot be used."""


@dataclass(frozen=True)
class Rule:
    """What a value may be: its type, and a numeric range or a set of choices.

    With several kinds (``(int, str)``) the range constrains the numbers and ``choices`` the strings.
    """

    kind: type | tuple[type, ...]
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    #: Also (or, with ``kind`` list, only) a non-empty list, each item allowed by this rule.
    items: Rule | None = None
    #: With ``items``: the number of items a list must have.
    length: int | None = None
    nullable: bool = False
    #: An input location: a relative path written in a config file is relative to that file.
    source: bool = False

    def check(self, key: str, value: Any) -> None:
        """Raise a one-line :class:`ConfigError` naming ``key`` unless ``value`` is allowed."""
        if value is None and self.nullable:
            return
        if self.items is not None and isinstance(value, list):
            if not value or self.length not in (None, len(value)):
                raise ConfigError(f"{key} must be {self.describe()}, got {value!r}")
            for i, item in enumerate(value):
                self.items.check(f"{key}[{i}]", item)
            return
        wrong_type = isinstance(value, bool) and bool not in self._kinds or not isinstance(value, self.kind)
        if wrong_type or self.choices and isinstance(value, str) and value not in self.choices:
            raise ConfigError(f"{key} must be {self.describe()}, got {value!r}")
        if isinstance(value, (int, float)) and not self._in_range(value):
            raise ConfigError(f"{key} = {value!r} is out of range {self.range_text()}")

    @property
    def _kinds(self) -> tuple[type, ...]:
        return self.kind if isinstance(self.kind, tuple) else (self.kind,)

    def _in_range(self, value: float) -> bool:
        # Written as "is inside" so that NaN is outside every bounded range.
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def range_text(self) -> str:
        """The numeric range, e.g. ``[0, 1)`` or ``(0, inf)``."""
        low = "(-inf" if self.low is None else f"{'(' if self.low_open else '['}{self.low:g}"
        high = "inf)" if self.high is None else f"{self.high:g}{')' if self.high_open else ']'}"
        return f"{low}, {high}"

    def describe(self) -> str:
        """The allowed values in words, e.g. ``an integer in [1, inf) or null``."""
        parts = []
        for kind in self._kinds:
            if kind is int and float in self._kinds or kind is list and self.items is not None:
                continue  # "a number" or the list's text says it
            if kind is str and self.choices:
                parts.append(f"one of {list(self.choices)}")
                continue
            ranged = kind in (int, float) and (self.low is not None or self.high is not None)
            parts.append(_KIND_NAMES[kind] + (f" in {self.range_text()}" if ranged else ""))
        if self.items is not None:
            size = "a non-empty list" if self.length is None else f"a list of {self.length}"
            parts.append(f"{size}, each {self.items.describe()}")
        text = " or ".join(parts)
        return f"{text} or null" if self.nullable else text


#: The kinds of a number (an int is a number too).
NUMBER = (int, float)
POSITIVE_INT = Rule(int, 1)
POSITIVE = Rule(NUMBER, 0, low_open=True)
NON_NEGATIVE = Rule(NUMBER, 0)
FRACTION = Rule(NUMBER, 0, 1, high_open=True)


@dataclass(frozen=True)
class Param:
    """One declared parameter: its default, the values it may take and what it does."""

    default: Any
    rule: Rule
    doc: str


def param(default: Any, rule: Rule, doc: str) -> Any:
    """A dataclass field declaring one parameter (a list or dict default is copied for each instance)."""
    metadata = {"param": Param(default, rule, doc)}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def declarations(declared: Any) -> dict[str, Param]:
    """The parameters of a :func:`param` dataclass, or of the ``Params`` declaration of a class or
    instance, by name in declaration order."""
    target = declared if dataclasses.is_dataclass(declared) else declared.Params
    return {f.name: f.metadata["param"] for f in dataclasses.fields(target) if "param" in f.metadata}


def closest(name: str, valid: list[str]) -> str:
    """``"; did you mean 'x'?"`` naming the closest of ``valid``, else ``"; valid keys: [...]"``."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {valid}"


def check_params(declared: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of ``declared`` (see :func:`declarations`): its value in ``values``, else a copy of
    its default. An unknown name or a value its rule refuses raises a one-line :class:`ConfigError`
    naming the owner, the parameter, the value and what is allowed."""
    owner = declared.__name__ if isinstance(declared, type) else type(declared).__name__
    params = declarations(declared)
    for name in values:
        if name not in params:
            raise ConfigError(f"unknown {owner} parameter {name!r}{closest(name, list(params))}")
    for name, value in values.items():
        params[name].rule.check(f"{owner} parameter {name}", value)
    return {name: copy.deepcopy(p.default) for name, p in params.items()} | dict(values)


def signature(declared: Any, *, positional: bool = False) -> inspect.Signature:
    """``(self, *, name: type = default, ...)``: a constructor signature taking the declared parameters
    (``positional``: also by position, in declaration order, as LensKit's ``BiasedMF(50)``)."""
    target = declared if dataclasses.is_dataclass(declared) else declared.Params
    params = declarations(target)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if positional else inspect.Parameter.KEYWORD_ONLY
    fields = [
        p.replace(kind=kind, default=params[p.name].default)
        for p in inspect.signature(target).parameters.values()
    ]
    return inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *fields])


def help_text(declared: Any) -> str:
    """One line per parameter: ``name = default: doc (allowed values)``, for docstrings and help."""
    return "\n".join(
        f"{name} = {p.default!r}: {p.doc} ({p.rule.describe()})" for name, p in declarations(declared).items()
    )
