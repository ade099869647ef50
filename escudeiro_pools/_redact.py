"""Password masking for every text a pool shows: errors, logs and stats."""

from __future__ import annotations

import re

__all__ = ["describe_error", "mask_secrets"]

_URL_PASSWORD = re.compile(r"(://[^\s:/@]*:)[^\s@]*@")
_KEY_PASSWORD = re.compile(
    r"""((?:ssl)?password\s*[=:]\s*)('[^']*'|"[^"]*"|[^\s&;,'")]+)""", re.IGNORECASE
)


def mask_secrets(text: str) -> str:
    """``text`` with anything that looks like a password replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return _KEY_PASSWORD.sub(r"\1***", text)


def describe_error(error: BaseException) -> str:
    """``Type: message`` with anything that looks like a password masked."""
    return mask_secrets(f"{type(error).__name__}: {error}")
