"""Import an optional dependency, or fail with the install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"escudeiro_pools.integrations.{extra} needs {module}: "
            f"pip install 'escudeiro-pools[{extra}]'"
        ) from exc
