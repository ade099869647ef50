"""One timer for every waiting acquire of an ``AsyncPool`` on one event loop.

A timer per waiter costs a ``TimerHandle`` pushed onto (and later dragged off)
the loop's heap. Here one loop timer is set for the earliest deadline.
Deadlines usually arrive in order (one ``acquire_timeout`` for all), and
waiters are served first come first served, so entries sit in a FIFO queue
whose front is both the next to expire and the next to be served: served
waiters' entries are dropped from the front as new ones arrive. The rare
deadline earlier than the last one queued goes to a small heap instead.

A ``Deadlines`` belongs to one loop; the pool makes a new one when it moves
to another loop, so no timer outlives the loop it was set on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Deadlines"]

_RESOLUTION = time.get_clock_info("monotonic").resolution
_Waiter = asyncio.Future[Any]


class Deadlines:
    """Expire waiters (futures) at their deadlines with ``expire(waiter)``."""

    __slots__ = ("_expire", "_late", "_loop", "_order", "_queue", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, expire: Callable[[_Waiter], None]) -> None:
        self._loop = loop
        self._expire = expire
        self._queue: deque[tuple[float, _Waiter]] = deque()  # in arrival order
        self._late: list[tuple[float, int, _Waiter]] = []  # a heap: out-of-order deadlines
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, deadline: float, waiter: _Waiter, waiting: int) -> None:
        """Expire ``waiter`` at ``deadline`` (loop time) unless it is done by then.

        ``waiting`` is how many waiters are live; it bounds the entries kept.
        """
        queue = self._queue
        while queue and queue[0][1].done():
            queue.popleft()
        if len(queue) > 2 * waiting + 64:
            self._queue = queue = deque(entry for entry in queue if not entry[1].done())
        if not queue or deadline >= queue[-1][0]:
            queue.append((deadline, waiter))
        else:
            late = self._late
            if len(late) > 2 * waiting + 64:
                late = self._late = [entry for entry in late if not entry[2].done()]
                heapq.heapify(late)
            heapq.heappush(late, (deadline, next(self._order), waiter))
        if self._timer is None or deadline < self._timer_at:
            self._schedule(deadline)

    def cancel(self) -> None:
        """Forget every entry and stop the timer."""
        self._queue.clear()
        self._late.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time() + _RESOLUTION  # as the loop itself judges timers
        queue, late, expire = self._queue, self._late, self._expire
        while late and late[0][0] <= now:
            waiter = heapq.heappop(late)[2]
            if not waiter.done():
                expire(waiter)
        while queue and (queue[0][0] <= now or queue[0][1].done()):
            waiter = queue.popleft()[1]
            if not waiter.done():
                expire(waiter)
        earliest = min(queue[0][0] if queue else math.inf, late[0][0] if late else math.inf)
        if earliest < math.inf:
            self._schedule(earliest)
