"""Where a lease was taken: the caller's code, and the HTTP route it serves.

Walks the stack only while lease tracking is on (``leak_timeout`` set).
"""

from __future__ import annotations

import asyncio
import os
import sys
from types import FrameType

__all__ = ["call_site"]

_STDLIB = os.path.dirname(os.__file__) + os.sep
_ALWAYS_SKIPPED = (
    os.path.dirname(__file__) + os.sep,
    _STDLIB + "contextlib.py",
    _STDLIB + "asyncio" + os.sep,
    _STDLIB + "threading.py",
    _STDLIB + "concurrent" + os.sep,
)
# Machinery between the user's code and the pool (frameworks, mutmut's
# trampolines in mutation testing); skipped when imported.
_FRAMEWORKS = ("anyio", "starlette", "fastapi", "uvicorn", "uvloop", "mutmut")
_DEPTH = 64


def _skipped() -> tuple[str, ...]:
    prefixes = list(_ALWAYS_SKIPPED)
    for name in _FRAMEWORKS:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            prefixes.append(os.path.dirname(path) + os.sep)
    return tuple(prefixes)


def call_site() -> str:
    """``file:line in function`` of the code that asked for the resource.

    When the stack serves an HTTP request (Starlette or FastAPI), the
    request's method, route and endpoint are named too: with
    ``Depends(pool.lease)`` no frame of the user's own runs at checkout.
    """
    skipped = _skipped()
    root = _task_root()
    frame: FrameType | None = sys._getframe(1)
    site = None
    depth = 0
    while frame is not None and depth < _DEPTH:
        depth += 1
        filename = frame.f_code.co_filename
        if site is None and not filename.startswith(skipped):
            site = f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        # The request a task serves sits further up its own stack.
        code = frame.f_code
        has_request = "request" in code.co_varnames or "request" in code.co_cellvars
        route = _route(frame) if has_request else None
        if route is not None:
            return route if site is None else f"{site}, serving {route}"
        # Past a task's first coroutine lies the code running the event
        # loop, which did not ask for the resource.
        frame = None if frame is root else frame.f_back
    return site or "<unknown>"


def _task_root() -> FrameType | None:
    """The frame of the running task's own coroutine, or None outside a task."""
    if asyncio._get_running_loop() is None:
        return None
    task = asyncio.current_task()
    frame = getattr(task.get_coro(), "cr_frame", None) if task is not None else None
    return frame if isinstance(frame, FrameType) else None


def _route(frame: FrameType) -> str | None:
    """``GET /items/{id} (endpoint app.read_item)`` if ``frame`` holds an HTTP request."""
    request = frame.f_locals.get("request")
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict) or scope.get("type") not in ("http", "websocket"):
        return None
    method = scope.get("method", "WEBSOCKET")
    path = getattr(scope.get("route"), "path", None) or scope.get("path", "?")
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return f"{method} {path}"
    module = getattr(endpoint, "__module__", None)
    name = getattr(endpoint, "__qualname__", None) or repr(endpoint)
    return f"{method} {path} (endpoint {module}.{name})" if module else f"{method} {path} ({name})"
