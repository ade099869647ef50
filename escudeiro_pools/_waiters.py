"""The two kinds of ``ThreadPool`` waiter behind the core's ``Waiter`` protocol.

Both are granted under the pool's lock, by whichever thread frees a
resource. A ``ThreadWaiter`` is a blocked thread; a ``LoopWaiter`` is an
asyncio task (``async with thread_pool.lease()``, FastAPI's dependency) woken
on its own loop, so waiting never occupies a thread. A grant is refused
(``set_result`` returns False) only when the waiter's loop is gone; the core
then offers it to the next waiter.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from escudeiro_pools._core import PoolCore

__all__ = ["LoopWaiter", "ThreadWaiter"]


class _Waiter:
    """What both kinds share: the pool, the grant once given, and when it began."""

    __slots__ = ("grant", "left", "pool", "started")

    def __init__(self, pool: PoolCore[Any, Any]) -> None:
        self.pool = pool
        self.grant: Any = None
        self.left = False
        self.started = time.monotonic()

    def done(self) -> bool:
        return self.left or self.grant is not None

    def _granted(self, grant: Any) -> None:
        # Under the pool's lock: the woken caller need not take it to account its wait.
        pool = self.pool
        waited = time.monotonic() - self.started
        pool._waits += 1
        pool._wait_time_total += waited
        if waited > pool._wait_time_max:
            pool._wait_time_max = waited
        self.grant = grant


class ThreadWaiter(_Waiter):
    """A thread blocked in ``acquire``; ``signal`` is released when it is granted."""

    __slots__ = ("signal",)

    def __init__(self, pool: PoolCore[Any, Any]) -> None:
        super().__init__(pool)
        self.signal = threading.Lock()
        self.signal.acquire()

    def set_result(self, grant: Any) -> bool:
        self._granted(grant)
        self.signal.release()
        return True


class LoopWaiter(_Waiter):
    """An asyncio task waiting for a ``ThreadPool`` grant on its own loop."""

    __slots__ = ("future", "loop")

    def __init__(self, pool: PoolCore[Any, Any], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(pool)
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def set_result(self, grant: Any) -> bool:
        try:
            self.loop.call_soon_threadsafe(self._wake, grant)
        except RuntimeError:  # its loop is closed: nobody will ever take the grant
            self.left = True
            return False
        self._granted(grant)
        return True

    def _wake(self, grant: Any) -> None:
        if not self.future.done():
            self.future.set_result(grant)
