"""A ``ThreadPool``'s asyncio face: ``async with thread_pool.lease()`` and
FastAPI's ``Depends(thread_pool.lease)``.

The caller waits for a grant on its own event loop (a ``LoopWaiter``), so a
request waiting for a resource occupies no thread; only the blocking steps
(factory, ``alive``, ``check``, ``setup``, ``reset``, the releaser) run in
the loop's executor, through the pool's ``ThreadLeasing``. The state is the
thread pool's, changed under its lock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Generic, TypeVar

from escudeiro_pools._lease import Ending
from escudeiro_pools._protocol import WAIT, Grant
from escudeiro_pools._slot import LEASED, Slot
from escudeiro_pools._thread_leasing import Claim, ThreadLeasing
from escudeiro_pools._thread_upkeep import ThreadUpkeep
from escudeiro_pools._waiters import LoopWaiter

__all__ = ["AsyncFace"]

T = TypeVar("T")


class AsyncFace(Generic[T]):
    """Acquires and returns for a ``ThreadPool`` from asyncio code."""

    __slots__ = ("_leasing", "_state", "_timeout", "_upkeep")

    def __init__(
        self, upkeep: ThreadUpkeep[T], leasing: ThreadLeasing[T], acquire_timeout: float | None
    ) -> None:
        self._upkeep = upkeep
        self._state = upkeep.state
        self._leasing = leasing
        self._timeout = acquire_timeout

    async def checkout(self) -> Slot[T]:
        """A leased slot, waited for on the running loop."""
        leasing = self._leasing
        started = time.monotonic()
        timeout = self._timeout
        loop = asyncio.get_running_loop()
        grant: Any = self._lend_or_queue(loop)
        since = None if isinstance(grant, Slot) else started
        if type(grant) is LoopWaiter:
            grant = await self._wait(grant, started, timeout)
        if not (type(grant) is Slot and grant.state == LEASED) or leasing.has_setup:
            claim = Claim()
            work = loop.run_in_executor(None, leasing.obtain, grant, started, timeout, claim)
            try:
                grant = await work
            except BaseException:  # cancelled, or closed with a loop that is gone
                self._leave_claim(claim)
                raise
        slot: Slot[T] = grant
        try:
            leasing.lent_here(slot, since)
        except BaseException:
            await self.end(slot, slot.serial, KeyboardInterrupt)
            raise
        return slot

    def _lend_or_queue(self, loop: asyncio.AbstractEventLoop) -> Grant | LoopWaiter:
        """Under the lock: the state's grant, or a ``LoopWaiter`` queued for one."""
        upkeep = self._upkeep
        with upkeep.lock:
            grant = self._state.checkout()
            if upkeep.maintainer is None and self._state.maintained:
                upkeep.start_maintainer()
            if grant is not WAIT:
                return grant
            waiter = LoopWaiter(loop)
            self._state.enqueue(waiter, None, waiter.started)
            return waiter

    async def _wait(self, waiter: LoopWaiter, started: float, timeout: float | None) -> Grant:
        left: BaseException | None = None
        try:
            async with asyncio.timeout(
                None if timeout is None else started + timeout - time.monotonic()
            ):
                await waiter.future
        except BaseException as exc:
            left = exc
        stale = None
        with self._upkeep.lock:
            grant: Grant | None = waiter.grant
            if grant is None:
                if not waiter.left:  # still queued (not refused by a closed loop): leave
                    waiter.left = True
                    self._state.left_queue(waiter.started)
                if isinstance(left, TimeoutError):
                    raise self._state.timeout_error(timeout, "waiting") from None
            elif left is not None and not isinstance(left, TimeoutError):
                stale = self._state.refuse(grant)
        if left is not None and not isinstance(left, TimeoutError):
            if stale is not None:
                self._upkeep.release_aside(stale)
            raise left
        assert grant is not None
        return grant

    def _leave_claim(self, claim: Claim) -> None:
        """The caller left while a thread worked for it: hand back what it got."""
        with self._upkeep.lock:
            claim.wanted = False
            stale = None if claim.slot is None else self._state.refuse(claim.slot)
        if stale is not None:
            self._upkeep.release_aside(stale)

    async def end(self, slot: Slot[T], serial: int, how: Ending) -> None:
        """End the lease ``serial`` of ``slot``; ``reset`` and the releaser run in a thread."""
        back = self._leasing.end(slot, serial, how)
        if back is not None:
            # Shielded: a cancelled caller does not interrupt the reset or releaser.
            loop = asyncio.get_running_loop()
            await asyncio.shield(loop.run_in_executor(None, self._leasing.after_return, back))
