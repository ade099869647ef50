"""One way to answer every pool refusal with 503: the documented bodies,
``Retry-After`` from the pool, whatever order the calls come in, and one
rate-limited WARNING per answer, through a real uvicorn server."""

# No `from __future__ import annotations`: FastAPI must see the local aliases.

import asyncio
import logging
import math
from collections.abc import Callable

import httpx
import pytest
from fastapi import Depends, FastAPI

from escudeiro_pools import AsyncPool, PoolUnavailable
from escudeiro_pools.integrations.asyncpg import DATABASE_UNAVAILABLE
from escudeiro_pools.integrations.fastapi import (
    BUSY,
    UNREACHABLE,
    add_pool_error_handlers,
    add_pool_timeout_handler,
    add_unavailable_handler,
    lifespan,
)
from examples.serving import serve
from tests.kit import AsyncKit, Ledger, Resource


def failing_pool() -> AsyncPool[Resource]:
    """A pool whose factory is refused: after two failures it fails fast."""
    ledger = Ledger(factory_failures=10**6)

    async def factory() -> Resource:
        raise ConnectionRefusedError(111, "Connection refused")

    return AsyncKit(ledger).pool(
        factory=factory, pool_size=1, fail_fast_after=2, retry_backoff=(40.0, 60.0)
    )


def one_call(app: FastAPI) -> None:
    add_pool_error_handlers(app, *DATABASE_UNAVAILABLE)


def timeout_then_unavailable(app: FastAPI) -> None:
    add_pool_timeout_handler(app)
    add_unavailable_handler(app, *DATABASE_UNAVAILABLE)


def unavailable_then_timeout(app: FastAPI) -> None:
    add_unavailable_handler(app, *DATABASE_UNAVAILABLE)
    add_pool_timeout_handler(app)


WIRINGS: dict[str, Callable[[FastAPI], None]] = {
    "one call": one_call,
    "timeout, then unavailable": timeout_then_unavailable,
    "unavailable, then timeout": unavailable_then_timeout,
}


@pytest.mark.parametrize("wiring", list(WIRINGS))
def test_an_outage_answers_with_the_pools_next_retry_whatever_the_order_of_calls(
    wiring: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = failing_pool()
    app = FastAPI(lifespan=lifespan(prefill=False, db=pool))
    WIRINGS[wiring](app)

    @app.get("/")
    async def endpoint(resource: Resource = Depends(pool.lease)) -> None:  # noqa: B008
        return None

    with caplog.at_level(logging.WARNING), serve(app) as url, httpx.Client(base_url=url) as client:
        refused = [client.get("/") for _ in range(2)]  # the driver's own error, twice
        failing_fast = client.get("/")
        retry_at = pool.stats()
    for reply in refused:
        assert reply.status_code == 503
        assert reply.json() == {"detail": UNREACHABLE}
        assert reply.headers["retry-after"] == "5"
    assert failing_fast.status_code == 503
    assert failing_fast.json() == {"detail": UNREACHABLE}
    seconds = int(failing_fast.headers["retry-after"])
    assert 30 < seconds <= 60, seconds  # the breaker's next probe, not a fixed value
    assert not retry_at.available
    warnings = [r.getMessage() for r in caplog.records if r.name.endswith("fastapi")]
    # Three 503s within the interval: one warning, with the driver's message.
    assert len(warnings) == 1, warnings
    assert "503 for GET /" in warnings[0] and "Connection refused" in warnings[0]


def test_a_busy_pool_answers_with_its_estimate_and_warns_with_the_oldest_holder(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = AsyncKit(Ledger()).pool(pool_size=1, acquire_timeout=0.2, leak_timeout=30)
    app = FastAPI(lifespan=lifespan(db=pool))
    add_pool_error_handlers(app)
    release = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    @app.get("/hold")
    async def hold(resource: Resource = Depends(pool.lease)) -> None:  # noqa: B008
        loops.append(asyncio.get_running_loop())
        await release.wait()

    @app.get("/")
    async def endpoint(resource: Resource = Depends(pool.lease)) -> None:  # noqa: B008
        return None

    async def scenario(url: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=url) as client:
            holder = asyncio.ensure_future(client.get("/hold"))
            while pool.stats().in_use == 0:
                await asyncio.sleep(0.01)
            reply = await client.get("/")
            loops[0].call_soon_threadsafe(release.set)
            await holder
            return reply

    with caplog.at_level(logging.WARNING), serve(app, loop="asyncio") as url:
        reply = asyncio.run(scenario(url))
    assert reply.status_code == 503
    assert reply.json() == {"detail": BUSY}
    assert int(reply.headers["retry-after"]) == max(1, math.ceil(pool._state.queue.recent_wait))
    (warning,) = [r.getMessage() for r in caplog.records if r.name.endswith("fastapi")]
    assert "PoolTimeout" in warning and "the oldest lease" in warning and "hold" in warning


def test_a_fixed_busy_retry_after_wins_over_the_estimate() -> None:
    app = FastAPI()
    add_pool_error_handlers(app, busy_retry_after=7)

    @app.get("/")
    async def endpoint() -> None:
        from escudeiro_pools import PoolBusy

        raise PoolBusy("too many callers", retry_after=2)

    @app.get("/down")
    async def down() -> None:
        raise PoolUnavailable("the factory keeps failing", retry_after=12.1)

    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/").headers["retry-after"] == "7"
        assert client.get("/down").headers["retry-after"] == "13"


def test_bad_arguments_say_what_is_wrong() -> None:
    app = FastAPI()
    with pytest.raises(TypeError, match="not an exception class"):
        add_pool_error_handlers(app, "ConnectionError")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_after"):
        add_pool_error_handlers(app, retry_after=-1)
    with pytest.raises(ValueError, match="retry_after"):
        add_pool_error_handlers(app, busy_retry_after=float("nan"))


def test_a_connection_the_server_dropped_mid_lease_answers_503_and_a_misuse_500(
    dsn: str,
) -> None:
    import asyncpg

    from escudeiro_pools.integrations.asyncpg import connection_pool

    pool = connection_pool(dsn, pool_size=1, name="dropped-mid-lease")
    app = FastAPI(lifespan=lifespan(db=pool))
    add_pool_error_handlers(app, *DATABASE_UNAVAILABLE)

    @app.get("/dropped")
    async def dropped(conn: asyncpg.Connection = Depends(pool.lease)) -> int:  # noqa: B008
        admin = await asyncpg.connect(dsn)
        await admin.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
        await admin.close()
        while not conn.is_closed():
            await asyncio.sleep(0.01)
        return int(await conn.fetchval("SELECT 1"))

    @app.get("/misused")
    async def misused(conn: asyncpg.Connection = Depends(pool.lease)) -> int:  # noqa: B008
        return int(await conn.fetchval("SELECT $1::int"))

    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        reply = client.get("/dropped")
        assert (reply.status_code, reply.json()) == (503, {"detail": UNREACHABLE})
        assert client.get("/misused").status_code == 500
        stats = pool.stats()
    assert stats.discarded == 1  # the dropped one; the misused one was kept
