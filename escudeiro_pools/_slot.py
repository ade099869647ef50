"""A live resource and what the pool knows about it."""

from __future__ import annotations

from typing import Final, Generic, TypeVar

__all__ = ["CHECKING", "GONE", "IDLE", "LEASED", "RESETTING", "Slot"]

T = TypeVar("T")

# A slot's state. Every live slot is in exactly one of the first four.
IDLE: Final = 0  # pooled, in the idle queue
LEASED: Final = 1  # lent to a caller (or granted to a waiter that has not woken yet)
CHECKING: Final = 2  # taken from idle; ``alive`` and/or ``check`` run before it is lent
RESETTING: Final = 3  # returned; ``alive`` and/or ``reset`` run before it is pooled
GONE: Final = 4  # retired (being released), detached or forgotten: never comes back


class Slot(Generic[T]):
    """One live resource and what the pool knows about it.

    Only ``PoolState`` changes a slot; the pools read ``resource``, ``state``
    and ``serial``.
    """

    __slots__ = (
        "checked_at",
        "created_at",
        "expires_at",
        "fate",
        "generation",
        "leased_at",
        "needs_check",
        "resource",
        "returned_at",
        "serial",
        "site",
        "state",
        "warned",
    )

    def __init__(self, resource: T, created_at: float, generation: int, expires_at: float) -> None:
        self.resource = resource
        self.state = IDLE
        #: How many times it was lent: a lease remembers it, ``max_uses`` compares it.
        self.serial = 0
        self.generation = generation
        self.created_at = created_at
        self.expires_at = expires_at
        self.returned_at = created_at
        #: When ``check`` (or a keepalive) last passed: ``check_after_idle`` counts from it.
        self.checked_at = created_at
        self.leased_at = 0.0
        self.site: str | None = None
        #: ``CHECKING``: whether ``check`` must run (else only ``alive``).
        self.needs_check = False
        #: The ``serial`` of the lease last reported as a leak.
        self.warned = 0
        #: Why it was retired (``PoolObserver.destroyed``'s reason).
        self.fate = ""
