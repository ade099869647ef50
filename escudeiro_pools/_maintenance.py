"""What the maintainer does next: a pure reading of the pool's state.

Keeps ``min_size`` alive, releases idle slots beyond it once past
``max_idle``, replaces idle slots about to reach their lifetime, reports
leases held past ``leak_timeout``, and while the breaker is open probes the
factory once per backoff. ``PoolState.maintain`` applies the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from escudeiro_pools._lifetimes import lookahead
from escudeiro_pools._slot import LEASED, Slot

if TYPE_CHECKING:
    from escudeiro_pools._state import PoolState

__all__ = ["Plan", "plan"]

T = TypeVar("T")


@dataclass(slots=True)
class Plan(Generic[T]):
    """Idle slots to retire (with why), leases to report, creations to run,
    whether the one creation is the breaker's probe, and when to look again
    (clock time; None: only when woken)."""

    retire: list[tuple[Slot[T], str]] = field(default_factory=list)
    leaks: list[Slot[T]] = field(default_factory=list)
    creations: int = 0
    probe: bool = False
    wake: float | None = None


def plan(state: PoolState[Any], now: float) -> Plan[Any]:
    """The maintainer's next step at ``now``; changes nothing."""
    result: Plan[Any] = Plan()
    if state.closed:
        return result
    wake = math.inf
    live = len(state.slots)
    if state.max_idle is not None:
        # A resource returned after this look expires max_idle after its return.
        wake = now + state.max_idle
        # Oldest returns sit on the left, whichever the order.
        for slot in state.idle:
            if live <= state.min_size:
                break
            if now - slot.returned_at < state.max_idle:
                wake = slot.returned_at + state.max_idle
                break
            result.retire.append((slot, "idle"))
            live -= 1
    if state.recycle is not None and state.min_size:
        lead = lookahead(state.recycle)
        leaving = {id(slot) for slot, _ in result.retire}
        for slot in state.idle:
            if slot.expires_at - lead <= now and id(slot) not in leaving:
                result.retire.append((slot, "recycled"))
                live -= 1
        # Leased ones too: they may be idle by then.
        for slot in state.slots.values():
            if slot.expires_at - lead > now:
                wake = min(wake, slot.expires_at - lead)
    if state.leak_timeout is not None:
        for slot in state.slots.values():
            if slot.state != LEASED or slot.warned == slot.serial:
                continue
            due = slot.leased_at + state.leak_timeout
            if due <= now:
                result.leaks.append(slot)
            else:
                wake = min(wake, due)
    breaker = state.breaker
    missing = state.min_size - (live + state.creating)
    if breaker.is_open:
        if not breaker.probing and breaker.retry_at <= now:
            result.creations = 1
            result.probe = True
        elif not breaker.probing:
            wake = min(wake, breaker.retry_at)
    elif missing > 0:
        if breaker.retry_at > now:
            wake = min(wake, breaker.retry_at)
        else:
            result.creations = missing
    result.wake = None if wake == math.inf else wake
    return result
