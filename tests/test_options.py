"""Certainly-wrong input is refused at construction with a message saying what to pass."""

from __future__ import annotations

import asyncio
import queue
from typing import Any

import pytest

from escudeiro_pools import AsyncPool, PoolError, ThreadPool


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
    ("pool_size negative", {"pool_size": -3}, ValueError, "e.g. pool_size=10"),
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


def test_queue_subclasses_of_lifo_mean_lifo() -> None:
    class MyLifo(asyncio.LifoQueue[object]):
        pass

    assert AsyncPool(_afactory, _areleaser, queue_class=MyLifo)._lifo


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


async def test_bad_per_call_arguments() -> None:
    pool = AsyncPool(_afactory, _areleaser)
    with pytest.raises(ValueError, match="timeout must not be negative"):
        await pool.acquire(timeout=-1)
    with pytest.raises(ValueError, match="positive int"):
        await pool.prefill(0)
    with pytest.raises(TypeError, match="number of seconds"):
        await pool.close(timeout="soon")  # type: ignore[arg-type]
    thread_pool = ThreadPool(_factory, _releaser)
    with pytest.raises(ValueError, match="timeout must not be negative"):
        thread_pool.acquire(timeout=-1)
    with pytest.raises(PoolError):
        thread_pool.release(object())


def test_default_names_are_distinct() -> None:
    assert AsyncPool(_afactory, _areleaser).name != AsyncPool(_afactory, _areleaser).name
    assert ThreadPool(_factory, _releaser, name="files").name == "files"
