from __future__ import annotations

from collections.abc import Iterator

import pytest

from examples.embedded_pg import database_url


@pytest.fixture(scope="session")
def dsn() -> Iterator[str]:
    """A real PostgreSQL: ``DATABASE_URL`` or an embedded server for the session."""
    with database_url() as url:
        yield url
