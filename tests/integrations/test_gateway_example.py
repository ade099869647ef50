"""The Starlette + httpx example against a real backend."""

from __future__ import annotations

import httpx

from examples.fastapi_asyncpg import create_app
from examples.serving import serve
from examples.starlette_httpx import create_gateway


def test_gateway_calls_the_backend_through_the_client_pool(dsn: str) -> None:
    with (
        serve(create_app(dsn, pool_size=2)) as backend,
        serve(create_gateway(backend)) as gateway,
        httpx.Client(base_url=gateway) as client,
    ):
        for _ in range(5):
            assert client.get("/").json() == {"backend": {"ok": True}, "status": 200}
