"""A frozen snapshot of a pool's state and counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PoolStats"]


@dataclass(frozen=True, slots=True)
class PoolStats:
    """What a pool holds now and what it has done since it was made.

    Gauges (now): ``size`` is every live resource (idle + in use + being
    created + being released) and never exceeds ``pool_size``.
    Counters (cumulative): ``created == destroyed + abandoned + size - creating``
    holds at any quiet moment; a releaser that raised still counts as destroyed.
    ``acquired == released + in_use`` unless leases were abandoned with their
    event loop or process.
    """

    name: str
    pool_size: int
    closed: bool
    size: int
    idle: int
    in_use: int
    creating: int
    releasing: int
    waiting: int
    created: int
    destroyed: int
    abandoned: int
    acquired: int
    released: int
    timeouts: int
    factory_errors: int
    releaser_errors: int
    reset_errors: int
    check_failures: int
    recycled: int
    idle_expired: int
    discarded: int
    leaks: int
    waits: int
    wait_time_total: float
    wait_time_max: float

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as a plain dict (JSON-ready)."""
        return asdict(self)


PoolStats.__module__ = "escudeiro_pools"
