"""Package-level names imported on first use (PEP 562), so importing a package loads none of its modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]) -> tuple[list[str], Callable, Callable]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` exporting each of ``modules``' names from its
    submodule: ``{"mf": ("BiasedMF",)}`` makes ``package.BiasedMF`` the one of ``package.mf``."""
    home = {name: module for module, names in modules.items() for name in names}
    namespace = vars(importlib.import_module(package))

    def __getattr__(name: str):
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *home})

    return sorted(home), __getattr__, __dir__
