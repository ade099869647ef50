"""Where a lease was taken: the first caller frame outside the pool machinery."""

from __future__ import annotations

import os
import sys
from types import FrameType

__all__ = ["call_site"]

_SKIPPED = (
    os.path.dirname(__file__) + os.sep,
    os.path.dirname(os.__file__) + os.sep + "contextlib.py",
    os.path.dirname(os.__file__) + os.sep + "asyncio" + os.sep,
    os.path.dirname(os.__file__) + os.sep + "threading.py",
)


def call_site() -> str:
    """``file:line in function`` of the code that asked for the resource."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_SKIPPED):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
