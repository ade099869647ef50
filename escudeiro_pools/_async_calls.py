"""An ``AsyncPool``'s calls of the user's code: the factory, ``alive``,
``check``, ``setup``, ``reset`` and the releaser.

Each call says what happened and changes nothing of the pool's state: the
pool reports the outcome to its ``PoolState``. An ``Exception`` from
``alive``, ``check`` or ``reset`` is a failed test (logged); from the factory,
``setup`` or the releaser it is returned or raised to the pool. A
``BaseException`` always propagates.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from escudeiro_pools._errors import PoolError
from escudeiro_pools._slot import Slot

__all__ = ["AsyncCalls"]

T = TypeVar("T")

logger: Final = logging.getLogger("escudeiro_pools")


class AsyncCalls(Generic[T]):
    """Runs one pool's callbacks, each awaited where it returns an awaitable."""

    __slots__ = (
        "_alive",
        "_check",
        "_clock",
        "_factory",
        "_name",
        "_releaser",
        "_releaser_timeout",
        "_reset",
        "_setup",
    )

    def __init__(
        self,
        name: str,
        clock: Callable[[], float],
        factory: Callable[[], Awaitable[T]],
        releaser: Callable[[T], Awaitable[object]],
        alive: Callable[[T], bool] | None,
        check: Callable[[T], Awaitable[bool] | bool] | None,
        setup: Callable[[T], Awaitable[object] | None] | None,
        reset: Callable[[T], Awaitable[object] | None] | None,
        releaser_timeout: float | None,
    ) -> None:
        self._name = name
        self._clock = clock
        self._factory = factory
        self._releaser = releaser
        self._alive = alive
        self._check = check
        self._setup = setup
        self._reset = reset
        self._releaser_timeout = releaser_timeout

    async def create(self) -> tuple[T, float]:
        """A new resource, and how long the factory took (by the pool's clock).

        Raises:
            Exception: whatever the factory raised; TypeError if it is not async.
        """
        began = self._clock()
        made = self._factory()
        if not inspect.isawaitable(made):
            raise TypeError(
                f"pool {self._name!r}: the factory returned {type(made).__name__}, not an "
                "awaitable; AsyncPool needs an async factory (use ThreadPool for plain ones)"
            )
        resource = await made
        return resource, self._clock() - began

    def _is_alive(self, resource: T) -> bool:
        assert self._alive is not None
        try:
            return bool(self._alive(resource))
        except Exception:
            logger.warning("pool %r: the alive test raised", self._name, exc_info=True)
            return False

    async def inspect(self, slot: Slot[T]) -> str | None:
        """Run ``alive`` and, if the slot needs it, ``check``: None if it passed,
        else what failed (``"alive"`` or ``"check"``)."""
        if self._alive is not None and not self._is_alive(slot.resource):
            return "alive"
        if slot.needs_check:
            assert self._check is not None
            try:
                result = self._check(slot.resource)
                if inspect.isawaitable(result):
                    result = await result
                ok = bool(result)
            except Exception:
                logger.warning("pool %r: check raised", self._name, exc_info=True)
                ok = False
            if not ok:
                return "check"
        return None

    async def setup(self, resource: T) -> None:
        """Run ``setup`` (it raises what it raised)."""
        assert self._setup is not None
        pending = self._setup(resource)
        if inspect.isawaitable(pending):
            await pending

    async def restore(self, slot: Slot[T]) -> str | None:
        """Run ``alive`` then ``reset`` on a returned slot: None if both passed,
        else what failed (``"alive"`` or ``"reset"``, logged)."""
        if self._alive is not None and not self._is_alive(slot.resource):
            return "alive"
        if self._reset is None:
            return None
        try:
            pending = self._reset(slot.resource)
            if inspect.isawaitable(pending):
                async with asyncio.timeout(self._releaser_timeout):
                    await pending
        except Exception:
            logger.warning(
                "pool %r: reset failed; discarding the resource", self._name, exc_info=True
            )
            return "reset"
        return None

    async def release(self, resource: T, *, report: bool) -> BaseException | None:
        """Run the releaser within ``releaser_timeout``; its error, or None.

        An error (a timeout, a cancellation of the releaser itself) is logged
        when ``report``; an interrupt (``KeyboardInterrupt``) propagates.
        """
        try:
            async with asyncio.timeout(self._releaser_timeout):
                done = self._releaser(resource)
                if not inspect.isawaitable(done):
                    raise TypeError(
                        f"pool {self._name!r}: the releaser returned {type(done).__name__}, "
                        "not an awaitable; AsyncPool needs an async releaser"
                    )
                await done
        except (Exception, asyncio.CancelledError) as exc:
            error: BaseException = exc
            if isinstance(exc, TimeoutError):
                error = PoolError(
                    f"pool {self._name!r}: the releaser did not finish within "
                    f"{self._releaser_timeout} s (releaser_timeout)"
                )
            elif isinstance(exc, asyncio.CancelledError):
                error = PoolError(f"pool {self._name!r}: the releaser was cancelled")
            if report:
                logger.warning("pool %r: releasing a resource failed", self._name, exc_info=exc)
            return error
        return None
