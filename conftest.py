"""Every Python block in README.md and docs/*.md runs as a test, through Sybil.

A block runs as it is shown, top to bottom; the blocks of one page share a
namespace, in order. A block that cannot run alone is preceded by
``<!-- skip: next "why" -->`` and is reported as skipped with that reason.
The pages in ``NEEDS_POSTGRES`` see ``dsn``: the session's PostgreSQL
(``DATABASE_URL``, or an embedded server), which the integration tests share.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser
from sybil.typing import Parser

from examples.embedded_pg import database_url

#: The pages whose blocks talk to PostgreSQL.
NEEDS_POSTGRES = ["docs/asyncpg.md", "docs/fastapi.md"]
#: Every page whose Python blocks run (tests/test_docs.py checks none is missed).
DOCUMENTED = ["README.md", "docs/*.md"]


@pytest.fixture(scope="session")
def dsn() -> Iterator[str]:
    """A real PostgreSQL: ``DATABASE_URL`` or an embedded server for the session."""
    with database_url() as url:
        yield url


def _parsers() -> list[Parser]:
    return [PythonCodeBlockParser(), SkipParser()]


pytest_collect_file = (
    Sybil(_parsers(), patterns=NEEDS_POSTGRES, fixtures=["dsn"], name="postgres")
    + Sybil(_parsers(), patterns=DOCUMENTED, excludes=NEEDS_POSTGRES)
).pytest()
