"""GRU4Rec: session-based next-item recommendation with recurrent networks, faithful to the official code."""

from .model import GRU4Rec

__all__ = ["GRU4Rec"]
