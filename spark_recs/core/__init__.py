"""Shared contracts beneath every other layer: parameter declarations and the ranking core."""
