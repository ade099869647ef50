"""What an ``AsyncPool`` owns on one event loop; replaced whole when the loop changes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from escudeiro_pools._deadlines import Deadlines

if TYPE_CHECKING:
    from escudeiro_pools._state import PoolState

__all__ = ["Binding"]

_Future = asyncio.Future


class Binding:
    """The loop, its clock and futures, the deadline timer, the pool's tasks on
    it (releasers, creations, the maintainer) and the futures of ``close()``
    and ``wait_ready()`` callers waiting on it."""

    __slots__ = (
        "deadlines",
        "drains",
        "loop",
        "maintainer",
        "monotonic",
        "new_future",
        "nudge",
        "ready",
        "tasks",
        "time",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, state: PoolState[Any]) -> None:
        self.loop = loop
        # The loop's clock and futures, without a Python frame when they are asyncio's own.
        base = asyncio.BaseEventLoop
        #: Whether the loop's clock is ``time.monotonic`` (the state's wait clock).
        self.monotonic = type(loop).time is base.time
        self.time: Callable[[], float] = time.monotonic if self.monotonic else loop.time
        self.new_future: Callable[[], asyncio.Future[Any]] = (
            functools.partial(_Future, loop=loop)
            if type(loop).create_future is base.create_future
            else loop.create_future
        )
        self.deadlines = Deadlines(loop, state)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.drains: list[asyncio.Future[None]] = []
        self.ready: list[asyncio.Future[None]] = []
        self.maintainer: asyncio.Task[None] | None = None
        self.nudge = asyncio.Event()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coroutine`` in a task of its own, kept referenced until it ends."""
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def wake(self, futures: list[asyncio.Future[None]]) -> None:
        """Resolve every future of ``futures`` (``drains`` or ``ready``) and forget them."""
        pending = futures[:]
        futures.clear()
        for future in pending:
            if not future.done():
                future.set_result(None)

    def abandon(self) -> None:
        """The pool moved to another loop: stop what still runs on this one."""
        self.deadlines.cancel()
        if not self.loop.is_closed():
            for task in (self.maintainer, *self.tasks):
                if task is not None:
                    with contextlib.suppress(RuntimeError):
                        self.loop.call_soon_threadsafe(task.cancel)
