"""What a lease leaves on an asyncpg connection for the next one, in each
return mode, against a real PostgreSQL: every item of the list in
docs/asyncpg.md ("What carries over to the next lease") is pinned here.

Each item is a pair: a statement a lease runs, and a probe the next lease on
the same connection runs, whose answer tells whether the item carried over.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import pytest

from escudeiro_pools.integrations.asyncpg import connection_pool

ROLE = "hygiene_tenant"


@dataclass(frozen=True)
class Item:
    name: str
    leave: str  #: what the first lease runs
    probe: str  #: what the next lease asks; a fresh connection answers it too


ITEMS = [
    Item("role", f"SET ROLE {ROLE}", "SELECT current_user"),
    Item(
        "session authorization",
        f"SET SESSION AUTHORIZATION {ROLE}",
        "SELECT session_user::text",
    ),
    Item(
        "setting",
        "SET statement_timeout = '42s'",
        "SELECT current_setting('statement_timeout')",
    ),
    Item(
        "custom setting (set_config)",
        "SELECT set_config('app.tenant', 'tenant-a', false)",
        # Once defined in a session, a custom setting resets to '' (not unset).
        "SELECT coalesce(current_setting('app.tenant', true), '')",
    ),
    Item(
        "SQL prepared statement",
        "PREPARE hygiene_probe AS SELECT 1",
        "SELECT count(*)::int FROM pg_prepared_statements WHERE from_sql",
    ),
    Item(
        "temporary table and its rows",
        "CREATE TEMP TABLE hygiene_rows AS SELECT 'secret of tenant a' AS note",
        "SELECT to_regclass('pg_temp.hygiene_rows') IS NOT NULL",
    ),
    Item(
        "session advisory lock",
        "SELECT pg_advisory_lock(424242)",
        "SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    ),
    Item("LISTEN", "LISTEN hygiene_channel", "SELECT count(*)::int FROM pg_listening_channels()"),
    Item(
        "cursor WITH HOLD",
        "BEGIN; DECLARE hygiene_cursor CURSOR WITH HOLD FOR SELECT 1; COMMIT",
        "SELECT count(*)::int FROM pg_cursors",
    ),
]

#: Items the default (rollback-only) return keeps: all of them.
KEPT_BY_DEFAULT = [item.name for item in ITEMS]


@pytest.fixture
async def tenant_role(dsn: str) -> str:
    admin = await asyncpg.connect(dsn)
    user = await admin.fetchval("SELECT current_user")
    await admin.execute(
        f"DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN END $$"
    )
    await admin.execute(f"GRANT {ROLE} TO {user}")
    await admin.execute("CREATE SEQUENCE IF NOT EXISTS hygiene_sequence")
    await admin.execute(f"GRANT USAGE ON SEQUENCE hygiene_sequence TO {ROLE}")
    await admin.close()
    return ROLE


async def fresh_answer(dsn: str, item: Item) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        answer = await connection.fetchval(item.probe)
    finally:
        await connection.close()
    return answer


async def next_lease_sees(dsn: str, item: Item, *, full_reset: bool) -> object:
    async with connection_pool(dsn, pool_size=1, full_reset=full_reset, name="hygiene") as pool:
        async with pool.lease() as first:
            await first.execute(item.leave)
            assert await first.fetchval(item.probe) != await fresh_answer(dsn, item)
        async with pool.lease() as second:
            assert second is first
            return await second.fetchval(item.probe)


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.name)
async def test_the_default_return_keeps_session_state(
    dsn: str, tenant_role: str, item: Item
) -> None:
    assert item.name in KEPT_BY_DEFAULT
    clean = await fresh_answer(dsn, item)
    assert await next_lease_sees(dsn, item, full_reset=False) != clean


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.name)
async def test_full_reset_returns_the_connection_as_a_fresh_one(
    dsn: str, tenant_role: str, item: Item
) -> None:
    clean = await fresh_answer(dsn, item)
    assert await next_lease_sees(dsn, item, full_reset=True) == clean


@pytest.mark.parametrize("full_reset", [False, True], ids=["default", "full"])
async def test_sequence_state_carries_over_only_without_full_reset(
    dsn: str, tenant_role: str, full_reset: bool
) -> None:
    async with connection_pool(dsn, pool_size=1, full_reset=full_reset) as pool:
        async with pool.lease() as conn:
            await conn.fetchval("SELECT nextval('hygiene_sequence')")
        async with pool.lease() as conn:
            if full_reset:
                with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):
                    await conn.fetchval("SELECT currval('hygiene_sequence')")
            else:
                assert await conn.fetchval("SELECT currval('hygiene_sequence')") >= 1


@pytest.mark.parametrize("full_reset", [False, True], ids=["default", "full"])
async def test_an_open_transaction_and_its_locks_never_carry_over(
    dsn: str, full_reset: bool
) -> None:
    async with connection_pool(dsn, pool_size=1, full_reset=full_reset) as pool:
        async with pool.lease() as conn:
            await conn.execute("BEGIN")
            await conn.execute("SET LOCAL statement_timeout = '42s'")
            await conn.fetchval("SELECT pg_advisory_xact_lock(7)")
        async with pool.lease() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SHOW statement_timeout") == "0"
            locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1"
            assert await conn.fetchval(locks, conn.get_server_pid()) == 0


@pytest.mark.parametrize("full_reset", [False, True], ids=["default", "full"])
async def test_listener_callbacks_are_kept_only_without_full_reset(
    dsn: str, full_reset: bool
) -> None:
    heard: list[str] = []
    async with connection_pool(dsn, pool_size=1, full_reset=full_reset) as pool:
        async with pool.lease() as conn:
            await conn.add_listener("hygiene_callbacks", lambda *args: heard.append(args[3]))
        async with pool.lease() as conn:
            channels = await conn.fetchval("SELECT count(*) FROM pg_listening_channels()")
            assert channels == (0 if full_reset else 1)
            # A new tenant listening on the same channel gets its own LISTEN.
            mine: list[str] = []
            await conn.add_listener("hygiene_callbacks", lambda *args: mine.append(args[3]))
            await conn.execute("NOTIFY hygiene_callbacks, 'for tenant b'")
            await conn.fetchval("SELECT 1")  # the notification arrives before this answer
            assert mine == ["for tenant b"]
            assert heard == ([] if full_reset else ["for tenant b"])


async def test_full_reset_keeps_asyncpg_statement_cache_working(dsn: str) -> None:
    async with connection_pool(dsn, pool_size=1, full_reset=True) as pool:
        async with pool.lease() as conn:
            assert await conn.fetchval("SELECT $1::int + 1", 1) == 2
            await conn.execute("PREPARE mine AS SELECT 2")
            cached = len(conn._stmt_cache)
        async with pool.lease() as conn:
            # The driver's statements survive the reset and still run.
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql"
                )
                >= cached
            )
            assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
            with pytest.raises(asyncpg.InvalidSQLStatementNameError):
                await conn.execute("EXECUTE mine")


async def test_full_reset_rolls_back_a_transaction_left_open_by_sql_without_an_error_log(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with connection_pool(dsn, pool_size=1, full_reset=True) as pool:
        async with pool.lease() as conn:
            await conn.execute("BEGIN")
            await conn.execute("SET ROLE NONE")
        async with pool.lease() as conn:
            assert not conn.is_in_transaction()
    assert not [r for r in caplog.records if "active transaction" in r.getMessage()]


async def test_full_reset_wraps_a_connection_class_of_your_own(dsn: str) -> None:
    class Mine(asyncpg.Connection):  # type: ignore[misc]
        pass

    async with connection_pool(dsn, pool_size=1, full_reset=True, connection_class=Mine) as pool:
        async with pool.lease() as conn:
            assert isinstance(conn, Mine)
            await conn.execute("SET application_name = 'x'")
        async with pool.lease() as conn:
            assert await conn.fetchval("SHOW application_name") != "x"
