"""GRU4Rec: session-based next-item recommendation with recurrent networks, faithful to the official code.

The README's helpers (``load_config``, ``split_data``, ``build_model``, ``evaluate``) are in
:mod:`spark_recs.gru4rec`, beside the config they read.
"""

from .model import GRU4Rec

__all__ = ["GRU4Rec"]
