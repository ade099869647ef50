"""The asyncpg recipe against a real PostgreSQL server."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from escudeiro_pools.integrations.asyncpg import connection_pool, redact_dsn

from tests.kit import FakeClock
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
    await asyncio.sleep(0.05)
    assert pool.stats().size == 0
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
    dsn = f"postgresql://app:{secret}@db.example:5432/orders"
    pool = connection_pool(dsn)
    assert secret not in repr(pool)
    assert secret not in str(pool.stats())
    assert pool.name == "asyncpg:orders"
    assert redact_dsn(dsn) == "postgresql://app:***@db.example:5432/orders"
    assert redact_dsn("postgresql://app@db/x") == "postgresql://app@db/x"
