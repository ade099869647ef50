"""Scenario 4's server: one FastAPI app, ``SELECT 1`` through either pool.

``/ours`` leases from the escudeiro-pools asyncpg recipe with
``Depends(pool.lease)``; ``/asyncpg`` uses a yield dependency over
``asyncpg.Pool``. Run by ``bench.web`` under uvicorn, in its own process. No ``from __future__
import annotations`` here: FastAPI must see the ``Depends`` objects, which
live in ``create_app``'s scope.
"""

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI

from escudeiro_pools.integrations.asyncpg import connection_pool

__all__ = ["create_app"]


def create_app() -> FastAPI:
    dsn = os.environ["BENCH_DSN"]
    size = int(os.environ.get("BENCH_POOL_SIZE", "10"))
    ours = connection_pool(dsn, pool_size=size, name="bench-web")
    theirs: dict[str, asyncpg.Pool] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ours, asyncpg.create_pool(dsn, min_size=size, max_size=size) as pool:
            theirs["pool"] = pool
            yield

    async def asyncpg_connection() -> AsyncIterator[Any]:
        async with theirs["pool"].acquire() as connection:
            yield connection

    app = FastAPI(lifespan=lifespan)

    @app.get("/ours")
    async def with_ours(connection: Annotated[asyncpg.Connection, Depends(ours.lease)]) -> int:
        return int(await connection.fetchval("SELECT 1"))

    @app.get("/asyncpg")
    async def with_asyncpg(connection: Annotated[Any, Depends(asyncpg_connection)]) -> int:
        return int(await connection.fetchval("SELECT 1"))

    @app.get("/ready")
    async def ready() -> str:
        return "ok"

    return app
