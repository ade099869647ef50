"""The crossing matrix: every operation while every other is in flight, on both pools.

Each cell starts a *phase* (something the pool is in the middle of, held
there by a gate on the callback it runs), applies an *operation*, opens the
gates and checks the pool's promises: the gauges add up, no lease is left
in use, the pool holds at most ``pool_size``, the whole capacity can still
be leased at once, and every resource the factory made is released exactly
once (or was detached). The state's invariants are checked after every
transition as well (``tests/conftest.py``).

================  ======  ====  ========  =====  ======  =======  =======  ======  =======  ======  =======
phase \\ op        shrink  grow  min_size  close  reopen  dispose  detach   discard timeout  cancel  prefill
================  ======  ====  ========  =====  ======  =======  =======  ======  =======  ======  =======
creating          M       M     M         M      M       M        M        M       M        M(a)    M
prefilling        M       M     M         M      M       M        M        M       M        M(a)    M
checking          M       M     M         M      M       M        M        M       M        M(a)    M
resetting         M       M     M         M      M       M        M        M       M        M(a)    M
releasing         M       M     M         M      M       M        M        M       M        M(a)    M
waiting           M       M     M         M      M       M        M        M       M        M(a)    M
================  ======  ====  ========  =====  ======  =======  =======  ======  =======  ======  =======

M: ``test_an_operation_while_a_phase_is_in_flight[<phase>-<op>-<pool>]``;
(a): the async pool only (a thread pool's caller in a worker thread cannot
be cancelled). The breaker crossed with each creator, deadlines with the
breaker, ``wait_ready`` with ``close`` and ``resize``, and every callback
raising an ``Exception`` or a ``BaseException`` in each phase are in
``tests/test_state_contracts.py``; random sequences of all of them in
``tests/reliability/test_model.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from escudeiro_pools import PoolClosed, PoolTimeout
from tests.kit import (
    AsyncKit,
    Hold,
    Kit,
    Ledger,
    Resource,
    ThreadKit,
    assert_kept_its_books,
    detach,
    eventually,
    resize,
)

SIZE = 2
PHASES = ["creating", "prefilling", "checking", "resetting", "releasing", "waiting"]
OPERATIONS = [
    "shrink",
    "grow",
    "min_size",
    "close",
    "reopen",
    "dispose",
    "detach",
    "discard",
    "timeout",
    "cancel",
    "prefill",
]
#: What a call crossed with another may rightly end in.
EXPECTED = (PoolClosed, PoolTimeout, asyncio.CancelledError)
BOUND = 20.0  # seconds: generous, never reached unless the pool hangs


class Cell:
    """One pool, its gates and what the test holds of it."""

    def __init__(self, kit: Kit) -> None:
        self.kit = kit
        ledger = kit.ledger
        self.holds = {name: Hold(kit.flavour) for name in ("factory", "check", "reset", "releaser")}
        self.pool = kit.pool(
            pool_size=SIZE,
            factory=self.holds["factory"].wrap(ledger.make),
            releaser=self.holds["releaser"].wrap(ledger.release),
            check=self.holds["check"].wrap(lambda resource: True),
            check_after_idle=0.0,
            reset=self.holds["reset"].wrap(lambda resource: None),
            acquire_timeout=BOUND,
        )
        self.held: list[Resource] = []
        self.detached: list[Resource] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def spawn(self, call: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(call)
        self.tasks.append(task)
        return task

    async def arm(self, hook: str, call: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        self.holds[hook].armed = True
        task = self.spawn(call)
        await self.holds[hook].reached()
        return task

    def open(self) -> None:
        for hold in self.holds.values():
            hold.opened.set()


async def start(phase: str, cell: Cell) -> asyncio.Task[Any]:
    """Hold one lease, then put the pool in the middle of ``phase``."""
    kit, pool = cell.kit, cell.pool
    cell.held.append(await kit.acquire(pool))
    if phase == "creating":
        return await cell.arm("factory", kit.acquire(pool))
    if phase == "prefilling":
        return await cell.arm("factory", kit.prefill(pool))
    second = await kit.acquire(pool)
    if phase == "checking":
        await kit.release(pool, second)
        return await cell.arm("check", kit.acquire(pool))
    if phase == "resetting":
        return await cell.arm("reset", kit.release(pool, second))
    if phase == "releasing":
        return await cell.arm("releaser", kit.discard(pool, second))
    cell.held.append(second)
    task = cell.spawn(kit.acquire(pool))
    await eventually(lambda: kit.stats(pool).waiting == 1, BOUND)
    return task


async def apply(operation: str, cell: Cell, phase_task: asyncio.Task[Any]) -> None:
    """Apply ``operation`` while the phase is held; calls that wait run in the background."""
    kit, pool = cell.kit, cell.pool
    if operation == "shrink":
        await resize(kit, pool, 1)
    elif operation == "grow":
        await resize(kit, pool, SIZE + 1)
    elif operation == "min_size":
        await resize(kit, pool, min_size=SIZE)
    elif operation == "close":
        cell.spawn(kit.close(pool, BOUND))
        await eventually(lambda: pool.closed, BOUND)
    elif operation == "reopen":
        await kit.close(pool, 0)
        await kit.open(pool)
    elif operation == "dispose":
        cell.spawn(kit.dispose(pool))
    elif operation == "detach":
        resource = cell.held.pop(0)
        await detach(kit, pool, resource)
        cell.detached.append(resource)
    elif operation == "discard":
        # In the background: in the releasing phase its releaser is held too.
        cell.spawn(kit.discard(pool, cell.held.pop(0)))
    elif operation == "timeout":
        cell.spawn(kit.acquire(pool, timeout=0.01))
    elif operation == "cancel":
        phase_task.cancel()
    elif operation == "prefill":
        cell.spawn(kit.prefill(pool))


async def finish(cell: Cell) -> None:
    """Open the gates, collect what the calls got, give every lease back."""
    cell.open()
    # The leases go back first: a waiter or a closing pool may be waiting for them.
    for resource in cell.held:
        await cell.kit.release(cell.pool, resource)
    cell.held.clear()
    done, pending = await asyncio.wait(cell.tasks, timeout=BOUND)
    assert not pending, f"calls still hang after the gates opened: {pending}"
    for task in done:
        if task.cancelled():
            continue
        error = task.exception()
        if error is not None:
            assert isinstance(error, EXPECTED), repr(error)
        elif isinstance(task.result(), Resource):
            cell.held.append(task.result())
    for resource in cell.held:
        await cell.kit.release(cell.pool, resource)
    cell.held.clear()
    await eventually(lambda: not cell.kit.stats(cell.pool).releasing, BOUND)
    await eventually(lambda: not cell.kit.stats(cell.pool).creating, BOUND)


CELLS = [
    pytest.param(phase, operation, flavour, id=f"{phase}-{operation}-{flavour}")
    for phase in PHASES
    for operation in OPERATIONS
    for flavour in ("async", "thread")
    if not (operation == "cancel" and flavour == "thread")
]


@pytest.mark.parametrize(("phase", "operation", "flavour"), CELLS)
async def test_an_operation_while_a_phase_is_in_flight(
    phase: str, operation: str, flavour: str
) -> None:
    ledger = Ledger()
    cell = Cell(AsyncKit(ledger) if flavour == "async" else ThreadKit(ledger))
    try:
        phase_task = await start(phase, cell)
        await apply(operation, cell, phase_task)
        await finish(cell)
        await assert_kept_its_books(cell.kit, cell.pool, cell.detached)
    finally:
        cell.open()
        for task in cell.tasks:
            task.cancel()


def test_the_matrix_in_the_docstring_lists_every_cell() -> None:
    lines = [line.split() for line in (__doc__ or "").splitlines()]
    header = next(words for words in lines if words[:1] == ["phase"])
    assert header[3:] == OPERATIONS
    rows = [words for words in lines if words[:1] and words[0] in PHASES]
    assert [words[0] for words in rows] == PHASES
    assert all(len(words) == 1 + len(OPERATIONS) for words in rows)
