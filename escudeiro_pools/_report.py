"""What a pool tells about itself: its stats, its leases, its ``repr`` and the
errors it raises. Pure readings of a pool's ``Books``; nothing here changes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from escudeiro_pools._breaker import Breaker, times_in_a_row
from escudeiro_pools._errors import PoolBusy, PoolError, PoolTimeout, PoolUnavailable
from escudeiro_pools._slot import LEASED
from escudeiro_pools._stats import LeaseInfo, PoolStats

if TYPE_CHECKING:
    from escudeiro_pools._books import Books

__all__ = [
    "describe",
    "lease_infos",
    "not_leased",
    "stats",
    "timeout_error",
    "unavailable_error",
]


def size(state: Books[Any]) -> int:
    return len(state.slots) + state.creating + state.releasing


def stats(state: Books[Any]) -> PoolStats:
    breaker = state.breaker
    return PoolStats(
        name=state.name,
        pool_size=state.pool_size,
        min_size=state.min_size,
        closed=state.closed,
        available=not breaker.is_open,
        size=size(state),
        idle=len(state.idle),
        in_use=state.in_use,
        creating=state.creating,
        checking=state.checking,
        resetting=state.resetting,
        releasing=state.releasing,
        waiting=state.queue.waiting,
        created=state.created,
        destroyed=state.destroyed,
        abandoned=state.abandoned,
        detached=state.detached,
        acquired=state.released + state.in_use + state.lost_leases,
        released=state.released,
        timeouts=state.timeouts,
        rejected=state.rejected,
        unavailable=state.unavailable,
        factory_errors=state.factory_errors,
        releaser_errors=state.releaser_errors,
        reset_errors=state.reset_errors,
        check_failures=state.check_failures,
        recycled=state.recycled,
        idle_expired=state.idle_expired,
        discarded=state.discarded,
        leaks=state.leaks,
        waits=state.queue.waits,
        wait_time_total=state.queue.wait_time_total,
        wait_time_max=state.queue.wait_time_max,
        consecutive_failures=breaker.failures,
        last_error=breaker.last_error(),
    )


def lease_infos(state: Books[Any]) -> tuple[LeaseInfo, ...]:
    leased = [s for s in state.slots.values() if s.state == LEASED]
    if not state.tracking:
        return tuple(LeaseInfo(None, None) for _ in leased)
    now = state.clock()
    leased.sort(key=lambda s: s.leased_at)
    return tuple(LeaseInfo(max(0.0, now - s.leased_at), s.site) for s in leased)


def describe(state: Books[Any]) -> str:
    """What ``repr`` shows after the class name."""
    closed = " closed" if state.closed else ""
    return (
        f"{state.name!r}{closed} size={size(state)}/{state.pool_size}"
        f" idle={len(state.idle)} in_use={state.in_use} waiting={state.queue.waiting}"
    )


def not_leased(name: str, resource: object, known: bool) -> PoolError:
    """``resource`` is not leased (``known``: it is in the pool, idle or being returned)."""
    if known:
        return PoolError(
            f"pool {name!r}: {resource!r} is not leased (it is idle in the pool "
            "or already being returned); release each acquired resource exactly once"
        )
    return PoolError(
        f"pool {name!r}: {resource!r} was not acquired from this pool "
        "(or was already destroyed or detached); release resources only to the pool "
        "they came from"
    )


def unavailable_error(name: str, breaker: Breaker, now: float) -> PoolUnavailable:
    retry_after = breaker.retry_after(now)
    error = PoolUnavailable(
        f"pool {name!r}: the factory failed {times_in_a_row(breaker.failures)} "
        f"(last: {breaker.last_error()}); refusing to create until a retry succeeds, "
        f"next retry in {retry_after:.2f} s",
        retry_after,
    )
    error.__cause__ = breaker.error
    return error


def timeout_error(state: Books[Any], timeout: float | None, phase: str) -> PoolTimeout:
    message = (
        f"pool {state.name!r}: couldn't get a resource within {timeout or 0.0:.2f} s "
        f"(timed out while {phase}; size {size(state)}/{state.pool_size}, "
        f"in use {state.in_use}, waiting {state.queue.waiting}); "
    )
    holders = lease_infos(state) if state.tracking else ()
    if holders and holders[0].age is not None:
        message += (
            f"the oldest lease, {holders[0].age:.1f} s old, was acquired at {holders[0].site}; "
        )
    return PoolTimeout(
        message + "raise pool_size or acquire_timeout, or return leases sooner",
        retry_estimate(state),
    )


def busy_error(state: Books[Any]) -> PoolBusy:
    return PoolBusy(
        f"pool {state.name!r}: {plural(state.queue.waiting, 'caller')} already "
        f"{'waits' if state.queue.waiting == 1 else 'wait'} (max_waiting="
        f"{state.max_waiting}); retry later, or raise pool_size or max_waiting",
        retry_estimate(state),
    )


def retry_estimate(state: Books[Any]) -> float:
    """When a refused caller may retry: about as long as callers wait lately, at least 1 s."""
    return max(1.0, state.queue.recent_wait)


def plural(count: int, noun: str) -> str:
    """``1 resource``, ``2 resources``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def prefill_failed(
    name: str, planned: int, errors: list[BaseException]
) -> BaseExceptionGroup[BaseException]:
    return BaseExceptionGroup(
        f"pool {name!r}: prefill created {planned - len(errors)} of {plural(planned, 'resource')}",
        errors,
    )


def release_failed(
    name: str, released: int, errors: Sequence[BaseException]
) -> BaseExceptionGroup[BaseException]:
    return BaseExceptionGroup(
        f"pool {name!r}: {len(errors)} of {plural(released, 'resource')} failed to release",
        errors,
    )


def not_ready(state: Books[Any], timeout: float | None) -> PoolTimeout:
    exist = len(state.slots)
    return PoolTimeout(
        f"pool {state.name!r}: {exist} of min_size={state.min_size} "
        f"{'resource exists' if exist == 1 else 'resources exist'} after {timeout} s "
        f"({state.breaker.last_error() or 'no error'})"
    )
