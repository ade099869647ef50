"""The thread pool: the core's decisions under one lock, the blocking done outside it."""

from __future__ import annotations

import asyncio
import inspect
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

from escudeiro_pools._core import PoolCore, logger
from escudeiro_pools._errors import PoolClosed, PoolTimeout
from escudeiro_pools._lease import ThreadLease, presents_as_async_generator
from escudeiro_pools._options import (
    FOREVER,
    check_count,
    check_not_async,
    check_timeout,
    configure,
)
from escudeiro_pools._protocol import (
    CLOSED,
    CREATE,
    DEFAULT,
    UNAVAILABLE,
    WAIT,
    PoolObserver,
    _Default,
)
from escudeiro_pools._site import call_site
from escudeiro_pools._slot import CHECKING, IDLE, LEASED, RESETTING, Slot
from escudeiro_pools._stats import LeaseInfo, PoolStats
from escudeiro_pools._waiters import LoopWaiter, ThreadWaiter

__all__ = ["ThreadPool"]

T = TypeVar("T")
_Waiter = ThreadWaiter | LoopWaiter


class _Claim:
    """An asyncio caller waits for blocking work done for it in a thread.

    If it leaves (cancelled) first, the thread hands the result back to the pool.
    """

    __slots__ = ("slot", "wanted")

    def __init__(self) -> None:
        self.wanted = True
        self.slot: Slot[Any] | None = None


class ThreadPool(PoolCore[T, _Waiter], Generic[T]):
    """A bounded, thread-safe pool of resources for blocking code.

    Its parameters mean what ``AsyncPool``'s do, with plain callables:
    ``factory()``, ``releaser(resource)``, ``check(resource) -> bool`` and
    ``reset(resource)`` run in the calling thread, outside the pool's lock
    (``alive`` runs under it and must not call the pool); ``queue_class`` is
    ``queue.LifoQueue`` (default) or ``queue.Queue``. There is no
    ``releaser_timeout``: a blocking call cannot be interrupted. For the same
    reason a factory that returns after the acquire deadline has its
    resource pooled for the next caller while this call raises
    ``PoolTimeout``. The maintainer (``min_size``, ``max_idle``, the outage
    probe) and the leak watch run in one daemon thread, only while needed.
    """

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
        options = configure(
            "ThreadPool",
            factory=factory,
            releaser=releaser,
            queue_class=queue_class,
            lifo=queue.LifoQueue,
            fifo=queue.Queue,
            pool_size=pool_size,
            min_size=min_size,
            pool_recycle=pool_recycle,
            recycle_jitter=recycle_jitter,
            max_uses=max_uses,
            name=name,
            acquire_timeout=acquire_timeout,
            check=check,
            check_after_idle=check_after_idle,
            alive=alive,
            setup=setup,
            reset=reset,
            max_idle=max_idle,
            releaser_timeout=None,
            leak_timeout=leak_timeout,
            discard_on=discard_on,
            max_waiting=max_waiting,
            fail_fast_after=fail_fast_after,
            retry_backoff=retry_backoff,
            clock=clock,
        )
        for option, value in (
            ("factory", factory),
            ("releaser", releaser),
            ("check", check),
            ("reset", reset),
            ("setup", setup),
            ("alive", alive),
        ):
            check_not_async(option, value)
        super().__init__(options)
        self._factory = factory
        self._releaser = releaser
        self._check = check
        self._setup = setup
        self._reset = reset
        self._acquire_timeout = options.acquire_timeout
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._maintainer: threading.Thread | None = None

    # -- acquire ------------------------------------------------------------

    def acquire(self, timeout: float | _Default | None = DEFAULT) -> T:
        """Lease a resource, blocking up to ``timeout`` seconds in all.

        Same contract as ``AsyncPool.acquire``: returns the resource itself.

        Raises:
            PoolTimeout: the deadline passed; nothing is lost.
            PoolClosed: the pool is closed, or closed while this call waited.
            PoolBusy: ``max_waiting`` callers already wait.
            PoolUnavailable: the factory keeps failing and no idle resource is left.
            Exception: whatever the factory raised.
        """
        if timeout is not DEFAULT:
            timeout = check_timeout("timeout", timeout)
        with self._lock:
            # inline: slot = self._lend_idle()
            slot = verdict = None
            if self._idle:
                slot = self._pop_idle()
                if (
                    self._plain
                    or (self._recycle_only and self._clock() < slot.expires_at)
                    or (verdict := self._verdict(slot, alive=True)) is None
                ):
                    slot.state = LEASED
                    slot.serial += 1
                    self._in_use += 1
                    if self._tracking:
                        self._track(slot)
                else:
                    self._unpop_idle(slot)
                    slot = None
            # end inline
            if slot is None:
                grant = self._next_step(verdict)
        if slot is None:
            slot = self._finish(grant, timeout)
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

    def _next_step(self, verdict: str | None = None) -> Any:
        """Under the lock, when no idle slot could be lent at once: the caller's
        grant (``_checkout``, given ``verdict``), or a ``ThreadWaiter`` it is queued as."""
        if self._maintainer is None and self._maintained:
            self._start_maintainer()
        grant: Any = self._checkout(verdict)
        if grant is WAIT:
            grant = ThreadWaiter(self)
            self._waiters.append((grant, None))
            self._waiting += 1
        return grant

    def _finish(self, grant: Any, timeout: float | _Default | None) -> Slot[T]:
        """Outside the lock: wait for a queued caller's grant, then realize it."""
        if isinstance(timeout, _Default):
            timeout = self._acquire_timeout
        if type(grant) is ThreadWaiter:
            started = grant.started
            deadline = None if timeout is None else started + timeout
            grant = self._wait(grant, deadline, timeout)
            if (
                type(grant) is Slot
                and grant.state == LEASED
                and not self._tracking
                and not self._has_setup
            ):
                return grant
        else:
            started = time.monotonic()
            deadline = None if timeout is None else started + timeout
        return self._realize(grant, started, deadline, timeout, None)

    def _wait(self, waiter: ThreadWaiter, deadline: float | None, timeout: float | None) -> Any:
        interrupted: BaseException | None = None
        try:
            if deadline is None:
                woken = waiter.signal.acquire()
            else:
                woken = waiter.signal.acquire(timeout=max(0.0, deadline - time.monotonic()))
            if woken:
                # Granted (the grant is set before the signal): no need for the lock.
                grant = waiter.grant
                return grant if type(grant) is Slot else self._granted(grant)
        except BaseException as exc:
            interrupted = exc
        stale = None
        with self._lock:
            grant = waiter.grant
            if grant is None and not waiter.left:  # still queued: leave the queue
                waiter.left = True
                self._note_wait(time.monotonic() - waiter.started)
                self._abandon()
                if interrupted is None:
                    raise self._timeout_error(timeout, "waiting")
            elif interrupted is not None:
                stale = self._refused(grant)
        if interrupted is not None:
            if stale is not None:
                self._release_all([stale])
            raise interrupted
        return self._granted(grant)

    def _granted(self, grant: Any) -> Any:
        if grant is CLOSED:
            raise PoolClosed(f"pool {self._name!r} was closed while waiting for a resource")
        if grant is UNAVAILABLE:
            with self._lock:
                raise self._unavailable_error(counted=True)
        return grant

    def _realize(
        self,
        grant: Any,
        started: float,
        deadline: float | None,
        timeout: float | None,
        claim: _Claim | None,
    ) -> Slot[T]:
        """Turn a grant into a leased slot: create, check, or replace a stale one.

        Blocking; ``claim`` is set when an asyncio caller awaits this in a thread.
        """
        while True:
            if grant is CREATE:
                slot = self._create_lent(deadline, timeout)
            else:
                slot = grant
                if slot.state == CHECKING:
                    slot = self._check_blocking(slot)
            if slot.state == LEASED:
                return self._deliver(slot, started, claim)
            # A stale slot: this caller releases it, then creates in its place.
            self._replace_blocking(slot, deadline, timeout, claim)
            grant = CREATE

    def _deliver(self, slot: Slot[T], started: float, claim: _Claim | None) -> Slot[T]:
        if self._has_setup:
            self._setup_blocking(slot)
        stale = None
        with self._lock:
            if claim is None:
                if self._tracking:
                    self._track(slot, time.monotonic() - started)
            elif claim.wanted:
                claim.slot = slot
            else:  # the asyncio caller left while this thread worked for it
                stale = self._refused(slot)
        if stale is not None:
            self._release_all([stale])
        return slot

    def _setup_blocking(self, slot: Slot[T]) -> None:
        """Run ``setup`` on a slot lent to this caller; on any failure it is released."""
        assert self._setup is not None
        try:
            pending = self._setup(slot.resource)
            if inspect.isawaitable(pending):
                _close_awaitable(pending)
                raise TypeError(
                    f"pool {self._name!r}: setup returned an awaitable; ThreadPool needs a "
                    "plain setup"
                )
        except BaseException:
            with self._lock:
                stale = self._take_back(slot, broken=True)
            assert stale is not None
            self._release_all([stale])
            raise

    def _create_lent(self, deadline: float | None, timeout: float | None) -> Slot[T]:
        """Run the factory under a reservation; lend the new slot if still in time."""
        slot = self._create()
        with self._lock:
            if deadline is None or time.monotonic() <= deadline:
                self._lend(slot)
                return slot
            stale = self._place(slot)
            error = self._timeout_error(timeout, "creating")
        if stale is not None:
            self._release_all([stale])
        raise error

    def _create(self) -> Slot[T]:
        """Run the factory under a reservation made by the caller; the slot is not placed."""
        began = self._clock() if self._observers else 0.0
        try:
            resource = self._factory()
            if inspect.isawaitable(resource):
                _close_awaitable(resource)
                raise TypeError(
                    f"pool {self._name!r}: the factory returned {type(resource).__name__}, an "
                    "awaitable; ThreadPool needs a plain factory (use AsyncPool for async ones)"
                )
        except BaseException as exc:
            with self._lock:
                self._unreserve(exc)
            raise
        with self._lock:
            slot = self._register(resource)
            if self._observers:
                self._note_created(self._clock() - began)
            self._changed.notify_all()
            return slot

    def _check_blocking(self, slot: Slot[T]) -> Slot[T]:
        assert self._check is not None
        try:
            ok: object = self._check(slot.resource)
            if inspect.isawaitable(ok):
                _close_awaitable(ok)
                raise TypeError(
                    f"pool {self._name!r}: check returned an awaitable; ThreadPool needs a "
                    "plain check"
                )
        except Exception:
            logger.warning("pool %r: check raised", self._name, exc_info=True)
            ok = False
        except BaseException:
            # Interrupted mid-check: its state is unknown, so it is not pooled again.
            with self._lock:
                stale = self._checked(slot, False)
            self._release_all([stale])
            raise
        with self._lock:
            return self._checked(slot, bool(ok))

    def _replace_blocking(
        self, slot: Slot[T], deadline: float | None, timeout: float | None, claim: _Claim | None
    ) -> None:
        """Release a stale ``slot`` and keep its capacity to create in its place."""
        interrupted: BaseException | None = None
        try:
            self._run_releaser(slot.resource)
        except BaseException as exc:
            interrupted = exc
        with self._lock:
            wanted = interrupted is None and (claim is None or claim.wanted)
            in_time = deadline is None or time.monotonic() <= deadline
            if self._replace(wanted and in_time):
                return
            if interrupted is not None:
                raise interrupted
            if not wanted:
                raise PoolClosed(f"pool {self._name!r}: the caller left")
            if not in_time:
                raise self._timeout_error(timeout, "releasing a stale resource")
            raise self._closed_error() if self._closed else self._unavailable_error()

    # -- the asyncio face (ThreadLease's async with, FastAPI) ---------------------

    async def _obtain_async(self) -> Slot[T]:
        """``_obtain`` for an asyncio caller: wait on its loop, block only in a thread."""
        started = time.monotonic()
        timeout = self._acquire_timeout
        deadline = None if timeout is None else started + timeout
        loop = asyncio.get_running_loop()
        with self._lock:
            # inline: slot = self._lend_idle()
            slot = verdict = None
            if self._idle:
                slot = self._pop_idle()
                if (
                    self._plain
                    or (self._recycle_only and self._clock() < slot.expires_at)
                    or (verdict := self._verdict(slot, alive=True)) is None
                ):
                    slot.state = LEASED
                    slot.serial += 1
                    self._in_use += 1
                    if self._tracking:
                        self._track(slot)
                else:
                    self._unpop_idle(slot)
                    slot = None
            # end inline
            if slot is not None:
                return slot
            self._start_maintainer()
            grant = self._checkout(verdict)
            if grant is WAIT:
                waiter = LoopWaiter(self, loop)
                self._enqueue(waiter)
        if grant is WAIT:
            grant = await self._wait_async(waiter, deadline, timeout)
        if not (isinstance(grant, Slot) and grant.state == LEASED) or self._has_setup:
            claim = _Claim()
            work = loop.run_in_executor(
                None, self._realize, grant, started, deadline, timeout, claim
            )
            try:
                grant = await work
            except BaseException:  # cancelled, or closed with a loop that is gone
                with self._lock:
                    claim.wanted = False
                    stale = None if claim.slot is None else self._refused(claim.slot)
                if stale is not None:
                    self._release_aside(stale)
                raise
        if self._tracking:
            with self._lock:
                self._track(grant, time.monotonic() - started)
        return grant

    async def _wait_async(
        self, waiter: LoopWaiter, deadline: float | None, timeout: float | None
    ) -> Any:
        left: BaseException | None = None
        try:
            async with asyncio.timeout(None if deadline is None else deadline - time.monotonic()):
                await waiter.future
        except BaseException as exc:
            left = exc
        stale = None
        with self._lock:
            grant = waiter.grant
            if grant is None:
                if not waiter.left:  # still queued (not refused by a closed loop): leave
                    waiter.left = True
                    self._note_wait(time.monotonic() - waiter.started)
                    self._abandon()
                if isinstance(left, TimeoutError):
                    raise self._timeout_error(timeout, "waiting") from None
            elif left is not None and not isinstance(left, TimeoutError):
                stale = self._refused(grant)
        if left is not None and not isinstance(left, TimeoutError):
            if stale is not None:
                self._release_aside(stale)
            raise left
        return self._granted(grant)

    async def _end_lease_async(self, slot: Slot[T], serial: int, *, broken: bool) -> None:
        if not broken and self._plain_return:
            with self._lock:
                if slot.state != LEASED or slot.serial != serial:
                    return
                # inline: stale = self._return_plain(slot)
                stale = None
                self._in_use -= 1
                self._released += 1
                if slot.generation != self._generation:
                    self._retire(slot)
                    stale = slot
                elif self._waiting:
                    stale = self._hand_over(slot)
                else:
                    if self._stamp_returns:
                        slot.returned_at = self._clock()
                    slot.state = IDLE
                    self._idle.append(slot)
                # end inline
            if stale is not None:
                await self._in_thread(self._release_all, [stale])
            return
        await self._in_thread(self._end_lease, slot, serial, broken)

    def _release_aside(self, slot: Slot[T]) -> None:
        """Release ``slot`` off an asyncio caller's path, without waiting: in its
        loop's executor, or in a thread of its own when no loop runs (a task
        of a closed loop being collected)."""
        try:
            asyncio.get_running_loop().run_in_executor(None, self._release_all, [slot])
        except RuntimeError:
            threading.Thread(
                target=self._release_all, args=([slot],), name=f"{self._name} releaser"
            ).start()

    async def _in_thread(self, function: Callable[..., object], *args: Any) -> None:
        # Shielded: a cancelled caller does not interrupt the reset or releaser running there.
        loop = asyncio.get_running_loop()
        await asyncio.shield(loop.run_in_executor(None, function, *args))

    # -- return ---------------------------------------------------------------

    def release(self, resource: T) -> None:
        """Give a leased resource back (through ``reset`` if the pool has one).

        Raises:
            PoolError: ``resource`` is not leased from this pool; nothing changes.
        """
        slot = self._slots.get(id(resource))
        if slot is None or slot.resource is not resource or slot.state != LEASED:
            with self._lock:
                slot = self._leased_slot(resource)
        if self._plain_return:
            with self._lock:
                if slot.state != LEASED:
                    self._leased_slot(resource)  # raises: released twice at once
                # inline: stale = self._return_plain(slot)
                stale = None
                self._in_use -= 1
                self._released += 1
                if slot.generation != self._generation:
                    self._retire(slot)
                    stale = slot
                elif self._waiting:
                    stale = self._hand_over(slot)
                else:
                    if self._stamp_returns:
                        slot.returned_at = self._clock()
                    slot.state = IDLE
                    self._idle.append(slot)
                # end inline
            if stale is not None:
                self._release_all([stale])
            return
        self._end_lease(slot, slot.serial, False, True)

    def _end_lease(self, slot: Slot[T], serial: int, broken: bool, strict: bool = False) -> None:
        """End the lease ``serial`` of ``slot`` off the hot path: reset, alive, or discard.

        A lease that already ended (released or discarded inside a ``with``
        block) is left alone, or with ``strict`` is a ``PoolError``.
        """
        with self._lock:
            if slot.state != LEASED or slot.serial != serial:
                if strict:
                    self._leased_slot(slot.resource)  # raises: released twice at once
                return
            stale = self._take_back(slot, broken=broken)
        if slot.state == RESETTING:
            stale = self._reset_blocking(slot)
        if stale is not None:
            self._release_all([stale])

    def _reset_blocking(self, slot: Slot[T]) -> Slot[T] | None:
        assert self._reset is not None
        try:
            pending = self._reset(slot.resource)
            if inspect.isawaitable(pending):
                _close_awaitable(pending)
                raise TypeError(
                    f"pool {self._name!r}: reset returned an awaitable; ThreadPool needs a "
                    "plain reset"
                )
            ok: bool | None = True
        except Exception:
            logger.warning(
                "pool %r: reset failed; discarding the resource", self._name, exc_info=True
            )
            ok = False
        except BaseException:
            # Interrupted mid-reset: the resource's state is unknown, so it is released.
            with self._lock:
                stale = self._reset_done(slot, None)
            assert stale is not None
            self._release_all([stale])
            raise
        with self._lock:
            return self._reset_done(slot, ok)

    def discard(self, resource: T) -> None:
        """Release a leased resource you know is broken, instead of pooling it.

        Blocks while the releaser runs.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        with self._lock:
            stale = self._take_back(self._leased_slot(resource), broken=True)
        assert stale is not None
        self._release_all([stale])

    def detach(self, resource: T) -> None:
        """Take a leased resource out of the pool for good, without releasing it.

        The caller now owns it; its capacity is free at once, counted in
        ``stats().detached``. Inside ``lease()`` the exit then does nothing.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        with self._lock:
            self._detach(self._leased_slot(resource))

    def _run_releaser(self, resource: T) -> Exception | None:
        """Run the releaser of a retired resource (capacity is given back by the caller)."""
        try:
            done = self._releaser(resource)
            if inspect.isawaitable(done):
                _close_awaitable(done)
                raise TypeError(
                    f"pool {self._name!r}: the releaser returned {type(done).__name__}, an "
                    "awaitable; ThreadPool needs a plain releaser"
                )
        except Exception as exc:
            logger.warning("pool %r: releasing a resource failed", self._name, exc_info=True)
            with self._lock:
                self._releaser_errors += 1
            return exc
        return None

    def _release_all(self, slots: list[Slot[T]]) -> list[Exception]:
        """Release retired slots one by one; returns the releaser errors.

        An interrupt (``KeyboardInterrupt``) in one releaser does not stop
        the others: every slot is released and its capacity freed, then the
        first interrupt is raised.
        """
        errors: list[Exception] = []
        interrupt: BaseException | None = None
        for slot in slots:
            try:
                error = self._run_releaser(slot.resource)
            except BaseException as exc:
                error = None
                with self._lock:
                    self._releaser_errors += 1
                interrupt = interrupt or exc
            finally:
                with self._lock:
                    self._release_done()
            if error is not None:
                errors.append(error)
        if interrupt is not None:
            raise interrupt
        return errors

    # -- lifecycle ------------------------------------------------------------

    def prefill(self, count: int | None = None) -> None:
        """Create resources concurrently until ``min(count, pool_size)`` are idle.

        ``count`` (default ``pool_size``) counts the idle resources and the
        creations of other ``prefill`` calls in flight.

        Raises:
            ExceptionGroup: the errors of the creations that failed.
            PoolClosed: the pool is closed.
        """
        if count is not None:
            check_count("count", count, hint="the idle resources prefill aims for")
        with self._lock:
            if self._closed:
                raise PoolClosed(f"pool {self._name!r} is closed; call open() before prefill()")
            self._start_maintainer()
            planned = self._plan_prefill(count)
        if not planned:
            return
        with ThreadPoolExecutor(max_workers=min(planned, 16)) as executor:
            futures = [executor.submit(self._create_placed, True) for _ in range(planned)]
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._name!r}: prefill created {planned - len(errors)} of "
                f"{planned} resources",
                errors,
            )

    def _create_placed(self, prefill: bool) -> None:
        """Create one resource for the pool under a reservation already made."""
        try:
            slot = self._create()
        finally:
            if prefill:
                with self._lock:
                    self._prefilling -= 1
        with self._lock:
            stale = self._place(slot)
        if stale is not None:
            self._release_all([stale])

    def dispose(self) -> None:
        """Release every idle resource now; leased ones are released on return.

        Every resource is tried before errors are raised.

        Raises:
            ExceptionGroup: the releaser errors, one per failed resource.
        """
        with self._lock:
            slots = self._take_all_idle()
        self._raise_release_errors(slots, self._release_all(slots))

    def _raise_release_errors(self, slots: list[Slot[T]], errors: list[Exception]) -> None:
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._name!r}: {len(errors)} of {len(slots)} resources failed to release",
                errors,
            )

    def close(self, timeout: float | None = 5.0) -> None:
        """Close in one step: refuse acquires, release idle resources, wait for leases.

        Waiting threads get ``PoolClosed``; the maintainer stops. Waits up to
        ``timeout`` seconds for leased resources to come back and be
        released; a lease returned later is still released, never pooled.

        Raises:
            ExceptionGroup: the releaser errors of the idle resources.
        """
        timeout = check_timeout("timeout", timeout)
        with self._lock:
            slots = self._mark_closed()
            maintainer = self._maintainer
            self._changed.notify_all()
        if maintainer is not None and maintainer is not threading.current_thread():
            maintainer.join(timeout)
        errors = self._release_all(slots)
        with self._lock:
            drained = self._changed.wait_for(lambda: not self._live(), timeout)
            if not drained:
                logger.warning(
                    "pool %r: closed with %d resources still leased; they will be "
                    "released when they come back",
                    self._name,
                    self._live(),
                )
        self._raise_release_errors(slots, errors)

    def _live(self) -> int:
        return len(self._slots) + self._creating + self._releasing

    def open(self) -> None:
        """Accept acquires again after ``close()``; a no-op on an open pool."""
        with self._lock:
            self._mark_open()
            self._start_maintainer()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until ``min_size`` resources exist (the maintainer creates them).

        Raises:
            PoolTimeout: they did not within ``timeout`` seconds (``None``: no limit).
            PoolClosed: the pool is closed.
        """
        timeout = check_timeout("timeout", timeout)
        with self._lock:
            if self._closed:
                raise self._closed_error()
            self._start_maintainer()
            if not self._changed.wait_for(lambda: len(self._slots) >= self._min_size, timeout):
                raise PoolTimeout(
                    f"pool {self._name!r}: {len(self._slots)} of min_size={self._min_size} "
                    f"resources exist after {timeout} s "
                    f"({self._breaker.last_error() or 'no error'})"
                )

    def resize(self, pool_size: int | None = None, *, min_size: int | None = None) -> None:
        """Change ``pool_size`` and/or ``min_size`` now; see ``AsyncPool.resize``."""
        with self._lock:
            slots = self._resize(pool_size, min_size)
            self._nudge()
        self._raise_release_errors(slots, self._release_all(slots))

    def add_observer(self, observer: PoolObserver) -> None:
        """See ``AsyncPool.add_observer``."""
        with self._lock:
            super().add_observer(observer)

    def remove_observer(self, observer: PoolObserver) -> None:
        """See ``AsyncPool.remove_observer``."""
        with self._lock:
            super().remove_observer(observer)

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's gauges and cumulative counters."""
        with self._lock:
            return self._stats()

    def leases(self) -> tuple[LeaseInfo, ...]:
        """One ``LeaseInfo`` per resource leased now, oldest first (with tracking on)."""
        with self._lock:
            return self._lease_infos()

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

    # -- the maintainer and the leak watch (one daemon thread) ---------------------

    def _needs_maintainer(self) -> bool:
        return super()._needs_maintainer() or (self._leak_timeout is not None and not self._closed)

    def _start_maintainer(self) -> None:
        """Under the lock: start the maintainer thread if the pool needs one."""
        if self._maintainer is None and self._needs_maintainer():
            thread = threading.Thread(
                target=self._maintain_loop, name=f"{self._name}-maintainer", daemon=True
            )
            self._maintainer = thread
            thread.start()

    def _nudge(self) -> None:
        if self._maintainer is None:
            self._start_maintainer()
        else:
            self._changed.notify_all()

    def _maintain_loop(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                if self._maintainer is not me:
                    return  # forked, or replaced
                if not self._needs_maintainer():
                    self._maintainer = None
                    return
                creations, retired, wake_at = self._maintain()
                leak_at = self._watch_leaks() if self._leak_timeout is not None else None
                if not creations and not retired:
                    wakes = [w for w in (wake_at, leak_at) if w is not None]
                    delay = max(0.0, min(wakes) - self._clock()) if wakes else None
                    self._changed.wait(None if delay is None else min(delay, FOREVER))
                    continue
            self._release_all(retired)
            for _ in range(creations):
                try:
                    self._create_placed(False)
                except Exception:
                    self._log_maintenance_failure()

    def _watch_leaks(self) -> float | None:
        """Report leases held too long (once each); when to look again."""
        assert self._leak_timeout is not None
        now = self._clock()
        wake = math.inf
        for slot in self._slots.values():
            # A slot lent by a thread working for an asyncio caller has no site
            # until that caller records it: its lease is watched from then on.
            if slot.state != LEASED or slot.leak_timer == slot.serial or slot.site is None:
                continue
            due = slot.leased_at + self._leak_timeout
            if due <= now:
                slot.leak_timer = slot.serial  # reported
                self._report_leak(slot, slot.serial)
            else:
                wake = min(wake, due)
        return None if wake == math.inf else wake

    def _watch(self, slot: Slot[T]) -> None:
        """Under the lock: record where ``slot`` was lent; the maintainer thread watches."""
        slot.site = call_site()
        self._nudge()

    def _drained(self) -> None:
        self._changed.notify_all()

    def _after_fork(self) -> None:  # pragma: no cover - runs in the child (tests/test_fork.py)
        # The lock may have been held by a thread that does not exist in the child.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._maintainer = None
        self._forget()


def _close_awaitable(value: object) -> None:
    """Close a coroutine nobody will await, so it does not warn 'never awaited'."""
    close = getattr(value, "close", None)
    if inspect.iscoroutine(value) and close is not None:
        close()


ThreadPool.__module__ = "escudeiro_pools"
