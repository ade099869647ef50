"""FastAPI wiring: lifespans, 503s for an exhausted or unreachable backend,
a stats route and a readiness route.

    pool = AsyncPool(factory, releaser)
    Conn = Annotated[Connection, Depends(pool.lease)]
    app = FastAPI(lifespan=lifespan(db=pool))
    add_pool_error_handlers(app, *DATABASE_UNAVAILABLE)
    app.include_router(stats_router(db=pool))
    app.include_router(health_router(db=pool))

    @app.get("/")
    async def handler(conn: Conn): ...

``Depends(pool.lease)`` is a yield dependency with FastAPI's default
``scope="request"``: the resource goes back after the response is sent,
including a streaming one, and also when the endpoint raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from escudeiro_pools import PoolBusy, PoolError, PoolTimeout, PoolUnavailable
from escudeiro_pools.integrations._pools import (
    AnyPool,
    PoolStartupError,
    check_pools,
    check_retry_after,
    ready,
)
from escudeiro_pools.integrations._require import require
from escudeiro_pools.integrations.starlette import lifespan

require("fastapi", "fastapi")

from fastapi import APIRouter, FastAPI, Request  # noqa: E402
from fastapi.params import Depends  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

__all__ = [
    "BUSY",
    "UNREACHABLE",
    "PoolStartupError",
    "add_pool_error_handlers",
    "add_pool_timeout_handler",
    "add_unavailable_handler",
    "health_router",
    "lifespan",
    "stats_router",
]


#: The bodies of the 503 answers (``{"detail": ...}``).
BUSY = "service busy: no pooled resource was free in time"
UNREACHABLE = "service unavailable: its backend cannot be reached"

log = logging.getLogger("escudeiro_pools.integrations.fastapi")


class _Warnings:
    """One WARNING per ``interval`` seconds for the 503s an app answers; the
    next one counts those it held back."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.next_at = 0.0
        self.held_back = 0

    def report(self, request: Request, exc: Exception, retry_after: str) -> None:
        now = time.monotonic()
        if now < self.next_at:
            self.held_back += 1
            return
        since = f" ({self.held_back} more since the last warning)" if self.held_back else ""
        self.next_at, self.held_back = now + self.interval, 0
        log.warning(
            "503 for %s %s, Retry-After %s s%s: %s: %s",
            request.method,
            request.url.path,
            retry_after,
            since,
            type(exc).__name__,
            exc,
        )


def _handlers(app: FastAPI) -> dict[str, Any]:
    """This app's answer settings: one record, whichever call made it first."""
    settings: dict[str, Any] | None = getattr(app.state, "escudeiro_pools_503", None)
    if settings is None:
        settings = {"busy_retry_after": None, "retry_after": {}, "warnings": _Warnings()}
        app.state.escudeiro_pools_503 = settings
    return settings


def add_pool_error_handlers(
    app: FastAPI,
    *unavailable: type[Exception],
    retry_after: float = 5.0,
    busy_retry_after: float | None = None,
) -> None:
    """Answer every pool refusal, and ``unavailable`` (a recipe's errors for an
    unreachable backend), with ``503 Service Unavailable`` and ``Retry-After``.

        add_pool_error_handlers(app, *DATABASE_UNAVAILABLE)

    - ``PoolTimeout``, ``PoolBusy``: ``{"detail": BUSY}``; ``Retry-After``: the
      pool's estimate (how long its callers wait lately, at least 1 s), or
      ``busy_retry_after`` if given.
    - ``PoolUnavailable``: ``{"detail": UNREACHABLE}``; ``Retry-After``: when
      the pool next tries its factory.
    - each of ``unavailable``: ``{"detail": UNREACHABLE}``; ``Retry-After``:
      ``retry_after``. A class that narrows another by content (its
      ``refines``) is matched with ``isinstance``; other errors of the class
      it narrows are left to the app's other handlers (a 500).

    Each 503 is logged as a WARNING with the pool's own message (a timeout's
    names the oldest holder when leases are tracked), at most one per 10 s;
    the next says how many were held back. Calls may come in any order and
    be repeated: each adds to what the earlier ones set.

    Raises:
        TypeError: an entry of ``unavailable`` is not an exception class.
        ValueError: a bad number of seconds.
    """
    for error in unavailable:
        if not (isinstance(error, type) and issubclass(error, Exception)):
            raise TypeError(f"add_pool_error_handlers(): {error!r} is not an exception class")
    fallback = check_retry_after(retry_after)
    settings = _handlers(app)
    if busy_retry_after is not None:
        settings["busy_retry_after"] = check_retry_after(busy_retry_after)
    for error in unavailable:
        if not issubclass(error, PoolError):
            settings["retry_after"][error] = fallback
    warnings: _Warnings = settings["warnings"]

    async def answer(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, PoolError):
            pass
        elif not any(isinstance(exc, error) for error in settings["retry_after"]):
            # Registered for a class that an entry narrows (``refines``), and not
            # one of its instances: not ours to answer.
            raise exc
        if isinstance(exc, PoolTimeout | PoolBusy):
            body = BUSY
            seconds = settings["busy_retry_after"] or check_retry_after(exc.retry_after)
        elif isinstance(exc, PoolUnavailable):
            body, seconds = UNREACHABLE, check_retry_after(exc.retry_after)
        else:
            body = UNREACHABLE
            seconds = next(
                (s for e, s in settings["retry_after"].items() if isinstance(exc, e)), fallback
            )
        warnings.report(request, exc, seconds)
        return JSONResponse({"detail": body}, status_code=503, headers={"Retry-After": seconds})

    handled: list[type[Exception]] = [PoolTimeout, PoolBusy, PoolUnavailable]
    for error in unavailable:
        # A class matched by content (the asyncpg recipe's ``ConnectionClosed``) is
        # answered through the class it narrows: Starlette matches handlers by type.
        handled.append(getattr(error, "refines", error))
    for error in handled:
        app.add_exception_handler(error, answer)


def add_pool_timeout_handler(app: FastAPI, *, retry_after: float | None = None) -> None:
    """``add_pool_error_handlers(app, busy_retry_after=retry_after)``: the pool's
    refusals only (kept for apps written against 0.6)."""
    add_pool_error_handlers(app, busy_retry_after=retry_after)


def add_unavailable_handler(
    app: FastAPI, *errors: type[Exception], retry_after: float = 5.0
) -> None:
    """``add_pool_error_handlers(app, *errors, retry_after=retry_after)`` (kept for
    apps written against 0.6).

    Raises:
        TypeError: no error given, or one is not an exception class.
    """
    if not errors:
        raise TypeError("add_unavailable_handler() needs the exception types to answer")
    add_pool_error_handlers(app, *errors, retry_after=retry_after)


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
