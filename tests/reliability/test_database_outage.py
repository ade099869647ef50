"""The database goes away under load, for two seconds, and comes back.

A FastAPI app on the asyncpg recipe serves ``SELECT 1`` under steady load from
a real HTTP client while the test stops its own embedded PostgreSQL (never
the shared one, never ``DATABASE_URL``) and starts it again.
"""

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from escudeiro_pools.integrations.asyncpg import CONNECTION_LOST, connection_pool
from escudeiro_pools.integrations.fastapi import add_pool_timeout_handler
from examples.embedded_pg import embedded_server, start_server, stop_server
from examples.serving import serve
from tests.pg import backends_named

POOL_SIZE = 4
ACQUIRE_TIMEOUT = 1.0
DOWNTIME = 2.0
WORKERS = 8
NAME = "outage-test"


@dataclass(frozen=True)
class Outcome:
    started: float
    finished: float
    status: int
    detail: str


def create_app(dsn: str) -> FastAPI:
    pool = connection_pool(
        dsn, pool_size=POOL_SIZE, name=NAME, acquire_timeout=ACQUIRE_TIMEOUT, check_after_idle=0.2
    )
    app = FastAPI(lifespan=pool.lifespan)
    add_pool_timeout_handler(app)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        detail = f"database unavailable: {type(exc).__name__}: {exc}"
        return JSONResponse({"detail": detail}, status_code=503)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"unexpected {type(exc).__name__}: {exc}"}, status_code=500)

    for error in (*CONNECTION_LOST, asyncpg.PostgresError):
        app.add_exception_handler(error, unavailable)
    app.add_exception_handler(Exception, unexpected)

    @app.get("/one")
    async def one(connection: Annotated[asyncpg.Connection, Depends(pool.lease)]) -> int:
        return int(await connection.fetchval("SELECT 1"))

    return app


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
                response = await client.get("/one")
                detail = response.text if response.status_code != 200 else ""
                outcomes.append(Outcome(started, time.monotonic(), response.status_code, detail))
                if response.status_code != 200:
                    await asyncio.sleep(0.01)  # a client backing off a little

        await asyncio.gather(*(worker() for _ in range(WORKERS)))


async def test_requests_fail_fast_while_the_database_is_down_and_recover_after(
    own_server: Any,
) -> None:
    dsn = own_server.get_uri()
    outcomes: list[Outcome] = []
    stop_load = asyncio.Event()
    with serve(create_app(dsn)) as base:
        client = asyncio.create_task(load(base, outcomes, stop_load))
        await asyncio.sleep(1.0)
        assert any(o.status == 200 for o in outcomes), "the app never served before the outage"
        stopping_at = time.monotonic()
        await asyncio.to_thread(stop_server, own_server)
        down_at = time.monotonic()
        await asyncio.sleep(DOWNTIME)
        starting_at = time.monotonic()
        await asyncio.to_thread(start_server, own_server)
        back_at = time.monotonic()
        assert own_server.get_uri() == dsn
        deadline = back_at + 15
        while not any(o.status == 200 and o.started >= back_at for o in outcomes):
            assert time.monotonic() < deadline, (
                "requests did not recover within 15 s",
                {o.detail for o in outcomes if o.started >= back_at},
                len([o for o in outcomes if o.started >= back_at]),
            )
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # steady load after the recovery
        stop_load.set()
        await asyncio.wait_for(client, 30)
        backends = await backends_named(dsn, NAME)

    first_ok = min(o.started for o in outcomes if o.status == 200 and o.started >= back_at)
    # Sent and answered while the server was down.
    during = [o for o in outcomes if down_at <= o.started and o.finished < starting_at]
    failures = [o for o in outcomes if o.status != 200]
    after = [o for o in outcomes if o.started >= first_ok]
    print(
        f"\noutage: {len(outcomes)} requests, {len(failures)} failed, "
        f"{len(during)} sent while down (stopping took {down_at - stopping_at:.2f} s); "
        f"first success {first_ok - starting_at:.2f} s after the restart began, "
        f"{first_ok - back_at:.2f} s after the server was ready; slowest request {max(o.finished - o.started for o in outcomes):.2f} s"
    )
    # While down: requests fail fast, with a clear error, and never hang.
    assert failures
    assert during
    assert all(o.status in (200, 503) for o in outcomes), {
        o.detail for o in outcomes if o.status not in (200, 503)
    }
    assert all(o.finished - o.started < ACQUIRE_TIMEOUT + 2.0 for o in outcomes)
    assert all("database unavailable" in o.detail or "busy" in o.detail for o in failures)
    assert all(o.status == 503 for o in during)
    # Back within a few seconds; after the first good checkout, no dead connection again.
    assert first_ok - back_at < 5.0
    assert after
    assert all(o.status == 200 for o in after), [o.detail for o in after if o.status != 200]
    assert backends <= POOL_SIZE
