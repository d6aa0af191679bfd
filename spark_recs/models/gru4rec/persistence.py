"""Files of a GRU4Rec model: tensors, JSON and plain values only, so they load with ``weights_only=True``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

MODEL_FORMAT = "spark_recs.gru4rec.model/1"
CHECKPOINT_FORMAT = "spark_recs.gru4rec.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"


def encode_item_ids(item_ids: np.ndarray) -> dict:
    """Raw item ids as an int64 tensor (integer ids) or a JSON list (string ids); never pickled."""
    values = item_ids.tolist()
    if np.issubdtype(item_ids.dtype, np.integer) or all(type(i) is int for i in values):
        return {"item_ids": torch.tensor(values, dtype=torch.int64)}
    if all(isinstance(i, str) for i in values):
        return {"item_ids_json": json.dumps(values)}
    raise TypeError(f"item ids must be integers or strings to be saved, got dtype {item_ids.dtype}")


def decode_item_ids(payload: dict) -> np.ndarray:
    if "item_ids" in payload:
        return payload["item_ids"].numpy()
    return np.array(json.loads(payload["item_ids_json"]), dtype=object)


def fingerprint(config: dict, item_ids: np.ndarray, events: np.ndarray) -> str:
    """Identifies the training run a checkpoint belongs to (parameters and data)."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    digest.update(json.dumps([str(i) for i in item_ids.tolist()]).encode())
    digest.update(np.ascontiguousarray(events, dtype=np.int64).tobytes())
    return digest.hexdigest()


def write(payload: dict, target) -> None:
    """Save ``payload`` to a path (atomically: a killed write leaves the old file) or a binary file object."""
    if not isinstance(target, (str, os.PathLike)):
        torch.save(payload, target)
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def read(source, device=None) -> dict:
    """Load a payload written by ``write`` without unpickling arbitrary objects."""
    return torch.load(source, map_location=device, weights_only=True)
