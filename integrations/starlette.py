"""Starlette (and FastAPI) lifespans that open, prefill and close pools.

app = Starlette(routes=..., lifespan=lifespan(db=pg_pool, http=client_pool))

async def handler(request):
    async with request.state.db.lease() as conn:
        ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeAlias

from escudeiro_pools.integrations._pools import (
    AnyPool,
    PoolStartupError,
    check_pools,
    check_prefill,
    start_all,
    stop_all,
)
from escudeiro_pools.integrations._require import require

require("starlette", "starlette")

__all__ = ["AnyPool", "PoolStartupError", "lifespan"]

AppLifespan: TypeAlias = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]


def lifespan(
    app_lifespan: AppLifespan | None = None, /, *, prefill: bool | int = True, **pools: AnyPool
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan for several pools at once, optionally around the app's own.

    Startup opens every pool and prefills it concurrently: to ``pool_size``
    (``prefill=True``), not at all (``False``: the app starts even while a
    database is away, and pools fill on demand), or ``prefill`` resources
    each. If one fails, every pool is closed again (nothing leaks) and
    startup fails with ``PoolStartupError``, one line naming each pool that
    failed and its first cause. A cancelled or interrupted startup also
    closes every pool, then propagates. Then ``app_lifespan`` runs inside.
    Shutdown closes every pool, in the loop that made its
    resources, even if one fails, then raises the errors together. Each pool
    is in the lifespan state: ``request.state.<name>``.
    """
    check_pools("lifespan", pools)
    fill = check_prefill(prefill)

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[dict[str, Any]]:
        members = list(pools.values())
        await start_all(pools, fill)
        state: dict[str, Any] = dict(pools)
        try:
            if app_lifespan is None:
                yield state
            else:
                async with app_lifespan(app) as app_state:
                    state.update(app_state or {})
                    yield state
        finally:
            errors = await stop_all(members)
            if errors:
                raise BaseExceptionGroup("pools failed to close", errors)

    return run
