"""A pool's books: every slot, waiter, gauge and counter, and its capacity.

``Books`` is the base of ``PoolState`` and declares every field of the
pool's state, once. The fields are read by the rest of the package (stats,
the pools' fast checks, the invariant check) and written only here and in
``PoolState``. Capacity comes back in three places: ``release_done`` (a
retired slot's releaser finished, or ``PoolState.replaced``), a failed or
refused creation, and ``detach``; each goes through ``_freed``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from escudeiro_pools import _invariants, _report
from escudeiro_pools._breaker import Breaker
from escudeiro_pools._errors import PoolClosed, PoolTimeout, PoolUnavailable
from escudeiro_pools._options import Options
from escudeiro_pools._protocol import CLOSED, CREATE, UNAVAILABLE, Grant, Signals, Waiter
from escudeiro_pools._queue import WaiterQueue
from escudeiro_pools._slot import GONE, LEASED, Slot
from escudeiro_pools._stats import LeaseInfo, PoolStats

__all__ = ["Books"]

T = TypeVar("T")


class Books(Generic[T]):
    """Idle slots, live slots, the waiter queue, gauges and counters.

    ``slots`` maps ``id(resource)`` to every slot that is idle, leased,
    checking or resetting; ``size == len(slots) + creating + releasing``.
    """

    # Slots, not a __dict__: more than 30 attributes would take instances off
    # CPython's fast attribute path, and this object is read on every lease.
    __slots__ = (
        "_pop_idle",
        "abandoned",
        "breaker",
        "check_after",
        "check_failures",
        "checking",
        "clock",
        "closed",
        "created",
        "creating",
        "destroyed",
        "detached",
        "discarded",
        "enqueue",
        "factory_errors",
        "generation",
        "generation_fate",
        "has_alive",
        "has_reset",
        "idle",
        "idle_expired",
        "in_use",
        "jitter",
        "leak_timeout",
        "leaks",
        "lifo",
        "lost_leases",
        "maintained",
        "max_idle",
        "max_uses",
        "max_waiting",
        "min_size",
        "name",
        "peak_size",
        "plain",
        "plain_return",
        "pool_size",
        "prefilling",
        "queue",
        "recycle",
        "recycle_only",
        "recycled",
        "rejected",
        "released",
        "releaser_errors",
        "releasing",
        "reset_errors",
        "resetting",
        "return_work",
        "shrinking",
        "signals",
        "slots",
        "stamp_returns",
        "timed",
        "timeouts",
        "tracking",
        "unavailable",
    )

    def __init__(self, options: Options, signals: Signals) -> None:
        self.name = options.name
        self.signals = signals
        self.pool_size = options.pool_size
        #: The largest ``pool_size`` the pool ever had (releasers a shrink started may run).
        self.peak_size = options.pool_size
        self.min_size = options.min_size
        self.lifo = options.lifo
        self.recycle = options.recycle
        self.jitter = options.recycle_jitter
        self.max_uses = options.max_uses
        self.max_idle = options.max_idle
        #: ``check_after_idle`` when the pool has a ``check``, else None.
        self.check_after = options.check_after_idle if options.check is not None else None
        self.has_alive = options.alive is not None
        self.has_reset = options.reset is not None
        self.leak_timeout = options.leak_timeout
        self.max_waiting = options.max_waiting
        self.clock = options.clock
        # Lease tracking (ages and sites): on with the leak watch.
        self.tracking = options.leak_timeout is not None
        # Whether a maintainer may ever be needed.
        self.maintained = (
            options.min_size > 0
            or options.max_idle is not None
            or options.fail_fast_after is not None
            or options.leak_timeout is not None
        )
        # A checkout judges an idle slot by its times only when an option looks at them.
        self.timed = self.recycle is not None or self.max_idle is not None
        self.timed = self.timed or self.check_after is not None
        # A checkout that needs no inspection at all does not read the clock.
        self.plain = not self.timed and not self.has_alive
        # Only the age since creation matters at checkout: one clock read.
        self.recycle_only = (
            self.recycle is not None
            and self.max_idle is None
            and self.check_after is None
            and not self.has_alive
        )
        # Return times matter only to options that measure idleness.
        self.stamp_returns = self.max_idle is not None or self.check_after is not None
        # A return runs alive and/or reset before the slot is settled.
        self.return_work = self.has_alive or self.has_reset
        self.shrinking = False
        self.plain_return = False
        self._refresh_return_path()
        self.breaker = Breaker(options.name, options.fail_fast_after, options.retry_backoff)
        self.idle: deque[Slot[T]] = deque()
        # LIFO lends the most recently returned slot; returns are appended on the right.
        self._pop_idle: Callable[[], Slot[T]] = self.idle.pop if self.lifo else self.idle.popleft
        self.slots: dict[int, Slot[T]] = {}
        self.queue = WaiterQueue()
        #: Queue a caller that got ``WAIT``: it is granted a slot or a token
        #: (the queue's own method, without a frame of the state's).
        self.enqueue: Callable[[Waiter, float | None, float], None] = self.queue.enqueue
        self.creating = self.prefilling = self.checking = self.resetting = 0
        self.releasing = self.in_use = 0
        self.generation = 0
        #: Why slots of an earlier generation are released ("disposed", "closed").
        self.generation_fate = "disposed"
        self.closed = False
        self.created = self.destroyed = self.abandoned = self.detached = 0
        self.released = self.lost_leases = self.timeouts = 0
        self.rejected = self.unavailable = 0
        self.factory_errors = self.releaser_errors = self.reset_errors = 0
        self.check_failures = self.recycled = self.idle_expired = 0
        self.discarded = self.leaks = 0

    def _refresh_return_path(self) -> None:
        """A return is plain (bookkeeping only) unless an option or a shrink acts on it."""
        self.plain_return = not (
            self.return_work or self.max_uses is not None or self.tracking or self.shrinking
        )

    # -- capacity ------------------------------------------------------------------

    def has_room(self) -> bool:
        return len(self.slots) + self.creating + self.releasing < self.pool_size

    def _reserve(self) -> bool:
        """Reserve capacity for one creation if the pool is below its size."""
        if self.has_room():
            self.creating += 1
            return True
        return False

    def _lend(self, slot: Slot[T]) -> None:
        slot.state = LEASED
        slot.serial += 1
        self.in_use += 1
        if self.tracking:
            self._stamp(slot)

    def _stamp(self, slot: Slot[T]) -> None:
        slot.leased_at = self.clock()
        slot.site = None

    def _retire(self, slot: Slot[T], fate: str) -> None:
        """Take ``slot`` out of the pool; its capacity stays held until ``release_done``."""
        del self.slots[id(slot.resource)]
        slot.state = GONE
        slot.fate = fate
        self.releasing += 1

    def release_done(self, failed: bool = False) -> None:
        """The releaser of a retired slot finished (``failed``: it raised): free its capacity."""
        self.releasing -= 1
        self.destroyed += 1
        if failed:
            self.releaser_errors += 1
        self._freed()

    def _freed(self) -> None:
        """Capacity came back: to the waiters, else to the maintainer's judgement."""
        self._serve()
        if self.closed and not self.slots and not self.creating and not self.releasing:
            self.signals._drained()
        if self.needs_maintainer():
            self.signals._wake_maintainer()

    def _serve(self) -> None:
        """Capacity was freed or the pool closed: grant it to waiters, first come first served."""
        # Idle slots and live waiters never coexist: only capacity is granted here.
        while self.queue.waiting:
            if self.closed:
                grant: Grant = CLOSED
            elif not self.has_room():
                return
            elif self.breaker.is_open:
                grant = UNAVAILABLE
                self.unavailable += 1
            else:
                grant = CREATE
                self.creating += 1
            if not self.queue.offer(grant):
                if grant is CREATE:
                    self.creating -= 1
                elif grant is UNAVAILABLE:
                    self.unavailable -= 1
                return

    def needs_maintainer(self) -> bool:
        return not self.closed and (
            self.min_size > 0
            or self.max_idle is not None
            or self.breaker.is_open
            or self.leak_timeout is not None
        )

    def _over_size(self) -> bool:
        # Slots being released are on their way out: they are not counted twice.
        over = len(self.slots) + self.creating > self.pool_size
        if not over and self.shrinking:
            self.shrinking = False
            self._refresh_return_path()
        return over

    def ready(self) -> bool:
        """``wait_ready`` may return: ``min_size`` resources exist."""
        return len(self.slots) >= self.min_size

    # -- waiters and loss --------------------------------------------------------

    def left_queue(self, started: float) -> None:
        """A queued caller left before it was granted anything (it marked its waiter done)."""
        self.queue.left(started)

    def expire_due(self, now: float) -> float | None:
        """The async pool's timer fired: see ``WaiterQueue.expire_due``."""
        return self.queue.expire_due(now)

    def expire(self, waiter: Waiter, started: float) -> None:
        """An out-of-order deadline passed: ``waiter`` gets ``EXPIRED`` unless it is done."""
        self.queue.expire(waiter, started)

    def forget(self) -> None:
        """Drop every resource without touching it (its loop or process is gone).

        Leases still open on them become inert: their exit changes nothing. A
        creation still in flight made nothing the pool counted, so it is not
        counted abandoned either.
        """
        for slot in self.slots.values():
            slot.state = GONE
        self.abandoned += len(self.slots) + self.releasing
        self.lost_leases += self.in_use
        self.slots.clear()
        self.idle.clear()
        self.queue.clear()
        self.creating = self.releasing = self.checking = self.resetting = 0
        self.in_use = self.prefilling = 0
        self.breaker.probe_ended()

    # -- what it tells -------------------------------------------------------------

    def stats(self) -> PoolStats:
        return _report.stats(self)

    def lease_infos(self) -> tuple[LeaseInfo, ...]:
        return _report.lease_infos(self)

    def closed_error(self) -> PoolClosed:
        return PoolClosed(f"pool {self.name!r} is closed; call open() to use it again")

    def unavailable_error(self, *, counted: bool = False) -> PoolUnavailable:
        """The error for a caller refused while the breaker is open (``counted``: already)."""
        if not counted:
            self.unavailable += 1
        return _report.unavailable_error(self.name, self.breaker, self.clock())

    def timeout_error(self, timeout: float | None, phase: str) -> PoolTimeout:
        """An acquire timed out while ``phase`` (counted)."""
        self.timeouts += 1
        return _report.timeout_error(self, timeout, phase)

    def check_invariants(self) -> None:
        """Raise ``AssertionError`` if any documented identity does not hold."""
        _invariants.verify(self)

    def describe(self) -> str:
        return _report.describe(self)
