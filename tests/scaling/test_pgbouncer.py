"""The asyncpg recipe behind a real PgBouncer in transaction mode, configured as
docs/scaling.md says: ``statement_cache_size=0``, the default rollback-only
return (``full_reset=False``); the full reset is checked to work there too.

PgBouncer's own admin console (``SHOW CLIENTS``, ``SHOW SERVERS``, ``SHOW
POOLS``) is the witness: a client is a connection of the pool, a server a
connection PgBouncer holds to PostgreSQL, ``link`` pairs them while a
transaction runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from escudeiro_pools import AsyncPool
from escudeiro_pools.integrations.asyncpg import connection_pool
from tests.pgbouncer import PgBouncer
from tests.scaling.support import eventually

pytestmark = pytest.mark.pgbouncer

LEASES = 60
POOL_SIZE = 8  # pool connections (PgBouncer clients) for 5 PgBouncer servers


def behind_pgbouncer(
    bouncer: PgBouncer, name: str, **options: Any
) -> AsyncPool[asyncpg.Connection]:
    """The recipe as the docs configure it behind PgBouncer."""
    return connection_pool(bouncer.dsn, name=name, statement_cache_size=0, **options)


async def clients_named(bouncer: PgBouncer, name: str) -> list[dict[str, str | None]]:
    return [row for row in await bouncer.show("CLIENTS") if row["application_name"] == name]


async def app_pool(bouncer: PgBouncer) -> dict[str, str | None]:
    """PgBouncer's pool for the app's database (not its admin console's)."""
    (row,) = [r for r in await bouncer.show("POOLS") if r["database"] == "postgres"]
    return row


async def transfer(pool: AsyncPool[asyncpg.Connection], n: int) -> tuple[int, int]:
    """One lease: a transaction of parameterized queries; (its result, its server pid)."""
    async with pool.lease() as connection, connection.transaction():
        server = await connection.fetchval("SELECT pg_backend_pid()")
        await connection.execute("INSERT INTO transfers (amount) VALUES ($1)", n)
        await asyncio.sleep(0.005)  # hold the server a little, so leases overlap
        total = await connection.fetchval("SELECT sum(amount) FROM transfers WHERE amount = $1", n)
        return int(total), int(server)


@pytest.mark.parametrize("full_reset", [False, True], ids=["default-return", "full-reset"])
async def test_concurrent_leases_with_transactions_go_through_pgbouncer_without_error(
    bouncer: PgBouncer, full_reset: bool
) -> None:
    async with behind_pgbouncer(
        bouncer, "pgb-concurrent", pool_size=POOL_SIZE, full_reset=full_reset
    ) as pool:
        async with pool.lease() as connection:
            await connection.execute(
                "DROP TABLE IF EXISTS transfers; CREATE TABLE transfers (amount int NOT NULL)"
            )
        results = await asyncio.gather(*(transfer(pool, n) for n in range(1, LEASES + 1)))
        stats = pool.stats()
        busy_during = await app_pool(bouncer)

    assert [total for total, _ in results] == list(range(1, LEASES + 1))
    servers = {server for _, server in results}
    # More pool connections than PgBouncer servers: servers were shared between them.
    assert len(servers) <= bouncer.default_pool_size
    assert stats.created <= POOL_SIZE
    assert stats.acquired == LEASES + 1
    assert stats.discarded == stats.factory_errors == stats.reset_errors == 0
    assert busy_during["cl_waiting"] == "0"


async def test_after_the_pool_closes_pgbouncer_shows_no_client_of_it_and_no_busy_server(
    bouncer: PgBouncer,
) -> None:
    name = "pgb-closing"
    pool = behind_pgbouncer(bouncer, name, pool_size=POOL_SIZE)
    async with pool:
        await asyncio.gather(*(pool_query(pool, n) for n in range(40)))
        open_clients = await clients_named(bouncer, name)
        idle_servers = await bouncer.show("SERVERS")

    # Open: the pool's connections are PgBouncer clients, linked to no server
    # between leases (a transaction pooler's whole point).
    assert 1 <= len(open_clients) <= POOL_SIZE
    assert all(client["link"] == "" for client in open_clients)
    assert all(server["link"] == "" for server in idle_servers)

    async def gone() -> bool:
        return not await clients_named(bouncer, name)

    await eventually(gone)  # closed: not a client left
    pool_row = await app_pool(bouncer)
    assert pool_row["cl_active"] == pool_row["cl_waiting"] == pool_row["sv_active"] == "0"
    servers = await bouncer.show("SERVERS")
    # What stays is PgBouncer's own pool of server connections, idle and unlinked.
    assert all(server["state"] in ("idle", "used") for server in servers)
    assert all(server["link"] == "" for server in servers)
    assert pool.stats().size == 0


async def pool_query(pool: AsyncPool[asyncpg.Connection], n: int) -> int:
    async with pool.lease() as connection:
        return int(await connection.fetchval("SELECT $1::int + 1", n))


async def test_a_transaction_left_open_is_rolled_back_on_return_and_frees_its_server(
    bouncer: PgBouncer, postgres: Any
) -> None:
    name = "pgb-left-open"
    async with behind_pgbouncer(bouncer, name, pool_size=1) as pool:
        async with pool.lease() as connection:
            await connection.execute("BEGIN")
            await connection.execute("SELECT 1")
            held = await app_pool(bouncer)
            (client,) = await clients_named(bouncer, name)
        # Returned: rolled back, so PgBouncer got its server back.
        (after,) = await clients_named(bouncer, name)
        freed = await app_pool(bouncer)
        async with pool.lease() as connection:
            fresh = not connection.is_in_transaction()
        stats = pool.stats()

    assert client["link"] != ""  # in a transaction, the client holds a server
    assert held["sv_active"] == "1"
    assert after["link"] == ""
    assert freed["sv_active"] == "0"
    assert fresh  # the next lease is not in the transaction left open
    assert stats.reset_errors == 0
    assert stats.created == 1  # the connection came back, it was not dropped
    probe = await asyncpg.connect(postgres.get_uri())
    try:
        stuck = await probe.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
        )
    finally:
        await probe.close()
    assert stuck == 0
