"""The thread pool: its state's decisions under one lock, the blocking done outside it."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import Any, Generic, TypeVar

from escudeiro_pools import _fork
from escudeiro_pools._errors import PoolClosed, PoolTimeout
from escudeiro_pools._events import Observers
from escudeiro_pools._lease import ThreadLease, ends_broken, presents_as_async_generator
from escudeiro_pools._options import FOREVER, check_count, check_not_async, check_timeout, configure
from escudeiro_pools._protocol import (
    CLOSED,
    CREATE,
    DEFAULT,
    UNAVAILABLE,
    WAIT,
    Grant,
    PoolObserver,
    _Default,
)
from escudeiro_pools._site import call_site
from escudeiro_pools._slot import CHECKING, GONE, LEASED, RESETTING, Slot
from escudeiro_pools._state import PoolState
from escudeiro_pools._stats import LeaseInfo, PoolStats
from escudeiro_pools._thread_async import AsyncFace, Claim
from escudeiro_pools._thread_calls import ThreadCalls
from escudeiro_pools._waiters import LoopWaiter, ThreadWaiter

__all__ = ["ThreadPool"]

T = TypeVar("T")
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
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._state: PoolState[T] = PoolState(options, self)
        self._events = Observers(options.name, options.clock)
        self._calls = ThreadCalls(
            options.name, options.clock, factory, releaser, alive, check, setup, reset
        )
        self._has_setup = setup is not None
        self._discard_on = options.discard_on
        self._acquire_timeout = options.acquire_timeout
        self._plain_lend = True
        self._refresh_lend_path()
        self._maintainer: threading.Thread | None = None
        self._face = AsyncFace(self)
        _fork.register(self)

    def _refresh_lend_path(self) -> None:
        self._plain_lend = not (
            self._has_setup or self._state.leak_timeout is not None or self._events.active
        )

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
        if timeout is not DEFAULT:
            timeout = check_timeout("timeout", timeout)
        with self._lock:
            grant: Grant | ThreadWaiter = self._state.checkout()
            if type(grant) is Slot and grant.state == LEASED and self._plain_lend:
                return grant
            if self._maintainer is None and self._state.maintained:
                self._start_maintainer()
            if grant is WAIT:
                grant = ThreadWaiter()
                self._state.enqueue(grant, None, grant.started)
        return partial(self._finish, grant, timeout)

    def _finish(self, grant: Grant | ThreadWaiter, timeout: float | _Default | None) -> Slot[T]:
        if isinstance(timeout, _Default):
            timeout = self._acquire_timeout
        started = grant.started if type(grant) is ThreadWaiter else _monotonic()
        deadline = None if timeout is None else started + timeout
        return self._realize(grant, started, deadline, timeout, None)

    def _realize(
        self,
        grant: Grant | ThreadWaiter,
        started: float,
        deadline: float | None,
        timeout: float | None,
        claim: Claim | None,
    ) -> Slot[T]:
        """Turn a grant into a leased slot: wait, create, check, or replace a stale one.

        Blocking; ``claim`` is set when an asyncio caller awaits this in a thread.
        """
        # What observers are told this caller waited: nothing if it was lent at once.
        since = None if isinstance(grant, Slot) and grant.state == LEASED else started
        while True:
            if type(grant) is ThreadWaiter:
                grant = self._wait(grant, deadline, timeout)
                if type(grant) is Slot and grant.state == LEASED and self._plain_lend:
                    return grant
            if grant is CLOSED or grant is UNAVAILABLE:
                raise self._refusal(grant)
            if grant is CREATE:
                slot = self._create_lent(deadline, timeout)
            else:
                assert isinstance(grant, Slot)
                slot = grant
                if slot.state == CHECKING:
                    slot = self._check(slot)
            if slot.state == LEASED:
                return self._deliver(slot, since, claim)
            # A stale slot: this caller releases it, then gets what comes next.
            grant = self._replace(slot, deadline, timeout, claim)

    def _wait(self, waiter: ThreadWaiter, deadline: float | None, timeout: float | None) -> Grant:
        interrupted: BaseException | None = None
        try:
            if deadline is None:
                woken = waiter.signal.acquire()
            else:
                woken = waiter.signal.acquire(timeout=max(0.0, deadline - _monotonic()))
            if woken:
                # Granted (the grant is set before the signal): no need for the lock.
                grant: Grant = waiter.grant
                return grant
        except BaseException as exc:
            interrupted = exc
        stale = None
        with self._lock:
            grant = waiter.grant
            if waiter.grant is None:  # still queued: leave the queue
                waiter.left = True
                self._state.left_queue(waiter.started)
                if interrupted is None:
                    raise self._state.timeout_error(timeout, "waiting")
            elif interrupted is not None:
                stale = self._state.refuse(grant)
        if interrupted is not None:
            if stale is not None:
                self._release_all([stale])
            raise interrupted
        return grant

    def _refusal(self, grant: Grant) -> Exception:
        if grant is CLOSED:
            return PoolClosed(f"pool {self._state.name!r} was closed while waiting for a resource")
        with self._lock:
            return self._state.unavailable_error(counted=True)

    def _deliver(self, slot: Slot[T], since: float | None, claim: Claim | None) -> Slot[T]:
        """A slot lent to this caller: run ``setup``, record the site, tell the
        observers; on any failure it is released and the error raised. For an
        asyncio caller (``claim``) the site and observers wait for its loop."""
        try:
            if self._has_setup:
                self._calls.setup(slot.resource)
            if claim is None:
                self._lent_here(slot, since)
        except BaseException:
            with self._lock:
                stale = self._state.end_lease(slot, slot.serial, "broken")
            if stale is not None:
                self._release_all([stale])
            raise
        if claim is None:
            return slot
        with self._lock:
            if claim.wanted:
                claim.slot = slot
                return slot
            # The asyncio caller left while this thread worked for it.
            stale = self._state.refuse(slot)
        if stale is not None:
            self._release_all([stale])
        return slot

    def _lent_here(self, slot: Slot[T], since: float | None) -> None:
        """Record where ``slot`` was lent (the calling frame's site) and tell the observers."""
        if self._state.leak_timeout is not None:
            site = call_site()
            with self._lock:
                self._state.watch(slot, site)
        if self._events.active:
            self._events.lent(slot.resource, 0.0 if since is None else _monotonic() - since)

    def _create_lent(self, deadline: float | None, timeout: float | None) -> Slot[T]:
        """Run the factory under a reservation; lend the new slot if still in time."""
        try:
            resource, seconds = self._calls.create()
        except BaseException as exc:
            with self._lock:
                self._state.creation_failed(exc)
            raise
        with self._lock:
            in_time = deadline is None or _monotonic() <= deadline
            slot = self._state.creation_done(resource, for_caller=in_time)
            late = None if in_time else self._state.timeout_error(timeout, "creating")
        if slot.state == GONE:
            self._release_all([slot])
        self._created(seconds, slot)
        if late is not None:
            raise late
        return slot

    def _created(self, seconds: float, slot: Slot[T]) -> None:
        if self._events.active:
            try:
                self._events.created(seconds)
            except BaseException:
                if slot.state == LEASED:
                    with self._lock:
                        stale = self._state.end_lease(slot, slot.serial, "broken")
                    if stale is not None:
                        self._release_all([stale])
                raise

    def _check(self, slot: Slot[T]) -> Slot[T]:
        try:
            fate = self._calls.inspect(slot)
        except BaseException:
            # Interrupted mid-check: its state is unknown, so it is not pooled again.
            with self._lock:
                stale = self._state.checked(slot, "check" if slot.needs_check else "alive")
            self._release_all([stale])
            raise
        with self._lock:
            return self._state.checked(slot, fate)

    def _replace(
        self, slot: Slot[T], deadline: float | None, timeout: float | None, claim: Claim | None
    ) -> Grant | ThreadWaiter:
        """Release a stale ``slot``, then take what its capacity allows (``replaced``)."""
        interrupted: BaseException | None = None
        error = None
        try:
            error = self._calls.release(slot.resource)
        except BaseException as exc:
            interrupted = exc
        try:
            with self._lock:
                wanted = interrupted is None and (claim is None or claim.wanted)
                in_time = deadline is None or _monotonic() <= deadline
                failed = error is not None or interrupted is not None
                grant: Grant | ThreadWaiter = self._state.replaced(
                    wanted and in_time, failed=failed
                )
                if wanted and not in_time:
                    raise self._state.timeout_error(timeout, "releasing a stale resource")
                if grant is WAIT and wanted:
                    grant = ThreadWaiter()
                    self._state.enqueue(grant, None, grant.started)
        finally:
            self._destroyed(slot)
        if interrupted is not None:
            raise interrupted
        if not wanted:
            raise PoolClosed(f"pool {self._state.name!r}: the caller left")
        return grant

    # -- return ---------------------------------------------------------------

    def release(self, resource: T) -> None:
        """Give a leased resource back (through ``reset`` if the pool has one).

        Raises:
            PoolError: ``resource`` is not leased from this pool; nothing changes.
        """
        with self._lock:
            slot = self._state.give_back(resource)
        if self._events.active:
            self._events.returned(resource)
        if slot is not None:
            self._after_return(slot)

    def _end(self, slot: Slot[T], serial: int, exc_type: type[BaseException] | None) -> None:
        """A lease's exit (blocking through ``reset``)."""
        back = self._end_now(slot, serial, exc_type)
        if back is not None:
            self._after_return(back)

    def _end_now(
        self, slot: Slot[T], serial: int, exc_type: type[BaseException] | None
    ) -> Slot[T] | None:
        """End the lease ``serial`` of ``slot`` in the books; the slot if it needs
        ``reset`` or the releaser next (a no-op if the lease already ended)."""
        fate = "broken" if ends_broken(exc_type, self._discard_on) else ""
        with self._lock:
            ended = slot.state == LEASED and slot.serial == serial
            back = self._state.end_lease(slot, serial, fate)
        if ended and self._events.active:
            self._events.returned(slot.resource)
        return back

    def _after_return(self, slot: Slot[T]) -> None:
        """A returned slot that needs work: ``alive``/``reset``, or the releaser."""
        back: Slot[T] | None = slot
        if slot.state == RESETTING:
            try:
                fate = self._calls.restore(slot)
            except BaseException:
                # Interrupted mid-reset: the resource's state is unknown, so it is released.
                with self._lock:
                    stale = self._state.returned(slot, "broken")
                if stale is not None:
                    self._release_all([stale])
                raise
            with self._lock:
                back = self._state.returned(slot, fate)
        if back is not None:
            self._release_all([back])

    def discard(self, resource: T) -> None:
        """Release a leased resource you know is broken, instead of pooling it.

        Blocks while the releaser runs.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        with self._lock:
            slot = self._state.discard(resource)
        if self._events.active:
            self._events.returned(resource)
        self._release_all([slot])

    def detach(self, resource: T) -> None:
        """Take a leased resource out of the pool for good, without releasing it.

        The caller now owns it; its capacity is free at once, counted in
        ``stats().detached``. Inside ``lease()`` the exit then does nothing.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        with self._lock:
            self._state.detach(resource)
        if self._events.active:
            self._events.returned(resource)

    def _release_all(self, slots: list[Slot[T]]) -> list[Exception]:
        """Release retired slots one by one; returns the releaser errors.

        An interrupt (``KeyboardInterrupt``) in one releaser does not stop
        the others: every slot is released and its capacity freed, then the
        first interrupt is raised.
        """
        errors: list[Exception] = []
        interrupt: BaseException | None = None
        for slot in slots:
            error = None
            try:
                error = self._calls.release(slot.resource)
            except BaseException as exc:
                interrupt = interrupt or exc
                error = None
                with self._lock:
                    self._state.release_done(failed=True)
            else:
                with self._lock:
                    self._state.release_done(failed=error is not None)
            try:
                self._destroyed(slot)
            except BaseException as exc:
                interrupt = interrupt or exc
            if error is not None:
                errors.append(error)
        if interrupt is not None:
            raise interrupt
        return errors

    def _destroyed(self, slot: Slot[T]) -> None:
        if self._events.active:
            self._events.destroyed(slot.resource, slot.fate)

    def _release_aside(self, slot: Slot[T]) -> None:
        """Release ``slot`` in a thread of its own, without waiting for it."""
        threading.Thread(
            target=self._release_all, args=([slot],), name=f"{self._state.name} releaser"
        ).start()

    # -- the asyncio face (ThreadLease's async with, FastAPI) ---------------------

    def _checkout_async(self) -> Coroutine[Any, Any, Slot[T]]:
        """``async with``'s enter: the coroutine that gets a leased slot on the loop."""
        return self._face.checkout()

    def _end_async(
        self, slot: Slot[T], serial: int, exc_type: type[BaseException] | None
    ) -> Coroutine[Any, Any, None]:
        """``async with``'s exit: the coroutine that ends the lease."""
        return self._face.end(slot, serial, exc_type)

    def _lend_or_queue(self, waiter: Callable[[], LoopWaiter]) -> Grant | LoopWaiter:
        """Under the lock: the state's grant, or ``waiter()`` queued for one."""
        with self._lock:
            grant = self._state.checkout()
            if type(grant) is Slot and grant.state == LEASED:
                return grant
            if self._maintainer is None and self._state.maintained:
                self._start_maintainer()
            if grant is not WAIT:
                return grant
            queued = waiter()
            self._state.enqueue(queued, None, queued.started)
            return queued

    def _after_loop_wait(
        self, waiter: LoopWaiter, left: BaseException | None, timeout: float | None
    ) -> Grant:
        """An asyncio caller's wait ended (``left``: timed out or cancelled)."""
        stale = None
        with self._lock:
            grant: Grant | None = waiter.grant
            if grant is None:
                if not waiter.left:  # still queued (not refused by a closed loop): leave
                    waiter.left = True
                    self._state.left_queue(waiter.started)
                if isinstance(left, TimeoutError):
                    raise self._state.timeout_error(timeout, "waiting") from None
            elif left is not None and not isinstance(left, TimeoutError):
                stale = self._state.refuse(grant)
        if left is not None and not isinstance(left, TimeoutError):
            if stale is not None:
                self._release_aside(stale)
            raise left
        assert grant is not None
        return grant

    def _leave_claim(self, claim: Claim) -> None:
        """An asyncio caller left while a thread worked for it: hand back what it got."""
        with self._lock:
            claim.wanted = False
            stale = None if claim.slot is None else self._state.refuse(claim.slot)
        if stale is not None:
            self._release_aside(stale)

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
            self._start_maintainer()
        if not planned:
            return
        with ThreadPoolExecutor(max_workers=min(planned, 16)) as executor:
            futures = [executor.submit(self._create_placed, True) for _ in range(planned)]
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._state.name!r}: prefill created {planned - len(errors)} of "
                f"{planned} resources",
                errors,
            )

    def _create_placed(self, prefill: bool) -> None:
        """Create one resource for the pool under a reservation already made."""
        try:
            resource, seconds = self._calls.create()
        except BaseException as exc:
            with self._lock:
                self._state.creation_failed(exc, prefill=prefill)
            raise
        with self._lock:
            slot = self._state.creation_done(resource, for_caller=False, prefill=prefill)
        if slot.state == GONE:
            self._release_all([slot])
        self._created(seconds, slot)

    def dispose(self) -> None:
        """Release every idle resource now; leased ones are released on return.

        Every resource is tried before errors are raised.

        Raises:
            ExceptionGroup: the releaser errors, one per failed resource.
        """
        with self._lock:
            slots = self._state.take_all_idle()
        self._raise_release_errors(slots, self._release_all(slots))

    def _raise_release_errors(self, slots: list[Slot[T]], errors: list[Exception]) -> None:
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._state.name!r}: {len(errors)} of {len(slots)} resources "
                "failed to release",
                errors,
            )

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

        with self._lock:
            slots = self._state.close()
            maintainer = self._maintainer
            self._changed.notify_all()
        if maintainer is not None and maintainer is not threading.current_thread():
            maintainer.join(left())
        errors = self._release_all(slots)
        with self._lock:
            if not self._changed.wait_for(lambda: not self._live(), left()):
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
            self._start_maintainer()

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
            self._start_maintainer()
            ready = self._changed.wait_for(lambda: state.closed or state.ready(), timeout)
            if state.closed:
                raise state.closed_error()
            if not ready:
                raise PoolTimeout(
                    f"pool {state.name!r}: {len(state.slots)} of min_size={state.min_size} "
                    f"resources exist after {timeout} s "
                    f"({state.breaker.last_error() or 'no error'})"
                )

    def resize(self, pool_size: int | None = None, *, min_size: int | None = None) -> None:
        """Change ``pool_size`` and/or ``min_size`` now; see ``AsyncPool.resize``."""
        with self._lock:
            slots = self._state.resize(pool_size, min_size)
            self._wake_maintainer()
        self._raise_release_errors(slots, self._release_all(slots))

    def add_observer(self, observer: PoolObserver) -> None:
        """See ``AsyncPool.add_observer``."""
        with self._lock:
            self._events.add(observer)
            for slot in self._state.slots.values():
                if slot.state == LEASED:
                    self._events.lent_already(slot.resource)
            self._state.set_tracking(self._events.active)
            self._refresh_lend_path()

    def remove_observer(self, observer: PoolObserver) -> None:
        """See ``AsyncPool.remove_observer``."""
        with self._lock:
            self._events.remove(observer)
            self._state.set_tracking(self._events.active)
            self._refresh_lend_path()

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

    # -- signals from the state (under the lock) and the maintainer thread ----------

    def _wake_maintainer(self) -> None:
        if self._maintainer is None:
            self._start_maintainer()
        else:
            self._changed.notify_all()

    def _progressed(self) -> None:
        self._changed.notify_all()

    def _drained(self) -> None:
        self._changed.notify_all()

    def _start_maintainer(self) -> None:
        """Under the lock: start the maintainer thread if the pool needs one."""
        if self._maintainer is None and self._state.needs_maintainer():
            thread = threading.Thread(
                target=self._maintain_loop, name=f"{self._state.name}-maintainer", daemon=True
            )
            self._maintainer = thread
            thread.start()

    def _maintain_loop(self) -> None:
        me = threading.current_thread()
        state = self._state
        while True:
            with self._lock:
                if self._maintainer is not me:
                    return  # forked, or replaced
                if not state.needs_maintainer():
                    self._maintainer = None
                    return
                plan = state.maintain()
                if not (plan.creations or plan.retire or plan.leaks):
                    delay = None if plan.wake is None else max(0.0, plan.wake - state.clock())
                    self._changed.wait(None if delay is None else min(delay, FOREVER))
                    continue
            for slot in plan.leaks:
                logger.warning(
                    "pool %r: a resource has been leased for more than %g s; acquired at %s",
                    state.name,
                    state.leak_timeout,
                    slot.site or "<unknown>",
                )
            # The maintainer survives whatever its work raises: nothing else restarts it.
            try:
                self._release_all([slot for slot, _ in plan.retire])
            except BaseException:
                logger.exception("pool %r: the maintainer's releaser was interrupted", state.name)
            for _ in range(plan.creations):
                try:
                    self._create_placed(False)
                except BaseException:
                    level = logging.DEBUG if state.breaker.is_open else logging.WARNING
                    logger.log(
                        level,
                        "pool %r: the maintainer failed to create a resource",
                        state.name,
                        exc_info=True,
                    )

    # pragma: no mutate start
    def _keepalive(self) -> object:  # pragma: no cover - runs in the child
        return list(self._state.slots.values())

    def _after_fork(self) -> None:  # pragma: no cover - runs in the child (tests/test_fork.py)
        # The lock may have been held by a thread that does not exist in the child.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._maintainer = None
        self._state.forget()

    # pragma: no mutate end


ThreadPool.__module__ = "escudeiro_pools"
