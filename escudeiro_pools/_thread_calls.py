"""A ``ThreadPool``'s calls of the user's code, blocking in the calling thread.

Each call says what happened and changes nothing of the pool's state (the
pool reports the outcome under its lock). An ``Exception`` from ``alive``,
``check`` or ``reset`` is a failed test (logged); from the factory,
``setup`` or the releaser it is raised or returned. A ``BaseException``
always propagates. An awaitable where a plain value was due is refused with
a ``TypeError`` (and a coroutine closed, so it does not warn).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from escudeiro_pools._slot import Slot

__all__ = ["ThreadCalls"]

T = TypeVar("T")

logger: Final = logging.getLogger("escudeiro_pools")


def _refuse_awaitable(value: object, name: str, what: str) -> None:
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if inspect.iscoroutine(value) and close is not None:
            close()
        raise TypeError(
            f"pool {name!r}: {what} returned {type(value).__name__}, an awaitable: "
            f"{what} returned an awaitable; ThreadPool needs a plain {what} (use AsyncPool "
            "for async resources)"
        )


class ThreadCalls(Generic[T]):
    """Runs one thread pool's callbacks in the calling thread."""

    __slots__ = ("_alive", "_check", "_clock", "_factory", "_name", "_releaser", "_reset", "_setup")

    def __init__(
        self,
        name: str,
        clock: Callable[[], float],
        factory: Callable[[], T],
        releaser: Callable[[T], object],
        alive: Callable[[T], bool] | None,
        check: Callable[[T], bool] | None,
        setup: Callable[[T], object] | None,
        reset: Callable[[T], object] | None,
    ) -> None:
        self._name = name
        self._clock = clock
        self._factory = factory
        self._releaser = releaser
        self._alive = alive
        self._check = check
        self._setup = setup
        self._reset = reset

    def create(self) -> tuple[T, float]:
        """A new resource, and how long the factory took (by the pool's clock)."""
        began = self._clock()
        resource = self._factory()
        _refuse_awaitable(resource, self._name, "the factory")
        return resource, self._clock() - began

    def _is_alive(self, resource: T) -> bool:
        assert self._alive is not None
        try:
            return bool(self._alive(resource))
        except Exception:
            logger.warning("pool %r: the alive test raised", self._name, exc_info=True)
            return False

    def inspect(self, slot: Slot[T]) -> str | None:
        """``alive`` and, if the slot needs it, ``check``: None if it passed, else
        what failed (``"alive"`` or ``"check"``)."""
        if self._alive is not None and not self._is_alive(slot.resource):
            return "alive"
        if slot.needs_check:
            assert self._check is not None
            try:
                ok: object = self._check(slot.resource)
                _refuse_awaitable(ok, self._name, "check")
            except Exception:
                logger.warning("pool %r: check raised", self._name, exc_info=True)
                ok = False
            if not ok:
                return "check"
        return None

    def setup(self, resource: T) -> None:
        assert self._setup is not None
        _refuse_awaitable(self._setup(resource), self._name, "setup")

    def restore(self, slot: Slot[T]) -> str | None:
        """``alive`` then ``reset`` on a returned slot: None if both passed, else
        what failed (``"alive"`` or ``"reset"``, logged)."""
        if self._alive is not None and not self._is_alive(slot.resource):
            return "alive"
        if self._reset is None:
            return None
        try:
            _refuse_awaitable(self._reset(slot.resource), self._name, "reset")
        except Exception:
            logger.warning(
                "pool %r: reset failed; discarding the resource", self._name, exc_info=True
            )
            return "reset"
        return None

    def release(self, resource: T) -> Exception | None:
        """Run the releaser; its error (logged), or None. An interrupt propagates."""
        try:
            _refuse_awaitable(self._releaser(resource), self._name, "the releaser")
        except Exception as exc:
            logger.warning("pool %r: releasing a resource failed", self._name, exc_info=True)
            return exc
        return None
