"""The asyncio pool: the core's decisions, with the awaiting done here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from escudeiro_pools._core import PoolCore, logger
from escudeiro_pools._deadlines import Deadlines
from escudeiro_pools._errors import PoolClosed, PoolError, PoolTimeout
from escudeiro_pools._lease import AsyncLease, presents_as_async_generator
from escudeiro_pools._options import check_count, check_timeout, configure
from escudeiro_pools._protocol import CLOSED, CREATE, DEFAULT, EXPIRED, WAIT, _Default, _Token
from escudeiro_pools._site import call_site
from escudeiro_pools._slot import CHECKING, IDLE, LEASED, RESETTING, Slot
from escudeiro_pools._stats import LeaseInfo, PoolStats

__all__ = ["AsyncPool"]

T = TypeVar("T")
_Waiter = asyncio.Future[Any]

_get_running_loop = asyncio.get_running_loop
_Future = asyncio.Future
# A lease is made on every request: without a Python ``__init__`` call.
_new_lease = object.__new__


class _Claim:
    """A caller waits for the releaser of a stale slot, to create in its place."""

    __slots__ = ("granted", "wanted")

    def __init__(self) -> None:
        self.wanted = True
        self.granted = False


class _Binding:
    """What the pool owns on one event loop; replaced whole when the loop changes."""

    __slots__ = (
        "deadlines",
        "drains",
        "loop",
        "maintainer",
        "new_future",
        "nudge",
        "ready",
        "tasks",
        "time",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: AsyncPool[Any]) -> None:
        self.loop = loop
        # The loop's clock and futures, without a Python frame when they are asyncio's own.
        base = asyncio.BaseEventLoop
        self.time: Callable[[], float] = (
            time.monotonic if type(loop).time is base.time else loop.time
        )
        self.new_future: Callable[[], _Waiter] = (
            functools.partial(_Future, loop=loop)
            if type(loop).create_future is base.create_future
            else loop.create_future
        )
        self.deadlines = Deadlines(loop, pool)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.drains: list[asyncio.Future[None]] = []
        self.ready: list[asyncio.Future[None]] = []
        self.maintainer: asyncio.Task[None] | None = None
        self.nudge = asyncio.Event()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def abandon(self) -> None:
        """The pool moved to another loop: stop what still runs on this one."""
        self.deadlines.cancel()
        if not self.loop.is_closed():
            for task in (self.maintainer, *self.tasks):
                if task is not None:
                    with contextlib.suppress(RuntimeError):
                        self.loop.call_soon_threadsafe(task.cancel)


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
        check_after_idle: skip ``check`` on resources returned more recently.
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
        fail_fast_after: after this many consecutive factory failures, callers
            that would create get ``PoolUnavailable`` at once while one
            background probe retries; ``None`` disables it.
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
        options = configure(
            "AsyncPool",
            factory=factory,
            releaser=releaser,
            queue_class=queue_class,
            lifo=asyncio.LifoQueue,
            fifo=asyncio.Queue,
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
            releaser_timeout=releaser_timeout,
            leak_timeout=leak_timeout,
            discard_on=discard_on,
            max_waiting=max_waiting,
            fail_fast_after=fail_fast_after,
            retry_backoff=retry_backoff,
            clock=clock,
        )
        super().__init__(options)
        self._factory = factory
        self._releaser = releaser
        self._check = check
        self._setup = setup
        self._reset = reset
        self._acquire_timeout = options.acquire_timeout
        self._releaser_timeout = options.releaser_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._binding: _Binding | None = None
        self._dead_bindings: list[_Binding] = []

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
            Exception: whatever the factory raised creating a resource.
        """
        slot = verdict = None
        if self._idle and self._loop is _get_running_loop():
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
            slot = await self._obtain(timeout, verdict)
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
        lease = _new_lease(AsyncLease)
        lease._pool = self
        lease._slot = None
        return lease

    async def _obtain(
        self, timeout: float | _Default | None, verdict: str | None = None
    ) -> Slot[T]:
        """The slow path: whatever ``acquire`` could not do without awaiting
        (``verdict``: see ``_checkout``)."""
        binding = self._binding
        if binding is None or binding.loop is not _get_running_loop():
            binding = self._bind_loop()
        timeout = self._acquire_timeout if timeout is DEFAULT else check_timeout("timeout", timeout)
        started = binding.time()
        deadline = None if timeout is None else started + timeout
        # ``_checkout``'s answer when the pool is open and full (every contended
        # acquire), without the call; any other case asks it.
        if (
            self._idle
            or self._closed
            or len(self._slots) + self._creating + self._releasing < self._pool_size
            or self._max_waiting is not None
        ):
            grant: Any = self._checkout(verdict)
        else:
            grant = WAIT
        if grant is WAIT:
            # The contended path, kept in this frame: queue for a grant; at the
            # deadline ``Deadlines`` sets EXPIRED.
            waiter = binding.new_future()
            self._waiters.append((waiter, deadline))
            self._waiting += 1
            if deadline is not None:
                deadlines = binding.deadlines
                if deadline < deadlines.last or deadlines.timer is None:
                    deadlines.add(deadline, waiter)  # out of order, or no timer yet
                else:
                    deadlines.last = deadline
            else:
                # Behind a waiter without deadline, later deadlines are out of order.
                binding.deadlines.last = math.inf
            try:
                grant = await waiter
            except BaseException:
                if self._on_loop(binding):
                    self._note_wait(binding.time() - started)
                    self._leave_queue(waiter)
                raise
            waited = binding.time() - started
            self._waits += 1
            self._wait_time_total += waited
            if waited > self._wait_time_max:
                self._wait_time_max = waited
            if type(grant) is Slot and grant.state == LEASED and not self._has_setup:
                if self._tracking:
                    self._track(grant, waited)
                return grant
            if type(grant) is _Token and grant is not CREATE:
                raise self._refusal(grant, timeout)
        return await self._realize(grant, started, deadline, timeout)

    def _refusal(self, grant: _Token, timeout: float | None) -> PoolError:
        if grant is EXPIRED:
            return self._timeout_error(timeout, "waiting")
        if grant is CLOSED:
            return PoolClosed(f"pool {self._name!r} was closed while waiting for a resource")
        return self._unavailable_error(counted=True)

    async def _realize(
        self, grant: Any, started: float, deadline: float | None, timeout: float | None
    ) -> Slot[T]:
        """Turn a grant into a leased slot: create, check, or replace a stale one."""
        while True:
            if grant is CREATE:
                slot = await self._create_within(deadline, timeout)
            else:
                slot = grant
                if slot.state == CHECKING:
                    slot = await self._check_within(slot, deadline, timeout)
            if slot.state == LEASED:
                if self._has_setup:
                    await self._setup_within(slot, deadline, timeout)
                if self._tracking:
                    assert self._binding is not None
                    self._track(slot, self._binding.time() - started)
                return slot
            # A stale slot: this caller releases it, then creates in its place.
            await self._replace_within(slot, deadline, timeout)
            grant = CREATE

    def _leave_queue(self, waiter: _Waiter) -> None:
        """The caller stopped waiting (cancelled): pass on what it was granted, if any."""
        if not waiter.done() or waiter.cancelled():
            waiter.cancel()
            self._abandon()
            return
        grant = waiter.result()
        if grant is not EXPIRED:
            stale = self._refused(grant)
            if stale is not None:
                self._spawn_release(stale)

    async def _create_within(self, deadline: float | None, timeout: float | None) -> Slot[T]:
        try:
            async with asyncio.timeout_at(deadline) as scope:
                slot = await self._create()
        except TimeoutError:
            if not scope.expired():
                raise
            raise self._timeout_error(timeout, "creating") from None
        self._lend(slot)
        return slot

    async def _create(self) -> Slot[T]:
        """Run the factory under a reservation made by the caller; the slot is not placed."""
        binding = self._binding
        began = self._clock() if self._observers else 0.0
        try:
            made = self._factory()
            if not inspect.isawaitable(made):
                raise TypeError(
                    f"pool {self._name!r}: the factory returned {type(made).__name__}, not an "
                    "awaitable; AsyncPool needs an async factory (use ThreadPool for plain ones)"
                )
            resource = await made
        except BaseException as exc:
            if self._on_loop(binding):
                self._unreserve(exc)
            raise
        slot = self._register(resource)
        if self._observers:
            self._note_created(self._clock() - began)
        if self._binding is not None and self._binding.ready:
            self._notify_ready(self._binding)
        return slot

    async def _check_within(
        self, slot: Slot[T], deadline: float | None, timeout: float | None
    ) -> Slot[T]:
        binding = self._binding
        try:
            async with asyncio.timeout_at(deadline) as scope:
                ok = await self._run_check(slot)
        except BaseException as exc:
            # Interrupted mid-check: its state is unknown, so it is not pooled again.
            if self._on_loop(binding):
                self._spawn_release(self._checked(slot, False))
            if isinstance(exc, TimeoutError) and scope.expired():
                raise self._timeout_error(timeout, "checking") from None
            raise
        return self._checked(slot, ok)

    async def _setup_within(
        self, slot: Slot[T], deadline: float | None, timeout: float | None
    ) -> None:
        """Run ``setup`` on a slot lent to this caller; on any failure it is released."""
        assert self._setup is not None
        binding = self._binding
        try:
            async with asyncio.timeout_at(deadline) as scope:
                pending = self._setup(slot.resource)
                if inspect.isawaitable(pending):
                    await pending
        except BaseException as exc:
            if self._on_loop(binding):
                stale = self._take_back(slot, broken=True)
                assert stale is not None
                self._spawn_release(stale)
            if isinstance(exc, TimeoutError) and scope.expired():
                raise self._timeout_error(timeout, "setting up") from None
            raise

    async def _run_check(self, slot: Slot[T]) -> bool:
        assert self._check is not None
        try:
            result = self._check(slot.resource)
            if inspect.isawaitable(result):
                result = await result
            return bool(result)
        except Exception:
            logger.warning("pool %r: check raised", self._name, exc_info=True)
            return False

    async def _replace_within(
        self, slot: Slot[T], deadline: float | None, timeout: float | None
    ) -> None:
        """Release a stale ``slot`` and keep its capacity to create in its place."""
        claim = _Claim()
        binding = self._binding
        task = self._spawn_release(slot, claim)
        try:
            async with asyncio.timeout_at(deadline) as scope:
                await asyncio.shield(task)
        except BaseException as exc:
            claim.wanted = False
            if claim.granted and self._on_loop(binding):  # the releaser finished just now
                self._unreserve()  # pass the capacity on
            if isinstance(exc, TimeoutError) and scope.expired():
                raise self._timeout_error(timeout, "releasing a stale resource") from None
            raise
        if not claim.granted:
            raise self._closed_error() if self._closed else self._unavailable_error()

    # -- return ---------------------------------------------------------------

    async def release(self, resource: T) -> None:
        """Give a leased resource back (through ``reset`` if the pool has one).

        Waits for ``reset`` only; the releaser of a resource that is not
        pooled again runs in a task of its own.

        Raises:
            PoolError: ``resource`` is not leased from this pool (never was, is
                idle, or was already released); nothing changes.
        """
        slot = self._slots.get(id(resource))
        if slot is None or slot.resource is not resource or slot.state != LEASED:
            slot = self._leased_slot(resource)
        if self._plain_return:
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
                self._spawn_release(stale)
            return
        await self._return(slot, broken=False)

    async def _return(self, slot: Slot[T], *, broken: bool) -> None:
        """End a lease through ``reset`` and ``alive``, or discard it (``broken``)."""
        stale = self._take_back(slot, broken=broken)
        if slot.state == RESETTING:
            stale = self._reset_done(slot, await self._run_reset(slot))
        if stale is not None:
            self._spawn_release(stale)

    async def _run_reset(self, slot: Slot[T]) -> bool:
        """Run ``reset``; False if it failed (logged)."""
        assert self._reset is not None
        binding = self._binding
        try:
            pending = self._reset(slot.resource)
            if inspect.isawaitable(pending):
                async with asyncio.timeout(self._releaser_timeout):
                    await pending
        except Exception:
            logger.warning(
                "pool %r: reset failed; discarding the resource", self._name, exc_info=True
            )
            return False
        except BaseException:
            # Cancelled mid-reset: the resource's state is unknown, so it is released.
            if self._on_loop(binding):
                stale = self._reset_done(slot, None)
                assert stale is not None
                self._spawn_release(stale)
            raise
        return True

    async def discard(self, resource: T) -> None:
        """Release a leased resource you know is broken, instead of pooling it.

        Waits for the releaser (in a task of its own: cancelling this call
        does not interrupt it). Inside ``lease()`` the lease's exit then does
        nothing.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        slot = self._leased_slot(resource)
        stale = self._take_back(slot, broken=True)
        assert stale is not None
        await asyncio.shield(self._spawn_release(stale))

    async def detach(self, resource: T) -> None:
        """Take a leased resource out of the pool for good, without releasing it.

        The caller now owns it (and must close it); its capacity is free at
        once, counted in ``stats().detached``. Inside ``lease()`` the exit
        then does nothing.

        Raises:
            PoolError: ``resource`` is not leased from this pool.
        """
        self._detach(self._leased_slot(resource))

    def _spawn_release(
        self, slot: Slot[T], claim: _Claim | None = None, *, report: bool = True
    ) -> asyncio.Task[BaseException | None]:
        # A task of its own, so a cancelled caller cannot interrupt the releaser.
        binding = self._binding
        assert binding is not None
        return binding.spawn(self._run_releaser(slot.resource, claim, report))

    async def _run_releaser(
        self, resource: T, claim: _Claim | None, report: bool
    ) -> BaseException | None:
        binding = self._binding
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
            if not self._on_loop(binding):
                pass
            elif claim is None:
                self._release_done()
            else:
                claim.granted = self._replace(claim.wanted)
        return None

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
        """
        if count is not None:
            check_count("count", count, hint="the idle resources prefill aims for")
        binding = self._bind_loop()
        if self._closed:
            raise PoolClosed(f"pool {self._name!r} is closed; call open() before prefill()")
        self._start_maintainer(binding)
        planned = self._plan_prefill(count)
        if not planned:
            return
        tasks = [self._spawn_creation(binding, prefill=True) for _ in range(planned)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._name!r}: prefill created {planned - len(errors)} of "
                f"{planned} resources",
                errors,
            )

    def _spawn_creation(self, binding: _Binding, *, prefill: bool) -> asyncio.Task[None]:
        """Create one resource for the pool under a reservation already made."""
        started = [False]
        task = binding.spawn(self._create_placed(started, prefill))

        def never_started(task: asyncio.Task[None]) -> None:
            # Cancelled before its first step: its body never ran to use the reservation.
            if not started[0]:
                if prefill:
                    self._prefilling -= 1
                self._unreserve()

        task.add_done_callback(never_started)
        return task

    async def _create_placed(self, started: list[bool], prefill: bool) -> None:
        started[0] = True
        binding = self._binding
        try:
            try:
                async with asyncio.timeout(self._acquire_timeout) as scope:
                    slot = await self._create()
            except TimeoutError:
                if not scope.expired():
                    raise
                raise PoolTimeout(
                    f"pool {self._name!r}: creating a resource took more than "
                    f"{self._acquire_timeout} s (acquire_timeout)"
                ) from None
        except Exception:
            if not prefill:
                self._log_maintenance_failure()
            raise
        finally:
            if prefill and self._on_loop(binding):
                self._prefilling -= 1
        stale = self._place(slot)
        if stale is not None:
            self._spawn_release(stale)

    async def dispose(self) -> None:
        """Release every idle resource now; leased ones are released on return.

        The pool stays open. Every resource is tried before errors are raised;
        waits for the releasers (cancelling this call leaves them running).

        Raises:
            ExceptionGroup: the releaser errors, one per failed resource.
        """
        self._bind_loop()
        slots = self._take_all_idle()
        errors = await self._release_all(slots)
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._name!r}: {len(errors)} of {len(slots)} resources failed to release",
                errors,
            )

    async def close(self, timeout: float | None = 5.0) -> None:
        """Close: refuse acquires with ``PoolClosed``, release idle resources, wait for leases.

        Callers waiting now get ``PoolClosed``; the maintainer stops. Waits
        for the idle resources' releasers, then up to ``timeout`` seconds for
        leased resources to come back and be released; a lease returned later
        is still released, never pooled. Cancelled, it stops waiting at once
        and the pool stays closed.

        Raises:
            ExceptionGroup: the releaser errors of the idle resources.
        """
        timeout = check_timeout("timeout", timeout)
        binding = self._bind_loop()
        slots = self._mark_closed()
        await self._stop_maintainer(binding)
        errors = await self._release_all(slots)
        if self._live():
            drained = binding.loop.create_future()
            binding.drains.append(drained)
            await asyncio.wait([drained], timeout=timeout)
            if self._live():
                logger.warning(
                    "pool %r: closed with %d resources still leased; they will be "
                    "released when they come back",
                    self._name,
                    self._live(),
                )
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._name!r}: {len(errors)} of {len(slots)} resources failed to release",
                errors,
            )

    def _live(self) -> int:
        return len(self._slots) + self._creating + self._releasing

    def _drained(self) -> None:
        binding = self._binding
        if binding is not None:
            drains, binding.drains = binding.drains, []
            for future in drains:
                if not future.done():
                    future.set_result(None)

    async def open(self) -> None:
        """Accept acquires again after ``close()``; a no-op on an open pool.

        Starts the maintainer if the pool has ``min_size`` or ``max_idle``.
        """
        binding = self._bind_loop()
        self._mark_open()
        self._start_maintainer(binding)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until ``min_size`` resources exist (the maintainer creates them).

        Raises:
            PoolTimeout: they did not within ``timeout`` seconds (``None``: no limit).
            PoolClosed: the pool is closed.
        """
        timeout = check_timeout("timeout", timeout)
        binding = self._bind_loop()
        if self._closed:
            raise self._closed_error()
        self._start_maintainer(binding)
        try:
            async with asyncio.timeout(timeout):
                while len(self._slots) < self._min_size:
                    ready = binding.loop.create_future()
                    binding.ready.append(ready)
                    await ready
        except TimeoutError:
            raise PoolTimeout(
                f"pool {self._name!r}: {len(self._slots)} of min_size={self._min_size} "
                f"resources exist after {timeout} s ({self.stats().last_error or 'no error'})"
            ) from None

    def _notify_ready(self, binding: _Binding) -> None:
        ready, binding.ready = binding.ready, []
        for future in ready:
            if not future.done():
                future.set_result(None)

    async def resize(self, pool_size: int | None = None, *, min_size: int | None = None) -> None:
        """Change ``pool_size`` and/or ``min_size`` now.

        Growing serves waiters at once. Shrinking releases idle resources
        beyond the new size now (and waits for that) and leased ones as they
        come back, never pooling beyond the new size.

        Raises:
            ValueError, TypeError: a bad size; nothing changes.
            ExceptionGroup: releaser errors of the idle resources released.
        """
        binding = self._bind_loop()
        slots = self._resize(pool_size, min_size)
        self._start_maintainer(binding)
        binding.nudge.set()
        errors = await self._release_all(slots)
        if errors:
            raise BaseExceptionGroup(
                f"pool {self._name!r}: {len(errors)} of {len(slots)} resources failed to release",
                errors,
            )

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's gauges and cumulative counters."""
        return self._stats()

    def leases(self) -> tuple[LeaseInfo, ...]:
        """One ``LeaseInfo`` per resource leased now, oldest first (with tracking on)."""
        return self._lease_infos()

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

    # -- the maintainer ---------------------------------------------------------

    def _start_maintainer(self, binding: _Binding) -> None:
        if binding.maintainer is None and self._needs_maintainer():
            binding.nudge.clear()
            binding.maintainer = binding.loop.create_task(self._maintain_loop(binding))

    def _nudge(self) -> None:
        binding = self._binding
        if binding is not None:
            if binding.maintainer is None:
                self._start_maintainer(binding)
            else:
                binding.nudge.set()

    async def _stop_maintainer(self, binding: _Binding) -> None:
        task = binding.maintainer
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _maintain_loop(self, binding: _Binding) -> None:
        try:
            while True:
                creations, retired, wake_at = self._maintain()
                for slot in retired:
                    self._spawn_release(slot)
                if creations:
                    tasks = [self._spawn_creation(binding, prefill=False) for _ in range(creations)]
                    await asyncio.gather(*tasks, return_exceptions=True)
                    continue
                if not self._needs_maintainer():
                    return
                delay = None if wake_at is None else max(0.0, wake_at - self._clock())
                binding.nudge.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await binding.nudge.wait()
        finally:
            if self._on_loop(binding) and binding.maintainer is asyncio.current_task():
                binding.maintainer = None

    # -- lease tracking and loops ------------------------------------------------

    def _watch(self, slot: Slot[T]) -> None:
        assert self._loop is not None
        assert self._leak_timeout is not None
        slot.site = call_site()
        slot.leak_timer = self._loop.call_later(
            self._leak_timeout, self._report_leak, slot, slot.serial
        )

    def _unwatch(self, slot: Slot[T]) -> None:
        if slot.leak_timer is not None:
            slot.leak_timer.cancel()
            slot.leak_timer = None

    def _on_loop(self, binding: _Binding | None) -> bool:
        """Whether the pool still runs on the loop a coroutine began on.

        If not, that loop is closed or gone, and what was in flight there is
        forgotten when the next loop takes the pool over: the coroutine's
        cleanup (or its closing, when a dead loop's task is collected) must
        leave the pool's state alone.
        """
        return binding is self._binding and (binding is None or not binding.loop.is_closed())

    def _bind_loop(self) -> _Binding:
        loop = _get_running_loop()
        binding = self._binding
        if binding is not None and binding.loop is loop:
            return binding
        if binding is not None:
            if self._live() or self._waiting:
                if not binding.loop.is_closed():
                    raise PoolError(
                        f"pool {self._name!r} has {self._live()} live resources bound to "
                        "another event loop that is still open; dispose() or close() it in "
                        "that loop first, or make one pool per loop"
                    )
                # That loop is gone: its resources cannot be touched any more.
                self._forget()
                if binding.tasks or binding.maintainer is not None:
                    # Its unfinished tasks stay referenced: collected, their
                    # coroutines would run this pool's cleanup against the
                    # state it has just forgotten.
                    self._dead_bindings.append(binding)
            binding.abandon()
        self._binding = binding = _Binding(loop, self)
        self._loop = loop
        self._start_maintainer(binding)
        return binding

    def _keepalive(self) -> object:  # pragma: no cover - runs in the child
        # The parent's loop too: finalising it would close the coroutines on it.
        return (super()._keepalive(), self._binding)

    def _after_fork(self) -> None:  # pragma: no cover - runs in the child (tests/test_fork.py)
        self._forget()
        self._binding = None
        self._loop = None


AsyncPool.__module__ = "escudeiro_pools"
