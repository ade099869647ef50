"""Model-based tests: random sequences of pool operations against a reference model.

After every step the pool's stats, the resources it holds and the ledger of
everything the factory made and the releaser released must agree.
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

from escudeiro_pools import PoolError, PoolTimeout
from tests.kit import AsyncKit, FakeClock, Kit, Ledger, Resource, ThreadKit

SIZE = 3
RECYCLE = 100.0
MAX_IDLE = 60.0
CHECK_AFTER_IDLE = 10.0


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
        self.pool = self.kit.pool(
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
        self.returned: list[Resource] = []  # leased once, given back since
        self.acquired = 0
        self.ended = 0  # leases ended: released, discarded, or a lease block's exit

    # -- the pool's hooks, with failures the rules schedule ------------------

    def _check(self, resource: Resource) -> bool:
        if self.check_failures:
            self.check_failures -= 1
            if self.check_failures % 2:
                raise ConnectionError("check raised")
            return False
        return True

    def _reset(self, resource: Resource) -> None:
        if self.reset_failures:
            self.reset_failures -= 1
            raise ConnectionError("reset failed")

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, 10))

    def teardown(self) -> None:
        try:
            for resource in self.held:
                self.run(self.kit.release(self.pool, resource))
            self.held.clear()
            self.ledger.factory_failures = self.ledger.releaser_failures = 0
            with contextlib.suppress(ExceptionGroup):  # releaser failures the rules scheduled
                self.run(self.kit.close(self.pool))
            self.run(self.kit.settle(self.pool))
            stats = self.kit.stats(self.pool)
            assert stats.size == 0, stats
            self.ledger.assert_released_once()
        finally:
            self.loop.close()

    # -- rules ------------------------------------------------------------------

    @precondition(lambda self: len(self.held) < SIZE)
    @rule()
    def acquire(self) -> None:
        factory_failures = self.ledger.factory_failures
        try:
            resource = self.run(self.kit.acquire(self.pool))
        except ConnectionError:
            assert factory_failures, "only a failing factory may fail an acquire"
            return
        assert resource not in self.held, "one resource leased twice"
        assert not resource.released, "a released resource was handed out"
        self.held.append(resource)
        self.acquired += 1

    @precondition(lambda self: len(self.held) == SIZE)
    @rule()
    def acquire_when_exhausted_times_out(self) -> None:
        with pytest.raises(PoolTimeout, match="timed out while waiting"):
            self.run(self.kit.acquire(self.pool, timeout=0.01))

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        resource = data.draw(st.sampled_from(self.held))
        self.run(self.kit.release(self.pool, resource))
        self.held.remove(resource)
        self.returned.append(resource)
        self.ended += 1

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        resource = data.draw(st.sampled_from(self.held))
        self.run(self.kit.discard(self.pool, resource))
        self.held.remove(resource)
        self.ended += 1

    @precondition(lambda self: bool(self.returned))
    @rule(data=st.data())
    def release_twice_is_refused(self, data: st.DataObject) -> None:
        resource = data.draw(st.sampled_from(self.returned))
        if resource in self.held:
            return  # leased again since: releasing it now would be legitimate
        before = self.kit.stats(self.pool)
        with pytest.raises(PoolError, match=r"exactly once|not acquired from this pool"):
            self.run(self.kit.release(self.pool, resource))
        assert self.kit.stats(self.pool) == before

    @rule()
    def release_foreign_is_refused(self) -> None:
        before = self.kit.stats(self.pool)
        with pytest.raises(PoolError, match="not acquired from this pool"):
            self.run(self.kit.release(self.pool, Resource()))
        assert self.kit.stats(self.pool) == before

    @precondition(lambda self: len(self.held) < SIZE)
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
            self.run(body())
        except KeyError:
            pass
        except ConnectionError:
            assert factory_failures

    @rule(count=st.integers(1, SIZE + 2))
    def prefill(self, count: int) -> None:
        try:
            self.run(self.kit.prefill(self.pool, count))
        except ExceptionGroup as group:
            assert group.subgroup(ConnectionError) is not None, group

    @rule()
    def dispose(self) -> None:
        try:
            self.run(self.kit.dispose(self.pool))
        except ExceptionGroup as group:
            assert group.subgroup(OSError) is not None, group
        assert self.kit.stats(self.pool).idle == 0

    @precondition(lambda self: not self.held)
    @rule()
    def close_and_open(self) -> None:
        with contextlib.suppress(ExceptionGroup):
            self.run(self.kit.close(self.pool))
        assert self.kit.stats(self.pool).closed
        self.run(self.kit.open(self.pool))

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
        self.run(self.kit.settle(self.pool))
        stats = self.kit.stats(self.pool)
        made = self.ledger.made
        released = [r for r in made if r.released]
        live = [r for r in made if not r.released]
        assert all(r.released <= 1 for r in made), "a resource was released twice"
        assert stats.size <= SIZE
        assert stats.creating == stats.releasing == stats.waiting == 0
        assert stats.idle + stats.in_use == stats.size == len(live)
        assert stats.created == len(made) == stats.destroyed + stats.size
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
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("machine", [AsyncPoolModel, ThreadPoolModel], ids=["async", "thread"])
def test_random_operation_sequences_keep_the_books(machine: type[PoolModel]) -> None:
    run_state_machine_as_test(machine, settings=MODEL_SETTINGS)
