"""The two kinds of ``ThreadPool`` waiter behind the state's ``Waiter`` protocol.

Both are granted under the pool's lock, by whichever thread frees a
resource; they only hold the grant and wake their caller (the state counts
the wait). A ``ThreadWaiter`` is a blocked thread; a ``LoopWaiter`` is an
asyncio task (``async with thread_pool.lease()``, FastAPI's dependency) woken
on its own loop, so waiting never occupies a thread. A grant is refused
(``set_result`` returns False) only when the waiter's loop is gone; the state
then offers it to the next waiter.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

__all__ = ["LoopWaiter", "ThreadWaiter"]


class _Waiter:
    """What both kinds share: the grant once given, whether it left, when it began."""

    __slots__ = ("grant", "left", "started")

    def __init__(self) -> None:
        self.grant: Any = None
        self.left = False
        self.started = time.monotonic()

    def done(self) -> bool:
        return self.left or self.grant is not None


class ThreadWaiter(_Waiter):
    """A thread blocked in ``acquire``; ``signal`` is released when it is granted."""

    __slots__ = ("signal",)

    def __init__(self) -> None:
        super().__init__()
        self.signal = threading.Lock()
        self.signal.acquire()

    def set_result(self, grant: Any) -> bool:
        self.grant = grant
        self.signal.release()
        return True


class LoopWaiter(_Waiter):
    """An asyncio task waiting for a ``ThreadPool`` grant on its own loop."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def set_result(self, grant: Any) -> bool:
        try:
            self.loop.call_soon_threadsafe(self._wake, grant)
        except RuntimeError:  # its loop is closed: nobody will ever take the grant
            self.left = True
            return False
        self.grant = grant
        return True

    def _wake(self, grant: Any) -> None:
        if not self.future.done():
            self.future.set_result(grant)
