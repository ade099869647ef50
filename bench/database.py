"""Scenario 3: ``SELECT 1`` through each pool on one real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from bench.peers import OldAsyncPool
from bench.report import Row, Target
from escudeiro_pools.integrations.asyncpg import connection_pool

__all__ = ["database"]

S3 = "3. Real database (SELECT 1, 50 tasks, pool of 10)"

Lease = Callable[[], contextlib.AbstractAsyncContextManager[Any]]


async def _load(
    lease: Lease, query: Callable[[Any], Awaitable[object]], tasks: int, per_task: int
) -> float:
    async def worker() -> None:
        for _ in range(per_task):
            async with lease() as connection:
                await query(connection)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return tasks * per_task / (time.perf_counter() - started)


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


async def database(
    dsn: str, rounds: int, per_task: int, tasks: int = 50, size: int = 10
) -> list[Row]:
    """Interleaved rounds over every pool at once, on the same server."""
    async with contextlib.AsyncExitStack() as stack:
        ours = connection_pool(dsn, pool_size=size, name="bench-default")
        ours_full = connection_pool(dsn, pool_size=size, name="bench-full-reset", full_reset=True)
        for pool in (ours, ours_full):
            await stack.enter_async_context(pool)
        apg = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
        apg_no_reset = await asyncpg.create_pool(dsn, min_size=size, max_size=size, reset=_no_reset)
        for apg_pool in (apg, apg_no_reset):
            stack.push_async_callback(apg_pool.close)

        async def fetch(connection: Any) -> object:
            return await connection.fetchval("SELECT 1")

        cases: dict[str, tuple[Lease, Callable[[Any], Awaitable[object]]]] = {
            "escudeiro-pools recipe, default (rollback-only return)": (ours.lease, fetch),
            "asyncpg.Pool, reset disabled": (apg_no_reset.acquire, fetch),
            "escudeiro-pools recipe, full_reset=True": (ours_full.lease, fetch),
            "asyncpg.Pool, default (full reset)": (apg.acquire, fetch),
        }
        try:
            from psycopg_pool import AsyncConnectionPool
        except ImportError:
            AsyncConnectionPool = None
        if AsyncConnectionPool is not None:
            pg = AsyncConnectionPool(
                dsn, min_size=size, max_size=size, open=False, kwargs={"autocommit": True}
            )
            await pg.open(wait=True)
            stack.push_async_callback(pg.close)

            async def fetch_psycopg(connection: Any) -> object:
                cursor = await connection.execute("SELECT 1")
                return await cursor.fetchone()

            cases["psycopg_pool.AsyncConnectionPool (autocommit)"] = (pg.connection, fetch_psycopg)
        if OldAsyncPool is not None:
            old = OldAsyncPool(lambda: asyncpg.connect(dsn), lambda c: c.close(), pool_size=size)
            await old.prefill()
            stack.push_async_callback(old.dispose)

            @contextlib.asynccontextmanager
            async def old_lease() -> AsyncIterator[Any]:
                connection = await old.acquire()
                try:
                    yield connection
                finally:
                    await old.release(connection)

            cases["escudeiro 0.4.0 AsyncPool over asyncpg.connect"] = (old_lease, fetch)

        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, (lease, query) in cases.items():
                samples[name].append(await _load(lease, query, tasks, per_task))
        rate = {name: statistics.median(values) for name, values in samples.items()}

    def vs(case: str, peer: str, target: Target | None) -> Row:
        return Row(
            S3,
            f"{case} vs {peer}",
            rate[case] / rate[peer],
            "x",
            rate[case] / rate[peer],
            "throughput",
            target,
        )

    default, full = (
        "escudeiro-pools recipe, default (rollback-only return)",
        "escudeiro-pools recipe, full_reset=True",
    )
    rows = [Row(S3, name, value, "queries/s") for name, value in rate.items()]
    rows += [
        vs(default, "asyncpg.Pool, reset disabled", Target(">=", 1.0)),
        vs(full, "asyncpg.Pool, default (full reset)", Target(">=", 1.0)),
        vs(default, "asyncpg.Pool, default (full reset)", None),
    ]
    for peer in cases:
        if peer.startswith(("psycopg", "escudeiro 0.4.0")):
            rows.append(vs(default, peer, None))
    return rows
