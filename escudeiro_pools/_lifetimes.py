"""Lifetimes: when an idle resource may be lent as it is, and what the
maintainer does (keep ``min_size``, expire idle ones, replace ones about to
age out, probe a failing factory). Decisions only; part of ``PoolCore``.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from escudeiro_pools._slot import Slot

if TYPE_CHECKING:
    from escudeiro_pools._breaker import Breaker

__all__ = ["LOOKAHEAD", "Lifetimes"]

T = TypeVar("T")

logger: Final = logging.getLogger("escudeiro_pools")

#: How long before its lifetime ends the maintainer replaces an idle resource.
LOOKAHEAD: Final = 1.0


class Lifetimes(Generic[T]):
    """``PoolCore``'s decisions about the age, idleness and health of its slots.

    The state it reads and changes is ``PoolCore``'s, declared here.
    """

    _name: str
    _closed: bool
    _clock: Callable[[], float]
    _recycle: float | None
    _jitter: float
    _max_idle: float | None
    _has_check: bool
    _check_after_idle: float
    _has_setup: bool
    _alive: Callable[[T], bool] | None
    _stamp_returns: bool
    _min_size: int
    _idle: deque[Slot[T]]
    _slots: dict[int, Slot[T]]
    _creating: int
    _releasing: int
    _breaker: Breaker
    _recycled: int
    _idle_expired: int
    _check_failures: int

    def _retire(self, slot: Slot[T]) -> None:
        raise NotImplementedError

    def _reserve(self) -> bool:
        raise NotImplementedError

    def _lifetime_end(self, created_at: float) -> float:
        if self._recycle is None:
            return math.inf
        # Shortened by a random fraction, so resources made together expire apart.
        return created_at + self._recycle * (1.0 - self._jitter * random.random())

    def _verdict(self, slot: Slot[T], *, alive: bool) -> str | None:
        """Why an idle ``slot`` may not be lent as it is, or None if it may.

        "check" means it may, once the (awaited or blocking) ``check`` passes;
        "setup" means it is lent, and the caller runs ``setup`` on it.
        """
        if alive and self._alive is not None and not self._is_alive(slot):
            return "dead"
        if self._recycle is not None or self._stamp_returns:
            now = self._clock()
            if now >= slot.expires_at:
                return "recycled"
            if self._max_idle is not None and now - slot.returned_at >= self._max_idle:
                return "idle_expired"
            if self._has_check and now - slot.returned_at >= self._check_after_idle:
                return "check"
        return "setup" if self._has_setup else None

    def _is_alive(self, slot: Slot[T]) -> bool:
        assert self._alive is not None
        try:
            return bool(self._alive(slot.resource))
        except Exception:
            logger.warning("pool %r: the alive test raised", self._name, exc_info=True)
            return False

    def _count_stale(self, reason: str) -> None:
        if reason == "recycled":
            self._recycled += 1
        elif reason == "idle_expired":
            self._idle_expired += 1
        else:
            self._check_failures += 1

    def _maintain(self) -> tuple[int, list[Slot[T]], float | None]:
        """The maintainer's next step: creations to run (reserved), idle slots to
        release (retired), and when to look again (clock time, None: when woken).

        Keeps ``min_size`` alive, releases idle slots beyond it once past
        ``max_idle``, replaces idle slots about to reach their lifetime, and
        while the breaker is open, probes the factory once per backoff.
        """
        if self._closed:
            return 0, [], None
        now = self._clock()
        retired: list[Slot[T]] = []
        wake = math.inf
        if self._max_idle is not None:
            # A resource returned after this look expires max_idle after its return.
            wake = now + self._max_idle
            idle = self._idle
            # Oldest returns sit on the left, whichever the order.
            while idle and len(self._slots) > self._min_size:
                if now - idle[0].returned_at < self._max_idle:
                    wake = idle[0].returned_at + self._max_idle
                    break
                slot = idle.popleft()
                self._idle_expired += 1
                self._retire(slot)
                retired.append(slot)
        if self._recycle is not None and self._min_size:
            lead = min(LOOKAHEAD, self._recycle / 4)
            keep: deque[Slot[T]] = deque()
            for slot in self._idle:
                if slot.expires_at - lead <= now:
                    self._recycled += 1
                    self._retire(slot)
                    retired.append(slot)
                else:
                    keep.append(slot)
            if len(keep) < len(self._idle):
                self._idle.clear()
                self._idle.extend(keep)
            # Leased ones too: they may be idle by then.
            for slot in self._slots.values():
                if slot.expires_at - lead > now:
                    wake = min(wake, slot.expires_at - lead)
        breaker = self._breaker
        creations = 0
        missing = self._min_size - (len(self._slots) + self._creating)
        if breaker.is_open:
            if not breaker.probing and breaker.retry_at <= now and self._reserve():
                breaker.probing = True
                creations = 1
            elif not breaker.probing:
                wake = min(wake, breaker.retry_at)
        elif missing > 0:
            if breaker.failures and breaker.retry_at > now:
                wake = min(wake, breaker.retry_at)
            else:
                while creations < missing and self._reserve():
                    creations += 1
        return creations, retired, None if wake == math.inf else wake

    def _log_maintenance_failure(self) -> None:
        # While the breaker is open its failed probes are expected: it warned once.
        level = logging.DEBUG if self._breaker.is_open else logging.WARNING
        logger.log(
            level, "pool %r: the maintainer failed to create a resource", self._name, exc_info=True
        )

    def _needs_maintainer(self) -> bool:
        return not self._closed and (
            self._min_size > 0 or self._max_idle is not None or self._breaker.is_open
        )
