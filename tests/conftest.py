from __future__ import annotations

import pytest

from tests.kit import AsyncKit, FakeClock, Kit, Ledger, ThreadKit


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture(params=["async", "thread"])
def kit(request: pytest.FixtureRequest, ledger: Ledger) -> Kit:
    return AsyncKit(ledger) if request.param == "async" else ThreadKit(ledger)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
