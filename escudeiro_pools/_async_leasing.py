"""An ``AsyncPool`` lease the slow way: what a caller awaits when its resource
is not ready at once (waiting, creating, ``alive``/``check``, ``setup``,
replacing a stale one), and a return through ``alive``/``reset``.

Every outcome is reported to the pool's state; whatever interrupts an await
(a deadline, a cancellation, an exception) leaves the books exact and the
resource with a holder, in the pool, or being released.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Generic, TypeVar

from escudeiro_pools._async_calls import AsyncCalls
from escudeiro_pools._async_upkeep import AsyncUpkeep, Claim
from escudeiro_pools._errors import PoolClosed, PoolError
from escudeiro_pools._events import Observers
from escudeiro_pools._protocol import CLOSED, CREATE, EXPIRED, WAIT, Grant, _Token
from escudeiro_pools._site import call_site
from escudeiro_pools._slot import CHECKING, LEASED, Slot

__all__ = ["AsyncLeasing"]

T = TypeVar("T")
_monotonic = time.monotonic


class AsyncLeasing(Generic[T]):
    """Turns grants into leased slots, and returned slots back into pooled ones."""

    __slots__ = ("_calls", "_events", "_has_setup", "_state", "_upkeep", "plain")

    def __init__(
        self, upkeep: AsyncUpkeep[T], calls: AsyncCalls[T], events: Observers, has_setup: bool
    ) -> None:
        self._upkeep = upkeep
        self._state = upkeep.state
        self._calls = calls
        self._events = events
        self._has_setup = has_setup
        #: A slot the state lends is the caller's as it is: no setup, no site to
        #: record, no observer to tell.
        self.plain = True
        self.refresh()

    def refresh(self) -> None:
        """Observers came or went: whether a lent slot still needs this path."""
        self.plain = not (
            self._has_setup or self._state.leak_timeout is not None or self._events.active
        )

    async def obtain(self, grant: Grant, timeout: float | None) -> Slot[T]:
        """Turn ``grant`` into a leased slot within ``timeout`` seconds.

        Raises:
            PoolTimeout, PoolClosed, PoolUnavailable, PoolBusy: as ``acquire``.
            Exception: what the factory or ``setup`` raised.
        """
        binding = self._upkeep.binding
        assert binding is not None
        state = self._state
        started = _monotonic()
        deadline = None
        if timeout is not None:
            deadline = (started if binding.monotonic else binding.time()) + timeout
        # What observers are told this caller waited: nothing if it was lent at once.
        since = None if isinstance(grant, Slot) and grant.state == LEASED else started
        while True:
            if grant is WAIT:
                waiter = binding.new_future()
                state.enqueue(waiter, deadline, started)
                binding.deadlines.queued(deadline, waiter, started)
                try:
                    grant = await waiter
                except BaseException:
                    if self._upkeep.on_loop(binding):
                        self._leave_queue(waiter, started)
                    raise
                if type(grant) is Slot and grant.state == LEASED and self.plain:
                    return grant
                if type(grant) is _Token and grant is not CREATE:
                    raise self._refusal(grant, timeout)
            if grant is CREATE:
                slot = await self._create(deadline, timeout)
            else:
                assert isinstance(grant, Slot)
                slot = grant
                if slot.state == CHECKING:
                    slot = await self._inspect(slot, deadline, timeout)
            if slot.state == LEASED:
                await self._deliver(slot, since, deadline, timeout)
                return slot
            # A stale slot: this caller releases it, then gets what comes next.
            grant = await self._replace(slot, deadline, timeout)

    def _refusal(self, grant: _Token, timeout: float | None) -> PoolError:
        if grant is EXPIRED:
            return self._state.timeout_error(timeout, "waiting")
        if grant is CLOSED:
            return PoolClosed(f"pool {self._state.name!r} was closed while waiting for a resource")
        return self._state.unavailable_error(counted=True)

    def _leave_queue(self, waiter: asyncio.Future[Any], started: float) -> None:
        """The caller stopped waiting (cancelled): pass on what it was granted, if any."""
        if not waiter.done() or waiter.cancelled():
            waiter.cancel()
            self._state.left_queue(started)
            return
        stale = self._state.refuse(waiter.result())
        if stale is not None:
            self._upkeep.spawn_release(stale)

    async def _deliver(
        self, slot: Slot[T], since: float | None, deadline: float | None, timeout: float | None
    ) -> None:
        """A slot lent to this caller: run ``setup``, record the site, tell the
        observers; on any failure the slot is released and the error raised."""
        binding = self._upkeep.binding
        scope = None
        try:
            if self._has_setup:
                async with asyncio.timeout_at(deadline) as scope:
                    await self._calls.setup(slot.resource)
            if self._state.leak_timeout is not None:
                self._state.watch(slot, call_site())
            if self._events.active:
                self._events.lent(slot.resource, 0.0 if since is None else _monotonic() - since)
        except BaseException as exc:
            if self._upkeep.on_loop(binding):
                stale = self._state.end_lease(slot, slot.serial, "broken")
                if stale is not None:
                    self._upkeep.spawn_release(stale)
            if isinstance(exc, TimeoutError) and scope is not None and scope.expired():
                raise self._state.timeout_error(timeout, "setting up") from None
            raise

    async def _create(self, deadline: float | None, timeout: float | None) -> Slot[T]:
        """Run the factory under the capacity this caller reserved; lend what it made."""
        upkeep = self._upkeep
        binding = upkeep.binding
        try:
            async with asyncio.timeout_at(deadline) as scope:
                resource, seconds = await self._calls.create()
        except BaseException as exc:
            # A factory cut off by the deadline is a failed attempt, as one that raised.
            cut = isinstance(exc, TimeoutError) and scope.expired()
            if upkeep.on_loop(binding):
                self._state.creation_failed(upkeep.cut_off(timeout) if cut else exc)
            if cut:
                raise self._state.timeout_error(timeout, "creating") from None
            raise
        slot = self._state.creation_done(resource, for_caller=True)
        upkeep.created(seconds, slot)
        return slot

    async def _inspect(
        self, slot: Slot[T], deadline: float | None, timeout: float | None
    ) -> Slot[T]:
        binding = self._upkeep.binding
        try:
            async with asyncio.timeout_at(deadline) as scope:
                fate = await self._calls.inspect(slot)
        except BaseException as exc:
            # Interrupted mid-check: its state is unknown, so it is not pooled again.
            if self._upkeep.on_loop(binding):
                interrupted = "check" if slot.needs_check else "alive"
                self._upkeep.spawn_release(self._state.checked(slot, interrupted))
            if isinstance(exc, TimeoutError) and scope.expired():
                raise self._state.timeout_error(timeout, "checking") from None
            raise
        return self._state.checked(slot, fate)

    async def _replace(self, slot: Slot[T], deadline: float | None, timeout: float | None) -> Grant:
        """Release a stale ``slot``, then take what its capacity allows (``replaced``)."""
        claim = Claim()
        upkeep = self._upkeep
        binding = upkeep.binding
        task = upkeep.spawn_release(slot, claim)
        try:
            async with asyncio.timeout_at(deadline) as scope:
                await asyncio.shield(task)
        except BaseException as exc:
            claim.wanted = False
            if claim.grant is not None and upkeep.on_loop(binding):  # it finished just now
                stale = self._state.refuse(claim.grant)
                if stale is not None:
                    upkeep.spawn_release(stale)
            if isinstance(exc, TimeoutError) and scope.expired():
                raise self._state.timeout_error(timeout, "releasing a stale resource") from None
            raise
        if claim.error is not None:
            raise claim.error
        assert claim.grant is not None
        return claim.grant

    async def restore(self, slot: Slot[T]) -> None:
        """Run ``alive``/``reset`` on a returned slot, then pool or release it."""
        upkeep = self._upkeep
        binding = upkeep.binding
        try:
            fate = await self._calls.restore(slot)
        except BaseException:
            # Interrupted mid-reset: the resource's state is unknown, so it is released.
            if upkeep.on_loop(binding):
                stale = self._state.returned(slot, "broken")
                if stale is not None:
                    upkeep.spawn_release(stale)
            raise
        stale = self._state.returned(slot, fate)
        if stale is not None:
            upkeep.spawn_release(stale)
