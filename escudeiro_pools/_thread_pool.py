"""The thread pool: the public face over its state, leasing and upkeep.

``acquire``/``release`` and the lease's enter and exit take the state's
answer at once, under the pool's one lock, when nothing needs blocking;
everything else is ``ThreadLeasing``'s (a lease the slow way),
``ThreadUpkeep``'s (releasers, creations, the maintainer thread) or, from
asyncio code, ``AsyncFace``'s.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from escudeiro_pools import _fork, _report
from escudeiro_pools._events import Observers
from escudeiro_pools._lease import Ending, ThreadLease, presents_as_async_generator
from escudeiro_pools._options import (
    check_count,
    check_keywords,
    check_not_async,
    check_timeout,
    configure,
)
from escudeiro_pools._protocol import DEFAULT, WAIT, Grant, PoolObserver, _Default
from escudeiro_pools._slot import LEASED, Slot
from escudeiro_pools._stats import LeaseInfo, PoolStats
from escudeiro_pools._thread_async import AsyncFace
from escudeiro_pools._thread_calls import ThreadCalls
from escudeiro_pools._thread_leasing import ThreadLeasing
from escudeiro_pools._thread_upkeep import ThreadUpkeep
from escudeiro_pools._waiters import ThreadWaiter

__all__ = ["ThreadPool"]

T = TypeVar("T")
R = TypeVar("R")
logger = logging.getLogger("escudeiro_pools")
_monotonic = time.monotonic


class ThreadPool(Generic[T]):
    """A bounded, thread-safe pool of resources for blocking code.

    Its parameters mean what ``AsyncPool``'s do, with plain callables:
    ``factory()``, ``releaser(resource)``, ``alive(resource)``,
    ``check(resource) -> bool`` and ``reset(resource)`` run in the calling
    thread, outside the pool's lock; ``queue_class`` is ``queue.LifoQueue``
    (default) or ``queue.Queue``. There is no ``releaser_timeout``: a
    blocking call cannot be interrupted. For the same reason a factory that
    returns after the acquire deadline has its resource pooled for the next
    caller while this call raises ``PoolTimeout``. The maintainer
    (``min_size``, ``max_idle``, the outage probe, the leak watch) runs in
    one daemon thread, only while needed.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # Before Python binds the arguments: a misspelled option gets the nearest name.
        check_keywords(cls.__name__, kwargs, cls.__init__, ThreadPool.__init__)
        return super().__new__(cls)

    def __init__(
        self,
        factory: Callable[[], T],
        releaser: Callable[[T], object],
        queue_class: type[queue.Queue[Any]] = queue.LifoQueue,
        pool_size: int = 10,
        pool_recycle: float = 3600,
        *,
        name: str | None = None,
        min_size: int = 0,
        recycle_jitter: float = 0.05,
        max_uses: int | None = None,
        acquire_timeout: float | None = 30.0,
        check: Callable[[T], bool] | None = None,
        check_after_idle: float = 0.5,
        alive: Callable[[T], bool] | None = None,
        setup: Callable[[T], object] | None = None,
        reset: Callable[[T], object] | None = None,
        max_idle: float | None = None,
        leak_timeout: float | None = None,
        discard_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        max_waiting: int | None = None,
        fail_fast_after: int | None = None,
        retry_backoff: tuple[float, float] = (0.1, 10.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        options = configure("ThreadPool", queue.LifoQueue, queue.Queue, locals())
        for option, value in (
            ("factory", factory),
            ("releaser", releaser),
            ("check", check),
            ("reset", reset),
            ("setup", setup),
            ("alive", alive),
        ):
            check_not_async(option, value)
        self._events = Observers(options.name, options.clock)
        calls = ThreadCalls(
            options.name, options.clock, factory, releaser, alive, check, setup, reset
        )
        self._upkeep: ThreadUpkeep[T] = ThreadUpkeep(options, calls, self._events)
        self._state = self._upkeep.state
        self._lock = self._upkeep.lock
        self._leasing = ThreadLeasing(
            self._upkeep, calls, self._events, setup is not None, options.discard_on
        )
        self._face = AsyncFace(self._upkeep, self._leasing, options.acquire_timeout)
        self._acquire_timeout = options.acquire_timeout
        _fork.register(self)

    # -- acquire ------------------------------------------------------------

    def acquire(self, timeout: float | _Default | None = DEFAULT) -> T:
        """Lease a resource, blocking up to ``timeout`` seconds in all.

        Same contract as ``AsyncPool.acquire``: returns the resource itself.

        Raises:
            PoolTimeout: the deadline passed; nothing is lost.
            PoolClosed: the pool is closed, or closed while this call waited.
            PoolBusy: ``max_waiting`` callers already wait.
            PoolUnavailable: the factory keeps failing and no idle resource is left.
            TypeError, ValueError: ``timeout`` is not a number of seconds.
            Exception: whatever the factory raised.
        """
        slot = self._checkout(timeout)
        if not isinstance(slot, Slot):
            slot = slot()
        return slot.resource

    @presents_as_async_generator
    def lease(self) -> ThreadLease[T]:
        """``with pool.lease() as resource:``, ``async with``, and ``Depends(pool.lease)``.

        Acquires on enter, gives back on exit (through ``reset``), also when
        the block raised an ``Exception``; after a ``BaseException``
        (``KeyboardInterrupt``) or one of ``discard_on`` the resource is
        discarded. FastAPI drives it as an async dependency: a request
        waiting for a resource occupies no worker thread, and a sync
        endpoint still gets the resource itself.
        """
        return ThreadLease(self)

    def _checkout(self, timeout: float | _Default | None) -> Slot[T] | Callable[[], Slot[T]]:
        """A leased slot at once, or the blocking call that gets one (for ``acquire``
        and ``ThreadLease``: called at once)."""
        timeout = self._acquire_timeout if timeout is DEFAULT else check_timeout("timeout", timeout)
        started = _monotonic()
        with self._lock:
            grant: Grant | ThreadWaiter = self._state.checkout()
            if type(grant) is Slot and grant.state == LEASED and self._leasing.plain:
                return grant
            upkeep = self._upkeep
            if upkeep.maintainer is None and self._state.maintained:
                upkeep.start_maintainer()
            if grant is WAIT:
                grant = self._leasing.queue()
        return partial(self._leasing.obtain, grant, started, timeout)

    def _checkout_async(self) -> Coroutine[Any, Any, Slot[T]]:
        """``async with``'s enter: the coroutine that gets a leased slot on the loop."""
        return self._face.checkout()

    # -- return ---------------------------------------------------------------

    def release(self, resource: T) -> None:
        """Give a leased resource back (through ``reset`` if the pool has one).

        Raises:
            PoolError: ``resource`` is not leased from this pool; nothing changes.
        """
        slot = self._end_told(resource, self._state.give_back)
        if slot is not None:
            self._leasing.after_return(slot)

    def _end_told(self, resource: T, end: Callable[[T], R]) -> R:
        """``end(resource)`` under the lock (``give_back``, ``discard``, ``detach``),
        then the observers are told of the return.

        The lending time is taken before the books change, which may lend the
        resource to a waiter at once; only a leased resource has one, so a call
        that ``end`` refuses took nothing.
        """
        events = self._events
        with self._lock:
            began = events.take_back(resource) if events.active else None
            result = end(resource)
        if events.active:
            events.tell_returned(resource, began)
        return result

    def _end(self, slot: Slot[T], serial: int, how: Ending) -> None:
        """A lease's exit (blocking through ``reset``)."""
        back = self._leasing.end(slot, serial, how)
        if back is not None:
            self._leasing.after_return(back)

    def _end_async(self, slot: Slot[T], serial: int, how: Ending) -> Coroutine[Any, Any, None]:
        """``async with``'s exit: the coroutine that ends the lease."""
        return self._face.end(slot, serial, how)

    def discard(self, resource: T) -> None:
        """Release a leased resource you know is broken, instead of pooling it.

        Blocks while the releaser runs.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        slot = self._end_told(resource, self._state.discard)
        self._upkeep.release_all([slot])

    def detach(self, resource: T) -> None:
        """Take a leased resource out of the pool for good, without releasing it.

        The caller now owns it; its capacity is free at once, counted in
        ``stats().detached``. Inside ``lease()`` the exit then does nothing.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        self._end_told(resource, self._state.detach)

    # -- lifecycle ------------------------------------------------------------

    def prefill(self, count: int | None = None) -> None:
        """Create resources concurrently until ``min(count, pool_size)`` are idle.

        ``count`` (default ``pool_size``) counts the idle resources and the
        creations of other ``prefill`` calls in flight.

        Raises:
            ExceptionGroup: the errors of the creations that failed.
            PoolClosed: the pool is closed.
            PoolUnavailable: the factory keeps failing (``fail_fast_after``).
        """
        if count is not None:
            check_count("count", count, hint="the idle resources prefill aims for")
        with self._lock:
            planned = self._state.plan_prefill(count)
            self._upkeep.start_maintainer()
        if not planned:
            return
        with ThreadPoolExecutor(max_workers=min(planned, 16)) as executor:
            futures = [executor.submit(self._upkeep.create_placed, True) for _ in range(planned)]
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            raise _report.prefill_failed(self._state.name, planned, errors)

    def dispose(self) -> None:
        """Release every idle resource now; leased ones are released on return.

        Every resource is tried before errors are raised.

        Raises:
            ExceptionGroup: the releaser errors, one per failed resource.
        """
        with self._lock:
            slots = self._state.take_all_idle()
        self._raise_release_errors(slots, self._upkeep.release_all(slots))

    def _raise_release_errors(self, slots: list[Slot[T]], errors: list[Exception]) -> None:
        if errors:
            raise _report.release_failed(self._state.name, len(slots), errors)

    def close(self, timeout: float | None = 5.0) -> None:
        """Close in one step: refuse acquires, release idle resources, wait for leases.

        Waiting threads get ``PoolClosed``; the maintainer stops. Waits up to
        ``timeout`` seconds in all (the maintainer, then leased resources to
        come back and be released; releasers cannot be interrupted); a lease
        returned later is still released, never pooled.

        Raises:
            ExceptionGroup: the releaser errors of the idle resources.
        """
        timeout = check_timeout("timeout", timeout)
        ends = None if timeout is None else _monotonic() + timeout

        def left() -> float | None:
            return None if ends is None else max(0.0, ends - _monotonic())

        upkeep = self._upkeep
        with self._lock:
            slots = self._state.close()
            maintainer = upkeep.maintainer
            upkeep.changed.notify_all()
        if maintainer is not None and maintainer is not threading.current_thread():
            maintainer.join(left())
        errors = upkeep.release_all(slots)
        with self._lock:
            if not upkeep.changed.wait_for(lambda: not self._live(), left()):
                logger.warning(
                    "pool %r: closed with %d resources still leased or releasing; they "
                    "will be released when they come back",
                    self._state.name,
                    self._live(),
                )
        self._raise_release_errors(slots, errors)

    def _live(self) -> int:
        state = self._state
        return len(state.slots) + state.creating + state.releasing

    def open(self) -> None:
        """Accept acquires again after ``close()``; a no-op on an open pool."""
        with self._lock:
            self._state.open()
            self._upkeep.start_maintainer()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until ``min_size`` resources exist (the maintainer creates them).

        Returns at once when they do, also after ``resize()`` lowered
        ``min_size`` to what exists.

        Raises:
            PoolTimeout: they did not within ``timeout`` seconds (``None``: no limit).
            PoolClosed: the pool is closed, or was closed while this call waited.
        """
        timeout = check_timeout("timeout", timeout)
        state = self._state
        with self._lock:
            self._upkeep.start_maintainer()
            ready = self._upkeep.changed.wait_for(lambda: state.closed or state.ready(), timeout)
            if state.closed:
                raise state.closed_error()
            if not ready:
                raise _report.not_ready(state, timeout)

    def resize(self, pool_size: int | None = None, *, min_size: int | None = None) -> None:
        """Change ``pool_size`` and/or ``min_size`` now; see ``AsyncPool.resize``."""
        with self._lock:
            slots = self._state.resize(pool_size, min_size)
            self._upkeep._wake_maintainer()
        self._raise_release_errors(slots, self._upkeep.release_all(slots))

    def add_observer(self, observer: PoolObserver) -> None:
        """See ``AsyncPool.add_observer``."""
        with self._lock:
            self._events.add(observer)
            for slot in self._state.slots.values():
                if slot.state == LEASED:
                    self._events.lent_already(slot.resource)
            self._state.set_tracking(self._events.active)
            self._leasing.refresh()

    def remove_observer(self, observer: PoolObserver) -> None:
        """See ``AsyncPool.remove_observer``."""
        with self._lock:
            self._events.remove(observer)
            self._state.set_tracking(self._events.active)
            self._leasing.refresh()

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's gauges and cumulative counters."""
        with self._lock:
            return self._state.stats()

    def leases(self) -> tuple[LeaseInfo, ...]:
        """One ``LeaseInfo`` per resource leased now, oldest first (with tracking on)."""
        with self._lock:
            return self._state.lease_infos()

    @property
    def name(self) -> str:
        """The pool's name, as shown in errors, logs and stats."""
        return self._state.name

    @property
    def pool_size(self) -> int:
        """The most resources that may exist at once."""
        return self._state.pool_size

    @property
    def min_size(self) -> int:
        """The fewest resources the maintainer keeps alive."""
        return self._state.min_size

    @property
    def closed(self) -> bool:
        """True between ``close()`` and ``open()``."""
        return self._state.closed

    def __repr__(self) -> str:
        with self._lock:
            return f"<{type(self).__name__} {self._state.describe()}>"

    def __enter__(self) -> ThreadPool[T]:
        """Open and prefill; on a prefill failure, close again and raise."""
        self.open()
        try:
            self.prefill()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # pragma: no mutate start
    def _keepalive(self) -> object:  # pragma: no cover - runs in the child
        return list(self._state.slots.values())

    def _after_fork(self) -> None:  # pragma: no cover - runs in the child (tests/test_fork.py)
        self._upkeep.after_fork()
        self._lock = self._upkeep.lock

    # pragma: no mutate end


ThreadPool.__module__ = "escudeiro_pools"
