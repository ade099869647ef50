"""What a pool tells about itself: stats, leases, and the errors it raises.
Part of ``PoolCore``; reads its state, changes nothing but counters.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from escudeiro_pools._breaker import times_in_a_row
from escudeiro_pools._errors import PoolClosed, PoolTimeout, PoolUnavailable
from escudeiro_pools._slot import LEASED, Slot
from escudeiro_pools._stats import LeaseInfo, PoolStats

if TYPE_CHECKING:
    from escudeiro_pools._breaker import Breaker

__all__ = ["Introspection"]

T = TypeVar("T")

logger: Final = logging.getLogger("escudeiro_pools")


class Introspection(Generic[T]):
    """``PoolCore``'s stats, lease listing, leak report, errors and ``repr``.

    The state it reads is ``PoolCore``'s, declared here.
    """

    _name: str
    _pool_size: int
    _min_size: int
    _closed: bool
    _clock: Callable[[], float]
    _breaker: Breaker
    _tracking: bool
    _leak_timeout: float | None
    _idle: deque[Slot[T]]
    _slots: dict[int, Slot[T]]
    _creating: int
    _checking: int
    _resetting: int
    _releasing: int
    _in_use: int
    _waiting: int
    _created: int
    _destroyed: int
    _abandoned: int
    _detached: int
    _released: int
    _lost_leases: int
    _timeouts: int
    _rejected: int
    _unavailable: int
    _factory_errors: int
    _releaser_errors: int
    _reset_errors: int
    _check_failures: int
    _recycled: int
    _idle_expired: int
    _discarded: int
    _leaks: int
    _waits: int
    _wait_time_total: float
    _wait_time_max: float

    def _stats(self) -> PoolStats:
        breaker = self._breaker
        return PoolStats(
            name=self._name,
            pool_size=self._pool_size,
            min_size=self._min_size,
            closed=self._closed,
            available=not breaker.is_open,
            size=len(self._slots) + self._creating + self._releasing,
            idle=len(self._idle),
            in_use=self._in_use,
            creating=self._creating,
            checking=self._checking,
            resetting=self._resetting,
            releasing=self._releasing,
            waiting=self._waiting,
            created=self._created,
            destroyed=self._destroyed,
            abandoned=self._abandoned,
            detached=self._detached,
            acquired=self._released + self._in_use + self._lost_leases,
            released=self._released,
            timeouts=self._timeouts,
            rejected=self._rejected,
            unavailable=self._unavailable,
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
            consecutive_failures=breaker.failures,
            last_error=breaker.last_error(),
        )

    def _lease_infos(self) -> tuple[LeaseInfo, ...]:
        leased = [s for s in self._slots.values() if s.state == LEASED]
        if not self._tracking:
            return tuple(LeaseInfo(None, None) for _ in leased)
        now = self._clock()
        leased.sort(key=lambda s: s.leased_at)
        return tuple(LeaseInfo(max(0.0, now - s.leased_at), s.site) for s in leased)

    def _report_leak(self, slot: Slot[T], serial: int) -> None:
        if slot.state == LEASED and slot.serial == serial:
            self._leaks += 1
            logger.warning(
                "pool %r: a resource has been leased for more than %g s; acquired at %s",
                self._name,
                self._leak_timeout,
                slot.site,
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
    def min_size(self) -> int:
        """The fewest resources the maintainer keeps alive."""
        return self._min_size

    @property
    def closed(self) -> bool:
        """True between ``close()`` and ``open()``."""
        return self._closed

    def _closed_error(self) -> PoolClosed:
        return PoolClosed(f"pool {self._name!r} is closed; call open() to use it again")

    def _unavailable_error(self, *, counted: bool = False) -> PoolUnavailable:
        """The error for a caller refused while the breaker is open (``counted``: already)."""
        if not counted:
            self._unavailable += 1
        breaker = self._breaker
        retry_after = breaker.retry_after(self._clock())
        error = PoolUnavailable(
            f"pool {self._name!r}: the factory failed {times_in_a_row(breaker.failures)} "
            f"(last: {breaker.last_error()}); refusing to create until a retry succeeds, "
            f"next retry in {retry_after:.2f} s",
            retry_after,
        )
        error.__cause__ = breaker.error
        return error

    def _timeout_error(self, timeout: float | None, phase: str) -> PoolTimeout:
        self._timeouts += 1
        message = (
            f"pool {self._name!r}: couldn't get a resource within {timeout or 0.0:.2f} s "
            f"(timed out while {phase}; size "
            f"{len(self._slots) + self._creating + self._releasing}/{self._pool_size}, "
            f"in use {self._in_use}, waiting {self._waiting}); "
        )
        holders = self._lease_infos() if self._tracking else ()
        if holders and holders[0].age is not None:
            message += (
                f"the oldest lease, {holders[0].age:.1f} s old, was acquired at {holders[0].site}; "
            )
        return PoolTimeout(message + "raise pool_size or acquire_timeout, or return leases sooner")

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<{type(self).__name__} {self._name!r}{state} "
            f"size={len(self._slots) + self._creating + self._releasing}/{self._pool_size}"
            f" idle={len(self._idle)} in_use={self._in_use} waiting={self._waiting}>"
        )
