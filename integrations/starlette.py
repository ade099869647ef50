"""Starlette (and FastAPI) lifespans that open, prefill and close pools.

app = Starlette(routes=..., lifespan=lifespan(db=pg_pool, http=client_pool))

async def handler(request):
    async with request.state.db.lease() as conn:
        ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeAlias

from escudeiro_pools.integrations._require import require

from escudeiro_pools import AsyncPool, ThreadPool

require("starlette", "starlette")

__all__ = ["AnyPool", "check_pools", "lifespan"]

AnyPool: TypeAlias = AsyncPool[Any] | ThreadPool[Any]
AppLifespan: TypeAlias = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]


def check_pools(caller: str, pools: Mapping[str, object]) -> None:
    """Refuse an empty set of pools, or a value that is not a pool, naming the keyword."""
    if not pools:
        raise TypeError(f"{caller}() needs at least one pool, e.g. {caller}(db=pool)")
    for key, pool in pools.items():
        if not isinstance(pool, AsyncPool | ThreadPool):
            raise TypeError(f"{caller}(): {key}= must be an AsyncPool or ThreadPool, got {pool!r}")


async def _start(pool: AnyPool) -> None:
    if isinstance(pool, AsyncPool):
        await pool.open()
        await pool.prefill()
    else:
        await asyncio.to_thread(pool.open)
        await asyncio.to_thread(pool.prefill)


async def _stop(pool: AnyPool) -> None:
    if isinstance(pool, AsyncPool):
        await pool.close()
    else:
        await asyncio.to_thread(pool.close)


async def _stop_all(pools: list[AnyPool]) -> list[BaseException]:
    results = await asyncio.gather(*(_stop(p) for p in pools), return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


def lifespan(
    app_lifespan: AppLifespan | None = None, /, **pools: AnyPool
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan for several pools at once, optionally around the app's own.

    Startup opens and prefills every pool concurrently; if one fails, the
    others are closed (nothing leaks) and startup fails with that error (an
    ``ExceptionGroup`` if several failed). Then ``app_lifespan`` runs inside.
    Shutdown closes every pool, even if one fails, then raises the errors
    together. Each pool is in the lifespan state: ``request.state.<name>``.
    """
    check_pools("lifespan", pools)

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[dict[str, Any]]:
        members = list(pools.values())
        results = await asyncio.gather(*(_start(p) for p in members), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await _stop_all(members)
            if len(failures) == 1:
                raise failures[0]
            raise BaseExceptionGroup("pools failed to start", failures)
        state: dict[str, Any] = dict(pools)
        try:
            if app_lifespan is None:
                yield state
            else:
                async with app_lifespan(app) as app_state:
                    state.update(app_state or {})
                    yield state
        finally:
            errors = await _stop_all(members)
            if errors:
                raise BaseExceptionGroup("pools failed to close", errors)

    return run
