"""Raw user/item ids <-> the dense indices a model's tensors use, stored without pickle."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import torch

_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_INT64 = np.iinfo(np.int64)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _as_integer(value):
    """``value`` as an int when it is one or a string spelling one within int64, else None."""
    if _is_int(value):
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value) and _INT64.min <= int(value) <= _INT64.max:
        return int(value)
    return None


class Vocabulary:
    """The raw ids a model knows, index ``i`` holding ``ids[i]``.

    :meth:`fit` sorts the ids, so index order is id order and "ties go to the lower item id" is the same
    rule as "ties go to the lower index". Ids are integers or strings.
    """

    def __init__(self, ids) -> None:
        self.ids = np.asarray(ids)
        self._lookup = pd.Index(self.ids)
        if not self._lookup.is_unique:
            raise ValueError("vocabulary ids must be unique")

    @classmethod
    def fit(cls, values) -> Vocabulary:
        """The distinct ``values``, sorted."""
        values = pd.Series(values)
        if values.isna().any():
            raise ValueError(f"ids contain {int(values.isna().sum())} missing values")
        return cls(np.sort(values.unique()))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def is_integer(self) -> bool:
        return bool(np.issubdtype(self.ids.dtype, np.integer))

    @property
    def spark_type(self) -> str:
        """The Spark SQL type of these ids in an output column."""
        return "long" if self.is_integer else "string"

    def indices(self, values) -> np.ndarray:
        """Index of each raw id in ``values``; -1 for ids not in the vocabulary.

        The vocabulary's id type decides how ids match: integer ids match strings that spell the same
        integer (``"42"``, ``" 42"``), string ids match integers by their decimal form.
        """
        if not isinstance(values, (np.ndarray, pd.Index, pd.Series)):
            # An object index keeps mixed ids as they are: [1019, "x"] must not become strings.
            values = pd.Index(list(values), dtype=object)
        return self._lookup.get_indexer(self._in_own_type(values)).astype(np.int64)

    def _in_own_type(self, values):
        # infer_dtype scans in C: the common case (ids already of the vocabulary's type) costs no Python loop.
        found = pd.api.types.infer_dtype(values, skipna=True)
        if self.is_integer and found not in ("integer", "empty", "floating"):
            return pd.Index([_as_integer(v) for v in np.asarray(values)], dtype=object)
        if not self.is_integer and found in ("integer", "mixed-integer"):
            return pd.Index([str(v) if _is_int(v) else v for v in np.asarray(values)], dtype=object)
        return values

    def state(self, name: str) -> dict:
        """Tensors/strings for a ``weights_only`` state dict: ``<name>_ids`` (int64) or ``<name>_ids_json``."""
        values = self.ids.tolist()
        if self.is_integer or all(type(i) is int for i in values):
            return {f"{name}_ids": torch.tensor(values, dtype=torch.int64)}
        if all(isinstance(i, str) for i in values):
            return {f"{name}_ids_json": json.dumps(values)}
        raise TypeError(f"{name} ids must be integers or strings to be saved, got dtype {self.ids.dtype}")

    @classmethod
    def from_state(cls, state: dict, name: str) -> Vocabulary:
        if f"{name}_ids" in state:
            return cls(state[f"{name}_ids"].numpy())
        return cls(np.array(json.loads(state[f"{name}_ids_json"]), dtype=object))
