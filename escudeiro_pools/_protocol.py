"""What the state hands out and whom it talks to: grants, waiters, the pool's
signals, and observers."""

from __future__ import annotations

from typing import Any, Final, Protocol

from escudeiro_pools._slot import Slot

__all__ = [
    "CLOSED",
    "CREATE",
    "DEFAULT",
    "EXPIRED",
    "PAUSED",
    "UNAVAILABLE",
    "WAIT",
    "Grant",
    "PoolObserver",
    "Signals",
    "Waiter",
]


class _Token:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


class _Default:
    def __repr__(self) -> str:
        return "<the pool's acquire_timeout>"


#: The per-call default for ``timeout``: the pool's ``acquire_timeout``.
DEFAULT: Final = _Default()

#: The caller holds reserved capacity and must run the factory.
CREATE: Final = _Token("CREATE")
#: The caller must queue for a grant.
WAIT: Final = _Token("WAIT")
#: Granted to a waiter: the pool closed while it waited.
CLOSED: Final = _Token("CLOSED")
#: Granted to a waiter: capacity is free but the factory keeps failing.
UNAVAILABLE: Final = _Token("UNAVAILABLE")
#: Granted to a waiter: its deadline passed.
EXPIRED: Final = _Token("EXPIRED")
#: Granted to a waiter: its deadline passed while the pool was paused.
PAUSED: Final = _Token("PAUSED")


Grant = Slot[Any] | _Token


class PoolObserver(Protocol):
    """Receives a pool's timings while attached with ``pool.add_observer``.

    ``created``, ``waited`` and ``used`` are required. ``lent(resource)``,
    ``returned(resource)`` and ``destroyed(resource, reason)`` are called
    when the observer has them (see ``add_observer`` for the reasons). An
    observer that raises an ``Exception`` is logged and the pool goes on;
    each call must be quick and must not call the pool.
    """

    def created(self, seconds: float) -> None:
        """The factory made a resource in ``seconds``."""

    def waited(self, seconds: float) -> None:
        """An acquire got its resource ``seconds`` after it asked (0.0: at once)."""

    def used(self, seconds: float) -> None:
        """A resource came back after being leased for ``seconds``."""


class Waiter(Protocol):
    """A caller queued for a grant: an ``asyncio.Future`` or a thread's handle."""

    def done(self) -> bool:
        """True once it was granted something or gave up: it is skipped."""
        ...

    def set_result(self, grant: Any, /) -> object:
        """Hand over a grant and wake the caller; ``False`` refuses it (its loop is gone)."""
        ...


class Signals(Protocol):
    """What the state tells its pool; each call only wakes something, it never blocks."""

    def _wake_maintainer(self) -> None:
        """The maintainer may have work now (start it if the pool needs one)."""

    def _progressed(self) -> None:
        """Resources were made, the pool closed or ``min_size`` changed.

        ``wait_ready`` callers look again.
        """

    def _drained(self) -> None:
        """A closed pool has no live resource left."""
