"""Real FastAPI and Starlette apps, run by uvicorn through their lifespan."""

# No `from __future__ import annotations`: FastAPI must see the local `Conn` alias.

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from escudeiro_pools import AsyncPool
from escudeiro_pools.integrations.asyncpg import connection_pool
from escudeiro_pools.integrations.fastapi import add_pool_timeout_handler, lifespan, stats_router
from examples.serving import serve
from tests.kit import Ledger, Resource, ThreadKit


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def _fastapi_app(pool: AsyncPool[asyncpg.Connection]) -> FastAPI:
    Conn = Annotated[asyncpg.Connection, Depends(pool.lease)]
    app = FastAPI(lifespan=pool.lifespan)
    add_pool_timeout_handler(app, retry_after=2)
    app.include_router(stats_router(db=pool))

    @app.get("/one")
    async def one(conn: Conn) -> dict[str, Any]:
        return {"value": await conn.fetchval("SELECT 1"), "pid": conn.get_server_pid()}

    @app.get("/direct")
    async def direct(conn: asyncpg.Connection = Depends(pool.lease)) -> dict[str, bool]:  # noqa: B008
        return {"is_connection": isinstance(conn, asyncpg.Connection)}

    @app.get("/fail")
    async def fail(conn: Conn) -> None:
        await conn.execute("BEGIN")
        raise RuntimeError("endpoint failed")

    @app.get("/stream")
    async def stream(conn: Conn) -> StreamingResponse:
        async def rows() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"{await conn.fetchval('SELECT $1::int', i)}\n".encode()
                await asyncio.sleep(0.01)

        return StreamingResponse(rows(), media_type="text/plain")

    @app.get("/slow")
    async def slow(conn: Conn) -> dict[str, str]:
        await asyncio.sleep(0.5)
        return {"ok": "slow"}

    return app


def test_fastapi_depends_pool_lease_end_to_end(dsn: str) -> None:
    pool = connection_pool(dsn, pool_size=2, acquire_timeout=0.2, name="fastapi-test")
    app = _fastapi_app(pool)
    schema = app.openapi()
    for path in ("/one", "/direct", "/fail", "/stream"):
        assert "parameters" not in schema["paths"][path]["get"], path
    with serve(app) as url:
        assert pool.stats().idle == 2  # prefilled on startup

        async def drive() -> None:
            # At most 3 requests in flight: the burst queues in the client, not for
            # 0.2 s in the pool, so a busy machine cannot turn it into 503s.
            limits = httpx.Limits(max_connections=3)
            async with httpx.AsyncClient(base_url=url, limits=limits) as client:
                responses = await asyncio.gather(*(client.get("/one") for _ in range(40)))
                assert all(r.status_code == 200 for r in responses)
                assert {r.json()["value"] for r in responses} == {1}
                assert (await client.get("/direct")).json() == {"is_connection": True}
                # uvicorn drops the connection after an unhandled error: don't reuse it.
                failed = await client.get("/fail", headers={"Connection": "close"})
                assert failed.status_code == 500
                assert (await client.get("/stream")).text == "0\n1\n2\n"
                slow = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
                await asyncio.sleep(0.1)
                busy = await client.get("/one")
                assert busy.status_code == 503
                assert busy.headers["retry-after"] == "2"
                await asyncio.gather(*slow)
                stats = (await client.get("/pools")).json()["db"]
                assert stats["in_use"] == 0
                assert stats["size"] <= 2

        asyncio.run(drive())
        stats = pool.stats()
        assert stats.in_use == 0
        assert stats.acquired == stats.released
    assert pool.closed
    assert pool.stats().size == 0


def test_sync_endpoint_with_thread_pool_lease() -> None:
    ledger = Ledger()
    pool = ThreadKit(ledger).pool(pool_size=2)
    app = FastAPI(lifespan=lifespan(files=pool))

    @app.get("/sync")
    def sync(resource: Resource = Depends(pool.lease)) -> dict[str, int]:  # noqa: B008
        return {"id": resource.id}

    assert "parameters" not in app.openapi()["paths"]["/sync"]["get"]
    with serve(app) as url, httpx.Client(base_url=url) as client:
        ids = {client.get("/sync").json()["id"] for _ in range(10)}
        assert ids <= {r.id for r in ledger.made}
        # The lease goes back just after the response is sent (scope="request").
        _wait_until(lambda: pool.stats().in_use == 0)
    ledger.assert_released_once()


def test_waiting_for_a_thread_pool_occupies_no_fastapi_worker_thread() -> None:
    """A pool of 1, two worker threads, three requests of 10 ms each: all succeed."""
    import anyio.to_thread

    ledger = Ledger()
    pool = ThreadKit(ledger).pool(pool_size=1, acquire_timeout=5)

    @asynccontextmanager
    async def two_worker_threads(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2
        yield

    app = FastAPI(lifespan=lifespan(two_worker_threads, files=pool))
    add_pool_timeout_handler(app)

    @app.get("/work")
    def work(resource: Resource = Depends(pool.lease)) -> dict[str, int]:  # noqa: B008
        time.sleep(0.01)
        return {"id": resource.id}

    async def drive(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url) as client:
            responses = await asyncio.gather(*(client.get("/work") for _ in range(6)))
        return [r.status_code for r in responses]

    with serve(app) as url:
        statuses = asyncio.run(drive(url))
    assert statuses == [200] * 6
    assert pool.stats().timeouts == 0
    ledger.assert_released_once()


def test_starlette_lifespan_state_exposes_each_pool(dsn: str) -> None:
    db = connection_pool(dsn, pool_size=2, name="starlette-db")
    ledger = Ledger()
    other = ThreadKit(ledger).pool(pool_size=1)
    events: list[str] = []

    @asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        events.append("app start")
        yield {"greeting": "hello"}
        events.append("app stop")

    async def handler(request: Request) -> JSONResponse:
        async with request.state.db.lease() as conn:
            value = await conn.fetchval("SELECT 41 + 1")
        return JSONResponse({"value": value, "greeting": request.state.greeting})

    app = Starlette(
        routes=[Route("/", handler)], lifespan=lifespan(app_lifespan, db=db, other=other)
    )
    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/").json() == {"value": 42, "greeting": "hello"}
        assert other.stats().idle == 1
    assert events == ["app start", "app stop"]
    assert db.closed
    assert other.closed
    ledger.assert_released_once()


def test_startup_failure_closes_the_pools_already_filled() -> None:
    good_ledger, bad_ledger = Ledger(), Ledger()
    good = ThreadKit(good_ledger).pool(pool_size=2)
    bad = ThreadKit(bad_ledger).pool(pool_size=2)
    bad_ledger.factory_failures = 5
    app = Starlette(lifespan=lifespan(good=good, bad=bad))
    with pytest.raises(RuntimeError, match="failed to start"), serve(app):
        pass
    assert good.closed
    good_ledger.assert_released_once()
    assert good.stats().size == 0


def test_lifespan_refuses_non_pools() -> None:
    with pytest.raises(TypeError, match="at least one pool"):
        lifespan()
    with pytest.raises(TypeError, match="must be an AsyncPool or ThreadPool"):
        lifespan(db="postgres://")  # type: ignore[arg-type]
