"""The documented identities of a pool's state, checked in one place.

``PoolState.check_invariants`` runs this; the test suite runs it after every
transition, production never does.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from escudeiro_pools._slot import CHECKING, GONE, IDLE, LEASED, RESETTING

if TYPE_CHECKING:
    from escudeiro_pools._books import Books

__all__ = ["verify"]


def verify(state: Books[Any]) -> None:
    """Raise ``AssertionError`` naming the first identity that does not hold."""
    where = f"pool {state.name!r}: "
    counts = Counter(slot.state for slot in state.slots.values())
    for key, slot in state.slots.items():
        assert key == id(slot.resource), where + "a slot is filed under another resource"
        assert slot.state != GONE, where + "a retired slot is still in the pool"
    gauges = {
        "idle": (len(state.idle), counts[IDLE]),
        "in_use": (state.in_use, counts[LEASED]),
        "checking": (state.checking, counts[CHECKING]),
        "resetting": (state.resetting, counts[RESETTING]),
    }
    for gauge, (told, held) in gauges.items():
        assert told == held, where + f"{gauge} says {told}, {held} slots are so"
    for gauge in ("creating", "prefilling", "releasing"):
        assert getattr(state, gauge) >= 0, where + f"{gauge} is negative"
    waiting = state.queue.waiting
    assert state.prefilling <= state.creating, where + "more prefilling than creating"
    ids = [id(slot) for slot in state.idle]
    assert len(ids) == len(set(ids)), where + "a slot is idle twice"
    for slot in state.idle:
        assert state.slots.get(id(slot.resource)) is slot, where + "an idle slot is not live"
    live_waiters = state.queue.live()
    # A cancelled waiter is counted until its caller leaves the queue.
    assert 0 <= live_waiters <= waiting, (
        where + f"waiting says {waiting}, {live_waiters} waiters are live"
    )
    assert not (state.idle and live_waiters), where + "idle slots while callers wait"
    size = len(state.slots) + state.creating + state.releasing
    assert len(state.idle) <= state.pool_size, where + "more idle than pool_size"
    held = len(state.slots) + state.creating
    if not state.shrinking:
        # Releasers that a shrink started may still run: they are on their way out.
        assert held <= state.pool_size, where + f"{held} held > pool_size {state.pool_size}"
    assert size <= max(state.pool_size, state.peak_size), where + "size beyond any pool_size"
    assert state.min_size <= state.pool_size, where + "min_size > pool_size"
    made = state.destroyed + state.abandoned + state.detached + len(state.slots)
    assert state.created == made + state.releasing, (
        where + "created != destroyed + abandoned + detached + size - creating"
    )
    breaker = state.breaker
    if breaker.is_open:
        assert breaker.threshold is not None, where + "the breaker is open without a threshold"
        assert breaker.failures >= breaker.threshold, where + "the breaker opened too soon"
    if breaker.probing:
        assert state.creating >= 1, where + "a probe runs without a creation"
    if state.closed:
        assert not state.idle, where + "a closed pool holds idle slots"
