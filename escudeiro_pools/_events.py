"""A pool's observers, and how each event reaches them.

The pools call these after the state has changed, outside any lock: an
observer that raises an ``Exception`` is logged and the pool goes on; a
``BaseException`` (``KeyboardInterrupt``) propagates once the pool's books
are whole (a resource being lent is then released, as when ``setup``
fails).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from escudeiro_pools._protocol import PoolObserver

__all__ = ["DESTROYED_REASONS", "Observers"]

logger: Final = logging.getLogger("escudeiro_pools")

#: Every ``reason`` ``PoolObserver.destroyed`` may be given.
DESTROYED_REASONS: Final = frozenset(
    {
        "recycled",
        "max_uses",
        "idle",
        "check",
        "alive",
        "reset",
        "broken",
        "discarded",
        "reclaimed",
        "shrunk",
        "disposed",
        "closed",
    }
)


class Observers:
    """The observers attached to one pool; ``active`` while there are any."""

    __slots__ = ("_clock", "_lent_at", "_name", "active", "observers")

    def __init__(self, name: str, clock: Callable[[], float]) -> None:
        self._name = name
        self._clock = clock
        self.observers: tuple[PoolObserver, ...] = ()
        self.active = False
        # When each resource was lent, for ``used``.
        self._lent_at: dict[int, float] = {}

    def add(self, observer: PoolObserver) -> None:
        if not all(callable(getattr(observer, m, None)) for m in ("created", "waited", "used")):
            raise TypeError(
                f"an observer needs created(), waited() and used() methods, got {observer!r}"
            )
        if observer not in self.observers:
            self.observers = (*self.observers, observer)
            self.active = True

    def remove(self, observer: PoolObserver) -> None:
        self.observers = tuple(o for o in self.observers if o is not observer)
        self.active = bool(self.observers)
        if not self.active:
            self._lent_at.clear()

    def lent_already(self, resource: object) -> None:
        """``resource`` was leased before the first observer came: its use counts from now."""
        self._lent_at.setdefault(id(resource), self._clock())

    def _emit(self, event: str, *args: Any) -> None:
        for observer in self.observers:
            method = getattr(observer, event, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception:
                logger.warning(
                    "pool %r: observer %r raised in %s()",
                    self._name,
                    observer,
                    event,
                    exc_info=True,
                )

    def created(self, seconds: float) -> None:
        self._emit("created", seconds)

    def lent(self, resource: object, waited: float) -> None:
        self._lent_at[id(resource)] = self._clock()
        self._emit("waited", waited)
        self._emit("lent", resource)

    def returned(self, resource: object) -> None:
        self.tell_returned(resource, self.take_back(resource))

    def take_back(self, resource: object) -> float | None:
        """When ``resource`` was lent, forgotten now. A thread pool calls this
        under its lock, where the lease ends in the books: a next holder's
        ``lent`` cannot come first and take its place."""
        return self._lent_at.pop(id(resource), None)

    def tell_returned(self, resource: object, began: float | None) -> None:
        """The observers hear of a return whose lending time ``take_back`` gave."""
        if began is not None:
            self._emit("used", max(0.0, self._clock() - began))
        self._emit("returned", resource)

    def destroyed(self, resource: object, reason: str) -> None:
        self._lent_at.pop(id(resource), None)
        self._emit("destroyed", resource, reason)
