"""What only the asyncio pool does: loops, cancellation, awaitables, lifespans."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from typing import Any

import pytest

from escudeiro_pools import AsyncPool, PoolClosed, PoolError, PoolTimeout, ThreadPool
from tests.kit import AsyncKit, Ledger, Resource


@pytest.fixture
def kit(ledger: Ledger) -> AsyncKit:
    return AsyncKit(ledger)


async def test_cancelled_waiter_costs_no_capacity(kit: AsyncKit) -> None:
    pool = kit.pool(pool_size=1)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.stats().waiting == 0
    await pool.release(held)
    assert await pool.acquire(timeout=0.1) is held


async def test_waiter_cancelled_after_being_granted_passes_the_resource_on(
    kit: AsyncKit,
) -> None:
    pool = kit.pool(pool_size=1)
    held = await pool.acquire()
    first = asyncio.create_task(pool.acquire())
    second = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    await pool.release(held)  # granted to `first`, which has not run yet
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second is held
    await pool.release(held)


async def test_cancel_inside_the_factory_frees_the_reservation(
    kit: AsyncKit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=1)
    ledger.factory_delay = 1
    task = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.stats().size == 0
    ledger.factory_delay = 0
    resource = await pool.acquire(timeout=0.5)
    await pool.release(resource)


async def test_cancelled_lease_body_discards_the_resource(kit: AsyncKit) -> None:
    pool = kit.pool(pool_size=1)
    entered = asyncio.Event()
    seen: list[Resource] = []

    async def body() -> None:
        async with pool.lease() as resource:
            seen.append(resource)
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await kit.settle(pool)
    assert seen[0].released == 1
    assert pool.stats().discarded == 1
    assert await pool.acquire(timeout=0.5) is not seen[0]


async def test_cancel_during_an_awaited_check_releases_the_resource(kit: AsyncKit) -> None:
    checking = asyncio.Event()

    async def check(resource: Resource) -> bool:
        checking.set()
        await asyncio.sleep(10)
        return True

    pool = kit.pool(pool_size=1, check=check, check_after_idle=0)
    first = await pool.acquire()
    await pool.release(first)
    task = asyncio.create_task(pool.acquire())
    await checking.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await kit.settle(pool)
    assert first.released == 1
    assert pool.stats().size == 0


async def test_timeout_during_check_names_the_phase(kit: AsyncKit) -> None:
    async def slow_check(resource: Resource) -> bool:
        await asyncio.sleep(10)
        return True

    pool = kit.pool(pool_size=1, check=slow_check, check_after_idle=0)
    first = await pool.acquire()
    await pool.release(first)
    with pytest.raises(PoolTimeout, match="checking"):
        await pool.acquire(timeout=0.05)
    await kit.settle(pool)
    assert pool.stats().size == 0


async def test_a_waiter_without_deadline_does_not_hide_later_deadlines(kit: AsyncKit) -> None:
    pool = kit.pool(pool_size=1)
    held = await pool.acquire()
    forever = asyncio.create_task(pool.acquire(timeout=None))
    await asyncio.sleep(0.01)
    with pytest.raises(PoolTimeout):
        await asyncio.wait_for(pool.acquire(timeout=0.03), 5)
    assert not forever.done()
    await pool.release(held)
    assert await forever is held
    with pytest.raises(PoolTimeout):  # the order starts afresh once the queue is empty
        await asyncio.wait_for(pool.acquire(timeout=0.03), 5)


async def test_waiters_with_mixed_timeouts_expire_in_deadline_order(kit: AsyncKit) -> None:
    pool = kit.pool(pool_size=1)
    held = await pool.acquire()
    expired: dict[float, float] = {}
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def wait(timeout: float) -> None:
        with pytest.raises(PoolTimeout, match="while waiting"):
            await pool.acquire(timeout=timeout)
        expired[timeout] = loop.time() - started

    # Queued longest deadline first: one timer must still fire each at its own time,
    # never before it, and the short ones long before the longest (a generous bound:
    # a busy machine may wake several due at once, in any order).
    await asyncio.gather(*(wait(t) for t in (2.0, 0.05, 0.2, 0.1)))
    assert sorted(expired) == [0.05, 0.1, 0.2, 2.0]
    assert all(expired[timeout] >= timeout for timeout in expired), expired
    assert max(expired[0.05], expired[0.1], expired[0.2]) < 2.0, expired
    stats = pool.stats()
    assert (stats.waiting, stats.timeouts) == (0, 4)
    await pool.release(held)
    assert await pool.acquire(timeout=0) is held


async def test_served_waiters_do_not_pile_up_deadline_entries(kit: AsyncKit) -> None:
    pool = kit.pool(pool_size=2)
    largest = 0

    async def user() -> None:
        nonlocal largest
        for _ in range(100):
            async with pool.lease():
                await asyncio.sleep(0)
            assert pool._upkeep.binding is not None
            deadlines = pool._upkeep.binding.deadlines
            largest = max(largest, len(pool._state.queue.entries) + len(deadlines._late))

    await asyncio.gather(*(user() for _ in range(20)))
    assert pool.stats().waits > 1000  # most leases waited, each with a deadline
    assert largest <= 2 * 20 + 64 + 1


async def test_cancelled_waiters_behind_a_long_wait_leave_no_pile_of_entries(
    kit: AsyncKit,
) -> None:
    pool = kit.pool(pool_size=1)
    held = await pool.acquire()
    head = asyncio.create_task(pool.acquire(timeout=30))
    await asyncio.sleep(0)
    for _ in range(500):
        behind = asyncio.create_task(pool.acquire(timeout=30))
        await asyncio.sleep(0)
        behind.cancel()
        await asyncio.gather(behind, return_exceptions=True)
    assert pool._upkeep.binding is not None
    deadlines = pool._upkeep.binding.deadlines
    assert len(pool._state.queue.entries) + len(deadlines._late) <= 2 * 1 + 64 + 1
    await pool.release(held)
    assert await head is held


def test_a_loop_with_its_own_clock_and_futures_is_honoured(ledger: Ledger) -> None:
    """Deadlines follow the loop's clock (here an hour ahead), not time.monotonic."""

    class OwnLoop(asyncio.SelectorEventLoop):
        futures = 0

        def time(self) -> float:
            return super().time() + 3600

        def create_future(self) -> asyncio.Future[Any]:
            OwnLoop.futures += 1
            return super().create_future()

    async def main() -> None:
        pool = AsyncKit(ledger).pool(pool_size=1)
        held = await pool.acquire()
        with pytest.raises(PoolTimeout, match="while waiting"):
            await pool.acquire(timeout=0.05)
        waiter = asyncio.create_task(pool.acquire(timeout=5))
        await asyncio.sleep(0.01)
        await pool.release(held)
        assert await waiter is held
        await pool.release(held)
        await pool.close()

    with asyncio.Runner(loop_factory=OwnLoop) as runner:
        runner.run(main())
    assert OwnLoop.futures >= 2


def test_the_default_timeout_reads_well_in_signatures() -> None:
    assert "<the pool's acquire_timeout>" in str(inspect.signature(AsyncPool.acquire))
    assert "<the pool's acquire_timeout>" in str(inspect.signature(ThreadPool.acquire))


async def test_timeout_none_waits_until_a_resource_returns(kit: AsyncKit) -> None:
    pool = kit.pool(pool_size=1, acquire_timeout=0.01)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire(timeout=None))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await pool.release(held)
    assert await waiter is held


async def test_factory_error_of_a_timeout_kind_is_not_a_pool_timeout() -> None:
    async def factory() -> Resource:
        raise TimeoutError("connect timed out")

    pool = AsyncPool(factory, _noop, pool_size=1)
    with pytest.raises(TimeoutError, match="connect timed out") as caught:
        await pool.acquire()
    assert not isinstance(caught.value, PoolTimeout)


async def test_factory_returning_a_non_awaitable_is_a_type_error_costing_no_capacity() -> None:
    pool = AsyncPool(Resource, _noop, pool_size=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an awaitable"):
        await pool.acquire()
    assert pool.stats().size == 0


async def test_factory_returning_a_resource_already_in_the_pool_is_refused() -> None:
    shared = Resource()

    async def factory() -> Resource:
        return shared

    pool = AsyncPool(factory, _noop, pool_size=2)
    assert await pool.acquire() is shared
    with pytest.raises(PoolError, match="already in the pool"):
        await pool.acquire()
    assert pool.stats().size == 1


async def test_releaser_returning_a_non_awaitable_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = AsyncPool(_make, lambda r: None, pool_size=1)  # type: ignore[arg-type,return-value]
    resource = await pool.acquire()
    with caplog.at_level(logging.WARNING, "escudeiro_pools"):
        await pool.discard(resource)
    assert pool.stats().releaser_errors == 1
    assert pool.stats().size == 0
    assert "releasing a resource failed" in caplog.text


async def test_hanging_releaser_is_bounded_by_releaser_timeout() -> None:
    async def hang(resource: Resource) -> None:
        await asyncio.sleep(10)

    pool = AsyncPool(_make, hang, pool_size=2, releaser_timeout=0.05)
    await pool.prefill()
    with pytest.raises(ExceptionGroup) as caught:
        await asyncio.wait_for(pool.close(), timeout=2)
    assert all("releaser_timeout" in str(e) for e in caught.value.exceptions)
    assert pool.stats().size == 0


async def test_hanging_reset_is_bounded_and_discards(kit: AsyncKit) -> None:
    async def hang(resource: Resource) -> None:
        await asyncio.sleep(10)

    pool = kit.pool(pool_size=1, reset=hang, releaser_timeout=0.05)
    resource = await pool.acquire()
    await pool.release(resource)
    await kit.settle(pool)
    assert resource.released == 1
    assert pool.stats().reset_errors == 1


async def test_leak_timeout_warns_once_naming_the_acquire_site(
    kit: AsyncKit, caplog: pytest.LogCaptureFixture
) -> None:
    pool = kit.pool(pool_size=1, leak_timeout=0.02)
    with caplog.at_level(logging.WARNING, "escudeiro_pools"):
        resource = await pool.acquire()
        await asyncio.sleep(0.08)
        await pool.release(resource)
        async with pool.lease():
            pass
        await asyncio.sleep(0.05)
    leaks = [r for r in caplog.records if "leased for more than" in r.getMessage()]
    assert len(leaks) == 1
    assert "test_async_pool.py" in leaks[0].getMessage()
    assert pool.stats().leaks == 1


async def test_async_with_pool_prefills_and_closes(kit: AsyncKit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=3)
    async with pool as opened:
        assert opened is pool
        assert pool.stats().idle == 3
    assert pool.closed
    ledger.assert_released_once()
    with pytest.raises(PoolClosed):
        await pool.acquire()


async def test_async_with_pool_closes_when_prefill_fails(kit: AsyncKit, ledger: Ledger) -> None:
    pool = kit.pool(pool_size=3)
    ledger.factory_failures = 1
    with pytest.raises(ExceptionGroup):
        async with pool:
            pytest.fail("the body must not run")
    assert pool.closed
    ledger.assert_released_once()


async def test_lifespan_is_an_async_context_manager_yielding_no_state(
    kit: AsyncKit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=2)
    async with pool.lifespan(object()) as state:
        assert state is None
        assert pool.stats().idle == 2
    assert pool.closed
    ledger.assert_released_once()


async def test_lease_as_an_async_generator_like_fastapi_drives_it(kit: AsyncKit) -> None:
    import inspect
    from contextlib import asynccontextmanager

    pool = kit.pool(pool_size=1)
    assert inspect.isasyncgenfunction(inspect.unwrap(pool.lease))
    assert list(inspect.signature(pool.lease).parameters) == []
    async with asynccontextmanager(pool.lease)() as resource:
        assert pool.stats().in_use == 1
    assert pool.stats().idle == 1
    with pytest.raises(KeyError):
        async with asynccontextmanager(pool.lease)() as again:
            assert again is resource
            raise KeyError("endpoint failed")
    assert pool.stats().idle == 1
    assert pool.stats().in_use == 0


async def test_lease_generator_protocol_edges(kit: AsyncKit) -> None:
    pool = kit.pool(pool_size=1)
    lease = pool.lease()
    assert lease.__aiter__() is lease
    resource = await lease.asend(None)
    with pytest.raises(PoolError, match="entered once"):
        await lease.__aenter__()
    with pytest.raises(StopAsyncIteration):
        await lease.__anext__()
    assert pool.stats().idle == 1
    other = pool.lease()
    assert await other.__anext__() is resource
    with pytest.raises(ValueError, match="x"):
        await other.athrow(ValueError, ValueError("x"))
    third = pool.lease()
    await third.__anext__()
    await third.aclose()
    assert pool.stats().idle == 1
    await third.aclose()  # a second close does nothing


async def test_a_pool_made_at_import_time_works_in_any_loop() -> None:
    assert _module_pool.stats().size == 0
    async with _module_pool.lease() as resource:
        assert isinstance(resource, Resource)
    await _module_pool.dispose()


def test_pool_can_move_to_a_new_loop_after_the_old_one_is_gone() -> None:
    ledger = Ledger()
    pool = AsyncKit(ledger).pool(pool_size=2)

    async def use(keep: bool) -> Resource:
        resource = await pool.acquire()
        if not keep:
            await pool.release(resource)
        return resource

    leaked = asyncio.run(use(keep=True))  # a lease left out in a loop that then closed
    second = asyncio.run(use(keep=False))
    assert second is not leaked
    assert leaked.released == 0  # never touched
    assert pool.stats().abandoned == 1
    assert pool.stats().size == 1
    with pytest.raises(PoolError, match="not acquired from this pool"):
        asyncio.run(pool.release(leaked))


def test_use_from_a_second_running_loop_is_refused_clearly() -> None:
    pool = AsyncKit(Ledger()).pool(pool_size=2)
    ready = threading.Event()
    finish = threading.Event()

    async def hold() -> None:
        await pool.acquire()
        ready.set()
        while not finish.is_set():
            await asyncio.sleep(0.005)

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    ready.wait(5)
    try:
        with pytest.raises(PoolError, match="another event loop"):
            asyncio.run(pool.acquire())
    finally:
        finish.set()
        thread.join(5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_after_fork_the_child_starts_empty_and_never_touches_parent_resources() -> None:
    ledger = Ledger()
    pool = AsyncKit(ledger).pool(pool_size=2)

    async def fill() -> None:
        await pool.prefill()

    asyncio.run(fill())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            stats = pool.stats()

            async def child() -> int:
                resource = await pool.acquire()
                await pool.dispose()
                return resource.id

            new_id = asyncio.run(child())
            ok = stats.size == 0 and stats.abandoned == 2 and new_id not in {1, 2}
            touched = any(r.released for r in ledger.made[:2])
            os.write(write, b"ok" if ok and not touched else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 10)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert pool.stats().idle == 2


async def _make() -> Resource:
    return Resource()


async def _noop(resource: object) -> None:
    return None


_module_pool: AsyncPool[Resource] = AsyncPool(_make, _noop, pool_size=1)


# -- loops, interrupts and a cancelled close -----------------------------------------


def test_a_pool_reused_in_a_new_loop_honours_its_acquire_timeout(ledger: Ledger) -> None:
    pool = AsyncKit(ledger).pool(pool_size=1)

    async def first_loop() -> None:
        held = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire(timeout=30))
        await asyncio.sleep(0.01)
        await pool.release(held)  # served: its deadline timer stays set on this loop
        await pool.release(await waiter)
        await pool.close()

    async def second_loop() -> None:
        await pool.open()
        held = await pool.acquire()
        with pytest.raises(PoolTimeout):
            await asyncio.wait_for(pool.acquire(timeout=0.05), 5)
        await pool.release(held)
        await pool.close()

    asyncio.run(first_loop())
    asyncio.run(second_loop())


def test_a_leak_watch_fires_on_the_loop_of_the_lease(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    pool = AsyncKit(ledger).pool(pool_size=1, leak_timeout=0.02)

    async def hold_briefly() -> None:
        async with pool.lease():
            pass
        await pool.close()

    async def hold_too_long() -> None:
        await pool.open()
        async with pool.lease():
            await asyncio.sleep(0.1)
        await pool.close()

    with caplog.at_level("WARNING", "escudeiro_pools"):
        asyncio.run(hold_briefly())
        asyncio.run(hold_too_long())
    assert pool.stats().leaks == 1
    assert "hold_too_long" in caplog.text


async def test_a_cancelled_close_stops_waiting_at_once_and_stays_closed(
    kit: AsyncKit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=2, releaser_timeout=None)
    held = await pool.acquire()
    idle = await pool.acquire()
    await pool.release(idle)
    ledger.releaser_delay = 0.2
    closing = asyncio.create_task(pool.close(timeout=None))
    while pool.stats().releasing == 0:
        await asyncio.sleep(0.001)
    closing.cancel()
    # With timeout=None, a close that kept waiting for the lease would never end.
    await asyncio.wait_for(asyncio.gather(closing, return_exceptions=True), 5)
    assert closing.cancelled()
    assert pool.closed
    with pytest.raises(PoolClosed):
        await pool.acquire()
    ledger.releaser_delay = 0
    await pool.release(held)
    await kit.settle(pool)
    ledger.assert_released_once()
    assert pool.stats().size == 0


async def test_a_close_cancelled_while_it_waits_for_leases_returns_at_once(
    kit: AsyncKit,
) -> None:
    pool = kit.pool(pool_size=1)
    held = await pool.acquire()
    closing = asyncio.create_task(pool.close(timeout=None))
    await asyncio.sleep(0.01)
    closing.cancel()
    await asyncio.wait_for(asyncio.gather(closing, return_exceptions=True), 5)
    assert pool.closed
    await pool.release(held)
    await kit.settle(pool)
    assert held.released == 1


def test_an_interrupt_in_a_releaser_leaves_the_accounting_whole(ledger: Ledger) -> None:
    interrupted: list[Resource] = []

    async def releaser(resource: Resource) -> None:
        resource.released += 1
        if not interrupted:
            interrupted.append(resource)
            raise KeyboardInterrupt

    pool = AsyncKit(ledger).pool(pool_size=3, releaser=releaser)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(pool.prefill())
        closing = loop.create_task(pool.close())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(closing)
        stats = pool.stats()
        assert stats.releasing + stats.destroyed == 3
        # asyncio re-raises the interrupt out of the loop from every task it reaches.
        for _ in range(10):
            try:
                loop.run_until_complete(asyncio.sleep(0.02))
                break
            except KeyboardInterrupt:
                continue
        stats = pool.stats()
        assert (stats.releasing, stats.size, stats.destroyed) == (0, 0, 3)
        ledger.assert_released_once()
        assert isinstance(closing.exception(), KeyboardInterrupt)
    finally:
        loop.close()
