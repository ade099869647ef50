from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from examples import serving
from tests.conftest import event_loops

# ``dsn``, the session's PostgreSQL, is in the repository's conftest.py: the
# documentation's examples use the same server.


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A sync test drives a server ``serve`` runs: on each event loop in turn. An
    # async test runs on each loop itself (tests/conftest.py).
    if "server_loop" in metafunc.fixturenames:
        sync = not inspect.iscoroutinefunction(metafunc.function)
        metafunc.parametrize(
            "server_loop", list(event_loops()) if sync else ["auto"], indirect=True
        )


@pytest.fixture(autouse=True)
def server_loop(request: pytest.FixtureRequest) -> Iterator[str]:
    """The event loop of the servers ``serve`` starts in this test."""
    before = serving.LOOP
    serving.LOOP = request.param
    try:
        yield request.param
    finally:
        serving.LOOP = before
