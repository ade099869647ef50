"""The pool's bookkeeping: every decision, no I/O.

Both pools keep their state here and call these methods (the thread pool
under its lock), then do the I/O (factory, releaser, reset, check) outside.
A resource's capacity is given back in exactly one place per path:
``_unreserve`` for a failed creation and ``_release_done`` for a destroyed resource.
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, Protocol, TypeVar

from escudeiro_pools._errors import PoolError, PoolTimeout
from escudeiro_pools._stats import PoolStats

__all__ = ["CLOSED", "CREATE", "DEFAULT", "EXPIRED", "PoolCore", "Slot", "logger"]

T = TypeVar("T")


class Waiter(Protocol):
    """A caller queued for a grant: an ``asyncio.Future`` or a thread's handle."""

    def done(self) -> bool:
        """True once granted or given up: ``_serve`` skips it."""
        ...

    def set_result(self, grant: Any, /) -> None:
        """Hand over a grant (a ``Slot``, ``CREATE`` or ``CLOSED``) and wake the caller."""
        ...


W = TypeVar("W", bound=Waiter)

logger: Final = logging.getLogger("escudeiro_pools")


class _Token:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


class _Default:
    def __repr__(self) -> str:
        return "<the pool's acquire_timeout>"


#: The per-call default for ``timeout``: the pool's ``acquire_timeout``.
DEFAULT: Final = _Default()

#: Granted to a waiter: capacity is reserved for it, it must create a resource.
CREATE: Final = _Token("CREATE")
#: Granted to a waiter: the pool closed while it waited.
CLOSED: Final = _Token("CLOSED")
#: Set on a waiter by its own timer: its deadline passed first.
EXPIRED: Final = _Token("EXPIRED")


class Slot(Generic[T]):
    """One live resource and what the pool knows about it."""

    __slots__ = (
        "created_at",
        "expires_at",
        "generation",
        "leak_timer",
        "leased",
        "resource",
        "returned_at",
        "serial",
    )

    def __init__(self, resource: T, created_at: float, generation: int, expires_at: float) -> None:
        self.resource = resource
        self.created_at = created_at
        self.expires_at = expires_at
        self.returned_at = created_at
        self.generation = generation
        self.serial = 0
        self.leased = False
        self.leak_timer: Any = None


class PoolCore(Generic[T, W]):
    """Idle slots, live count, waiter queue and counters, with pure transitions.

    ``_slots`` maps ``id(resource)`` to every live slot (idle, leased or in
    hand); live = ``len(_slots) + _creating + _releasing`` never exceeds
    ``_pool_size``.  Idle slots and live waiters are never both present.
    """

    def __init__(
        self,
        *,
        name: str,
        pool_size: int,
        lifo: bool,
        recycle: float,
        max_idle: float | None,
        has_check: bool,
        check_after_idle: float,
        alive: Callable[[T], bool] | None,
        has_reset: bool,
        leak_timeout: float | None,
        discard_on: tuple[type[BaseException], ...],
        clock: Callable[[], float],
    ) -> None:
        self._name = name
        self._pool_size = pool_size
        self._recycle = recycle if recycle > 0 else None
        self._max_idle = max_idle
        self._has_check = has_check
        self._check_after_idle = check_after_idle
        self._alive = alive
        self._leak_timeout = leak_timeout
        self._discard_on = discard_on
        self._clock = clock
        # True when a checkout needs no inspection at all: the hot path skips the clock.
        self._plain = self._recycle is None and max_idle is None and not has_check and alive is None
        # Only the age since creation matters at checkout: compare with one clock read.
        self._recycle_only = (
            self._recycle is not None and max_idle is None and not has_check and alive is None
        )
        # Returns need more than bookkeeping only for options that act on them.
        self._plain_return = (
            not has_reset and alive is None and max_idle is None and leak_timeout is None
        )
        # Return times matter only to options that measure idleness.
        self._stamp_returns = max_idle is not None or has_check
        self._idle: deque[Slot[T]] = deque()
        self._lifo = lifo
        self._pop_idle: Callable[[], Slot[T]] = self._idle.pop if lifo else self._idle.popleft
        self._unpop_idle: Callable[[Slot[T]], None] = (
            self._idle.append if lifo else self._idle.appendleft
        )
        self._slots: dict[int, Slot[T]] = {}
        self._creating = 0
        self._releasing = 0
        self._in_use = 0
        self._waiters: deque[W] = deque()
        self._waiting = 0
        self._generation = 0
        self._closed = False
        self._reset_counters()
        _live_pools.add(self)

    def _reset_counters(self) -> None:
        self._created = self._destroyed = self._abandoned = 0
        self._released = self._timeouts = self._lost_leases = 0
        self._factory_errors = self._releaser_errors = self._reset_errors = 0
        self._check_failures = self._recycled = self._idle_expired = 0
        self._discarded = self._leaks = self._waits = 0
        self._wait_time_total = self._wait_time_max = 0.0

    # -- flavour hooks ---------------------------------------------------------

    def _drained(self) -> None:
        """Called when a closed pool has no live resource left."""

    # -- transitions ----------------------------------------------------------

    def _live(self) -> int:
        return len(self._slots) + self._creating + self._releasing

    def _fresh(self, slot: Slot[T]) -> bool:
        """True if an idle ``slot`` may be lent as it is, with no awaited or blocking check.

        The hot paths inline this test; with the default options it is one clock read.
        """
        return (
            self._plain
            or (self._recycle_only and self._clock() < slot.expires_at)
            or self._verdict(slot) is None
        )

    def _reserve(self) -> bool:
        """Reserve capacity for one creation if the pool is below its size."""
        if len(self._slots) + self._creating + self._releasing < self._pool_size:
            self._creating += 1
            return True
        return False

    def _unreserve(self) -> None:
        """A reserved creation did not produce a resource: free its capacity."""
        self._creating -= 1
        self._serve()
        self._check_drained()

    def _register(self, resource: T, now: float) -> Slot[T]:
        """A reserved creation produced ``resource``: it becomes a live slot."""
        key = id(resource)
        if key in self._slots:
            self._unreserve()
            raise PoolError(
                f"pool {self._name!r}: the factory returned a resource that is already "
                "in the pool; it must make a new object on every call"
            )
        self._creating -= 1
        expires_at = now + self._recycle if self._recycle is not None else math.inf
        # Made for a pool that closed meanwhile: a generation never current, so never pooled.
        generation = -1 if self._closed else self._generation
        slot: Slot[T] = Slot(resource, now, generation, expires_at)
        self._slots[key] = slot
        self._created += 1
        return slot

    def _lend(self, slot: Slot[T]) -> None:
        slot.leased = True
        slot.serial += 1
        self._in_use += 1
        if self._leak_timeout is not None:
            self._watch_leak(slot)

    def _watch_leak(self, slot: Slot[T]) -> None:
        """Start a timer that warns once if ``slot`` stays leased too long."""

    def _report_leak(self, slot: Slot[T], serial: int, site: str) -> None:
        if slot.leased and slot.serial == serial:
            self._leaks += 1
            logger.warning(
                "pool %r: a resource has been leased for more than %.1f s; acquired at %s",
                self._name,
                self._leak_timeout,
                site,
            )

    def _verdict(self, slot: Slot[T]) -> str | None:
        """Why an idle ``slot`` may not be handed out as it is, or None if it may.

        "check" means it may, after the (awaited or blocking) ``check`` passes.
        """
        if self._alive is not None:
            try:
                if not self._alive(slot.resource):
                    return "dead"
            except Exception:
                logger.warning("pool %r: alive test raised", self._name, exc_info=True)
                return "dead"
        if self._recycle is None and not self._stamp_returns:
            return None
        now = self._clock()
        if now >= slot.expires_at:
            return "recycled"
        if self._max_idle is not None and now - slot.returned_at >= self._max_idle:
            return "idle_expired"
        if self._has_check and now - slot.returned_at >= self._check_after_idle:
            return "check"
        return None

    def _count_stale(self, reason: str) -> None:
        if reason == "recycled":
            self._recycled += 1
        elif reason == "idle_expired":
            self._idle_expired += 1
        else:
            self._check_failures += 1

    def _expired_idle(self) -> list[Slot[T]]:
        """Retire idle slots past ``max_idle``, oldest first, so an idle pool shrinks."""
        expired: list[Slot[T]] = []
        if self._max_idle is None:
            return expired
        limit = self._clock() - self._max_idle
        idle = self._idle
        while idle and idle[0].returned_at <= limit:
            slot = idle.popleft()
            self._idle_expired += 1
            self._retire(slot)
            expired.append(slot)
        return expired

    def _leased_slot(self, resource: object) -> Slot[T]:
        """The slot ``resource`` is leased under, or PoolError if it is not leased."""
        slot = self._slots.get(id(resource))
        if slot is not None and slot.resource is resource and slot.leased:
            return slot
        if slot is not None and slot.resource is resource:
            raise PoolError(
                f"pool {self._name!r}: {resource!r} is not leased (it is idle in the pool "
                "or already being returned); release each acquired resource exactly once"
            )
        raise PoolError(
            f"pool {self._name!r}: {resource!r} was not acquired from this pool "
            "(or was already destroyed); release resources only to the pool they came from"
        )

    def _unlend(self, slot: Slot[T]) -> None:
        slot.leased = False
        self._in_use -= 1
        self._released += 1
        if slot.leak_timer is not None:
            slot.leak_timer.cancel()
            slot.leak_timer = None

    def _accept(self, slot: Slot[T]) -> bool:
        """Take back an unleased slot; False means it is stale and must be destroyed."""
        if slot.generation != self._generation:
            return False
        if self._stamp_returns:
            slot.returned_at = self._clock()
        self._idle.append(slot)
        if self._waiting:
            self._serve()
        return True

    def _retire(self, slot: Slot[T]) -> None:
        """Take ``slot`` out of the pool; its capacity stays held until ``_release_done``."""
        del self._slots[id(slot.resource)]
        self._releasing += 1

    def _release_done(self) -> None:
        """The releaser finished (or failed) for a retired slot: free its capacity."""
        self._releasing -= 1
        self._destroyed += 1
        self._serve()
        self._check_drained()

    def _take_all_idle(self) -> list[Slot[T]]:
        slots = list(self._idle)
        self._idle.clear()
        for slot in slots:
            self._retire(slot)
        return slots

    def _serve(self) -> None:
        """Hand idle resources or free capacity to waiters, first come first served."""
        waiters = self._waiters
        while waiters:
            waiter = waiters[0]
            if waiter.done():
                waiters.popleft()
                continue
            grant: Slot[T] | _Token
            if self._closed:
                grant = CLOSED
            elif self._idle:
                grant = self._pop_idle()
            elif self._reserve():
                grant = CREATE
            else:
                return
            waiters.popleft()
            self._waiting -= 1
            waiter.set_result(grant)

    def _hand_over(self, slot: Slot[T]) -> bool:
        """Give a returned ``slot`` to the longest live waiter; False if none waits.

        ``_serve`` for the commonest case: one slot back, the pool open.
        """
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                self._waiting -= 1
                waiter.set_result(slot)
                return True
        return False

    def _give_back(self, grant: Slot[T] | _Token) -> list[Slot[T]]:
        """A waiter was granted ``grant`` but gave up: pass it on.

        Returns the slots that must be destroyed (a stale one).
        """
        if grant is CREATE:
            self._unreserve()
        elif isinstance(grant, Slot) and not self._accept(grant):
            self._retire(grant)
            return [grant]
        return []

    def _enqueue(self, waiter: W) -> None:
        self._waiters.append(waiter)
        self._waiting += 1

    def _abandon(self) -> None:
        """A waiter left before it was granted anything."""
        self._waiting -= 1
        # Dead waiters are skipped lazily; compact so timeouts cannot grow the queue.
        if len(self._waiters) > 2 * self._waiting + 64:
            self._waiters = deque(w for w in self._waiters if not w.done())

    def _note_wait(self, seconds: float) -> None:
        self._waits += 1
        self._wait_time_total += seconds
        if seconds > self._wait_time_max:
            self._wait_time_max = seconds

    def _mark_closed(self) -> None:
        self._closed = True
        self._generation += 1
        self._serve()

    def _mark_open(self) -> None:
        self._closed = False

    def _check_drained(self) -> None:
        if self._closed and not self._slots and not self._creating and not self._releasing:
            self._drained()

    def _forget(self) -> None:
        """Drop every resource without touching it (its loop or process is gone)."""
        self._abandoned += len(self._slots) + self._creating + self._releasing
        self._lost_leases += self._in_use
        self._slots.clear()
        self._idle.clear()
        self._waiters.clear()
        self._creating = self._releasing = self._in_use = self._waiting = 0
        self._generation += 1

    # -- introspection --------------------------------------------------------

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's gauges and cumulative counters."""
        return PoolStats(
            name=self._name,
            pool_size=self._pool_size,
            closed=self._closed,
            size=self._live(),
            idle=len(self._idle),
            in_use=self._in_use,
            creating=self._creating,
            releasing=self._releasing,
            waiting=self._waiting,
            created=self._created,
            destroyed=self._destroyed,
            abandoned=self._abandoned,
            acquired=self._released + self._in_use + self._lost_leases,
            released=self._released,
            timeouts=self._timeouts,
            factory_errors=self._factory_errors,
            releaser_errors=self._releaser_errors,
            reset_errors=self._reset_errors,
            check_failures=self._check_failures,
            recycled=self._recycled,
            idle_expired=self._idle_expired,
            discarded=self._discarded,
            leaks=self._leaks,
            waits=self._waits,
            wait_time_total=self._wait_time_total,
            wait_time_max=self._wait_time_max,
        )

    @property
    def name(self) -> str:
        """The pool's name, as shown in errors, logs and stats."""
        return self._name

    @property
    def pool_size(self) -> int:
        """The most resources that may exist at once."""
        return self._pool_size

    @property
    def closed(self) -> bool:
        """True between ``close()`` and ``open()``."""
        return self._closed

    def _timeout_error(self, timeout: float | None, phase: str) -> PoolTimeout:
        return PoolTimeout(
            f"pool {self._name!r}: couldn't get a resource within {timeout or 0.0:.2f} s "
            f"(timed out while {phase}; size {self._live()}/{self._pool_size}, "
            f"in use {self._in_use}, waiting {self._waiting}); raise pool_size or "
            "acquire_timeout, or return leases sooner"
        )

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<{type(self).__name__} {self._name!r}{state} size={self._live()}/{self._pool_size}"
            f" idle={len(self._idle)} in_use={self._in_use} waiting={self._waiting}>"
        )

    def _after_fork(self) -> None:
        self._forget()


_live_pools: weakref.WeakSet[PoolCore[Any, Any]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child shares the parent's sockets: it must never use or release them.
    for pool in list(_live_pools):
        pool._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
