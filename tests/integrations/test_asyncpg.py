"""The asyncpg recipe against a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from escudeiro_pools import PoolTimeout
from escudeiro_pools.integrations.asyncpg import (
    CONNECTION_LOST,
    DATABASE_UNAVAILABLE,
    ConnectFailed,
    ConnectTimeout,
    connection_pool,
    redact_dsn,
)
from tests.kit import FakeClock, eventually
from tests.pg import backends_named


async def test_connections_carry_the_pool_name_and_never_exceed_pool_size(dsn: str) -> None:
    pool = connection_pool(dsn, pool_size=3, name="bounded-test")
    peak = 0

    async def query() -> None:
        nonlocal peak
        async with pool.lease() as conn:
            assert await conn.fetchval("SELECT 1") == 1
            peak = max(peak, await backends_named(dsn, "bounded-test"))

    await asyncio.gather(*(query() for _ in range(30)))
    assert peak <= 3
    assert await backends_named(dsn, "bounded-test") == 3
    await pool.close()
    assert await backends_named(dsn, "bounded-test") == 0
    assert pool.stats().created == pool.stats().destroyed


async def test_an_open_transaction_is_rolled_back_on_return(dsn: str) -> None:
    pool = connection_pool(dsn, pool_size=1)
    async with pool.lease() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS rollback_probe (x int)")
    async with pool.lease() as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO rollback_probe VALUES (1)")
    async with pool.lease() as again:
        assert again is conn
        assert not again.is_in_transaction()
        assert await again.fetchval("SELECT count(*) FROM rollback_probe") == 0
    async with pool.lease() as conn:
        await conn.execute("BEGIN")
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("SELECT 1/0")
    async with pool.lease() as conn:
        assert await conn.fetchval("SELECT 2") == 2
        await conn.execute("DROP TABLE rollback_probe")
    await pool.close()


async def test_default_return_keeps_session_state_and_full_reset_clears_it(dsn: str) -> None:
    light = connection_pool(dsn, pool_size=1)
    async with light.lease() as conn:
        await conn.execute("SET application_name = 'changed'")
    async with light.lease() as conn:
        assert await conn.fetchval("SHOW application_name") == "changed"
    await light.close()

    full = connection_pool(dsn, pool_size=1, full_reset=True, name="full")
    async with full.lease() as conn:
        await conn.execute("SET application_name = 'changed'")
    async with full.lease() as conn:
        assert await conn.fetchval("SHOW application_name") == "full"
    await full.close()


async def test_a_connection_killed_by_the_server_is_replaced(dsn: str) -> None:
    clock = FakeClock()
    pool = connection_pool(dsn, pool_size=1, name="killed-test", clock=clock)
    async with pool.lease() as conn:
        pid = conn.get_server_pid()
    admin = await asyncpg.connect(dsn)
    await admin.execute("SELECT pg_terminate_backend($1)", pid)
    await admin.close()
    clock.advance(60)  # idle long enough for the round-trip check
    async with pool.lease() as fresh:
        assert fresh.get_server_pid() != pid
        assert await fresh.fetchval("SELECT 1") == 1
    assert pool.stats().check_failures == 1
    await pool.close()


async def test_a_closed_connection_is_discarded_on_return(dsn: str) -> None:
    pool = connection_pool(dsn, pool_size=1)
    async with pool.lease() as conn:
        await conn.close()
    # Its releaser runs in a task of its own: wait for it, not for a time.
    await eventually(lambda: pool.stats().size == 0)
    async with pool.lease() as fresh:
        assert fresh is not conn
    await pool.close()


async def test_connect_kwargs_pass_through(dsn: str) -> None:
    pool = connection_pool(dsn, pool_size=1, statement_cache_size=0, command_timeout=5)
    async with pool.lease() as conn:
        assert conn._config.statement_cache_size == 0
    await pool.close()


def test_a_password_never_shows_in_name_repr_or_stats() -> None:
    secret = "s3cr3t-pass"
    dsn = f"postgresql://app:{secret}@db.example:5432/orders_repr"
    pool = connection_pool(dsn)
    assert secret not in repr(pool)
    assert secret not in str(pool.stats())
    assert pool.name.startswith("asyncpg:orders_repr")


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        (
            "postgresql://app:pw@db.example:5432/orders",
            "postgresql://app:***@db.example:5432/orders",
        ),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        ("postgres://db/x?user=app&password=pw", "postgres://db/x?user=app&password=***"),
        (
            "postgresql://db/x?password=pw&sslmode=require",
            "postgresql://db/x?password=***&sslmode=require",
        ),
        ("postgresql://db/x?sslpassword=key&user=a", "postgresql://db/x?sslpassword=***&user=a"),
        ("postgresql://u:pw@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"),
        ("postgresql://u:pw@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        (
            "postgresql://u:pw@[2001:db8::1],[::1]:5433/db",
            "postgresql://u:***@[2001:db8::1],[::1]:5433/db",
        ),
        ("postgresql://u:p@ss:w@rd@host/db", "postgresql://u:***@host/db"),
        (
            "postgresql://u:p%40ss@host/db?application_name=a@b",
            "postgresql://u:***@host/db?application_name=a@b",
        ),
        ("postgresql://:pw@host/db", "postgresql://:***@host/db"),
        (
            "postgresql:///db?host=/var/run/postgresql&password=pw",
            "postgresql:///db?host=/var/run/postgresql&password=***",
        ),
        # Masking errs toward hiding: a fragment that reads like a password is masked too.
        ("postgresql://u@host/db#password=frag", "postgresql://u@host/db#password=***"),
        ("host=db user=app password=pw dbname=x", "host=db user=app password=*** dbname=x"),
        ("host=db password='a b c' dbname=x", "host=db password=*** dbname=x"),
        ("", ""),
    ],
)
def test_redact_dsn_masks_every_password_and_keeps_the_rest(dsn: str, redacted: str) -> None:
    assert redact_dsn(dsn) == redacted


def test_pools_on_one_database_get_distinct_default_names() -> None:
    first = connection_pool("postgresql://app@db/inventory")
    second = connection_pool("postgresql://other@db2/inventory")
    third = connection_pool(database="inventory")
    assert all(p.name.startswith("asyncpg:inventory") for p in (first, second, third))
    assert len({first.name, second.name, third.name}) == 3


@pytest.mark.parametrize(
    ("option", "hint"),
    [
        ("acquire_timout", "acquire_timeout"),
        ("statment_cache_size", "statement_cache_size"),
        ("pool_sise", "pool_size"),
        ("bogus", "asyncpg.connect"),
    ],
)
def test_an_unknown_option_is_refused_at_construction(option: str, hint: str) -> None:
    with pytest.raises(TypeError, match=hint):
        options: dict[str, Any] = {option: 5}
        connection_pool("postgresql://app@db/x", **options)


async def test_a_transaction_left_open_through_the_api_does_not_poison_the_connection(
    dsn: str,
) -> None:
    pool = connection_pool(dsn, pool_size=1)
    async with pool.lease() as conn:
        tr = conn.transaction()
        await tr.start()
        await conn.execute("SELECT 1")
    async with pool.lease() as again:
        assert again is conn
        async with again.transaction():
            assert await again.fetchval("SELECT 2") == 2
        async with again.transaction(), again.transaction():  # nested: a savepoint
            assert await again.fetchval("SELECT 3") == 3
    assert pool.stats().discarded == 0
    await pool.close()


class CountingConnection(asyncpg.Connection):  # type: ignore[misc]
    """Counts the statements sent through ``execute``."""

    executed = 0

    async def execute(self, *args: Any, **kwargs: Any) -> str:
        CountingConnection.executed += 1
        return await super().execute(*args, **kwargs)  # type: ignore[no-any-return]


async def test_a_clean_return_sends_nothing(dsn: str) -> None:
    pool = connection_pool(dsn, pool_size=1, connection_class=CountingConnection)
    for _ in range(3):
        async with pool.lease() as conn:
            await conn.fetchval("SELECT 1")
    CountingConnection.executed = 0
    async with pool.lease() as conn:
        await conn.fetchval("SELECT 1")
    assert CountingConnection.executed == 0
    async with pool.lease() as conn:
        await conn.execute("BEGIN")
    assert CountingConnection.executed == 2  # BEGIN, then the ROLLBACK on return
    await pool.close()


@pytest.mark.parametrize(
    "error",
    [FileNotFoundError("no such file"), PoolTimeout("another pool is busy"), KeyError("user bug")],
    ids=["FileNotFoundError", "PoolTimeout", "KeyError"],
)
async def test_errors_unrelated_to_the_connection_keep_it(dsn: str, error: Exception) -> None:
    pool = connection_pool(dsn, pool_size=1)
    with pytest.raises(type(error)):
        async with pool.lease() as conn:
            pid = conn.get_server_pid()
            raise error
    async with pool.lease() as again:
        assert again.get_server_pid() == pid
    assert pool.stats().discarded == 0
    await pool.close()


async def test_a_lost_connection_is_discarded(dsn: str) -> None:
    pool = connection_pool(dsn, pool_size=1)
    with pytest.raises(ConnectionResetError):
        async with pool.lease() as conn:
            pid = conn.get_server_pid()
            raise ConnectionResetError("peer reset")
    async with pool.lease() as fresh:
        assert fresh.get_server_pid() != pid
    assert pool.stats().discarded == 1
    await pool.close()


async def test_a_query_cancelled_by_command_timeout_keeps_a_usable_connection(dsn: str) -> None:
    pool = connection_pool(dsn, pool_size=1, command_timeout=0.05)
    with pytest.raises(TimeoutError):
        async with pool.lease() as conn:
            pid = conn.get_server_pid()
            await conn.execute("SELECT pg_sleep(5)")
    assert not isinstance(TimeoutError(), CONNECTION_LOST)
    async with pool.lease() as again:
        assert again.get_server_pid() == pid
        assert await again.fetchval("SELECT 1") == 1
    await pool.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: connects time out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("where", "options", "expected"),
    [
        ("127.0.0.1:{free}", {}, ConnectionRefusedError),
        ("no-such-host.invalid", {}, OSError),
        ("127.0.0.1:{silent}", {"timeout": 0.1}, ConnectTimeout),
        ("/db?host=/nonexistent-dir", {}, ConnectFailed),
    ],
    ids=["refused", "dns", "connect timeout", "missing socket"],
)
async def test_connect_failures_are_database_unavailable(
    where: str, options: dict[str, Any], expected: type[Exception], silent_port: int
) -> None:
    host = where.format(free=_free_port(), silent=silent_port)
    dsn = f"postgresql://app@{host}" if host.startswith("/") else f"postgresql://app@{host}/db"
    pool = connection_pool(dsn, pool_size=1, fail_fast_after=None, **options)
    with pytest.raises(expected) as caught:
        await pool.acquire(timeout=10)
    assert isinstance(caught.value, DATABASE_UNAVAILABLE)
    assert not isinstance(caught.value, PoolTimeout)
    assert pool.stats().size == 0


async def test_init_runs_once_per_connection_and_a_failing_init_closes_it(dsn: str) -> None:
    inits: list[int] = []

    async def init(conn: asyncpg.Connection) -> None:
        inits.append(conn.get_server_pid())
        if len(inits) == 2:
            raise LookupError("codec registration failed")

    pool = connection_pool(dsn, pool_size=1, init=init, name="init-test")
    for _ in range(3):
        async with pool.lease():
            pass
    assert len(inits) == 1
    await pool.dispose()
    with pytest.raises(LookupError):
        await pool.acquire()
    assert pool.stats().size == 0
    assert await backends_named(dsn, "init-test") == 0
    async with pool.lease():
        pass
    assert len(inits) == 3
    await pool.close()


async def test_setup_runs_at_each_checkout(dsn: str) -> None:
    async def setup(conn: asyncpg.Connection) -> None:
        await conn.execute("SET search_path TO pg_catalog")

    pool = connection_pool(dsn, pool_size=1, setup=setup)
    for _ in range(2):
        async with pool.lease() as conn:
            assert (await conn.fetchval("SHOW search_path")) == "pg_catalog"
            await conn.execute("SET search_path TO public")
    await pool.close()


async def _dropped_by_the_server(dsn: str, conn: asyncpg.Connection) -> None:
    """The server ends ``conn``'s session; returns once the driver has seen it."""
    admin = await asyncpg.connect(dsn)
    await admin.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    await admin.close()
    for _ in range(3000):
        if conn.is_closed():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the driver never saw the connection close")


async def test_a_connection_dropped_between_two_queries_of_a_lease_is_a_lost_connection(
    dsn: str,
) -> None:
    from escudeiro_pools.integrations.asyncpg import ConnectionClosed

    pool = connection_pool(dsn, pool_size=1)
    with pytest.raises(asyncpg.InterfaceError) as caught:
        async with pool.lease() as conn:
            assert await conn.fetchval("SELECT 1") == 1
            await _dropped_by_the_server(dsn, conn)
            await conn.fetchval("SELECT 2")
    assert isinstance(caught.value, ConnectionClosed)
    assert isinstance(caught.value, CONNECTION_LOST)
    assert isinstance(caught.value, DATABASE_UNAVAILABLE)
    assert pool.stats().discarded == 1
    async with pool.lease() as fresh:
        assert fresh is not conn
        assert await fresh.fetchval("SELECT 3") == 3
    await pool.close()


async def test_only_a_closed_connection_interface_error_is_a_lost_connection(dsn: str) -> None:
    from escudeiro_pools.integrations.asyncpg import ConnectionClosed

    for message in (
        "connection is closed",
        "cannot perform operation: connection is closed",
        "cannot call PreparedStatement.fetch(): the underlying connection is closed",
    ):
        assert isinstance(asyncpg.InterfaceError(message), CONNECTION_LOST), message
    for message in (
        "cannot perform operation: another operation is in progress",
        "the server expects 1 argument for this query, 0 were passed",
        "connection is closed, said nobody",
    ):
        error = asyncpg.InterfaceError(message)
        assert not isinstance(error, ConnectionClosed | ConnectionError), message
        assert not isinstance(error, DATABASE_UNAVAILABLE), message
    assert not issubclass(asyncpg.InterfaceError, ConnectionClosed)
    # A misused connection raises an InterfaceError of another kind and is kept.
    pool = connection_pool(dsn, pool_size=1)
    with pytest.raises(asyncpg.InterfaceError) as caught:
        async with pool.lease() as conn:
            await conn.fetchval("SELECT $1::int")
    assert not isinstance(caught.value, ConnectionClosed)
    async with pool.lease() as again:
        assert again is conn
    assert pool.stats().discarded == 0
    await pool.close()
