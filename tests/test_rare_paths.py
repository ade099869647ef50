"""Rarer turns, each a contract of its own: hooks that return the wrong kind of
value, callers that leave at awkward moments, timeouts in every phase."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from escudeiro_pools import AsyncPool, PoolClosed, PoolError, PoolTimeout, ThreadPool
from tests.kit import AsyncKit, FakeClock, Kit, Ledger, Resource, ThreadKit


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
    pool = AsyncPool(
        AsyncKit(ledger).pool()._factory,
        AsyncKit(ledger).pool()._releaser,
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
    with pytest.raises(ExceptionGroup, match="1 of 1 resources failed to release"):
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
    pool = kit.pool(
        pool_size=2, pool_recycle=10, recycle_jitter=0, clock=clock, releaser=releaser
    )
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
    slot = pool._slots[id(resource)]
    pool.release(resource)
    with pytest.raises(PoolError, match="not leased"):
        pool._end_lease(slot, slot.serial, False, True)  # the second of two racing releases
