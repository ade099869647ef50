from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from escudeiro_pools._books import Books
from escudeiro_pools._state import PoolState
from tests.kit import AsyncKit, FakeClock, Kit, Ledger, ThreadKit

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop does not build on Windows
    HAS_UVLOOP = False
else:
    HAS_UVLOOP = True

HERE = Path(__file__).parent
#: The tests that also run on uvloop, the loop production servers use.
ON_EVERY_LOOP = (
    HERE / "test_contract.py",
    HERE / "reliability" / "test_cancellation.py",
    HERE / "integrations",
)


def event_loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    if HAS_UVLOOP:
        loops["uvloop"] = uvloop.new_event_loop
    return loops


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    path = Path(str(item.path))
    if any(path == place or place in path.parents for place in ON_EVERY_LOOP):
        return event_loops()
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture(params=["async", "thread"])
def kit(request: pytest.FixtureRequest, ledger: Ledger) -> Kit:
    return AsyncKit(ledger) if request.param == "async" else ThreadKit(ledger)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


#: The state's transitions: every public method but the readings.
READINGS = {"stats", "lease_infos", "describe", "check_invariants", "has_room", "ready"}
READINGS |= {"needs_maintainer", "closed_error"}


#: Off for the tests marked ``unchecked`` (throughput runs check at their end).
_CHECKING = {"on": True}


def _checked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def transition(state: PoolState[Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(state, *args, **kwargs)
        finally:
            if _CHECKING["on"]:
                state.check_invariants()

    return transition


@pytest.fixture(autouse=True, scope="session")
def invariants_after_every_transition() -> Iterator[None]:
    """Every documented identity of the pool's state holds after every
    transition of every pool the suite makes (free in production)."""
    originals = {
        (cls, name): method
        for cls in (PoolState, Books)
        for name, method in vars(cls).items()
        if callable(method) and not name.startswith("_") and name not in READINGS
    }
    for (cls, name), method in originals.items():
        setattr(cls, name, _checked(method))
    try:
        yield
    finally:
        for (cls, name), method in originals.items():
            setattr(cls, name, method)


@pytest.fixture(autouse=True)
def _unchecked_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    _CHECKING["on"] = request.node.get_closest_marker("unchecked") is None
    try:
        yield
    finally:
        _CHECKING["on"] = True
