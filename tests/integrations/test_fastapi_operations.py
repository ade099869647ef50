"""FastAPI wiring a new user relies on: route-named leaks, 503s, guarded routes,
starting while the database is away, readiness."""

# No `from __future__ import annotations`: FastAPI must see the local aliases.

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Annotated, Any

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

from escudeiro_pools import AsyncPool, PoolBusy, PoolUnavailable
from escudeiro_pools.integrations.asyncpg import DATABASE_UNAVAILABLE, connection_pool
from escudeiro_pools.integrations.fastapi import (
    PoolStartupError,
    add_pool_timeout_handler,
    add_unavailable_handler,
    health_router,
    lifespan,
    stats_router,
)
from examples.embedded_pg import embedded_server, start_server, stop_server
from examples.serving import serve
from tests.kit import AsyncKit, Ledger, Resource, ThreadKit, eventually, until


def test_a_leak_warning_under_depends_names_the_route_and_the_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = AsyncKit(Ledger()).pool(pool_size=2, leak_timeout=0.05)
    thread_pool = ThreadKit(Ledger()).pool(pool_size=2, leak_timeout=0.05)
    app = FastAPI(lifespan=lifespan(db=pool, files=thread_pool))

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, resource: Resource = Depends(pool.lease)) -> int:  # noqa: B008
        await eventually(lambda: pool.stats().leaks == 1, 30.0)  # held until it is reported
        return item_id

    @app.get("/files")
    def list_files(resource: Resource = Depends(thread_pool.lease)) -> int:  # noqa: B008
        until(lambda: thread_pool.stats().leaks == 1)
        return 0

    with caplog.at_level(logging.WARNING, "escudeiro_pools"), serve(app) as url:
        assert httpx.get(f"{url}/items/7").json() == 7
        assert httpx.get(f"{url}/files").json() == 0
    leaks = [r.getMessage() for r in caplog.records if "leased for more" in r.getMessage()]
    assert len(leaks) == 2, leaks
    assert any(
        "GET /items/{item_id}" in m and "read_item" in m and "test_fastapi_operations" in m
        for m in leaks
    ), leaks
    assert any("GET /files" in m and "list_files" in m for m in leaks), leaks
    assert not any("fastapi/" in m.split(" serving ")[0] for m in leaks), leaks


def test_a_busy_or_failing_pool_answers_503_with_retry_after() -> None:
    pool = AsyncKit(Ledger()).pool(pool_size=1, max_waiting=0, acquire_timeout=0.05)
    app = FastAPI(lifespan=lifespan(db=pool))
    add_pool_timeout_handler(app, retry_after=3)

    @app.get("/busy")
    async def busy() -> None:
        raise PoolBusy("too many callers")

    @app.get("/down")
    async def down() -> None:
        raise PoolUnavailable("the factory keeps failing", retry_after=7.2)

    @app.get("/slow")
    async def slow(resource: Resource = Depends(pool.lease)) -> None:  # noqa: B008
        await asyncio.sleep(0.3)

    with serve(app) as url, httpx.Client(base_url=url) as client:
        busy_reply = client.get("/busy")
        assert (busy_reply.status_code, busy_reply.headers["retry-after"]) == (503, "3")
        down_reply = client.get("/down")
        assert (down_reply.status_code, down_reply.headers["retry-after"]) == (503, "8")
        assert "unavailable" in down_reply.json()["detail"]

        async def two_at_once() -> list[int]:
            async with httpx.AsyncClient(base_url=url) as client:
                replies = await asyncio.gather(client.get("/slow"), client.get("/slow"))
            return sorted(r.status_code for r in replies)

        assert asyncio.run(two_at_once()) == [200, 503]  # max_waiting=0: refused at once
    assert pool.stats().rejected == 1


def test_the_stats_route_is_hidden_from_the_schema_and_can_be_guarded() -> None:
    pool = AsyncKit(Ledger()).pool(pool_size=1)

    def admin_only(request: Request) -> None:
        if request.headers.get("x-admin") != "yes":
            raise HTTPException(403, "admins only")

    app = FastAPI(lifespan=lifespan(db=pool))
    app.include_router(stats_router("/internal/pools", dependencies=[Depends(admin_only)], db=pool))
    app.include_router(health_router(db=pool))
    shown = FastAPI()
    shown.include_router(stats_router(include_in_schema=True, db=pool))
    assert "/internal/pools" not in app.openapi()["paths"]
    assert "/ready" not in app.openapi()["paths"]
    assert "/pools" in shown.openapi()["paths"]
    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/internal/pools").status_code == 403
        reply = client.get("/internal/pools", headers={"x-admin": "yes"})
        assert reply.json()["db"]["pool_size"] == 1
        assert client.get("/ready").json()["ready"] is True


def test_an_unavailable_handler_is_typed_for_strict_users() -> None:
    app = FastAPI()
    add_unavailable_handler(app, *DATABASE_UNAVAILABLE, retry_after=2)
    assert ConnectionRefusedError in app.exception_handlers or ConnectionError in (
        app.exception_handlers
    )
    with pytest.raises(TypeError, match="exception types"):
        add_unavailable_handler(app)
    with pytest.raises(TypeError, match="not an exception class"):
        add_unavailable_handler(app, "ConnectionError")  # type: ignore[arg-type]


def test_a_prefill_failure_names_the_pool_and_the_cause() -> None:
    ledger = Ledger()
    ledger.factory_failures = 10
    pool = ThreadKit(ledger).pool(pool_size=2, name="orders-db")
    app = FastAPI(lifespan=lifespan(orders=pool))
    with pytest.raises(RuntimeError, match="failed to start"), serve(app):
        pass
    starting = lifespan(orders=pool)(app)
    with pytest.raises(PoolStartupError) as caught:
        asyncio.run(starting.__aenter__())
    assert "pool 'orders' (orders-db) failed to start" in str(caught.value)
    assert "ConnectionError: factory failed" in str(caught.value)


@pytest.fixture
def own_server() -> Iterator[Any]:
    with embedded_server() as server:
        yield server


def _outage_app(dsn: str) -> tuple[FastAPI, AsyncPool[asyncpg.Connection]]:
    pool = connection_pool(
        dsn, pool_size=2, acquire_timeout=2, retry_backoff=(0.05, 0.3), name="startup-test"
    )
    Conn = Annotated[asyncpg.Connection, Depends(pool.lease)]
    app = FastAPI(lifespan=lifespan(prefill=False, db=pool))
    add_pool_timeout_handler(app)
    add_unavailable_handler(app, *DATABASE_UNAVAILABLE)
    app.include_router(health_router(db=pool))

    @app.get("/one")
    async def one(conn: Conn) -> int:
        return int(await conn.fetchval("SELECT 1"))

    return app, pool


def test_an_app_starts_while_its_database_is_down_and_serves_once_it_is_back(
    own_server: Any,
) -> None:
    dsn = own_server.get_uri()
    stop_server(own_server)
    app, pool = _outage_app(dsn)
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        replies = [client.get("/one") for _ in range(5)]
        assert all(r.status_code == 503 for r in replies), [r.text for r in replies]
        assert all("retry-after" in r.headers for r in replies)
        assert client.get("/ready").status_code == 503
        start_server(own_server)
        deadline = time.monotonic() + 30
        while client.get("/one").status_code != 200:
            assert time.monotonic() < deadline, "never served after the database came back"
            time.sleep(0.05)
        assert client.get("/ready").status_code == 200
    assert pool.closed
