"""One timer for every waiting acquire of an ``AsyncPool`` on one event loop.

A timer per waiter costs a ``TimerHandle`` pushed onto (and later dragged off)
the loop's heap. Here one loop timer serves them all. Deadlines usually
arrive in order (one ``acquire_timeout`` for all) and waiters are served
first come first served, so the state's waiter queue, which keeps each
waiter's deadline, is also the deadline queue: its front is both the next
to expire and the next to be served, and queuing costs nothing more. The
timer is set for the front's deadline and moved on lazily when it fires.
The rare deadline earlier than the last one queued (a shorter per-call
timeout) also goes to a small heap of its own.

A ``Deadlines`` belongs to one loop; the pool makes a new one when it moves
to another loop, so no timer outlives the loop it was set on. It only reads
the clock and tells the state which waiters expired.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from escudeiro_pools._state import PoolState

__all__ = ["Deadlines"]

_RESOLUTION = time.get_clock_info("monotonic").resolution
_Waiter = asyncio.Future[Any]


class Deadlines:
    """Expire the waiters of ``state`` (on ``loop``) at their deadlines (loop time)."""

    __slots__ = ("_late", "_loop", "_order", "_state", "last", "timer", "timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, state: PoolState[Any]) -> None:
        self._loop = loop
        self._state = state
        # A heap of out-of-order deadlines: (deadline, order, waiter, started).
        self._late: list[tuple[float, int, _Waiter, float]] = []
        self._order = itertools.count()
        #: The latest in-order deadline queued: one earlier than it goes to the heap.
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    def queued(self, deadline: float | None, waiter: _Waiter, started: float) -> None:
        """``waiter`` was just queued: expire it at ``deadline`` unless it is done by then."""
        if deadline is None:
            # Behind a waiter without deadline, later deadlines are out of order.
            self.last = math.inf
            return
        if deadline >= self.last and self.timer is not None:
            self.last = deadline  # in order: the queue's front is due first
            return
        if deadline < self.last:
            late = self._late
            if len(late) > 2 * self._state.queue.waiting + 64:
                late = self._late = [entry for entry in late if not entry[2].done()]
                heapq.heapify(late)
            heapq.heappush(late, (deadline, next(self._order), waiter, started))
        else:
            self.last = deadline
        if self.timer is None or deadline < self.timer_at:
            self._schedule(deadline)

    def cancel(self) -> None:
        """Stop the timer and forget the out-of-order deadlines."""
        self._late.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _schedule(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = when
        self.timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.timer = None
        now = self._loop.time() + _RESOLUTION  # as the loop itself judges timers
        state, late = self._state, self._late
        while late and late[0][0] <= now:
            _, _, waiter, started = heapq.heappop(late)
            state.expire(waiter, started)
        front = state.expire_due(now)
        if front is None:
            self.last = 0.0  # nobody waits: the next deadline starts the order afresh
        elif front == math.inf:
            self.last = math.inf  # a waiter without deadline heads the queue
        earliest = min(front or math.inf, late[0][0] if late else math.inf)
        if earliest < math.inf:
            self._schedule(earliest)
