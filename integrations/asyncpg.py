"""A pool of asyncpg connections.

    pool = connection_pool("postgresql://app@db/app", pool_size=10)

Connections come back clean. By default an open or failed transaction is
rolled back on return and nothing else is sent (no round-trip for an idle
connection), as psycopg_pool and SQLAlchemy do. ``full_reset=True`` also
clears what PostgreSQL's ``DISCARD ALL`` clears (role and session
authorization, settings, SQL-level prepared statements, temporary tables,
advisory locks, ``LISTEN``, cursors, sequence state, cached plans) in one
round-trip, and keeps asyncpg's own statement cache valid.

Security note: without the full reset, session state carries over to the
next lease. If you use ``SET ROLE`` or ``set_config(...)`` for row-level
security, or session-level advisory locks, pass ``full_reset=True`` (or scope
such settings to a transaction with ``SET LOCAL``).

Behind PgBouncer in transaction mode, pass ``statement_cache_size=0`` (it is
handed to ``asyncpg.connect``); both return modes work there.

Two questions, two answers:

- ``CONNECTION_LOST``: raised inside a lease, these mean *this connection* is
  broken; it is discarded, not returned.
- ``DATABASE_UNAVAILABLE``: these mean *the database* cannot be reached now
  (refused, unknown host, connect timeout, shutting down, too many
  connections, or the pool failing fast): answer 503 and retry later.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from escudeiro_pools import AsyncPool, PoolUnavailable
from escudeiro_pools._redact import mask_secrets
from escudeiro_pools.integrations._passthrough import check_passthrough, numbered_name
from escudeiro_pools.integrations._require import require

require("asyncpg", "asyncpg")

import asyncpg  # noqa: E402

__all__ = [
    "CONNECTION_LOST",
    "DATABASE_UNAVAILABLE",
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionClosed",
    "connection_pool",
    "redact_dsn",
]


class ConnectFailed(ConnectionError):
    """Connecting to the database failed; ``__cause__`` is the driver's error."""


class ConnectTimeout(ConnectFailed, TimeoutError):
    """Connecting to the database took longer than asyncpg's ``timeout``."""


_CLOSED = re.compile(r"(?:^|: )(?:the underlying )?connection is closed$")


class _ClosedCheck(type):
    """``isinstance`` of ``ConnectionClosed``: an ``InterfaceError`` that says
    the connection is closed."""

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, asyncpg.InterfaceError) and bool(_CLOSED.search(str(instance)))


class ConnectionClosed(asyncpg.InterfaceError, metaclass=_ClosedCheck):  # type: ignore[misc]
    r"""asyncpg's ``InterfaceError`` for a connection already closed (the server
    dropped it between two queries of one lease, or it was closed): ``connection
    is closed``, ``cannot perform operation: connection is closed``, ``cannot
    call ...: the underlying connection is closed``. Other ``InterfaceError``\ s
    (a misused connection) are not.

    asyncpg never raises this class: it matches with ``isinstance`` (as
    ``discard_on`` and ``add_pool_error_handlers`` do), not with ``except``.
    ``refines`` names the class it narrows, which handlers matched by type
    (Starlette's) are registered on.
    """

    refines: Final = asyncpg.InterfaceError


CONNECTION_LOST: Final[tuple[type[Exception], ...]] = (
    ConnectionError,
    ConnectionClosed,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,
)
"""Raised inside a lease, these mean the connection is gone or unusable (the
server shut down, the socket broke, the driver lost track): it is discarded,
not returned. A query cancelled by ``command_timeout``, a SQL error, an
``InterfaceError`` other than ``ConnectionClosed`` or an unrelated ``OSError``
leave a usable connection."""

DATABASE_UNAVAILABLE: Final[tuple[type[Exception], ...]] = (
    ConnectionError,
    ConnectionClosed,
    socket.gaierror,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InternalClientError,
    PoolUnavailable,
)
"""These mean the database cannot be reached now: a connect failure (refused,
unknown host, connect timeout, ``ConnectFailed``), the server shutting down or
out of connections, a connection lost mid-query (after a server shutdown a
connection can look open while its protocol is broken: the driver then raises
``InternalClientError``), or the pool refusing to create while the database is
away (``PoolUnavailable``), or a connection the server closed between two
queries of a lease (``ConnectionClosed``). Answer 503: a retry can succeed.
Any other ``InterfaceError`` is not here: it means a misused connection."""

#: ``full_reset=True``: what ``DISCARD ALL`` does, except ``DEALLOCATE ALL``, which
#: would also drop the statements asyncpg prepared for its cache; only the ones a
#: lease made with SQL ``PREPARE`` are deallocated. One statement list, one
#: round-trip, sent once no transaction is open (``DISCARD ALL`` itself cannot
#: run in the implicit transaction of a multi-statement query).
FULL_RESET: Final = """\
CLOSE ALL;
SET SESSION AUTHORIZATION DEFAULT;
RESET ALL;
UNLISTEN *;
SELECT pg_advisory_unlock_all();
DISCARD PLANS;
DISCARD TEMP;
DISCARD SEQUENCES;
DO $reset$ DECLARE statement text; BEGIN
  FOR statement IN SELECT name FROM pg_prepared_statements WHERE from_sql LOOP
    EXECUTE format('DEALLOCATE %I', statement);
  END LOOP;
END $reset$;"""


def _resetting(base: type[asyncpg.Connection]) -> type[asyncpg.Connection]:
    """``base`` whose ``reset()`` (listener callbacks, open transaction) then
    sends ``FULL_RESET`` (asyncpg's documented way to change its reset query)."""

    class FullyResetConnection(base):  # type: ignore[misc]
        def get_reset_query(self) -> str:
            return FULL_RESET

    FullyResetConnection.__qualname__ = f"FullyReset{base.__name__}"
    return FullyResetConnection


_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<netloc>[^/?#]*)(?P<rest>.*)$", re.S)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with every password replaced by ``***``, otherwise unchanged.

    Reads the DSN as asyncpg does: the password in ``user:password@``, a
    query key that is ``password`` or ``sslpassword`` once percent-decoded
    (``pass%77ord``), repeated keys, multi-host and IPv6 hosts; and the
    ``key=value`` form. The pool's own messages are masked the same way.
    """
    return mask_secrets(dsn)


def _default_name(dsn: str | None, connect_kwargs: dict[str, Any]) -> str:
    """``asyncpg:<database>``, then ``asyncpg:<database>-2``... for later pools."""
    database = connect_kwargs.get("database")
    if database is None and dsn is not None:
        match = _URI.match(dsn)
        rest = match["rest"] if match else ""
        database = rest.split("?", 1)[0].split("#", 1)[0].lstrip("/") or None
    return numbered_name(f"asyncpg:{database or 'postgres'}")


#: ``connection_pool``'s own options, to tell a typo from a driver option.
_POOL_OPTIONS = (
    "pool_size",
    "pool_recycle",
    "name",
    "min_size",
    "recycle_jitter",
    "max_uses",
    "acquire_timeout",
    "full_reset",
    "check_after_idle",
    "max_idle",
    "close_timeout",
    "leak_timeout",
    "discard_on",
    "max_waiting",
    "fail_fast_after",
    "retry_backoff",
    "init",
    "setup",
    "queue_class",
    "clock",
)


def connection_pool(
    dsn: str | None = None,
    *,
    pool_size: int = 10,
    pool_recycle: float = 3600,
    name: str | None = None,
    min_size: int = 0,
    recycle_jitter: float = 0.05,
    max_uses: int | None = None,
    acquire_timeout: float | None = 30.0,
    full_reset: bool = False,
    check_after_idle: float = 5.0,
    max_idle: float | None = None,
    close_timeout: float = 5.0,
    leak_timeout: float | None = None,
    discard_on: tuple[type[BaseException], ...] = CONNECTION_LOST,
    max_waiting: int | None = None,
    fail_fast_after: int | None = 3,
    retry_backoff: tuple[float, float] = (0.1, 10.0),
    init: Callable[[asyncpg.Connection], Awaitable[object]] | None = None,
    setup: Callable[[asyncpg.Connection], Awaitable[object]] | None = None,
    queue_class: type[asyncio.Queue[Any]] = asyncio.LifoQueue,
    clock: Callable[[], float] = time.monotonic,
    **connect_kwargs: Any,
) -> AsyncPool[asyncpg.Connection]:
    """An ``AsyncPool`` of ``asyncpg.connect(dsn, **connect_kwargs)`` connections.

    The pool options mean what ``AsyncPool``'s do; here ``fail_fast_after``
    is 3 (after three failed connects in a row, callers that would connect
    get ``PoolUnavailable`` at once while one background probe retries).
    Every other keyword goes to ``asyncpg.connect`` (``server_settings``,
    ``statement_cache_size``, ``command_timeout``, ``ssl``, ``timeout``...);
    an unknown one is refused here, with the nearest valid name.

    - ``init(connection)`` runs once on each new connection (codecs, type
      adapters); if it raises, the connection is closed and the error
      reaches the caller.
    - ``setup(connection)`` runs at each checkout; if it raises, the
      connection is closed and the error reaches the caller.
    - Checkout runs the free ``is_closed()`` test every time and a
      ``SELECT 1`` round-trip only on a connection idle at least
      ``check_after_idle`` seconds, so a restarted server never hands a
      stale connection to a request.
    - A connect failure that is an ``OSError`` is raised as ``ConnectFailed``
      (``ConnectTimeout`` for a timeout), with the driver's error as its cause;
      refused connections and DNS errors keep their own types.
    - Closing waits ``close_timeout`` seconds, then terminates. The
      connections' ``application_name`` is the pool's name unless
      ``server_settings`` gives one.

    Raises:
        TypeError, ValueError: a bad option, at once.
    """
    check_passthrough(
        "connection_pool", connect_kwargs, _POOL_OPTIONS, asyncpg.connect, "asyncpg.connect"
    )
    if isinstance(close_timeout, bool) or not isinstance(close_timeout, int | float):
        raise TypeError(f"close_timeout must be a number of seconds, got {close_timeout!r}")
    if not close_timeout >= 0:
        raise ValueError(f"close_timeout must not be negative, got {close_timeout}")
    for option, hook in (("init", init), ("setup", setup)):
        if hook is not None and not callable(hook):
            raise TypeError(f"{option} must be callable, got {hook!r}")
    pool_name = name or _default_name(dsn, connect_kwargs)
    server_settings = dict(connect_kwargs.pop("server_settings", None) or {})
    server_settings.setdefault("application_name", pool_name[:63])
    if full_reset:
        base = connect_kwargs.get("connection_class", asyncpg.Connection)
        connect_kwargs["connection_class"] = _resetting(base)
    where = redact_dsn(dsn) if dsn else "the database"

    async def connect() -> asyncpg.Connection:
        try:
            connection = await asyncpg.connect(
                dsn, server_settings=server_settings, **connect_kwargs
            )
        except (ConnectionError, socket.gaierror):
            raise
        except TimeoutError as exc:
            raise ConnectTimeout(f"connecting to {where} timed out") from exc
        except OSError as exc:
            raise ConnectFailed(f"couldn't connect to {where}: {exc}") from exc
        if init is not None:
            try:
                await init(connection)
            except BaseException:
                connection.terminate()
                raise
        return connection

    async def close(connection: asyncpg.Connection) -> None:
        try:
            await asyncio.wait_for(connection.close(), close_timeout)
        except BaseException:
            connection.terminate()
            raise

    async def ping(connection: asyncpg.Connection) -> bool:
        return bool(await connection.fetchval("SELECT 1") == 1)

    def rollback(connection: asyncpg.Connection) -> Awaitable[object] | None:
        # A transaction left open (by SQL, or by asyncpg's Transaction API, which
        # also keeps its own record of it) is rolled back and forgotten on both
        # sides, so the next lease can start one; nothing is sent otherwise.
        if getattr(connection, "_top_xact", None) is not None:
            connection._top_xact = None
        if connection.is_in_transaction():
            pending: Awaitable[object] = connection.execute("ROLLBACK")
            return pending
        return None

    async def reset(connection: asyncpg.Connection) -> None:
        # Rolled back here first: asyncpg's reset() would also roll back, but
        # report a transaction left open by SQL as an error in the loop's log.
        pending = rollback(connection)
        if pending is not None:
            await pending
        await connection.reset()

    return AsyncPool(
        connect,
        close,
        queue_class,
        pool_size,
        pool_recycle,
        name=pool_name,
        min_size=min_size,
        recycle_jitter=recycle_jitter,
        max_uses=max_uses,
        acquire_timeout=acquire_timeout,
        check=ping,
        check_after_idle=check_after_idle,
        alive=lambda connection: not connection.is_closed(),
        setup=setup,
        reset=reset if full_reset else rollback,
        max_idle=max_idle,
        releaser_timeout=close_timeout + 1.0,
        leak_timeout=leak_timeout,
        discard_on=discard_on,
        max_waiting=max_waiting,
        fail_fast_after=fail_fast_after,
        retry_backoff=retry_backoff,
        clock=clock,
    )
