"""Bounded, leak-proof pools of expensive resources, for asyncio and threads.

``AsyncPool`` and ``ThreadPool`` create resources on demand up to
``pool_size``, hand each to one holder at a time, check, reset and recycle
them, and release every one they made exactly once.
"""

from __future__ import annotations

from pkgutil import extend_path

from escudeiro_pools._async_pool import AsyncPool
from escudeiro_pools._errors import PoolBusy, PoolClosed, PoolError, PoolTimeout, PoolUnavailable
from escudeiro_pools._lease import AsyncLease, ThreadLease
from escudeiro_pools._protocol import PoolObserver
from escudeiro_pools._stats import LeaseInfo, PoolStats
from escudeiro_pools._thread_pool import ThreadPool

# From a checkout, ``escudeiro_pools.integrations`` lives in the editable
# install's tree (the repository keeps it in ``integrations/``): look there too.
__path__ = extend_path(__path__, __name__)

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
