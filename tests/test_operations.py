"""Production operations, for both pools: warm pools, lifetimes without storms,
outages without herds, backpressure, and who holds the pool."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from escudeiro_pools import PoolBusy, PoolError, PoolTimeout, PoolUnavailable
from tests.kit import (
    FakeClock,
    Kit,
    Ledger,
    Resource,
    Timings,
    assert_gauges_add_up,
    detach,
    eventually,
    resize,
    wait_ready,
)

# -- warm pools ------------------------------------------------------------------


@pytest.mark.parametrize("min_size", [-1, 4, 1.5, True])
async def test_min_size_must_fit_the_pool(kit: Kit, min_size: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="min_size"):
        kit.pool(pool_size=3, min_size=min_size)


async def test_a_pool_without_min_size_or_max_idle_runs_no_maintainer(kit: Kit) -> None:
    pool = kit.pool(pool_size=2)
    await kit.prefill(pool)
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)
    maintainer = (
        pool._upkeep.binding.maintainer if kit.flavour == "async" else pool._upkeep.maintainer
    )
    assert maintainer is None


async def test_min_size_is_kept_alive_after_discards(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=4, min_size=2)
    await kit.open(pool)
    await wait_ready(kit, pool)
    assert kit.stats(pool).size >= 2
    resource = await kit.acquire(pool)
    await kit.discard(pool, resource)
    await eventually(lambda: kit.stats(pool).idle >= 2 or kit.stats(pool).size >= 2)
    await eventually(lambda: kit.stats(pool).size - kit.stats(pool).creating >= 2)
    assert kit.stats(pool).size <= 4
    await kit.close(pool)
    ledger.assert_released_once()
    maintainer = (
        pool._upkeep.binding.maintainer if kit.flavour == "async" else pool._upkeep.maintainer
    )
    assert maintainer is None  # stopped by close()


async def test_wait_ready_times_out_while_the_factory_fails(kit: Kit, ledger: Ledger) -> None:
    ledger.factory_failures = 10_000
    pool = kit.pool(pool_size=2, min_size=1, retry_backoff=(0.01, 0.02))
    await kit.open(pool)
    with pytest.raises(PoolTimeout, match="min_size"):
        await wait_ready(kit, pool, timeout=0.1)
    assert kit.stats(pool).factory_errors >= 1
    assert kit.stats(pool).timeouts == 0  # acquires only
    ledger.factory_failures = 0
    await wait_ready(kit, pool, timeout=5)
    await kit.close(pool)


async def test_the_maintainer_never_exceeds_pool_size_and_stops_when_closed(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=3, min_size=3)
    await kit.open(pool)
    held = [await kit.acquire(pool) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert kit.stats(pool).size == 3
    for resource in held:
        await kit.release(pool, resource)
    await kit.close(pool)
    made = len(ledger.made)
    await asyncio.sleep(0.05)
    assert len(ledger.made) == made
    ledger.assert_released_once()


async def test_resize_grows_at_once_and_shrinks_as_leases_come_back(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=1)
    held = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    await resize(kit, pool, 3)
    grown = await waiter  # growing served the waiter
    assert grown is not held
    third = await kit.acquire(pool, timeout=1)
    await kit.release(pool, third)  # one idle
    await resize(kit, pool, 1)
    stats = kit.stats(pool)
    assert (stats.pool_size, stats.idle) == (1, 0)
    await kit.release(pool, grown)
    await kit.settle(pool)
    assert kit.stats(pool).size == 1  # released, not pooled beyond the new size
    await kit.release(pool, held)
    stats = kit.stats(pool)
    assert (stats.size, stats.idle) == (1, 1)
    assert_gauges_add_up(stats)
    with pytest.raises(ValueError, match="min_size"):
        await resize(kit, pool, 1, min_size=2)


# -- lifetimes without storms -------------------------------------------------------


async def test_jitter_spreads_the_lifetimes_of_resources_made_together(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=10, pool_recycle=100, recycle_jitter=0.1, clock=clock)
    await kit.prefill(pool)
    clock.advance(95)  # inside the jitter window: some, not all, have expired
    held = [await kit.acquire(pool) for _ in range(10)]  # meets each one once
    replaced = kit.stats(pool).recycled
    assert 0 < replaced < 10
    for resource in held:
        await kit.release(pool, resource)
    assert kit.stats(pool).size == 10


async def test_jitter_only_ever_shortens_a_lifetime(kit: Kit, clock: FakeClock) -> None:
    pool = kit.pool(pool_size=10, pool_recycle=100, recycle_jitter=0.5, clock=clock)
    await kit.prefill(pool)
    clock.advance(100)  # past pool_recycle: every one is replaced
    for _ in range(10):
        held = [await kit.acquire(pool) for _ in range(10)]
        for resource in held:
            await kit.release(pool, resource)
    assert kit.stats(pool).recycled == 10


@pytest.mark.parametrize("jitter", [-0.1, 1.0, "0.1"])
async def test_recycle_jitter_must_be_a_fraction(kit: Kit, jitter: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="recycle_jitter"):
        kit.pool(recycle_jitter=jitter)


async def test_max_uses_replaces_a_resource_when_it_comes_back(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, max_uses=3)
    seen = []
    for _ in range(7):
        resource = await kit.acquire(pool)
        seen.append(resource)
        await kit.release(pool, resource)
    await kit.settle(pool)
    assert seen[0] is seen[1] is seen[2]
    assert seen[3] is not seen[2]
    assert seen[6] is not seen[5]
    assert seen[0].released == 1
    assert kit.stats(pool).recycled == 2


# -- outages without herds --------------------------------------------------------


async def test_the_breaker_fails_fast_probes_once_and_closes(
    kit: Kit, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    pool = kit.pool(pool_size=3, fail_fast_after=2, retry_backoff=(0.05, 0.1))
    ledger.factory_failures = 10_000
    with caplog.at_level(logging.INFO, "escudeiro_pools"):
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await kit.acquire(pool)
        calls, since = ledger_calls(ledger), time.monotonic()
        with pytest.raises(PoolUnavailable) as caught:
            await kit.acquire(pool)
        assert isinstance(caught.value.__cause__, ConnectionError)
        assert caught.value.retry_after <= 0.1
        for _ in range(20):
            with pytest.raises(PoolUnavailable):
                await kit.acquire(pool)
        stats = kit.stats(pool)
        assert (stats.available, stats.consecutive_failures) == (False, stats.factory_errors)
        assert stats.last_error == "ConnectionError: factory failed"
        assert stats.unavailable == 21
        await asyncio.sleep(0.35)
        # No caller called the factory: only the probe did, once per backoff
        # (at least half of 0.05 s, the first delay), however slow this test ran.
        probes = ledger_calls(ledger) - calls
        assert probes <= 1 + (time.monotonic() - since) / 0.025
        ledger.factory_failures = 0
        await eventually(lambda: kit.stats(pool).available)
        resource = await kit.acquire(pool)  # the probe's resource, or a new one
        await kit.release(pool, resource)
    opened = [r for r in caplog.records if "refusing callers" in r.getMessage()]
    closed = [r for r in caplog.records if "succeeded again" in r.getMessage()]
    assert [r.levelno for r in opened] == [logging.WARNING]
    assert [r.levelno for r in closed] == [logging.INFO]
    stats = kit.stats(pool)
    assert (stats.available, stats.consecutive_failures, stats.last_error) == (True, 0, None)
    await kit.close(pool)


async def test_idle_resources_are_still_handed_out_while_the_breaker_is_open(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=3, fail_fast_after=1, retry_backoff=(10, 10))
    a, b = await kit.acquire(pool), await kit.acquire(pool)
    ledger.factory_failures = 10_000
    with pytest.raises(ConnectionError):
        await kit.acquire(pool)  # a third is created: the factory fails, the breaker opens
    with pytest.raises(PoolUnavailable):
        await kit.acquire(pool)  # one that would create is refused at once
    await kit.release(pool, a)
    assert await kit.acquire(pool) is a  # an idle resource is still lent
    await resize(kit, pool, 2)  # full now: the next caller queues behind the leases
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    await kit.release(pool, b)
    assert await waiter is b  # it kept waiting for a leased one
    await kit.release(pool, a)
    await kit.release(pool, b)


def ledger_calls(ledger: Ledger) -> int:
    return len(ledger.made) + ledger.failed_calls


# -- backpressure and who holds the pool ------------------------------------------


async def test_max_waiting_refuses_the_next_caller_at_once(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, max_waiting=1)
    held = await kit.acquire(pool)
    queued = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    with pytest.raises(PoolBusy, match="max_waiting=1"):
        await kit.acquire(pool, timeout=5)
    assert kit.stats(pool).rejected == 1
    await kit.release(pool, held)
    assert await queued is held
    await kit.release(pool, held)


async def test_leases_report_ages_and_sites_only_while_tracking(kit: Kit, clock: FakeClock) -> None:
    quiet = kit.pool(pool_size=2)
    first = await kit.acquire(quiet)
    assert [(i.age, i.site) for i in quiet.leases()] == [(None, None)]
    await kit.release(quiet, first)
    assert quiet.leases() == ()

    pool = kit.pool(pool_size=2, leak_timeout=60, clock=clock)
    older = await kit.acquire(pool)
    clock.advance(5)
    newer = await kit.acquire(pool)
    clock.advance(1)
    infos = pool.leases()
    assert [i.age for i in infos] == [6.0, 1.0]
    assert all(i.site for i in infos)
    with pytest.raises(PoolTimeout, match=r"oldest lease, 6\.0 s old, was acquired at "):
        await kit.acquire(pool, timeout=0.01)
    await kit.release(pool, older)
    await kit.release(pool, newer)


async def test_detach_takes_a_resource_out_for_good(kit: Kit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=1)
    resource = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    await detach(kit, pool, resource)
    fresh = await waiter  # its capacity is free at once
    assert fresh is not resource
    with pytest.raises(PoolError, match="not acquired from this pool"):
        await kit.release(pool, resource)
    await kit.release(pool, fresh)
    await kit.close(pool)
    assert resource.released == 0  # the caller owns it now
    stats = kit.stats(pool)
    assert stats.detached == 1
    assert stats.created == stats.destroyed + stats.abandoned + stats.detached + stats.size


async def test_detach_inside_a_lease_makes_the_exit_a_no_op(kit: Kit) -> None:
    pool = kit.pool(pool_size=1)
    async with kit.lease(pool) as resource:
        await detach(kit, pool, resource)
    assert kit.stats(pool).size == 0
    assert resource.released == 0


# -- helpers: the blocking twins through the kit --------------------------------------


async def test_an_observer_gets_every_creation_acquire_and_use(kit: Kit, clock: FakeClock) -> None:
    pool = kit.pool(pool_size=1, clock=clock)
    timings = Timings()
    pool.add_observer(timings)
    pool.add_observer(timings)  # once is enough
    first = await kit.acquire(pool)  # created
    clock.advance(2)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    await kit.release(pool, first)  # used 2 s
    second = await waiter
    clock.advance(1)
    await kit.release(pool, second)  # used 1 s
    async with kit.lease(pool):  # at once
        pass
    assert len(timings.creates) == 1
    assert len(timings.waits) == 3
    assert timings.waits[0] >= 0 and timings.waits[2] == 0.0
    assert timings.uses[:2] == [2.0, 1.0]
    assert len(timings.uses) == 3
    pool.remove_observer(timings)
    async with kit.lease(pool):
        pass
    assert len(timings.waits) == 3
    with pytest.raises(TypeError, match="observer"):
        pool.add_observer(object())


# -- hand-offs that are not plain ------------------------------------------------------


async def test_a_resource_that_expired_while_leased_is_replaced_for_the_waiter(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, pool_recycle=10, recycle_jitter=0, clock=clock)
    old = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    clock.advance(11)
    await kit.release(pool, old)  # stale: released, and its capacity goes to the waiter
    fresh = await waiter
    assert fresh is not old
    assert old.released == 1
    assert kit.stats(pool).recycled == 1
    await kit.release(pool, fresh)


@pytest.mark.parametrize("passes", [True, False])
async def test_a_waiter_handed_a_resource_due_for_its_check_runs_it(kit: Kit, passes: bool) -> None:
    checked: list[Resource] = []

    def check(resource: Resource) -> bool:
        checked.append(resource)
        return passes

    pool = kit.pool(pool_size=1, check=check, check_after_idle=0)
    held = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    await kit.release(pool, held)
    got = await waiter
    assert checked == [held]
    assert (got is held) is passes
    assert kit.stats(pool).check_failures == (0 if passes else 1)
    await kit.release(pool, got)


async def test_queued_callers_get_pool_unavailable_once_the_breaker_opens(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=2, fail_fast_after=1, retry_backoff=(10, 10))
    a, b = await kit.acquire(pool), await kit.acquire(pool)
    first = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 1)
    second = asyncio.create_task(kit.acquire(pool, timeout=5))
    await eventually(lambda: kit.stats(pool).waiting == 2)
    ledger.factory_failures = 10_000
    await kit.discard(pool, a)  # capacity for `first`, whose creation fails
    with pytest.raises(ConnectionError):
        await first
    with pytest.raises(PoolUnavailable):
        await second  # would create too: refused at once
    assert kit.stats(pool).unavailable == 1
    await kit.release(pool, b)


async def test_a_check_that_ends_after_close_releases_the_resource(kit: Kit) -> None:
    from tests.kit import Gate

    gate = Gate(kit)
    pool = kit.pool(pool_size=1, check=gate.check, check_after_idle=0)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    checking = asyncio.create_task(kit.acquire(pool, timeout=5))
    await gate.entered()
    closing = asyncio.create_task(kit.close(pool, timeout=5))
    await asyncio.sleep(0.01)
    gate.open()
    with pytest.raises(PoolError):
        await checking
    await closing
    await kit.settle(pool)
    assert first.released == 1
    assert kit.stats(pool).size == 0


async def test_the_maintainer_replaces_idle_resources_before_they_expire(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=3, min_size=2, pool_recycle=0.3, recycle_jitter=0)
    await kit.open(pool)
    await wait_ready(kit, pool)
    await eventually(lambda: kit.stats(pool).recycled >= 2)
    await eventually(lambda: kit.stats(pool).idle >= 2)
    recycled = kit.stats(pool).recycled
    resource = await kit.acquire(pool)  # a fresh one: nothing to recycle at checkout
    assert kit.stats(pool).recycled == recycled or kit.stats(pool).recycled > recycled
    assert resource.released == 0
    await kit.release(pool, resource)
    await kit.close(pool)
    assert pool.min_size == 2
    ledger.assert_released_once()


async def test_a_detached_resource_is_replaced_to_keep_min_size(kit: Kit) -> None:
    pool = kit.pool(pool_size=2, min_size=1)
    await kit.open(pool)
    await wait_ready(kit, pool)
    resource = await kit.acquire(pool)
    await detach(kit, pool, resource)
    await eventually(lambda: kit.stats(pool).size - kit.stats(pool).creating >= 1)
    await kit.close(pool)
    assert resource.released == 0


async def test_observing_a_pool_with_leases_out_times_them_from_then(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, clock=clock)
    held = await kit.acquire(pool)
    clock.advance(100)
    timings = Timings()
    pool.add_observer(timings)
    clock.advance(2)
    await kit.release(pool, held)
    assert timings.uses == [2.0]
