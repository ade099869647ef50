"""The state's contracts where features cross, on both pools.

One class per contract: ``wait_ready`` ends when it can no longer succeed or
already has; the pool never keeps more than ``pool_size``; a creation cut off
by a deadline is a failed attempt; an open breaker covers every creator; a
``BaseException`` from any callback costs no capacity; the gauges add up at
every instant; ``close(timeout)`` takes at most ``timeout``; every argument is
checked on every path. Every operation crossed with every phase is in
``tests/test_crossings.py``. The state's invariants are checked after every
transition as well (``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
from typing import Any

import pytest

from escudeiro_pools import AsyncPool, PoolClosed, PoolTimeout, PoolUnavailable, ThreadPool
from tests.kit import (
    FakeClock,
    Hold,
    Interrupt,
    Kit,
    Ledger,
    Resource,
    Timings,
    as_factory,
    assert_gauges_add_up,
    assert_kept_its_books,
    eventually,
    resize,
    until,
    wait_ready,
)

BOUND = 30.0  # seconds: generous, never reached unless the pool hangs


class TestWaitReadyEnds:
    async def test_closing_the_pool_while_it_waits_raises_pool_closed(
        self, kit: Kit, ledger: Ledger
    ) -> None:
        ledger.factory_failures = 10**6
        pool = kit.pool(pool_size=2, min_size=1, retry_backoff=(0.01, 0.01))
        waiting = asyncio.ensure_future(wait_ready(kit, pool, timeout=BOUND))
        await eventually(lambda: ledger.failed_calls >= 1, BOUND)
        await kit.close(pool)
        with pytest.raises(PoolClosed):  # not PoolTimeout after BOUND
            await asyncio.wait_for(waiting, BOUND / 2)

    async def test_closing_the_pool_while_its_first_creation_hangs_raises_pool_closed(
        self, kit: Kit, ledger: Ledger
    ) -> None:
        hold = Hold(kit.flavour)
        hold.armed = True
        pool = kit.pool(pool_size=2, min_size=1, factory=hold.wrap(ledger.make))
        waiting = asyncio.ensure_future(wait_ready(kit, pool, timeout=BOUND))
        await hold.reached()
        closing = asyncio.ensure_future(kit.close(pool, BOUND))
        with pytest.raises(PoolClosed):
            await asyncio.wait_for(waiting, BOUND / 2)
        hold.opened.set()
        await closing
        # Cancelled (asyncio) or made and then released (threads): nothing is kept.
        await eventually(lambda: kit.stats(pool).size == 0, BOUND)
        ledger.assert_released_once()

    async def test_a_closed_pool_refuses_at_once(self, kit: Kit) -> None:
        pool = kit.pool(pool_size=2, min_size=1)
        await kit.close(pool)
        with pytest.raises(PoolClosed):
            await wait_ready(kit, pool, timeout=BOUND)

    @pytest.mark.parametrize("how", ["min_size", "pool_size"])
    async def test_lowering_min_size_to_what_exists_ends_the_wait(
        self, kit: Kit, ledger: Ledger, how: str
    ) -> None:
        hold = Hold(kit.flavour)
        pool = kit.pool(pool_size=3, min_size=1, factory=hold.wrap(ledger.make))
        await wait_ready(kit, pool, timeout=BOUND)
        hold.armed = True  # from here on every creation hangs
        await resize(kit, pool, min_size=3)
        waiting = asyncio.ensure_future(wait_ready(kit, pool, timeout=BOUND))
        await hold.reached()
        if how == "min_size":
            await resize(kit, pool, min_size=1)
        else:
            await resize(kit, pool, 1, min_size=1)
        await asyncio.wait_for(waiting, BOUND / 2)
        hold.opened.set()
        await assert_kept_its_books(kit, pool)

    async def test_it_returns_at_once_when_ready(self, kit: Kit) -> None:
        pool = kit.pool(pool_size=2)
        await wait_ready(kit, pool, timeout=BOUND)
        await assert_kept_its_books(kit, pool)


class TestNeverMoreThanPoolSize:
    @pytest.mark.parametrize("creator", ["prefill", "maintainer", "caller"])
    async def test_a_shrink_meets_creations_in_flight(
        self, kit: Kit, ledger: Ledger, creator: str
    ) -> None:
        hold = Hold(kit.flavour)
        hold.armed = True
        min_size = 4 if creator == "maintainer" else 0
        pool = kit.pool(pool_size=4, min_size=min_size, factory=hold.wrap(ledger.make))
        calls: list[asyncio.Future[Any]] = []
        if creator == "prefill":
            calls.append(asyncio.ensure_future(kit.prefill(pool, 4)))
        elif creator == "maintainer":
            await resize(kit, pool)  # wakes the maintainer
        else:
            calls += [asyncio.ensure_future(kit.acquire(pool)) for _ in range(4)]
        await eventually(lambda: kit.stats(pool).creating == 4, BOUND)
        await resize(kit, pool, 1, min_size=min(min_size, 1))
        hold.opened.set()
        for resource in await asyncio.gather(*calls):
            if isinstance(resource, Resource):
                await kit.release(pool, resource)
        await eventually(lambda: not kit.stats(pool).releasing and not kit.stats(pool).creating)
        stats = kit.stats(pool)
        assert stats.size <= 1 and stats.idle <= 1, stats
        await assert_kept_its_books(kit, pool)

    async def test_a_stale_resource_met_as_the_pool_shrinks_is_not_replaced_beyond_the_size(
        self, kit: Kit, ledger: Ledger, clock: FakeClock
    ) -> None:
        hold = Hold(kit.flavour)
        pool = kit.pool(
            pool_size=2,
            pool_recycle=10,
            recycle_jitter=0,
            clock=clock,
            releaser=hold.wrap(ledger.release),
        )
        kept, stale = await kit.acquire(pool), await kit.acquire(pool)
        await kit.release(pool, stale)
        clock.advance(11)
        hold.armed = True
        caller = asyncio.ensure_future(kit.acquire(pool, timeout=BOUND))
        await hold.reached()  # the caller releases the stale one
        await resize(kit, pool, 1)
        hold.opened.set()
        # Its replacement would make two: the caller waits for the one left instead.
        await eventually(lambda: kit.stats(pool).waiting == 1, BOUND)
        assert kit.stats(pool).size == 1, kit.stats(pool)
        await kit.release(pool, kept)  # stale too by now: the caller replaces it
        got = await asyncio.wait_for(caller, BOUND)
        assert kit.stats(pool).size == 1, kit.stats(pool)
        await kit.release(pool, got)
        await assert_kept_its_books(kit, pool)


class TestADeadlineCutIsAFailure:
    """The asyncio pool cuts a factory call off at the deadline; a thread
    pool's blocking factory cannot be cut (its late resource is pooled)."""

    def pool(self, **options: Any) -> AsyncPool[Any]:
        async def hangs() -> object:
            await asyncio.Event().wait()
            raise AssertionError("never")

        async def release(resource: object) -> None:
            pass

        return AsyncPool(hangs, release, pool_size=2, **options)

    async def test_a_cut_off_creation_counts_and_trips_the_breaker(self) -> None:
        pool = self.pool(fail_fast_after=2, retry_backoff=(1000.0, 1000.0))
        for _ in range(2):
            with pytest.raises(PoolTimeout, match="creating"):
                await pool.acquire(timeout=0.01)
        stats = pool.stats()
        assert stats.factory_errors == 2 and stats.consecutive_failures == 2, stats
        assert not stats.available, stats
        with pytest.raises(PoolUnavailable):
            await pool.acquire(timeout=BOUND)
        await pool.close()

    async def test_the_maintainer_backs_off_after_a_cut_off_creation(
        self, clock: FakeClock
    ) -> None:
        pool = self.pool(min_size=1, acquire_timeout=0.01, retry_backoff=(50.0, 100.0), clock=clock)
        await pool.resize()
        await eventually(lambda: pool.stats().factory_errors == 1, BOUND)
        # The next try waits for the backoff, in the pool's clock (half to all of 50 s).
        assert pool._state.breaker.retry_at >= clock() + 25.0
        await pool.close()


class TestAnOpenBreakerCoversEveryCreator:
    async def tripped(self, kit: Kit, ledger: Ledger, **options: Any) -> Any:
        ledger.factory_failures = 10**6
        pool = kit.pool(pool_size=3, fail_fast_after=2, retry_backoff=(1000.0, 1000.0), **options)
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await kit.acquire(pool)
        assert not kit.stats(pool).available
        return pool

    async def test_prefill_refuses_without_calling_the_factory(
        self, kit: Kit, ledger: Ledger
    ) -> None:
        pool = await self.tripped(kit, ledger)
        with pytest.raises(PoolUnavailable):
            await kit.prefill(pool)
        assert ledger.failed_calls == 2
        await kit.close(pool)

    @pytest.mark.parametrize("growth", [{"min_size": 2}, {"size": 5, "min_size": 3}])
    async def test_resize_and_the_maintainer_create_nothing(
        self, kit: Kit, ledger: Ledger, growth: dict[str, int]
    ) -> None:
        pool = await self.tripped(kit, ledger)
        await resize(kit, pool, growth.get("size"), min_size=growth["min_size"])
        await resize(kit, pool)  # wakes the maintainer again
        await kit.settle(pool)
        assert ledger.failed_calls == 2, "a creator ran the factory while the breaker was open"
        await kit.close(pool)

    async def test_a_caller_that_would_wait_is_not_refused(self, kit: Kit, ledger: Ledger) -> None:
        pool = kit.pool(pool_size=1, fail_fast_after=1, retry_backoff=(1000.0, 1000.0))
        held = await kit.acquire(pool)
        ledger.factory_failures = 1
        await kit.discard(pool, held)
        with pytest.raises(ConnectionError):
            await kit.acquire(pool)
        assert not kit.stats(pool).available
        with pytest.raises(PoolUnavailable):
            await kit.acquire(pool)
        await kit.close(pool)


#: In the asyncio tests only ``Interrupt``: a ``KeyboardInterrupt`` or
#: ``SystemExit`` raised in one of the pool's tasks leaves the event loop.
THREAD_KINDS = (Interrupt, KeyboardInterrupt, SystemExit)


class TestABaseExceptionCostsNoCapacity:
    """Each callback raising a ``BaseException`` at checkout, at return and in
    the maintainer: the interrupt reaches the caller, the resource is released
    or its capacity freed, and the pool goes on."""

    HOOKS = ("factory", "alive", "check", "setup", "reset")

    def options(self, kit: Kit, hook: str, raises: list[type[BaseException]]) -> dict[str, Any]:
        def call(*args: Any) -> Any:
            if raises:
                raise raises.pop()("raised by " + hook)
            return True if hook in ("alive", "check") else None

        options: dict[str, Any] = {"check_after_idle": 0.0} if hook == "check" else {}
        if hook == "factory":
            make = kit.ledger.make

            def factory() -> Resource:
                call()
                return make()

            options["factory"] = as_factory(kit, factory)
        else:
            options[hook] = call
        return options

    @pytest.mark.parametrize("hook", HOOKS)
    async def test_at_checkout_and_at_return(self, kit: Kit, hook: str) -> None:
        raises: list[type[BaseException]] = []
        pool = kit.pool(pool_size=2, **self.options(kit, hook, raises))
        if hook != "factory":
            await kit.release(pool, await kit.acquire(pool))  # an idle one, for alive/check
        raises.append(Interrupt)
        with pytest.raises(Interrupt):
            resource = await kit.acquire(pool)
            await kit.release(pool, resource)  # alive and reset raise at return
        await assert_kept_its_books(kit, pool)

    @pytest.mark.parametrize("kind", THREAD_KINDS)
    @pytest.mark.parametrize("hook", [*HOOKS, "releaser"])
    def test_a_thread_pool_caller_gets_the_interrupt_and_the_pool_goes_on(
        self, hook: str, kind: type[BaseException]
    ) -> None:
        ledger = Ledger()
        raises: list[type[BaseException]] = []

        def call(*args: Any) -> Any:
            if raises:
                raise raises.pop()("raised by " + hook)
            return True if hook in ("alive", "check") else None

        def factory() -> Resource:
            if hook == "factory":
                call()
            return ledger.make()

        def releaser(resource: Resource) -> None:
            ledger.release(resource)
            if hook == "releaser":
                call()

        options: dict[str, Any] = {"check_after_idle": 0.0} if hook == "check" else {}
        if hook not in ("factory", "releaser"):
            options[hook] = call
        pool = ThreadPool(factory, releaser, pool_size=2, **options)
        if hook != "factory":
            pool.release(pool.acquire())  # an idle one, for alive and check
        raises.append(kind)
        with pytest.raises(kind):
            resource = pool.acquire()
            if hook == "releaser":
                pool.discard(resource)
            else:
                pool.release(resource)
        stats = pool.stats()
        assert_gauges_add_up(stats)
        assert stats.in_use == 0, stats
        held = [pool.acquire(timeout=BOUND) for _ in range(2)]
        for resource in held:
            pool.release(resource)
        pool.close(BOUND)
        ledger.assert_released_once()

    @pytest.mark.parametrize("kind", THREAD_KINDS)
    def test_the_thread_maintainer_survives_and_creates_after_a_backoff_step(
        self, kind: type[BaseException]
    ) -> None:
        ledger = Ledger()
        raises: list[type[BaseException]] = [kind]

        def factory() -> Resource:
            if raises:
                raise raises.pop()("raised by the factory")
            return ledger.make()

        pool = ThreadPool(
            factory, ledger.release, pool_size=2, min_size=2, retry_backoff=(0.01, 0.01)
        )
        pool.wait_ready(BOUND)  # the maintainer lived through the interrupt
        assert pool.stats().size == 2
        pool.close(BOUND)
        ledger.assert_released_once()

    async def test_the_async_maintainer_survives_an_interrupted_creation(self) -> None:
        ledger = Ledger()
        raises: list[type[BaseException]] = [Interrupt]

        async def factory() -> Resource:
            if raises:
                raise raises.pop()("raised by the factory")
            return ledger.make()

        async def releaser(resource: Resource) -> None:
            ledger.release(resource)

        pool = AsyncPool(factory, releaser, pool_size=2, min_size=2, retry_backoff=(0.01, 0.01))
        await pool.wait_ready(BOUND)
        await pool.close(BOUND)
        ledger.assert_released_once()

    def test_an_interrupted_creation_holds_the_maintainer_back_one_step(
        self, clock: FakeClock
    ) -> None:
        calls: list[int] = []

        def factory() -> Resource:
            calls.append(1)
            raise Interrupt("raised by the factory")

        pool = ThreadPool(
            factory, lambda resource: None, min_size=1, retry_backoff=(5.0, 5.0), clock=clock
        )
        pool.resize()
        # The interrupted creation is in the books once the state holds the maintainer back.
        until(lambda: pool._state.breaker.retry_at > 0.0)
        with pool._lock:
            # Not called again in a tight loop: the next try waits in the pool's clock.
            assert pool._state.breaker.retry_at == clock() + 5.0
        assert pool.stats().consecutive_failures == 0  # not counted as a failure
        assert len(calls) == 1
        pool.close(BOUND)


class TestGaugesAddUpAtEveryInstant:
    def test_a_thread_reading_stats_while_others_churn_sees_them_add_up(self) -> None:
        ledger = Ledger()
        pool = ThreadPool(ledger.make, ledger.release, pool_size=3, max_uses=3)
        done = threading.Event()
        seen: list[Any] = []
        wrong: list[Any] = []

        def read() -> None:
            while not done.is_set():
                stats = pool.stats()
                seen.append(stats)
                parts = [stats.idle, stats.in_use, stats.creating, stats.checking]
                parts += [stats.resetting, stats.releasing]
                if stats.size != sum(parts) or min(parts) < 0:
                    wrong.append(stats)

        def churn(worker: int) -> None:
            for step in range(300):
                resource = pool.acquire(timeout=BOUND)
                if (step + worker) % 7 == 0:
                    pool.discard(resource)
                else:
                    pool.release(resource)

        reader = threading.Thread(target=read)
        reader.start()
        workers = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(BOUND)
        done.set()
        reader.join(BOUND)
        assert seen and not wrong, wrong[:3]
        pool.close(BOUND)
        ledger.assert_released_once()

    def test_every_lease_is_told_used_once_while_threads_contend(self) -> None:
        ledger = Ledger()
        pool = ThreadPool(ledger.make, ledger.release, pool_size=1)
        timings = Timings()
        pool.add_observer(timings)

        def lease() -> None:
            for _ in range(500):
                with pool.lease():
                    pass

        workers = [threading.Thread(target=lease) for _ in range(4)]
        switching = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # threads interleave at every few bytecodes
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(BOUND)
        finally:
            sys.setswitchinterval(switching)
        # A return handed straight to a waiter is told before the waiter's lending.
        assert (len(timings.waits), len(timings.uses)) == (2000, 2000)
        pool.close(BOUND)


class TestCloseTakesAtMostItsTimeout:
    async def test_with_a_maintainer_mid_creation_and_a_lease_out(
        self, kit: Kit, ledger: Ledger
    ) -> None:
        hold = Hold(kit.flavour)
        pool = kit.pool(pool_size=3, factory=hold.wrap(ledger.make))
        held = await kit.acquire(pool)
        hold.armed = True
        await resize(kit, pool, min_size=2)
        await hold.reached()  # the maintainer is inside the factory
        timeout = 2.0
        started = time.monotonic()
        await kit.close(pool, timeout)
        took = time.monotonic() - started
        # Once for the maintainer and once more for the lease would be twice the timeout.
        assert took < timeout * 1.75, took
        hold.opened.set()
        await kit.release(pool, held)
        await eventually(lambda: kit.stats(pool).size == 0, BOUND)
        ledger.assert_released_once()


class TestEveryArgumentIsCheckedOnEveryPath:
    BAD = (
        (-5, ValueError),
        (-math.inf, ValueError),
        (math.nan, ValueError),
        ("abc", TypeError),
        (True, TypeError),
        ([1], TypeError),
    )

    @pytest.mark.parametrize(("timeout", "error"), BAD)
    async def test_acquire_refuses_a_bad_timeout_with_a_resource_idle(
        self, kit: Kit, timeout: Any, error: type[Exception]
    ) -> None:
        pool = kit.pool(pool_size=1)
        await kit.release(pool, await kit.acquire(pool))
        with pytest.raises(error, match="timeout"):
            await kit.acquire(pool, timeout=timeout)
        assert kit.stats(pool).idle == 1  # nothing was lent
        await assert_kept_its_books(kit, pool)

    @pytest.mark.parametrize(("timeout", "error"), BAD)
    async def test_every_call_with_a_timeout_refuses_a_bad_one(
        self, kit: Kit, timeout: Any, error: type[Exception]
    ) -> None:
        pool = kit.pool(pool_size=1)
        with pytest.raises(error, match="timeout"):
            await wait_ready(kit, pool, timeout=timeout)
        with pytest.raises(error, match="timeout"):
            await kit.close(pool, timeout)
        assert not pool.closed
        await assert_kept_its_books(kit, pool)
