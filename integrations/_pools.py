"""What the framework integrations share: the pool type, argument checks, start and stop."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any, TypeAlias

from escudeiro_pools import AsyncPool, PoolStats, ThreadPool

__all__ = [
    "AnyPool",
    "check_pools",
    "check_prefill",
    "check_retry_after",
    "ready",
    "start",
    "stop_all",
]

AnyPool: TypeAlias = AsyncPool[Any] | ThreadPool[Any]


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


async def start(name: str, pool: AnyPool, prefill: bool | int) -> None:
    """Open ``pool`` and prefill it (all of it, none, or ``prefill`` resources).

    Raises:
        ExceptionGroup: prefill failed; its message names the pool and the first cause.
    """
    count = None if prefill is True else int(prefill)
    try:
        if isinstance(pool, AsyncPool):
            await pool.open()
            if count != 0:
                await pool.prefill(count)
        else:
            await asyncio.to_thread(pool.open)
            if count != 0:
                await asyncio.to_thread(pool.prefill, count)
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        raise BaseExceptionGroup(
            f"pool {name!r} ({pool.name}) failed to start: {group.message}; first error: "
            f"{type(first).__name__}: {first}",
            list(group.exceptions),
        ) from None


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
