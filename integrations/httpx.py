"""Pools of httpx clients.

A single shared ``httpx.AsyncClient`` is usually right: it already pools
connections. A pool of clients pays off when each lease needs its own
cookies, auth or headers (isolation), or when you want a hard bound on
concurrent calls to one backend with a queue and a timeout in front of it.

A client comes back as the pool made it: on return its cookies, headers,
auth, query params, base URL, timeout, event hooks and redirect settings
are restored to what the pool configured (no I/O; its open connections are
kept). ``UNAVAILABLE`` lists the transport errors that mean the backend
cannot be reached (answer 503).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from escudeiro_pools import AsyncPool, PoolUnavailable, ThreadPool
from escudeiro_pools.integrations._passthrough import check_passthrough, numbered_name
from escudeiro_pools.integrations._require import require

require("httpx", "httpx")

import httpx  # noqa: E402

__all__ = ["UNAVAILABLE", "client_pool", "sync_client_pool"]

UNAVAILABLE: Final[tuple[type[Exception], ...]] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
    PoolUnavailable,
)
"""Raised by a request, these mean the backend cannot be reached now (refused,
unresolvable, a connect timeout, the client's own connection pool exhausted, the
server closing the connection without an answer), or the pool refusing to create
clients: answer 503, a retry can succeed. Read and write timeouts are not here:
the backend was reached and is slow (a 504 is the usual answer)."""

C = TypeVar("C", httpx.AsyncClient, httpx.Client)


@dataclass(frozen=True)
class _Configured(Generic[C]):
    """What a lease may change on a client, as the pool made it."""

    headers: httpx.Headers
    cookies: httpx.Cookies
    params: httpx.QueryParams
    auth: Any
    base_url: httpx.URL
    timeout: httpx.Timeout
    event_hooks: dict[str, list[Callable[..., Any]]]
    follow_redirects: bool
    max_redirects: int

    @classmethod
    def of(cls, client: C) -> _Configured[C]:
        return cls(
            client.headers.copy(),
            httpx.Cookies(client.cookies),
            client.params,
            client.auth,
            client.base_url,
            client.timeout,
            {event: list(hooks) for event, hooks in client.event_hooks.items()},
            client.follow_redirects,
            client.max_redirects,
        )

    def restore(self, client: C) -> None:
        client.headers = self.headers.copy()
        client.cookies = httpx.Cookies(self.cookies)
        client.params = self.params
        client.auth = self.auth
        client.base_url = self.base_url
        client.timeout = self.timeout
        client.event_hooks = {event: list(hooks) for event, hooks in self.event_hooks.items()}
        client.follow_redirects = self.follow_redirects
        client.max_redirects = self.max_redirects


class _Clients(Generic[C]):
    """Makes clients and puts each back as it was made."""

    def __init__(self, make: Callable[[], C]) -> None:
        self._make: Callable[[], C] = make
        self._configured: weakref.WeakKeyDictionary[C, _Configured[C]] = weakref.WeakKeyDictionary()

    def new(self) -> C:
        client = self._make()
        self._configured[client] = _Configured.of(client)
        return client

    def restore(self, client: C) -> None:
        self._configured[client].restore(client)


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
    and an unknown one is refused here. On return a client's cookies, headers,
    auth, params, base URL, timeout, event hooks and redirect settings are
    restored to these. Closed clients are discarded; dispose and close call
    ``aclose()`` on each.

    Raises:
        TypeError, ValueError: a bad option, at once.
    """
    check_passthrough(
        "client_pool", client_kwargs, _OPTIONS, httpx.AsyncClient.__init__, "httpx.AsyncClient"
    )

    clients = _Clients(lambda: httpx.AsyncClient(**client_kwargs))

    async def factory() -> httpx.AsyncClient:
        return clients.new()

    async def releaser(client: httpx.AsyncClient) -> None:
        await client.aclose()

    async def reset(client: httpx.AsyncClient) -> None:
        clients.restore(client)

    return AsyncPool(
        factory,
        releaser,
        pool_size=pool_size,
        pool_recycle=pool_recycle,
        name=name or numbered_name("httpx"),
        min_size=min_size,
        acquire_timeout=acquire_timeout,
        alive=lambda client: not client.is_closed,
        reset=reset,
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
    """A ``ThreadPool`` of ``httpx.Client(**client_kwargs)``, for blocking code;
    clients are restored on return as ``client_pool``'s are.

    Raises:
        TypeError, ValueError: a bad option, at once.
    """
    check_passthrough(
        "sync_client_pool", client_kwargs, _OPTIONS, httpx.Client.__init__, "httpx.Client"
    )
    clients = _Clients(lambda: httpx.Client(**client_kwargs))
    return ThreadPool(
        clients.new,
        lambda client: client.close(),
        pool_size=pool_size,
        pool_recycle=pool_recycle,
        name=name or numbered_name("httpx-sync"),
        min_size=min_size,
        acquire_timeout=acquire_timeout,
        alive=lambda client: not client.is_closed,
        reset=clients.restore,
        max_idle=max_idle,
        leak_timeout=leak_timeout,
        max_waiting=max_waiting,
        clock=clock,
    )
