"""Leases: one checkout, returned exactly once, as a context manager.

A lease is also a one-shot generator, because FastAPI drives a yield
dependency through ``contextlib.(async)contextmanager(pool.lease)``: the first
step acquires, the second (or ``throw``) gives the resource back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from escudeiro_pools._core import Slot
from escudeiro_pools._errors import PoolError

if TYPE_CHECKING:
    from escudeiro_pools._async_pool import AsyncPool
    from escudeiro_pools._thread_pool import ThreadPool

__all__ = [
    "AsyncLease",
    "ThreadLease",
    "presents_as_async_generator",
    "presents_as_generator",
]

T = TypeVar("T")
_get_running_loop = asyncio.get_running_loop
F = TypeVar("F", bound=Callable[..., Any])


def presents_as_async_generator(method: F) -> F:
    """Let FastAPI see ``method`` as an async generator function with no parameters.

    FastAPI (and ``inspect.signature``) follow ``__wrapped__``; the twin is
    only inspected, never called.
    """

    async def twin(self: object) -> AsyncIterator[Any]:  # pragma: no cover
        yield None

    twin.__name__ = twin.__qualname__ = method.__name__
    method.__wrapped__ = twin  # type: ignore[attr-defined]
    return method


def presents_as_generator(method: F) -> F:
    """Like ``presents_as_async_generator``, for sync endpoints (``ThreadPool``)."""

    def twin(self: object) -> Iterator[Any]:  # pragma: no cover
        yield None

    twin.__name__ = twin.__qualname__ = method.__name__
    method.__wrapped__ = twin  # type: ignore[attr-defined]
    return method


def _as_exception(
    typ: type[BaseException] | BaseException, val: object, tb: TracebackType | None
) -> BaseException:
    if isinstance(typ, BaseException):
        return typ
    if isinstance(val, BaseException):
        return val
    exc = typ() if val is None else typ(val)
    return exc.with_traceback(tb) if tb is not None else exc


#: What a lease holds once it is over: a slot that is never leased.
SPENT: Final[Slot[Any]] = Slot(None, 0.0, -1, 0.0)


def _entered_twice() -> PoolError:
    return PoolError("a lease can be entered once; call pool.lease() again for a new one")


class AsyncLease(Generic[T]):
    """``async with pool.lease() as resource:`` — see ``AsyncPool.lease``."""

    __slots__ = ("_pool", "_serial", "_slot")

    def __init__(self, pool: AsyncPool[T]) -> None:
        self._pool = pool
        self._slot: Slot[T] | None = None  # then the leased slot, then SPENT

    async def __aenter__(self) -> T:
        if self._slot is not None:
            raise _entered_twice()
        pool = self._pool
        # ``AsyncPool.acquire``'s hot path, inlined: it runs on every request.
        idle = pool._idle
        if idle and pool._loop is _get_running_loop():
            slot = pool._pop_idle()
            if (
                pool._plain
                or (pool._recycle_only and pool._clock() < slot.expires_at)
                or pool._verdict(slot) is None
            ):
                slot.leased = True
                slot.serial += 1
                pool._in_use += 1
                if pool._leak_timeout is not None:
                    pool._watch_leak(slot)
            else:
                pool._unpop_idle(slot)
                slot = await pool._checkout()
        else:
            slot = await pool._checkout()
        self._slot = slot
        self._serial = slot.serial
        return slot.resource

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        slot = self._slot
        if slot is None:
            return
        self._slot = SPENT  # never leased: a second exit returns below
        if not slot.leased or slot.serial != self._serial:
            return  # released or discarded inside the block
        pool = self._pool
        if exc_type is not None and (
            not issubclass(exc_type, Exception) or issubclass(exc_type, pool._discard_on)
        ):
            # Cancelled or interrupted (the resource may be mid-operation), or an
            # error the pool was told means the resource is broken.
            pool._discard_slot(slot)
        elif not pool._plain_return:
            await pool._return(slot)
        else:
            # ``AsyncPool.release``'s hot path, inlined.
            slot.leased = False
            pool._in_use -= 1
            pool._released += 1
            if slot.generation != pool._generation:
                pool._destroy(slot)
                return
            if pool._stamp_returns:
                slot.returned_at = pool._clock()
            if not (pool._waiting and pool._hand_over(slot)):
                pool._idle.append(slot)

    # The async generator protocol, for FastAPI's Depends(pool.lease).

    def __aiter__(self) -> AsyncLease[T]:
        return self

    async def __anext__(self) -> T:
        if self._slot is None:
            return await self.__aenter__()
        await self.__aexit__(None, None, None)
        raise StopAsyncIteration

    async def asend(self, value: object) -> T:
        return await self.__anext__()

    async def athrow(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> T:
        error = _as_exception(typ, val, tb)
        await self.__aexit__(type(error), error, error.__traceback__)
        raise error

    async def aclose(self) -> None:
        await self.__aexit__(None, None, None)


class ThreadLease(Generic[T]):
    """``with pool.lease() as resource:`` — see ``ThreadPool.lease``."""

    __slots__ = ("_entered", "_pool", "_serial", "_slot")

    def __init__(self, pool: ThreadPool[T]) -> None:
        self._pool = pool
        self._slot: Slot[T] | None = None
        self._serial = 0
        self._entered = False

    def __enter__(self) -> T:
        if self._entered:
            raise _entered_twice()
        self._entered = True
        pool = self._pool
        slot = pool._lend_idle() or pool._checkout()
        self._slot = slot
        self._serial = slot.serial
        return slot.resource

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        slot = self._slot
        if slot is None:
            return
        self._slot = None
        pooled = exc_type is None or (
            issubclass(exc_type, Exception) and not issubclass(exc_type, self._pool._discard_on)
        )
        if not self._pool._put_back(slot, self._serial, pooled=pooled):
            self._pool._restore(slot, pooled=pooled)

    # The generator protocol, for FastAPI's Depends(thread_pool.lease).

    def __iter__(self) -> ThreadLease[T]:
        return self

    def __next__(self) -> T:
        if not self._entered:
            return self.__enter__()
        self.__exit__(None, None, None)
        raise StopIteration

    def send(self, value: object) -> T:
        return self.__next__()

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> T:
        error = _as_exception(typ, val, tb)
        self.__exit__(type(error), error, error.__traceback__)
        raise error

    def close(self) -> None:
        self.__exit__(None, None, None)
