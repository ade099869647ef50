"""Lifetimes, the maintainer and the outage breaker, for both pools.

Pins what an idle resource must pass to be lent again (the ``alive`` test,
run once; ``max_idle`` up to its exact end), how stale resources are counted,
which idle resources the maintainer releases or replaces (never below
``min_size``; ``max_idle`` and the lifetime lookahead at their exact
bounds), that an idle maintainer sleeps instead of polling the clock, and
what the breaker reports: its backoff, jitter and probes, and its log and
error messages, with passwords masked.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest

from escudeiro_pools import PoolUnavailable
from escudeiro_pools._maintenance import plan
from tests.kit import (
    FakeClock,
    Kit,
    Ledger,
    Resource,
    as_factory,
    assert_gauges_add_up,
    eventually,
    resize,
    wait_ready,
)

LOGGER = "escudeiro_pools"


class CountingClock(FakeClock):
    """A ``FakeClock`` that counts how often the pool reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


async def clock_reads_while_idle(kit: Kit, pool: Any, clock: CountingClock) -> int:
    """Wake the maintainer, let it do its pass, then count its clock reads over a while."""
    await resize(kit, pool)
    await asyncio.sleep(0.02)
    before = clock.reads
    await asyncio.sleep(0.05)
    return clock.reads - before


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and text in r.getMessage()]


# -- what an idle resource must pass to be lent again ------------------------------


async def test_an_idle_resource_that_passes_the_alive_test_is_lent_after_one_test(
    kit: Kit,
) -> None:
    tested: list[Resource] = []

    def alive(resource: Resource) -> bool:
        tested.append(resource)
        return True

    pool = kit.pool(pool_size=1, alive=alive)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    tested.clear()
    assert await kit.acquire(pool) is first
    assert tested == [first]
    await kit.release(pool, first)


async def test_an_alive_test_that_raises_is_logged_with_the_pool_name_and_traceback(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    def alive(resource: Resource) -> bool:
        if resource.broken:
            raise RuntimeError("probe exploded")
        return True

    pool = kit.pool(pool_size=1, alive=alive, name="db")
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    first.broken = True
    with caplog.at_level(logging.WARNING, LOGGER):
        second = await kit.acquire(pool)
    assert second is not first
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "pool 'db': the alive test raised")
    ]
    assert records[0].exc_info and isinstance(records[0].exc_info[1], RuntimeError)
    await kit.release(pool, second)


@pytest.mark.parametrize("path", ["acquire", "lease", "async with"])
@pytest.mark.parametrize("case", ["dead", "needs setup", "due for its check"])
async def test_the_alive_test_runs_once_per_checkout_whatever_the_idle_resource_needs(
    kit: Kit, clock: FakeClock, case: str, path: str
) -> None:
    tested: list[Resource] = []

    def alive(resource: Resource) -> bool:
        tested.append(resource)
        return not resource.broken

    options: dict[str, Any] = {"alive": alive, "clock": clock}
    if case == "needs setup":
        options["setup"] = lambda resource: None
    if case == "due for its check":
        options.update(check=lambda resource: True, check_after_idle=1)
    pool = kit.pool(pool_size=1, **options)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    first.broken = case == "dead"
    clock.advance(2)
    tested.clear()
    if path == "acquire":
        got = await kit.acquire(pool)
        assert tested == [first]
        await kit.release(pool, got)
    elif path == "lease":
        async with kit.lease(pool) as got:
            assert tested == [first]
    else:  # a thread pool's lease waits on the loop here
        async with pool.lease() as got:
            assert tested == [first]
    assert (got is first) == (case != "dead")


async def test_every_resource_found_dead_at_checkout_counts_as_a_check_failure(
    kit: Kit,
) -> None:
    pool = kit.pool(pool_size=2, alive=lambda r: not r.broken)
    a, b = await kit.acquire(pool), await kit.acquire(pool)
    await kit.release(pool, a)
    await kit.release(pool, b)
    a.broken = b.broken = True
    c = await kit.acquire(pool)
    d = await kit.acquire(pool)
    assert {c, d}.isdisjoint({a, b})
    assert kit.stats(pool).check_failures == 2
    await kit.release(pool, c)
    await kit.release(pool, d)


async def test_an_idle_resource_is_lent_again_until_exactly_max_idle_has_passed(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=2, max_idle=5, clock=clock)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    clock.advance(4.5)
    assert await kit.acquire(pool) is first
    await kit.release(pool, first)
    clock.advance(5)  # idle for exactly max_idle: expired
    second = await kit.acquire(pool)
    assert second is not first
    assert kit.stats(pool).idle_expired == 1
    await kit.release(pool, second)
    await kit.close(pool)


async def test_every_resource_expired_at_checkout_counts_as_idle_expired(
    kit: Kit, clock: FakeClock
) -> None:
    # min_size keeps the maintainer from expiring them first: checkouts meet both.
    pool = kit.pool(pool_size=4, min_size=2, max_idle=5, clock=clock)
    await kit.open(pool)
    await wait_ready(kit, pool)
    clock.advance(6)
    held = [await kit.acquire(pool), await kit.acquire(pool)]
    assert kit.stats(pool).idle_expired == 2
    for resource in held:
        await kit.release(pool, resource)
    await kit.close(pool)


# -- what the maintainer releases and replaces --------------------------------------


async def test_the_maintainer_keeps_min_size_even_when_it_idled_past_max_idle(
    kit: Kit, clock: FakeClock, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=3, max_idle=5, clock=clock)
    a, b = await kit.acquire(pool), await kit.acquire(pool)
    await kit.release(pool, a)
    await kit.release(pool, b)
    await resize(kit, pool, min_size=1)
    clock.advance(10)
    await resize(kit, pool)
    await eventually(lambda: kit.stats(pool).idle_expired >= 1)
    stats = kit.stats(pool)
    assert (stats.idle_expired, stats.idle) == (1, 1)
    assert len(ledger.made) == 2
    await kit.close(pool)


async def test_the_maintainer_expires_idle_resources_at_max_idle_and_keeps_younger_ones(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=3, max_idle=5, clock=clock)
    a, b, c = [await kit.acquire(pool) for _ in range(3)]
    await kit.release(pool, a)
    clock.advance(1)
    await kit.release(pool, b)
    clock.advance(1)
    await kit.release(pool, c)
    clock.advance(4)  # idle for 6, exactly 5 and 4 seconds
    await resize(kit, pool)
    await eventually(lambda: kit.stats(pool).idle_expired >= 1)
    stats = kit.stats(pool)
    assert (stats.idle_expired, stats.idle) == (2, 1)
    assert await kit.acquire(pool) is c
    await kit.release(pool, c)
    await kit.close(pool)
    assert (a.released, b.released, c.released) == (1, 1, 1)


async def test_the_maintainer_replaces_idle_resources_within_the_lookahead_of_their_end(
    kit: Kit, clock: FakeClock, ledger: Ledger
) -> None:
    # pool_recycle=2: the lookahead is a quarter of it, 0.5 s.
    pool = kit.pool(pool_size=5, pool_recycle=2, recycle_jitter=0, clock=clock)
    made: list[Resource] = []
    for at in (1000.1, 1000.45, 1000.5, 1000.8):
        clock.now = at
        made.append(await kit.acquire(pool))
    clock.now = 1002.0  # their lifetimes end in 0.1, 0.45, exactly 0.5 and 0.8 s
    for resource in made:
        await kit.release(pool, resource)
    await resize(kit, pool, min_size=1)  # starts the maintainer
    await eventually(lambda: kit.stats(pool).recycled >= 1)
    stats = kit.stats(pool)
    assert (stats.recycled, stats.idle, stats.size - stats.releasing) == (3, 1, 1)
    assert await kit.acquire(pool) is made[3]
    await kit.release(pool, made[3])
    await kit.close(pool)
    assert len(ledger.made) == 4


async def test_the_maintainer_wakes_unprompted_when_an_idle_resource_enters_the_lookahead(
    kit: Kit,
) -> None:
    clock = CountingClock()
    # pool_recycle=10: the lookahead is 1 s, so the resource is due at 1009.
    pool = kit.pool(pool_size=2, pool_recycle=10, recycle_jitter=0, clock=clock)
    resource = await kit.acquire(pool)
    await kit.release(pool, resource)
    clock.now = 1008.95
    before = clock.reads
    await resize(kit, pool, min_size=1)  # the maintainer looks, and sleeps until 1009
    await eventually(lambda: clock.reads >= before + 2)
    # It looks again when the resource is due, not a lookahead after its end.
    assert plan(pool._state, clock.now).wake == pytest.approx(1009.0)
    clock.advance(0.1)  # due now; nothing prompts the maintainer
    await eventually(lambda: kit.stats(pool).recycled == 1)
    await kit.close(pool)
    assert resource.released == 1


async def test_without_min_size_the_maintainer_leaves_lifetimes_to_checkout(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=2, max_idle=5, pool_recycle=10, recycle_jitter=0, clock=clock)
    old, young = await kit.acquire(pool), await kit.acquire(pool)
    await kit.release(pool, old)
    clock.advance(9)
    await kit.release(pool, young)
    clock.advance(0.5)  # `young`'s lifetime ends in 0.5 s, within the lookahead
    await resize(kit, pool)
    await eventually(lambda: kit.stats(pool).idle_expired >= 1)  # `old` is past max_idle
    stats = kit.stats(pool)
    assert (stats.idle_expired, stats.recycled, stats.idle) == (1, 0, 1)
    assert await kit.acquire(pool) is young
    await kit.release(pool, young)
    await kit.close(pool)


async def test_the_maintainer_creates_exactly_the_missing_min_size(
    kit: Kit, ledger: Ledger
) -> None:
    pool = kit.pool(pool_size=5, min_size=2)
    await kit.open(pool)
    await wait_ready(kit, pool)
    assert kit.stats(pool).size == 2
    await kit.close(pool)
    assert len(ledger.made) == 2


# -- an idle maintainer sleeps ----------------------------------------------------------


async def test_an_idle_maintainer_sleeps_until_the_next_max_idle_expiry(kit: Kit) -> None:
    clock = CountingClock()
    pool = kit.pool(pool_size=2, max_idle=5, clock=clock)
    held = await kit.acquire(pool)
    assert await clock_reads_while_idle(kit, pool, clock) < 10  # nothing idle
    await kit.release(pool, held)
    clock.advance(1)
    assert await clock_reads_while_idle(kit, pool, clock) < 10  # idle, 4 s to go
    await kit.close(pool)


async def test_an_idle_maintainer_does_not_wake_for_leases_already_due_for_replacement(
    kit: Kit,
) -> None:
    clock = CountingClock()
    # pool_recycle=10: the lookahead is 1 s.
    pool = kit.pool(pool_size=3, pool_recycle=10, recycle_jitter=0, clock=clock)
    first = await kit.acquire(pool)
    clock.advance(0.5)
    second = await kit.acquire(pool)
    clock.now = 1009.5  # past the lookahead of `first`, exactly at that of `second`
    await resize(kit, pool, min_size=1)
    assert await clock_reads_while_idle(kit, pool, clock) < 10
    await kit.release(pool, first)
    await kit.release(pool, second)
    await kit.close(pool)


async def test_a_failure_below_fail_fast_after_does_not_keep_the_maintainer_polling(
    kit: Kit, ledger: Ledger
) -> None:
    clock = CountingClock()
    pool = kit.pool(pool_size=2, min_size=1, retry_backoff=(0.001, 0.001), clock=clock)
    await kit.open(pool)
    await wait_ready(kit, pool)
    held = await kit.acquire(pool)
    ledger.factory_failures = 1
    with pytest.raises(ConnectionError):
        await kit.acquire(pool)  # min_size is met: nothing for the maintainer to retry
    assert await clock_reads_while_idle(kit, pool, clock) < 10
    await kit.release(pool, held)
    await kit.close(pool)


# -- the breaker -------------------------------------------------------------------


async def test_the_maintainer_retries_min_size_once_the_backoff_ends_and_warns_each_failure(
    kit: Kit,
    ledger: Ledger,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.0)  # each backoff is half its delay
    pool = kit.pool(name="db", pool_size=1, min_size=1, retry_backoff=(2.0, 2.0), clock=clock)
    ledger.factory_failures = 1
    with caplog.at_level(logging.DEBUG, LOGGER):
        await kit.open(pool)
        await eventually(lambda: bool(messages(caplog, "maintainer failed")))
        clock.advance(1.0)  # exactly when the retry is due
        await resize(kit, pool)
        await wait_ready(kit, pool, timeout=2)
    records = messages(caplog, "maintainer failed")
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "pool 'db': the maintainer failed to create a resource")
    ]
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], ConnectionError)
    assert len(ledger.made) == 1
    await kit.close(pool)


async def test_the_breaker_backs_off_with_jitter_probes_once_per_backoff_and_reports_it(
    kit: Kit,
    ledger: Ledger,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.5)  # each backoff is 3/4 of its delay
    pool = kit.pool(
        name="db", pool_size=1, fail_fast_after=1, retry_backoff=(2.0, 8.0), clock=clock
    )
    ledger.factory_failures = 2
    with caplog.at_level(logging.DEBUG, LOGGER):
        with pytest.raises(ConnectionError):
            await kit.acquire(pool)  # the breaker opens; the next try is due in 1.5 s
        with pytest.raises(PoolUnavailable) as caught:
            await kit.acquire(pool)
        assert caught.value.retry_after == 1.5
        assert str(caught.value) == (
            "pool 'db': the factory failed once (last: ConnectionError: factory failed); "
            "refusing to create until a retry succeeds, next retry in 1.50 s"
        )
        clock.advance(1.5)  # exactly when the probe is due
        await resize(kit, pool)
        await eventually(lambda: bool(messages(caplog, "maintainer failed")))
        await asyncio.sleep(0.02)
        assert ledger.failed_calls == 2  # one probe
        with pytest.raises(PoolUnavailable) as caught:
            await kit.acquire(pool)
        assert caught.value.retry_after == 3.0  # the delay doubled
        assert "the factory failed 2 times in a row" in str(caught.value)
        clock.advance(3.0)
        await resize(kit, pool)
        await eventually(lambda: kit.stats(pool).available)
        await asyncio.sleep(0.02)
    stats = kit.stats(pool)
    assert (len(ledger.made), stats.size, stats.idle) == (1, 1, 1)  # one probe
    assert_gauges_add_up(stats)
    opened = messages(caplog, "refusing callers")
    assert [(r.levelno, r.getMessage()) for r in opened] == [
        (
            logging.WARNING,
            "pool 'db': the factory failed once (ConnectionError: factory failed); "
            "refusing callers that would create until a retry succeeds",
        )
    ]
    # The failed probe is expected while the breaker is open: not warned again.
    assert [r.levelno for r in messages(caplog, "maintainer failed")] == [logging.DEBUG]
    closed = messages(caplog, "succeeded again")
    assert [(r.levelno, r.getMessage()) for r in closed] == [
        (logging.INFO, "pool 'db': the factory succeeded again after 2 failures; serving callers")
    ]
    await kit.close(pool)


async def test_the_breaker_warns_how_many_times_in_a_row_the_factory_failed(
    kit: Kit, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    pool = kit.pool(name="db", pool_size=1, fail_fast_after=2, retry_backoff=(10, 10))
    ledger.factory_failures = 2
    with caplog.at_level(logging.WARNING, LOGGER):
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await kit.acquire(pool)
    assert [r.getMessage() for r in messages(caplog, "refusing callers")] == [
        "pool 'db': the factory failed 2 times in a row (ConnectionError: factory failed); "
        "refusing callers that would create until a retry succeeds"
    ]
    with pytest.raises(PoolUnavailable, match="the factory failed 2 times in a row"):
        await kit.acquire(pool)
    await kit.close(pool)


async def test_the_breaker_masks_passwords_in_the_errors_it_reports(kit: Kit) -> None:
    def factory() -> Resource:
        raise ConnectionError(
            "cannot reach postgresql://app:s3cret@db/main; password=hunter2 rejected"
        )

    pool = kit.pool(pool_size=1, factory=as_factory(kit, factory))
    with pytest.raises(ConnectionError):
        await kit.acquire(pool)
    assert kit.stats(pool).last_error == (
        "ConnectionError: cannot reach postgresql://app:***@db/main; password=*** rejected"
    )


async def test_a_new_pool_reports_its_breaker_closed_with_no_error(kit: Kit) -> None:
    stats = kit.stats(kit.pool(pool_size=1, fail_fast_after=1))
    assert (stats.available, stats.consecutive_failures, stats.last_error) == (True, 0, None)


@pytest.mark.parametrize("order", ["lifo", "fifo"])
async def test_the_idle_resource_next_in_line_is_the_one_checked_and_lent(
    kit: Kit, clock: FakeClock, order: str
) -> None:
    checked: list[Resource] = []

    def check(resource: Resource) -> bool:
        checked.append(resource)
        return True

    queue_class = asyncio.LifoQueue if order == "lifo" else asyncio.Queue
    pool = kit.pool(
        pool_size=2, check=check, check_after_idle=1, clock=clock, queue_class=queue_class
    )
    a, b = await kit.acquire(pool), await kit.acquire(pool)
    await kit.release(pool, a)
    await kit.release(pool, b)  # returned last
    clock.advance(2)  # both are due for their check
    expected = b if order == "lifo" else a
    assert await kit.acquire(pool) is expected
    assert checked == [expected]


async def test_an_idle_resource_past_max_idle_is_replaced_without_a_lifetime(
    kit: Kit, clock: FakeClock
) -> None:
    pool = kit.pool(pool_size=1, pool_recycle=0, max_idle=10, clock=clock)
    first = await kit.acquire(pool)
    await kit.release(pool, first)
    clock.advance(11)
    second = await kit.acquire(pool)
    assert second is not first
    assert kit.stats(pool).idle_expired == 1
    await kit.release(pool, second)
