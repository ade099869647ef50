"""Exceptions raised by the pools themselves."""

from __future__ import annotations

__all__ = ["PoolClosed", "PoolError", "PoolTimeout"]


class PoolError(Exception):
    """Base of every error a pool raises by itself."""

    __module__ = "escudeiro_pools"


class PoolTimeout(PoolError, TimeoutError):
    """The acquire deadline passed while waiting, creating or checking."""

    __module__ = "escudeiro_pools"


class PoolClosed(PoolError):
    """The pool is closed: call ``open()`` before acquiring again."""

    __module__ = "escudeiro_pools"
