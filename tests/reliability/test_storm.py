"""Fault storms: many callers, random failures, cancellations and timeouts.

Afterwards the pool must still hand out ``pool_size`` resources at once,
every resource must have been released at most once (exactly once after the
close), the counters must balance, and memory must not have grown.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from escudeiro_pools import AsyncPool, PoolError, PoolStats, PoolTimeout, ThreadPool

SIZE = 10
FAULT = 0.02  # the chance of each injected failure
MEMORY_BUDGET = 1_000_000  # bytes the pool may keep after the storm


class Fault(Exception):
    """An injected failure."""


class Token:
    """A resource: a plain object, so the ledger below holds no references to it."""

    __slots__ = ("__weakref__", "serial")

    def __init__(self, serial: int) -> None:
        self.serial = serial


class Books:
    """Counts what the factory made and the releaser released, by identity, in O(live)."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.live: dict[int, int] = {}
        self.made = self.released = self.double_releases = 0

    def fails(self) -> bool:
        with self.lock:
            return self.random.random() < FAULT

    def make(self) -> Token:
        if self.fails():
            raise Fault("factory")
        with self.lock:
            self.made += 1
            token = Token(self.made)
            self.live[id(token)] = token.serial
        return token

    def release(self, token: Token) -> None:
        with self.lock:
            if self.live.pop(id(token), None) != token.serial:
                self.double_releases += 1
            self.released += 1
        if self.fails():
            raise Fault("releaser")

    def check(self, token: Token) -> bool:
        return not self.fails()

    def reset(self, token: Token) -> None:
        if self.fails():
            raise Fault("reset")


def assert_balanced(stats: PoolStats, books: Books) -> None:
    assert books.double_releases == 0
    assert stats.size <= SIZE
    assert stats.creating == stats.releasing == stats.in_use == stats.waiting == 0
    assert stats.created == books.made == stats.destroyed + stats.size
    assert stats.destroyed == books.released
    assert len(books.live) == stats.size == stats.idle
    assert stats.acquired == stats.released


@pytest.fixture(autouse=True)
def quiet_pool_logs() -> Iterator[None]:
    """Thousands of injected failures would each log a warning (and be kept by pytest)."""
    logger = logging.getLogger("escudeiro_pools")
    logger.disabled = True
    yield
    logger.disabled = False


def measure_growth(storm: Callable[[], None]) -> int:
    """Bytes still allocated after ``storm()`` ran (after a collection)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        storm()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


# -- asyncio ----------------------------------------------------------------------------


def async_pool(books: Books) -> AsyncPool[Token]:
    async def factory() -> Token:
        await asyncio.sleep(0)
        return books.make()

    async def releaser(token: Token) -> None:
        await asyncio.sleep(0)
        books.release(token)

    async def check(token: Token) -> bool:
        await asyncio.sleep(0)
        return books.check(token)

    def reset(token: Token) -> Any:
        books.reset(token)
        return asyncio.sleep(0) if books.random.random() < 0.5 else None

    return AsyncPool(
        factory,
        releaser,
        pool_size=SIZE,
        check=check,
        check_after_idle=0.0,
        reset=reset,
        acquire_timeout=2.0,
    )


async def async_storm(pool: AsyncPool[Token], seed: int, tasks: int, leases: int) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    per_task = leases // tasks

    def count(outcome: str) -> None:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    async def use(rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.05:
            resource = await pool.acquire(timeout=0.0005)
            await asyncio.sleep(0)
            await pool.release(resource)
        elif roll < 0.08:
            resource = await pool.acquire()
            await pool.discard(resource)
        else:
            async with pool.lease():
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                if rng.random() < FAULT:
                    raise Fault("inside the lease")

    async def caller(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        for _ in range(per_task):
            roll = rng.random()
            attempt = asyncio.ensure_future(use(rng))
            if roll < 0.05:
                for _ in range(rng.randrange(4)):
                    await asyncio.sleep(0)
                attempt.cancel()
            try:
                await attempt
                count("ok")
            except asyncio.CancelledError:
                count("cancelled")
            except PoolTimeout:
                count("timeout")
            except Fault:
                count("fault")

    await asyncio.wait_for(asyncio.gather(*(caller(n) for n in range(tasks))), 120)
    return outcomes


async def hand_out_everything(pool: AsyncPool[Token]) -> None:
    """The pool can still lend ``SIZE`` resources at once (the factory may fail on the way)."""
    held: list[Token] = []
    while len(held) < SIZE:
        try:
            held.append(await pool.acquire(timeout=2.0))
        except Fault:
            continue
    assert len({id(token) for token in held}) == SIZE
    for token in held:
        await pool.release(token)


async def settle(pool: AsyncPool[Token]) -> None:
    while pool.stats().releasing or pool.stats().creating:
        await asyncio.sleep(0.001)


@pytest.mark.unchecked
@pytest.mark.no_cover
def test_async_storm_of_200_tasks_and_100_000_leases() -> None:
    books = Books(seed=1)
    pool = async_pool(books)
    outcomes: dict[str, int] = {}

    async def main() -> int:
        # The warm-up grows asyncio's and the pool's tables once, outside the measure.
        await async_storm(pool, seed=0, tasks=200, leases=4_000)
        await settle(pool)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            outcomes.update(await async_storm(pool, seed=1, tasks=200, leases=100_000))
            await settle(pool)
            gc.collect()
            growth = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert_balanced(pool.stats(), books)
        pool._state.check_invariants()
        await hand_out_everything(pool)
        await settle(pool)
        assert_balanced(pool.stats(), books)
        try:
            await pool.close()
        except ExceptionGroup as group:
            assert group.subgroup(Fault) is not None
        await settle(pool)
        return growth

    growth = asyncio.run(main())
    print(f"async storm: {outcomes}, memory growth {growth} B")
    assert sum(outcomes.values()) == 100_000
    assert outcomes["cancelled"] and outcomes["fault"] and outcomes["timeout"], outcomes
    assert growth < MEMORY_BUDGET
    assert pool.stats().size == 0
    assert books.made == books.released and not books.live


# -- threads --------------------------------------------------------------------------


def thread_pool(books: Books) -> ThreadPool[Token]:
    return ThreadPool(
        books.make,
        books.release,
        pool_size=SIZE,
        check=books.check,
        check_after_idle=0.0,
        reset=books.reset,
        acquire_timeout=2.0,
    )


def thread_storm(pool: ThreadPool[Token], seed: int, threads: int, leases: int) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    per_thread = leases // threads

    def caller(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        mine: dict[str, int] = {}
        for _ in range(per_thread):
            roll = rng.random()
            try:
                if roll < 0.05:
                    resource = pool.acquire(timeout=0.0005)
                    pool.release(resource)
                elif roll < 0.08:
                    pool.discard(pool.acquire())
                else:
                    with pool.lease():
                        if rng.random() < 0.1:
                            time.sleep(0)
                        if rng.random() < FAULT:
                            raise Fault("inside the lease")
                outcome = "ok"
            except PoolTimeout:
                outcome = "timeout"
            except Fault:
                outcome = "fault"
            mine[outcome] = mine.get(outcome, 0) + 1
        with lock:
            for outcome, n in mine.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + n

    with ThreadPoolExecutor(threads) as executor:
        for future in [executor.submit(caller, n) for n in range(threads)]:
            future.result(timeout=120)
    return outcomes


@pytest.mark.unchecked
@pytest.mark.no_cover
def test_thread_storm_of_32_threads_and_100_000_leases() -> None:
    books = Books(seed=2)
    pool = thread_pool(books)
    outcomes: dict[str, int] = {}
    thread_storm(pool, seed=0, threads=32, leases=3_200)
    growth = measure_growth(lambda: outcomes.update(thread_storm(pool, 2, 32, 100_000)))
    print(f"thread storm: {outcomes}, memory growth {growth} B")
    assert sum(outcomes.values()) == 100_000
    assert outcomes["fault"], outcomes
    assert growth < MEMORY_BUDGET
    assert_balanced(pool.stats(), books)
    pool._state.check_invariants()

    held: list[Token] = []
    while len(held) < SIZE:
        try:
            held.append(pool.acquire(timeout=2.0))
        except Fault:
            continue
    assert len({id(token) for token in held}) == SIZE
    for token in held:
        pool.release(token)
    try:
        pool.close()
    except ExceptionGroup as group:
        assert group.subgroup(Fault) is not None
    assert pool.stats().size == 0
    assert books.made == books.released and not books.live


def test_a_release_racing_itself_is_refused_once() -> None:
    """Two threads releasing one resource at once: one wins, one gets PoolError."""
    pool = ThreadPool(lambda: Token(0), lambda token: None, pool_size=1)
    for _ in range(200):
        resource = pool.acquire()
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def release(
            resource: Token = resource,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                pool.release(resource)
            except PoolError as exc:
                errors.append(exc)

        workers = [threading.Thread(target=release) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert len(errors) == 1
        assert pool.stats().idle == 1
