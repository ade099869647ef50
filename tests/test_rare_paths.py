"""Rarer turns, each a contract of its own: hooks that return the wrong kind of
value, callers that leave at awkward moments, timeouts in every phase."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pytest

from escudeiro_pools import (
    AsyncPool,
    PoolClosed,
    PoolError,
    PoolTimeout,
    PoolUnavailable,
    ThreadPool,
)
from tests.kit import AsyncKit, FakeClock, Kit, Ledger, Resource, ThreadKit, until


async def _coroutine(*args: object) -> bool:
    return True


def _returns_a_coroutine(resource: object) -> Any:
    """A plain function returning a coroutine: it slips past the construction check."""
    return _coroutine(resource)


def test_a_thread_pool_check_returning_a_coroutine_counts_as_failed(ledger: Ledger) -> None:
    pool = ThreadKit(ledger).pool(pool_size=1, check=_returns_a_coroutine, check_after_idle=0)
    first = pool.acquire()
    pool.release(first)
    second = pool.acquire()
    assert second is not first
    assert pool.stats().check_failures == 1
    pool.release(second)


def test_a_thread_pool_reset_returning_a_coroutine_discards_the_resource(ledger: Ledger) -> None:
    pool = ThreadKit(ledger).pool(pool_size=1, reset=_returns_a_coroutine)
    first = pool.acquire()
    pool.release(first)
    stats = pool.stats()
    assert (stats.reset_errors, stats.size, first.released) == (1, 0, 1)


def test_a_thread_pool_setup_returning_a_coroutine_fails_that_acquire(ledger: Ledger) -> None:
    pool = ThreadKit(ledger).pool(pool_size=1, setup=_returns_a_coroutine)
    with pytest.raises(TypeError, match="setup returned an awaitable"):
        pool.acquire()
    assert pool.stats().size == 0


def test_a_thread_pool_releaser_returning_a_coroutine_is_a_releaser_error(ledger: Ledger) -> None:
    pool: ThreadPool[object] = ThreadPool(object, _returns_a_coroutine, pool_size=1)
    resource = pool.acquire()
    pool.discard(resource)
    stats = pool.stats()
    assert (stats.releaser_errors, stats.destroyed, stats.size) == (1, 1, 0)


async def test_an_async_check_may_be_a_plain_function(ledger: Ledger) -> None:
    async def factory() -> Resource:
        return ledger.make()

    async def releaser(resource: Resource) -> None:
        ledger.release(resource)

    pool = AsyncPool(
        factory,
        releaser,
        pool_size=1,
        check=lambda resource: not resource.broken,
        check_after_idle=0,
    )
    first = await pool.acquire()
    await pool.release(first)
    first.broken = True
    second = await pool.acquire()
    assert second is not first
    await pool.release(second)


async def test_a_setup_that_outlives_the_deadline_times_out_and_frees_capacity(
    ledger: Ledger,
) -> None:
    async def setup(resource: Resource) -> None:
        await asyncio.sleep(10)

    pool = AsyncKit(ledger).pool(pool_size=1, setup=setup)
    with pytest.raises(PoolTimeout, match="setting up"):
        await pool.acquire(timeout=0.05)
    await AsyncKit(ledger).settle(pool)
    assert pool.stats().size == 0
    assert ledger.made[0].released == 1


async def test_a_prefill_creation_bounded_by_acquire_timeout(ledger: Ledger) -> None:
    pool = AsyncKit(ledger).pool(pool_size=2, acquire_timeout=0.05)
    ledger.factory_delay = 1
    with pytest.raises(ExceptionGroup) as caught:
        await pool.prefill()
    assert all(isinstance(e, PoolTimeout) for e in caught.value.exceptions)
    assert "creating a resource took more than" in str(caught.value.exceptions[0])
    assert pool.stats().timeouts == 0  # acquires only
    assert pool.stats().size == 0


async def test_a_releaser_cancelled_by_the_loop_is_counted(ledger: Ledger) -> None:
    async def releaser(resource: Resource) -> None:
        raise asyncio.CancelledError

    pool = AsyncKit(ledger).pool(pool_size=1, releaser=releaser)
    resource = await pool.acquire()
    await pool.discard(resource)
    stats = pool.stats()
    assert (stats.releaser_errors, stats.destroyed, stats.size) == (1, 1, 0)
    await pool.prefill()
    with pytest.raises(ExceptionGroup, match="failed to release") as caught:
        await pool.dispose()
    assert "was cancelled" in str(caught.value.exceptions[0])


async def test_wait_ready_and_resize_on_a_closed_or_failing_pool(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=2)
    await kit.close(pool)
    with pytest.raises(PoolClosed):
        if kit.flavour == "async":
            await pool.wait_ready(1)
        else:
            await asyncio.to_thread(pool.wait_ready, 1)
    await kit.open(pool)
    await kit.prefill(pool)
    ledger.releaser_failures = 1
    with pytest.raises(ExceptionGroup, match="1 of 1 resource failed to release"):
        if kit.flavour == "async":
            await pool.resize(1)
        else:
            await asyncio.to_thread(pool.resize, 1)
    assert kit.stats(pool).size == 1


async def test_a_waiter_cancelled_while_the_stale_resource_it_took_is_released(
    ledger: Ledger, clock: FakeClock
) -> None:
    kit = AsyncKit(ledger)
    pool = kit.pool(pool_size=1, pool_recycle=10, recycle_jitter=0, clock=clock)
    old = await pool.acquire()
    await pool.release(old)
    clock.advance(11)
    ledger.releaser_delay = 0.05
    caller = asyncio.create_task(pool.acquire(timeout=5))
    while pool.stats().releasing == 0:
        await asyncio.sleep(0.001)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await kit.settle(pool)
    stats = pool.stats()
    assert (stats.size, stats.creating, stats.releasing) == (0, 0, 0)
    assert old.released == 1
    fresh = await pool.acquire(timeout=1)  # its capacity came back
    await pool.release(fresh)


async def test_a_stale_resource_met_while_the_pool_closes_is_not_replaced(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    released = threading.Event()  # the releaser finishes only once close() began

    async def slow_async(resource: Resource) -> None:
        while not released.is_set():
            await asyncio.sleep(0.001)
        ledger.release(resource)

    def slow(resource: Resource) -> None:
        released.wait(5)
        ledger.release(resource)

    releaser = slow_async if kit.flavour == "async" else slow
    pool = kit.pool(pool_size=2, pool_recycle=10, recycle_jitter=0, clock=clock, releaser=releaser)
    old = await kit.acquire(pool)
    held = await kit.acquire(pool)
    await kit.release(pool, old)
    clock.advance(11)
    caller = asyncio.create_task(kit.acquire(pool, timeout=5))
    while kit.stats(pool).releasing == 0:
        await asyncio.sleep(0.001)
    closing = asyncio.create_task(kit.close(pool, timeout=0.01))
    while not kit.stats(pool).closed:
        await asyncio.sleep(0.001)
    released.set()
    with pytest.raises(PoolClosed):
        await caller
    await closing
    await kit.release(pool, held)
    await kit.settle(pool)
    ledger.assert_released_once()


def test_a_double_release_racing_itself_is_refused_once() -> None:
    pool = ThreadKit(Ledger()).pool(pool_size=1)
    resource = pool.acquire()
    outcomes: list[BaseException | None] = []

    def release() -> None:
        try:
            pool.release(resource)
            outcomes.append(None)
        except PoolError as exc:
            outcomes.append(exc)

    racers = [threading.Thread(target=release) for _ in range(2)]
    with pool._lock:  # both look the resource up under the lock, one after the other
        for racer in racers:
            racer.start()
    for racer in racers:
        racer.join(5)
    assert outcomes.count(None) == 1
    assert "not leased" in str(next(o for o in outcomes if o is not None))
    assert pool.stats().idle == 1


# -- what mutation testing asked for: leases driven by hand, loops taken over ------------


def test_the_timeout_default_reads_as_the_pools_acquire_timeout() -> None:
    import inspect

    from escudeiro_pools._protocol import CREATE, EXPIRED

    assert "= <the pool's acquire_timeout>" in str(inspect.signature(AsyncPool.acquire))
    assert "= <the pool's acquire_timeout>" in str(inspect.signature(ThreadPool.acquire))
    assert (repr(CREATE), repr(EXPIRED)) == ("CREATE", "EXPIRED")


@pytest.mark.parametrize("flavour", ["async", "thread"])
def test_lease_presents_itself_to_fastapi_as_an_async_generator(flavour: str) -> None:
    import inspect

    ledger = Ledger()
    pool = (AsyncKit if flavour == "async" else ThreadKit)(ledger).pool()
    twin = inspect.unwrap(pool.lease)
    assert inspect.isasyncgenfunction(twin)
    assert twin.__name__ == "lease"
    assert list(inspect.signature(pool.lease).parameters) == []


def _trace_from_elsewhere() -> TracebackType:
    try:
        raise KeyError("here")
    except KeyError as exc:
        assert exc.__traceback__ is not None
        return exc.__traceback__


def _walk(trace: TracebackType | None) -> Iterator[TracebackType]:
    while trace is not None:
        yield trace
        trace = trace.tb_next


async def test_athrow_builds_the_error_from_a_class_a_value_and_a_traceback(ledger: Ledger) -> None:
    pool = AsyncKit(ledger).pool(pool_size=1)
    trace = _trace_from_elsewhere()
    lease = pool.lease()
    await lease.__anext__()
    with pytest.raises(ValueError) as caught:
        await lease.athrow(ValueError, "boom", trace)
    assert str(caught.value) == "boom"
    frames = [entry.tb_frame for entry in _walk(caught.value.__traceback__)]
    assert trace.tb_frame in frames
    lease = pool.lease()
    await lease.__anext__()
    with pytest.raises(ValueError) as bare:
        await lease.athrow(ValueError)
    assert str(bare.value) == ""
    instance = ValueError("as is")
    lease = pool.lease()
    await lease.__anext__()
    with pytest.raises(ValueError) as given:
        await lease.athrow(ValueError, instance)
    assert given.value is instance
    assert pool.stats().idle == 1  # an ordinary error: the resource went back


@pytest.mark.parametrize("flavour", ["async", "thread"])
@pytest.mark.parametrize("interrupt", [asyncio.CancelledError, KeyboardInterrupt])
async def test_athrow_of_an_interrupt_discards_the_resource(
    flavour: str, interrupt: type[BaseException], ledger: Ledger
) -> None:
    pool = (AsyncKit if flavour == "async" else ThreadKit)(ledger).pool(pool_size=1)
    lease = pool.lease()
    resource = await lease.__anext__()
    with pytest.raises(interrupt):
        await lease.athrow(interrupt)
    await AsyncKit(ledger).settle(pool)
    assert resource.released == 1
    assert pool.stats().discarded == 1


async def test_an_async_lease_can_be_made_directly(ledger: Ledger) -> None:
    from escudeiro_pools import AsyncLease

    pool = AsyncKit(ledger).pool(pool_size=1)
    async with AsyncLease(pool) as resource:
        assert pool.stats().in_use == 1
    assert pool.stats().idle == 1
    assert isinstance(resource, Resource)


async def test_a_thread_lease_left_by_async_with_cannot_be_entered_again(ledger: Ledger) -> None:
    pool = ThreadKit(ledger).pool(pool_size=1)
    lease = pool.lease()
    async with lease:
        pass
    with pytest.raises(PoolError, match="entered once"):
        await lease.__aenter__()
    with pytest.raises(PoolError, match="entered once"):
        lease.__enter__()


def test_a_pool_taken_over_by_a_new_loop_forgets_the_old_one_whole(ledger: Ledger) -> None:
    pool = AsyncKit(ledger).pool(pool_size=4)
    leases: list[Any] = []

    async def first_loop() -> None:
        await pool.prefill(3)
        lease = pool.lease()
        await lease.__aenter__()  # still open when this loop ends
        leases.append(lease)
        held = await pool.acquire()
        leases.append(held)

    asyncio.run(first_loop())
    before = pool.stats()
    assert (before.size, before.in_use, before.idle) == (3, 2, 1)

    async def second_loop() -> None:
        fresh = await pool.acquire()  # takes the pool over: the old resources are abandoned
        stats = pool.stats()
        assert (stats.size, stats.in_use, stats.idle, stats.waiting) == (1, 1, 0, 0)
        assert (stats.creating, stats.releasing, stats.checking) == (0, 0, 0)
        assert stats.abandoned == 3
        assert stats.acquired == before.acquired + 1
        await leases[0].__aexit__(None, None, None)  # an old lease: inert
        with pytest.raises(PoolError, match="not acquired from this pool"):
            await pool.release(leases[1])
        await pool.release(fresh)
        again = pool.stats()
        assert (again.in_use, again.idle, again.released) == (0, 1, before.released + 1)
        await pool.close()

    asyncio.run(second_loop())
    assert not any(r.released for r in ledger.made[:3])  # never touched from another loop


@pytest.mark.parametrize("ending", ["asyncio.run", "closed mid-probe"])
def test_a_pool_failing_fast_when_its_loop_ends_probes_again_in_the_next(
    ledger: Ledger, ending: str
) -> None:
    """``asyncio.run`` cancels the probe as its loop ends; a loop merely closed
    leaves it pending forever, and the takeover must not wait for it."""
    pool = AsyncKit(ledger).pool(pool_size=2, fail_fast_after=1, retry_backoff=(0.01, 0.02))
    ledger.factory_delay = 0.05

    async def first_loop() -> None:
        ledger.factory_failures = 1
        with pytest.raises(ConnectionError):
            await pool.acquire()
        assert not pool.stats().available
        await asyncio.sleep(0.02)  # a probe is in flight when this loop ends

    if ending == "asyncio.run":
        asyncio.run(first_loop())
    else:
        loop = asyncio.new_event_loop()
        loop.run_until_complete(first_loop())
        loop.close()

    async def second_loop() -> None:
        for _ in range(500):
            try:
                resource = await pool.acquire()
                break
            except PoolUnavailable:
                await asyncio.sleep(0.01)
        else:
            raise AssertionError("the pool never probed again")
        assert pool.stats().available
        await pool.release(resource)
        await pool.close()

    asyncio.run(second_loop())


def test_takeovers_count_everything_each_one_abandons(ledger: Ledger) -> None:
    """A loop closed with work in flight: the next loop's takeover counts the
    leased and releasing resources abandoned (an unfinished creation made none),
    and the dead loop's tasks never touch the pool again."""
    import gc

    kit = AsyncKit(ledger)
    pool = kit.pool(pool_size=4, releaser_timeout=None)
    first = asyncio.new_event_loop()

    async def busy() -> None:
        await pool.prefill(2)
        doomed = await pool.acquire()
        ledger.releaser_delay = 10
        held = await pool.acquire()
        assert held is not None
        ledger.factory_delay = 10
        asyncio.get_running_loop().create_task(pool.acquire())  # stays in the factory
        releasing = asyncio.get_running_loop().create_task(pool.discard(doomed))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not releasing.done()

    first.run_until_complete(busy())
    stats = pool.stats()
    assert (stats.size, stats.in_use, stats.creating, stats.releasing) == (3, 1, 1, 1)
    first.close()  # without letting its tasks finish
    ledger.factory_delay = ledger.releaser_delay = 0

    async def take_over(expected_abandoned: int) -> None:
        resource = await pool.acquire()
        gc.collect()  # the dead loop's tasks must not run their cleanup now
        stats = pool.stats()
        assert stats.abandoned == expected_abandoned
        assert (stats.size, stats.in_use, stats.creating, stats.releasing) == (1, 1, 0, 0)

        lease = pool.lease()
        await lease.__aenter__()  # left open when this loop ends
        del resource

    asyncio.run(take_over(2))
    asyncio.run(take_over(2 + 2))
    final = pool.stats()
    assert (final.abandoned, final.destroyed, final.size, final.creating) == (4, 0, 2, 0)
    assert final.created == final.destroyed + final.abandoned + final.size - final.creating
    assert final.acquired == final.released + final.in_use + 1 + 2  # leases lost with loops


def test_a_lease_in_a_new_loop_never_lends_the_last_loops_resource(ledger: Ledger) -> None:
    pool = AsyncKit(ledger).pool(pool_size=2)

    async def lease_once() -> tuple[Resource, int]:
        async with pool.lease() as resource:
            return resource, pool.stats().abandoned

    old, abandoned = asyncio.run(lease_once())
    assert abandoned == 0
    new, abandoned = asyncio.run(lease_once())
    assert new is not old
    assert (abandoned, old.released) == (1, 0)


def test_tasks_of_a_closed_loop_collected_before_any_takeover_leave_the_pool_alone(
    ledger: Ledger,
) -> None:
    """A loop closed with pool work pending (a creation, a releaser, the
    maintainer, a waiter): when its tasks are collected, their cleanup must
    neither raise nor touch the loop that is gone, and the pool serves the
    next loop in full."""
    import gc

    kit = AsyncKit(ledger)
    pool = kit.pool(pool_size=3, min_size=1, releaser_timeout=None)
    loop = asyncio.new_event_loop()

    async def busy() -> None:
        await pool.prefill(1)
        doomed = await pool.acquire()
        await pool.acquire()
        ledger.factory_delay = ledger.releaser_delay = 0.3
        # Unreferenced on purpose: collected once their loop is closed.
        asyncio.create_task(pool.acquire())  # noqa: RUF006 - creates
        asyncio.create_task(pool.discard(doomed))  # noqa: RUF006 - releases
        for _ in range(5):
            await asyncio.sleep(0)
        asyncio.create_task(pool.acquire())  # noqa: RUF006 - waits
        for _ in range(5):
            await asyncio.sleep(0)
        stats = pool.stats()
        assert (stats.creating, stats.releasing, stats.waiting) == (1, 1, 1)

    loop.run_until_complete(busy())
    loop.close()
    gc.collect()
    ledger.factory_delay = ledger.releaser_delay = 0

    async def next_loop() -> None:
        resources = [await pool.acquire(timeout=5) for _ in range(3)]
        assert pool.stats().abandoned == 2  # the two leased in the loop that is gone
        for resource in resources:
            await pool.release(resource)
        await pool.close()

    asyncio.run(next_loop())


def test_thread_pool_callers_whose_loop_closed_cost_nothing(ledger: Ledger) -> None:
    """``async with thread_pool.lease()`` creating in a thread, or waiting, when
    its loop closes: what each was to get goes back to the pool, and the
    collected tasks' cleanup neither raises nor counts a wait twice."""
    import gc

    pool = ThreadKit(ledger).pool(pool_size=2)
    held = pool.acquire()
    loop = asyncio.new_event_loop()

    async def lease() -> None:
        async with pool.lease():
            pass  # pragma: no cover - never reached: the loop closes first

    async def start() -> None:
        ledger.factory_delay = 0.2
        # Unreferenced on purpose: collected once their loop is closed.
        loop.create_task(lease())  # noqa: RUF006 - creates, in a thread
        loop.create_task(lease())  # noqa: RUF006 - waits
        while pool.stats().waiting == 0 or pool.stats().creating == 0:
            await asyncio.sleep(0.001)

    loop.run_until_complete(start())
    loop.close()
    pool.release(held)  # its grant cannot reach the closed loop: the resource is pooled
    while pool.stats().creating:
        time.sleep(0.01)
    for _ in range(3):
        gc.collect()
    # A resource refused by a collected task is pooled, or released aside.
    until(lambda: not pool.stats().releasing and not pool.stats().in_use)
    stats = pool.stats()
    assert (stats.waiting, stats.in_use, stats.size) == (0, 0, stats.idle)
    assert stats.idle == 2 - stats.destroyed
    with pool.lease() as again, pool.lease() as other:
        assert {again, other} >= {held}
    assert pool.stats().waiting == 0
    pool.close()
