"""Rarer paths: raising probes, interrupted resets, many abandoned waiters, forks."""

from __future__ import annotations

import asyncio
import os

import pytest

from escudeiro_pools import PoolTimeout
from tests.kit import AsyncKit, Kit, Ledger, Resource, ThreadKit


async def test_alive_test_that_raises_counts_as_dead(kit: Kit) -> None:
    def alive(resource: Resource) -> bool:
        if resource.broken:
            raise RuntimeError("probe exploded")
        return True

    pool = kit.pool(pool_size=1, alive=alive)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    first.broken = True
    second = await kit.acquire(pool)
    assert second is not first
    await kit.settle(pool)
    assert first.released == 1


async def test_timeout_none_waits_until_a_resource_returns(kit: Kit) -> None:
    pool = kit.pool(pool_size=1, acquire_timeout=0.01)
    held = await kit.acquire(pool)
    waiter = asyncio.create_task(kit.acquire(pool, timeout=None))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await kit.release(pool, held)
    assert await waiter is held
    await kit.release(pool, held)


async def test_many_timed_out_waiters_do_not_grow_the_queue(akit: AsyncKit) -> None:
    pool = akit.pool(pool_size=1)
    held = await pool.acquire()
    for _ in range(3):
        results = await asyncio.gather(
            *(pool.acquire(timeout=0.01) for _ in range(100)), return_exceptions=True
        )
        assert all(isinstance(r, PoolTimeout) for r in results)
    assert pool.stats().waiting == 0
    assert len(pool._state.queue.entries) <= 64 + 2
    await pool.release(held)
    assert await pool.acquire(timeout=0) is held


@pytest.fixture
def akit(ledger: Ledger) -> AsyncKit:
    return AsyncKit(ledger)


async def test_cancelled_reset_discards_the_resource(akit: AsyncKit) -> None:
    started = asyncio.Event()

    async def reset(resource: Resource) -> None:
        started.set()
        await asyncio.sleep(10)

    pool = akit.pool(pool_size=1, reset=reset, releaser_timeout=None)
    resource = await pool.acquire()
    task = asyncio.create_task(pool.release(resource))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await akit.settle(pool)
    assert resource.released == 1
    assert pool.stats().size == 0


def test_thread_interrupted_check_and_reset_discard_the_resource() -> None:
    ledger = Ledger()

    def check(resource: Resource) -> bool:
        raise KeyboardInterrupt

    pool = ThreadKit(ledger).pool(pool_size=1, check=check, check_after_idle=0)
    first = pool.acquire()
    pool.release(first)
    with pytest.raises(KeyboardInterrupt):
        pool.acquire()
    assert first.released == 1

    def reset(resource: Resource) -> None:
        raise KeyboardInterrupt

    pool = ThreadKit(ledger).pool(pool_size=1, reset=reset)
    second = pool.acquire()
    with pytest.raises(KeyboardInterrupt):
        pool.release(second)
    assert second.released == 1
    assert pool.stats().size == 0


def test_properties_and_closed_repr() -> None:
    pool = ThreadKit(Ledger()).pool(pool_size=3, name="p")
    assert (pool.name, pool.pool_size, pool.closed) == ("p", 3, False)
    pool.close()
    assert "closed" in repr(pool)


async def test_lease_throw_accepts_a_bare_exception_class(akit: AsyncKit) -> None:
    pool = akit.pool(pool_size=1)
    lease = pool.lease()
    await lease.__anext__()
    with pytest.raises(ValueError):
        await lease.athrow(ValueError)
    thread_pool = ThreadKit(Ledger()).pool(pool_size=1)
    thread_lease = thread_pool.lease()
    await thread_lease.__anext__()
    with pytest.raises(ValueError, match="boom"):
        await thread_lease.athrow(ValueError, "boom")
    assert thread_pool.stats().idle == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_thread_pool_after_fork_starts_empty() -> None:
    ledger = Ledger()
    pool = ThreadKit(ledger).pool(pool_size=2)
    pool.prefill()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ok = pool.stats().size == 0 and pool.acquire() not in ledger.made[:2]
            untouched = not any(r.released for r in ledger.made[:2])
            os.write(write, b"ok" if ok and untouched else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 10)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert pool.stats().idle == 2
