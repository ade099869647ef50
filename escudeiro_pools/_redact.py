"""Password masking for every text a pool shows: errors, logs and stats.

Connection strings are read as the drivers read them, not matched by a
literal key: a URL's password is its userinfo after the first ``:``, and a
query key is a password once percent-decoded (``pass%77ord`` is
``password`` to asyncpg and libpq alike); a ``key=value`` conninfo (libpq,
psycopg) names it ``password`` or ``sslpassword``, quoted or not. Masking
errs toward hiding: a key that merely ends in ``password`` (any case) is
masked too.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["describe_error", "mask_secrets", "mask_url"]

MASK = "***"

#: A URL in free text: a scheme, ``//``, then up to whitespace or a quote.
_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>`]*""")
#: ``password = value`` in a conninfo string, a repr or a log line.
_KEY_VALUE = re.compile(
    r"""(\b[\w-]*password['"]?\s*[=:]\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,'")}\]]+)""",
    re.IGNORECASE,
)


def _is_secret_key(key: str) -> bool:
    return unquote_plus(key).strip().lower().endswith("password")


def mask_url(url: str) -> str:
    """``url`` with its password (userinfo, or a query key that decodes to one) masked."""
    scheme, sep, remainder = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in map(remainder.find, "/?#") if i >= 0), default=len(remainder))
    netloc, rest = remainder[:cut], remainder[cut:]
    # asyncpg ends the userinfo at the first "@", urllib at the last: mask up to the last.
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hosts}"
    path, question, query = rest.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        fields = []
        for field in query.split("&"):
            key, equals, _ = field.partition("=")
            fields.append(f"{key}={MASK}" if equals and _is_secret_key(key) else field)
        rest = path + "?" + "&".join(fields) + hash_ + fragment
    return f"{scheme}://{netloc}{rest}"


def mask_secrets(text: str) -> str:
    """``text`` with every password in it replaced by ``***``: in URLs, and as
    ``password=value`` (conninfo, reprs, messages)."""
    text = _URL.sub(lambda match: mask_url(match.group()), text)
    return _KEY_VALUE.sub(rf"\1{MASK}", text)


def describe_error(error: BaseException) -> str:
    """``Type: message`` with every password masked."""
    return mask_secrets(f"{type(error).__name__}: {error}")
