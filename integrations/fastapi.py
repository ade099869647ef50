"""FastAPI wiring: dependencies, a 503 for pool timeouts, a stats route.

    pool = AsyncPool(factory, releaser)
    Conn = Annotated[Connection, Depends(pool.lease)]
    app = FastAPI(lifespan=lifespan(db=pool))
    add_pool_timeout_handler(app)
    app.include_router(stats_router(db=pool))

    @app.get("/")
    async def handler(conn: Conn): ...

``Depends(pool.lease)`` is a yield dependency with FastAPI's default
``scope="request"``: the resource goes back after the response is sent,
including a streaming one, and also when the endpoint raises.
"""

from __future__ import annotations

import math
from typing import Any

from escudeiro_pools.integrations._require import require
from escudeiro_pools.integrations.starlette import AnyPool, check_pools, lifespan

from escudeiro_pools import PoolTimeout
from escudeiro_pools._options import check_seconds

require("fastapi", "fastapi")

from fastapi import APIRouter, FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

__all__ = ["add_pool_timeout_handler", "lifespan", "stats_router"]


def add_pool_timeout_handler(app: FastAPI, *, retry_after: float = 1.0) -> None:
    """Answer ``PoolTimeout`` with ``503 Service Unavailable`` and ``Retry-After``."""
    seconds = str(max(1, math.ceil(check_seconds("retry_after", retry_after))))

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": "service busy: no pooled resource was free in time"},
            status_code=503,
            headers={"Retry-After": seconds},
        )

    app.add_exception_handler(PoolTimeout, handle)


def stats_router(path: str = "/pools", **pools: AnyPool) -> APIRouter:
    """A router with ``GET path`` reporting each pool's ``stats()`` as JSON."""
    check_pools("stats_router", pools)
    router = APIRouter()

    @router.get(path, include_in_schema=True, tags=["pools"])
    async def pool_stats() -> dict[str, dict[str, Any]]:
        return {key: pool.stats().as_dict() for key, pool in pools.items()}

    return router
