"""What the framework integrations share: the pool type, argument checks, start and stop."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any, TypeAlias

from escudeiro_pools import AsyncPool, PoolStats, ThreadPool

__all__ = [
    "AnyPool",
    "PoolStartupError",
    "check_pools",
    "check_prefill",
    "check_retry_after",
    "ready",
    "start_all",
    "stop_all",
]

AnyPool: TypeAlias = AsyncPool[Any] | ThreadPool[Any]


class PoolStartupError(RuntimeError):
    """A lifespan's startup failed: one line per pool that failed, with its first
    cause. ``errors`` maps each pool's keyword to what it raised (an
    ``ExceptionGroup`` of the failed creations for a failed prefill)."""

    def __init__(self, errors: dict[str, BaseException], pools: Mapping[str, AnyPool]) -> None:
        lines = [_startup_line(key, pools[key], error) for key, error in errors.items()]
        super().__init__(
            "; ".join(lines) + ". To start while a backend is away, use lifespan(prefill=False):"
            " the pools then fill on demand."
        )
        self.errors = errors


def _startup_line(key: str, pool: AnyPool, error: BaseException) -> str:
    cause = error
    summary = ""
    if isinstance(error, BaseExceptionGroup):
        summary = f"{error.message.removeprefix(f'pool {pool.name!r}: ')}; "
        while isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[0]
    return (
        f"pool {key!r} ({pool.name}) failed to start: {summary}first error: "
        f"{type(cause).__name__}: {cause}"
    )


def check_pools(caller: str, pools: Mapping[str, object]) -> None:
    """Refuse an empty set of pools, or a value that is not a pool, naming the keyword."""
    if not pools:
        raise TypeError(f"{caller}() needs at least one pool, e.g. {caller}(db=pool)")
    for key, pool in pools.items():
        if not isinstance(pool, AsyncPool | ThreadPool):
            raise TypeError(f"{caller}(): {key}= must be an AsyncPool or ThreadPool, got {pool!r}")


def check_prefill(prefill: object) -> bool | int:
    if isinstance(prefill, bool):
        return prefill
    if isinstance(prefill, int) and prefill >= 0:
        return prefill
    raise TypeError(
        f"prefill must be True (fill each pool), False (open only) or a count >= 0, got {prefill!r}"
    )


def check_retry_after(seconds: object) -> str:
    """A ``Retry-After`` header value: whole seconds, at least 1."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ValueError(f"retry_after must be a number of seconds >= 0, got {seconds!r}")
    return str(max(1, math.ceil(seconds)))


async def start_all(pools: Mapping[str, AnyPool], prefill: bool | int) -> None:
    """Open every pool and prefill them concurrently (all, none, or ``prefill`` each).

    Whatever ends the startup early (a failed prefill, a cancellation, an
    interrupt), every pool is closed again before it propagates: nothing
    that was opened is left behind.

    Raises:
        PoolStartupError: a pool failed to open or prefill.
    """
    count = None if prefill is True else int(prefill)

    async def start(pool: AnyPool) -> None:
        if isinstance(pool, AsyncPool):
            await pool.open()
            if count != 0:
                await pool.prefill(count)
        else:
            await asyncio.to_thread(pool.open)
            if count != 0:
                await asyncio.to_thread(pool.prefill, count)

    try:
        results = await asyncio.gather(*map(start, pools.values()), return_exceptions=True)
    except BaseException:
        await close_shielded(list(pools.values()))
        raise
    errors = {key: r for key, r in zip(pools, results, strict=True) if isinstance(r, BaseException)}
    if errors:
        await close_shielded(list(pools.values()))
        interrupts = [e for e in errors.values() if not isinstance(e, Exception)]
        if interrupts:
            raise interrupts[0]
        raise PoolStartupError(errors, pools) from None


async def close_shielded(pools: list[AnyPool]) -> None:
    """``stop_all``, run to its end even if the caller is cancelled meanwhile."""
    closing = asyncio.ensure_future(stop_all(pools))
    try:
        await asyncio.shield(closing)
    except asyncio.CancelledError:
        await asyncio.wait([closing])
        raise


async def stop_all(pools: list[AnyPool]) -> list[BaseException]:
    """Close every pool, even if one fails; the errors."""

    async def stop(pool: AnyPool) -> None:
        if isinstance(pool, AsyncPool):
            await pool.close()
        else:
            await asyncio.to_thread(pool.close)

    results = await asyncio.gather(*(stop(p) for p in pools), return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


def ready(stats: PoolStats) -> bool:
    """Open, not failing fast, and at least ``min_size`` resources exist."""
    exist = stats.size - stats.creating - stats.releasing
    return not stats.closed and stats.available and exist >= stats.min_size
