"""Cancel an operation at every await point it has, one loop step at a time.

Every hook (factory, releaser, check, reset) awaits a few times, so the
operation passes through many suspension points. For each scenario the test
starts the operation, lets the loop run ``k`` steps, cancels it, and checks
that nothing leaked and nothing hangs, for every ``k`` until the operation
finishes before the cancellation lands.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from escudeiro_pools import AsyncPool
from tests.kit import Ledger, Resource

SIZE = 2
HOOK_STEPS = 3  # awaits inside every hook


async def steps(count: int = HOOK_STEPS) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def stepping_pool(ledger: Ledger) -> AsyncPool[Resource]:
    async def factory() -> Resource:
        await steps()
        return ledger.make()

    async def releaser(resource: Resource) -> None:
        await steps()
        ledger.release(resource)

    async def check(resource: Resource) -> bool:
        await steps()
        return True

    async def reset(resource: Resource) -> None:
        await steps()

    return AsyncPool(
        factory,
        releaser,
        pool_size=SIZE,
        check=check,
        check_after_idle=0.0,
        reset=reset,
        acquire_timeout=5.0,
    )


Setup = Callable[[AsyncPool[Resource], list[Resource]], Awaitable[None]]
Operation = Callable[[AsyncPool[Resource], list[Resource]], Coroutine[Any, Any, None]]


async def nothing(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    return None


async def one_idle(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    await pool.prefill(1)


async def all_idle(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    await pool.prefill()


async def all_held(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    held.extend([await pool.acquire() for _ in range(SIZE)])


async def one_held(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    held.append(await pool.acquire())


async def acquire_and_release(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    resource = await pool.acquire()
    await pool.release(resource)


async def acquire_while_another_returns(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    async def give_back() -> None:
        await steps()
        await pool.release(held.pop())

    returner = asyncio.create_task(give_back())
    resource = await pool.acquire()
    await pool.release(resource)
    await returner


async def lease(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    async with pool.lease():
        await steps()


async def lease_raising(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    with contextlib.suppress(LookupError):
        async with pool.lease():
            await steps(1)
            raise LookupError


async def release(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    await pool.release(held.pop())


async def discard(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    await pool.discard(held.pop())


async def prefill(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    await pool.prefill()


async def dispose(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    await pool.dispose()


async def close(pool: AsyncPool[Resource], held: list[Resource]) -> None:
    await pool.close()


SCENARIOS: list[tuple[str, Setup, Operation]] = [
    ("acquire creating", nothing, acquire_and_release),
    ("acquire checking", one_idle, acquire_and_release),
    ("acquire waiting", all_held, acquire_while_another_returns),
    ("lease enter and exit", one_idle, lease),
    ("lease exit after an exception", one_idle, lease_raising),
    ("release through reset", one_held, release),
    ("discard", one_held, discard),
    ("prefill", nothing, prefill),
    ("dispose", all_idle, dispose),
    ("close", all_idle, close),
]


async def cancel_after(
    setup: Setup, operation: Operation, loop_steps: int
) -> tuple[bool, Ledger, AsyncPool[Resource]]:
    """Run ``operation`` for ``loop_steps`` loop steps, cancel it, check the pool."""
    ledger = Ledger()
    pool = stepping_pool(ledger)
    held: list[Resource] = []
    await setup(pool, held)
    task = asyncio.create_task(operation(pool, held))
    for _ in range(loop_steps):
        await asyncio.sleep(0)
    finished = task.done()
    task.cancel()
    async with asyncio.timeout(5):  # nothing hangs
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await settle(pool)
    for resource in held:
        await pool.release(resource)
    await settle(pool)
    stats = pool.stats()
    assert stats.in_use == 0, stats
    assert stats.waiting == 0, stats
    assert stats.idle == stats.size <= SIZE, stats
    assert stats.created == len(ledger.made) == stats.destroyed + stats.size, stats
    assert all(r.released <= 1 for r in ledger.made)
    # The whole capacity is still there, and every resource is released exactly once.
    async with asyncio.timeout(5):
        if not pool.closed:
            everything = [await pool.acquire() for _ in range(SIZE)]
            assert len(set(map(id, everything))) == SIZE
            for resource in everything:
                await pool.release(resource)
        await pool.close()
    await settle(pool)
    assert pool.stats().size == 0
    ledger.assert_released_once()
    return finished, ledger, pool


async def settle(pool: AsyncPool[Resource]) -> None:
    """Wait for every other task (releasers, helpers) to finish."""
    async with asyncio.timeout(5):
        while others := asyncio.all_tasks() - {asyncio.current_task()}:
            await asyncio.wait(others)


@pytest.mark.parametrize(
    ("setup", "operation"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
async def test_cancelled_at_every_step_nothing_leaks_or_hangs(
    setup: Setup, operation: Operation
) -> None:
    interrupted = 0
    for loop_steps in range(200):
        finished, _, _ = await cancel_after(setup, operation, loop_steps)
        if finished:
            break
        interrupted += 1
    else:
        pytest.fail("the operation never finished within 200 loop steps")
    assert interrupted >= 2, "the operation had no await point to cancel at"


async def test_prefill_cancelled_before_its_creations_start_holds_no_capacity() -> None:
    """Regression: prefill reserved capacity up front, and a creation task cancelled
    before it first ran never gave its reservation back."""
    ledger = Ledger()
    pool = stepping_pool(ledger)
    task = asyncio.create_task(pool.prefill())
    await asyncio.sleep(0)  # prefill starts and spawns its creations; they have not run
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await settle(pool)
    assert pool.stats().creating == 0
    async with asyncio.timeout(5):
        held = [await pool.acquire() for _ in range(SIZE)]
    for resource in held:
        await pool.release(resource)
    await pool.close()
