"""Leases: one checkout, returned exactly once, as a context manager.

A lease calls four methods of its pool and nothing else: ``_checkout`` and
``_end``, and on a ``ThreadPool`` entered with ``async with``,
``_checkout_async`` and ``_end_async``.

A lease is one-shot: entering it a second time raises ``PoolError``, whether
the first enter succeeded or failed. Its state is ``_slot``: ``None`` before
it is entered, the leased slot while it is held, ``SPENT`` afterwards. Its
exit acts only if the slot is still leased under the same ``serial`` (not
released, discarded or detached inside the block, nor forgotten with its
event loop or process).

A lease is also a one-shot async generator, because FastAPI drives a yield
dependency through ``contextlib.asynccontextmanager(pool.lease)``: the first
step acquires, the second (or ``athrow``) gives the resource back. Both
pools present ``lease`` to FastAPI as an async generator function, so
waiting for a ``ThreadPool`` resource never occupies a worker thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar

from escudeiro_pools._errors import PoolError
from escudeiro_pools._protocol import DEFAULT
from escudeiro_pools._slot import GONE, Slot

if TYPE_CHECKING:
    from escudeiro_pools._async_pool import AsyncPool
    from escudeiro_pools._thread_pool import ThreadPool

__all__ = [
    "SPENT",
    "AsyncLease",
    "Ending",
    "ThreadLease",
    "ending",
    "ends_broken",
    "presents_as_async_generator",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


# pragma: no mutate start
# Runs once, at import: mutation testing cannot switch it (tests/test_rare_paths.py
# pins what it does).
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


# pragma: no mutate end


def _as_exception(
    typ: type[BaseException] | BaseException, val: object, tb: TracebackType | None
) -> BaseException:
    if isinstance(typ, BaseException):
        return typ
    if isinstance(val, BaseException):
        return val
    exc = typ() if val is None else typ(val)
    return exc.with_traceback(tb) if tb is not None else exc


#: What a lease holds once it is over (or while its enter runs): never leased.
SPENT: Final[Slot[Any]] = Slot(None, 0.0, -1, 0.0)
SPENT.state = GONE


def _entered_twice() -> PoolError:
    return PoolError("a lease can be entered once; call pool.lease() again for a new one")


#: How a lease's block ended: None (normally), or what it raised (the exception,
#: or only its type when a caller of ``__exit__`` passed no instance).
Ending: TypeAlias = "BaseException | type[BaseException] | None"


def ending(exc_type: type[BaseException] | None, exc: BaseException | None) -> Ending:
    return exc if exc is not None else exc_type


def ends_broken(how: Ending, discard_on: tuple[type[BaseException], ...]) -> bool:
    """A lease ended by a ``BaseException`` (cancelled, interrupted) or one of
    ``discard_on``: the resource may be mid-operation or broken.

    An instance is matched with ``isinstance``, so an entry of ``discard_on``
    may tell errors of one type apart by their content (the asyncpg recipe's
    ``ConnectionClosed``)."""
    if how is None:
        return False
    if isinstance(how, BaseException):
        return not isinstance(how, Exception) or isinstance(how, discard_on)
    return not issubclass(how, Exception) or issubclass(how, discard_on)


class _Lease(Generic[T]):
    """The state both leases share, and the async generator protocol over
    ``__aenter__``/``__aexit__`` (FastAPI's ``Depends(pool.lease)``)."""

    __slots__ = ("_pool", "_serial", "_slot")

    _slot: Slot[T] | None
    _serial: int

    async def __aenter__(self) -> T:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise NotImplementedError

    def __aiter__(self) -> _Lease[T]:
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


class AsyncLease(_Lease[T]):
    """``async with pool.lease() as resource:`` — see ``AsyncPool.lease``."""

    __slots__ = ()

    _pool: AsyncPool[T]

    def __init__(self, pool: AsyncPool[T]) -> None:
        self._pool = pool
        self._slot = None

    async def __aenter__(self) -> T:
        if self._slot is not None:
            raise _entered_twice()
        self._slot = SPENT
        slot = self._pool._checkout(DEFAULT)
        if not isinstance(slot, Slot):
            slot = await slot
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
        self._slot = SPENT
        pending = self._pool._end(slot, self._serial, ending(exc_type, exc))
        if pending is not None:
            await pending


class ThreadLease(_Lease[T]):
    """``with pool.lease() as resource:`` — see ``ThreadPool.lease``.

    Also ``async with``: then waiting happens on the event loop, and only
    the blocking steps (factory, check, reset, releaser) run in a thread.
    """

    __slots__ = ()

    _pool: ThreadPool[T]

    def __init__(self, pool: ThreadPool[T]) -> None:
        self._pool = pool
        self._slot = None
        self._serial = 0

    def __enter__(self) -> T:
        if self._slot is not None:
            raise _entered_twice()
        self._slot = SPENT
        slot = self._pool._checkout(DEFAULT)
        if not isinstance(slot, Slot):
            slot = slot()
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
        self._slot = SPENT
        self._pool._end(slot, self._serial, ending(exc_type, exc))

    # ``async with`` (and so FastAPI's Depends): waiting on the event loop.

    async def __aenter__(self) -> T:
        if self._slot is not None:
            raise _entered_twice()
        self._slot = SPENT
        slot = await self._pool._checkout_async()
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
        self._slot = SPENT
        await self._pool._end_async(slot, self._serial, ending(exc_type, exc))
