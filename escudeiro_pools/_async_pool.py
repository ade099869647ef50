"""The asyncio pool."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from escudeiro_pools._core import (
    CLOSED,
    CREATE,
    DEFAULT,
    EXPIRED,
    PoolCore,
    Slot,
    _Default,
    logger,
)
from escudeiro_pools._deadlines import Deadlines
from escudeiro_pools._errors import PoolClosed, PoolError, PoolTimeout
from escudeiro_pools._lease import AsyncLease, presents_as_async_generator
from escudeiro_pools._options import (
    check_callable,
    check_exception_types,
    check_name,
    check_optional_seconds,
    check_pool_size,
    check_seconds,
    is_lifo,
)
from escudeiro_pools._site import call_site

__all__ = ["AsyncPool"]

T = TypeVar("T")
_Grant = Any  # Slot[T] | CREATE | CLOSED
_Waiter = asyncio.Future[_Grant]


_get_running_loop = asyncio.get_running_loop
_Future = asyncio.Future


def _expire(waiter: _Waiter) -> None:
    if not waiter.done():
        waiter.set_result(EXPIRED)


class AsyncPool(PoolCore[T, _Waiter]):
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
            released and replaced at checkout; ``<= 0`` disables it.
        name: shown in errors, logs, stats and ``repr``.
        acquire_timeout: the default deadline of one ``acquire`` (waiting,
            creating and checking together); ``None`` waits forever.
        check: ``async (resource) -> bool`` run at checkout on a resource that
            sat idle at least ``check_after_idle`` seconds; false or an
            exception releases it and the caller gets another one.
        check_after_idle: skip ``check`` on resources returned more recently.
        alive: a cheap synchronous ``(resource) -> bool`` run at every checkout
            and return; false discards the resource.
        reset: ``(resource) -> awaitable | None`` run when a resource comes
            back; an exception discards the resource. Returning ``None``
            (nothing to await, e.g. no transaction to roll back) is cheapest.
        max_idle: an idle resource unused this long is released when found.
        releaser_timeout: bounds each call of ``releaser`` and ``reset``, so
            ``dispose``/``close`` never hang on a dead peer; ``None``: no bound.
        leak_timeout: a lease held longer logs one warning naming where it was
            acquired; ``None`` disables the watch.
        discard_on: exception types that, raised inside ``lease()``, mean the
            resource is broken (a lost connection): it is discarded, not reset.
        clock: monotonic seconds, for ages; tests may hand in their own.
    """

    def __init__(
        self,
        factory: Callable[[], Awaitable[T]],
        releaser: Callable[[T], Awaitable[object]],
        queue_class: type[asyncio.Queue[Any]] = asyncio.LifoQueue,
        pool_size: int = 10,
        pool_recycle: float = 3600,
        *,
        name: str | None = None,
        acquire_timeout: float | None = 30.0,
        check: Callable[[T], Awaitable[bool]] | None = None,
        check_after_idle: float = 0.5,
        alive: Callable[[T], bool] | None = None,
        reset: Callable[[T], Awaitable[object] | None] | None = None,
        max_idle: float | None = None,
        releaser_timeout: float | None = 10.0,
        leak_timeout: float | None = None,
        discard_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = check_callable("factory", factory)
        self._releaser = check_callable("releaser", releaser)
        self._check = check_callable("check", check, allow_none=True)
        self._reset = check_callable("reset", reset, allow_none=True)
        self._acquire_timeout = check_optional_seconds("acquire_timeout", acquire_timeout)
        self._releaser_timeout = check_optional_seconds("releaser_timeout", releaser_timeout)
        super().__init__(
            name=check_name(name, "AsyncPool"),
            pool_size=check_pool_size(pool_size),
            lifo=is_lifo(queue_class, asyncio.LifoQueue, asyncio.Queue, "AsyncPool"),
            recycle=check_seconds("pool_recycle", pool_recycle, allow_negative=True),
            max_idle=check_optional_seconds("max_idle", max_idle),
            has_check=check is not None,
            check_after_idle=check_seconds("check_after_idle", check_after_idle),
            alive=check_callable("alive", alive, allow_none=True),
            has_reset=reset is not None,
            leak_timeout=check_optional_seconds("leak_timeout", leak_timeout),
            discard_on=check_exception_types("discard_on", discard_on),
            clock=check_callable("clock", clock),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_time: Callable[[], float] = time.monotonic
        self._new_future: Callable[[], _Waiter] = _Future
        self._tasks: set[asyncio.Task[BaseException | None]] = set()
        self._drain: list[asyncio.Future[None]] = []
        self._deadlines = Deadlines(_expire)

    # -- acquire ------------------------------------------------------------

    async def acquire(self, timeout: float | _Default | None = DEFAULT) -> T:
        """Lease a resource: an idle one, a new one, or the next one returned.

        Waits up to ``timeout`` seconds in all (default: the pool's
        ``acquire_timeout``; ``None`` waits forever). Returns the resource
        itself; give it back with ``release`` (or use ``lease()``).

        Raises:
            PoolTimeout: the deadline passed; nothing is lost.
            PoolClosed: the pool is closed, or closed while this call waited.
            PoolError: the pool is bound to another running event loop.
            Exception: whatever the factory raised creating a resource.
        """
        # The hot path (twin: ``AsyncLease.__aenter__``): an idle resource needing no awaits.
        idle = self._idle
        if idle and self._loop is _get_running_loop():
            slot = self._pop_idle()
            if (
                self._plain
                or (self._recycle_only and self._clock() < slot.expires_at)
                or self._verdict(slot) is None
            ):
                slot.leased = True
                slot.serial += 1
                self._in_use += 1
                if self._leak_timeout is not None:
                    self._watch_leak(slot)
                return slot.resource
            self._unpop_idle(slot)
        return (await self._checkout(timeout)).resource

    @presents_as_async_generator
    def lease(self) -> AsyncLease[T]:
        """``async with pool.lease() as resource:``, also ``Depends(pool.lease)``.

        Acquires on enter (with the pool's ``acquire_timeout``) and gives the
        resource back on exit, through ``reset``, also when the block raised.
        If the block was cancelled (or interrupted by a ``BaseException``) the
        resource may be mid-operation: it is discarded, not pooled.
        """
        return AsyncLease(self)

    async def _checkout(self, timeout: float | _Default | None = DEFAULT) -> Slot[T]:
        loop = self._bind_loop()
        if timeout is DEFAULT:
            timeout = self._acquire_timeout
        else:
            timeout = check_optional_seconds("timeout", timeout)
        loop_time = self._loop_time
        started = loop_time()
        deadline = None if timeout is None else started + timeout
        while True:
            if self._closed:
                raise PoolClosed(f"pool {self._name!r} is closed; call open() to use it again")
            if self._idle:
                slot = self._pop_idle()
            elif self._reserve():
                return await self._create_within(deadline, timeout)
            else:
                # Queue for a grant; at the deadline ``_deadlines`` sets EXPIRED.
                waiter = self._new_future()
                self._waiters.append(waiter)
                self._waiting += 1
                if deadline is not None:
                    self._deadlines.add(loop, deadline, waiter, self._waiting)
                try:
                    grant = await waiter
                except BaseException:
                    self._note_wait(loop_time() - started)
                    self._leave_queue(waiter)
                    raise
                self._note_wait(loop_time() - started)
                if grant is CREATE:
                    return await self._create_within(deadline, timeout)
                if grant is EXPIRED or grant is CLOSED:
                    raise self._refusal(grant, timeout)
                slot = grant
            if self._plain or (self._recycle_only and self._clock() < slot.expires_at):
                self._lend(slot)
                return slot
            if await self._usable_within(slot, deadline, timeout):
                self._lend(slot)
                return slot
            started = loop_time()

    def _leave_queue(self, waiter: _Waiter) -> None:
        """The caller stopped waiting (cancelled): pass on what it was granted, if any."""
        if not waiter.done() or waiter.cancelled():
            waiter.cancel()
            self._abandon()
            return
        grant = waiter.result()
        if grant is EXPIRED:
            self._abandon()
        else:
            for stale in self._give_back(grant):
                self._spawn_release(stale.resource)

    def _refusal(self, grant: _Grant, timeout: float | None) -> PoolError:
        if grant is EXPIRED:
            self._abandon()
            return self._timed_out(timeout, "waiting")
        return PoolClosed(f"pool {self._name!r} was closed while waiting for a resource")

    def _timed_out(self, timeout: float | None, phase: str) -> PoolTimeout:
        self._timeouts += 1
        return self._timeout_error(timeout, phase)

    async def _create_within(self, deadline: float | None, timeout: float | None) -> Slot[T]:
        try:
            async with asyncio.timeout_at(deadline) as scope:
                return await self._create(lend=True)
        except TimeoutError:
            if not scope.expired():
                raise
            raise self._timed_out(timeout, "creating") from None

    async def _usable_within(
        self, slot: Slot[T], deadline: float | None, timeout: float | None
    ) -> bool:
        try:
            async with asyncio.timeout_at(deadline) as scope:
                return await self._usable(slot)
        except TimeoutError:
            if not scope.expired():
                raise
            raise self._timed_out(timeout, "checking") from None

    async def _create(self, *, lend: bool) -> Slot[T]:
        """Run the factory under a reservation made by the caller."""
        try:
            made = self._factory()
            if not inspect.isawaitable(made):
                raise TypeError(
                    f"pool {self._name!r}: the factory returned {type(made).__name__}, not an "
                    "awaitable; AsyncPool needs an async factory (use ThreadPool for plain ones)"
                )
            resource = await made
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._factory_errors += 1
            self._unreserve()
            raise
        slot = self._register(resource, self._clock())
        if lend:
            self._lend(slot)
        return slot

    async def _usable(self, slot: Slot[T]) -> bool:
        """Decide on an idle slot in hand; a stale one is released, never lost."""
        reason = self._verdict(slot)
        if reason == "check":
            assert self._check is not None
            try:
                ok = await self._check(slot.resource)
            except Exception:
                logger.warning("pool %r: check raised", self._name, exc_info=True)
                ok = False
            except BaseException:
                # Interrupted mid-check: its state is unknown, so it is not pooled again.
                self._check_failures += 1
                self._destroy(slot)
                raise
            if ok:
                return True
        elif reason is None:
            return True
        self._count_stale(reason)
        self._destroy(slot)
        return False

    # -- return ---------------------------------------------------------------

    async def release(self, resource: T) -> None:
        """Give a leased resource back (through ``reset`` if the pool has one).

        Raises:
            PoolError: ``resource`` is not leased from this pool (never was, is
                idle, or was already released); nothing changes.
        """
        slot = self._slots.get(id(resource))
        if slot is None or slot.resource is not resource or not slot.leased:
            slot = self._leased_slot(resource)
        if not self._plain_return:
            await self._return(slot)
            return
        # The hot path (twin: ``AsyncLease.__aexit__``): no reset, no test.
        slot.leased = False
        self._in_use -= 1
        self._released += 1
        if slot.generation != self._generation:
            self._destroy(slot)
            return
        if self._stamp_returns:
            slot.returned_at = self._clock()
        if not (self._waiting and self._hand_over(slot)):
            self._idle.append(slot)

    async def _return(self, slot: Slot[T]) -> None:
        """Return a leased slot through ``reset`` and the ``alive`` test."""
        self._unlend(slot)
        resource = slot.resource
        try:
            if self._reset is not None:
                pending = self._reset(resource)
                if pending is not None:
                    async with asyncio.timeout(self._releaser_timeout):
                        await pending
            if self._alive is not None and not self._alive(resource):
                self._check_failures += 1
                self._destroy(slot)
                return
        except Exception:
            self._reset_errors += 1
            logger.warning(
                "pool %r: reset failed; discarding the resource", self._name, exc_info=True
            )
            self._destroy(slot)
            return
        except BaseException:
            self._destroy(slot)
            raise
        if not self._accept(slot):
            self._destroy(slot)
        for expired in self._expired_idle():
            self._spawn_release(expired.resource)

    async def discard(self, resource: T) -> None:
        """Release a leased resource you know is broken, instead of pooling it.

        Its capacity is freed once the releaser finished. Inside ``lease()``
        the lease's exit then does nothing.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        slot = self._leased_slot(resource)
        self._unlend(slot)
        self._discarded += 1
        await asyncio.shield(self._destroy(slot))

    def _discard_slot(self, slot: Slot[T]) -> None:
        self._unlend(slot)
        self._discarded += 1
        self._destroy(slot)

    def _destroy(self, slot: Slot[T]) -> asyncio.Task[BaseException | None]:
        self._retire(slot)
        return self._spawn_release(slot.resource)

    def _spawn_release(
        self, resource: T, *, report: bool = True
    ) -> asyncio.Task[BaseException | None]:
        # A task of its own, so a cancelled caller cannot interrupt the releaser.
        task = asyncio.get_running_loop().create_task(self._run_releaser(resource, report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run_releaser(self, resource: T, report: bool) -> BaseException | None:
        try:
            async with asyncio.timeout(self._releaser_timeout):
                done = self._releaser(resource)
                if not inspect.isawaitable(done):
                    raise TypeError(
                        f"pool {self._name!r}: the releaser returned {type(done).__name__}, "
                        "not an awaitable; AsyncPool needs an async releaser"
                    )
                await done
        except (Exception, asyncio.CancelledError) as exc:
            self._releaser_errors += 1
            error: BaseException = exc
            if isinstance(exc, TimeoutError):
                error = PoolError(
                    f"pool {self._name!r}: the releaser did not finish within "
                    f"{self._releaser_timeout} s (releaser_timeout)"
                )
            elif isinstance(exc, asyncio.CancelledError):
                error = PoolError(f"pool {self._name!r}: the releaser was cancelled")
            if report:
                logger.warning("pool %r: releasing a resource failed", self._name, exc_info=exc)
            return error
        finally:
            self._release_done()
        return None

    # -- lifecycle ------------------------------------------------------------

    async def prefill(self, count: int | None = None) -> None:
        """Create resources concurrently until ``min(count, pool_size)`` are idle.

        Stops early when the pool is full. Keeps what succeeded; each creation
        is bounded by ``acquire_timeout``.

        Raises:
            ExceptionGroup: the errors of the creations that failed.
            PoolClosed: the pool is closed.
        """
        self._bind_loop()
        if self._closed:
            raise PoolClosed(f"pool {self._name!r} is closed; call open() before prefill()")
        target = self._pool_size if count is None else min(check_pool_size(count), self._pool_size)
        wanted = target - len(self._idle)
        if wanted <= 0:
            return
        # Each creation reserves its capacity when it starts: one cancelled
        # before it ran holds none.
        results = await asyncio.gather(
            *(self._prefill_one() for _ in range(wanted)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            made = sum(1 for r in results if r is True)
            raise BaseExceptionGroup(
                f"pool {self._name!r}: prefill created {made} of {made + len(errors)} resources",
                errors,
            )

    async def _prefill_one(self) -> bool:
        """Create one idle resource; False if the pool was already full."""
        if not self._reserve():
            return False
        try:
            async with asyncio.timeout(self._acquire_timeout):
                slot = await self._create(lend=False)
        except TimeoutError:
            self._timeouts += 1
            raise PoolTimeout(
                f"pool {self._name!r}: creating a resource took more than "
                f"{self._acquire_timeout} s (acquire_timeout)"
            ) from None
        if not self._accept(slot):
            self._destroy(slot)
        return True

    async def dispose(self) -> None:
        """Release every idle resource now; leased ones are released on return.

        The pool stays open and starts afresh on the next acquire or prefill.
        Every resource is tried before errors are raised.

        Raises:
            ExceptionGroup: the releaser errors, one per failed resource.
        """
        self._bind_loop()
        self._generation += 1
        slots = self._take_all_idle()
        if not slots:
            return
        tasks = [self._spawn_release(slot.resource, report=False) for slot in slots]
        results = await asyncio.shield(asyncio.gather(*tasks))
        errors = [r for r in results if r is not None]
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._name!r}: {len(errors)} of {len(slots)} resources failed to release",
                errors,
            )

    async def close(self, timeout: float | None = 5.0) -> None:
        """Dispose, refuse acquires with ``PoolClosed``, wait for leases to return.

        Callers waiting now get ``PoolClosed``. Waits up to ``timeout`` seconds
        for leased resources to come back and be released; a lease returned
        later is still released, never pooled.

        Raises:
            ExceptionGroup: the releaser errors of the idle resources.
        """
        timeout = check_optional_seconds("timeout", timeout)
        loop = self._bind_loop()
        self._mark_closed()
        try:
            await self.dispose()
        finally:
            if self._live():
                drained: asyncio.Future[None] = loop.create_future()
                self._drain.append(drained)
                await asyncio.wait([drained], timeout=timeout)
                if self._live():
                    logger.warning(
                        "pool %r: closed with %d resources still leased; they will be "
                        "released when they come back",
                        self._name,
                        self._live(),
                    )

    def _drained(self) -> None:
        drain, self._drain = self._drain, []
        for future in drain:
            if not future.done():
                future.set_result(None)

    async def open(self) -> None:
        """Accept acquires again after ``close()``; a no-op on an open pool."""
        self._bind_loop()
        self._mark_open()

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
        """``FastAPI(lifespan=pool.lifespan)``: prefill on startup, close on shutdown."""
        return self._lifespan()

    @contextlib.asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with self:
            yield

    # -- flavour hooks ----------------------------------------------------------

    def _watch_leak(self, slot: Slot[T]) -> None:
        assert self._loop is not None
        assert self._leak_timeout is not None
        slot.leak_timer = self._loop.call_later(
            self._leak_timeout, self._report_leak, slot, slot.serial, call_site()
        )

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = _get_running_loop()
        if loop is self._loop:
            return loop
        old = self._loop
        if old is not None and (self._live() or self._waiting):
            if not old.is_closed():
                raise PoolError(
                    f"pool {self._name!r} has {self._live()} live resources bound to another "
                    "event loop that is still open; dispose() or close() it in that loop "
                    "first, or make one pool per loop"
                )
            # That loop is gone: its resources cannot be touched any more.
            self._forget()
        self._loop = loop
        # The loop's clock and futures, without a Python frame when they are asyncio's own.
        base = asyncio.BaseEventLoop
        self._loop_time = time.monotonic if type(loop).time is base.time else loop.time
        self._new_future = (
            functools.partial(_Future, loop=loop)
            if type(loop).create_future is base.create_future
            else loop.create_future
        )
        return loop

    def _forget(self) -> None:
        super()._forget()
        self._tasks.clear()
        self._drain.clear()
        self._deadlines.clear()

    def _after_fork(self) -> None:
        self._forget()
        self._loop = None


AsyncPool.__module__ = "escudeiro_pools"
