"""The httpx recipes against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from escudeiro_pools.integrations.httpx import client_pool, sync_client_pool
from examples.serving import serve
from tests.kit import eventually


async def _echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.headers.get("x-tag", "none"))


_app = Starlette(routes=[Route("/", _echo)])


def test_client_pool_bounds_and_reuses_clients() -> None:
    with serve(_app) as url:

        async def drive() -> None:
            pool = client_pool(pool_size=3, base_url=url, headers={"x-tag": "pooled"})
            async with pool:
                seen: set[int] = set()

                async def call() -> str:
                    async with pool.lease() as client:
                        seen.add(id(client))
                        return (await client.get("/")).text

                results = await asyncio.gather(*(call() for _ in range(30)))
                assert set(results) == {"pooled"}
                assert len(seen) <= 3
                async with pool.lease() as client:
                    await client.aclose()  # a closed client is discarded on return
                await eventually(lambda: pool.stats().check_failures == 1)
            assert pool.stats().size == 0
            assert pool.stats().created == pool.stats().destroyed

        asyncio.run(drive())


def test_sync_client_pool_in_threads() -> None:
    with serve(_app) as url:
        pool = sync_client_pool(pool_size=2, base_url=url)
        with pool:
            with pool.lease() as client:
                assert isinstance(client, httpx.Client)
                assert client.get("/").text == "none"
            assert pool.stats().idle == 2
        assert pool.stats().size == 0


@pytest.mark.parametrize(
    ("make", "option", "hint"),
    [
        (client_pool, "leak_timout", "leak_timeout"),
        (client_pool, "base_ur", "base_url"),
        (sync_client_pool, "verfy", "verify"),
        (sync_client_pool, "nonsense", "httpx.Client"),
    ],
)
def test_an_unknown_option_is_refused_at_construction(
    make: Callable[..., object], option: str, hint: str
) -> None:
    options: dict[str, object] = {option: 1}
    with pytest.raises(TypeError, match=hint):
        make(**options)


def test_default_names_are_distinct() -> None:
    names = {client_pool().name, client_pool().name, sync_client_pool().name}
    assert len(names) == 3
