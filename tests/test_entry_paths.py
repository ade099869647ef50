"""Every way in and out of a pool, pinned by behaviour.

``acquire``/``release``, ``async with pool.lease()``, the thread pool's
``acquire``/``release``, ``with`` lease and ``async with`` lease each reach
the state's checkout and return through a path of their own; each test here
runs through every path, so one that drops the leak watch, the return stamp
or the generation check fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from escudeiro_pools import AsyncPool, PoolError, PoolTimeout, ThreadPool
from tests.kit import AsyncKit, FakeClock, Ledger, Resource, ThreadKit, eventually

Holding = Callable[[Any], Any]


@asynccontextmanager
async def held_via(path: str, pool: Any) -> AsyncIterator[Resource]:
    """Hold one resource of ``pool`` through the entry and exit named ``path``."""
    if path == "async acquire":
        resource = await pool.acquire()
        try:
            yield resource
        finally:
            await pool.release(resource)
    elif path in ("async lease", "thread async lease"):
        async with pool.lease() as resource:
            yield resource
    elif path == "thread acquire":
        resource = pool.acquire()
        try:
            yield resource
        finally:
            pool.release(resource)
    else:
        with pool.lease() as resource:
            yield resource


PATHS = ["async acquire", "async lease", "thread acquire", "thread lease", "thread async lease"]


def make_pool(
    path: str, ledger: Ledger, **options: Any
) -> AsyncPool[Resource] | ThreadPool[Resource]:
    kit = AsyncKit(ledger) if path.startswith("async") else ThreadKit(ledger)
    return kit.pool(**options)


@pytest.mark.parametrize("path", PATHS)
async def test_every_path_watches_for_leaks(
    path: str, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(path, ledger, pool_size=1, leak_timeout=0.02)
    with caplog.at_level("WARNING", "escudeiro_pools"):
        async with held_via(path, pool):
            assert pool.leases()[0].site is not None
            await eventually(lambda: pool.stats().leaks == 1, 30.0)
        async with held_via(path, pool):  # back within the timeout: no warning
            pass
        await asyncio.sleep(0.05)
    assert pool.stats().leaks == 1
    assert "test_entry_paths.py" in caplog.text


@pytest.mark.parametrize("path", PATHS)
async def test_every_path_stamps_the_return_time(
    path: str, ledger: Ledger, clock: FakeClock
) -> None:
    checked: list[Resource] = []

    def check(resource: Resource) -> bool:
        checked.append(resource)
        return True

    pool = make_pool(path, ledger, pool_size=1, check=check, check_after_idle=5, clock=clock)
    async with held_via(path, pool):
        clock.advance(10)  # held long: the return, not the creation, starts the idle time
    async with held_via(path, pool):
        pass
    assert checked == []
    clock.advance(6)
    async with held_via(path, pool):
        pass
    assert checked == ledger.made[:1]


@pytest.mark.parametrize("path", PATHS)
async def test_every_path_releases_what_was_leased_before_a_dispose(
    path: str, ledger: Ledger
) -> None:
    pool = make_pool(path, ledger, pool_size=2)
    async with held_via(path, pool) as resource:
        if isinstance(pool, AsyncPool):
            await pool.dispose()
        else:
            pool.dispose()
    await eventually(lambda: resource.released == 1)
    assert pool.stats().idle == 0


@pytest.mark.parametrize("path", PATHS)
async def test_every_path_hands_a_return_to_the_longest_waiter(path: str, ledger: Ledger) -> None:
    pool = make_pool(path, ledger, pool_size=1)
    async with held_via(path, pool) as first:
        waiter = asyncio.create_task(_acquire_elsewhere(pool))
        while pool.stats().waiting == 0:
            await asyncio.sleep(0.001)
    assert await waiter is first
    assert pool.stats().in_use == 1


async def _acquire_elsewhere(pool: Any) -> Resource:
    if isinstance(pool, AsyncPool):
        resource: Resource = await pool.acquire(timeout=5)
        return resource
    return await asyncio.to_thread(pool.acquire, 5)


@pytest.mark.parametrize("path", PATHS)
async def test_every_path_counts_each_lend_and_return(path: str, ledger: Ledger) -> None:
    pool = make_pool(path, ledger, pool_size=2)
    for _ in range(3):
        async with held_via(path, pool):
            assert pool.stats().in_use == 1
    stats = pool.stats()
    assert (stats.acquired, stats.released, stats.in_use, stats.idle, stats.created) == (
        3,
        3,
        0,
        1,
        1,
    )


@pytest.mark.parametrize("path", PATHS)
async def test_every_path_passes_over_an_idle_resource_that_is_not_alive(
    path: str, ledger: Ledger
) -> None:
    pool = make_pool(path, ledger, pool_size=2, alive=lambda resource: not resource.broken)
    async with held_via(path, pool) as first:
        pass
    first.broken = True
    async with held_via(path, pool) as second:
        assert second is not first
    await AsyncKit(ledger).settle(pool)
    assert first.released == 1
    assert pool.stats().check_failures == 1


LEASE_PATHS = ["async lease", "thread lease", "thread async lease"]


async def _enter(path: str, lease: Any) -> Resource:
    if path == "thread lease":
        resource: Resource = lease.__enter__()
    else:
        resource = await lease.__aenter__()
    return resource


async def _exit(path: str, lease: Any) -> None:
    if path == "thread lease":
        lease.__exit__(None, None, None)
    else:
        await lease.__aexit__(None, None, None)


@pytest.mark.parametrize("path", LEASE_PATHS)
async def test_a_lease_whose_resource_went_back_another_way_leaves_its_next_holder_alone(
    path: str, ledger: Ledger
) -> None:
    pool = make_pool(path, ledger, pool_size=1)
    first = pool.lease()
    resource = await _enter(path, first)
    if isinstance(pool, AsyncPool):
        await pool.release(resource)
    else:
        pool.release(resource)
    second = pool.lease()
    assert await _enter(path, second) is resource  # lent again, from the idle fast path
    await _exit(path, first)  # too late: the resource is the second lease's now
    assert pool.stats().in_use == 1
    await _exit(path, second)
    assert (pool.stats().in_use, pool.stats().idle) == (0, 1)


@pytest.mark.parametrize("path", LEASE_PATHS)
async def test_every_lease_is_spent_once_it_exits(path: str, ledger: Ledger) -> None:
    pool = make_pool(path, ledger, pool_size=1)
    for _ in range(2):  # the first through the slow path, the second through the fast one
        lease = pool.lease()
        await _enter(path, lease)
        await _exit(path, lease)
        with pytest.raises(PoolError, match="entered once"):
            await _enter(path, lease)
    assert (pool.stats().acquired, pool.stats().in_use) == (2, 0)


@pytest.mark.parametrize("path", LEASE_PATHS)
async def test_every_lease_is_spent_once_its_enter_failed(path: str, ledger: Ledger) -> None:
    pool = make_pool(path, ledger, pool_size=1, acquire_timeout=0.02)
    async with held_via(path, pool):
        lease = pool.lease()
        with pytest.raises(PoolTimeout):
            await _enter(path, lease)
    with pytest.raises(PoolError, match="entered once"):
        await _enter(path, lease)
    assert (pool.stats().in_use, pool.stats().idle) == (0, 1)


@pytest.mark.parametrize("path", LEASE_PATHS)
async def test_every_lease_counts_leases_held_at_once(path: str, ledger: Ledger) -> None:
    pool = make_pool(path, ledger, pool_size=3)
    async with held_via(path, pool), held_via(path, pool), held_via(path, pool):
        pass  # all three back: the next three come from the idle fast path
    leases = [pool.lease() for _ in range(3)]
    for count, lease in enumerate(leases, 1):
        await _enter(path, lease)
        assert pool.stats().in_use == count
    for lease in leases:
        await _exit(path, lease)
    assert (pool.stats().in_use, pool.stats().idle, pool.stats().created) == (0, 3, 3)


@pytest.mark.parametrize("path", PATHS)
async def test_every_path_recycles_at_exactly_pool_recycle(
    path: str, ledger: Ledger, clock: FakeClock
) -> None:
    pool = make_pool(path, ledger, pool_size=1, pool_recycle=10, recycle_jitter=0, clock=clock)
    async with held_via(path, pool) as first:
        pass
    clock.advance(9.5)
    async with held_via(path, pool) as again:
        assert again is first
    clock.advance(0.5)  # exactly pool_recycle after it was made
    async with held_via(path, pool) as fresh:
        assert fresh is not first
    await AsyncKit(ledger).settle(pool)
    assert (first.released, pool.stats().recycled) == (1, 1)


async def test_a_leak_report_names_the_pool_its_timeout_and_where_or_that_it_is_unknown(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    pool = AsyncKit(ledger).pool(pool_size=2, leak_timeout=0.02, name="leaky")
    with caplog.at_level("WARNING", "escudeiro_pools"):
        here = await pool.acquire()
        # Acquired by a bare task: no frame outside the pool and asyncio to name.
        orphan = await asyncio.create_task(pool.acquire())
        await eventually(lambda: pool.stats().leaks == 2, 30.0)
    messages = sorted(r.getMessage() for r in caplog.records)
    assert pool.stats().leaks == 2
    prefix = "pool 'leaky': a resource has been leased for more than 0.02 s; acquired at "
    assert [m[: len(prefix)] for m in messages] == [prefix, prefix]
    sites = sorted(m[len(prefix) :] for m in messages)
    assert sites[1] == "<unknown>"
    assert sites[0].startswith(__file__ + ":")
    assert sites[0].endswith(
        " in test_a_leak_report_names_the_pool_its_timeout_and_where_or_that_it_is_unknown"
    )
    await pool.release(here)
    await pool.release(orphan)
