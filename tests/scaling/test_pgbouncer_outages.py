"""PgBouncer restarted, and PostgreSQL restarted behind PgBouncer, under load.

A PgBouncer restart is ridden out like a PostgreSQL restart: leases fail
while it is away (connections lost, connects refused, then the pool failing
fast), then every lease succeeds. A PostgreSQL restart behind PgBouncer is
different: PgBouncer's server connections die, but the pool's connections
(PgBouncer's clients) stay open, and one that was idle through the outage
simply gets a new server.

The PostgreSQL restarts use an embedded server of this module's own.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from escudeiro_pools import AsyncPool
from escudeiro_pools.integrations.asyncpg import DATABASE_UNAVAILABLE, connection_pool
from examples.embedded_pg import embedded_server, start_server, stop_server
from tests.pgbouncer import PgBouncer, running_pgbouncer

pytestmark = pytest.mark.pgbouncer

POOL_SIZE = 4
WORKERS = 8
DOWNTIME = 0.5


@dataclass(frozen=True)
class Outcome:
    started: float
    finished: float
    error: Exception | None


@pytest.fixture(scope="module")
def restartable(pgbouncer_binary: str) -> Iterator[tuple[Any, PgBouncer]]:
    """An embedded PostgreSQL of this module's own, with a PgBouncer in front."""
    with embedded_server() as server, running_pgbouncer(server, pgbouncer_binary) as bouncer:
        yield server, bouncer


def recipe(bouncer: PgBouncer, name: str) -> AsyncPool[asyncpg.Connection]:
    return connection_pool(
        bouncer.dsn,
        name=name,
        pool_size=POOL_SIZE,
        statement_cache_size=0,
        acquire_timeout=2.0,
        retry_backoff=(0.05, 0.5),
    )


async def load(
    pool: AsyncPool[asyncpg.Connection], outcomes: list[Outcome], stop: asyncio.Event
) -> None:
    """``WORKERS`` callers, each a transaction after another, until ``stop``."""

    async def caller(n: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with pool.lease() as connection, connection.transaction():
                    assert await connection.fetchval("SELECT $1::int", n) == n
            except Exception as exc:  # recorded, and the load goes on
                outcomes.append(Outcome(started, time.monotonic(), exc))
                await asyncio.sleep(0.01)
            else:
                outcomes.append(Outcome(started, time.monotonic(), None))

    await asyncio.gather(*(caller(n) for n in range(WORKERS)))


async def ride_out(
    pool: AsyncPool[asyncpg.Connection],
    take_down: Callable[[], object],
    bring_back: Callable[[], object],
) -> tuple[list[Outcome], float]:
    """Load ``pool``, run ``take_down``, wait ``DOWNTIME``, run ``bring_back``, wait
    until leases succeed again and a second more; the outcomes and when it was back."""
    outcomes: list[Outcome] = []
    stop = asyncio.Event()
    callers = asyncio.create_task(load(pool, outcomes, stop))
    try:
        deadline = time.monotonic() + 10
        while len(outcomes) < 10 * WORKERS:  # a steady load first
            assert time.monotonic() < deadline, Counter(kind(o) for o in outcomes)
            await asyncio.sleep(0.02)
        assert all(o.error is None for o in outcomes), Counter(kind(o) for o in outcomes)
        await asyncio.to_thread(take_down)
        await asyncio.sleep(DOWNTIME)
        await asyncio.to_thread(bring_back)
        back_at = time.monotonic()
        deadline = back_at + 10
        while not any(o.error is None and o.started >= back_at for o in outcomes):
            assert time.monotonic() < deadline, Counter(kind(o) for o in outcomes)
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.wait_for(callers, 10)
    return outcomes, back_at


def kind(outcome: Outcome) -> str:
    """``ok``, or the error's type and message, without its numbers and details."""
    error = outcome.error
    if error is None:
        return "ok"
    message = re.split(r"[;(]", str(error).splitlines()[0])[0] if str(error) else ""
    return f"{type(error).__name__}: {re.sub(r'[0-9]+', 'N', message).strip()}"


def reads_as_unavailable(error: BaseException) -> bool:
    """One of the recipe's ``DATABASE_UNAVAILABLE`` (answer 503, retry later),
    including asyncpg's ``Transaction.__aexit__`` refusing to run on a
    connection that died inside the transaction (``ConnectionClosed``; see
    docs/scaling.md)."""
    return isinstance(error, DATABASE_UNAVAILABLE)


def check_ridden_out(outcomes: list[Outcome], back_at: float, what: str) -> None:
    failures = [o for o in outcomes if o.error is not None]
    first_ok = min(o.finished for o in outcomes if o.error is None and o.started >= back_at)
    after = [o for o in outcomes if o.started >= first_ok]
    print(
        f"\n{what}: {len(outcomes)} leases; "
        + "; ".join(
            f"{count} x {name}" for name, count in Counter(map(kind, outcomes)).most_common()
        )
        + f"; first success {first_ok - back_at:.2f} s after it was back"
    )
    assert failures, "nothing failed: the outage was not under load"
    # Every failure says "the database is unavailable": a 503, retry later.
    assert all(reads_as_unavailable(o.error) for o in failures if o.error), {
        kind(o) for o in failures if o.error and not reads_as_unavailable(o.error)
    }
    assert first_ok - back_at < 2.0
    assert after
    assert all(o.error is None for o in after), Counter(map(kind, after))


async def test_a_pgbouncer_restart_under_load_fails_some_leases_then_every_lease_succeeds(
    fresh_bouncer: PgBouncer,
) -> None:
    pool = recipe(fresh_bouncer, "pgb-restart")
    async with pool:
        outcomes, back_at = await ride_out(pool, fresh_bouncer.stop, fresh_bouncer.start)
        stats = pool.stats()
    check_ridden_out(outcomes, back_at, "PgBouncer restart")
    assert stats.size <= POOL_SIZE
    assert stats.discarded > 0  # the connections PgBouncer dropped were not pooled again


async def test_a_postgresql_restart_behind_pgbouncer_keeps_the_pools_connections_open(
    restartable: tuple[Any, PgBouncer],
) -> None:
    server, bouncer = restartable
    name = "pg-restart-idle"

    async def clients() -> set[str | None]:
        return {r["port"] for r in await bouncer.show("CLIENTS") if r["application_name"] == name}

    async def server_pids() -> set[str | None]:
        return {r["remote_pid"] for r in await bouncer.show("SERVERS")}

    async def every_connection(pool: AsyncPool[asyncpg.Connection]) -> set[int]:
        async with pool.lease() as a, pool.lease() as b, pool.lease() as c:
            return {int(await conn.fetchval("SELECT pg_backend_pid()")) for conn in (a, b, c)}

    pool = connection_pool(bouncer.dsn, name=name, pool_size=3, statement_cache_size=0)
    async with pool:  # three connections, prefilled
        servers_before = await every_connection(pool)
        clients_before = await clients()
        await asyncio.to_thread(stop_server, server)
        servers_while_down = await server_pids()
        clients_while_down = await clients()
        await asyncio.to_thread(start_server, server)
        servers_after = await every_connection(pool)
        clients_after = await clients()
        stats = pool.stats()

    assert len(clients_before) == 3
    assert servers_while_down == set()  # every server connection died with PostgreSQL
    assert clients_while_down == clients_before  # every client connection stayed open
    assert clients_after == clients_before  # and serves again, on new servers
    assert not servers_after & servers_before
    assert stats.created == 3
    assert stats.discarded == stats.check_failures == 0


async def test_a_postgresql_restart_behind_pgbouncer_under_load_fails_some_leases_then_recovers(
    restartable: tuple[Any, PgBouncer],
) -> None:
    server, bouncer = restartable
    pool = recipe(bouncer, "pg-restart-load")
    async with pool:
        outcomes, back_at = await ride_out(
            pool, lambda: stop_server(server), lambda: start_server(server)
        )
        stats = pool.stats()
    check_ridden_out(outcomes, back_at, "PostgreSQL restart behind PgBouncer")
    assert stats.size <= POOL_SIZE, stats
    # PgBouncer kept accepting connections: the pool never failed fast.
    assert stats.unavailable == 0, stats
