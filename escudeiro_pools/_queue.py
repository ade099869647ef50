"""The callers waiting for a grant, and what their waits add up to.

Owned by a ``PoolState``, which alone calls these methods. Callers are
served first come, first served; a waiter that gave up (cancelled, timed
out, its loop gone) is skipped when its turn comes, and the queue is
compacted so that callers who give up cannot grow it.
"""

from __future__ import annotations

import math
import time
from collections import deque

from escudeiro_pools._protocol import EXPIRED, Grant, Waiter

__all__ = ["Entry", "WaiterQueue"]

_monotonic = time.monotonic
_WEIGHT = 0.2

#: One queued caller: its waiter, its deadline (the async pool's timer reads
#: it; None: none) and when it began to wait (``time.monotonic``).
Entry = tuple[Waiter, float | None, float]


class WaiterQueue:
    """Queued callers in arrival order, each with its deadline; ``waiting``
    counts those that have not left, ``waits`` and ``wait_time_*`` every
    caller that queued, once its wait ended."""

    __slots__ = ("entries", "recent_wait", "wait_time_max", "wait_time_total", "waiting", "waits")

    def __init__(self) -> None:
        self.entries: deque[Entry] = deque()
        self.waiting = 0
        self.waits = 0
        self.wait_time_total = self.wait_time_max = 0.0
        #: How long callers wait lately: a moving average, each wait weighing 1/5.
        self.recent_wait = 0.0

    def enqueue(self, waiter: Waiter, deadline: float | None, started: float) -> None:
        self.entries.append((waiter, deadline, started))
        self.waiting += 1

    def offer(self, grant: Grant) -> bool:
        """Hand ``grant`` to the longest live waiter; False if none takes it."""
        entries = self.entries
        while entries:
            waiter, _, started = entries.popleft()
            if waiter.done():
                continue
            self.waiting -= 1
            if waiter.set_result(grant) is not False:
                # ``_ended``, written out: this is every contended hand-off.
                seconds = _monotonic() - started
                self.waits += 1
                self.wait_time_total += seconds
                if seconds > self.wait_time_max:
                    self.wait_time_max = seconds
                self.recent_wait += (seconds - self.recent_wait) * _WEIGHT
                return True
        return False

    def _ended(self, seconds: float) -> None:
        """A queued caller's wait ended (``offer`` writes this out)."""
        self.waits += 1
        self.wait_time_total += seconds
        if seconds > self.wait_time_max:
            self.wait_time_max = seconds
        self.recent_wait += (seconds - self.recent_wait) * _WEIGHT

    def left(self, started: float) -> None:
        """A queued caller left before it was granted anything (its waiter is done)."""
        self.waiting -= 1
        self._ended(_monotonic() - started)
        if len(self.entries) > 2 * self.waiting + 64:
            self.entries = deque(entry for entry in self.entries if not entry[0].done())

    def expire(self, waiter: Waiter, started: float) -> None:
        """``waiter``'s deadline passed: it gets ``EXPIRED`` unless it is done."""
        if not waiter.done():
            waiter.set_result(EXPIRED)
            self.waiting -= 1
            self._ended(_monotonic() - started)

    def expire_due(self, now: float) -> float | None:
        """Expire the waiters at the front whose deadline is ``now`` or earlier.

        Returns the deadline of the new front (``math.inf`` if it has none),
        or None if nobody waits. Deadlines that arrived out of order are the
        async pool's own to expire (``expire``).
        """
        entries = self.entries
        while entries:
            waiter, deadline, started = entries[0]
            if not waiter.done():
                if deadline is None:
                    return math.inf
                if deadline > now:
                    return deadline
                self.expire(waiter, started)
            entries.popleft()
        return None

    def clear(self) -> None:
        self.entries.clear()
        self.waiting = 0

    def live(self) -> int:
        """How many queued waiters have not given up (an O(n) count)."""
        return sum(1 for waiter, _, _ in self.entries if not waiter.done())
