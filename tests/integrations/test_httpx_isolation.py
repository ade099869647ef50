"""A pooled httpx client carries nothing of its previous holder: cookies,
headers, auth, params, base URL, timeout, event hooks and redirect settings
come back as the pool configured them; against a real uvicorn server."""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from escudeiro_pools.integrations.httpx import UNAVAILABLE, client_pool, sync_client_pool
from examples.serving import serve


async def login(request: Request) -> JSONResponse:
    response = JSONResponse({"ok": True})
    response.set_cookie("session", request.query_params["tenant"])
    return response


async def echo(request: Request) -> JSONResponse:
    auth = request.headers.get("authorization")
    return JSONResponse(
        {
            "path": request.url.path,
            "cookies": dict(request.cookies),
            "tenant_header": request.headers.get("x-tenant"),
            "configured_header": request.headers.get("x-app"),
            "user": base64.b64decode(auth.split()[1]).decode().split(":")[0] if auth else None,
            "params": dict(request.query_params),
        }
    )


async def moved(request: Request) -> RedirectResponse:
    return RedirectResponse("/echo")


app = Starlette(
    routes=[
        Route("/login", login),
        Route("/echo", echo),
        Route("/other/echo", echo),
        Route("/moved", moved),
    ]
)

CONFIGURED: dict[str, Any] = {
    "headers": {"x-app": "configured"},
    "cookies": {"pinned": "yes"},
    "params": {"app": "1"},
}


def dirty(client: httpx.Client | httpx.AsyncClient, url: str) -> None:
    """Everything a tenant's lease may change on its client, besides cookies it was sent."""
    client.headers["x-tenant"] = "tenant-a"
    client.auth = ("tenant-a", "secret-a")
    client.params = {"tenant": "a"}
    client.base_url = httpx.URL(f"{url}/other")
    client.timeout = httpx.Timeout(0.001)
    client.event_hooks = {"request": [lambda request: None], "response": []}
    client.follow_redirects = True
    client.max_redirects = 1


def assert_as_configured(client: httpx.Client | httpx.AsyncClient, url: str) -> None:
    assert client.headers["x-app"] == "configured"
    assert "x-tenant" not in client.headers
    assert dict(client.cookies) == {"pinned": "yes"}
    assert client.auth is None
    assert dict(client.params) == {"app": "1"}
    assert client.base_url == httpx.Client(base_url=url).base_url
    assert client.timeout == httpx.Timeout(5.0)
    assert client.event_hooks == {"request": [], "response": []}
    assert client.follow_redirects is False
    assert client.max_redirects == httpx._config.DEFAULT_MAX_REDIRECTS


def assert_clean_answer(answer: dict[str, Any]) -> None:
    assert answer == {
        "path": "/echo",
        "cookies": {"pinned": "yes"},
        "tenant_header": None,
        "configured_header": "configured",
        "user": None,
        "params": {"app": "1"},
    }


async def test_the_next_lease_of_an_async_client_sees_nothing_of_the_last_tenant() -> None:
    with serve(app) as url:
        pool = client_pool(pool_size=1, base_url=url, **CONFIGURED)
        async with pool.lease() as client:
            reply = await client.get("/login", params={"tenant": "tenant-a"})
            assert reply.json() == {"ok": True}
            assert client.cookies["session"] == "tenant-a"
            dirty(client, url)
        async with pool.lease() as again:
            assert again is client  # the same client, put back as it was made
            assert_as_configured(again, url)
            assert_clean_answer((await again.get("/echo")).json())
            assert (await again.get("/moved")).status_code == 307
        await pool.close()


def test_the_next_lease_of_a_sync_client_sees_nothing_of_the_last_tenant() -> None:
    with serve(app) as url:
        pool = sync_client_pool(pool_size=1, base_url=url, **CONFIGURED)
        with pool.lease() as client:
            client.get("/login", params={"tenant": "tenant-a"})
            dirty(client, url)
        with pool.lease() as again:
            assert again is client
            assert_as_configured(again, url)
            assert_clean_answer(again.get("/echo").json())
        pool.close()


async def test_tenants_interleaved_on_a_pool_never_see_each_others_cookies() -> None:
    with serve(app) as url:
        pool = client_pool(pool_size=2, base_url=url)

        async def tenant(name: str) -> list[dict[str, str]]:
            seen = []
            for _ in range(5):
                async with pool.lease() as client:
                    seen.append((await client.get("/echo")).json()["cookies"])
                    await client.get("/login", params={"tenant": name})
                    await asyncio.sleep(0)
            return seen

        results = await asyncio.gather(*(tenant(f"t{i}") for i in range(6)))
        assert all(cookies == {} for seen in results for cookies in seen), results
        await pool.close()


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow connect")]
)
def test_unavailable_names_the_transport_errors_of_an_unreachable_backend(
    error: Exception,
) -> None:
    assert isinstance(error, UNAVAILABLE)
    assert not isinstance(httpx.ReadTimeout("slow answer"), UNAVAILABLE)


async def test_a_refused_connection_is_one_of_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = client_pool(pool_size=1, base_url=f"http://127.0.0.1:{port}")
    async with pool.lease() as client:
        with pytest.raises(UNAVAILABLE):
            await client.get("/")
    await pool.close()
