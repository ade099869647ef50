"""A ``ThreadPool`` lease the slow way, blocking in the caller's thread: what
it does when its resource is not ready at once (waiting, creating,
``alive``/``check``, ``setup``, replacing a stale one), and a return through
``alive``/``reset``.

Every outcome is reported to the state under the pool's lock; whatever
interrupts a call (a ``KeyboardInterrupt``, an exception) leaves the books
exact and the resource with a holder, in the pool, or being released.
"""

from __future__ import annotations

import time
from typing import Any, Generic, TypeVar

from escudeiro_pools._errors import PoolClosed
from escudeiro_pools._events import Observers
from escudeiro_pools._lease import Ending, ends_broken
from escudeiro_pools._protocol import CLOSED, CREATE, UNAVAILABLE, WAIT, Grant
from escudeiro_pools._site import call_site
from escudeiro_pools._slot import CHECKING, GONE, LEASED, RESETTING, Slot
from escudeiro_pools._thread_calls import ThreadCalls
from escudeiro_pools._thread_upkeep import ThreadUpkeep
from escudeiro_pools._waiters import ThreadWaiter

__all__ = ["Claim", "ThreadLeasing"]

T = TypeVar("T")
_monotonic = time.monotonic


class Claim:
    """An asyncio caller waits for blocking work done for it in a thread.

    If it leaves (cancelled) first, the thread hands the result back to the pool.
    """

    __slots__ = ("slot", "wanted")

    def __init__(self) -> None:
        self.wanted = True
        self.slot: Slot[Any] | None = None


class ThreadLeasing(Generic[T]):
    """Turns grants into leased slots, and returned slots back into pooled ones."""

    __slots__ = ("_calls", "_discard_on", "_events", "_state", "_upkeep", "has_setup", "plain")

    def __init__(
        self,
        upkeep: ThreadUpkeep[T],
        calls: ThreadCalls[T],
        events: Observers,
        has_setup: bool,
        discard_on: tuple[type[BaseException], ...],
    ) -> None:
        self._upkeep = upkeep
        self._state = upkeep.state
        self._calls = calls
        self._events = events
        self._discard_on = discard_on
        self.has_setup = has_setup
        #: A slot the state lends is the caller's as it is: no setup, no site to
        #: record, no observer to tell.
        self.plain = True
        self.refresh()

    def refresh(self) -> None:
        """Observers came or went: whether a lent slot still needs this path."""
        self.plain = not (
            self.has_setup or self._state.leak_timeout is not None or self._events.active
        )

    def queue(self) -> ThreadWaiter:
        """Under the lock: a waiter for a caller the state told to ``WAIT``."""
        waiter = ThreadWaiter()
        self._state.enqueue(waiter, None, waiter.started)
        return waiter

    def obtain(
        self,
        grant: Grant | ThreadWaiter,
        started: float,
        timeout: float | None,
        claim: Claim | None = None,
    ) -> Slot[T]:
        """Turn a grant into a leased slot within ``timeout`` seconds of ``started``.

        ``claim`` is set when an asyncio caller awaits this in a thread.

        Raises:
            PoolTimeout, PoolClosed, PoolUnavailable, PoolBusy: as ``acquire``.
            Exception: what the factory or ``setup`` raised.
        """
        deadline = None if timeout is None else started + timeout
        # What observers are told this caller waited: nothing if it was lent at once.
        since = None if isinstance(grant, Slot) and grant.state == LEASED else started
        while True:
            if type(grant) is ThreadWaiter:
                grant = self._wait(grant, deadline, timeout)
                if type(grant) is Slot and grant.state == LEASED and self.plain:
                    return grant
            if grant is CLOSED or grant is UNAVAILABLE:
                raise self._refusal(grant)
            if grant is CREATE:
                slot = self._create(deadline, timeout)
            else:
                assert isinstance(grant, Slot)
                slot = grant
                if slot.state == CHECKING:
                    slot = self._inspect(slot)
            if slot.state == LEASED:
                return self._deliver(slot, since, claim)
            # A stale slot: this caller releases it, then gets what comes next.
            grant = self._replace(slot, deadline, timeout, claim)

    def _wait(self, waiter: ThreadWaiter, deadline: float | None, timeout: float | None) -> Grant:
        interrupted: BaseException | None = None
        try:
            if deadline is None:
                woken = waiter.signal.acquire()
            else:
                woken = waiter.signal.acquire(timeout=max(0.0, deadline - _monotonic()))
            if woken:
                # Granted (the grant is set before the signal): no need for the lock.
                grant: Grant = waiter.grant
                return grant
        except BaseException as exc:
            interrupted = exc
        stale = None
        with self._upkeep.lock:
            grant = waiter.grant
            if waiter.grant is None:  # still queued: leave the queue
                waiter.left = True
                self._state.left_queue(waiter.started)
                if interrupted is None:
                    raise self._state.timeout_error(timeout, "waiting")
            elif interrupted is not None:
                stale = self._state.refuse(grant)
        if interrupted is not None:
            if stale is not None:
                self._upkeep.release_all([stale])
            raise interrupted
        return grant

    def _refusal(self, grant: Grant) -> Exception:
        if grant is CLOSED:
            return PoolClosed(f"pool {self._state.name!r} was closed while waiting for a resource")
        with self._upkeep.lock:
            return self._state.unavailable_error(counted=True)

    def _deliver(self, slot: Slot[T], since: float | None, claim: Claim | None) -> Slot[T]:
        """A slot lent to this caller: run ``setup``, record the site, tell the
        observers; on any failure it is released and the error raised. For an
        asyncio caller (``claim``) the site and observers wait for its loop."""
        upkeep = self._upkeep
        try:
            if self.has_setup:
                self._calls.setup(slot.resource)
            if claim is None:
                self.lent_here(slot, since)
        except BaseException:
            with upkeep.lock:
                stale = self._state.end_lease(slot, slot.serial, "broken")
            if stale is not None:
                upkeep.release_all([stale])
            raise
        if claim is None:
            return slot
        with upkeep.lock:
            if claim.wanted:
                claim.slot = slot
                return slot
            # The asyncio caller left while this thread worked for it.
            stale = self._state.refuse(slot)
        if stale is not None:
            upkeep.release_all([stale])
        return slot

    def lent_here(self, slot: Slot[T], since: float | None) -> None:
        """Record where ``slot`` was lent (the calling frame's site) and tell the observers."""
        if self._state.leak_timeout is not None:
            site = call_site()
            with self._upkeep.lock:
                self._state.watch(slot, site)
        if self._events.active:
            self._events.lent(slot.resource, 0.0 if since is None else _monotonic() - since)

    def _create(self, deadline: float | None, timeout: float | None) -> Slot[T]:
        """Run the factory under a reservation; lend the new slot if still in time.

        A blocking factory cannot be cut off: one that returns late has its
        resource pooled for the next caller while this one times out.
        """
        upkeep = self._upkeep
        try:
            resource, seconds = self._calls.create()
        except BaseException as exc:
            with upkeep.lock:
                self._state.creation_failed(exc)
            raise
        with upkeep.lock:
            in_time = deadline is None or _monotonic() <= deadline
            slot = self._state.creation_done(resource, for_caller=in_time)
            late = None if in_time else self._state.timeout_error(timeout, "creating")
        upkeep.created(seconds, slot)
        if late is not None:
            if slot.state == GONE:
                upkeep.release_all([slot])
            raise late
        # GONE (the pool closed meanwhile): the caller releases it and is refused.
        return slot

    def _inspect(self, slot: Slot[T]) -> Slot[T]:
        upkeep = self._upkeep
        try:
            fate = self._calls.inspect(slot)
        except BaseException:
            # Interrupted mid-check: its state is unknown, so it is not pooled again.
            with upkeep.lock:
                stale = self._state.checked(slot, "check" if slot.needs_check else "alive")
            upkeep.release_all([stale])
            raise
        with upkeep.lock:
            return self._state.checked(slot, fate)

    def _replace(
        self, slot: Slot[T], deadline: float | None, timeout: float | None, claim: Claim | None
    ) -> Grant | ThreadWaiter:
        """Release a stale ``slot``, then take what its capacity allows (``replaced``)."""
        upkeep = self._upkeep
        interrupted: BaseException | None = None
        error = None
        try:
            error = self._calls.release(slot.resource)
        except BaseException as exc:
            interrupted = exc
        try:
            with upkeep.lock:
                wanted = interrupted is None and (claim is None or claim.wanted)
                in_time = deadline is None or _monotonic() <= deadline
                failed = error is not None or interrupted is not None
                grant: Grant | ThreadWaiter = self._state.replaced(
                    wanted and in_time, failed=failed
                )
                if wanted and not in_time:
                    raise self._state.timeout_error(timeout, "releasing a stale resource")
                if grant is WAIT and wanted:
                    grant = self.queue()
        finally:
            upkeep.destroyed(slot)
        if interrupted is not None:
            raise interrupted
        if not wanted:
            raise PoolClosed(f"pool {self._state.name!r}: the caller left")
        return grant

    # -- return ---------------------------------------------------------------------

    def end(self, slot: Slot[T], serial: int, how: Ending) -> Slot[T] | None:
        """End the lease ``serial`` of ``slot`` in the books; the slot if it needs
        ``reset`` or the releaser next (a no-op if the lease already ended)."""
        fate = "broken" if ends_broken(how, self._discard_on) else ""
        events = self._events
        with self._upkeep.lock:
            ended = slot.state == LEASED and slot.serial == serial
            # Before the books: ending the lease may wake a waiter that is lent it at once.
            began = events.take_back(slot.resource) if ended and events.active else None
            back = self._state.end_lease(slot, serial, fate)
        if ended and events.active:
            events.tell_returned(slot.resource, began)
        return back

    def after_return(self, slot: Slot[T]) -> None:
        """A returned slot that needs work: ``alive``/``reset``, or the releaser."""
        upkeep = self._upkeep
        back: Slot[T] | None = slot
        if slot.state == RESETTING:
            try:
                fate = self._calls.restore(slot)
            except BaseException:
                # Interrupted mid-reset: the resource's state is unknown, so it is released.
                with upkeep.lock:
                    stale = self._state.returned(slot, "broken")
                if stale is not None:
                    upkeep.release_all([stale])
                raise
            with upkeep.lock:
                back = self._state.returned(slot, fate)
        if back is not None:
            upkeep.release_all([back])
