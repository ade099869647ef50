"""What only the thread pool does: real threads, blocking factories, interrupts."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from escudeiro_pools import PoolTimeout, ThreadPool, _thread_pool
from escudeiro_pools._waiters import ThreadWaiter
from tests.kit import Ledger, Resource, ThreadKit


@pytest.fixture
def kit(ledger: Ledger) -> ThreadKit:
    return ThreadKit(ledger)


def test_many_threads_never_share_a_resource(kit: ThreadKit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=4, acquire_timeout=10)
    holders: dict[int, int] = {}
    guard = threading.Lock()
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(200):
            with pool.lease() as resource:
                with guard:
                    if resource.id in holders:
                        errors.append(f"{resource} held twice")
                    holders[resource.id] = seed
                time.sleep(rng.random() / 10_000)
                with guard:
                    del holders[resource.id]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ledger.made) <= 4
    stats = pool.stats()
    assert stats.acquired == stats.released == 16 * 200
    pool.close()
    ledger.assert_released_once()


def test_a_factory_that_returns_after_the_deadline_pools_its_resource(
    kit: ThreadKit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=1)
    ledger.factory_delay = 0.1
    with pytest.raises(PoolTimeout, match="creating"):
        pool.acquire(timeout=0.01)
    ledger.factory_delay = 0
    assert pool.stats().idle == 1
    assert pool.acquire(timeout=0) is ledger.made[0]


def test_interrupted_waiter_costs_no_capacity(
    kit: ThreadKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Interrupting:
        """A signal whose wait is interrupted, as by Ctrl-C."""

        def acquire(self, timeout: float = -1) -> bool:
            raise KeyboardInterrupt

        def release(self) -> None:
            raise AssertionError("an interrupted waiter must not be granted")

    class InterruptedWaiter(ThreadWaiter):
        def __init__(self, pool: ThreadPool[Any]) -> None:
            super().__init__(pool)
            self.signal = Interrupting()  # type: ignore[assignment]

    pool = kit.pool(pool_size=1)
    held = pool.acquire()
    monkeypatch.setattr(_thread_pool, "ThreadWaiter", InterruptedWaiter)
    with pytest.raises(KeyboardInterrupt):
        pool.acquire(timeout=5)
    monkeypatch.undo()
    assert pool.stats().waiting == 0
    pool.release(held)
    assert pool.acquire(timeout=0) is held


def test_lease_interrupted_by_a_base_exception_discards_the_resource(kit: ThreadKit) -> None:
    pool = kit.pool(pool_size=1)
    with pytest.raises(KeyboardInterrupt), pool.lease() as resource:
        raise KeyboardInterrupt
    assert resource.released == 1
    assert pool.stats().discarded == 1


def test_with_pool_prefills_and_closes(kit: ThreadKit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=3)
    with pool as opened:
        assert opened is pool
        assert pool.stats().idle == 3
    assert pool.closed
    ledger.assert_released_once()


def test_with_pool_closes_when_prefill_fails(kit: ThreadKit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=3)
    ledger.factory_failures = 1
    with pytest.raises(ExceptionGroup), pool:
        pytest.fail("the body must not run")
    ledger.assert_released_once()


async def test_lease_as_an_async_generator_like_fastapi_drives_it(kit: ThreadKit) -> None:
    import inspect
    from contextlib import asynccontextmanager

    pool = kit.pool(pool_size=1)
    assert inspect.isasyncgenfunction(inspect.unwrap(pool.lease))
    assert list(inspect.signature(pool.lease).parameters) == []
    async with asynccontextmanager(pool.lease)():
        assert pool.stats().in_use == 1
    with pytest.raises(KeyError):
        async with asynccontextmanager(pool.lease)():
            raise KeyError("endpoint failed")
    assert pool.stats().idle == 1
    lease = pool.lease()
    assert aiter(lease) is lease
    await lease.asend(None)
    await lease.aclose()
    assert pool.stats().idle == 1


def test_leak_timeout_warns_from_a_timer(kit: ThreadKit, caplog: pytest.LogCaptureFixture) -> None:
    pool = kit.pool(pool_size=1, leak_timeout=0.02)
    with caplog.at_level("WARNING", "escudeiro_pools"):
        resource = pool.acquire()
        time.sleep(0.1)
        pool.release(resource)
    assert pool.stats().leaks == 1
    assert "test_thread_pool.py" in caplog.text


def test_resources_are_made_in_the_calling_thread(kit: ThreadKit) -> None:
    names: list[str] = []

    def factory() -> Resource:
        names.append(threading.current_thread().name)
        return Resource()

    pool = ThreadPool(factory, lambda r: None, pool_size=1)
    pool.acquire()
    assert names == [threading.current_thread().name]


def _wait_until_waiting(pool: ThreadPool[Resource], count: int) -> None:
    deadline = time.monotonic() + 5
    while pool.stats().waiting < count:
        assert time.monotonic() < deadline, "the waiter never queued"
        time.sleep(0.001)


@pytest.mark.parametrize(
    "options",
    [{}, {"leak_timeout": 60.0}, {"check": lambda resource: True, "check_after_idle": 0.0}],
    ids=["plain", "leak watch", "checked"],
)
def test_a_return_goes_to_the_longest_waiter(kit: ThreadKit, options: dict[str, Any]) -> None:
    pool = kit.pool(pool_size=1, **options)
    held = pool.acquire()
    got: list[Resource] = []
    first = threading.Thread(target=lambda: got.append(pool.acquire(timeout=5)))
    first.start()
    _wait_until_waiting(pool, 1)
    second = threading.Thread(target=lambda: got.append(pool.acquire(timeout=5)))
    second.start()
    _wait_until_waiting(pool, 2)
    pool.release(held)
    first.join(5)
    assert got == [held]
    pool.release(held)
    second.join(5)
    assert got == [held, held]
    pool.release(held)
    stats = pool.stats()
    assert (stats.waits, stats.in_use, stats.waiting) == (2, 0, 0)
    pool.close()


def test_a_return_skips_a_waiter_that_timed_out(kit: ThreadKit) -> None:
    pool = kit.pool(pool_size=1)
    held = pool.acquire()
    with pytest.raises(PoolTimeout):
        pool.acquire(timeout=0.01)  # leaves an abandoned waiter at the head of the queue
    got: list[Resource] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(timeout=5)))
    waiter.start()
    _wait_until_waiting(pool, 1)
    pool.release(held)
    waiter.join(5)
    assert got == [held]
    pool.release(held)
    pool.close()
