"""What a caller is told while it waits and when it gives a resource back.

Pinned here, for both pools where both can do it:

* the exact wording of the errors (closed, unavailable, timed out in each
  phase with the timeout and the pool's load, a resource released twice or
  to the wrong pool, a lease entered twice) and of ``repr``, counting
  resources being created or released in the size;
* the wait statistics and the timings an observer hears: each wait is
  measured from when the caller asked, and timed-out waits add up;
* a resource handed to a waiter still goes through ``setup``; lease uses
  count toward ``max_uses``; the first acquire starts the maintainer;
* the thread pool's edges: two threads returning one resource at once (one
  of them is refused), a grant that lands just as a waiting thread times
  out (taken) or is interrupted (passed on, or released if it went stale),
  and an ``async with`` lease that leaves while its thread works for it.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from escudeiro_pools import (
    PoolClosed,
    PoolError,
    PoolTimeout,
    PoolUnavailable,
    ThreadPool,
    _thread_leasing,
)
from escudeiro_pools._waiters import ThreadWaiter
from tests.kit import AsyncKit, FakeClock, Kit, Ledger, Resource, Timings, enter, eventually

HINT = "raise pool_size or acquire_timeout, or return leases sooner"


def class_name(kit: Kit) -> str:
    return "AsyncPool" if kit.flavour == "async" else "ThreadPool"


class Latch:
    """Holds the next call of a factory or releaser (of ``kit``'s flavour) once
    armed, until the test opens it."""

    def __init__(self, kit: Kit) -> None:
        self.flavour = kit.flavour
        self.armed = False
        self.entered = threading.Event()
        self.opened = threading.Event()

    def _hold(self) -> bool:
        if not self.armed:
            return False
        self.armed = False
        self.entered.set()
        return True

    def holding(self, function: Callable[..., Any]) -> Callable[..., Any]:
        if self.flavour == "thread":

            def blocking(*args: Any) -> Any:
                if self._hold():
                    self.opened.wait(5)
                return function(*args)

            return blocking

        async def waiting(*args: Any) -> Any:
            if self._hold():
                while not self.opened.is_set():
                    await asyncio.sleep(0.001)
            return function(*args)

        return waiting


async def leave(kit: Kit, lease: Any) -> None:
    """Exit a lease entered with ``enter``."""
    if kit.flavour == "async":
        await lease.__aexit__(None, None, None)
    else:
        lease.__exit__(None, None, None)


# -- stats, leases, repr and the errors' wording ----------------------------------------


async def test_stats_report_the_configured_bounds(kit: Kit) -> None:
    pool = kit.pool(pool_size=3, min_size=1)
    stats = kit.stats(pool)
    assert (stats.pool_size, stats.min_size) == (3, 1)


async def test_a_lease_is_zero_seconds_old_when_taken(kit: Kit, clock: FakeClock) -> None:
    pool = kit.pool(pool_size=1, leak_timeout=60, clock=clock)
    resource = await kit.acquire(pool)
    assert [info.age for info in pool.leases()] == [0.0]
    clock.advance(0.25)
    assert [info.age for info in pool.leases()] == [0.25]
    await kit.release(pool, resource)
    await kit.close(pool)


async def test_an_acquire_on_a_closed_pool_says_how_to_use_it_again(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, name="p")
    await kit.close(pool)
    with pytest.raises(PoolClosed) as caught:
        await kit.acquire(pool)
    assert str(caught.value) == "pool 'p' is closed; call open() to use it again"


async def test_the_unavailable_error_says_how_often_the_factory_failed_and_when_it_retries(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    pool = kit.pool(
        pool_size=2, name="p", fail_fast_after=1, retry_backoff=(10.0, 10.0), clock=clock
    )
    ledger.factory_failures = 1
    with pytest.raises(ConnectionError):
        await kit.acquire(pool)
    with pytest.raises(PoolUnavailable) as caught:
        await kit.acquire(pool)
    error = caught.value
    assert 5.0 <= error.retry_after <= 10.0  # the backoff with its jitter
    assert str(error) == (
        "pool 'p': the factory failed once (last: ConnectionError: factory failed); "
        f"refusing to create until a retry succeeds, next retry in {error.retry_after:.2f} s"
    )
    assert isinstance(error.__cause__, ConnectionError)
    await kit.close(pool)


@pytest.mark.parametrize(("timeout", "shown"), [(0.05, "0.05"), (0, "0.00")])
async def test_a_wait_that_times_out_names_its_timeout_and_the_pool_load(
    kit: Kit, timeout: float, shown: str
) -> None:
    pool = kit.pool(pool_size=1, name="p")
    held = await kit.acquire(pool)
    with pytest.raises(PoolTimeout) as caught:
        await kit.acquire(pool, timeout=timeout)
    assert str(caught.value) == (
        f"pool 'p': couldn't get a resource within {shown} s (timed out while waiting; "
        f"size 1/1, in use 1, waiting 0); {HINT}"
    )
    await kit.release(pool, held)


async def test_a_timeout_names_the_age_and_site_of_the_oldest_lease(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, name="p", leak_timeout=60, clock=clock)
    held = await kit.acquire(pool)
    clock.advance(2.5)
    with pytest.raises(PoolTimeout) as caught:
        await kit.acquire(pool, timeout=0.01)
    site = pool.leases()[0].site
    assert site
    assert str(caught.value) == (
        "pool 'p': couldn't get a resource within 0.01 s (timed out while waiting; "
        f"size 1/1, in use 1, waiting 0); the oldest lease, 2.5 s old, was acquired at "
        f"{site}; {HINT}"
    )
    await kit.release(pool, held)
    await kit.close(pool)


async def test_resources_being_created_or_released_count_in_the_size_shown(
    kit: Kit, ledger: Ledger
) -> None:
    making, dropping = Latch(kit), Latch(kit)
    pool = kit.pool(
        pool_size=3,
        name="p",
        factory=making.holding(ledger.make),
        releaser=dropping.holding(ledger.release),
    )
    held = await kit.acquire(pool)
    doomed = await kit.acquire(pool)
    dropping.armed = True
    discarding = asyncio.create_task(kit.discard(pool, doomed))
    await eventually(dropping.entered.is_set)
    making.armed = True
    creating = asyncio.create_task(kit.acquire(pool))
    await eventually(making.entered.is_set)
    stats = kit.stats(pool)
    assert (stats.idle, stats.in_use, stats.creating, stats.releasing) == (0, 1, 1, 1)

    assert repr(pool) == f"<{class_name(kit)} 'p' size=3/3 idle=0 in_use=1 waiting=0>"
    with pytest.raises(PoolTimeout) as caught:
        await kit.acquire(pool, timeout=0.01)
    assert "(timed out while waiting; size 3/3, in use 1, waiting 0); " in str(caught.value)

    making.opened.set()
    dropping.opened.set()
    await discarding
    fresh = await creating
    await kit.release(pool, held)
    await kit.release(pool, fresh)
    await kit.close(pool)
    assert repr(pool) == f"<{class_name(kit)} 'p' closed size=0/3 idle=0 in_use=0 waiting=0>"
    ledger.assert_released_once()


async def test_a_creation_past_the_deadline_times_out_naming_the_timeout(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=1, name="p")
    ledger.factory_delay = 0.1
    with pytest.raises(PoolTimeout) as caught:
        await kit.acquire(pool, timeout=0.02)
    assert str(caught.value).startswith(
        "pool 'p': couldn't get a resource within 0.02 s (timed out while creating; size "
    )
    assert str(caught.value).endswith(HINT)
    ledger.factory_delay = 0
    await kit.settle(pool)
    await kit.close(pool)


async def test_releasing_a_stale_resource_past_the_deadline_times_out_naming_the_timeout(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, name="p", pool_recycle=10, clock=clock)
    await kit.prefill(pool)
    clock.advance(20)  # the idle resource is past its lifetime
    ledger.releaser_delay = 0.1
    with pytest.raises(PoolTimeout) as caught:
        await kit.acquire(pool, timeout=0.02)
    assert str(caught.value).startswith(
        "pool 'p': couldn't get a resource within 0.02 s "
        "(timed out while releasing a stale resource; size "
    )
    await kit.settle(pool)
    assert ledger.made[0].released == 1
    assert kit.stats(pool).recycled == 1
    await kit.close(pool)


@pytest.mark.parametrize("phase", ["checking", "setting up"])
async def test_an_async_check_or_setup_past_the_deadline_times_out_naming_the_timeout(
    ledger: Ledger, phase: str
) -> None:
    async def slow(resource: Resource) -> bool:
        await asyncio.sleep(0.1)
        return True

    options: dict[str, Any] = (
        {"check": slow, "check_after_idle": 0} if phase == "checking" else {"setup": slow}
    )
    pool = AsyncKit(ledger).pool(pool_size=1, name="p", **options)
    await pool.prefill()
    with pytest.raises(PoolTimeout) as caught:
        await pool.acquire(timeout=0.02)
    assert str(caught.value).startswith(
        f"pool 'p': couldn't get a resource within 0.02 s (timed out while {phase}; size "
    )
    await pool.close()


async def test_misuse_errors_name_the_resource_and_say_what_to_do(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, name="p")
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)
    with pytest.raises(PoolError) as twice:
        await kit.release(pool, resource)
    assert str(twice.value) == (
        f"pool 'p': {resource!r} is not leased (it is idle in the pool or already being "
        "returned); release each acquired resource exactly once"
    )
    stranger = Resource()
    with pytest.raises(PoolError) as foreign:
        await kit.release(pool, stranger)
    assert str(foreign.value) == (
        f"pool 'p': {stranger!r} was not acquired from this pool (or was already destroyed "
        "or detached); release resources only to the pool they came from"
    )
    lease = pool.lease()
    await enter(kit, lease)
    with pytest.raises(PoolError) as again:
        await enter(kit, lease)
    assert str(again.value) == (
        "a lease can be entered once; call pool.lease() again for a new one"
    )
    await leave(kit, lease)
    assert kit.stats(pool).idle == 1


# -- acquiring and giving back ----------------------------------------------------------


async def test_every_acquire_of_an_idle_resource_counts_in_use(kit: Kit) -> None:
    pool = kit.pool(pool_size=2)
    await kit.prefill(pool, 2)
    first = await kit.acquire(pool)
    second = await kit.acquire(pool)
    assert kit.stats(pool).in_use == 2
    await kit.release(pool, first)
    await kit.release(pool, second)
    stats = kit.stats(pool)
    assert (stats.in_use, stats.idle) == (0, 2)


async def test_the_first_acquire_starts_the_maintainer_that_keeps_min_size(kit: Kit) -> None:
    pool = kit.pool(pool_size=3, min_size=2)
    resource = await kit.acquire(pool)
    await eventually(lambda: kit.stats(pool).idle == 1)
    assert kit.stats(pool).size == 2
    await kit.release(pool, resource)
    await kit.close(pool)


async def test_every_lease_counts_toward_max_uses(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=1, max_uses=3)
    seen: list[Resource] = []
    recycled: list[int] = []
    for _ in range(3):
        async with kit.lease(pool) as resource:
            seen.append(resource)
        recycled.append(kit.stats(pool).recycled)
    assert seen == [ledger.made[0]] * 3
    assert recycled == [0, 0, 1]
    await kit.settle(pool)
    assert ledger.made[0].released == 1


async def test_a_discard_inside_a_lease_of_a_pool_with_reset_makes_the_exit_a_no_op(
    kit: Kit,
) -> None:
    pool = kit.pool(pool_size=1, reset=lambda resource: None)
    async with kit.lease(pool) as resource:
        await kit.discard(pool, resource)
    stats = kit.stats(pool)
    assert (stats.discarded, stats.size, stats.in_use) == (1, 0, 0)
    assert resource.released == 1


async def test_setup_runs_on_a_resource_handed_to_a_waiter(kit: Kit) -> None:
    set_up: list[Resource] = []
    pool = kit.pool(pool_size=1, setup=set_up.append)
    held = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    await kit.release(pool, held)
    assert await waiter is held
    assert set_up == [held, held]
    await kit.release(pool, held)


# -- how long callers waited ------------------------------------------------------------


async def test_timed_out_waits_are_measured_and_add_up(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    held = await kit.acquire(pool)
    began = time.monotonic()
    for _ in range(2):
        with pytest.raises(PoolTimeout):
            await kit.acquire(pool, timeout=0.02)
    elapsed = time.monotonic() - began
    stats = kit.stats(pool)
    assert (stats.waits, stats.timeouts) == (2, 2)
    assert stats.wait_time_max >= 0.015
    assert stats.wait_time_total >= stats.wait_time_max + 0.015
    assert stats.wait_time_total <= elapsed
    await kit.release(pool, held)


async def test_a_cancelled_wait_is_measured(ledger: Ledger) -> None:
    pool = AsyncKit(ledger).pool(pool_size=1)
    held = await pool.acquire()
    began = time.monotonic()
    waiter = asyncio.create_task(pool.acquire(timeout=5))
    await eventually(lambda: pool.stats().waiting == 1)
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    elapsed = time.monotonic() - began
    stats = pool.stats()
    assert (stats.waits, stats.waiting) == (1, 0)
    assert 0.005 <= stats.wait_time_total <= elapsed
    await pool.release(held)


async def test_an_observer_hears_how_long_each_acquire_took(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=1)
    timings = Timings()
    pool.add_observer(timings)
    ledger.factory_delay = 0.01
    began = time.monotonic()
    held = await kit.acquire(pool)
    creating = time.monotonic() - began
    ledger.factory_delay = 0
    began = time.monotonic()
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    await asyncio.sleep(0.02)
    await kit.release(pool, held)
    assert await waiter is held
    waiting = time.monotonic() - began
    assert len(timings.waits) == 2
    assert 0.005 <= timings.waits[0] <= creating  # the creation it waited for
    assert 0.015 <= timings.waits[1] <= waiting  # its turn in the queue
    await kit.release(pool, held)


# -- the thread pool: returns racing, grants landing at the edge of a wait ----------------


class Stall:
    """Blocks one armed thread inside a callback the pool runs under its lock."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self) -> None:
        if threading.current_thread() is self.thread:
            self.entered.set()
            self.opened.wait(5)


class Outcome:
    """Runs ``function`` in a thread of its own; keeps what it returned or raised."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(function,), daemon=True)

    def start(self) -> Outcome:
        self.thread.start()
        return self

    def _run(self, function: Callable[[], Any]) -> None:
        try:
            self.value = function()
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self.thread.join(5)
        assert not self.thread.is_alive()


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


@pytest.mark.parametrize("returns", ["plain", "through alive"])
def test_two_threads_returning_one_resource_at_once_pool_it_once(
    returns: str, ledger: Ledger
) -> None:
    stall = Stall()
    clock = FakeClock()

    def stalling_clock() -> float:
        stall()
        return clock()

    def alive(resource: Resource) -> bool:
        stall()
        return True

    # The first return stalls under the pool's lock: in the clock that stamps
    # the return time, or in ``alive``, before the resource is idle again.
    options: dict[str, Any] = (
        {"check": lambda resource: True, "check_after_idle": 60, "clock": stalling_clock}
        if returns == "plain"
        else {"alive": alive}
    )
    pool = ThreadPool(ledger.make, ledger.release, pool_size=1, **options)
    resource = pool.acquire()
    first = Outcome(lambda: pool.release(resource))
    stall.thread = first.thread
    first.start()
    assert stall.entered.wait(5)
    second = Outcome(lambda: pool.release(resource)).start()
    time.sleep(0.05)  # let it find the resource leased, then queue for the lock
    stall.opened.set()
    first.join()
    second.join()
    assert first.error is None
    assert isinstance(second.error, PoolError)
    assert re.search(r"<Resource \d+> is not leased", str(second.error))
    stats = pool.stats()
    assert (stats.in_use, stats.idle, stats.released) == (0, 1, 1)
    assert pool.acquire(timeout=0) is resource
    pool.release(resource)
    pool.close()


def waiter_with(signal: Callable[[threading.Lock], Any]) -> type[ThreadWaiter]:
    """A ``ThreadWaiter`` whose wake-up signal is wrapped by ``signal``."""

    class Waiter(ThreadWaiter):
        def __init__(self) -> None:
            super().__init__()
            self.signal = signal(self.signal)

    return Waiter


class LateSignal:
    """Wakes once granted, yet reports that the wait timed out: the grant
    landed just as the deadline passed."""

    def __init__(self, signal: threading.Lock) -> None:
        self.signal = signal

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.signal.acquire()
        return False

    def release(self) -> None:
        self.signal.release()


class InterruptedSignal(LateSignal):
    """Wakes once granted, then raises as a Ctrl-C landing at that moment would."""

    def __init__(self, signal: threading.Lock, proceed: threading.Event) -> None:
        super().__init__(signal)
        self.proceed = proceed

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.signal.acquire()
        self.proceed.wait(5)
        raise KeyboardInterrupt


def test_a_grant_that_lands_as_a_thread_wait_times_out_is_taken(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = ThreadPool(ledger.make, ledger.release, pool_size=1)
    held = pool.acquire()
    monkeypatch.setattr(_thread_leasing, "ThreadWaiter", waiter_with(LateSignal))
    waiter = Outcome(lambda: pool.acquire(timeout=5)).start()
    wait_until(lambda: pool.stats().waiting == 1)
    pool.release(held)
    waiter.join()
    assert waiter.error is None
    assert waiter.value is held
    stats = pool.stats()
    assert (stats.in_use, stats.idle, stats.waiting, stats.timeouts) == (1, 0, 0, 0)
    pool.release(held)
    assert pool.stats().idle == 1
    pool.close()


@pytest.mark.parametrize("meanwhile", ["nothing", "dispose"])
def test_an_interrupt_that_lands_with_the_grant_passes_the_resource_on(
    meanwhile: str, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    proceed = threading.Event()
    pool = ThreadPool(ledger.make, ledger.release, pool_size=1)
    held = pool.acquire()
    monkeypatch.setattr(
        _thread_leasing,
        "ThreadWaiter",
        waiter_with(lambda signal: InterruptedSignal(signal, proceed)),
    )
    waiter = Outcome(lambda: pool.acquire(timeout=5)).start()
    wait_until(lambda: pool.stats().waiting == 1)
    pool.release(held)  # granted to the waiting thread
    if meanwhile == "dispose":
        pool.dispose()  # the granted resource is stale now
    proceed.set()
    waiter.join()
    assert isinstance(waiter.error, KeyboardInterrupt)
    stats = pool.stats()
    assert (stats.in_use, stats.waiting) == (0, 0)
    if meanwhile == "dispose":
        assert held.released == 1
        assert (stats.size, stats.destroyed) == (0, 1)
    else:
        assert held.released == 0
        assert stats.idle == 1
        assert pool.acquire(timeout=0) is held
        pool.release(held)
    pool.close()


async def test_a_thread_lease_left_during_setup_releases_a_resource_disposed_meanwhile(
    ledger: Ledger,
) -> None:
    entered, opened = threading.Event(), threading.Event()

    def setup(resource: Resource) -> None:
        entered.set()
        opened.wait(5)

    pool = ThreadPool(ledger.make, ledger.release, pool_size=1, setup=setup)

    async def use() -> None:
        async with pool.lease():
            pytest.fail("the lease must not be entered")

    task = asyncio.create_task(use())
    await eventually(entered.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pool.dispose()
    opened.set()
    await eventually(lambda: pool.stats().size == 0)
    assert ledger.made[0].released == 1
    stats = pool.stats()
    assert (stats.in_use, stats.destroyed) == (0, 1)
    pool.close()


async def test_a_thread_lease_left_while_a_stale_resource_is_released_creates_none(
    ledger: Ledger, clock: FakeClock
) -> None:
    entered, opened = threading.Event(), threading.Event()

    def releaser(resource: Resource) -> None:
        entered.set()
        opened.wait(5)
        ledger.release(resource)

    pool = ThreadPool(ledger.make, releaser, pool_size=1, pool_recycle=10, clock=clock)
    pool.prefill()
    clock.advance(20)  # the idle resource is past its lifetime

    async def use() -> None:
        async with pool.lease():
            pytest.fail("the lease must not be entered")

    task = asyncio.create_task(use())
    await eventually(entered.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    opened.set()
    await eventually(lambda: pool.stats().releasing == pool.stats().creating == 0)
    assert len(ledger.made) == 1  # nobody wants a replacement
    assert ledger.made[0].released == 1
    assert pool.stats().size == 0
    pool.close()
