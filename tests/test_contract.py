"""The rules both pools promise, run against each through one async face."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest

from escudeiro_pools import PoolClosed, PoolError, PoolTimeout
from tests.kit import (
    FakeClock,
    Gate,
    Kit,
    Ledger,
    Resource,
    as_factory,
    assert_gauges_add_up,
    enter,
    eventually,
)


async def test_acquire_hands_out_the_resource_itself(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=2)
    resource = await kit.acquire(pool)
    assert resource is ledger.made[0]
    assert type(resource).__name__ == "Resource"
    await kit.release(pool, resource)


async def test_released_resource_is_reused(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=2)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    assert await kit.acquire(pool) is first
    assert len(ledger.made) == 1


async def test_lifo_hands_out_the_most_recently_used(kit: Kit) -> None:
    pool = kit.pool(pool_size=3)
    a, b = await kit.acquire(pool), await kit.acquire(pool)
    await kit.release(pool, a)
    await kit.release(pool, b)
    assert await kit.acquire(pool) is b


async def test_fifo_hands_out_the_least_recently_used(kit: Kit) -> None:
    pool = kit.pool(pool_size=3, queue_class=asyncio.Queue)
    a, b = await kit.acquire(pool), await kit.acquire(pool)
    await kit.release(pool, a)
    await kit.release(pool, b)
    assert await kit.acquire(pool) is a


async def test_never_more_than_pool_size_resources(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=3, acquire_timeout=5)
    peak = 0

    async def worker() -> None:
        nonlocal peak
        for _ in range(10):
            async with kit.lease(pool):
                peak = max(peak, len(ledger.live))
                await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(12)))
    assert peak <= 3
    assert len(ledger.made) <= 3
    await kit.close(pool)
    ledger.assert_released_once()


async def test_acquire_times_out_with_a_message_naming_pool_phase_and_counts(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, name="db")
    held = await kit.acquire(pool)
    with pytest.raises(PoolTimeout) as caught:
        await kit.acquire(pool, timeout=0.05)
    message = str(caught.value)
    assert "'db'" in message
    assert "waiting" in message
    assert "size 1/1" in message
    assert "in use 1" in message
    assert isinstance(caught.value, TimeoutError)
    assert kit.stats(pool).timeouts == 1
    assert kit.stats(pool).waiting == 0
    await kit.release(pool, held)
    assert await kit.acquire(pool, timeout=1) is held


async def test_timeout_while_creating_names_the_phase(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=1)
    ledger.factory_delay = 0.3
    with pytest.raises(PoolTimeout, match="creating"):
        await kit.acquire(pool, timeout=0.05)
    ledger.factory_delay = 0
    await kit.settle(pool)
    resource = await kit.acquire(pool, timeout=1)
    await kit.release(pool, resource)
    assert kit.stats(pool).size == 1


async def test_waiters_are_served_first_come_first_served(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    held = await kit.acquire(pool)
    order: list[int] = []

    async def waiter(n: int) -> None:
        resource = await kit.acquire(pool, timeout=5)
        order.append(n)
        await kit.release(pool, resource)

    tasks = []
    for n in range(5):
        tasks.append(asyncio.create_task(waiter(n)))
        while kit.stats(pool).waiting < n + 1:
            await asyncio.sleep(0.001)
    await kit.release(pool, held)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_factory_error_reaches_the_caller_and_costs_no_capacity(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=1)
    ledger.factory_failures = 1
    with pytest.raises(ConnectionError):
        await kit.acquire(pool)
    assert kit.stats(pool).size == 0
    assert kit.stats(pool).factory_errors == 1
    resource = await kit.acquire(pool, timeout=1)
    await kit.release(pool, resource)


async def test_factory_error_wakes_a_waiter_to_create(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=1)
    ledger.factory_delay = 0.05
    ledger.factory_failures = 1
    first = asyncio.create_task(kit.acquire(pool, timeout=5))
    while kit.stats(pool).creating == 0:
        await asyncio.sleep(0.001)
    second = asyncio.create_task(kit.acquire(pool, timeout=5))
    with pytest.raises(ConnectionError):
        await first
    resource = await second
    await kit.release(pool, resource)


async def test_release_of_a_foreign_resource_is_refused(kit: Kit) -> None:
    from tests.kit import Resource

    pool = kit.pool(pool_size=1)
    with pytest.raises(PoolError, match="not acquired from this pool"):
        await kit.release(pool, Resource())
    assert kit.stats(pool).size == 0


async def test_double_release_is_refused_and_changes_nothing(kit: Kit) -> None:
    pool = kit.pool(pool_size=2)
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)
    before = kit.stats(pool)
    with pytest.raises(PoolError, match="not leased"):
        await kit.release(pool, resource)
    assert kit.stats(pool) == before
    a, b = await kit.acquire(pool), await kit.acquire(pool)
    assert a is not b


async def test_lease_returns_the_resource_once(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    async with kit.lease(pool) as resource:
        assert kit.stats(pool).in_use == 1
    assert kit.stats(pool).in_use == 0
    assert kit.stats(pool).idle == 1
    assert await kit.acquire(pool) is resource


async def test_lease_exception_propagates_and_resource_goes_back_through_reset(
    kit: Kit,
) -> None:
    resets: list[object] = []
    pool = kit.pool(pool_size=1, reset=resets.append)
    with pytest.raises(ValueError, match="inside"):
        async with kit.lease(pool) as resource:
            raise ValueError("inside")
    assert resets == [resource]
    assert kit.stats(pool).idle == 1


async def test_an_error_listed_in_discard_on_discards_the_leased_resource(kit: Kit) -> None:
    resets: list[object] = []
    pool = kit.pool(pool_size=1, reset=resets.append, discard_on=(ConnectionError,))
    with pytest.raises(ConnectionResetError):
        async with kit.lease(pool) as broken:
            raise ConnectionResetError("peer went away")
    with pytest.raises(KeyError):
        async with kit.lease(pool) as fine:
            raise KeyError("an ordinary error")
    await kit.settle(pool)
    assert broken.released == 1
    assert resets == [fine]
    stats = kit.stats(pool)
    assert (stats.discarded, stats.idle, stats.size) == (1, 1, 1)


async def test_discard_inside_a_lease_makes_the_exit_a_no_op(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=1)
    async with kit.lease(pool) as resource:
        await kit.discard(pool, resource)
    await kit.settle(pool)
    assert resource.released == 1
    stats = kit.stats(pool)
    assert (stats.size, stats.discarded, stats.destroyed) == (0, 1, 1)
    assert await kit.acquire(pool) is not resource


async def test_release_inside_a_lease_then_reacquired_elsewhere_is_not_returned_twice(
    kit: Kit,
) -> None:
    pool = kit.pool(pool_size=1)
    async with kit.lease(pool) as resource:
        await kit.release(pool, resource)
        again = await kit.acquire(pool)
        assert again is resource
    assert kit.stats(pool).in_use == 1
    await kit.release(pool, again)


async def test_reset_failure_discards_the_resource_and_is_not_raised(kit: Kit) -> None:
    def reset(resource: object) -> None:
        raise RuntimeError("reset failed")

    pool = kit.pool(pool_size=1, reset=reset)
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)
    await kit.settle(pool)
    stats = kit.stats(pool)
    assert (stats.reset_errors, stats.size, stats.destroyed) == (1, 0, 1)


async def test_releaser_error_is_counted_as_released(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=1)
    resource = await kit.acquire(pool)
    ledger.releaser_failures = 1
    await kit.discard(pool, resource)
    await kit.settle(pool)
    stats = kit.stats(pool)
    assert (stats.releaser_errors, stats.destroyed, stats.size) == (1, 1, 0)
    assert resource.released == 1


async def test_check_failure_replaces_the_resource_transparently(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, check=lambda r: not r.broken, check_after_idle=1, clock=clock)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    first.broken = True
    assert await kit.acquire(pool) is first  # returned moments ago: not checked
    await kit.release(pool, first)
    clock.advance(2)
    second = await kit.acquire(pool)
    assert second is not first
    await kit.settle(pool)
    assert first.released == 1
    assert kit.stats(pool).check_failures == 1


async def test_check_that_raises_counts_as_failed(kit: Kit, clock: FakeClock) -> None:
    def check(resource: object) -> bool:
        raise RuntimeError("probe failed")

    pool = kit.pool(pool_size=1, check=check, check_after_idle=0, clock=clock)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    pool_check_ok = await kit.acquire(pool)
    assert pool_check_ok is not first
    assert kit.stats(pool).check_failures == 1


async def test_alive_test_runs_on_every_checkout_and_return(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, alive=lambda r: not r.broken)
    first = await kit.acquire(pool)
    first.broken = True
    await kit.release(pool, first)  # dead on return: discarded
    await kit.settle(pool)
    assert first.released == 1
    second = await kit.acquire(pool)
    await kit.release(pool, second)
    second.broken = True
    third = await kit.acquire(pool)  # dead at checkout: replaced
    assert third is not second
    await kit.release(pool, third)


async def test_recycle_replaces_old_resources_at_checkout(kit: Kit, clock: FakeClock) -> None:
    pool = kit.pool(pool_size=1, pool_recycle=10, clock=clock)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    clock.advance(11)
    second = await kit.acquire(pool)
    assert second is not first
    await kit.settle(pool)
    assert first.released == 1
    assert kit.stats(pool).recycled == 1


async def test_recycle_of_zero_or_less_disables_it(kit: Kit, clock: FakeClock) -> None:
    pool = kit.pool(pool_size=1, pool_recycle=0, clock=clock)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    clock.advance(10**6)
    assert await kit.acquire(pool) is first


async def test_max_idle_expiry_met_at_checkout_replaces_the_resource(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=2, max_idle=5, clock=clock)
    a = await kit.acquire(pool)
    await kit.release(pool, a)
    clock.advance(6)
    b = await kit.acquire(pool)  # `a` is stale: released, and replaced
    assert b is not a
    assert a.released == 1
    assert kit.stats(pool).idle_expired == 1
    assert kit.stats(pool).size == 1


async def test_the_maintainer_releases_idle_resources_past_max_idle_unprompted(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=3, max_idle=0.05)
    await kit.prefill(pool, 3)
    await eventually(lambda: kit.stats(pool).size == 0)
    assert kit.stats(pool).idle_expired == 3
    assert all(r.released == 1 for r in ledger.made)
    await kit.close(pool)


async def test_prefill_fills_to_count_and_to_size(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=4)
    await kit.prefill(pool, 2)
    assert kit.stats(pool).idle == 2
    await kit.prefill(pool)
    assert kit.stats(pool).idle == 4
    await kit.prefill(pool, 10)
    assert len(ledger.made) == 4


async def test_partial_prefill_keeps_what_succeeded_and_raises_the_errors(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=4)
    ledger.factory_failures = 2
    with pytest.raises(ExceptionGroup) as caught:
        await kit.prefill(pool)
    assert len(caught.value.exceptions) == 2
    assert "2 of 4" in str(caught.value)
    stats = kit.stats(pool)
    assert (stats.idle, stats.size) == (2, 2)
    held = [await kit.acquire(pool) for _ in range(4)]
    assert len(set(map(id, held))) == 4


async def test_dispose_releases_idle_now_and_leased_on_return(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=3)
    await kit.prefill(pool)
    leased = await kit.acquire(pool)
    await kit.dispose(pool)
    assert sorted(r.released for r in ledger.made) == [0, 1, 1]
    assert kit.stats(pool).size == 1  # the lease still counts
    await kit.release(pool, leased)
    await kit.settle(pool)
    ledger.assert_released_once()
    assert kit.stats(pool).size == 0
    fresh = await kit.acquire(pool)  # the pool stays open
    assert fresh not in ledger.made[:3]


async def test_dispose_tries_every_resource_then_raises_together(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=3)
    await kit.prefill(pool)
    ledger.releaser_failures = 2
    with pytest.raises(ExceptionGroup) as caught:
        await kit.dispose(pool)
    assert len(caught.value.exceptions) == 2
    ledger.assert_released_once()
    assert kit.stats(pool).size == 0


async def test_close_refuses_acquires_until_open(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=2)
    await kit.prefill(pool)
    await kit.close(pool)
    ledger.assert_released_once()
    with pytest.raises(PoolClosed):
        await kit.acquire(pool)
    with pytest.raises(PoolClosed):
        await kit.prefill(pool)
    await kit.open(pool)
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)


async def test_close_wakes_waiters_with_pool_closed(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    held = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=10))
    while kit.stats(pool).waiting == 0:
        await asyncio.sleep(0.001)
    closing = asyncio.create_task(kit.close(pool, timeout=5))
    with pytest.raises(PoolClosed):
        await waiter
    await kit.release(pool, held)
    await closing
    assert held.released == 1
    assert kit.stats(pool).size == 0


async def test_lease_returned_after_close_timeout_is_released_not_pooled(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    held = await kit.acquire(pool)
    await kit.close(pool, timeout=0.01)
    await kit.release(pool, held)
    await kit.settle(pool)
    assert held.released == 1
    assert kit.stats(pool).idle == 0


async def test_stats_and_repr_show_live_counts(kit: Kit) -> None:
    pool = kit.pool(pool_size=3, name="cache")
    held = await kit.acquire(pool)
    await kit.prefill(pool, 2)
    stats = kit.stats(pool)
    assert (stats.name, stats.pool_size, stats.size, stats.idle, stats.in_use) == (
        "cache",
        3,
        3,
        2,
        1,
    )
    assert stats.as_dict()["created"] == 3
    text = repr(pool)
    assert "'cache'" in text
    assert "size=3/3" in text
    assert "in_use=1" in text
    await kit.release(pool, held)


async def test_wait_time_is_recorded(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    held = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    while kit.stats(pool).waiting == 0:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.02)
    await kit.release(pool, held)
    await kit.release(pool, await waiter)
    stats = kit.stats(pool)
    assert stats.waits == 1
    assert stats.wait_time_max >= 0.015
    assert stats.wait_time_total == stats.wait_time_max


async def test_counts_balance_after_a_busy_run_with_failures(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=4, acquire_timeout=5, alive=lambda r: not r.broken)

    async def worker(n: int) -> None:
        for i in range(15):
            if (n + i) % 7 == 0:
                ledger.factory_failures = 1
            try:
                async with kit.lease(pool) as resource:
                    if (n * i) % 11 == 3:
                        resource.broken = True
                    if (n + i) % 5 == 0:
                        raise KeyError("user error")
            except (KeyError, ConnectionError):
                pass

    await asyncio.gather(*(worker(n) for n in range(10)))
    await kit.close(pool)
    stats = kit.stats(pool)
    assert stats.size == 0
    assert stats.created == stats.destroyed == len(ledger.made)
    ledger.assert_released_once()


# -- gauges, stale resources, prefill, forever, one-shot leases ------------------


async def test_gauges_add_up_while_a_check_runs_at_checkout(kit: Kit, clock: FakeClock) -> None:
    gate = Gate(kit)
    pool = kit.pool(pool_size=2, check=gate.check, check_after_idle=0, clock=clock)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    checking = asyncio.create_task(kit.acquire(pool))
    await gate.entered()
    stats = kit.stats(pool)
    assert (stats.checking, stats.idle, stats.in_use) == (1, 0, 0)
    assert_gauges_add_up(stats)
    gate.open()
    assert await checking is first
    assert_gauges_add_up(kit.stats(pool))


async def test_gauges_add_up_while_a_reset_runs_at_return(kit: Kit) -> None:
    gate = Gate(kit)
    pool = kit.pool(pool_size=2, reset=gate.check)
    resource = await kit.acquire(pool)
    returning = asyncio.create_task(kit.release(pool, resource))
    await gate.entered()
    stats = kit.stats(pool)
    assert (stats.resetting, stats.in_use, stats.idle) == (1, 0, 0)
    assert_gauges_add_up(stats)
    gate.open()
    await returning
    stats = kit.stats(pool)
    assert (stats.resetting, stats.idle) == (0, 1)
    assert_gauges_add_up(stats)


async def test_a_caller_given_a_stale_resource_releases_it_then_creates_its_own(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=3, pool_recycle=10, recycle_jitter=0, clock=clock)
    old = await kit.acquire(pool)
    await kit.release(pool, old)
    clock.advance(11)
    ledger.releaser_delay = 0.05
    fresh = await kit.acquire(pool)  # spare capacity, yet the old one goes first
    assert fresh is not old
    assert old.released == 1
    assert kit.stats(pool).recycled == 1
    assert_gauges_add_up(kit.stats(pool))


async def test_a_caller_keeps_its_turn_through_a_stale_resource(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=2, pool_recycle=10, recycle_jitter=0, clock=clock)
    old = await kit.acquire(pool)
    clock.advance(5)
    held = await kit.acquire(pool)  # younger: still fresh below
    await kit.release(pool, old)
    clock.advance(6)
    ledger.releaser_delay = 0.1
    first = asyncio.create_task(kit.acquire(pool, timeout=5))  # takes the stale one
    while kit.stats(pool).releasing == 0:
        await asyncio.sleep(0.001)
    second = asyncio.create_task(kit.acquire(pool, timeout=5))  # queued behind it
    while kit.stats(pool).waiting == 0:
        await asyncio.sleep(0.001)
    replacement = await first
    assert replacement not in (old, held)
    assert old.released == 1
    assert not second.done()
    assert kit.stats(pool).waiting == 1
    await kit.release(pool, held)
    assert await second is held


async def test_a_caller_whose_deadline_passes_while_releasing_a_stale_resource_times_out(
    kit: Kit, ledger: Ledger, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=2, pool_recycle=10, recycle_jitter=0, clock=clock)
    old = await kit.acquire(pool)
    held = await kit.acquire(pool)
    await kit.release(pool, old)
    clock.advance(11)
    ledger.releaser_delay = 0.2
    first = asyncio.create_task(kit.acquire(pool, timeout=0.05))
    while kit.stats(pool).releasing == 0:
        await asyncio.sleep(0.001)
    second = asyncio.create_task(kit.acquire(pool, timeout=5))
    with pytest.raises(PoolTimeout, match="releasing"):
        await first
    made = await second  # the capacity the stale one freed went to the next waiter
    assert made not in (old, held)
    assert old.released == 1
    await kit.release(pool, made)
    await kit.release(pool, held)
    assert kit.stats(pool).timeouts == 1


async def test_repeated_staleness_never_starves_a_caller(kit: Kit, clock: FakeClock) -> None:
    pool = kit.pool(pool_size=3, pool_recycle=10, recycle_jitter=0, clock=clock)
    await kit.prefill(pool)
    clock.advance(11)  # every idle resource is stale
    resource = await kit.acquire(pool, timeout=5)
    assert kit.stats(pool).recycled == 1
    await kit.release(pool, resource)


async def test_prefill_count_counts_creations_in_flight(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=6)
    ledger.factory_delay = 0.02
    await asyncio.gather(kit.prefill(pool, 2), kit.prefill(pool, 2))
    assert kit.stats(pool).idle == 2
    assert len(ledger.made) == 2


async def test_prefill_passes_on_the_factory_timeout_as_the_factory_error(kit: Kit) -> None:
    def timing_out() -> object:
        raise TimeoutError("connect timed out")

    pool = kit.pool(pool_size=2, factory=as_factory(kit, timing_out))
    with pytest.raises(ExceptionGroup) as caught:
        await kit.prefill(pool)
    assert all(type(e) is TimeoutError for e in caught.value.exceptions)
    stats = kit.stats(pool)
    assert (stats.factory_errors, stats.timeouts, stats.size) == (2, 0, 0)


@pytest.mark.parametrize("forever", [math.inf, 10.0**300, threading.TIMEOUT_MAX + 1])
async def test_an_infinite_timeout_waits_without_a_deadline(kit: Kit, forever: float) -> None:
    pool = kit.pool(pool_size=1, acquire_timeout=forever)
    held = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=forever))
    await eventually(lambda: kit.stats(pool).waiting == 1)  # queued first
    default = asyncio.create_task(kit.acquire(pool))
    await eventually(lambda: kit.stats(pool).waiting == 2)
    await asyncio.sleep(0.05)
    assert not waiter.done() and not default.done()
    await kit.release(pool, held)
    assert await waiter is held
    await kit.release(pool, held)
    assert await default is held
    await kit.release(pool, held)
    await kit.close(pool, timeout=forever)


async def test_a_lease_is_entered_once_even_after_a_failed_enter(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, acquire_timeout=0.02)
    held = await kit.acquire(pool)
    lease = pool.lease()
    with pytest.raises(PoolTimeout):
        await enter(kit, lease)
    await kit.release(pool, held)
    with pytest.raises(PoolError, match="entered once"):
        await enter(kit, lease)
    good = pool.lease()
    assert await enter(kit, good) is held
    with pytest.raises(PoolError, match="entered once"):
        await enter(kit, good)


async def test_setup_runs_at_every_checkout_and_its_error_reaches_the_caller(
    kit: Kit, ledger: Ledger
) -> None:
    seen: list[Resource] = []

    def setup(resource: Resource) -> None:
        seen.append(resource)
        if resource.broken:
            raise LookupError("setup failed")

    pool = kit.pool(pool_size=1, setup=setup)
    first = await kit.acquire(pool)  # a new resource
    await kit.release(pool, first)
    assert await kit.acquire(pool) is first  # an idle one
    assert seen == [first, first]
    first.broken = True
    await kit.release(pool, first)
    with pytest.raises(LookupError, match="setup failed"):
        await kit.acquire(pool)
    await kit.settle(pool)
    assert first.released == 1
    stats = kit.stats(pool)
    assert (stats.size, stats.in_use, stats.discarded) == (0, 0, 1)
    second = await kit.acquire(pool, timeout=1)  # its capacity was freed
    assert second is not first
    await kit.release(pool, second)


async def test_a_resource_dead_on_return_is_not_reset_but_released(kit: Kit) -> None:
    resets: list[Resource] = []
    pool = kit.pool(pool_size=1, alive=lambda r: not r.broken, reset=resets.append)
    resource = await kit.acquire(pool)
    resource.broken = True  # its connection died during the lease
    await kit.release(pool, resource)
    await kit.settle(pool)
    assert resets == []
    assert resource.released == 1
    stats = kit.stats(pool)
    assert (stats.check_failures, stats.reset_errors, stats.size) == (1, 0, 0)
