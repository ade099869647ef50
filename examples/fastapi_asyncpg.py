"""A FastAPI app on the asyncpg recipe: a notes table and a few endpoints.

DATABASE_URL=postgresql://... uvicorn --factory examples.fastapi_asyncpg:app_from_env

Each process names its pool (and so its connections' ``application_name`` in
``pg_stat_activity``) after its process id, so the sessions of several
workers can be told apart.

``OTEL_METRICS=1`` (or ``create_app(..., instrument=True)``) reports the pool's
OpenTelemetry metrics on the global meter provider (configure it first, e.g.
run under ``opentelemetry-instrument``); see docs/observability.md. Off by
default: the integration is not even imported.
"""

# No `from __future__ import annotations`: FastAPI must see the local `Conn` alias.
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel

from escudeiro_pools.integrations.asyncpg import DATABASE_UNAVAILABLE, connection_pool
from escudeiro_pools.integrations.fastapi import (
    add_pool_error_handlers,
    health_router,
    lifespan,
    stats_router,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id serial PRIMARY KEY,
    body text NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
)
"""


class NoteIn(BaseModel):
    body: str


def create_app(
    dsn: str,
    *,
    pool_size: int = 10,
    name: str | None = None,
    prefill: bool | int = True,
    instrument: bool = False,
    meter_provider: "MeterProvider | None" = None,
) -> FastAPI:
    """The notes app on ``dsn``; ``instrument=True`` reports the pool's
    OpenTelemetry metrics on ``meter_provider`` (default: the global one)
    while the app runs, from startup to shutdown."""
    pool = connection_pool(
        dsn,
        pool_size=pool_size,
        name=name or f"notes-api-{os.getpid()}",
        acquire_timeout=5,
        retry_backoff=(0.05, 1.0),
    )
    Conn = Annotated[asyncpg.Connection, Depends(pool.lease)]

    async def create_schema() -> None:
        async with pool.lease() as conn:
            await conn.execute(SCHEMA)

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        instrumentation = None
        if instrument:
            from escudeiro_pools.integrations.opentelemetry import instrument as report

            instrumentation = report(pool, meter_provider=meter_provider)
        app.state.instrumentation = instrumentation
        try:
            await create_schema()
            yield
        finally:
            if instrumentation is not None:
                instrumentation.uninstrument()

    app = FastAPI(title="notes", lifespan=lifespan(app_lifespan, prefill=prefill, db=pool))
    add_pool_error_handlers(app, *DATABASE_UNAVAILABLE)
    app.include_router(stats_router(db=pool))
    app.include_router(health_router(db=pool))
    app.state.pool = pool

    @app.post("/notes", status_code=201)
    async def add_note(note: NoteIn, conn: Conn) -> dict[str, Any]:
        row = await conn.fetchrow(
            "INSERT INTO notes (body) VALUES ($1) RETURNING id, body", note.body
        )
        return dict(row)

    @app.get("/notes/{note_id}")
    async def get_note(note_id: int, conn: Conn) -> dict[str, Any]:
        row = await conn.fetchrow("SELECT id, body FROM notes WHERE id = $1", note_id)
        if row is None:
            raise HTTPException(404, "no such note")
        return dict(row)

    @app.get("/notes")
    async def count_notes(conn: Conn) -> dict[str, int]:
        return {"count": await conn.fetchval("SELECT count(*) FROM notes")}

    @app.get("/health")
    async def health(conn: Conn) -> dict[str, bool]:
        return {"ok": await conn.fetchval("SELECT true")}

    return app


def app_from_env() -> FastAPI:
    """The app on ``DATABASE_URL`` (``POOL_SIZE`` optional; ``OTEL_METRICS=1`` reports
    the pool's metrics), for ``uvicorn --factory``."""
    return create_app(
        os.environ["DATABASE_URL"],
        pool_size=int(os.environ.get("POOL_SIZE", "10")),
        instrument=os.environ.get("OTEL_METRICS", "0").lower() in ("1", "true", "yes"),
    )
