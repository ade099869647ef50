"""A pool of asyncpg connections.

    pool = connection_pool("postgresql://app@db/app", pool_size=10)

Connections come back clean. By default an open or failed transaction is
rolled back on return and nothing else is sent (no round-trip for an idle
connection), as psycopg_pool and SQLAlchemy do. ``full_reset=True`` runs
asyncpg's ``Connection.reset()`` instead (advisory locks, cursors, LISTEN,
``RESET ALL``), which is asyncpg's own pool default.

Security note: without the full reset, session state carries over to the
next lease. If you use ``SET ROLE`` or ``set_config(...)`` for row-level
security, or session-level advisory locks, pass ``full_reset=True`` (or scope
such settings to a transaction with ``SET LOCAL``).

Behind PgBouncer in transaction mode, pass ``statement_cache_size=0`` (it is
handed to ``asyncpg.connect``) and keep ``full_reset=False``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from escudeiro_pools.integrations._require import require

from escudeiro_pools import AsyncPool
from escudeiro_pools._options import check_seconds

require("asyncpg", "asyncpg")

import asyncpg  # noqa: E402

__all__ = ["CONNECTION_LOST", "connection_pool", "redact_dsn"]


#: Raised inside a lease, these mean the connection is gone or unusable (the
#: server shut down, the socket broke): it is discarded, not returned. After a
#: FATAL error the connection may look open for a moment while it cannot run
#: another query.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,
)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***``."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _default_name(dsn: str | None, connect_kwargs: dict[str, Any]) -> str:
    if dsn is None:
        database = connect_kwargs.get("database") or "postgres"
        return f"asyncpg:{database}"
    parts = urlsplit(dsn)
    return f"asyncpg:{parts.path.lstrip('/') or 'postgres'}"


def connection_pool(
    dsn: str | None = None,
    *,
    pool_size: int = 10,
    pool_recycle: float = 3600,
    name: str | None = None,
    acquire_timeout: float | None = 30.0,
    full_reset: bool = False,
    check_after_idle: float = 5.0,
    max_idle: float | None = None,
    close_timeout: float = 5.0,
    leak_timeout: float | None = None,
    discard_on: tuple[type[BaseException], ...] = CONNECTION_LOST,
    queue_class: type[asyncio.Queue[Any]] = asyncio.LifoQueue,
    clock: Callable[[], float] = time.monotonic,
    **connect_kwargs: Any,
) -> AsyncPool[asyncpg.Connection]:
    """An ``AsyncPool`` of ``asyncpg.connect(dsn, **connect_kwargs)`` connections.

    Checkout runs the free ``is_closed()`` test every time and a ``SELECT 1``
    round-trip only on a connection idle at least ``check_after_idle``
    seconds, so a restarted server never hands a stale connection to a
    request. Closing waits ``close_timeout`` seconds, then terminates. The
    connections' ``application_name`` is the pool's name unless
    ``server_settings`` gives one.
    """
    close_timeout = check_seconds("close_timeout", close_timeout)
    pool_name = name or _default_name(dsn, connect_kwargs)
    server_settings = dict(connect_kwargs.pop("server_settings", None) or {})
    server_settings.setdefault("application_name", pool_name[:63])

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(dsn, server_settings=server_settings, **connect_kwargs)

    async def close(connection: asyncpg.Connection) -> None:
        try:
            await asyncio.wait_for(connection.close(), close_timeout)
        except BaseException:
            connection.terminate()
            raise

    async def ping(connection: asyncpg.Connection) -> bool:
        return bool(await connection.fetchval("SELECT 1") == 1)

    def rollback(connection: asyncpg.Connection) -> Awaitable[object] | None:
        # Nothing to await unless a transaction was left open.
        if connection.is_in_transaction():
            pending: Awaitable[object] = connection.execute("ROLLBACK")
            return pending
        return None

    async def reset(connection: asyncpg.Connection) -> None:
        await connection.reset()

    return AsyncPool(
        connect,
        close,
        queue_class,
        pool_size,
        pool_recycle,
        name=pool_name,
        acquire_timeout=acquire_timeout,
        check=ping,
        check_after_idle=check_after_idle,
        alive=lambda connection: not connection.is_closed(),
        reset=reset if full_reset else rollback,
        max_idle=max_idle,
        releaser_timeout=close_timeout + 1.0,
        leak_timeout=leak_timeout,
        discard_on=discard_on,
        clock=clock,
    )
