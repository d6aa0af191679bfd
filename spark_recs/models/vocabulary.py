"""Raw user/item ids <-> the dense indices a model's tensors use, stored without pickle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch


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
        """Index of each raw id in ``values``; -1 for ids not in the vocabulary."""
        if not isinstance(values, (np.ndarray, pd.Index, pd.Series)):
            # An object index keeps mixed ids as they are: [1019, "x"] must not become strings.
            values = pd.Index(list(values), dtype=object)
        return self._lookup.get_indexer(values).astype(np.int64)

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
