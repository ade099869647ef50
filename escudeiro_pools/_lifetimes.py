"""Lifetimes: how long a resource lives, and whether an idle one may be lent
as it is. Pure functions of a slot's times and the pool's options.
"""

from __future__ import annotations

import math
import random
from typing import Any, Final

from escudeiro_pools._slot import Slot

__all__ = ["LOOKAHEAD", "lifetime_end", "lookahead", "stale_reason"]

#: How long before its lifetime ends the maintainer replaces an idle resource.
LOOKAHEAD: Final = 1.0


def lifetime_end(created_at: float, recycle: float | None, jitter: float) -> float:
    """When a resource made at ``created_at`` is due for recycling (``inf``: never)."""
    if recycle is None:
        return math.inf
    # Shortened by a random fraction, so resources made together expire apart.
    return created_at + recycle * (1.0 - jitter * random.random())


def lookahead(recycle: float) -> float:
    """How early the maintainer replaces an idle resource about to age out."""
    return min(LOOKAHEAD, recycle / 4)


def stale_reason(
    slot: Slot[Any],
    now: float,
    max_idle: float | None,
    check_after_idle: float | None,
) -> str | None:
    """Why an idle ``slot`` may not be lent as it is at ``now``, or None if it may.

    ``"recycled"`` and ``"idle"`` retire it; ``"check"`` lends it once
    ``check`` passes. ``check_after_idle`` is None when the pool has no
    ``check``; the idle time for it counts from the last return or the last
    successful check, whichever is later.
    """
    if now >= slot.expires_at:
        return "recycled"
    if max_idle is not None and now - slot.returned_at >= max_idle:
        return "idle"
    if check_after_idle is not None and now - max(slot.returned_at, slot.checked_at) >= (
        check_after_idle
    ):
        return "check"
    return None
