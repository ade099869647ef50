"""The pools' options: validated once, in one place, for both flavours.

Every check refuses input that is certainly wrong, with a message that says
what to pass instead.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Options",
    "check_count",
    "check_exception_types",
    "check_seconds",
    "check_timeout",
    "configure",
    "is_async_callable",
]

_names = itertools.count(1)

#: Waits longer than this are waits without a deadline (threading's limit, ~292 years).
FOREVER = threading.TIMEOUT_MAX


@dataclass(slots=True)
class Options:
    """Everything a pool was configured with, validated."""

    name: str
    pool_size: int
    min_size: int
    lifo: bool
    recycle: float | None
    recycle_jitter: float
    max_uses: int | None
    max_idle: float | None
    check: Callable[[Any], Any] | None
    check_after_idle: float
    alive: Callable[[Any], bool] | None
    setup: Callable[[Any], Any] | None
    reset: Callable[[Any], Any] | None
    leak_timeout: float | None
    discard_on: tuple[type[BaseException], ...]
    clock: Callable[[], float]
    acquire_timeout: float | None
    releaser_timeout: float | None
    max_waiting: int | None
    fail_fast_after: int | None
    retry_backoff: tuple[float, float]


def configure(kind: str, lifo: type, fifo: type, arguments: Mapping[str, Any]) -> Options:
    """Validate a pool's constructor ``arguments`` (its ``locals()``); ``kind`` is
    the pool's class name, ``lifo`` and ``fifo`` the queue classes it accepts."""
    a = arguments
    pool_size, min_size, recycle_jitter = a["pool_size"], a["min_size"], a["recycle_jitter"]
    check_callable("factory", a["factory"])
    check_callable("releaser", a["releaser"])
    size = check_count(
        "pool_size", pool_size, minimum=1, hint="the most resources alive at once: pool_size=10"
    )
    floor = check_count("min_size", min_size, hint="the fewest resources to keep alive")
    if floor > size:
        raise ValueError(
            f"min_size must be at most pool_size, got min_size={floor} > pool_size={size}; "
            "lower min_size or raise pool_size"
        )
    recycle = check_seconds("pool_recycle", a["pool_recycle"], allow_negative=True)
    jitter = check_seconds("recycle_jitter", recycle_jitter, hint="a fraction between 0 and 1")
    if jitter >= 1:
        raise ValueError(
            f"recycle_jitter must be a fraction below 1, got {recycle_jitter}; "
            "e.g. 0.05 shortens each lifetime by up to 5%"
        )
    backoff = _check_backoff(a["retry_backoff"])
    return Options(
        name=check_name(a["name"], kind),
        pool_size=size,
        min_size=floor,
        lifo=_is_lifo(a["queue_class"], lifo, fifo, kind),
        recycle=recycle if 0 < recycle < FOREVER else None,
        recycle_jitter=jitter,
        max_uses=_optional_count("max_uses", a["max_uses"], "leases before a resource is replaced"),
        max_idle=check_timeout("max_idle", a["max_idle"]),
        check=check_callable("check", a["check"], allow_none=True),
        check_after_idle=check_seconds("check_after_idle", a["check_after_idle"]),
        alive=check_callable("alive", a["alive"], allow_none=True),
        setup=check_callable("setup", a["setup"], allow_none=True),
        reset=check_callable("reset", a["reset"], allow_none=True),
        leak_timeout=check_timeout("leak_timeout", a["leak_timeout"]),
        discard_on=check_exception_types("discard_on", a["discard_on"]),
        clock=check_callable("clock", a["clock"]),
        acquire_timeout=check_timeout("acquire_timeout", a["acquire_timeout"]),
        releaser_timeout=check_timeout("releaser_timeout", a.get("releaser_timeout")),
        max_waiting=_optional_count("max_waiting", a["max_waiting"], "callers allowed to queue", 0),
        fail_fast_after=_optional_count(
            "fail_fast_after", a["fail_fast_after"], "consecutive factory failures"
        ),
        retry_backoff=backoff,
    )


@functools.cache
def _keywords(init: Callable[..., None], base: Callable[..., None]) -> tuple[str, ...]:
    """The keywords ``init`` takes; with ``**kwargs`` (a subclass forwarding
    them), also those of ``base``, the pool's own ``__init__``."""
    parameters = inspect.signature(init).parameters.values()
    named = [p.name for p in parameters if p.name != "self" and p.kind not in _VARIADIC]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters) and init is not base:
        named += [name for name in _keywords(base, base) if name not in named]
    return tuple(named)


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def did_you_mean(key: str, names: Iterable[str]) -> str:
    """``"did you mean <nearest>=? "``, or ``""`` when no name of ``names`` is near ``key``."""
    import difflib

    close = difflib.get_close_matches(key, list(names), n=1)
    return f"did you mean {close[0]}=? " if close else ""


def check_keywords(
    kind: str, passed: Mapping[str, object], init: Callable[..., None], base: Callable[..., None]
) -> None:
    """Refuse a keyword ``init`` does not take, naming the nearest one it does.

    Raises:
        TypeError: the first unknown keyword.
    """
    known = _keywords(init, base)
    for key in passed:
        if key not in known:
            raise TypeError(
                f"{kind}() got an unexpected keyword argument {key!r}; {did_you_mean(key, known)}"
                f"its options are {', '.join(known)}"
            )


def check_count(option: str, value: object, *, minimum: int = 0, hint: str = "a count") -> int:
    """Validate a whole number of at least ``minimum``."""
    floor = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{option} must be {floor} ({hint}), got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{option} must be {floor} ({hint}), got {value}")
    return value


def _optional_count(option: str, value: object, hint: str, minimum: int = 1) -> int | None:
    if value is None:
        return None
    return check_count(option, value, minimum=minimum, hint=f"{hint}, or None for no limit")


def check_timeout(option: str, value: object) -> float | None:
    """A duration where ``None``, ``math.inf`` or anything beyond ~292 years means "never"."""
    if value is None:
        return None
    seconds = check_seconds(option, value, hint="a number of seconds or None for no limit")
    return None if seconds >= FOREVER else seconds


def check_seconds(
    option: str, value: object, *, allow_negative: bool = False, hint: str = "a number of seconds"
) -> float:
    """Validate a duration in seconds (a real number, not NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{option} must be {hint}, got {type(value).__name__} {value!r}")
    seconds = float(value)
    if math.isnan(seconds):
        raise ValueError(f"{option} must be {hint}, got nan")
    if seconds < 0 and not allow_negative:
        raise ValueError(f"{option} must not be negative, got {value}; pass {hint}")
    return seconds


def _check_backoff(value: object) -> tuple[float, float]:
    hint = "(initial, maximum) seconds, e.g. retry_backoff=(0.1, 10.0)"
    if not isinstance(value, tuple) or len(value) != 2:
        raise TypeError(f"retry_backoff must be a pair {hint}, got {value!r}")
    first = check_seconds("retry_backoff", value[0], hint=hint)
    last = check_seconds("retry_backoff", value[1], hint=hint)
    if first <= 0 or last < first or last >= FOREVER:
        raise ValueError(f"retry_backoff must be {hint} with 0 < initial <= maximum, got {value!r}")
    return (first, last)


def check_callable(option: str, value: object, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if not callable(value):
        raise TypeError(f"{option} must be callable, got {type(value).__name__} {value!r}")
    return value


def is_async_callable(value: object) -> bool:
    """True if calling ``value`` certainly returns an awaitable or an async iterator.

    Sees through ``functools.partial`` (nested), bound methods, ``partialmethod``
    and objects whose ``__call__`` is async.
    """
    seen = 0
    while seen < 32:  # a partial of a partial of ... a bound method
        seen += 1
        if isinstance(value, (functools.partial, functools.partialmethod)):
            value = value.func
        elif inspect.ismethod(value) or isinstance(value, staticmethod | classmethod):
            value = value.__func__
        else:
            break
    if inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value):
        return True
    if inspect.isroutine(value) or isinstance(value, type) or value is None:
        return False
    call = getattr(type(value), "__call__", None)  # noqa: B004 - the class's, not the instance's
    return call is not None and is_async_callable(call)


def check_not_async(option: str, value: object) -> None:
    """Refuse async callables where the thread pool would call them blindly."""
    if value is not None and is_async_callable(value):
        raise TypeError(
            f"ThreadPool {option} must be a plain function, got the async callable "
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


def _is_lifo(queue_class: object, lifo: type, fifo: type, kind: str) -> bool:
    """Map the seed's ``queue_class`` to an ordering: True for LIFO, False for FIFO."""
    if isinstance(queue_class, type):
        if issubclass(queue_class, lifo):
            return True
        if queue_class is fifo:
            return False
    package = lifo.__module__.split(".")[0]
    raise TypeError(
        f"{kind} queue_class must be {package}.{lifo.__name__} (most recently used "
        f"first) or {package}.{fifo.__name__} (oldest first), got {queue_class!r}"
    )
