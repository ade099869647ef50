"""Bounded, leak-proof pools of expensive resources, for asyncio and threads.

``AsyncPool`` and ``ThreadPool`` create resources on demand up to
``pool_size``, hand each to one holder at a time, check, reset and recycle
them, and release every one they made exactly once.
"""

from __future__ import annotations

import os as _os
import sys as _sys

from escudeiro_pools._async_pool import AsyncPool
from escudeiro_pools._errors import PoolBusy, PoolClosed, PoolError, PoolTimeout, PoolUnavailable
from escudeiro_pools._lease import AsyncLease, ThreadLease
from escudeiro_pools._protocol import PoolObserver
from escudeiro_pools._stats import LeaseInfo, PoolStats
from escudeiro_pools._thread_pool import ThreadPool

# From a checkout, ``escudeiro_pools.integrations`` lives in the editable
# install's tree (the repository keeps it in ``integrations/``): look there too,
# as ``pkgutil.extend_path`` would, without importing ``pkgutil`` (a sixth of
# this package's import time).
__path__ = [
    *__path__,
    *(
        found
        for entry in _sys.path
        if isinstance(entry, str)
        and (found := _os.path.abspath(_os.path.join(entry, __name__))) not in __path__
        and _os.path.isdir(found)
    ),
]

__all__ = [
    "AsyncLease",
    "AsyncPool",
    "LeaseInfo",
    "PoolBusy",
    "PoolClosed",
    "PoolError",
    "PoolObserver",
    "PoolStats",
    "PoolTimeout",
    "PoolUnavailable",
    "ThreadLease",
    "ThreadPool",
    "__version__",
]


def __getattr__(name: str) -> str:
    # ``importlib.metadata`` costs about as much to import as the pools: only on demand.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("escudeiro-pools")
        except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
            found = "0+unknown"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
