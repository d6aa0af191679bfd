"""GRU4Rec training checkpoints: which run a checkpoint belongs to (saved with ``models.base.write_file``)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

CHECKPOINT_FORMAT = "spark_recs.gru4rec.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"


def fingerprint(config: dict, item_ids: np.ndarray, events: np.ndarray) -> str:
    """Identifies the training run a checkpoint belongs to (parameters and data)."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    digest.update(json.dumps([str(i) for i in item_ids.tolist()]).encode())
    digest.update(np.ascontiguousarray(events, dtype=np.int64).tobytes())
    return digest.hexdigest()
