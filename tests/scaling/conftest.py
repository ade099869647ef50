from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from examples.embedded_pg import embedded_server
from tests.pgbouncer import PgBouncer, find_pgbouncer, running_pgbouncer

MISSING = "pgbouncer is not installed (looked at $PGBOUNCER, on PATH and in /usr/sbin)"
INSTALL = "`apt-get install -y pgbouncer` to run them"

#: The PgBouncer tests left out of this run, for the one line that says so.
left_out: list[pytest.Item] = []


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without pgbouncer, leave its tests out (one line says so at the end);
    under ``CI=true`` keep them, and their fixture fails them."""
    if find_pgbouncer() is not None or on_ci():
        return
    left_out.extend(item for item in items if item.get_closest_marker("pgbouncer"))
    if left_out:
        items[:] = [item for item in items if item not in left_out]
        config.hook.pytest_deselected(items=left_out)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if left_out:
        terminalreporter.write_line(
            f"{MISSING}: {len(left_out)} PgBouncer tests did not run; {INSTALL}", yellow=True
        )


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """An embedded PostgreSQL for these tests (PgBouncer needs its socket and user)."""
    with embedded_server() as server:
        yield server


@pytest.fixture(scope="session")
def direct_dsn(request: pytest.FixtureRequest) -> str:
    """PostgreSQL itself, not through PgBouncer: ``DATABASE_URL`` or the embedded server."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return configured
    return str(request.getfixturevalue("postgres").get_uri())


@pytest.fixture(scope="session")
def pgbouncer_binary() -> str:
    """The ``pgbouncer`` binary; without one a test fails under ``CI=true``, else skips."""
    found = find_pgbouncer()
    if found is None:
        if on_ci():
            pytest.fail(f"{MISSING}: under CI=true the PgBouncer tests must run; {INSTALL}")
        pytest.skip(f"{MISSING}; {INSTALL}")
    return found


@pytest.fixture(scope="session")
def bouncer(postgres: Any, pgbouncer_binary: str) -> Iterator[PgBouncer]:
    """One PgBouncer in transaction mode for the session, in front of ``postgres``."""
    with running_pgbouncer(postgres, pgbouncer_binary) as running:
        yield running


@pytest.fixture
def fresh_bouncer(postgres: Any, pgbouncer_binary: str) -> Iterator[PgBouncer]:
    """A PgBouncer of the test's own (no server connection that another test touched):
    for tests that leave session state on servers, or restart PgBouncer."""
    with running_pgbouncer(postgres, pgbouncer_binary, default_pool_size=3) as running:
        yield running
