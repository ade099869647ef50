"""Optional peers: escudeiro 0.4.0 and asyncio-connection-pool, when installed."""

from __future__ import annotations

from typing import Any

__all__ = ["OldAsyncPool", "OldThreadPool", "connection_pool_class", "noop_strategy"]

try:
    from escudeiro.ds import AsyncPool as OldAsyncPool
    from escudeiro.ds import ThreadPool as OldThreadPool
except ImportError:  # pragma: no cover - the bench environment has it
    OldAsyncPool = OldThreadPool = None


def connection_pool_class() -> Any:
    """``asyncio_connection_pool.ConnectionPool``, or None."""
    try:
        from asyncio_connection_pool import ConnectionPool
    except ImportError:
        return None
    return ConnectionPool


def noop_strategy() -> Any:
    """An asyncio-connection-pool strategy over plain objects."""
    from asyncio_connection_pool import ConnectionStrategy

    class Noop(ConnectionStrategy[object]):  # type: ignore[misc]  # untyped where absent
        async def make_connection(self) -> object:
            return object()

        def connection_is_closed(self, conn: object) -> bool:
            return False

        async def close_connection(self, conn: object) -> None:
            return None

    return Noop()
