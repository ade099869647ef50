"""Validation of constructor arguments shared by both pools.

Every check here refuses input that is certainly wrong, with a message that
says what to pass instead.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable
from typing import Any

__all__ = [
    "check_callable",
    "check_name",
    "check_not_async",
    "check_pool_size",
    "check_optional_seconds",
    "check_seconds",
    "is_lifo",
]

_names = itertools.count(1)


def check_pool_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"pool_size must be a positive int, got {type(value).__name__} {value!r}; "
            "pass the most resources that may exist at once, e.g. pool_size=10"
        )
    if value < 1:
        raise ValueError(
            f"pool_size must be a positive int, got {value}; "
            "pass the most resources that may exist at once, e.g. pool_size=10"
        )
    return value


def check_optional_seconds(option: str, value: object) -> float | None:
    """Validate a duration in seconds where ``None`` means "no limit"."""
    if value is None:
        return None
    return check_seconds(option, value, hint="a number of seconds or None for no limit")


def check_seconds(
    option: str, value: object, *, allow_negative: bool = False, hint: str = "a number of seconds"
) -> float:
    """Validate a duration in seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{option} must be {hint}, got {type(value).__name__} {value!r}")
    seconds = float(value)
    if math.isnan(seconds):
        raise ValueError(f"{option} must be {hint}, got nan")
    if seconds < 0 and not allow_negative:
        raise ValueError(f"{option} must not be negative, got {value}; pass {hint}")
    return seconds


def check_callable(option: str, value: object, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if not callable(value):
        raise TypeError(f"{option} must be callable, got {type(value).__name__} {value!r}")
    return value


def check_not_async(option: str, value: Callable[..., Any] | None) -> None:
    """Refuse coroutine functions where the thread pool would call them blindly."""
    if value is None:
        return
    target = value if inspect.isroutine(value) else getattr(value, "__call__", value)  # noqa: B004
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise TypeError(
            f"ThreadPool {option} must be a plain function, got the async function "
            f"{getattr(value, '__qualname__', value)!r}; ThreadPool calls it in the "
            "caller's thread and cannot await it: use AsyncPool for async resources"
        )


def check_exception_types(option: str, value: object) -> tuple[type[BaseException], ...]:
    """An exception class or a tuple of them, as a tuple."""
    types = value if isinstance(value, tuple) else (value,)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"{option} must be an exception class or a tuple of them, e.g. "
                f"{option}=(ConnectionError,), got {value!r}"
            )
    return types


def check_name(name: object, kind: str) -> str:
    if name is None:
        return f"{kind}-{next(_names)}"
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str or None, got {name!r}")
    return name


def is_lifo(queue_class: object, lifo: type, fifo: type, pool_kind: str) -> bool:
    """Map the seed's ``queue_class`` to an ordering: True for LIFO, False for FIFO."""
    if isinstance(queue_class, type):
        if issubclass(queue_class, lifo):
            return True
        if queue_class is fifo:
            return False
    package = lifo.__module__.split(".")[0]
    raise TypeError(
        f"{pool_kind} queue_class must be {package}.{lifo.__name__} (most recently used "
        f"first) or {package}.{fifo.__name__} (oldest first), got {queue_class!r}"
    )
