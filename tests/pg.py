"""Helpers for tests against a real PostgreSQL."""

from __future__ import annotations

import asyncpg


async def backends_named(dsn: str, application_name: str) -> int:
    """How many server sessions carry ``application_name`` (a pool's connections)."""
    probe = await asyncpg.connect(dsn)
    try:
        count = await probe.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application_name
        )
        return int(count)
    finally:
        await probe.close()
