"""FastAPI wiring: lifespans, 503s for an exhausted or unreachable backend,
a stats route and a readiness route.

    pool = AsyncPool(factory, releaser)
    Conn = Annotated[Connection, Depends(pool.lease)]
    app = FastAPI(lifespan=lifespan(db=pool))
    add_pool_timeout_handler(app)
    app.include_router(stats_router(db=pool))
    app.include_router(health_router(db=pool))

    @app.get("/")
    async def handler(conn: Conn): ...

``Depends(pool.lease)`` is a yield dependency with FastAPI's default
``scope="request"``: the resource goes back after the response is sent,
including a streaming one, and also when the endpoint raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from escudeiro_pools import PoolBusy, PoolTimeout, PoolUnavailable
from escudeiro_pools.integrations._pools import AnyPool, check_pools, check_retry_after, ready
from escudeiro_pools.integrations._require import require
from escudeiro_pools.integrations.starlette import lifespan

require("fastapi", "fastapi")

from fastapi import APIRouter, FastAPI, Request  # noqa: E402
from fastapi.params import Depends  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

__all__ = [
    "add_pool_timeout_handler",
    "add_unavailable_handler",
    "health_router",
    "lifespan",
    "stats_router",
]


def add_pool_timeout_handler(app: FastAPI, *, retry_after: float = 1.0) -> None:
    """Answer a busy pool with ``503 Service Unavailable`` and ``Retry-After``.

    ``PoolTimeout`` and ``PoolBusy`` get ``retry_after`` seconds;
    ``PoolUnavailable`` gets the seconds until the pool next tries its
    factory. The body is ``{"detail": "..."}``.
    """
    seconds = check_retry_after(retry_after)

    async def busy(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": "service busy: no pooled resource was free in time"},
            status_code=503,
            headers={"Retry-After": seconds},
        )

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        wait = exc.retry_after if isinstance(exc, PoolUnavailable) else retry_after
        return JSONResponse(
            {"detail": "service unavailable: its backend cannot be reached"},
            status_code=503,
            headers={"Retry-After": check_retry_after(wait)},
        )

    app.add_exception_handler(PoolTimeout, busy)
    app.add_exception_handler(PoolBusy, busy)
    app.add_exception_handler(PoolUnavailable, unavailable)


def add_unavailable_handler(
    app: FastAPI, *errors: type[Exception], retry_after: float = 5.0
) -> None:
    """Answer ``errors`` (e.g. the asyncpg recipe's ``DATABASE_UNAVAILABLE``) with
    ``503 Service Unavailable``, ``Retry-After: retry_after`` and
    ``{"detail": "database unavailable: <error type>"}``.

        add_unavailable_handler(app, *DATABASE_UNAVAILABLE)
    """
    if not errors:
        raise TypeError("add_unavailable_handler() needs the exception types to answer")
    for error in errors:
        if not (isinstance(error, type) and issubclass(error, Exception)):
            raise TypeError(f"add_unavailable_handler(): {error!r} is not an exception class")
    seconds = check_retry_after(retry_after)

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"database unavailable: {type(exc).__name__}"},
            status_code=503,
            headers={"Retry-After": seconds},
        )

    for error in errors:
        app.add_exception_handler(error, handle)


def stats_router(
    path: str = "/pools",
    *,
    include_in_schema: bool = False,
    dependencies: Sequence[Depends] | None = None,
    **pools: AnyPool,
) -> APIRouter:
    """A router with ``GET path`` reporting each pool's ``stats()`` as JSON.

    Hidden from the OpenAPI schema unless ``include_in_schema=True``;
    ``dependencies`` guard it (e.g. ``[Depends(require_admin)]``).
    """
    check_pools("stats_router", pools)
    router = APIRouter(dependencies=list(dependencies or ()))

    @router.get(path, include_in_schema=include_in_schema, tags=["pools"])
    async def pool_stats() -> dict[str, dict[str, Any]]:
        return {key: pool.stats().as_dict() for key, pool in pools.items()}

    return router


def health_router(
    path: str = "/ready",
    *,
    include_in_schema: bool = False,
    dependencies: Sequence[Depends] | None = None,
    **pools: AnyPool,
) -> APIRouter:
    """A readiness route: ``GET path`` answers 200 when every pool is open, not
    failing fast (``stats().available``) and holds at least ``min_size``
    resources; 503 otherwise. The body is the same either way:
    ``{"ready": bool, "pools": {name: {"ready", "available", "closed",
    "size", "min_size", "last_error"}}}``.
    """
    check_pools("health_router", pools)
    router = APIRouter(dependencies=list(dependencies or ()))

    @router.get(path, include_in_schema=include_in_schema, tags=["pools"])
    async def readiness() -> JSONResponse:
        report: dict[str, dict[str, Any]] = {}
        for key, pool in pools.items():
            stats = pool.stats()
            report[key] = {
                "ready": ready(stats),
                "available": stats.available,
                "closed": stats.closed,
                "size": stats.size,
                "min_size": stats.min_size,
                "last_error": stats.last_error,
            }
        everything = all(entry["ready"] for entry in report.values())
        return JSONResponse(
            {"ready": everything, "pools": report}, status_code=200 if everything else 503
        )

    return router
