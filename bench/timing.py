"""Rounds, medians and percentiles."""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["interleaved", "interleaved_async", "percentile"]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def interleaved(rounds: int, cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Run every case once per round, in turn, and return the median of each."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            samples[name].append(case())
    return {name: statistics.median(values) for name, values in samples.items()}


async def interleaved_async(
    rounds: int, cases: dict[str, Callable[[], Awaitable[float]]]
) -> dict[str, float]:
    """``interleaved`` for coroutine cases."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            samples[name].append(await case())
    return {name: statistics.median(values) for name, values in samples.items()}
