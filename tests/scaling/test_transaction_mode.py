"""What PgBouncer's transaction mode breaks, and how to notice.

Between transactions a client holds no server: its next statement runs on
whichever server PgBouncer hands it (the one used last, first: PgBouncer
reuses its servers last-in, first-out). Anything kept in a *session*
(prepared statements, ``SET``, ``LISTEN``, session advisory locks) stays on a
server that other clients then use. One of these fails loudly; the others
fail silently, and each test shows the sign to look for.

Each test that leaves session state behind has a PgBouncer of its own, whose
server connections end with it.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest

from escudeiro_pools import PoolUnavailable
from escudeiro_pools.integrations.asyncpg import DATABASE_UNAVAILABLE, connection_pool
from tests.pgbouncer import PgBouncer, running_pgbouncer
from tests.scaling.support import eventually

pytestmark = pytest.mark.pgbouncer

BACKEND = "SELECT pg_backend_pid()"


async def test_with_asyncpgs_statement_cache_a_query_on_another_server_fails_loudly(
    fresh_bouncer: PgBouncer,
) -> None:
    # asyncpg's default statement_cache_size (100): statements are prepared by name.
    async with (
        connection_pool(fresh_bouncer.dsn, name="cache-on", pool_size=2) as pool,
        pool.lease() as first,
        pool.lease() as second,
    ):
        assert await first.fetchval("SELECT $1::int * 2", 21) == 42
        prepared_on = await first.fetchval(BACKEND)
        async with second.transaction():  # holds that server...
            assert await second.fetchval(BACKEND) == prepared_on
            with pytest.raises(asyncpg.exceptions.InvalidSQLStatementNameError) as caught:
                await first.fetchval("SELECT $1::int * 2", 21)  # ...so this runs on another
    assert re.fullmatch(
        r'prepared statement "__asyncpg_stmt_[0-9a-f]+__" does not exist',
        str(caught.value).splitlines()[0],
    )
    # asyncpg's hint names the fix.
    assert "statement_cache_size to 0" in (caught.value.hint or "")
    # Not a lost connection: the recipe keeps it, and the error comes again.
    assert not isinstance(caught.value, DATABASE_UNAVAILABLE)


async def test_with_statement_cache_size_0_the_same_queries_work(
    fresh_bouncer: PgBouncer,
) -> None:
    async with (
        connection_pool(
            fresh_bouncer.dsn, name="cache-off", pool_size=2, statement_cache_size=0
        ) as pool,
        pool.lease() as first,
        pool.lease() as second,
    ):
        assert await first.fetchval("SELECT $1::int * 2", 21) == 42
        prepared_on = await first.fetchval(BACKEND)
        async with second.transaction():
            assert await second.fetchval(BACKEND) == prepared_on
            assert await first.fetchval("SELECT $1::int * 2", 21) == 42
            assert await first.fetchval(BACKEND) != prepared_on


async def test_a_session_set_stays_on_a_server_other_leases_get_and_its_own_may_not(
    fresh_bouncer: PgBouncer,
) -> None:
    async with (
        connection_pool(fresh_bouncer.dsn, name="set", pool_size=2, statement_cache_size=0) as pool,
        pool.lease() as setter,
        pool.lease() as other,
    ):
        default = await other.fetchval("SHOW statement_timeout")
        await setter.execute("SET statement_timeout = '1234ms'")
        set_on = await setter.fetchval(BACKEND)
        seen_by_other = await other.fetchval("SHOW statement_timeout")
        async with other.transaction():
            assert await other.fetchval(BACKEND) == set_on
            seen_by_setter = await setter.fetchval("SHOW statement_timeout")
            now_on = await setter.fetchval(BACKEND)
        # SET LOCAL inside a transaction is what works: it lives and dies with it.
        async with setter.transaction():
            await setter.execute("SET LOCAL statement_timeout = '4321ms'")
            scoped = await setter.fetchval("SHOW statement_timeout")
        after_scoped = await other.fetchval("SHOW statement_timeout")

    assert default == "0"
    assert seen_by_other == "1234ms"  # another client's setting
    assert seen_by_setter == "0"  # its own SET is not where it runs now
    # The sign: one lease, two statements outside a transaction, two server processes.
    assert now_on != set_on
    assert scoped == "4321ms"
    assert after_scoped in ("0", "1234ms")  # never 4321ms: SET LOCAL did not leak


async def test_listen_through_pgbouncer_never_hears_a_notify(
    fresh_bouncer: PgBouncer, postgres: Any
) -> None:
    heard: dict[str, list[str]] = {"pgbouncer": [], "direct": []}
    direct = await asyncpg.connect(postgres.get_uri())
    try:
        await direct.add_listener("news", lambda *args: heard["direct"].append(args[3]))
        async with (
            connection_pool(
                fresh_bouncer.dsn, name="listen", pool_size=1, statement_cache_size=0
            ) as pool,
            pool.lease() as listener,
        ):
            await listener.add_listener("news", lambda *args: heard["pgbouncer"].append(args[3]))
            await direct.execute("NOTIFY news, 'hello'")

            async def delivered() -> bool:
                # The sign: PgBouncer got the notification with no client to give it to.
                log = fresh_bouncer.log_text()
                return bool(heard["direct"]) and "got packet 'A' from server when not linked" in log

            await eventually(delivered)
            await listener.fetchval("SELECT 1")  # back on the server that is listening
    finally:
        await direct.close()

    assert heard == {"pgbouncer": [], "direct": ["hello"]}


async def test_a_session_advisory_lock_stays_on_a_server_that_other_clients_then_use(
    fresh_bouncer: PgBouncer, postgres: Any
) -> None:
    warnings: list[str] = []
    async with (
        connection_pool(
            fresh_bouncer.dsn, name="lock", pool_size=2, statement_cache_size=0
        ) as pool,
        pool.lease() as locker,
        pool.lease() as other,
    ):
        locker.add_log_listener(lambda _connection, notice: warnings.append(notice.message))
        await locker.execute("SELECT pg_advisory_lock(4242)")
        async with other.transaction():
            holder = await other.fetchval(BACKEND)
            unlocked = await locker.fetchval("SELECT pg_advisory_unlock(4242)")
    # The pool is closed; the lock is not released: a server PgBouncer keeps holds it.
    direct = await asyncpg.connect(postgres.get_uri())
    try:
        locks = await direct.fetch(
            "SELECT l.pid, a.state FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.objid = 4242"
        )
    finally:
        await direct.close()
    servers = {row["remote_pid"]: row for row in await fresh_bouncer.show("SERVERS")}
    # Two new clients in transactions at once, on two servers: one of them is
    # told it has the lock (the server's session does), the other that it is taken.
    first = await asyncpg.connect(fresh_bouncer.dsn, statement_cache_size=0)
    second = await asyncpg.connect(fresh_bouncer.dsn, statement_cache_size=0)
    try:
        async with first.transaction(), second.transaction():
            answers = {
                await first.fetchval("SELECT pg_try_advisory_lock(4242)"),
                await second.fetchval("SELECT pg_try_advisory_lock(4242)"),
            }
    finally:
        await first.close()
        await second.close()

    assert unlocked is False
    assert warnings == ["you don't own a lock of type ExclusiveLock"]
    # The sign: an advisory lock held by a backend that is idle, outside any transaction.
    assert [(row["pid"], row["state"]) for row in locks] == [(holder, "idle")]
    assert servers[str(holder)]["link"] == ""  # in PgBouncer's pool, free for anyone
    assert answers == {True, False}


async def test_a_startup_parameter_pgbouncer_does_not_know_is_refused_like_an_outage(
    bouncer: PgBouncer,
) -> None:
    pool = connection_pool(
        bouncer.dsn,
        name="jit-off",
        statement_cache_size=0,
        server_settings={"jit": "off"},
        fail_fast_after=2,
        retry_backoff=(30.0, 30.0),
    )
    errors = []
    try:
        for _ in range(2):
            with pytest.raises(asyncpg.exceptions.ProtocolViolationError) as caught:
                await pool.acquire()
            errors.append(caught.value)
        with pytest.raises(PoolUnavailable):
            await pool.acquire()
    finally:
        await pool.close()

    assert [str(error) for error in errors] == ["unsupported startup parameter: jit"] * 2
    # A configuration error that reads as "the database is down": a 503, then fail-fast.
    assert isinstance(errors[0], DATABASE_UNAVAILABLE)
    assert "unsupported startup parameter: jit" in bouncer.log_text()


async def test_ignore_startup_parameters_lets_it_connect_but_drops_the_setting(
    postgres: Any, pgbouncer_binary: str
) -> None:
    asked = await asyncpg.connect(postgres.get_uri(), server_settings={"jit": "off"})
    plain = await asyncpg.connect(postgres.get_uri())
    try:
        asked_directly = await asked.fetchval("SHOW jit")
        server_default = await plain.fetchval("SHOW jit")
    finally:
        await asked.close()
        await plain.close()
    with running_pgbouncer(
        postgres, pgbouncer_binary, settings={"ignore_startup_parameters": "jit"}
    ) as bouncer:
        async with (
            connection_pool(
                bouncer.dsn,
                name="jit-ignored",
                statement_cache_size=0,
                server_settings={"jit": "off"},
            ) as pool,
            pool.lease() as connection,
        ):
            through_pgbouncer = await connection.fetchval("SHOW jit")

    assert asked_directly == "off"
    assert server_default == "on"
    assert through_pgbouncer == server_default  # connected, but jit is not off


async def test_the_recipes_application_name_reaches_postgresql_through_pgbouncer(
    bouncer: PgBouncer, postgres: Any
) -> None:
    async with (
        connection_pool(bouncer.dsn, name="named-app", pool_size=1, statement_cache_size=0) as pool,
        pool.lease() as connection,
        connection.transaction(),
    ):
        shown = await connection.fetchval("SHOW application_name")
        server = await connection.fetchval(BACKEND)
        direct = await asyncpg.connect(postgres.get_uri())
        try:
            seen = await direct.fetchval(
                "SELECT application_name FROM pg_stat_activity WHERE pid = $1", server
            )
        finally:
            await direct.close()
        clients = [r for r in await bouncer.show("CLIENTS") if r["application_name"] == "named-app"]

    assert shown == seen == "named-app"
    assert len(clients) == 1
