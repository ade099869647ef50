"""Bounded, leak-proof pools of expensive resources, for asyncio and threads.

``AsyncPool`` and ``ThreadPool`` create resources on demand up to
``pool_size``, hand each to one holder at a time, check, reset and recycle
them, and release every one they made exactly once.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
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

try:
    __version__ = version("escudeiro-pools")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0+unknown"

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
