"""Keyword arguments a recipe hands to its driver: checked when the pool is made."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from escudeiro_pools._options import did_you_mean

__all__ = ["check_passthrough", "numbered_name"]


def check_passthrough(
    caller: str,
    passed: Iterable[str],
    own: Iterable[str],
    target: Callable[..., Any],
    target_name: str,
) -> None:
    """Refuse a keyword that is neither one of ``caller``'s options (``own``) nor a
    keyword-accepting parameter of ``target``, naming the nearest valid one.

    Raises:
        TypeError: the first unknown keyword.
    """
    accepted = [
        parameter.name
        for parameter in inspect.signature(target).parameters.values()
        if parameter.kind
        in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and parameter.name not in ("self", "loop")
    ]
    own = list(own)
    for key in passed:
        if key in accepted:
            continue
        raise TypeError(
            f"{caller}() got an unexpected keyword argument {key!r}; "
            f"{did_you_mean(key, [*own, *accepted])}pass one of its "
            f"options ({', '.join(own)}) or an option of {target_name} ({', '.join(accepted)})"
        )


_counters: dict[str, itertools.count[int]] = {}


def numbered_name(base: str) -> str:
    """``base`` the first time, then ``base-2``, ``base-3``...: default pool names apart."""
    number = next(_counters.setdefault(base, itertools.count(1)))
    return base if number == 1 else f"{base}-{number}"
