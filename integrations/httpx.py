"""Pools of httpx clients.

A single shared ``httpx.AsyncClient`` is usually right: it already pools
connections. A pool of clients pays off when each lease needs its own
cookies, auth or headers (isolation), or when you want a hard bound on
concurrent calls to one backend with a queue and a timeout in front of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from escudeiro_pools import AsyncPool, ThreadPool
from escudeiro_pools.integrations._passthrough import check_passthrough, numbered_name
from escudeiro_pools.integrations._require import require

require("httpx", "httpx")

import httpx  # noqa: E402

__all__ = ["client_pool", "sync_client_pool"]

_OPTIONS = (
    "pool_size",
    "pool_recycle",
    "name",
    "min_size",
    "acquire_timeout",
    "max_idle",
    "releaser_timeout",
    "leak_timeout",
    "max_waiting",
    "clock",
)


def client_pool(
    *,
    pool_size: int = 10,
    pool_recycle: float = 3600,
    name: str | None = None,
    min_size: int = 0,
    acquire_timeout: float | None = 30.0,
    max_idle: float | None = None,
    releaser_timeout: float | None = 10.0,
    leak_timeout: float | None = None,
    max_waiting: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    **client_kwargs: Any,
) -> AsyncPool[httpx.AsyncClient]:
    """An ``AsyncPool`` of ``httpx.AsyncClient(**client_kwargs)``.

    The pool options mean what ``AsyncPool``'s do; every other keyword goes to
    ``httpx.AsyncClient`` (``base_url``, ``headers``, ``timeout``, ``limits``...)
    and an unknown one is refused here. Closed clients are discarded;
    dispose and close call ``aclose()`` on each.

    Raises:
        TypeError, ValueError: a bad option, at once.
    """
    check_passthrough(
        "client_pool", client_kwargs, _OPTIONS, httpx.AsyncClient.__init__, "httpx.AsyncClient"
    )

    async def factory() -> httpx.AsyncClient:
        return httpx.AsyncClient(**client_kwargs)

    async def releaser(client: httpx.AsyncClient) -> None:
        await client.aclose()

    return AsyncPool(
        factory,
        releaser,
        pool_size=pool_size,
        pool_recycle=pool_recycle,
        name=name or numbered_name("httpx"),
        min_size=min_size,
        acquire_timeout=acquire_timeout,
        alive=lambda client: not client.is_closed,
        max_idle=max_idle,
        releaser_timeout=releaser_timeout,
        leak_timeout=leak_timeout,
        max_waiting=max_waiting,
        clock=clock,
    )


def sync_client_pool(
    *,
    pool_size: int = 10,
    pool_recycle: float = 3600,
    name: str | None = None,
    min_size: int = 0,
    acquire_timeout: float | None = 30.0,
    max_idle: float | None = None,
    leak_timeout: float | None = None,
    max_waiting: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    **client_kwargs: Any,
) -> ThreadPool[httpx.Client]:
    """A ``ThreadPool`` of ``httpx.Client(**client_kwargs)``, for blocking code.

    Raises:
        TypeError, ValueError: a bad option, at once.
    """
    check_passthrough(
        "sync_client_pool", client_kwargs, _OPTIONS, httpx.Client.__init__, "httpx.Client"
    )
    return ThreadPool(
        lambda: httpx.Client(**client_kwargs),
        lambda client: client.close(),
        pool_size=pool_size,
        pool_recycle=pool_recycle,
        name=name or numbered_name("httpx-sync"),
        min_size=min_size,
        acquire_timeout=acquire_timeout,
        alive=lambda client: not client.is_closed,
        max_idle=max_idle,
        leak_timeout=leak_timeout,
        max_waiting=max_waiting,
        clock=clock,
    )
