"""What a forked child does with the pools it inherited: keeps them inert.

The child shares the parent's sockets: it must never use or release them,
not even through a finaliser (asyncpg's would send Terminate on the
parent's connection), so the child keeps every inherited resource (and its
event loop) referenced, and each pool forgets them and starts afresh.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["register"]


class Forkable(Protocol):
    def _keepalive(self) -> object:
        """What must never be finalised in a forked child."""

    def _after_fork(self) -> None:
        """Forget the parent's resources; start afresh in the child."""


_live: weakref.WeakSet[Forkable] = weakref.WeakSet()

#: What a forked child inherited from its pools: kept referenced, never finalised.
_inherited: list[object] = []


def register(pool: Forkable) -> None:
    """Make ``pool`` forget its resources in a forked child."""
    _live.add(pool)


# pragma: no mutate start
def _after_fork_in_child() -> None:  # pragma: no cover - runs in the child (tests/test_fork.py)
    for pool in list(_live):
        _inherited.append(pool._keepalive())
        pool._after_fork()


# pragma: no mutate end
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
