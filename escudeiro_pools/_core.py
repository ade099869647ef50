"""The pool's decisions: capacity, the waiter queue, what a caller gets and
what becomes of a returned or stale resource. No I/O, no waiting.

Both pools keep their state here and change it only through these methods
(the thread pool under its lock); they run the factory, releaser, check and
reset outside, then report back. Capacity comes back in four places only:
``_unreserve`` (a creation failed), ``_release_done`` (a releaser finished),
``_replace`` (a stale slot's releaser finished and nobody claims its
capacity) and ``_detach``. Lifetimes (``_lifetimes.py``) and what the pool
tells about itself (``_introspection.py``) are the core's too, by concept.
The hot paths (``_lend_idle``, ``_return_plain``) are inlined into the pools
and leases by ``tools/hot_paths.py``; edit them here and regenerate.
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from escudeiro_pools._breaker import Breaker
from escudeiro_pools._errors import PoolBusy, PoolError
from escudeiro_pools._introspection import Introspection
from escudeiro_pools._lifetimes import Lifetimes
from escudeiro_pools._options import Options, check_count
from escudeiro_pools._protocol import (
    CLOSED,
    CREATE,
    EXPIRED,
    UNAVAILABLE,
    WAIT,
    Grant,
    PoolObserver,
    Waiter,
)
from escudeiro_pools._slot import CHECKING, GONE, IDLE, LEASED, RESETTING, Slot

__all__ = ["PoolCore", "logger"]

T = TypeVar("T")
W = TypeVar("W", bound=Waiter)

logger: Final = logging.getLogger("escudeiro_pools")


class PoolCore(Lifetimes[T], Introspection[T], Generic[T, W]):
    """Idle slots, live count, waiter queue and counters, with pure transitions.

    ``_slots`` maps ``id(resource)`` to every slot that is idle, leased,
    checking or resetting; ``size == len(_slots) + _creating + _releasing``
    never exceeds ``_pool_size`` (but after a shrinking ``resize``). Idle
    slots and live waiters are never both present.
    """

    def __init__(self, options: Options) -> None:
        self._name = options.name
        self._pool_size = options.pool_size
        self._min_size = options.min_size
        self._recycle = options.recycle
        self._jitter = options.recycle_jitter
        self._max_uses = options.max_uses
        self._max_idle = options.max_idle
        self._has_check = options.check is not None
        self._has_setup = options.setup is not None
        self._check_after_idle = options.check_after_idle
        self._alive = options.alive
        self._has_reset = options.reset is not None
        self._leak_timeout = options.leak_timeout
        self._observers: tuple[PoolObserver, ...] = ()
        # Tracking: every lend and return is recorded (leak watch, observers).
        self._tracking = options.leak_timeout is not None
        # Whether a maintainer may ever be needed: the slow paths then check for one.
        self._maintained = (
            options.min_size > 0
            or options.max_idle is not None
            or options.fail_fast_after is not None
            or options.leak_timeout is not None
        )
        self._discard_on = options.discard_on
        self._max_waiting = options.max_waiting
        self._clock = options.clock
        self._breaker = Breaker(options.name, options.fail_fast_after, options.retry_backoff)
        # A checkout that needs no inspection at all does not read the clock.
        nothing_else = not self._has_check and self._alive is None and not self._has_setup
        self._plain = self._recycle is None and self._max_idle is None and nothing_else
        # Only the age since creation matters at checkout: one clock read.
        self._recycle_only = self._recycle is not None and self._max_idle is None and nothing_else
        # Return times matter only to options that measure idleness.
        self._stamp_returns = self._max_idle is not None or self._has_check
        self._shrinking = False
        self._refresh_return_path()
        self._idle: deque[Slot[T]] = deque()
        # LIFO lends the most recently returned slot; both append returns on the right.
        self._pop_idle: Callable[[], Slot[T]] = (
            self._idle.pop if options.lifo else self._idle.popleft
        )
        self._unpop_idle: Callable[[Slot[T]], None] = (
            self._idle.append if options.lifo else self._idle.appendleft
        )
        self._slots: dict[int, Slot[T]] = {}
        self._creating = 0
        self._prefilling = 0
        self._checking = 0
        self._resetting = 0
        self._releasing = 0
        self._in_use = 0
        # Queued callers in arrival order, each with its deadline (the async
        # pool's timer reads it; None: no deadline).
        self._waiters: deque[tuple[W, float | None]] = deque()
        self._waiting = 0
        self._generation = 0
        self._closed = False
        self._created = self._destroyed = self._abandoned = self._detached = 0
        self._released = self._lost_leases = self._timeouts = 0
        self._rejected = self._unavailable = 0
        self._factory_errors = self._releaser_errors = self._reset_errors = 0
        self._check_failures = self._recycled = self._idle_expired = 0
        self._discarded = self._leaks = self._waits = 0
        self._wait_time_total = self._wait_time_max = 0.0
        _live_pools.add(self)

    def _refresh_return_path(self) -> None:
        """A return is plain (bookkeeping only) unless an option or a shrink acts on it."""
        self._plain_return = (
            not self._has_reset
            and self._alive is None
            and self._max_uses is None
            and not self._tracking
            and not self._shrinking
        )

    def add_observer(self, observer: PoolObserver) -> None:
        """Send this pool's timings to ``observer`` from now on (see ``PoolObserver``).

        While any observer is attached, every lend and return reads the clock.
        """
        if not all(callable(getattr(observer, m, None)) for m in ("created", "waited", "used")):
            raise TypeError(
                f"an observer needs created(), waited() and used() methods, got {observer!r}"
            )
        if observer not in self._observers:
            self._set_observers((*self._observers, observer))

    def remove_observer(self, observer: PoolObserver) -> None:
        """Stop sending timings to ``observer``; a no-op if it was not attached."""
        self._set_observers(tuple(o for o in self._observers if o is not observer))

    def _set_observers(self, observers: tuple[PoolObserver, ...]) -> None:
        was_tracking = self._tracking
        self._observers = observers
        self._tracking = self._leak_timeout is not None or bool(observers)
        if self._tracking and not was_tracking:
            # Leases already out were never stamped: their use counts from now.
            now = self._clock()
            for slot in self._slots.values():
                if slot.state == LEASED:
                    slot.leased_at = now
        self._refresh_return_path()

    # -- tracking: leak watch and observers --------------------------------------

    def _track(self, slot: Slot[T], waited: float = 0.0) -> None:
        """Tracking is on: ``slot`` was just lent to a caller that waited ``waited``
        seconds for it; record when (and where, for the leak watch)."""
        slot.leased_at = self._clock()
        for observer in self._observers:
            observer.waited(waited)
        if self._leak_timeout is not None:
            self._watch(slot)

    def _untrack(self, slot: Slot[T]) -> None:
        """Tracking is on: the lease of ``slot`` ended."""
        if self._observers:
            used = max(0.0, self._clock() - slot.leased_at)
            for observer in self._observers:
                observer.used(used)
        if self._leak_timeout is not None:
            self._unwatch(slot)
        slot.site = None

    def _note_created(self, seconds: float) -> None:
        for observer in self._observers:
            observer.created(seconds)

    # -- flavour hooks ---------------------------------------------------------

    def _watch(self, slot: Slot[T]) -> None:
        """Record where ``slot`` was lent, and warn once if it is held too long."""
        raise NotImplementedError

    def _unwatch(self, slot: Slot[T]) -> None:
        """Stop watching the lease of ``slot`` for a leak."""

    def _drained(self) -> None:
        """A closed pool has no live resource left."""

    def _nudge(self) -> None:
        """The maintainer may have work now (start it if the pool needs one)."""

    # -- the hot paths: inlined by tools/hot_paths.py --------------------------
    # Their copies, where they run, are what tests and mutation testing exercise.
    # pragma: no mutate start

    def _lend_idle(self) -> Slot[T] | None:  # pragma: no cover - runs as its inlined copies
        """Lend the next idle slot as it is, or None: the caller takes the slow path
        and passes on ``verdict``, why that slot was not lent (None: not judged)."""
        slot = verdict = None
        if self._idle:
            slot = self._pop_idle()
            if (
                self._plain
                or (self._recycle_only and self._clock() < slot.expires_at)
                or (verdict := self._verdict(slot, alive=True)) is None  # noqa: F841
            ):
                slot.state = LEASED
                slot.serial += 1
                self._in_use += 1
                if self._tracking:
                    self._track(slot)
            else:
                self._unpop_idle(slot)
                slot = None
        return slot

    def _return_plain(self, slot: Slot[T]) -> Slot[T] | None:  # pragma: no cover - inlined
        """Take back a leased slot when ``_plain_return``; returns it if it must be released."""
        stale = None
        self._in_use -= 1
        self._released += 1
        if slot.generation != self._generation:
            self._retire(slot)
            stale = slot
        elif self._waiting:
            stale = self._hand_over(slot)
        else:
            if self._stamp_returns:
                slot.returned_at = self._clock()
            slot.state = IDLE
            self._idle.append(slot)
        return stale

    # pragma: no mutate end

    # -- checkout ---------------------------------------------------------------

    def _checkout(self, verdict: str | None = None) -> Grant:
        """What a caller that found nothing to lend at once does next.

        ``verdict``: what ``_lend_idle`` just found of the next idle slot (with
        no await and no unlocking since), so its ``alive`` test is not run twice.

        Returns a slot (``LEASED``: done; ``CHECKING``: run ``check`` then
        ``_checked``; ``GONE``: it was stale, release it and then
        ``_replace``), ``CREATE`` (capacity is reserved: run the factory) or
        ``WAIT`` (queue with ``_enqueue``).

        Raises:
            PoolClosed, PoolUnavailable, PoolBusy.
        """
        if self._closed:
            raise self._closed_error()
        if self._idle:
            return self._claim(self._pop_idle(), verdict, alive=True)
        if len(self._slots) + self._creating + self._releasing < self._pool_size:
            if self._breaker.is_open:
                raise self._unavailable_error()
            self._creating += 1
            return CREATE
        if self._max_waiting is not None and self._waiting >= self._max_waiting:
            self._rejected += 1
            raise PoolBusy(
                f"pool {self._name!r}: {self._waiting} callers already wait (max_waiting="
                f"{self._max_waiting}); retry later, or raise pool_size or max_waiting"
            )
        return WAIT

    def _claim(self, slot: Slot[T], verdict: str | None, *, alive: bool) -> Slot[T]:
        """Judge an unleased slot for a caller: lend it, have it checked, or retire it.

        ``verdict``: the slot was judged just now, with this outcome.
        ``alive``: run the ``alive`` test too (not on a slot it just passed).
        """
        reason = self._verdict(slot, alive=alive) if verdict is None else verdict
        if reason is None or reason == "setup":
            self._lend(slot)
        elif reason == "check":
            slot.state = CHECKING
            self._checking += 1
        else:
            self._count_stale(reason)
            self._retire(slot)
        return slot

    def _checked(self, slot: Slot[T], ok: bool) -> Slot[T]:
        """The caller's ``check`` of a ``CHECKING`` slot ended: lend it, or retire it."""
        self._checking -= 1
        if ok and slot.generation == self._generation:
            self._lend(slot)
        else:
            if not ok:
                self._check_failures += 1
            self._retire(slot)
        return slot

    def _replace(self, claimed: bool) -> bool:
        """The releaser of a stale slot a caller took has finished (or failed).

        If the caller still waits for it (``claimed``) and may create, its
        capacity becomes that caller's creation: True. Otherwise it is freed.
        """
        self._releasing -= 1
        self._destroyed += 1
        if claimed and not self._closed and not self._breaker.is_open:
            self._creating += 1
            return True
        self._serve()
        self._check_drained()
        if self._needs_maintainer():
            self._nudge()
        return False

    def _lend(self, slot: Slot[T]) -> None:
        slot.state = LEASED
        slot.serial += 1
        self._in_use += 1
        if self._tracking:
            slot.leased_at = self._clock()

    def _enqueue(self, waiter: W, deadline: float | None = None) -> None:
        self._waiters.append((waiter, deadline))
        self._waiting += 1

    def _abandon(self) -> None:
        """A queued waiter left before it was granted anything."""
        self._waiting -= 1
        # Dead waiters are skipped lazily; compact so timeouts cannot grow the queue.
        if len(self._waiters) > 2 * self._waiting + 64:
            self._waiters = deque(entry for entry in self._waiters if not entry[0].done())

    def _note_wait(self, seconds: float) -> None:
        self._waits += 1
        self._wait_time_total += seconds
        if seconds > self._wait_time_max:
            self._wait_time_max = seconds

    def _refused(self, grant: Grant) -> Slot[T] | None:
        """A waiter was granted ``grant`` but left first: pass it on.

        Returns a slot the caller must release (it went stale meanwhile).
        """
        if grant is CREATE:
            self._unreserve()
        elif isinstance(grant, Slot):
            if grant.state == LEASED:
                grant.serial -= 1
                self._in_use -= 1
            elif grant.state == CHECKING:
                self._checking -= 1
            return self._place(grant)
        return None

    # -- creation ---------------------------------------------------------------

    def _has_room(self) -> bool:
        return len(self._slots) + self._creating + self._releasing < self._pool_size

    def _reserve(self) -> bool:
        """Reserve capacity for one creation if the pool is below its size."""
        if len(self._slots) + self._creating + self._releasing < self._pool_size:
            self._creating += 1
            return True
        return False

    def _unreserve(self, error: BaseException | None = None) -> None:
        """A reserved creation produced nothing; ``error`` is the factory's, if it raised."""
        self._creating -= 1
        if isinstance(error, Exception):
            self._factory_errors += 1
            self._breaker.failed(error, self._clock())
        elif self._breaker.probing:
            # A probe cancelled before it could tell: the next one must be able to run.
            self._breaker.probing = False
        self._serve()
        self._check_drained()
        if self._needs_maintainer():
            self._nudge()

    def _register(self, resource: T) -> Slot[T]:
        """A reserved creation produced ``resource``: it becomes a live slot (not yet placed).

        Raises:
            PoolError: the factory returned an object already in the pool.
        """
        key = id(resource)
        if key in self._slots:
            self._unreserve()
            raise PoolError(
                f"pool {self._name!r}: the factory returned a resource that is already "
                "in the pool; it must make a new object on every call"
            )
        self._creating -= 1
        now = self._clock()
        # A slot made for a pool that closed meanwhile is never current, so never pooled.
        slot: Slot[T] = Slot(
            resource, now, -1 if self._closed else self._generation, self._lifetime_end(now)
        )
        self._slots[key] = slot
        self._created += 1
        if self._breaker.failures:
            self._breaker.succeeded()
            self._serve()
        return slot

    def _plan_prefill(self, count: int | None) -> int:
        """Reserve the creations ``prefill(count)`` needs; returns how many.

        ``count`` is a target of idle resources that counts prefill's
        creations already in flight; the pool's size bounds it.
        """
        target = self._pool_size if count is None else min(count, self._pool_size)
        wanted = target - len(self._idle) - self._prefilling
        planned = 0
        while planned < wanted and self._reserve():
            planned += 1
        self._prefilling += planned
        return planned

    # -- return -----------------------------------------------------------------

    def _leased_slot(self, resource: object) -> Slot[T]:
        """The slot ``resource`` is leased under.

        Raises:
            PoolError: it is not leased from this pool; nothing changes.
        """
        slot = self._slots.get(id(resource))
        if slot is not None and slot.resource is resource and slot.state == LEASED:
            return slot
        if slot is not None and slot.resource is resource:
            raise PoolError(
                f"pool {self._name!r}: {resource!r} is not leased (it is idle in the pool "
                "or already being returned); release each acquired resource exactly once"
            )
        raise PoolError(
            f"pool {self._name!r}: {resource!r} was not acquired from this pool "
            "(or was already destroyed or detached); release resources only to the pool "
            "they came from"
        )

    def _take_back(self, slot: Slot[T], *, broken: bool) -> Slot[T] | None:
        """End a lease off the hot path.

        Returns the slot if the caller must release it (``broken``: one of
        ``discard_on`` or a ``BaseException`` ended the lease). Otherwise the
        slot is ``RESETTING`` (run ``reset``, then ``_reset_done``) or placed.
        """
        self._in_use -= 1
        self._released += 1
        if self._tracking:
            self._untrack(slot)
        if broken:
            self._discarded += 1
            self._retire(slot)
            return slot
        if self._has_reset:
            if self._alive is not None and not self._is_alive(slot):
                # Dead already (a lost connection): no reset to fail noisily.
                self._check_failures += 1
                self._retire(slot)
                return slot
            slot.state = RESETTING
            self._resetting += 1
            return None
        return self._settle(slot)

    def _reset_done(self, slot: Slot[T], ok: bool | None) -> Slot[T] | None:
        """``reset`` ended: it succeeded, failed (False) or was interrupted (None).

        Returns the slot if it must be released.
        """
        self._resetting -= 1
        if not ok:
            if ok is False:
                self._reset_errors += 1
            self._retire(slot)
            return slot
        return self._settle(slot)

    def _settle(self, slot: Slot[T]) -> Slot[T] | None:
        """Decide a returned slot's fate: pool it, or return it to be released."""
        if self._alive is not None and not self._is_alive(slot):
            self._check_failures += 1
        elif slot.generation != self._generation:
            pass
        elif self._max_uses is not None and slot.serial >= self._max_uses:
            self._recycled += 1
        elif self._shrinking and self._over_size():
            pass
        else:
            return self._place(slot)
        self._retire(slot)
        return slot

    def _place(self, slot: Slot[T]) -> Slot[T] | None:
        """Put an unleased slot to use: to the longest waiter, else idle.

        Returns the slot if it went stale first and must be released; its
        capacity then goes to the front waiter when the releaser finishes.
        """
        if slot.generation != self._generation:
            self._retire(slot)
            return slot
        if self._waiting:
            return self._hand_over(slot)
        if self._stamp_returns:
            slot.returned_at = self._clock()
        slot.state = IDLE
        self._idle.append(slot)
        return None

    def _hand_over(self, slot: Slot[T]) -> Slot[T] | None:
        """``_place`` when callers wait (every contended return): the longest
        live waiter gets ``slot`` lent, or to check; a stale one is returned."""
        if self._plain or (self._recycle_only and self._clock() < slot.expires_at):
            slot.state = LEASED
            slot.serial += 1
            self._in_use += 1
            if self._tracking:
                slot.leased_at = self._clock()
        elif self._claim(slot, None, alive=False).state == GONE:
            return slot
        if self._offer(slot):
            return None
        # Nobody took it (every waiter had left): pool it.
        if slot.state == LEASED:
            slot.serial -= 1
            self._in_use -= 1
        else:
            self._checking -= 1
        if self._stamp_returns:
            slot.returned_at = self._clock()
        slot.state = IDLE
        self._idle.append(slot)
        return None

    def _offer(self, grant: Grant) -> bool:
        """Hand ``grant`` to the longest live waiter; False if none takes it."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()[0]
            if waiter.done():
                continue
            self._waiting -= 1
            if waiter.set_result(grant) is not False:
                return True
        return False

    def _expire_due(self, now: float) -> float | None:
        """Expire the waiters at the front of the queue whose deadline is ``now`` or
        earlier (they get ``EXPIRED``). Returns the deadline of the new front
        (``math.inf`` if it has none), or None if nobody waits.

        Deadlines that arrived out of order are the async pool's own to expire.
        """
        waiters = self._waiters
        while waiters:
            waiter, deadline = waiters[0]
            if not waiter.done():
                if deadline is None:
                    return math.inf
                if deadline > now:
                    return deadline
                waiter.set_result(EXPIRED)
                self._waiting -= 1
            waiters.popleft()
        return None

    def _serve(self) -> None:
        """Capacity was freed or the pool closed: grant it to waiters, first come first served."""
        # Idle slots and live waiters never coexist: only capacity is granted here.
        while self._waiting:
            if self._closed:
                grant: Grant = CLOSED
            elif not self._has_room():
                return
            elif self._breaker.is_open:
                grant = UNAVAILABLE
                self._unavailable += 1
            else:
                grant = CREATE
                self._creating += 1
            if not self._offer(grant):
                if grant is CREATE:
                    self._creating -= 1
                elif grant is UNAVAILABLE:
                    self._unavailable -= 1
                return

    def _retire(self, slot: Slot[T]) -> None:
        """Take ``slot`` out of the pool; its capacity stays held until ``_release_done``."""
        del self._slots[id(slot.resource)]
        slot.state = GONE
        self._releasing += 1

    def _release_done(self) -> None:
        """The releaser finished (or failed) for a retired slot: free its capacity."""
        self._releasing -= 1
        self._destroyed += 1
        self._serve()
        self._check_drained()
        if self._needs_maintainer():
            self._nudge()

    def _detach(self, slot: Slot[T]) -> None:
        """A leased slot leaves the pool for good, unreleased: its capacity is free at once."""
        del self._slots[id(slot.resource)]
        slot.state = GONE
        self._in_use -= 1
        self._released += 1
        self._detached += 1
        if self._tracking:
            self._untrack(slot)
        self._serve()
        self._check_drained()
        if self._needs_maintainer():
            self._nudge()

    # -- lifecycle --------------------------------------------------------------

    def _take_all_idle(self) -> list[Slot[T]]:
        """Retire every idle slot; slots leased now are released when they come back."""
        self._generation += 1
        slots = list(self._idle)
        self._idle.clear()
        for slot in slots:
            self._retire(slot)
        return slots

    def _mark_closed(self) -> list[Slot[T]]:
        """Close in one step: refuse acquires, wake waiters, retire every idle slot."""
        self._closed = True
        slots = self._take_all_idle()
        self._serve()
        return slots

    def _mark_open(self) -> None:
        if self._closed:
            self._closed = False
            self._breaker.reset()

    def _resize(self, pool_size: int | None, min_size: int | None) -> list[Slot[T]]:
        """Change the bounds; returns idle slots to release now."""
        size = (
            self._pool_size
            if pool_size is None
            else check_count(
                "pool_size", pool_size, minimum=1, hint="the most resources alive at once"
            )
        )
        floor = (
            self._min_size
            if min_size is None
            else check_count("min_size", min_size, hint="the fewest resources to keep alive")
        )
        if floor > size:
            raise ValueError(
                f"min_size must be at most pool_size, got min_size={floor} > pool_size={size}"
            )
        self._pool_size, self._min_size = size, floor
        self._maintained = self._maintained or floor > 0
        retired: list[Slot[T]] = []
        while self._idle and self._over_size():
            slot = self._idle.popleft()
            self._retire(slot)
            retired.append(slot)
        self._shrinking = self._over_size()
        self._refresh_return_path()
        self._serve()
        return retired

    def _over_size(self) -> bool:
        # Slots being released are on their way out: they are not counted twice.
        over = len(self._slots) + self._creating > self._pool_size
        if not over and self._shrinking:
            self._shrinking = False
            self._refresh_return_path()
        return over

    def _check_drained(self) -> None:
        if self._closed and not self._slots and not self._creating and not self._releasing:
            self._drained()

    def _forget(self) -> None:
        """Drop every resource without touching it (its loop or process is gone).

        Leases still open on them become inert: their exit changes nothing. A
        creation still in flight made nothing the pool counted, so it is not
        counted abandoned either.
        """
        for slot in self._slots.values():
            slot.state = GONE
        self._abandoned += len(self._slots) + self._releasing
        self._lost_leases += self._in_use
        self._slots.clear()
        self._idle.clear()
        self._waiters.clear()
        self._creating = self._releasing = self._checking = self._resetting = 0
        self._in_use = self._waiting = self._prefilling = 0
        self._breaker.probing = False

    def _after_fork(self) -> None:  # pragma: no cover - overridden by both pools
        self._forget()

    # pragma: no mutate start
    # Runs only in a forked child, out of mutation testing's reach (tests/test_fork.py).
    def _keepalive(self) -> object:  # pragma: no cover - runs in the child
        """What must never be finalised in a forked child: every live slot."""
        return list(self._slots.values())

    # pragma: no mutate end


_live_pools: weakref.WeakSet[PoolCore[Any, Any]] = weakref.WeakSet()


#: What a forked child inherited from its pools: kept referenced, never finalised.
_inherited: list[object] = []


# pragma: no mutate start
def _after_fork_in_child() -> None:  # pragma: no cover - runs in the child (tests/test_fork.py)
    # The child shares the parent's sockets: it must never use or release them,
    # not even through a finaliser (asyncpg's would send Terminate on the
    # parent's connection), so the child keeps them, and their loop, alive.
    for pool in list(_live_pools):
        _inherited.append(pool._keepalive())
        pool._after_fork()


# pragma: no mutate end
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
