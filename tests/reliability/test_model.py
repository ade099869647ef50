"""Model-based tests: random sequences of pool operations against a reference model.

Every public call (acquire, release, discard, detach, lease, prefill,
dispose, close/open, resize, wait_ready), deadlines, cancellations, time
passing, and every callback failing with an ``Exception`` or interrupted
with a ``BaseException``. After every step, once the pool has settled, its
stats, the resources it holds and the ledger of everything the factory made
and the releaser released must agree. The state's invariants are checked
after every transition as well (``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from escudeiro_pools import PoolClosed, PoolError, PoolTimeout, _maintenance
from tests.kit import (
    AsyncKit,
    FakeClock,
    Interrupt,
    Kit,
    Ledger,
    Resource,
    ThreadKit,
    as_factory,
    detach,
    resize,
    wait_ready,
)

SIZE = 3
RECYCLE = 100.0
MAX_IDLE = 60.0
CHECK_AFTER_IDLE = 10.0
LARGEST = 4  # resize() moves the size within 1..LARGEST
BOUND = 30.0  # seconds: generous, never reached unless the pool hangs
HOOKS = ("factory", "releaser", "check", "reset")


class PoolModel(RuleBasedStateMachine):
    """Drives one pool through a kit; ``held`` is the model of what is leased."""

    kit_class: ClassVar[type[Kit]]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.ledger = Ledger()
        self.kit = self.kit_class(self.ledger)
        self.clock = FakeClock()
        self.check_failures = 0
        self.reset_failures = 0
        self.interrupts = dict.fromkeys(HOOKS, 0)  # scheduled, per callback
        self.interrupted = 0  # raised so far
        self.pool = self.kit.pool(
            factory=as_factory(self.kit, self._factory),
            releaser=self._releaser(),
            pool_size=SIZE,
            pool_recycle=RECYCLE,
            max_idle=MAX_IDLE,
            check=self._check,
            check_after_idle=CHECK_AFTER_IDLE,
            reset=self._reset,
            clock=self.clock,
            acquire_timeout=5.0,
        )
        self.held: list[Resource] = []
        self.detached: list[Resource] = []
        self.returned: list[Resource] = []  # leased once, given back since
        self.acquired = 0
        self.ended = 0  # leases ended: released, discarded, or a lease block's exit

    # -- the pool's hooks, with failures the rules schedule ------------------

    def _interrupt(self, hook: str) -> None:
        if self.interrupts[hook]:
            self.interrupts[hook] -= 1
            self.interrupted += 1
            raise Interrupt(f"{hook} interrupted")

    def _factory(self) -> Resource:
        self._interrupt("factory")
        return self.ledger.make()

    def _releaser(self) -> Any:
        def release(resource: Resource) -> None:
            self.ledger.release(resource)  # counted, then interrupted
            self._interrupt("releaser")

        if self.kit.flavour == "thread":
            return release

        async def release_async(resource: Resource) -> None:
            release(resource)

        return release_async

    def _check(self, resource: Resource) -> bool:
        self._interrupt("check")
        if self.check_failures:
            self.check_failures -= 1
            if self.check_failures % 2:
                raise ConnectionError("check raised")
            return False
        return True

    def _reset(self, resource: Resource) -> None:
        self._interrupt("reset")
        if self.reset_failures:
            self.reset_failures -= 1
            raise ConnectionError("reset failed")

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, BOUND))

    def attempt(self, coroutine: Any) -> tuple[Any, BaseException | None]:
        """Run ``coroutine``; an interrupt it meets is returned, and only one
        a callback raised while it ran may reach it."""
        before = self.interrupted
        try:
            return self.run(coroutine), None
        except (Interrupt, BaseExceptionGroup) as exc:
            if isinstance(exc, BaseExceptionGroup):
                assert exc.subgroup((Interrupt, ConnectionError, OSError)) is not None, exc
                if exc.subgroup(Interrupt) is None:
                    raise
            assert self.interrupted > before, f"{exc!r} without an interrupt"
            return None, exc

    @property
    def exhausted(self) -> bool:
        size: int = self.pool.pool_size
        return len(self.held) >= size

    async def settle(self) -> None:
        """Wake the maintainer, then wait until the pool has nothing left to do."""
        await resize(self.kit, self.pool)
        for _ in range(int(BOUND / 0.002)):
            if self._quiet():
                return
            await asyncio.sleep(0.002)
        raise AssertionError(f"the pool never settled: {self.kit.stats(self.pool)}")

    def _quiet(self) -> bool:
        state = self.pool._state
        lock = self.pool._lock if self.kit.flavour == "thread" else contextlib.nullcontext()
        with lock:
            busy = state.creating or state.releasing or state.checking or state.resetting
            plan = _maintenance.plan(state, state.clock())
            return not (busy or state.queue.waiting or plan.creations or plan.retire)

    def teardown(self) -> None:
        try:
            self.ledger.factory_failures = self.ledger.releaser_failures = 0
            self.check_failures = self.reset_failures = 0
            self.interrupts = dict.fromkeys(HOOKS, 0)
            for resource in self.held:
                self.run(self.kit.release(self.pool, resource))
            self.held.clear()
            with contextlib.suppress(ExceptionGroup):  # releaser failures the rules scheduled
                self.run(self.kit.close(self.pool))
            self.run(self.kit.settle(self.pool))
            stats = self.kit.stats(self.pool)
            assert stats.size == 0, stats
            kept = {id(resource) for resource in self.detached}
            assert all(r.released == (0 if id(r) in kept else 1) for r in self.ledger.made)
        finally:
            self.loop.close()

    # -- rules ------------------------------------------------------------------

    @precondition(lambda self: not self.exhausted)
    @rule()
    def acquire(self) -> None:
        factory_failures = self.ledger.factory_failures
        try:
            resource, interrupted = self.attempt(self.kit.acquire(self.pool))
        except ConnectionError:
            assert factory_failures, "only a failing factory may fail an acquire"
            return
        if interrupted is not None:
            return  # the resource it met (if any) was released: the books below say so
        assert resource not in self.held, "one resource leased twice"
        assert not resource.released, "a released resource was handed out"
        self.held.append(resource)
        self.acquired += 1

    @precondition(lambda self: self.exhausted and not self.pool.closed)
    @rule()
    def acquire_when_exhausted_times_out(self) -> None:
        with pytest.raises(PoolTimeout, match="timed out while waiting"):
            self.run(self.kit.acquire(self.pool, timeout=0.01))

    @precondition(lambda self: self.exhausted and not self.pool.closed)
    @rule()
    def a_waiting_acquire_is_cancelled(self) -> None:
        async def cancelled() -> None:
            waiter = asyncio.ensure_future(self.kit.acquire(self.pool, timeout=BOUND))
            while self.kit.stats(self.pool).waiting != 1:
                await asyncio.sleep(0.001)
            if self.kit.flavour == "thread":
                # A blocked thread cannot be cancelled: its caller gives up at its deadline.
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
                return
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert self.kit.stats(self.pool).waiting == 0

        if self.kit.flavour == "async":
            self.run(cancelled())

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        resource = data.draw(st.sampled_from(self.held))
        self.attempt(self.kit.release(self.pool, resource))  # reset or the releaser may interrupt
        self.held.remove(resource)
        self.returned.append(resource)
        self.ended += 1

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        resource = data.draw(st.sampled_from(self.held))
        self.attempt(self.kit.discard(self.pool, resource))
        self.held.remove(resource)
        self.ended += 1

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def detach(self, data: st.DataObject) -> None:
        resource = data.draw(st.sampled_from(self.held))
        self.run(detach(self.kit, self.pool, resource))
        self.held.remove(resource)
        self.detached.append(resource)
        self.ended += 1  # its lease ended: counted in released as well as in detached

    @precondition(lambda self: bool(self.returned))
    @rule(data=st.data())
    def release_twice_is_refused(self, data: st.DataObject) -> None:
        resource = data.draw(st.sampled_from(self.returned))
        if resource in self.held:
            return  # leased again since: releasing it now would be legitimate
        self.run(self.settle())
        before = self.kit.stats(self.pool)
        with pytest.raises(PoolError, match=r"exactly once|not acquired from this pool"):
            self.run(self.kit.release(self.pool, resource))
        assert self.kit.stats(self.pool) == before

    @rule()
    def release_foreign_is_refused(self) -> None:
        self.run(self.settle())
        before = self.kit.stats(self.pool)
        with pytest.raises(PoolError, match="not acquired from this pool"):
            self.run(self.kit.release(self.pool, Resource()))
        assert self.kit.stats(self.pool) == before

    @precondition(lambda self: not self.exhausted)
    @rule()
    def lease_with_an_exception_inside(self) -> None:
        factory_failures = self.ledger.factory_failures

        async def body() -> None:
            async with self.kit.lease(self.pool) as resource:
                assert resource not in self.held
                self.acquired += 1
                self.ended += 1
                raise KeyError("inside the lease")

        try:
            self.attempt(body())
        except KeyError:
            pass
        except ConnectionError:
            assert factory_failures
        except PoolClosed:
            assert self.pool.closed

    @rule(count=st.integers(1, LARGEST + 1))
    def prefill(self, count: int) -> None:
        try:
            self.attempt(self.kit.prefill(self.pool, count))
        except ExceptionGroup as group:
            assert group.subgroup(ConnectionError) is not None, group
        except PoolClosed:
            assert self.pool.closed

    @rule()
    def dispose(self) -> None:
        self.run(self.settle())
        kept = {id(resource) for resource in self.held + self.detached}
        idle = [r for r in self.ledger.made if not r.released and id(r) not in kept]
        try:
            self.attempt(self.kit.dispose(self.pool))
        except ExceptionGroup as group:
            assert group.subgroup(OSError) is not None, group
        # Every idle one is released (the maintainer may have made new ones for min_size).
        assert all(resource.released for resource in idle)

    @precondition(lambda self: not self.held)
    @rule()
    def close_and_open(self) -> None:
        with contextlib.suppress(ExceptionGroup):
            self.attempt(self.kit.close(self.pool))
        assert self.kit.stats(self.pool).closed
        self.run(self.kit.open(self.pool))

    @rule(size=st.integers(1, LARGEST), floor=st.integers(0, 2))
    def resize(self, size: int, floor: int) -> None:
        # A shrink releases idle ones beyond the size: the releaser may fail or interrupt it.
        try:
            self.attempt(resize(self.kit, self.pool, size, min_size=min(floor, size)))
        except ExceptionGroup as group:
            assert group.subgroup(OSError) is not None, group
        assert (self.pool.pool_size, self.pool.min_size) == (size, min(floor, size))

    @precondition(
        lambda self: (
            not self.pool.closed
            and not self.ledger.factory_failures
            and not self.interrupts["factory"]
            and self.pool._state.breaker.retry_at <= self.clock()
        )
    )
    @rule()
    def wait_ready(self) -> None:
        self.run(wait_ready(self.kit, self.pool, timeout=BOUND))
        assert self.kit.stats(self.pool).size >= self.pool.min_size

    @rule(hook=st.sampled_from(HOOKS))
    def a_callback_is_interrupted(self, hook: str) -> None:
        self.interrupts[hook] += 1

    @rule(count=st.integers(1, 2))
    def factory_fails(self, count: int) -> None:
        self.ledger.factory_failures += count

    @rule(count=st.integers(1, 2))
    def releaser_fails(self, count: int) -> None:
        self.ledger.releaser_failures += count

    @rule(count=st.integers(1, 2))
    def check_fails(self, count: int) -> None:
        self.check_failures += count

    @rule()
    def reset_fails(self) -> None:
        self.reset_failures += 1

    @rule(seconds=st.sampled_from([1.0, CHECK_AFTER_IDLE, MAX_IDLE, RECYCLE]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- invariants -------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        self.run(self.settle())
        stats = self.kit.stats(self.pool)
        made = self.ledger.made
        kept = {id(resource) for resource in self.detached}
        released = [r for r in made if r.released]
        live = [r for r in made if not r.released and id(r) not in kept]
        assert all(r.released <= 1 for r in made), "a resource was released twice"
        assert not any(r.released for r in self.detached), "a detached resource was released"
        # Beyond pool_size only while leases taken before a shrink are out.
        assert stats.idle <= max(0, self.pool.pool_size - stats.in_use), stats
        assert stats.creating == stats.releasing == stats.waiting == 0
        assert stats.idle + stats.in_use == stats.size == len(live)
        assert stats.created == len(made) == stats.destroyed + stats.size + len(self.detached)
        assert stats.detached == len(self.detached)
        assert stats.destroyed == len(released)
        assert stats.in_use == len(self.held)
        assert set(self.held) <= set(live)
        assert stats.acquired == self.acquired == stats.released + stats.in_use
        assert stats.released == self.ended


class AsyncPoolModel(PoolModel):
    kit_class = AsyncKit


class ThreadPoolModel(PoolModel):
    kit_class = ThreadKit


MODEL_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("machine", [AsyncPoolModel, ThreadPoolModel], ids=["async", "thread"])
def test_random_operation_sequences_keep_the_books(machine: type[PoolModel]) -> None:
    run_state_machine_as_test(machine, settings=MODEL_SETTINGS)
