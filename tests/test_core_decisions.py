"""The pool's bookkeeping, pinned through what both pools show of it.

Counters count every event, not just the first; gauges return to zero
after work that overlapped; a lease taken before an observer came is timed
from its start; resources being released still count against
``pool_size``; a grant a waiter leaves behind (lent, being checked, or a
new capacity) is passed on without changing how often the resource was
used; shrinking keeps the pool within its new size across every return;
``close()`` waits for every lease; and ``resize`` reports bad sizes by name.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from escudeiro_pools import LeaseInfo, PoolBusy, PoolError, PoolUnavailable
from tests.kit import (
    AsyncKit,
    FakeClock,
    Kit,
    Ledger,
    Resource,
    Timings,
    as_factory,
    assert_gauges_add_up,
    detach,
    eventually,
    resize,
)

# -- helpers -------------------------------------------------------------------------


class Latch:
    """Wraps a hook of ``kit``'s flavour so each call waits until the latch opens.

    It opens by ``open()`` or, with ``opens_at``, once that many calls are
    inside at once. While ``armed`` is False calls pass straight through.
    """

    def __init__(self, kit: Kit, opens_at: int | None = None) -> None:
        self.flavour = kit.flavour
        self.opens_at = opens_at
        self.armed = True
        self.entered = 0
        self._lock = threading.Lock()
        self._opened = threading.Event()

    def open(self) -> None:
        self._opened.set()

    def _arrive(self) -> None:
        with self._lock:
            self.entered += 1
            if self.opens_at is not None and self.entered >= self.opens_at:
                self._opened.set()

    def wrap(self, then: Callable[..., Any]) -> Callable[..., Any]:
        if self.flavour == "async":

            async def waits(*args: Any) -> Any:
                if self.armed:
                    self._arrive()
                    for _ in range(5000):
                        if self._opened.is_set():
                            break
                        await asyncio.sleep(0.001)
                    else:
                        raise AssertionError("the latch never opened")
                return then(*args)

            return waits

        def blocks(*args: Any) -> Any:
            if self.armed:
                self._arrive()
                if not self._opened.wait(5):
                    raise AssertionError("the latch never opened")
            return then(*args)

        return blocks

    async def reached(self, count: int) -> None:
        await eventually(lambda: self.entered >= count)


def start_waiter(kit: Kit, pool: Any) -> asyncio.Task[Any]:
    """An acquire that will queue, waiting on this event loop (a ``ThreadPool``'s
    through its ``async with`` lease), so a grant reaches it only when the loop runs."""
    if kit.flavour == "async":
        return asyncio.create_task(pool.acquire(timeout=5))
    return asyncio.create_task(pool.lease().__aenter__())


async def release_now(kit: Kit, pool: Any, resource: Resource) -> None:
    """Release without letting the event loop run (no reset, no releaser to wait for)."""
    if kit.flavour == "async":
        await pool.release(resource)
    else:
        pool.release(resource)


async def cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def waiting(kit: Kit, pool: Any, count: int) -> None:
    await eventually(lambda: kit.stats(pool).waiting == count)


# -- observers ---------------------------------------------------------------------


async def test_removing_one_observer_keeps_the_others(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    kept, removed = Timings(), Timings()
    pool.add_observer(removed)
    pool.add_observer(kept)
    pool.remove_observer(removed)
    async with kit.lease(pool):
        pass
    assert (len(kept.waits), len(kept.uses)) == (1, 1)
    assert removed.waits == removed.uses == []
    pool.add_observer(removed)  # and it can come back
    async with kit.lease(pool):
        pass
    assert (len(kept.uses), len(removed.uses)) == (2, 1)


async def test_a_lease_out_when_another_observer_comes_is_timed_from_its_start(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, clock=clock)
    first, second = Timings(), Timings()
    pool.add_observer(first)
    resource = await kit.acquire(pool)
    clock.advance(10)
    pool.add_observer(second)
    clock.advance(5)
    await kit.release(pool, resource)
    assert first.uses == second.uses == [15.0]


async def test_removing_the_last_observer_stops_timing_leases(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    timings = Timings()
    pool.add_observer(timings)
    pool.remove_observer(timings)
    resource = await kit.acquire(pool)
    assert pool.leases() == (LeaseInfo(None, None),)
    await kit.release(pool, resource)


async def test_an_observer_is_told_short_uses_as_they_are(kit: Kit, clock: FakeClock) -> None:
    pool = kit.pool(pool_size=1, clock=clock)
    timings = Timings()
    pool.add_observer(timings)
    resource = await kit.acquire(pool)
    clock.advance(0.25)
    await kit.release(pool, resource)
    async with kit.lease(pool):
        pass
    assert timings.uses == [0.25, 0.0]


async def test_an_observer_is_told_how_long_the_factory_took(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    def slow_make() -> Resource:
        clock.advance(3)
        return ledger.make()

    pool = kit.pool(pool_size=1, clock=clock, factory=as_factory(kit, slow_make))
    timings = Timings()
    pool.add_observer(timings)
    async with kit.lease(pool):
        pass
    assert timings.creates == [3.0]


async def test_without_leak_watch_a_reused_lease_has_no_site(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    pool.add_observer(Timings())
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)
    resource = await kit.acquire(pool)
    [info] = pool.leases()
    assert info.age is not None and info.site is None
    await kit.release(pool, resource)


async def test_a_resource_being_set_up_is_listed_as_leased(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    latch = Latch(kit)
    pool = kit.pool(pool_size=1, clock=clock, setup=latch.wrap(lambda resource: None))
    pool.add_observer(Timings())
    acquiring = asyncio.create_task(kit.acquire(pool, timeout=5))
    await latch.reached(1)
    assert pool.leases() == (LeaseInfo(0.0, None),)
    latch.open()
    await kit.release(pool, await acquiring)


async def test_a_resource_handed_to_a_waiter_is_listed_as_leased_before_it_wakes(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, clock=clock)
    pool.add_observer(Timings())
    held = await kit.acquire(pool)
    waiter = start_waiter(kit, pool)
    await waiting(kit, pool, 1)
    await release_now(kit, pool, held)
    assert pool.leases() == (LeaseInfo(0.0, None),)
    assert await waiter is held
    await kit.release(pool, held)


# -- counters count every event ------------------------------------------------------


async def test_every_refused_caller_is_counted_rejected(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, max_waiting=0)
    held = await kit.acquire(pool)
    for _ in range(2):
        with pytest.raises(PoolBusy):
            await kit.acquire(pool, timeout=5)
    assert kit.stats(pool).rejected == 2
    await kit.release(pool, held)


async def test_every_failed_check_and_its_replacement_are_counted(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=2, clock=clock, check=lambda resource: False, check_after_idle=0)
    await kit.prefill(pool)
    held = [await kit.acquire(pool) for _ in range(2)]
    await kit.settle(pool)
    stats = kit.stats(pool)
    assert (stats.check_failures, stats.destroyed, stats.created) == (2, 2, 4)
    for resource in held:
        await kit.release(pool, resource)


async def test_every_return_through_reset_is_counted_released(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, reset=lambda resource: None)
    for _ in range(2):
        async with kit.lease(pool):
            pass
    stats = kit.stats(pool)
    assert (stats.released, stats.acquired, stats.idle) == (2, 2, 1)


async def test_every_discard_is_counted(kit: Kit) -> None:
    pool = kit.pool(pool_size=2)
    held = [await kit.acquire(pool) for _ in range(2)]
    for resource in held:
        await kit.discard(pool, resource)
    stats = kit.stats(pool)
    assert (stats.discarded, stats.released, stats.destroyed) == (2, 2, 2)


async def test_every_failed_reset_is_counted(kit: Kit) -> None:
    def failing_reset(resource: Resource) -> None:
        raise OSError("reset failed")

    pool = kit.pool(pool_size=1, reset=failing_reset)
    for _ in range(2):
        async with kit.lease(pool):
            pass
    await kit.settle(pool)
    stats = kit.stats(pool)
    assert (stats.reset_errors, stats.destroyed, stats.idle) == (2, 2, 0)


@pytest.mark.parametrize("with_reset", [False, True])
async def test_every_dead_return_is_counted_a_check_failure(kit: Kit, with_reset: bool) -> None:
    options: dict[str, Any] = {"reset": lambda resource: None} if with_reset else {}
    pool = kit.pool(pool_size=1, alive=lambda resource: False, **options)
    for _ in range(2):
        async with kit.lease(pool):
            pass
    await kit.settle(pool)
    stats = kit.stats(pool)
    assert (stats.check_failures, stats.idle, stats.destroyed) == (2, 0, 2)


async def test_alive_judges_the_returned_resource_before_reset(kit: Kit) -> None:
    seen: list[Resource] = []

    def alive(resource: Resource) -> bool:
        seen.append(resource)
        return True

    pool = kit.pool(pool_size=1, alive=alive, reset=lambda resource: None)
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)
    stats = kit.stats(pool)
    assert (stats.idle, stats.check_failures) == (1, 0)
    assert seen and all(item is resource for item in seen)


async def test_every_detach_is_counted_and_frees_its_lease(kit: Kit) -> None:
    pool = kit.pool(pool_size=2)
    timings = Timings()
    pool.add_observer(timings)
    held = [await kit.acquire(pool) for _ in range(2)]
    for resource in held:
        await detach(kit, pool, resource)
    stats = kit.stats(pool)
    assert (stats.detached, stats.released, stats.in_use, stats.acquired) == (2, 2, 0, 2)
    assert len(timings.uses) == 2
    assert_gauges_add_up(stats)


async def test_every_waiter_that_gives_up_is_counted_with_its_wait(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    held = await kit.acquire(pool)
    waiters = [start_waiter(kit, pool) for _ in range(2)]
    await waiting(kit, pool, 2)
    for waiter in waiters:
        await cancel(waiter)
    stats = kit.stats(pool)
    assert stats.waits == 2
    assert 0 < stats.wait_time_max < stats.wait_time_total
    await kit.release(pool, held)


async def test_every_waiter_refused_by_an_outage_is_counted_unavailable(
    kit: Kit, ledger: Ledger
) -> None:
    latch = Latch(kit)
    latch.armed = False
    pool = kit.pool(pool_size=2, fail_fast_after=1, factory=latch.wrap(ledger.make))
    held = await kit.acquire(pool)
    latch.armed = True
    creator = asyncio.create_task(kit.acquire(pool, timeout=5))
    await latch.reached(1)
    waiters = [asyncio.create_task(kit.acquire(pool, timeout=5)) for _ in range(2)]
    await waiting(kit, pool, 2)
    ledger.factory_failures = 1
    latch.open()
    with pytest.raises(ConnectionError):
        await creator
    for waiter in waiters:
        with pytest.raises(PoolUnavailable):
            await waiter
    assert kit.stats(pool).unavailable == 2
    await kit.release(pool, held)


# -- gauges after overlapping work ---------------------------------------------------


async def test_overlapping_creations_leave_no_creation_counted(kit: Kit, ledger: Ledger) -> None:
    latch = Latch(kit, opens_at=2)
    pool = kit.pool(pool_size=2, factory=latch.wrap(ledger.make))
    held = await asyncio.gather(*(kit.acquire(pool, timeout=5) for _ in range(2)))
    stats = kit.stats(pool)
    assert (stats.creating, stats.size, stats.in_use) == (0, 2, 2)
    assert_gauges_add_up(stats)
    for resource in held:
        await kit.release(pool, resource)


async def test_overlapping_checks_leave_no_check_counted(kit: Kit, clock: FakeClock) -> None:
    latch = Latch(kit, opens_at=2)
    pool = kit.pool(
        pool_size=2, clock=clock, check=latch.wrap(lambda resource: True), check_after_idle=0
    )
    latch.armed = False
    await kit.prefill(pool)
    latch.armed = True
    held = await asyncio.gather(*(kit.acquire(pool, timeout=5) for _ in range(2)))
    stats = kit.stats(pool)
    assert (stats.checking, stats.in_use, stats.created) == (0, 2, 2)
    assert_gauges_add_up(stats)
    for resource in held:
        await kit.release(pool, resource)


async def test_overlapping_resets_leave_no_reset_counted(kit: Kit) -> None:
    latch = Latch(kit, opens_at=2)
    pool = kit.pool(pool_size=2, reset=latch.wrap(lambda resource: None))
    held = [await kit.acquire(pool) for _ in range(2)]
    await asyncio.gather(*(kit.release(pool, resource) for resource in held))
    stats = kit.stats(pool)
    assert (stats.resetting, stats.idle, stats.in_use) == (0, 2, 0)
    assert_gauges_add_up(stats)


async def test_a_replacement_overlapping_another_creation_leaves_no_creation_counted(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    creations = Latch(kit, opens_at=2)
    releases = Latch(kit)
    creations.armed = releases.armed = False
    pool = kit.pool(
        pool_size=2,
        clock=clock,
        check=lambda resource: not resource.broken,
        check_after_idle=0,
        factory=creations.wrap(ledger.make),
        releaser=releases.wrap(ledger.release),
    )
    await kit.prefill(pool, 1)
    ledger.made[0].broken = True
    creations.armed = releases.armed = True
    replacing = asyncio.create_task(kit.acquire(pool, timeout=5))  # releases the broken one
    await releases.reached(1)
    creating = asyncio.create_task(kit.acquire(pool, timeout=5))  # creates meanwhile
    await creations.reached(1)
    releases.open()  # the first caller now creates in the broken one's place
    held = [await replacing, await creating]
    stats = kit.stats(pool)
    assert (stats.creating, stats.size, stats.in_use, stats.destroyed) == (0, 2, 2, 1)
    assert_gauges_add_up(stats)
    for resource in held:
        await kit.release(pool, resource)


# -- capacity --------------------------------------------------------------------------


async def test_prefill_counts_leased_resources_against_pool_size(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=2)
    held = await kit.acquire(pool)
    await kit.prefill(pool)
    stats = kit.stats(pool)
    assert (stats.size, stats.idle, len(ledger.made)) == (2, 1, 2)
    await kit.release(pool, held)


async def test_prefill_counts_idle_resources_towards_its_target(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=3)
    await kit.prefill(pool, 1)
    await kit.prefill(pool, 1)
    assert (kit.stats(pool).size, len(ledger.made)) == (1, 1)


async def test_overlapping_prefills_each_count_the_other_in_flight(
    kit: Kit, ledger: Ledger
) -> None:
    latch = Latch(kit, opens_at=3)
    pool = kit.pool(pool_size=4, factory=latch.wrap(ledger.make))
    first = asyncio.create_task(kit.prefill(pool, 2))
    await latch.reached(2)
    second = asyncio.create_task(kit.prefill(pool, 3))  # one more: the latch opens
    await first
    await second
    assert kit.stats(pool).idle == 3
    await kit.prefill(pool, 3)  # already there
    assert (kit.stats(pool).size, len(ledger.made)) == (3, 3)


async def test_a_resource_being_released_still_counts_against_pool_size(
    kit: Kit, ledger: Ledger
) -> None:
    releases = Latch(kit)
    pool = kit.pool(pool_size=2, releaser=releases.wrap(ledger.release))
    kept, broken = await kit.acquire(pool), await kit.acquire(pool)
    discarding = asyncio.create_task(kit.discard(pool, broken))
    await releases.reached(1)
    await kit.prefill(pool)  # no room: nothing to create
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await waiting(kit, pool, 1)
    await resize(kit, pool, 2)  # not growing: still no room for the waiter
    stats = kit.stats(pool)
    assert (stats.size, stats.waiting, stats.creating, len(ledger.made)) == (2, 1, 0, 2)
    releases.open()
    await discarding
    fresh = await waiter
    assert fresh not in (kept, broken)
    assert kit.stats(pool).size == 2
    for resource in (kept, fresh):
        await kit.release(pool, resource)


# -- grants left behind by waiters -------------------------------------------------------


async def test_a_resource_a_waiter_left_behind_is_not_counted_as_a_use(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, max_uses=4)
    resource = await kit.acquire(pool)  # use 1
    await kit.release(pool, resource)
    await kit.acquire(pool)  # use 2
    waiter = start_waiter(kit, pool)
    await waiting(kit, pool, 1)
    await release_now(kit, pool, resource)  # granted to the waiter...
    await cancel(waiter)  # ...which left before it took it
    assert kit.stats(pool).idle == 1
    for recycled in (0, 1):  # uses 3 and 4
        assert await kit.acquire(pool) is resource
        await kit.release(pool, resource)
        assert kit.stats(pool).recycled == recycled


async def test_a_resource_a_waiter_left_while_it_awaited_its_check_is_pooled(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, clock=clock, check=lambda resource: True, check_after_idle=0)
    resource = await kit.acquire(pool)
    waiter = start_waiter(kit, pool)
    await waiting(kit, pool, 1)
    await release_now(kit, pool, resource)  # granted, to be checked by the waiter...
    await cancel(waiter)  # ...which left first
    stats = kit.stats(pool)
    assert (stats.checking, stats.idle, stats.in_use) == (0, 1, 0)
    assert_gauges_add_up(stats)


async def test_an_expired_resource_is_released_even_when_its_waiter_leaves(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, clock=clock, pool_recycle=10, recycle_jitter=0)
    resource = await kit.acquire(pool)
    waiter = start_waiter(kit, pool)
    await waiting(kit, pool, 1)
    clock.advance(10)
    await release_now(kit, pool, resource)  # expired: released, not handed over
    await cancel(waiter)
    await kit.settle(pool)
    stats = kit.stats(pool)
    assert (stats.size, stats.idle, stats.in_use, stats.recycled) == (0, 0, 0, 1)
    assert_gauges_add_up(stats)
    ledger.assert_released_once()


async def test_a_resource_expiring_exactly_as_it_returns_is_replaced_for_the_waiter(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, clock=clock, pool_recycle=10, recycle_jitter=0)
    resource = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await waiting(kit, pool, 1)
    clock.advance(10)  # its lifetime ends now
    await kit.release(pool, resource)
    fresh = await waiter
    assert fresh is not resource
    await kit.settle(pool)
    assert (resource.released, kit.stats(pool).recycled) == (1, 1)
    await kit.release(pool, fresh)


async def test_a_hand_over_counts_as_one_use(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, max_uses=3)
    resource = await kit.acquire(pool)  # use 1
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await waiting(kit, pool, 1)
    await kit.release(pool, resource)
    assert await waiter is resource  # use 2
    await kit.release(pool, resource)
    assert kit.stats(pool).recycled == 0
    assert await kit.acquire(pool) is resource  # use 3
    await kit.release(pool, resource)
    assert kit.stats(pool).recycled == 1


async def test_a_returned_resource_handed_to_a_waiter_is_tested_alive_once(kit: Kit) -> None:
    tested: list[Resource] = []

    def alive(resource: Resource) -> bool:
        tested.append(resource)
        return True

    pool = kit.pool(pool_size=1, alive=alive)
    resource = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await waiting(kit, pool, 1)
    await kit.release(pool, resource)
    assert await waiter is resource
    assert tested == [resource]
    await kit.release(pool, resource)


async def test_setup_does_not_hide_uses_from_max_uses(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=1, max_uses=2, setup=lambda resource: None)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    assert await kit.acquire(pool) is first
    await kit.release(pool, first)
    assert kit.stats(pool).recycled == 1
    assert await kit.acquire(pool) is not first


# -- grants to waiters that left but have not run yet (AsyncPool) ---------------------


@pytest.fixture
def akit(ledger: Ledger) -> AsyncKit:
    return AsyncKit(ledger)


async def left_waiter(pool: Any) -> asyncio.Task[Any]:
    """A queued acquire, cancelled: it has left, but has not run to say so yet."""
    waiter = asyncio.create_task(pool.acquire(timeout=5))
    await eventually(lambda: pool.stats().waiting == 1)
    waiter.cancel()
    return waiter


async def test_a_return_nobody_takes_is_pooled_without_counting_a_use(akit: AsyncKit) -> None:
    pool = akit.pool(pool_size=1, max_uses=4)
    resource = await pool.acquire()
    await pool.release(resource)
    await pool.acquire()  # use 2
    waiter = await left_waiter(pool)
    await pool.release(resource)
    await cancel(waiter)
    stats = pool.stats()
    assert (stats.idle, stats.in_use, stats.waiting) == (1, 0, 0)
    for recycled in (0, 1):  # uses 3 and 4
        assert await pool.acquire() is resource
        await pool.release(resource)
        assert pool.stats().recycled == recycled


async def test_a_return_nobody_takes_to_check_is_pooled(akit: AsyncKit, clock: FakeClock) -> None:
    pool = akit.pool(pool_size=1, clock=clock, check=lambda resource: True, check_after_idle=0)
    resource = await pool.acquire()
    waiter = await left_waiter(pool)
    await pool.release(resource)
    await cancel(waiter)
    stats = pool.stats()
    assert (stats.checking, stats.idle, stats.in_use) == (0, 1, 0)
    assert_gauges_add_up(stats)


async def test_capacity_nobody_takes_is_not_left_reserved(akit: AsyncKit) -> None:
    pool = akit.pool(pool_size=1)
    resource = await pool.acquire()
    waiter = await left_waiter(pool)
    await pool.detach(resource)
    await cancel(waiter)
    stats = pool.stats()
    assert (stats.creating, stats.size, stats.detached) == (0, 0, 1)
    assert_gauges_add_up(stats)


async def test_closing_with_only_a_departed_waiter_counts_no_refusal(akit: AsyncKit) -> None:
    pool = akit.pool(pool_size=1)
    resource = await pool.acquire()
    waiter = await left_waiter(pool)
    await pool.release(resource)
    await pool.close()
    await cancel(waiter)
    stats = pool.stats()
    assert (stats.unavailable, stats.idle, stats.size) == (0, 0, 0)


async def test_an_outage_with_only_a_departed_waiter_counts_no_refusal(
    akit: AsyncKit, ledger: Ledger
) -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def factory() -> Resource:
        if ledger.made:
            await gate
            raise ConnectionError("factory failed")
        return ledger.make()

    pool = akit.pool(pool_size=2, fail_fast_after=1, factory=factory)
    held = await pool.acquire()
    creator = asyncio.create_task(pool.acquire(timeout=5))
    await eventually(lambda: pool.stats().creating == 1)
    waiter = asyncio.create_task(pool.acquire(timeout=5))
    await eventually(lambda: pool.stats().waiting == 1)
    gate.set_result(None)  # the creator fails first...
    waiter.cancel()  # ...the waiter has left by then
    with pytest.raises(ConnectionError):
        await creator
    await cancel(waiter)
    stats = pool.stats()
    assert (stats.unavailable, stats.available, stats.waiting) == (0, False, 0)
    await pool.release(held)


# -- generations, close and open ------------------------------------------------------------


async def test_each_dispose_retires_the_resources_leased_before_it(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=2)
    await kit.dispose(pool)
    resource = await kit.acquire(pool)
    await kit.dispose(pool)
    await kit.release(pool, resource)
    await kit.settle(pool)
    assert (resource.released, kit.stats(pool).idle) == (1, 0)


async def test_a_resource_prefill_makes_while_the_pool_closes_is_released(
    kit: Kit, ledger: Ledger
) -> None:
    latch = Latch(kit)
    pool = kit.pool(pool_size=1, factory=latch.wrap(ledger.make))
    filling = asyncio.create_task(kit.prefill(pool))
    await latch.reached(1)
    closing = asyncio.create_task(kit.close(pool, timeout=1))
    await eventually(lambda: kit.stats(pool).closed)
    latch.open()
    await filling
    await closing
    stats = kit.stats(pool)
    assert (stats.size, stats.idle) == (0, 0)
    assert len(ledger.made) == 1
    ledger.assert_released_once()


async def test_close_waits_for_every_lease(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=2)
    first, second = await kit.acquire(pool), await kit.acquire(pool)
    closing = asyncio.create_task(kit.close(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).closed)
    await asyncio.sleep(0.01)
    await kit.release(pool, first)
    await eventually(lambda: first.released == 1)
    await asyncio.sleep(0.02)
    assert not closing.done()  # the second lease is still out
    await kit.release(pool, second)
    await closing
    ledger.assert_released_once()


async def test_a_reopened_pool_says_it_is_open(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    await kit.close(pool)
    await kit.open(pool)
    assert pool.closed is False
    assert kit.stats(pool).closed is False


# -- resize ----------------------------------------------------------------------------------


async def test_resizing_only_min_size_keeps_pool_size(kit: Kit) -> None:
    pool = kit.pool(pool_size=3)
    await resize(kit, pool, None, min_size=1)
    await eventually(lambda: kit.stats(pool).idle == 1)
    stats = kit.stats(pool)
    assert (stats.pool_size, stats.min_size) == (3, 1)
    await kit.close(pool)


async def test_resize_accepts_min_size_equal_to_pool_size(kit: Kit) -> None:
    pool = kit.pool(pool_size=3)
    await resize(kit, pool, 2, min_size=2)
    stats = kit.stats(pool)
    assert (stats.pool_size, stats.min_size) == (2, 2)
    await kit.close(pool)


@pytest.mark.parametrize(
    ("size", "options", "error", "message"),
    [
        (0, {}, ValueError, "pool_size must be a positive int (the most resources alive at once), got 0"),
        (None, {"min_size": -1}, ValueError, "min_size must be an int >= 0 (the fewest resources to keep alive), got -1"),
        ("2", {}, TypeError, "pool_size must be a positive int (the most resources alive at once), got str '2'"),
    ],
)  # fmt: skip
async def test_resize_names_a_bad_size_and_what_it_means(
    kit: Kit, size: Any, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    pool = kit.pool(pool_size=2)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        await resize(kit, pool, size, **options)
    stats = kit.stats(pool)
    assert (stats.pool_size, stats.min_size) == (2, 0)


async def test_shrinking_keeps_what_exists_over_creations_in_flight(
    kit: Kit, ledger: Ledger
) -> None:
    latch = Latch(kit)
    latch.armed = False
    pool = kit.pool(pool_size=3, factory=latch.wrap(ledger.make))
    await kit.prefill(pool, 2)
    latch.armed = True
    filling = asyncio.create_task(kit.prefill(pool, 3))
    await latch.reached(1)
    await resize(kit, pool, 2)
    # Both idle ones stay (the creation may yet fail); it is released when it lands.
    assert kit.stats(pool).idle == 2
    latch.open()
    await filling
    await kit.settle(pool)
    stats = kit.stats(pool)
    assert (stats.size, stats.idle, stats.destroyed) == (2, 2, 1)


async def test_shrinking_releases_every_return_beyond_the_new_size(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=3)
    held = [await kit.acquire(pool) for _ in range(3)]
    await resize(kit, pool, 1)
    for resource in held:
        await kit.release(pool, resource)
    await kit.settle(pool)
    stats = kit.stats(pool)
    assert (stats.size, stats.idle, stats.destroyed) == (1, 1, 2)
    assert sum(resource.released for resource in held) == 2


# -- messages -------------------------------------------------------------------------------


async def test_releasing_twice_says_to_release_once(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)
    expected = (
        f"{resource!r} is not leased (it is idle in the pool or already being returned); "
        "release each acquired resource exactly once"
    )
    with pytest.raises(PoolError, match=f"{re.escape(expected)}$"):
        await kit.release(pool, resource)


async def test_releasing_a_stranger_says_where_to_release_it(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    stranger = Resource()
    expected = (
        f"{stranger!r} was not acquired from this pool (or was already destroyed or "
        "detached); release resources only to the pool they came from"
    )
    with pytest.raises(PoolError, match=f"{re.escape(expected)}$"):
        await kit.release(pool, stranger)
