"""Frozen snapshots: a pool's state and counters, and one lease."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LeaseInfo", "PoolStats"]


@dataclass(frozen=True, slots=True)
class PoolStats:
    """What a pool holds now and what it has done since it was made.

    Gauges (now), which add up at every moment ``stats()`` can be read:
    ``size == idle + in_use + creating + checking + resetting + releasing``,
    and ``size <= pool_size`` (after a shrinking ``resize``, once the
    resources leased before it have come back).

    - ``idle``: pooled, ready to lend. ``in_use``: leased.
    - ``creating``: the factory is running. ``checking``: ``check`` runs on
      an idle resource before it is lent. ``resetting``: ``reset`` runs on a
      returned resource. ``releasing``: the releaser is running.
    - ``waiting``: callers queued for a resource.
    - ``available``: False while the factory keeps failing and callers that
      would create are refused with ``PoolUnavailable`` (``fail_fast_after``);
      ``consecutive_failures`` and ``last_error`` (type and message, any
      password in it masked) say why.

    Counters (since creation):
    ``created == destroyed + abandoned + detached + size - creating`` at any
    quiet moment; a releaser that raised still counts as destroyed.
    ``acquired == released + in_use`` unless leases were abandoned with their
    event loop or process. ``timeouts`` counts acquires only; ``rejected``
    counts ``PoolBusy``, ``unavailable`` counts ``PoolUnavailable``.
    ``recycled`` counts resources replaced for reaching ``pool_recycle`` or
    ``max_uses``; ``waits`` and ``wait_time_*`` count callers that queued.
    """

    name: str
    pool_size: int
    min_size: int
    closed: bool
    available: bool
    size: int
    idle: int
    in_use: int
    creating: int
    checking: int
    resetting: int
    releasing: int
    waiting: int
    created: int
    destroyed: int
    abandoned: int
    detached: int
    acquired: int
    released: int
    timeouts: int
    rejected: int
    unavailable: int
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
    consecutive_failures: int
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as a plain dict (JSON-ready)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """One resource leased now, from ``pool.leases()``.

    ``age`` (seconds since it was lent) and ``site`` (where it was acquired:
    ``file:line in function``, or the HTTP route) are known only while lease
    tracking is on (``leak_timeout`` set); otherwise both are ``None``.
    """

    age: float | None
    site: str | None


PoolStats.__module__ = "escudeiro_pools"
LeaseInfo.__module__ = "escudeiro_pools"
