"""Certainly-wrong input is refused with a message saying what to pass instead.

One table per kind of callable: the pools' constructors, their per-call
arguments, and the integrations' helpers.
"""

from __future__ import annotations

import asyncio
import functools
import queue
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from escudeiro_pools import AsyncPool, PoolError, ThreadPool
from tests.kit import Kit


async def _afactory() -> object:
    return object()


async def _areleaser(resource: object) -> None:
    return None


def _factory() -> object:
    return object()


def _releaser(resource: object) -> None:
    return None


ASYNC = (AsyncPool, _afactory, _areleaser, asyncio)
THREAD = (ThreadPool, _factory, _releaser, queue)

BAD: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("pool_size zero", {"pool_size": 0}, ValueError, "positive int"),
    ("pool_size negative", {"pool_size": -3}, ValueError, "pool_size=10"),
    ("pool_size float", {"pool_size": 2.5}, TypeError, "positive int"),
    ("pool_size bool", {"pool_size": True}, TypeError, "positive int"),
    ("pool_size str", {"pool_size": "10"}, TypeError, "positive int"),
    ("acquire_timeout negative", {"acquire_timeout": -1}, ValueError, "must not be negative"),
    ("acquire_timeout str", {"acquire_timeout": "30"}, TypeError, "number of seconds"),
    ("acquire_timeout nan", {"acquire_timeout": float("nan")}, ValueError, "nan"),
    ("max_idle negative", {"max_idle": -5}, ValueError, "max_idle"),
    ("leak_timeout negative", {"leak_timeout": -5}, ValueError, "leak_timeout"),
    ("check_after_idle None", {"check_after_idle": None}, TypeError, "check_after_idle"),
    ("pool_recycle str", {"pool_recycle": "1h"}, TypeError, "pool_recycle"),
    ("check not callable", {"check": 3}, TypeError, "check must be callable"),
    ("reset not callable", {"reset": "x"}, TypeError, "reset must be callable"),
    ("alive not callable", {"alive": 1}, TypeError, "alive must be callable"),
    ("clock not callable", {"clock": 1.0}, TypeError, "clock must be callable"),
    ("name empty", {"name": ""}, TypeError, "non-empty str"),
    ("discard_on instance", {"discard_on": OSError()}, TypeError, "exception class or a tuple"),
    ("discard_on non-exception", {"discard_on": (OSError, int)}, TypeError, "discard_on="),
    ("check_after_idle negative", {"check_after_idle": -1}, ValueError, "check_after_idle"),
    ("name int", {"name": 3}, TypeError, "non-empty str"),
]


@pytest.mark.parametrize("flavour", [ASYNC, THREAD], ids=["async", "thread"])
@pytest.mark.parametrize(
    ("option", "error", "message"),
    [(kw, err, msg) for _, kw, err, msg in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_option_is_refused(
    flavour: tuple[Any, ...], option: dict[str, Any], error: type[Exception], message: str
) -> None:
    cls, factory, releaser, _ = flavour
    with pytest.raises(error, match=message):
        cls(factory, releaser, **option)


@pytest.mark.parametrize("flavour", [ASYNC, THREAD], ids=["async", "thread"])
def test_non_callable_factory_and_releaser_are_refused(flavour: tuple[Any, ...]) -> None:
    cls, factory, releaser, _ = flavour
    with pytest.raises(TypeError, match="factory must be callable"):
        cls("postgres://", releaser)
    with pytest.raises(TypeError, match="releaser must be callable"):
        cls(factory, None)


@pytest.mark.parametrize(
    ("cls", "factory", "releaser", "queue_class", "hint"),
    [
        (AsyncPool, _afactory, _areleaser, asyncio.PriorityQueue, "asyncio.LifoQueue"),
        (AsyncPool, _afactory, _areleaser, queue.LifoQueue, "asyncio.Queue"),
        (AsyncPool, _afactory, _areleaser, list, "oldest first"),
        (ThreadPool, _factory, _releaser, queue.PriorityQueue, "queue.LifoQueue"),
        (ThreadPool, _factory, _releaser, asyncio.LifoQueue, "queue.Queue"),
        (ThreadPool, _factory, _releaser, "lifo", "most recently used first"),
    ],
)
def test_wrong_queue_class_is_a_type_error(
    cls: Any, factory: Any, releaser: Any, queue_class: Any, hint: str
) -> None:
    with pytest.raises(TypeError, match=hint):
        cls(factory, releaser, queue_class=queue_class)


async def test_queue_subclasses_of_lifo_mean_lifo() -> None:
    class MyLifo(asyncio.LifoQueue[object]):
        pass

    pool = AsyncPool(_afactory, _areleaser, queue_class=MyLifo)
    a, b = await pool.acquire(), await pool.acquire()
    await pool.release(a)
    await pool.release(b)
    assert await pool.acquire() is b


@pytest.mark.parametrize("option", ["factory", "releaser", "check", "reset", "alive"])
def test_thread_pool_refuses_async_callables(option: str) -> None:
    kwargs: dict[str, Any] = {"factory": _factory, "releaser": _releaser}
    kwargs[option] = _afactory if option == "factory" else _areleaser
    with pytest.raises(TypeError, match="use AsyncPool"):
        ThreadPool(**kwargs)


def test_thread_pool_refuses_an_object_with_an_async_call() -> None:
    class Connect:
        async def __call__(self) -> object:
            return object()

    with pytest.raises(TypeError, match="use AsyncPool"):
        ThreadPool(Connect(), _releaser)


# ``Any`` for the kit: the calls pass wrong types on purpose.
CallCase = tuple[str, Callable[[Any, Any], Awaitable[object]], type[Exception], str]

BAD_CALLS: list[CallCase] = [
    (
        "acquire timeout negative",
        lambda k, p: k.acquire(p, timeout=-1),
        ValueError,
        "timeout must not be negative",
    ),
    ("acquire timeout str", lambda k, p: k.acquire(p, timeout="5"), TypeError, "number of seconds"),
    ("acquire timeout nan", lambda k, p: k.acquire(p, timeout=float("nan")), ValueError, "nan"),
    ("prefill negative", lambda k, p: k.prefill(p, -2), ValueError, "count must be an int >= 0"),
    ("prefill float", lambda k, p: k.prefill(p, 2.5), TypeError, "count must be an int >= 0"),
    ("prefill bool", lambda k, p: k.prefill(p, True), TypeError, "count must be an int >= 0"),
    (
        "close timeout negative",
        lambda k, p: k.close(p, timeout=-1),
        ValueError,
        "must not be negative",
    ),
    ("close timeout str", lambda k, p: k.close(p, timeout="soon"), TypeError, "number of seconds"),
    (
        "release foreign",
        lambda k, p: k.release(p, object()),
        PoolError,
        "not acquired from this pool",
    ),
    (
        "discard foreign",
        lambda k, p: k.discard(p, object()),
        PoolError,
        "not acquired from this pool",
    ),
    (
        "release idle",
        lambda k, p: _release_idle(k, p),
        PoolError,
        "release each acquired resource exactly once",
    ),
    ("release after destroyed", lambda k, p: _release_twice(k, p), PoolError, "already destroyed"),
    ("lease entered twice", lambda k, p: _enter_twice(k, p), PoolError, "entered once"),
]


async def _release_idle(kit: Kit, pool: Any) -> None:
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)
    await kit.release(pool, resource)


async def _release_twice(kit: Kit, pool: Any) -> None:
    first, second = await kit.acquire(pool), await kit.acquire(pool)
    await kit.release(pool, first)
    await kit.dispose(pool)  # ``first`` is destroyed now
    try:
        await kit.release(pool, first)
    finally:
        await kit.release(pool, second)


async def _enter_twice(kit: Kit, pool: Any) -> None:
    lease = pool.lease()
    if kit.flavour == "async":
        async with lease, lease:
            pass
    else:
        with lease, lease:
            pass


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [case[1:] for case in BAD_CALLS],
    ids=[case[0] for case in BAD_CALLS],
)
async def test_bad_call_is_refused_and_changes_nothing(
    kit: Kit, call: Callable[[Any, Any], Awaitable[object]], error: type[Exception], message: str
) -> None:
    pool = kit.pool(pool_size=2)
    with pytest.raises(error, match=message):
        await call(kit, pool)
    await kit.settle(pool)
    stats = kit.stats(pool)
    assert stats.in_use == 0
    assert stats.size == stats.idle <= 2
    assert len([await kit.acquire(pool, timeout=1) for _ in range(2)]) == 2


BAD_INTEGRATION_CALLS: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "asyncpg pool_size zero",
        lambda: _asyncpg().connection_pool("postgresql://", pool_size=0),
        ValueError,
        "pool_size",
    ),
    (
        "asyncpg close_timeout negative",
        lambda: _asyncpg().connection_pool("postgresql://", close_timeout=-1),
        ValueError,
        "close_timeout",
    ),
    (
        "asyncpg check_after_idle str",
        lambda: _asyncpg().connection_pool("postgresql://", check_after_idle="5"),
        TypeError,
        "check_after_idle",
    ),
    ("httpx pool_size zero", lambda: _httpx().client_pool(pool_size=0), ValueError, "pool_size"),
    (
        "httpx acquire_timeout negative",
        lambda: _httpx().client_pool(acquire_timeout=-1),
        ValueError,
        "acquire_timeout",
    ),
    (
        "httpx sync pool_size str",
        lambda: _httpx().sync_client_pool(pool_size="4"),
        TypeError,
        "pool_size",
    ),
    ("lifespan without pools", lambda: _starlette().lifespan(), TypeError, "at least one pool"),
    (
        "lifespan with a non-pool",
        lambda: _starlette().lifespan(db="postgresql://"),
        TypeError,
        "db= must be an AsyncPool",
    ),
    (
        "stats_router without pools",
        lambda: _fastapi().stats_router(),
        TypeError,
        "at least one pool",
    ),
    (
        "stats_router with a non-pool",
        lambda: _fastapi().stats_router(db=3),
        TypeError,
        "db= must be an AsyncPool",
    ),
    (
        "timeout handler retry_after negative",
        lambda: _fastapi().add_pool_timeout_handler(_app(), retry_after=-1),
        ValueError,
        "retry_after",
    ),
]


def _asyncpg() -> Any:
    import escudeiro_pools.integrations.asyncpg

    return escudeiro_pools.integrations.asyncpg


def _httpx() -> Any:
    import escudeiro_pools.integrations.httpx

    return escudeiro_pools.integrations.httpx


def _starlette() -> Any:
    import escudeiro_pools.integrations.starlette

    return escudeiro_pools.integrations.starlette


def _fastapi() -> Any:
    import escudeiro_pools.integrations.fastapi

    return escudeiro_pools.integrations.fastapi


def _app() -> Any:
    from fastapi import FastAPI

    return FastAPI()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [case[1:] for case in BAD_INTEGRATION_CALLS],
    ids=[case[0] for case in BAD_INTEGRATION_CALLS],
)
def test_bad_integration_call_is_refused(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()


def test_default_names_are_distinct() -> None:
    assert AsyncPool(_afactory, _areleaser).name != AsyncPool(_afactory, _areleaser).name
    assert ThreadPool(_factory, _releaser, name="files").name == "files"


class _Connector:
    async def connect(self) -> object:
        return object()

    async def close(self, resource: object) -> None:
        return None


def _async_shapes() -> list[tuple[str, Any]]:
    connector = _Connector()
    inner = functools.partial(_afactory)
    return [
        ("partial", functools.partial(_afactory)),
        ("nested partial", functools.partial(inner)),
        ("partial of a bound method", functools.partial(connector.connect)),
        ("bound method", connector.connect),
        ("async generator", _agen),
    ]


async def _agen() -> AsyncIterator[object]:
    yield object()


@pytest.mark.parametrize(("shape", "factory"), _async_shapes(), ids=lambda v: str(v)[:30])
def test_thread_pool_refuses_async_callables_in_every_shape(shape: str, factory: Any) -> None:
    with pytest.raises(TypeError, match="use AsyncPool"):
        ThreadPool(factory, _releaser)
    with pytest.raises(TypeError, match="use AsyncPool"):
        ThreadPool(_factory, _releaser, reset=functools.partial(_areleaser))


def test_a_thread_pool_factory_returning_an_awaitable_fails_that_acquire_at_no_cost() -> None:
    pool: ThreadPool[object] = ThreadPool(lambda: _afactory(), _releaser, pool_size=1)
    with pytest.raises(TypeError, match="returned coroutine, an awaitable"):
        pool.acquire()
    stats = pool.stats()
    assert (stats.size, stats.factory_errors) == (0, 1)
    with pytest.raises(TypeError, match="awaitable"):
        pool.acquire()  # still no capacity lost: it can try again


async def test_an_async_pool_factory_returning_a_plain_value_fails_at_no_cost() -> None:
    pool = AsyncPool(lambda: object(), _areleaser, pool_size=1)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="not an awaitable"):
        await pool.acquire()
    assert pool.stats().size == 0


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("pool_sise", "pool_size"),
        ("acquire_timout", "acquire_timeout"),
        ("max_wating", "max_waiting"),
        ("chek", "check"),
        ("recycle", "pool_recycle"),
    ],
)
def test_a_misspelled_keyword_gets_the_nearest_valid_name(kit: Kit, typo: str, meant: str) -> None:
    with pytest.raises(TypeError, match=rf"'{typo}'; did you mean {meant}=\?") as caught:
        kit.pool(**{typo: 1})
    assert "its options are" in str(caught.value)


def test_an_unknown_keyword_far_from_any_option_lists_the_options(kit: Kit) -> None:
    with pytest.raises(TypeError, match="'zzz'; its options are factory, releaser") as caught:
        kit.pool(zzz=1)
    assert "did you mean" not in str(caught.value)


def test_a_subclass_that_forwards_its_keywords_keeps_them() -> None:
    class Tagged(AsyncPool[object]):
        def __init__(self, *args: Any, tag: str = "", **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tag = tag

    async def make() -> object:
        return object()

    async def drop(resource: object) -> None:
        return None

    pool = Tagged(make, drop, pool_size=3, tag="x")
    assert (pool.pool_size, pool.tag) == (3, "x")
    with pytest.raises(TypeError, match="'pool_sise'; did you mean pool_size=\\?"):
        Tagged(make, drop, pool_sise=3)
