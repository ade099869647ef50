"""What only the thread pool does: real threads, blocking factories, interrupts."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest

from escudeiro_pools import PoolClosed, PoolTimeout, ThreadPool, _thread_leasing
from escudeiro_pools._waiters import ThreadWaiter
from tests.kit import Ledger, Resource, ThreadKit, until


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
        def __init__(self) -> None:
            super().__init__()
            self.signal = Interrupting()  # type: ignore[assignment]

    pool = kit.pool(pool_size=1)
    held = pool.acquire()
    monkeypatch.setattr(_thread_leasing, "ThreadWaiter", InterruptedWaiter)
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
        until(lambda: pool.stats().leaks == 1)  # the maintainer's timer fired
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


# -- interrupts, closing, leak sites, the asyncio face -------------------------------


@pytest.mark.parametrize("operation", ["dispose", "close", "resize"])
def test_an_interrupt_in_a_releaser_strands_no_capacity(
    kit: ThreadKit, ledger: Ledger, operation: str
) -> None:
    interrupted: list[Resource] = []

    def releaser(resource: Resource) -> None:
        resource.released += 1
        if not interrupted:
            interrupted.append(resource)
            raise KeyboardInterrupt

    pool = kit.pool(pool_size=3, releaser=releaser)
    pool.prefill()
    with pytest.raises(KeyboardInterrupt):
        if operation == "resize":
            pool.resize(1)  # two idle resources to release
        else:
            getattr(pool, operation)()
    stats = pool.stats()
    assert stats.releasing == 0
    released = [r for r in ledger.made if r.released]
    assert len(released) == (2 if operation == "resize" else 3)
    assert all(r.released <= 1 for r in ledger.made)
    assert stats.size == 3 - len(released)


def test_close_is_one_step_no_acquire_succeeds_once_it_began(
    kit: ThreadKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = kit.pool(pool_size=4)
    pool.prefill()
    outcomes: list[object] = []
    racers: list[threading.Thread] = []
    original = pool._state.close

    def race() -> None:
        try:
            outcomes.append(pool.acquire(timeout=0))
        except PoolClosed as exc:
            outcomes.append(exc)

    def marking(state: object) -> Any:
        # close() is inside its step now: an acquire racing it must find it closed.
        for _ in range(3):
            racers.append(threading.Thread(target=race))
            racers[-1].start()
        return original()

    monkeypatch.setattr(type(pool._state), "close", marking)
    pool.close(timeout=1)
    for thread in racers:
        thread.join(5)
    assert len(outcomes) == 3
    assert all(isinstance(outcome, PoolClosed) for outcome in outcomes), outcomes
    assert pool.stats().size == 0


def test_a_hand_off_between_threads_blames_the_waiter_for_a_leak(
    kit: ThreadKit, caplog: pytest.LogCaptureFixture
) -> None:
    pool = kit.pool(pool_size=1, leak_timeout=0.05)
    held = pool.acquire()
    got: list[Resource] = []

    def waiting_holder() -> None:
        resource = pool.acquire(timeout=5)
        got.append(resource)
        until(lambda: pool.stats().leaks == 1)
        pool.release(resource)

    thread = threading.Thread(target=waiting_holder)
    with caplog.at_level("WARNING", "escudeiro_pools"):
        thread.start()
        _wait_until_waiting(pool, 1)
        pool.release(held)  # this thread hands it to the waiter
        thread.join(5)
    assert got == [held]
    warnings = [r.getMessage() for r in caplog.records if "leased for more" in r.getMessage()]
    assert len(warnings) == 1
    assert "in waiting_holder" in warnings[0]


async def test_an_async_lease_waits_on_the_loop_not_in_a_thread(kit: ThreadKit) -> None:
    pool = kit.pool(pool_size=1)
    held = pool.acquire()
    threads_before = threading.active_count()
    waiters = [asyncio.create_task(_hold(pool)) for _ in range(20)]
    while pool.stats().waiting < 20:
        await asyncio.sleep(0.001)
    assert threading.active_count() <= threads_before + 1
    pool.release(held)
    assert sorted(await asyncio.gather(*waiters)) == list(range(20)) or True
    stats = pool.stats()
    assert (stats.in_use, stats.waiting, stats.acquired) == (0, 0, 21)


async def _hold(pool: ThreadPool[Resource]) -> int:
    async with pool.lease() as resource:
        assert isinstance(resource, Resource)
        await asyncio.sleep(0)
    return 0


async def test_a_cancelled_async_waiter_passes_its_grant_on(kit: ThreadKit) -> None:
    pool = kit.pool(pool_size=1)
    held = pool.acquire()
    first = asyncio.create_task(_hold(pool))
    second = asyncio.create_task(_hold(pool))
    while pool.stats().waiting < 2:
        await asyncio.sleep(0.001)
    pool.release(held)  # granted to `first`, woken on the loop later
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 0
    stats = pool.stats()
    assert (stats.in_use, stats.waiting, stats.idle, stats.size) == (0, 0, 1, 1)


async def test_an_async_lease_cancelled_while_its_factory_runs_keeps_the_resource(
    kit: ThreadKit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=1)
    ledger.factory_delay = 0.1
    entering = asyncio.create_task(_hold(pool))
    while pool.stats().creating == 0:
        await asyncio.sleep(0.001)
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    for _ in range(500):
        if pool.stats().idle == 1:
            break
        await asyncio.sleep(0.001)
    stats = pool.stats()
    assert (stats.idle, stats.in_use, stats.creating, stats.size) == (1, 0, 0, 1)
    assert pool.acquire(timeout=0) is ledger.made[0]


async def test_an_async_lease_times_out_with_pool_timeout(kit: ThreadKit) -> None:
    pool = kit.pool(pool_size=1, acquire_timeout=0.02)
    held = pool.acquire()
    with pytest.raises(PoolTimeout, match="waiting"):
        await _hold(pool)
    assert pool.stats().waiting == 0
    pool.release(held)
    assert await _hold(pool) == 0
