"""A ``ThreadPool``'s asyncio face: ``async with thread_pool.lease()`` and
FastAPI's ``Depends(thread_pool.lease)``.

The caller waits for a grant on its own event loop (a ``LoopWaiter``), so a
request waiting for a resource occupies no thread; only the blocking steps
(factory, ``alive``, ``check``, ``setup``, ``reset``, the releaser) run in
the loop's executor. The pool's state is the thread pool's, changed under
its lock through the pool's own methods.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from escudeiro_pools._slot import LEASED, Slot
from escudeiro_pools._waiters import LoopWaiter

if TYPE_CHECKING:
    from escudeiro_pools._thread_pool import ThreadPool

__all__ = ["AsyncFace", "Claim"]

T = TypeVar("T")


class Claim:
    """An asyncio caller waits for blocking work done for it in a thread.

    If it leaves (cancelled) first, the thread hands the result back to the pool.
    """

    __slots__ = ("slot", "wanted")

    def __init__(self) -> None:
        self.wanted = True
        self.slot: Slot[Any] | None = None


class AsyncFace(Generic[T]):
    """Acquires and returns for a ``ThreadPool`` from asyncio code."""

    __slots__ = ("_pool",)

    def __init__(self, pool: ThreadPool[T]) -> None:
        self._pool = pool

    async def checkout(self) -> Slot[T]:
        """A leased slot, waited for on the running loop."""
        pool = self._pool
        started = time.monotonic()
        timeout = pool._acquire_timeout
        deadline = None if timeout is None else started + timeout
        loop = asyncio.get_running_loop()
        grant: Any = pool._lend_or_queue(lambda: LoopWaiter(loop))
        since = None if isinstance(grant, Slot) else started
        if type(grant) is LoopWaiter:
            grant = await self._wait(grant, deadline, timeout)
        if not (type(grant) is Slot and grant.state == LEASED) or pool._has_setup:
            claim = Claim()
            work = loop.run_in_executor(
                None, pool._realize, grant, started, deadline, timeout, claim
            )
            try:
                grant = await work
            except BaseException:  # cancelled, or closed with a loop that is gone
                pool._leave_claim(claim)
                raise
        slot: Slot[T] = grant
        try:
            pool._lent_here(slot, since)
        except BaseException:
            await self.end(slot, slot.serial, KeyboardInterrupt)
            raise
        return slot

    async def _wait(self, waiter: LoopWaiter, deadline: float | None, timeout: float | None) -> Any:
        left: BaseException | None = None
        try:
            async with asyncio.timeout(None if deadline is None else deadline - time.monotonic()):
                await waiter.future
        except BaseException as exc:
            left = exc
        return self._pool._after_loop_wait(waiter, left, timeout)

    async def end(self, slot: Slot[T], serial: int, exc_type: type[BaseException] | None) -> None:
        """End the lease ``serial`` of ``slot``; ``reset`` and the releaser run in a thread."""
        pool = self._pool
        back = pool._end_now(slot, serial, exc_type)
        if back is not None:
            # Shielded: a cancelled caller does not interrupt the reset or releaser.
            loop = asyncio.get_running_loop()
            await asyncio.shield(loop.run_in_executor(None, pool._after_return, back))
