"""The one owner of a pool's state: its transitions.

Both pools hold a ``PoolState`` and change their state only through its
methods (the thread pool under its lock). A method decides, changes the
books and returns what the pool must do next: lend a slot, run ``alive``,
``check`` or ``reset`` on it and report back, run the factory under the
capacity it reserved, release a retired slot, or wait. It never awaits,
blocks or calls the user's code, so every transition completes and keeps
the books; the pools run the I/O outside and report its outcome. The books
themselves (fields, capacity, readings) are ``_books.Books``, its base.
"""

from __future__ import annotations

from asyncio import CancelledError
from typing import TypeVar

from escudeiro_pools import _maintenance, _report
from escudeiro_pools._books import Books
from escudeiro_pools._errors import PoolClosed, PoolError
from escudeiro_pools._lifetimes import lifetime_end, stale_reason
from escudeiro_pools._options import check_count
from escudeiro_pools._protocol import CREATE, WAIT, Grant
from escudeiro_pools._slot import CHECKING, GONE, IDLE, LEASED, RESETTING, Slot

__all__ = ["PoolState"]

T = TypeVar("T")


class PoolState(Books[T]):
    """A pool's books with every transition that changes them.

    Idle slots and live waiters are never both present; ``size`` never
    exceeds ``pool_size`` once the leases taken before a shrink are back.
    """

    __slots__ = ()

    # -- checkout -------------------------------------------------------------------

    def checkout(self) -> Grant:
        """What a caller gets now.

        Returns a slot — ``LEASED``: it is the caller's; ``CHECKING``: run
        ``alive`` (and ``check`` if ``needs_check``), then ``checked``;
        ``GONE``: it was stale, release it, then ``replaced`` — or ``CREATE``
        (capacity is reserved: run the factory, then ``created`` or
        ``creation_failed``) or ``WAIT`` (queue with ``enqueue``).

        Raises:
            PoolClosed, PoolUnavailable, PoolBusy.
        """
        if self.idle:
            slot = self._pop_idle()
            if self.plain or (self.recycle_only and self.clock() < slot.expires_at):
                slot.state = LEASED
                slot.serial += 1
                self.in_use += 1
                if self.tracking:
                    self._stamp(slot)
                return slot
            return self._judge(slot, alive=True)
        if self.closed:
            raise self.closed_error()
        if self.has_room():
            if self.breaker.is_open:
                raise self.unavailable_error()
            self.creating += 1
            return CREATE
        if self.max_waiting is not None and self.queue.waiting >= self.max_waiting:
            self.rejected += 1
            raise _report.busy_error(self)
        return WAIT

    def _judge(self, slot: Slot[T], *, alive: bool) -> Slot[T]:
        """An unleased slot for a caller: lend it, have it checked, or retire it."""
        reason = (
            stale_reason(slot, self.clock(), self.max_idle, self.check_after)
            if self.timed
            else None
        )
        if reason is None or reason == "check":
            if reason is None and not (alive and self.has_alive):
                self._lend(slot)
                return slot
            slot.state = CHECKING
            slot.needs_check = reason == "check"
            self.checking += 1
            return slot
        if reason == "recycled":
            self.recycled += 1
        else:
            self.idle_expired += 1
        self._retire(slot, reason)
        return slot

    def checked(self, slot: Slot[T], fate: str | None) -> Slot[T]:
        """``alive``/``check`` of a ``CHECKING`` slot ended: passed (``fate`` None),
        or failed or was interrupted (``fate``: ``"alive"`` or ``"check"``).

        Returns the slot: ``LEASED`` to the caller, or ``GONE`` (release it, then
        ``replaced``).
        """
        self.checking -= 1
        if fate is None and slot.generation == self.generation:
            if slot.needs_check:
                slot.checked_at = self.clock()
            self._lend(slot)
            return slot
        if fate is not None:
            self.check_failures += 1
        self._retire(slot, fate or self.generation_fate)
        return slot

    def replaced(self, claimed: bool, *, failed: bool = False) -> Grant:
        """The releaser of a stale slot a caller met has finished (``failed``: it raised).

        ``claimed``: the caller still wants a resource. Its capacity becomes the
        caller's creation (``CREATE``) if the pool may create; otherwise it is
        freed and the caller gets what ``checkout`` says (``WAIT`` if it left).

        Raises:
            PoolClosed, PoolUnavailable, PoolBusy: as ``checkout``.
        """
        self.releasing -= 1
        self.destroyed += 1
        if failed:
            self.releaser_errors += 1
        if claimed and not self.closed and not self.breaker.is_open and self.has_room():
            self.creating += 1
            return CREATE
        self._freed()
        return self.checkout() if claimed else WAIT

    def set_tracking(self, observed: bool) -> None:
        """Observers were attached (``observed``) or all removed: lease ages are
        tracked while any is, or while the leak watch is on."""
        tracking = self.leak_timeout is not None or observed
        if tracking and not self.tracking:
            # Leases already out were never stamped: their age counts from now.
            now = self.clock()
            for slot in self.slots.values():
                if slot.state == LEASED:
                    slot.leased_at = now
        self.tracking = tracking
        self._refresh_return_path()

    def watch(self, slot: Slot[T], site: str) -> None:
        """Tracking is on: a leased slot's holder was acquired at ``site``."""
        if slot.state == LEASED:
            slot.site = site
            if self.leak_timeout is not None:
                self.signals._wake_maintainer()

    # -- waiters --------------------------------------------------------------------

    def refuse(self, grant: Grant) -> Slot[T] | None:
        """A waiter was granted ``grant`` but left first: pass it on.

        Returns a slot the caller must release (it went stale meanwhile).
        """
        if grant is CREATE:
            self.creating -= 1
            self._freed()
        elif isinstance(grant, Slot):
            if grant.state == LEASED:
                grant.serial -= 1
                self.in_use -= 1
            elif grant.state == CHECKING:
                self.checking -= 1
            else:
                return grant  # GONE: a stale slot met after a replacement
            return self._place(grant)
        return None

    # -- creation -------------------------------------------------------------------

    def plan_prefill(self, count: int | None) -> int:
        """Reserve the creations ``prefill(count)`` needs; returns how many.

        ``count`` is a target of idle resources that counts prefill's
        creations already in flight; the pool's size bounds it.

        Raises:
            PoolClosed: the pool is closed.
            PoolUnavailable: the factory keeps failing (the breaker is open).
        """
        if self.closed:
            raise PoolClosed(f"pool {self.name!r} is closed; call open() before prefill()")
        target = self.pool_size if count is None else min(count, self.pool_size)
        wanted = target - len(self.idle) - self.prefilling
        if wanted > 0 and self.breaker.is_open:
            raise self.unavailable_error(counted=True)
        planned = 0
        while planned < wanted and self._reserve():
            planned += 1
        self.prefilling += planned
        return planned

    def creation_done(self, resource: T, *, for_caller: bool, prefill: bool = False) -> Slot[T]:
        """A reserved creation produced ``resource``.

        ``for_caller``: it is lent to the caller that reserved (``LEASED``).
        Otherwise it is put to use (to a waiter, or idle). ``GONE`` when the
        pool closed (or, not for a caller, shrank) meanwhile: release it then.

        Raises:
            PoolError: the factory returned an object already in the pool.
        """
        self.creating -= 1
        if prefill:
            self.prefilling -= 1
        key = id(resource)
        if key in self.slots:
            self._freed()
            raise PoolError(
                f"pool {self.name!r}: the factory returned a resource that is already "
                "in the pool; it must make a new object on every call"
            )
        now = self.clock()
        # A slot made for a pool that closed meanwhile is never current, so never pooled.
        generation = -1 if self.closed else self.generation
        slot: Slot[T] = Slot(
            resource, now, generation, lifetime_end(now, self.recycle, self.jitter)
        )
        self.slots[key] = slot
        self.created += 1
        breaker = self.breaker
        if breaker.failures or breaker.probing:
            breaker.succeeded()
            self._serve()
        self.signals._progressed()
        if generation != self.generation:
            # A closed pool lends nothing new: the caller gets ``PoolClosed``.
            self._retire(slot, "closed")
        elif for_caller:
            self._lend(slot)
        elif len(self.slots) + self.creating > self.pool_size:
            # The pool shrank while this was made: it would be one too many.
            self._retire(slot, "shrunk")
        else:
            self._place(slot)
        return slot

    def creation_failed(self, error: BaseException, *, prefill: bool = False) -> None:
        """A reserved creation produced nothing.

        An ``Exception`` (a deadline that cut it off included) is a failed
        attempt: it counts toward the breaker and its backoff. A cancellation
        only gives the capacity back; so does an interrupt, which also holds
        the maintainer back for one backoff step.
        """
        self.creating -= 1
        if prefill:
            self.prefilling -= 1
        if isinstance(error, Exception):
            self.factory_errors += 1
            self.breaker.failed(error, self.clock())
        elif isinstance(error, CancelledError):
            self.breaker.probe_ended()
        else:
            self.breaker.interrupted(self.clock())
        self._freed()

    # -- return ---------------------------------------------------------------------

    def give_back(self, resource: object) -> Slot[T] | None:
        """``release(resource)``: end its lease.

        Returns None (pooled or handed over), or a slot: ``RESETTING`` (run
        ``alive``/``reset``, then ``returned``) or ``GONE`` (release it).

        Raises:
            PoolError: it is not leased from this pool; nothing changes.
        """
        slot = self.slots.get(id(resource))
        if slot is None or slot.resource is not resource or slot.state != LEASED:
            raise _report.not_leased(self.name, resource, slot is not None)
        return self.end_lease(slot, slot.serial)

    def end_lease(self, slot: Slot[T], serial: int, fate: str = "") -> Slot[T] | None:
        """A lease's exit: as ``give_back``, or a no-op if the lease already ended
        (released, discarded, detached or forgotten inside the block).

        ``fate`` (``"broken"``, ``"discarded"``): the slot is released, not reset.
        """
        if slot.state != LEASED or slot.serial != serial:
            return None
        self.in_use -= 1
        self.released += 1
        if self.plain_return and not fate:
            if slot.generation != self.generation:
                self._retire(slot, self.generation_fate)
                return slot
            if self.queue.waiting:
                return self._hand_over(slot)
            if self.stamp_returns:
                slot.returned_at = self.clock()
            slot.state = IDLE
            self.idle.append(slot)
            return None
        slot.site = None
        if fate:
            self.discarded += 1
            self._retire(slot, fate)
            return slot
        if self.return_work:
            slot.state = RESETTING
            self.resetting += 1
            return slot
        return self._settle(slot)

    def discard(self, resource: object) -> Slot[T]:
        """``discard(resource)``: end its lease; returns the slot to release.

        Raises:
            PoolError: it is not leased from this pool.
        """
        slot = self.slots.get(id(resource))
        if slot is None or slot.resource is not resource or slot.state != LEASED:
            raise _report.not_leased(self.name, resource, slot is not None)
        self.end_lease(slot, slot.serial, "discarded")
        return slot

    def returned(self, slot: Slot[T], fate: str | None) -> Slot[T] | None:
        """``alive``/``reset`` of a ``RESETTING`` slot ended: it passed (``fate``
        None), or ``"alive"`` found it dead, ``"reset"`` failed, ``"broken"``:
        interrupted. Returns the slot if it must be released."""
        self.resetting -= 1
        if fate is None:
            return self._settle(slot)
        if fate == "alive":
            self.check_failures += 1
        elif fate == "reset":
            self.reset_errors += 1
        self._retire(slot, fate)
        return slot

    def _settle(self, slot: Slot[T]) -> Slot[T] | None:
        """Decide a returned slot's fate: pool it, or return it to be released."""
        if slot.generation != self.generation:
            self._retire(slot, self.generation_fate)
        elif self.max_uses is not None and slot.serial >= self.max_uses:
            self.recycled += 1
            self._retire(slot, "max_uses")
        elif self.shrinking and self._over_size():
            self._retire(slot, "shrunk")
        else:
            return self._place(slot)
        return slot

    def _place(self, slot: Slot[T]) -> Slot[T] | None:
        """Put an unleased slot to use: to the longest waiter, else idle.

        Returns the slot if it went stale first and must be released; its
        capacity then goes to the front waiter when the releaser finishes.
        """
        if slot.generation != self.generation:
            self._retire(slot, self.generation_fate)
            return slot
        if self.queue.waiting:
            return self._hand_over(slot)
        if self.stamp_returns:
            slot.returned_at = self.clock()
        slot.state = IDLE
        self.idle.append(slot)
        return None

    def _hand_over(self, slot: Slot[T]) -> Slot[T] | None:
        """``_place`` when callers wait (every contended return): the longest
        live waiter gets ``slot`` lent, or to check; a stale one is returned."""
        if self.stamp_returns:
            # Passed from hand to hand, it was never idle: its idle time starts now.
            slot.returned_at = self.clock()
        if self.plain or (self.recycle_only and self.clock() < slot.expires_at):
            self._lend(slot)
        elif self._judge(slot, alive=False).state == GONE:
            return slot
        if self.queue.offer(slot):
            return None
        # Nobody took it (every waiter had left): pool it.
        if slot.state == LEASED:
            slot.serial -= 1
            self.in_use -= 1
        else:
            self.checking -= 1
        if self.stamp_returns:
            slot.returned_at = self.clock()
        slot.state = IDLE
        self.idle.append(slot)
        return None

    def detach(self, resource: object) -> None:
        """A leased resource leaves the pool for good, unreleased: its capacity is free at once.

        Raises:
            PoolError: it is not leased from this pool.
        """
        slot = self.slots.get(id(resource))
        if slot is None or slot.resource is not resource or slot.state != LEASED:
            raise _report.not_leased(self.name, resource, slot is not None)
        del self.slots[id(resource)]
        slot.state = GONE
        self.in_use -= 1
        self.released += 1
        self.detached += 1
        self._freed()

    # -- lifecycle ------------------------------------------------------------------

    def take_all_idle(self, fate: str = "disposed") -> list[Slot[T]]:
        """Retire every idle slot; slots leased now are released when they come back."""
        self.generation += 1
        self.generation_fate = fate
        slots = list(self.idle)
        self.idle.clear()
        for slot in slots:
            self._retire(slot, fate)
        return slots

    def close(self) -> list[Slot[T]]:
        """Refuse acquires, grant ``CLOSED`` to waiters, retire every idle slot (to release)."""
        self.closed = True
        slots = self.take_all_idle("closed")
        self._serve()
        self.signals._progressed()
        self._freed()
        return slots

    def open(self) -> None:
        if self.closed:
            self.closed = False
            self.breaker.reset()

    def resize(self, pool_size: int | None, min_size: int | None) -> list[Slot[T]]:
        """Change the bounds; returns the idle slots beyond the new size (to release).

        Raises:
            TypeError, ValueError: a bad size; nothing changes.
        """
        size = self.pool_size
        if pool_size is not None:
            size = check_count(
                "pool_size", pool_size, minimum=1, hint="the most resources alive at once"
            )
        floor = self.min_size
        if min_size is not None:
            floor = check_count("min_size", min_size, hint="the fewest resources to keep alive")
        if floor > size:
            raise ValueError(
                f"min_size must be at most pool_size, got min_size={floor} > pool_size={size}"
            )
        self.pool_size, self.min_size = size, floor
        self.peak_size = max(self.peak_size, size)
        self.maintained = self.maintained or floor > 0
        retired: list[Slot[T]] = []
        # Idle slots make way only for each other: creations in flight are
        # retired themselves when they land beyond the size (``creation_done``).
        while self.idle and len(self.slots) > size:
            slot = self.idle.popleft()
            self._retire(slot, "shrunk")
            retired.append(slot)
        self.shrinking = self._over_size()
        self._refresh_return_path()
        self._serve()
        self.signals._progressed()
        if self.needs_maintainer():
            self.signals._wake_maintainer()
        return retired

    # -- the maintainer ---------------------------------------------------------------

    def maintain(self) -> _maintenance.Plan[T]:
        """The maintainer's next step (see ``_maintenance.plan``): its slots are
        retired (to release), its leaks counted (to report) and its creations
        reserved (to run)."""
        plan = _maintenance.plan(self, self.clock())
        for slot, fate in plan.retire:
            self.idle.remove(slot)
            if fate == "recycled":
                self.recycled += 1
            else:
                self.idle_expired += 1
            self._retire(slot, fate)
        for slot in plan.leaks:
            self.leaks += 1
            slot.warned = slot.serial
        wanted, plan.creations = plan.creations, 0
        while plan.creations < wanted and self._reserve():
            plan.creations += 1
        if plan.creations and plan.probe:
            self.breaker.start_probe()
        return plan
