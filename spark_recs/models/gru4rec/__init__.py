"""GRU4Rec: session-based next-item recommendation with recurrent networks, faithful to the official code."""

from .model import GRU4Rec
from .workflow import build_model, evaluate, load_config, split_data, train_valid_test_split

__all__ = ["GRU4Rec", "build_model", "evaluate", "load_config", "split_data", "train_valid_test_split"]
