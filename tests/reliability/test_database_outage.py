"""The database goes away under load, for two seconds, and comes back.

A FastAPI app on the asyncpg recipe (``min_size``, ``fail_fast_after`` and a
short ``retry_backoff``) serves ``SELECT 1`` under steady load from a real
HTTP client while the test stops its own embedded PostgreSQL (never the
shared one, never ``DATABASE_URL``) and starts it again.
"""

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI

from escudeiro_pools import AsyncPool
from escudeiro_pools.integrations.asyncpg import DATABASE_UNAVAILABLE, connection_pool
from escudeiro_pools.integrations.fastapi import (
    add_pool_timeout_handler,
    add_unavailable_handler,
    health_router,
    lifespan,
)
from examples.embedded_pg import embedded_server, start_server, stop_server
from examples.serving import serve
from tests.pg import backends_named

POOL_SIZE = 4
MIN_SIZE = 2
ACQUIRE_TIMEOUT = 1.0
DOWNTIME = 2.0
WORKERS = 8
BACKOFF = (0.05, 0.5)
NAME = "outage-test"


@dataclass(frozen=True)
class Outcome:
    started: float
    finished: float
    status: int
    detail: str


def create_app(dsn: str) -> tuple[FastAPI, AsyncPool[asyncpg.Connection]]:
    pool = connection_pool(
        dsn,
        pool_size=POOL_SIZE,
        min_size=MIN_SIZE,
        name=NAME,
        acquire_timeout=ACQUIRE_TIMEOUT,
        check_after_idle=0.2,
        fail_fast_after=3,
        retry_backoff=BACKOFF,
    )
    app = FastAPI(lifespan=lifespan(db=pool))
    add_pool_timeout_handler(app)
    add_unavailable_handler(app, *DATABASE_UNAVAILABLE, retry_after=1)
    app.include_router(health_router(db=pool))

    @app.get("/one")
    async def one(connection: Annotated[asyncpg.Connection, Depends(pool.lease)]) -> int:
        return int(await connection.fetchval("SELECT 1"))

    return app, pool


@pytest.fixture
def own_server() -> Iterator[Any]:
    with embedded_server() as server:
        yield server


async def load(base: str, outcomes: list[Outcome], stop_load: asyncio.Event) -> None:
    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while not stop_load.is_set():
                started = time.monotonic()
                try:
                    response = await client.get("/one")
                except httpx.HTTPError as exc:  # recorded, and the load goes on
                    outcomes.append(Outcome(started, time.monotonic(), 0, repr(exc)))
                    continue
                detail = response.text if response.status_code != 200 else ""
                outcomes.append(Outcome(started, time.monotonic(), response.status_code, detail))
                if response.status_code != 200:
                    await asyncio.sleep(0.01)  # a client backing off a little

        await asyncio.gather(*(worker() for _ in range(WORKERS)))


async def watch_readiness(base: str, seen: list[tuple[float, int]], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while not stop.is_set():
            seen.append((time.monotonic(), (await client.get("/ready")).status_code))
            await asyncio.sleep(0.05)


def factory_calls(pool: AsyncPool[Any]) -> int:
    stats = pool.stats()
    return stats.created + stats.factory_errors


async def test_requests_fail_fast_while_the_database_is_down_and_recover_after(
    own_server: Any,
) -> None:
    dsn = own_server.get_uri()
    outcomes: list[Outcome] = []
    readiness: list[tuple[float, int]] = []
    stop_load = asyncio.Event()
    app, pool = create_app(dsn)
    with serve(app) as base:
        client = asyncio.create_task(load(base, outcomes, stop_load))
        watcher = asyncio.create_task(watch_readiness(base, readiness, stop_load))
        await asyncio.sleep(1.0)
        assert any(o.status == 200 for o in outcomes), "the app never served before the outage"
        stopping_at = time.monotonic()
        await asyncio.to_thread(stop_server, own_server)
        down_at = time.monotonic()
        calls_at_stop = factory_calls(pool)
        await asyncio.sleep(DOWNTIME)
        calls_while_down = factory_calls(pool) - calls_at_stop
        starting_at = time.monotonic()
        await asyncio.to_thread(start_server, own_server)
        back_at = time.monotonic()
        assert own_server.get_uri() == dsn
        deadline = back_at + 15
        while not any(o.status == 200 and o.started >= back_at for o in outcomes):
            assert time.monotonic() < deadline, (
                "requests did not recover within 15 s",
                {o.detail for o in outcomes if o.started >= back_at},
            )
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # steady load after the recovery
        stop_load.set()
        await asyncio.wait_for(asyncio.gather(client, watcher), 30)
        backends = await backends_named(dsn, NAME)

    first_ok = min(o.finished for o in outcomes if o.status == 200 and o.started >= back_at)
    # Sent and answered while the server was down.
    during = [o for o in outcomes if down_at <= o.started and o.finished < starting_at]
    failures = [o for o in outcomes if o.status != 200]
    after = [o for o in outcomes if o.started >= first_ok]
    latencies = sorted(o.finished - o.started for o in during)
    p90 = latencies[int(len(latencies) * 0.9)]
    # Every probe after a failure waits at least half of its (doubling) backoff.
    probes = 1
    waited, delay = BACKOFF[0] / 2, BACKOFF[0]
    while waited < DOWNTIME:
        probes += 1
        delay = min(BACKOFF[1], delay * 2)
        waited += delay / 2
    bound = POOL_SIZE + 3 + probes
    print(
        f"\noutage: {len(outcomes)} requests, {len(failures)} failed, {len(during)} answered "
        f"while down (stopping took {down_at - stopping_at:.2f} s), median "
        f"{statistics.median(latencies) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms; factory "
        f"called {calls_while_down} times while down (bound {bound}); first success "
        f"{first_ok - back_at:.2f} s after the server was ready"
    )
    assert failures
    assert during
    assert all(o.status in (200, 503) for o in outcomes), {
        o.detail for o in outcomes if o.status not in (200, 503)
    }
    # While down: fast 503s, not waits for the acquire timeout, and no herd of connects.
    assert all(o.status == 503 for o in during)
    assert p90 < ACQUIRE_TIMEOUT / 4
    assert calls_while_down <= bound
    assert any(status == 503 for at, status in readiness if down_at <= at < starting_at)
    # Back within a second; after the first good request, every one succeeds.
    assert first_ok - back_at < 1.0
    assert after
    assert all(o.status == 200 for o in after), [o.detail for o in after if o.status != 200]
    assert readiness[-1][1] == 200
    assert backends <= POOL_SIZE
