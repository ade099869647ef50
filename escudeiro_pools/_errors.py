"""Exceptions raised by the pools themselves."""

from __future__ import annotations

__all__ = ["PoolBusy", "PoolClosed", "PoolError", "PoolTimeout", "PoolUnavailable"]


class PoolError(Exception):
    """Base of every error a pool raises by itself."""

    __module__ = "escudeiro_pools"


class _RetryLater(PoolError):
    """A refusal that says when a retry may succeed: ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PoolTimeout(_RetryLater, TimeoutError):
    """The acquire deadline passed while waiting, creating or checking.

    ``retry_after`` estimates when a resource may be free: how long the
    pool's recent callers waited (at least 1 s).
    """

    __module__ = "escudeiro_pools"


class PoolClosed(PoolError):
    """The pool is closed: call ``open()`` before acquiring again."""

    __module__ = "escudeiro_pools"


class PoolBusy(_RetryLater):
    """``max_waiting`` callers already wait: this one is refused at once.

    ``retry_after`` estimates as ``PoolTimeout``'s does.
    """

    __module__ = "escudeiro_pools"


class PoolUnavailable(_RetryLater):
    """The factory keeps failing: callers that would create are refused at once.

    ``__cause__`` is the last error the factory raised; ``retry_after`` is
    the number of seconds until the pool next tries the factory.
    """

    __module__ = "escudeiro_pools"

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message, retry_after)
