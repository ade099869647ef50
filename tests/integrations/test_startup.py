"""A lifespan's startup: whatever ends it early closes every pool it opened,
and a failure reads as one line that names the pool, its cause and the way
to start without the backend."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from escudeiro_pools.integrations.starlette import PoolStartupError, lifespan
from examples.serving import serve
from tests.kit import AsyncKit, Interrupt, Kit, Ledger, ThreadKit, eventually

KITS = [AsyncKit, ThreadKit]


def closed_and_released(kit: Kit, pool: Any) -> Callable[[], bool]:
    return lambda: bool(pool.stats().closed) and not kit.ledger.live


def slow_pool(kit: Kit, entered: threading.Event, opened: threading.Event, **options: Any) -> Any:
    """A pool whose factory waits for ``opened`` (in its own flavour)."""
    ledger = kit.ledger
    if kit.flavour == "async":

        async def factory() -> Any:
            entered.set()
            while not opened.is_set():
                await asyncio.sleep(0.001)
            return ledger.make()

    else:

        def factory() -> Any:  # type: ignore[misc]
            entered.set()
            opened.wait(30)
            return ledger.make()

    return kit.pool(factory=factory, **options)


@pytest.mark.parametrize("slow_kit", KITS, ids=lambda k: k.flavour)
@pytest.mark.parametrize("fast_kit", KITS, ids=lambda k: k.flavour)
@pytest.mark.parametrize("stop", ["cancel", "interrupt"])
async def test_a_startup_ended_mid_prefill_closes_every_pool_it_opened(
    fast_kit: type[Kit], slow_kit: type[Kit], stop: str
) -> None:
    fast = fast_kit(Ledger())
    slow = slow_kit(Ledger())
    entered, opened = threading.Event(), threading.Event()
    fast_pool = fast.pool(pool_size=3)
    slowest = slow_pool(slow, entered, opened, pool_size=2)
    starting = lifespan(fast=fast_pool, slow=slowest)(FastAPI())

    async def start() -> None:
        if stop == "interrupt":
            await eventually(lambda: fast_pool.stats().idle == 3, 30)
            await eventually(entered.is_set, 30)
            raise Interrupt
        await starting.__aenter__()

    if stop == "cancel":
        task = asyncio.ensure_future(starting.__aenter__())
        await eventually(lambda: fast_pool.stats().idle == 3, 30)
        await eventually(entered.is_set, 30)
        task.cancel()
        opened.set()  # a thread factory cannot be cancelled: let it return
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        # An interrupt raised in the server while startup runs reaches the
        # lifespan's gather through the task that waits on it.
        task = asyncio.ensure_future(starting.__aenter__())
        with pytest.raises(Interrupt):
            await asyncio.gather(task, start())
        task.cancel()
        opened.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    for kit, pool in ((fast, fast_pool), (slow, slowest)):
        await eventually(closed_and_released(kit, pool), 30)
        kit.ledger.assert_released_once()
        stats = pool.stats()
        assert stats.size == stats.idle == stats.in_use == 0
    assert fast.ledger.made  # the fast pool had filled before the startup ended


@pytest.mark.parametrize("kit_class", KITS, ids=lambda k: k.flavour)
async def test_a_failed_prefill_raises_one_line_naming_the_pool_and_its_cause(
    kit_class: type[Kit],
) -> None:
    failing = kit_class(Ledger(factory_failures=10))
    healthy = kit_class(Ledger())
    bad = failing.pool(pool_size=2, name="orders-db")
    good = healthy.pool(pool_size=2)
    starting = lifespan(orders=bad, cache=good)(FastAPI())
    with pytest.raises(PoolStartupError) as caught:
        await starting.__aenter__()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "pool 'orders' (orders-db) failed to start: prefill created 0 of 2 resources; "
        "first error: ConnectionError: factory failed."
    )
    assert "lifespan(prefill=False)" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert set(caught.value.errors) == {"orders"}
    assert isinstance(caught.value.errors["orders"], BaseExceptionGroup)
    assert bad.stats().closed and good.stats().closed
    await eventually(lambda: not healthy.ledger.live)


async def test_several_failed_pools_are_each_named() -> None:
    first = AsyncKit(Ledger(factory_failures=10)).pool(pool_size=1, name="a-db")
    second = ThreadKit(Ledger(factory_failures=10)).pool(pool_size=1, name="b-db")
    with pytest.raises(PoolStartupError) as caught:
        await lifespan(a=first, b=second)(FastAPI()).__aenter__()
    message = str(caught.value)
    assert "pool 'a' (a-db) failed to start" in message
    assert "pool 'b' (b-db) failed to start" in message
    assert set(caught.value.errors) == {"a", "b"}


def test_uvicorn_reports_a_failed_startup_in_a_few_lines(capfd: pytest.CaptureFixture[str]) -> None:
    pool = ThreadKit(Ledger(factory_failures=10)).pool(pool_size=5, name="orders-db")
    app = FastAPI(lifespan=lifespan(db=pool))
    with pytest.raises(RuntimeError, match="failed to start"), serve(app):
        pass
    report = capfd.readouterr().err
    assert "pool 'db' (orders-db) failed to start: prefill created 0 of 5 resources" in report
    assert "ExceptionGroup" not in report
    # A traceback through the lifespan and the message: not one per failed creation.
    assert len(report.splitlines()) < 30, report
