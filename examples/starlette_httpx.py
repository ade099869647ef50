"""A Starlette gateway that calls a backend through a pool of httpx clients.

Each lease is one client with its own headers; the pool bounds concurrent
calls to the backend and queues the rest.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from escudeiro_pools.integrations.httpx import client_pool
from escudeiro_pools.integrations.starlette import lifespan


def create_gateway(backend_url: str, *, pool_size: int = 4) -> Starlette:
    clients = client_pool(pool_size=pool_size, base_url=backend_url, timeout=5.0)

    async def proxy(request: Request) -> JSONResponse:
        async with request.state.backend.lease() as client:
            upstream = await client.get("/health")
        return JSONResponse({"backend": upstream.json(), "status": upstream.status_code})

    return Starlette(routes=[Route("/", proxy)], lifespan=lifespan(backend=clients))
