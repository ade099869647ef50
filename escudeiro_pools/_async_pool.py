"""The asyncio pool: its state's decisions, with the awaiting done here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, TypeVar

from escudeiro_pools import _fork
from escudeiro_pools._async_calls import AsyncCalls
from escudeiro_pools._binding import Binding
from escudeiro_pools._errors import PoolClosed, PoolError, PoolTimeout
from escudeiro_pools._events import Observers
from escudeiro_pools._lease import AsyncLease, ends_broken, presents_as_async_generator
from escudeiro_pools._options import check_count, check_timeout, configure
from escudeiro_pools._protocol import (
    CLOSED,
    CREATE,
    DEFAULT,
    EXPIRED,
    WAIT,
    Grant,
    PoolObserver,
    _Default,
    _Token,
)
from escudeiro_pools._site import call_site
from escudeiro_pools._slot import CHECKING, GONE, LEASED, RESETTING, Slot
from escudeiro_pools._state import PoolState
from escudeiro_pools._stats import LeaseInfo, PoolStats

__all__ = ["AsyncPool"]

T = TypeVar("T")
_Waiter = asyncio.Future[Any]

_get_running_loop = asyncio.get_running_loop
_monotonic = time.monotonic
logger = logging.getLogger("escudeiro_pools")


class _Claim:
    """A caller waits for the releaser of a stale slot, to get what comes after it."""

    __slots__ = ("error", "grant", "wanted")

    def __init__(self) -> None:
        self.wanted = True
        self.grant: Grant | None = None
        self.error: PoolError | None = None


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
        self._state: PoolState[T] = PoolState(options, self)
        self._events = Observers(options.name, options.clock)
        self._calls = AsyncCalls(
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
        self._has_setup = setup is not None
        self._discard_on = options.discard_on
        self._acquire_timeout = options.acquire_timeout
        # A leased slot from the state is the caller's as it is: no setup, no
        # site to record, no observer to tell.
        self._plain_lend = True
        self._refresh_lend_path()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._binding: Binding | None = None
        self._dead_bindings: list[Binding] = []
        _fork.register(self)

    def _refresh_lend_path(self) -> None:
        self._plain_lend = not (
            self._has_setup or self._state.leak_timeout is not None or self._events.active
        )

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
        if timeout is not DEFAULT:
            timeout = check_timeout("timeout", timeout)
        if self._loop is not _get_running_loop():
            self._bind_loop()
        grant = self._state.checkout()
        if type(grant) is Slot and grant.state == LEASED and self._plain_lend:
            return grant
        return self._obtain(grant, timeout)

    async def _obtain(self, grant: Grant, timeout: float | _Default | None) -> Slot[T]:
        """Turn ``grant`` into a leased slot: wait, create, check, or replace a stale one."""
        if isinstance(timeout, _Default):
            timeout = self._acquire_timeout
        binding = self._binding
        assert binding is not None
        state = self._state
        started = _monotonic()
        deadline = None
        if timeout is not None:
            deadline = (started if binding.monotonic else binding.time()) + timeout
        # What observers are told this caller waited: nothing if it was lent at once.
        since = None if isinstance(grant, Slot) and grant.state == LEASED else started
        while True:
            if grant is WAIT:
                waiter = binding.new_future()
                state.enqueue(waiter, deadline, started)
                binding.deadlines.queued(deadline, waiter, started)
                try:
                    grant = await waiter
                except BaseException:
                    if self._on_loop(binding):
                        self._leave_queue(waiter, started)
                    raise
                if type(grant) is Slot and grant.state == LEASED and self._plain_lend:
                    return grant
                if type(grant) is _Token and grant is not CREATE:
                    raise self._refusal(grant, timeout)
            if grant is CREATE:
                slot = await self._create_lent(deadline, timeout)
            else:
                assert isinstance(grant, Slot)
                slot = grant
                if slot.state == CHECKING:
                    slot = await self._check_within(slot, deadline, timeout)
            if slot.state == LEASED:
                await self._deliver(slot, since, deadline, timeout)
                return slot
            # A stale slot: this caller releases it, then gets what comes next.
            grant = await self._replace_within(slot, deadline, timeout)

    def _refusal(self, grant: _Token, timeout: float | None) -> PoolError:
        if grant is EXPIRED:
            return self._state.timeout_error(timeout, "waiting")
        if grant is CLOSED:
            return PoolClosed(f"pool {self._state.name!r} was closed while waiting for a resource")
        return self._state.unavailable_error(counted=True)

    def _leave_queue(self, waiter: _Waiter, started: float) -> None:
        """The caller stopped waiting (cancelled): pass on what it was granted, if any."""
        if not waiter.done() or waiter.cancelled():
            waiter.cancel()
            self._state.left_queue(started)
            return
        stale = self._state.refuse(waiter.result())
        if stale is not None:
            self._spawn_release(stale)

    async def _deliver(
        self, slot: Slot[T], since: float | None, deadline: float | None, timeout: float | None
    ) -> None:
        """A slot lent to this caller: run ``setup``, record the site, tell the
        observers; on any failure the slot is released and the error raised."""
        binding = self._binding
        try:
            if self._has_setup:
                async with asyncio.timeout_at(deadline) as scope:
                    await self._calls.setup(slot.resource)
            if self._state.leak_timeout is not None:
                self._state.watch(slot, call_site())
            if self._events.active:
                self._events.lent(slot.resource, 0.0 if since is None else _monotonic() - since)
        except BaseException as exc:
            if self._on_loop(binding):
                stale = self._state.end_lease(slot, slot.serial, "broken")
                if stale is not None:
                    self._spawn_release(stale)
            if self._has_setup and isinstance(exc, TimeoutError) and scope.expired():
                raise self._state.timeout_error(timeout, "setting up") from None
            raise

    async def _create_lent(self, deadline: float | None, timeout: float | None) -> Slot[T]:
        """Run the factory under the capacity this caller reserved; lend what it made."""
        binding = self._binding
        try:
            async with asyncio.timeout_at(deadline) as scope:
                resource, seconds = await self._calls.create()
        except BaseException as exc:
            cut = isinstance(exc, TimeoutError) and scope.expired()
            if self._on_loop(binding):
                self._state.creation_failed(self._cut_off(timeout) if cut else exc)
            if cut:
                raise self._state.timeout_error(timeout, "creating") from None
            raise
        slot = self._state.creation_done(resource, for_caller=True)
        self._created(seconds, slot)
        return slot

    def _cut_off(self, timeout: float | None) -> PoolTimeout:
        """What the breaker records for a factory call cut off by a deadline."""
        return PoolTimeout(
            f"pool {self._state.name!r}: the factory did not finish within {timeout} s"
        )

    def _created(self, seconds: float, slot: Slot[T]) -> None:
        if self._events.active:
            try:
                self._events.created(seconds)
            except BaseException:
                if slot.state == LEASED:
                    stale = self._state.end_lease(slot, slot.serial, "broken")
                    if stale is not None:
                        self._spawn_release(stale)
                raise

    async def _check_within(
        self, slot: Slot[T], deadline: float | None, timeout: float | None
    ) -> Slot[T]:
        binding = self._binding
        try:
            async with asyncio.timeout_at(deadline) as scope:
                fate = await self._calls.inspect(slot)
        except BaseException as exc:
            # Interrupted mid-check: its state is unknown, so it is not pooled again.
            if self._on_loop(binding):
                self._spawn_release(
                    self._state.checked(slot, "check" if slot.needs_check else "alive")
                )
            if isinstance(exc, TimeoutError) and scope.expired():
                raise self._state.timeout_error(timeout, "checking") from None
            raise
        return self._state.checked(slot, fate)

    async def _replace_within(
        self, slot: Slot[T], deadline: float | None, timeout: float | None
    ) -> Grant:
        """Release a stale ``slot``, then take what its capacity allows (``replaced``)."""
        claim = _Claim()
        binding = self._binding
        task = self._spawn_release(slot, claim)
        try:
            async with asyncio.timeout_at(deadline) as scope:
                await asyncio.shield(task)
        except BaseException as exc:
            claim.wanted = False
            if claim.grant is not None and self._on_loop(binding):  # it finished just now
                stale = self._state.refuse(claim.grant)
                if stale is not None:
                    self._spawn_release(stale)
            if isinstance(exc, TimeoutError) and scope.expired():
                raise self._state.timeout_error(timeout, "releasing a stale resource") from None
            raise
        if claim.error is not None:
            raise claim.error
        assert claim.grant is not None
        return claim.grant

    # -- return ---------------------------------------------------------------

    async def release(self, resource: T) -> None:
        """Give a leased resource back (through ``reset`` if the pool has one).

        Waits for ``reset`` only; the releaser of a resource that is not
        pooled again runs in a task of its own.

        Raises:
            PoolError: ``resource`` is not leased from this pool (never was, is
                idle, or was already released); nothing changes.
        """
        if self._loop is not _get_running_loop():
            self._bind_loop()
        slot = self._state.give_back(resource)
        if self._events.active:
            self._events.returned(resource)
        if slot is not None:
            if slot.state == RESETTING:
                await self._restore(slot)
            else:
                self._spawn_release(slot)

    def _end(
        self, slot: Slot[T], serial: int, exc_type: type[BaseException] | None
    ) -> Coroutine[Any, Any, None] | None:
        """A lease's exit: None when done, or the coroutine that resets the resource."""
        fate = "broken" if ends_broken(exc_type, self._discard_on) else ""
        ended = slot.state == LEASED and slot.serial == serial
        slot_back = self._state.end_lease(slot, serial, fate)
        if ended and self._events.active:
            self._events.returned(slot.resource)
        if slot_back is None:
            return None
        if slot_back.state == RESETTING:
            return self._restore(slot_back)
        self._spawn_release(slot_back)
        return None

    async def _restore(self, slot: Slot[T]) -> None:
        """Run ``alive``/``reset`` on a returned slot, then pool or release it."""
        binding = self._binding
        try:
            fate = await self._calls.restore(slot)
        except BaseException:
            # Interrupted mid-reset: the resource's state is unknown, so it is released.
            if self._on_loop(binding):
                stale = self._state.returned(slot, "broken")
                if stale is not None:
                    self._spawn_release(stale)
            raise
        stale = self._state.returned(slot, fate)
        if stale is not None:
            self._spawn_release(stale)

    async def discard(self, resource: T) -> None:
        """Release a leased resource you know is broken, instead of pooling it.

        Waits for the releaser (in a task of its own: cancelling this call
        does not interrupt it). Inside ``lease()`` the lease's exit then does
        nothing.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        if self._loop is not _get_running_loop():
            self._bind_loop()
        slot = self._state.discard(resource)
        if self._events.active:
            self._events.returned(resource)
        await asyncio.shield(self._spawn_release(slot))

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

    def _spawn_release(
        self, slot: Slot[T], claim: _Claim | None = None, *, report: bool = True
    ) -> asyncio.Task[BaseException | None]:
        # A task of its own, so a cancelled caller cannot interrupt the releaser.
        binding = self._binding
        assert binding is not None
        return binding.spawn(self._run_releaser(slot, claim, report))

    async def _run_releaser(
        self, slot: Slot[T], claim: _Claim | None, report: bool
    ) -> BaseException | None:
        binding = self._binding
        error: BaseException | None = None
        try:
            error = await self._calls.release(slot.resource, report=report)
        finally:
            if not self._on_loop(binding):
                pass
            elif claim is None:
                self._state.release_done(failed=error is not None)
            else:
                try:
                    claim.grant = self._state.replaced(claim.wanted, failed=error is not None)
                except PoolError as refused:
                    claim.error = refused
        if self._events.active:
            self._events.destroyed(slot.resource, slot.fate)
        return error

    async def _release_all(self, slots: list[Slot[T]]) -> list[BaseException]:
        """Release retired slots concurrently; a cancelled caller leaves them running."""
        if not slots:
            return []
        tasks = [self._spawn_release(slot, report=False) for slot in slots]
        results = await asyncio.shield(asyncio.gather(*tasks))
        return [r for r in results if r is not None]

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
        binding = self._bind_loop()
        planned = self._state.plan_prefill(count)
        self._start_maintainer(binding)
        if not planned:
            return
        tasks = [self._spawn_creation(binding, prefill=True) for _ in range(planned)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._state.name!r}: prefill created {planned - len(errors)} of "
                f"{planned} resources",
                errors,
            )

    def _spawn_creation(self, binding: Binding, *, prefill: bool) -> asyncio.Task[None]:
        """Create one resource for the pool under a reservation already made."""
        started = [False]
        task = binding.spawn(self._create_placed(started, prefill))

        def never_started(task: asyncio.Task[None]) -> None:
            # Cancelled before its first step: its body never ran to use the reservation.
            if not started[0] and self._on_loop(binding):
                self._state.creation_failed(asyncio.CancelledError(), prefill=prefill)

        task.add_done_callback(never_started)
        return task

    async def _create_placed(self, started: list[bool], prefill: bool) -> None:
        started[0] = True
        binding = self._binding
        timeout = self._acquire_timeout
        try:
            async with asyncio.timeout(timeout) as scope:
                resource, seconds = await self._calls.create()
        except BaseException as exc:
            cut = isinstance(exc, TimeoutError) and scope.expired()
            error = self._cut_off(timeout) if cut else exc
            if self._on_loop(binding):
                self._state.creation_failed(error, prefill=prefill)
            if not prefill and isinstance(error, Exception):
                self._log_maintenance_failure(error)
            if cut:
                raise PoolTimeout(
                    f"pool {self._state.name!r}: creating a resource took more than "
                    f"{timeout} s (acquire_timeout)"
                ) from None
            raise
        slot = self._state.creation_done(resource, for_caller=False, prefill=prefill)
        if slot.state == GONE:
            self._spawn_release(slot)
        self._created(seconds, slot)

    def _log_maintenance_failure(self, error: BaseException) -> None:
        # While the breaker is open its failed probes are expected: it warned once.
        level = logging.DEBUG if self._state.breaker.is_open else logging.WARNING
        logger.log(
            level,
            "pool %r: the maintainer failed to create a resource",
            self._state.name,
            exc_info=error,
        )

    async def dispose(self) -> None:
        """Release every idle resource now; leased ones are released on return.

        The pool stays open. Every resource is tried before errors are raised;
        waits for the releasers (cancelling this call leaves them running).

        Raises:
            ExceptionGroup: the releaser errors, one per failed resource.
        """
        self._bind_loop()
        slots = self._state.take_all_idle()
        self._raise_release_errors(slots, await self._release_all(slots))

    def _raise_release_errors(self, slots: list[Slot[T]], errors: list[BaseException]) -> None:
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._state.name!r}: {len(errors)} of {len(slots)} resources "
                "failed to release",
                errors,
            )

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
        binding = self._bind_loop()
        ends = None if timeout is None else binding.loop.time() + timeout
        slots = self._state.close()
        await self._stop_maintainer(binding)
        errors: list[BaseException] = []
        if slots:
            releasing = asyncio.ensure_future(self._release_all(slots))
            done, _ = await asyncio.wait([releasing], timeout=self._left(binding, ends))
            errors = releasing.result() if done else []
        if self._live():
            drained = binding.loop.create_future()
            binding.drains.append(drained)
            await asyncio.wait([drained], timeout=self._left(binding, ends))
            if self._live():
                logger.warning(
                    "pool %r: closed with %d resources still leased or releasing; they "
                    "will be released when they come back",
                    self._state.name,
                    self._live(),
                )
        self._raise_release_errors(slots, errors)

    @staticmethod
    def _left(binding: Binding, ends: float | None) -> float | None:
        return None if ends is None else max(0.0, ends - binding.loop.time())

    def _live(self) -> int:
        state = self._state
        return len(state.slots) + state.creating + state.releasing

    async def open(self) -> None:
        """Accept acquires again after ``close()``; a no-op on an open pool.

        Starts the maintainer if the pool has ``min_size`` or ``max_idle``.
        """
        binding = self._bind_loop()
        self._state.open()
        self._start_maintainer(binding)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until ``min_size`` resources exist (the maintainer creates them).

        Returns at once when they do, also after ``resize()`` lowered
        ``min_size`` to what exists.

        Raises:
            PoolTimeout: they did not within ``timeout`` seconds (``None``: no limit).
            PoolClosed: the pool is closed, or was closed while this call waited.
        """
        timeout = check_timeout("timeout", timeout)
        binding = self._bind_loop()
        state = self._state
        self._start_maintainer(binding)
        try:
            async with asyncio.timeout(timeout):
                while not state.closed and not state.ready():
                    ready = binding.loop.create_future()
                    binding.ready.append(ready)
                    await ready
        except TimeoutError:
            raise PoolTimeout(
                f"pool {state.name!r}: {len(state.slots)} of min_size={state.min_size} "
                f"resources exist after {timeout} s ({state.breaker.last_error() or 'no error'})"
            ) from None
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
        binding = self._bind_loop()
        slots = self._state.resize(pool_size, min_size)
        self._start_maintainer(binding)
        binding.nudge.set()
        self._raise_release_errors(slots, await self._release_all(slots))

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
        self._refresh_lend_path()

    def remove_observer(self, observer: PoolObserver) -> None:
        """Stop sending timings to ``observer``; a no-op if it was not attached."""
        self._events.remove(observer)
        self._state.set_tracking(self._events.active)
        self._refresh_lend_path()

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

    # -- signals from the state ---------------------------------------------------

    def _wake_maintainer(self) -> None:
        binding = self._binding
        if binding is not None:
            if binding.maintainer is None:
                self._start_maintainer(binding)
            else:
                binding.nudge.set()

    def _progressed(self) -> None:
        binding = self._binding
        if binding is not None and binding.ready:
            binding.wake(binding.ready)

    def _drained(self) -> None:
        binding = self._binding
        if binding is not None and binding.drains:
            binding.wake(binding.drains)

    # -- the maintainer -------------------------------------------------------------

    def _start_maintainer(self, binding: Binding) -> None:
        if binding.maintainer is None and self._state.needs_maintainer():
            binding.nudge.clear()
            binding.maintainer = binding.loop.create_task(self._maintain_loop(binding))

    async def _stop_maintainer(self, binding: Binding) -> None:
        task = binding.maintainer
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _maintain_loop(self, binding: Binding) -> None:
        state = self._state
        try:
            while True:
                plan = state.maintain()
                for slot, _ in plan.retire:
                    self._spawn_release(slot)
                for slot in plan.leaks:
                    self._report_leak(slot)
                if plan.creations:
                    tasks = [
                        self._spawn_creation(binding, prefill=False) for _ in range(plan.creations)
                    ]
                    await asyncio.gather(*tasks, return_exceptions=True)
                    continue
                if not state.needs_maintainer():
                    return
                delay = None if plan.wake is None else max(0.0, plan.wake - state.clock())
                binding.nudge.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await binding.nudge.wait()
        finally:
            if self._on_loop(binding) and binding.maintainer is asyncio.current_task():
                binding.maintainer = None

    def _report_leak(self, slot: Slot[T]) -> None:
        logger.warning(
            "pool %r: a resource has been leased for more than %g s; acquired at %s",
            self._state.name,
            self._state.leak_timeout,
            slot.site or "<unknown>",
        )

    # -- loops and forks ------------------------------------------------------------

    def _on_loop(self, binding: Binding | None) -> bool:
        """Whether the pool still runs on the loop a coroutine began on.

        If not, that loop is closed or gone, and what was in flight there is
        forgotten when the next loop takes the pool over: the coroutine's
        cleanup (or its closing, when a dead loop's task is collected) must
        leave the pool's state alone.
        """
        return binding is self._binding and (binding is None or not binding.loop.is_closed())

    def _bind_loop(self) -> Binding:
        """The binding of the running loop, taking the pool over from a closed one.

        Raises:
            PoolError: the pool has live resources on another loop that is open.
        """
        loop = _get_running_loop()
        binding = self._binding
        if binding is not None and binding.loop is loop:
            return binding
        if binding is not None:
            if self._live() or self._state.waiting:
                if not binding.loop.is_closed():
                    raise PoolError(
                        f"pool {self._state.name!r} has {self._live()} live resources bound "
                        "to another event loop that is still open; dispose() or close() it "
                        "in that loop first, or make one pool per loop"
                    )
                # That loop is gone: its resources cannot be touched any more.
                self._state.forget()
                if binding.tasks or binding.maintainer is not None:
                    # Its unfinished tasks stay referenced: collected, their
                    # coroutines would run this pool's cleanup against the
                    # state it has just forgotten.
                    self._dead_bindings.append(binding)
            binding.abandon()
        self._binding = binding = Binding(loop, self._state)
        self._loop = loop
        self._start_maintainer(binding)
        return binding

    # pragma: no mutate start
    def _keepalive(self) -> object:  # pragma: no cover - runs in the child
        # The parent's loop too: finalising it would close the coroutines on it.
        return (list(self._state.slots.values()), self._binding)

    def _after_fork(self) -> None:  # pragma: no cover - runs in the child (tests/test_fork.py)
        self._state.forget()
        self._binding = None
        self._loop = None

    # pragma: no mutate end


AsyncPool.__module__ = "escudeiro_pools"
