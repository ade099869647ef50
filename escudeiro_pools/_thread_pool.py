"""The thread pool: the same bookkeeping as ``AsyncPool``, under one lock."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

from escudeiro_pools._core import CLOSED, CREATE, DEFAULT, PoolCore, Slot, _Default, logger
from escudeiro_pools._errors import PoolClosed
from escudeiro_pools._lease import ThreadLease, presents_as_generator
from escudeiro_pools._options import (
    check_callable,
    check_exception_types,
    check_name,
    check_not_async,
    check_optional_seconds,
    check_pool_size,
    check_seconds,
    is_lifo,
)
from escudeiro_pools._site import call_site

__all__ = ["ThreadPool"]

T = TypeVar("T")
_Grant = Any  # Slot[T] | CREATE | CLOSED


class _Waiter:
    """A thread waiting for a grant; ``signal`` is released when it gets one."""

    __slots__ = ("abandoned", "grant", "lent", "pool", "signal", "started")

    def __init__(self, pool: ThreadPool[Any]) -> None:
        self.pool = pool
        self.signal = threading.Lock()
        self.signal.acquire()
        self.grant: _Grant = None
        self.abandoned = False
        self.lent = False
        self.started = time.monotonic()

    def done(self) -> bool:
        return self.abandoned

    def set_result(self, grant: _Grant) -> None:
        """Called under the pool's lock. A resource that needs no check is lent
        right here, so the woken thread need not take the lock again."""
        pool = self.pool
        pool._note_wait(time.monotonic() - self.started)
        if isinstance(grant, Slot) and pool._fresh(grant):
            pool._lend(grant)
            self.lent = True
        self.grant = grant
        self.signal.release()


class ThreadPool(PoolCore[T, _Waiter], Generic[T]):
    """A bounded, thread-safe pool of resources for blocking code.

    The parameters are ``AsyncPool``'s, with plain callables: ``factory()``,
    ``releaser(resource)``, ``check(resource) -> bool`` and ``reset(resource)``
    run in the calling thread, outside the pool's lock; ``queue_class`` is
    ``queue.LifoQueue`` (default) or ``queue.Queue``. A factory cannot be
    interrupted: if it returns after the acquire deadline, its resource is
    pooled for the next caller and this call raises ``PoolTimeout``.
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
        acquire_timeout: float | None = 30.0,
        check: Callable[[T], bool] | None = None,
        check_after_idle: float = 0.5,
        alive: Callable[[T], bool] | None = None,
        reset: Callable[[T], object] | None = None,
        max_idle: float | None = None,
        leak_timeout: float | None = None,
        discard_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = check_callable("factory", factory)
        self._releaser = check_callable("releaser", releaser)
        self._check = check_callable("check", check, allow_none=True)
        self._reset = check_callable("reset", reset, allow_none=True)
        check_callable("alive", alive, allow_none=True)
        for option, value in (
            ("factory", factory),
            ("releaser", releaser),
            ("check", check),
            ("reset", reset),
            ("alive", alive),
        ):
            check_not_async(option, value)
        self._acquire_timeout = check_optional_seconds("acquire_timeout", acquire_timeout)
        super().__init__(
            name=check_name(name, "ThreadPool"),
            pool_size=check_pool_size(pool_size),
            lifo=is_lifo(queue_class, queue.LifoQueue, queue.Queue, "ThreadPool"),
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
        self._lock = threading.Lock()
        self._drain = threading.Condition(self._lock)

    # -- acquire ------------------------------------------------------------

    def acquire(self, timeout: float | _Default | None = DEFAULT) -> T:
        """Lease a resource, blocking up to ``timeout`` seconds in all.

        Same contract as ``AsyncPool.acquire``: returns the resource itself.

        Raises:
            PoolTimeout: the deadline passed; nothing is lost.
            PoolClosed: the pool is closed, or closed while this call waited.
            Exception: whatever the factory raised.
        """
        slot = self._lend_idle()
        if slot is not None:
            return slot.resource
        return self._checkout(timeout).resource

    @presents_as_generator
    def lease(self) -> ThreadLease[T]:
        """``with pool.lease() as resource:``, also ``Depends(pool.lease)``.

        Acquires on enter, gives back on exit (through ``reset``), also when
        the block raised an ``Exception``; after a ``BaseException``
        (``KeyboardInterrupt``) the resource is discarded.
        """
        return ThreadLease(self)

    def _checkout(self, timeout: float | _Default | None = DEFAULT) -> Slot[T]:
        if isinstance(timeout, _Default):
            timeout = self._acquire_timeout
        else:
            timeout = check_optional_seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        phase = "waiting"
        while True:
            waiter = None
            with self._lock:
                if self._closed:
                    raise PoolClosed(f"pool {self._name!r} is closed; call open() to use it again")
                grant: _Grant
                if self._idle:
                    grant = self._pop_idle()
                elif self._reserve():
                    grant = CREATE
                else:
                    waiter = _Waiter(self)
                    self._enqueue(waiter)
            if waiter is not None:
                phase = "waiting"
                grant = self._wait(waiter, deadline, timeout)
                if waiter.lent:
                    return grant  # type: ignore[no-any-return]
            if grant is CREATE:
                phase = "creating"
                slot = self._create()
                with self._lock:
                    if deadline is not None and time.monotonic() > deadline:
                        if not self._accept(slot):
                            self._retire(slot)
                            stale = True
                        else:
                            stale = False
                        self._timeouts += 1
                    else:
                        self._lend(slot)
                        return slot
                if stale:
                    self._release_now(slot.resource)
                raise self._timeout_error(timeout, phase)
            phase = "checking"
            if self._usable(grant):
                with self._lock:
                    self._lend(grant)
                return grant  # type: ignore[no-any-return]

    def _wait(self, waiter: _Waiter, deadline: float | None, timeout: float | None) -> _Grant:
        interrupted: BaseException | None = None
        try:
            if deadline is None:
                waiter.signal.acquire()
            else:
                waiter.signal.acquire(timeout=max(0.0, deadline - waiter.started))
        except BaseException as exc:
            interrupted = exc
        else:
            if waiter.lent:
                return waiter.grant
        stale: list[Slot[T]] = []
        with self._lock:
            grant = waiter.grant
            if grant is None:
                self._note_wait(time.monotonic() - waiter.started)
                waiter.abandoned = True
                self._abandon()
                if interrupted is None:
                    self._timeouts += 1
                    raise self._timeout_error(timeout, "waiting")
            elif interrupted is not None:
                if waiter.lent:
                    self._unlend(grant)
                stale = self._give_back(grant)
        for slot in stale:
            self._release_now(slot.resource)
        if interrupted is not None:
            raise interrupted
        if grant is CLOSED:
            raise PoolClosed(f"pool {self._name!r} was closed while waiting for a resource")
        return grant

    def _create(self) -> Slot[T]:
        """Run the factory under a reservation made by the caller."""
        try:
            resource = self._factory()
        except BaseException as exc:
            with self._lock:
                if isinstance(exc, Exception):
                    self._factory_errors += 1
                self._unreserve()
            raise
        with self._lock:
            return self._register(resource, self._clock())

    def _usable(self, slot: Slot[T]) -> bool:
        reason = self._verdict(slot)
        if reason == "check":
            assert self._check is not None
            try:
                ok = self._check(slot.resource)
            except Exception:
                logger.warning("pool %r: check raised", self._name, exc_info=True)
                ok = False
            except BaseException:
                with self._lock:
                    self._check_failures += 1
                self._destroy(slot)
                raise
            if ok:
                return True
        elif reason is None:
            return True
        with self._lock:
            self._count_stale(reason)
        self._destroy(slot)
        return False

    # -- return ---------------------------------------------------------------

    def release(self, resource: T) -> None:
        """Give a leased resource back (through ``reset`` if the pool has one).

        Raises:
            PoolError: ``resource`` is not leased from this pool; nothing changes.
        """
        slot = self._slots.get(id(resource))
        if slot is None or slot.resource is not resource or not slot.leased:
            with self._lock:
                slot = self._leased_slot(resource)
        if not self._put_back(slot, slot.serial, pooled=True, strict=True):
            self._restore(slot, pooled=True)

    # With no thread waiting, the two hot paths hold the lock without calling
    # Python functions: the interpreter switches threads only at calls and loop
    # back-edges, so no thread is preempted while holding the lock (which would
    # convoy the others behind it).

    def _lend_idle(self) -> Slot[T] | None:
        """Lend the next idle slot if it needs no check (``_fresh``, inlined); else None."""
        with self._lock:
            if not self._idle:
                return None
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
                return slot
            self._unpop_idle(slot)
            return None

    def _put_back(self, slot: Slot[T], serial: int, *, pooled: bool, strict: bool = False) -> bool:
        """End the lease ``serial`` of ``slot``; False if ``_restore`` must finish it.

        A lease that already ended (released or discarded inside a ``with``
        block) is left alone, or with ``strict`` is a ``PoolError``.
        """
        with self._lock:
            if not slot.leased or slot.serial != serial:
                if strict:
                    self._leased_slot(slot.resource)  # raises: released twice at once
                return True
            slot.leased = False
            self._in_use -= 1
            self._released += 1
            if slot.leak_timer is not None:
                slot.leak_timer.cancel()
                slot.leak_timer = None
            if not pooled:
                self._discarded += 1
                return False
            if not self._plain_return:
                return False
            if slot.generation == self._generation:
                if self._stamp_returns:
                    slot.returned_at = self._clock()
                self._idle.append(slot)
                if self._waiting:
                    self._serve()
                return True
            self._retire(slot)
        self._release_now(slot.resource)
        return True

    def _restore(self, slot: Slot[T], *, pooled: bool) -> None:
        """Finish a return off the hot path: ``reset``, ``alive``, or a discard."""
        resource = slot.resource
        if pooled:
            try:
                if self._reset is not None:
                    self._reset(resource)
                if self._alive is not None and not self._alive(resource):
                    with self._lock:
                        self._check_failures += 1
                    pooled = False
            except Exception:
                logger.warning(
                    "pool %r: reset failed; discarding the resource", self._name, exc_info=True
                )
                with self._lock:
                    self._reset_errors += 1
                pooled = False
            except BaseException:
                self._destroy(slot)
                raise
        with self._lock:
            if pooled and self._accept(slot):
                stale = self._expired_idle()
            else:
                self._retire(slot)
                stale = [slot]
        for old in stale:
            self._release_now(old.resource)

    def discard(self, resource: T) -> None:
        """Release a leased resource you know is broken, instead of pooling it.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        with self._lock:
            slot = self._leased_slot(resource)
            self._unlend(slot)
            self._discarded += 1
        self._destroy(slot)

    def _destroy(self, slot: Slot[T]) -> None:
        with self._lock:
            self._retire(slot)
        self._release_now(slot.resource)

    def _release_now(self, resource: T, *, report: bool = True) -> BaseException | None:
        """Run the releaser for a retired resource, then free its capacity."""
        try:
            self._releaser(resource)
        except Exception as exc:
            if report:
                logger.warning("pool %r: releasing a resource failed", self._name, exc_info=True)
            with self._lock:
                self._releaser_errors += 1
            return exc
        finally:
            with self._lock:
                self._release_done()
        return None

    # -- lifecycle ------------------------------------------------------------

    def prefill(self, count: int | None = None) -> None:
        """Create resources concurrently until ``min(count, pool_size)`` are idle.

        Raises:
            ExceptionGroup: the errors of the creations that failed.
            PoolClosed: the pool is closed.
        """
        target = self._pool_size if count is None else min(check_pool_size(count), self._pool_size)
        with self._lock:
            if self._closed:
                raise PoolClosed(f"pool {self._name!r} is closed; call open() before prefill()")
            reserved = 0
            while reserved < target - len(self._idle) and self._reserve():
                reserved += 1
        if not reserved:
            return
        with ThreadPoolExecutor(max_workers=min(reserved, 16)) as executor:
            futures = [executor.submit(self._prefill_one) for _ in range(reserved)]
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._name!r}: prefill created {reserved - len(errors)} of "
                f"{reserved} resources",
                errors,
            )

    def _prefill_one(self) -> None:
        slot = self._create()
        with self._lock:
            if self._accept(slot):
                return
            self._retire(slot)
        self._release_now(slot.resource)

    def dispose(self) -> None:
        """Release every idle resource now; leased ones are released on return.

        Raises:
            ExceptionGroup: the releaser errors, one per failed resource.
        """
        with self._lock:
            self._generation += 1
            slots = self._take_all_idle()
        errors = [
            e for e in (self._release_now(s.resource, report=False) for s in slots) if e is not None
        ]
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._name!r}: {len(errors)} of {len(slots)} resources failed to release",
                errors,
            )

    def close(self, timeout: float | None = 5.0) -> None:
        """Dispose, refuse acquires with ``PoolClosed``, wait for leases to return.

        Raises:
            ExceptionGroup: the releaser errors of the idle resources.
        """
        timeout = check_optional_seconds("timeout", timeout)
        with self._lock:
            self._mark_closed()
        try:
            self.dispose()
        finally:
            with self._lock:
                if not self._drain.wait_for(lambda: not self._live(), timeout):
                    logger.warning(
                        "pool %r: closed with %d resources still leased; they will be "
                        "released when they come back",
                        self._name,
                        self._live(),
                    )

    def open(self) -> None:
        """Accept acquires again after ``close()``; a no-op on an open pool."""
        with self._lock:
            self._mark_open()

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

    # -- flavour hooks ----------------------------------------------------------

    def _drained(self) -> None:
        self._drain.notify_all()

    def _watch_leak(self, slot: Slot[T]) -> None:
        assert self._leak_timeout is not None
        timer = threading.Timer(
            self._leak_timeout, self._report_leak_locked, (slot, slot.serial, call_site())
        )
        timer.daemon = True
        slot.leak_timer = timer
        timer.start()

    def _report_leak_locked(self, slot: Slot[T], serial: int, site: str) -> None:
        with self._lock:
            self._report_leak(slot, serial, site)

    def _after_fork(self) -> None:
        # The lock may have been held by a thread that does not exist in the child.
        self._lock = threading.Lock()
        self._drain = threading.Condition(self._lock)
        self._forget()


ThreadPool.__module__ = "escudeiro_pools"
