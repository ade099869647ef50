"""A live resource and what the pool knows about it."""

from __future__ import annotations

from typing import Any, Final, Generic, TypeVar

__all__ = ["CHECKING", "GONE", "IDLE", "LEASED", "RESETTING", "Slot"]

T = TypeVar("T")

# A slot's state. Every live slot is in exactly one of the first four.
IDLE: Final = 0  # pooled, in ``_idle``
LEASED: Final = 1  # lent to a caller (or granted to a waiter that has not woken yet)
CHECKING: Final = 2  # taken from idle; ``check`` runs before it is lent
RESETTING: Final = 3  # returned; ``reset`` runs before it is pooled
GONE: Final = 4  # retired (being released), detached or forgotten: never comes back


class Slot(Generic[T]):
    """One live resource and what the pool knows about it."""

    __slots__ = (
        "created_at",
        "expires_at",
        "generation",
        "leak_timer",
        "leased_at",
        "resource",
        "returned_at",
        "serial",
        "site",
        "state",
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
        self.leased_at = 0.0
        self.site: str | None = None
        self.leak_timer: Any = None
