"""The asyncio pool: the public face over its state, leasing and upkeep.

``acquire``/``release`` and the lease's enter and exit take the state's
answer at once when nothing needs awaiting; everything else is
``AsyncLeasing``'s (a lease the slow way) or ``AsyncUpkeep``'s (the pool's
own tasks on its loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from escudeiro_pools import _fork, _report
from escudeiro_pools._async_calls import AsyncCalls
from escudeiro_pools._async_leasing import AsyncLeasing
from escudeiro_pools._async_upkeep import AsyncUpkeep
from escudeiro_pools._binding import Binding
from escudeiro_pools._events import Observers
from escudeiro_pools._lease import AsyncLease, Ending, ends_broken, presents_as_async_generator
from escudeiro_pools._options import check_count, check_keywords, check_timeout, configure
from escudeiro_pools._protocol import DEFAULT, PoolObserver, _Default
from escudeiro_pools._slot import LEASED, RESETTING, Slot
from escudeiro_pools._stats import LeaseInfo, PoolStats

__all__ = ["AsyncPool"]

T = TypeVar("T")

_get_running_loop = asyncio.get_running_loop
logger = logging.getLogger("escudeiro_pools")


class AsyncPool(Generic[T]):
    """A bounded pool of resources for asyncio.

    Parameters:
        factory: called with no argument, returns an awaitable of a new resource
            (an ``async def``, or ``lambda: asyncpg.connect(dsn)``).
        releaser: called with a resource, returns an awaitable that closes it.
            Each resource the factory made is released exactly once.
        queue_class: ``asyncio.LifoQueue`` (default: most recently used first)
            or ``asyncio.Queue`` (oldest first). Waiters are always served
            first come, first served.
        pool_size: the most resources that may exist at once.
        pool_recycle: a resource older than this (seconds since creation) is
            released and replaced; ``<= 0`` disables it.
        name: shown in errors, logs, stats and ``repr``.
        min_size: the fewest resources (idle + leased) a background
            maintainer keeps alive; ``0``: none, and no maintainer.
        recycle_jitter: each lifetime is ``pool_recycle`` shortened by a random
            fraction up to this, so resources made together expire apart.
        max_uses: a resource leased this many times is replaced on return.
        acquire_timeout: the default deadline of one ``acquire`` (waiting,
            creating and checking together); ``None`` waits forever.
        check: ``(resource) -> bool`` (awaitable or not) run at checkout on a
            resource idle at least ``check_after_idle`` seconds; false or an
            exception releases it and the caller gets a fresh one.
        check_after_idle: skip ``check`` on resources returned (or checked)
            more recently.
        alive: a cheap synchronous ``(resource) -> bool`` run at every checkout
            and return; false discards the resource.
        setup: ``(resource) -> awaitable | None`` run at every checkout, after
            ``check``; an exception releases the resource and reaches the
            caller (asyncpg's pool ``setup``).
        reset: ``(resource) -> awaitable | None`` run when a resource comes
            back; an exception discards the resource. Returning ``None``
            (nothing to await) is cheapest.
        max_idle: an idle resource unused this long is released (beyond
            ``min_size``), by the maintainer or when a caller meets it.
        releaser_timeout: bounds each call of ``releaser`` and ``reset``, so
            ``dispose``/``close`` never hang on a dead peer; ``None``: no bound.
        leak_timeout: turns lease tracking on: ``leases()`` reports ages and
            sites, and a lease held longer logs one warning naming where it
            was acquired; ``None`` disables it.
        discard_on: exception types that, raised inside ``lease()``, mean the
            resource is broken (a lost connection): it is discarded, not reset.
        max_waiting: when this many callers wait, the next acquire fails at
            once with ``PoolBusy``; ``None``: no limit.
        fail_fast_after: after this many consecutive factory failures (a
            factory cut off by the acquire deadline counts), callers that would
            create get ``PoolUnavailable`` at once while one background probe
            retries; ``None`` disables it.
        retry_backoff: ``(initial, maximum)`` seconds between retries of a
            failing factory, doubling, with jitter.
        clock: monotonic seconds, for ages; tests may hand in their own.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # Before Python binds the arguments: a misspelled option gets the nearest name.
        check_keywords(cls.__name__, kwargs, cls.__init__, AsyncPool.__init__)
        return super().__new__(cls)

    def __init__(
        self,
        factory: Callable[[], Awaitable[T]],
        releaser: Callable[[T], Awaitable[object]],
        queue_class: type[asyncio.Queue[Any]] = asyncio.LifoQueue,
        pool_size: int = 10,
        pool_recycle: float = 3600,
        *,
        name: str | None = None,
        min_size: int = 0,
        recycle_jitter: float = 0.05,
        max_uses: int | None = None,
        acquire_timeout: float | None = 30.0,
        check: Callable[[T], Awaitable[bool] | bool] | None = None,
        check_after_idle: float = 0.5,
        alive: Callable[[T], bool] | None = None,
        setup: Callable[[T], Awaitable[object] | None] | None = None,
        reset: Callable[[T], Awaitable[object] | None] | None = None,
        max_idle: float | None = None,
        releaser_timeout: float | None = 10.0,
        leak_timeout: float | None = None,
        discard_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        max_waiting: int | None = None,
        fail_fast_after: int | None = None,
        retry_backoff: tuple[float, float] = (0.1, 10.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        options = configure("AsyncPool", asyncio.LifoQueue, asyncio.Queue, locals())
        self._events = Observers(options.name, options.clock)
        calls = AsyncCalls(
            options.name,
            options.clock,
            factory,
            releaser,
            alive,
            check,
            setup,
            reset,
            options.releaser_timeout,
        )
        self._upkeep: AsyncUpkeep[T] = AsyncUpkeep(options, calls, self._events)
        self._state = self._upkeep.state
        self._leasing = AsyncLeasing(self._upkeep, calls, self._events, setup is not None)
        self._discard_on = options.discard_on
        self._acquire_timeout = options.acquire_timeout
        _fork.register(self)

    # -- acquire ------------------------------------------------------------

    async def acquire(self, timeout: float | _Default | None = DEFAULT) -> T:
        """Lease a resource: an idle one, a new one, or the next one returned.

        Waits up to ``timeout`` seconds in all (default: the pool's
        ``acquire_timeout``; ``None`` waits forever). Returns the resource
        itself; give it back with ``release`` (or use ``lease()``).

        Raises:
            PoolTimeout: the deadline passed; nothing is lost.
            PoolClosed: the pool is closed, or closed while this call waited.
            PoolBusy: ``max_waiting`` callers already wait.
            PoolUnavailable: the factory keeps failing (``fail_fast_after``)
                and no idle resource is left.
            PoolError: the pool is bound to another running event loop.
            TypeError, ValueError: ``timeout`` is not a number of seconds.
            Exception: whatever the factory raised creating a resource.
        """
        slot = self._checkout(timeout)
        if not isinstance(slot, Slot):
            slot = await slot
        return slot.resource

    @presents_as_async_generator
    def lease(self) -> AsyncLease[T]:
        """``async with pool.lease() as resource:``, also ``Depends(pool.lease)``.

        Acquires on enter (with the pool's ``acquire_timeout``) and gives the
        resource back on exit, through ``reset``, also when the block raised.
        If the block was cancelled (or interrupted by a ``BaseException``, or
        raised one of ``discard_on``) the resource is discarded, not pooled.
        A lease is entered once.
        """
        return AsyncLease(self)

    def _checkout(self, timeout: float | _Default | None) -> Slot[T] | Coroutine[Any, Any, Slot[T]]:
        """A leased slot at once, or the coroutine that gets one (for ``acquire``
        and ``AsyncLease``: awaited at once)."""
        timeout = self._acquire_timeout if timeout is DEFAULT else check_timeout("timeout", timeout)
        if self._upkeep.loop is not _get_running_loop():
            self._upkeep.bind()
        grant = self._state.checkout()
        if type(grant) is Slot and grant.state == LEASED and self._leasing.plain:
            return grant
        return self._leasing.obtain(grant, timeout)

    # -- return ---------------------------------------------------------------

    async def release(self, resource: T) -> None:
        """Give a leased resource back (through ``reset`` if the pool has one).

        Waits for ``reset`` only; the releaser of a resource that is not
        pooled again runs in a task of its own.

        Raises:
            PoolError: ``resource`` is not leased from this pool (never was, is
                idle, or was already released), or the pool is bound to another
                running event loop; nothing changes.
        """
        if self._upkeep.loop is not _get_running_loop():
            self._upkeep.bind()
        slot = self._state.give_back(resource)
        if self._events.active:
            self._events.returned(resource)
        if slot is not None:
            if slot.state == RESETTING:
                await self._leasing.restore(slot)
            else:
                self._upkeep.spawn_release(slot)

    def _end(self, slot: Slot[T], serial: int, how: Ending) -> Coroutine[Any, Any, None] | None:
        """A lease's exit: None when done, or the coroutine that resets the resource."""
        if slot.state != LEASED or slot.serial != serial:
            return None  # it ended inside the block (released, discarded, detached)
        if how is None:
            back = self._state.end_lease(slot, serial)
        else:
            fate = "broken" if ends_broken(how, self._discard_on) else ""
            back = self._state.end_lease(slot, serial, fate)
        if self._events.active:
            self._events.returned(slot.resource)
        if back is None:
            return None
        if back.state == RESETTING:
            return self._leasing.restore(back)
        self._upkeep.spawn_release(back)
        return None

    async def discard(self, resource: T) -> None:
        """Release a leased resource you know is broken, instead of pooling it.

        Waits for the releaser (in a task of its own: cancelling this call
        does not interrupt it). Inside ``lease()`` the lease's exit then does
        nothing.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        self._upkeep.bind()
        slot = self._state.discard(resource)
        if self._events.active:
            self._events.returned(resource)
        await asyncio.shield(self._upkeep.spawn_release(slot))

    async def detach(self, resource: T) -> None:
        """Take a leased resource out of the pool for good, without releasing it.

        The caller now owns it (and must close it); its capacity is free at
        once, counted in ``stats().detached``. Inside ``lease()`` the exit
        then does nothing.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        self._state.detach(resource)
        if self._events.active:
            self._events.returned(resource)

    # -- lifecycle ------------------------------------------------------------

    async def prefill(self, count: int | None = None) -> None:
        """Create resources concurrently until ``min(count, pool_size)`` are idle.

        ``count`` (default ``pool_size``) counts the idle resources and the
        creations of other ``prefill`` calls in flight. Keeps what succeeded;
        each creation is bounded by ``acquire_timeout``. Cancelled, it keeps
        what was made and holds no capacity.

        Raises:
            ExceptionGroup: the errors of the creations that failed.
            PoolClosed: the pool is closed.
            PoolUnavailable: the factory keeps failing (``fail_fast_after``).
        """
        if count is not None:
            check_count("count", count, hint="the idle resources prefill aims for")
        upkeep = self._upkeep
        binding = upkeep.bind()
        planned = self._state.plan_prefill(count)
        upkeep.start_maintainer(binding)
        if not planned:
            return
        tasks = [upkeep.spawn_creation(binding, prefill=True) for _ in range(planned)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise _report.prefill_failed(self._state.name, planned, errors)

    async def dispose(self) -> None:
        """Release every idle resource now; leased ones are released on return.

        The pool stays open. Every resource is tried before errors are raised;
        waits for the releasers (cancelling this call leaves them running).

        Raises:
            ExceptionGroup: the releaser errors, one per failed resource.
        """
        self._upkeep.bind()
        slots = self._state.take_all_idle()
        self._raise_release_errors(slots, await self._upkeep.release_all(slots))

    def _raise_release_errors(self, slots: list[Slot[T]], errors: list[BaseException]) -> None:
        if errors:
            raise _report.release_failed(self._state.name, len(slots), errors)

    async def close(self, timeout: float | None = 5.0) -> None:
        """Close: refuse acquires with ``PoolClosed``, release idle resources, wait for leases.

        Callers waiting now get ``PoolClosed``; the maintainer stops. Waits up
        to ``timeout`` seconds in all for the idle resources' releasers and for
        leased resources to come back and be released; a lease returned later
        is still released, never pooled. Cancelled, it stops waiting at once
        and the pool stays closed.

        Raises:
            ExceptionGroup: the releaser errors of the idle resources.
        """
        timeout = check_timeout("timeout", timeout)
        upkeep = self._upkeep
        binding = upkeep.bind()
        ends = None if timeout is None else binding.loop.time() + timeout
        slots = self._state.close()
        await upkeep.stop_maintainer(binding)
        errors: list[BaseException] = []
        if slots:
            releasing = asyncio.ensure_future(upkeep.release_all(slots))
            done, _ = await asyncio.wait([releasing], timeout=_left(binding, ends))
            errors = releasing.result() if done else []
        if self._live():
            drained = binding.loop.create_future()
            binding.drains.append(drained)
            await asyncio.wait([drained], timeout=_left(binding, ends))
            if self._live():
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

    async def open(self) -> None:
        """Accept acquires again after ``close()``; a no-op on an open pool.

        Starts the maintainer if the pool has ``min_size`` or ``max_idle``.
        """
        binding = self._upkeep.bind()
        self._state.open()
        self._upkeep.start_maintainer(binding)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until ``min_size`` resources exist (the maintainer creates them).

        Returns at once when they do, also after ``resize()`` lowered
        ``min_size`` to what exists.

        Raises:
            PoolTimeout: they did not within ``timeout`` seconds (``None``: no limit).
            PoolClosed: the pool is closed, or was closed while this call waited.
        """
        timeout = check_timeout("timeout", timeout)
        binding = self._upkeep.bind()
        state = self._state
        self._upkeep.start_maintainer(binding)
        try:
            async with asyncio.timeout(timeout):
                while not state.closed and not state.ready():
                    ready = binding.loop.create_future()
                    binding.ready.append(ready)
                    await ready
        except TimeoutError:
            raise _report.not_ready(state, timeout) from None
        if state.closed:
            raise state.closed_error()

    async def resize(self, pool_size: int | None = None, *, min_size: int | None = None) -> None:
        """Change ``pool_size`` and/or ``min_size`` now.

        Growing serves waiters at once. Shrinking releases idle resources
        beyond the new size now (and waits for that) and leased ones as they
        come back, and releases creations in flight that would exceed it,
        never pooling beyond the new size.

        Raises:
            ValueError, TypeError: a bad size; nothing changes.
            ExceptionGroup: releaser errors of the idle resources released.
        """
        binding = self._upkeep.bind()
        slots = self._state.resize(pool_size, min_size)
        self._upkeep.start_maintainer(binding)
        binding.nudge.set()
        self._raise_release_errors(slots, await self._upkeep.release_all(slots))

    def add_observer(self, observer: PoolObserver) -> None:
        """Send this pool's timings and events to ``observer`` from now on.

        While any observer is attached, every lend and return reads the clock.
        ``destroyed(resource, reason)`` gets one of ``"recycled"``,
        ``"max_uses"``, ``"idle"``, ``"check"``, ``"alive"``, ``"reset"``,
        ``"broken"``, ``"discarded"``, ``"reclaimed"``, ``"shrunk"``,
        ``"disposed"``, ``"closed"``.

        Raises:
            TypeError: it lacks ``created``, ``waited`` or ``used``.
        """
        self._events.add(observer)
        for slot in self._state.slots.values():
            if slot.state == LEASED:
                self._events.lent_already(slot.resource)
        self._state.set_tracking(self._events.active)
        self._leasing.refresh()

    def remove_observer(self, observer: PoolObserver) -> None:
        """Stop sending timings to ``observer``; a no-op if it was not attached."""
        self._events.remove(observer)
        self._state.set_tracking(self._events.active)
        self._leasing.refresh()

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's gauges and cumulative counters."""
        return self._state.stats()

    def leases(self) -> tuple[LeaseInfo, ...]:
        """One ``LeaseInfo`` per resource leased now, oldest first (with tracking on)."""
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
        return f"<{type(self).__name__} {self._state.describe()}>"

    async def __aenter__(self) -> AsyncPool[T]:
        """Open and prefill; on a prefill failure, close again and raise."""
        await self.open()
        try:
            await self.prefill()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def lifespan(self, app: object = None) -> contextlib.AbstractAsyncContextManager[None]:
        """``FastAPI(lifespan=pool.lifespan)``: open and prefill on startup, close on shutdown."""
        return self._lifespan()

    @contextlib.asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with self:
            yield

    # pragma: no mutate start
    def _keepalive(self) -> object:  # pragma: no cover - runs in the child
        # The parent's loop too: finalising it would close the coroutines on it.
        return (list(self._state.slots.values()), self._upkeep.binding)

    def _after_fork(self) -> None:  # pragma: no cover - runs in the child (tests/test_fork.py)
        self._state.forget()
        self._upkeep.forget()

    # pragma: no mutate end


def _left(binding: Binding, ends: float | None) -> float | None:
    """Seconds left until ``ends`` (loop time; None: no end)."""
    return None if ends is None else max(0.0, ends - binding.loop.time())


AsyncPool.__module__ = "escudeiro_pools"
