"""The contract every model meets, so one batch mechanism and one registry path serve them all.

A model works on dense item indices ``0..n_items-1`` (see :class:`~spark_recs.data.index.IdIndex`).
What a Spark worker needs travels as a :class:`Payload`: the class name, a small JSON config and the
weights as ``torch.save``d state-dict bytes, loaded with ``weights_only=True`` (never pickle).
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class Payload:
    """A model as plain data: ``kind`` (``module:Class`` of a Model subclass), JSON-able ``config``,
    and the ``state`` bytes."""

    kind: str
    config: dict
    state: bytes

    def restore(self) -> Model:
        """Rebuild the model; ``kind`` must name a :class:`Model` subclass (nothing else is instantiated)."""
        module, _, name = self.kind.partition(":")
        if not module or not name:
            raise ValueError(f"model kind {self.kind!r} is not of the form 'package.module:Class'")
        cls = getattr(importlib.import_module(module), name, None)
        if not (isinstance(cls, type) and issubclass(cls, Model)):
            raise ValueError(f"model kind {self.kind!r} does not name a spark_recs Model subclass")
        tensors = torch.load(io.BytesIO(self.state), weights_only=True, map_location="cpu")
        return cls.from_state(self.config, tensors)


class Model:
    """Base class: sklearn-style params, payload round trip, save/load without pickle.

    Subclasses implement ``fit``, ``state()`` (a dict of tensors), ``from_state(config, state)`` and
    at least one scoring method: ``score_users`` (user models) or ``score_sessions`` (session models).
    """

    def get_params(self) -> dict:
        """Constructor parameters and their current values."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> Model:
        """Set constructor parameters; unknown names are an error."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict, state: dict[str, torch.Tensor]) -> Model:
        raise NotImplementedError

    def payload(self) -> Payload:
        """The fitted model as a :class:`Payload` (what travels to Spark workers)."""
        buffer = io.BytesIO()
        torch.save(self.state(), buffer)
        kind = f"{type(self).__module__}:{type(self).__name__}"
        return Payload(kind, json.loads(json.dumps(self.get_params())), buffer.getvalue())

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` (kind + params) and ``state.pt`` (tensors) into directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        payload = self.payload()
        (path / "config.json").write_text(
            json.dumps({"kind": payload.kind, "config": payload.config}, indent=2)
        )
        (path / "state.pt").write_bytes(payload.state)
        return path

    @staticmethod
    def load(path: str | Path) -> Model:
        """Load a model written by :meth:`save`."""
        path = Path(path)
        meta = json.loads((path / "config.json").read_text())
        return Payload(meta["kind"], meta["config"], (path / "state.pt").read_bytes()).restore()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def check_items(items: np.ndarray, what: str = "training data") -> np.ndarray:
    """Item indices as int64, refusing empty input and negative indices with a clear message."""
    items = np.asarray(items, dtype=np.int64)
    if items.size == 0:
        raise ValueError(f"{what} is empty: nothing to fit (check the split and filters upstream)")
    if items.min() < 0:
        raise ValueError(f"{what} has negative item indices: index items with IdIndex first")
    return items
