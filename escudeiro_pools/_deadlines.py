"""One timer for every waiting acquire of an ``AsyncPool``.

A timer per waiter costs a ``TimerHandle`` pushed onto (and later dragged off)
the loop's heap, compared in Python. Here deadlines sit in a heap of plain
tuples, compared in C, behind a single loop timer set for the earliest one.
A waiter served before its deadline leaves its entry behind; entries are
dropped when their time comes, or in a compaction when the dead outnumber
the living.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Deadlines"]

_RESOLUTION = time.get_clock_info("monotonic").resolution
_Entry = tuple[float, int, "asyncio.Future[Any]"]


class Deadlines:
    """Expire waiters (futures) at their deadlines with ``expire(waiter)``."""

    __slots__ = ("_expire", "_heap", "_loop", "_order", "_timer", "_timer_at")

    def __init__(self, expire: Callable[[asyncio.Future[Any]], None]) -> None:
        self._expire = expire
        self._heap: list[_Entry] = []
        self._order = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
        waiter: asyncio.Future[Any],
        waiting: int,
    ) -> None:
        """Expire ``waiter`` at ``deadline`` (loop time) unless it is done by then.

        ``waiting`` is how many waiters are live; it bounds the entries kept.
        """
        heap = self._heap
        if len(heap) > 2 * waiting + 64:
            heap = self._heap = [entry for entry in heap if not entry[2].done()]
            heapq.heapify(heap)
        heapq.heappush(heap, (deadline, next(self._order), waiter))
        if self._timer is None or deadline < self._timer_at:
            self._schedule(loop, deadline)

    def clear(self) -> None:
        """Forget every entry and the timer (its loop is gone)."""
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop = None

    def _schedule(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop = loop
        self._timer_at = when
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        heap = self._heap
        now = loop.time() + _RESOLUTION  # as the loop itself judges timers
        while heap and heap[0][0] <= now:
            waiter = heapq.heappop(heap)[2]
            if not waiter.done():
                self._expire(waiter)
        if heap:
            self._schedule(loop, heap[0][0])
