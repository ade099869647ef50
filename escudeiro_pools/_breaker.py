"""The outage breaker: consecutive factory failures, backoff, and when to probe.

Pure bookkeeping, owned by the pool's state, which alone calls these
methods. Failures are always counted and backed off (the maintainer uses the
backoff so a dead backend is not hammered); callers are refused only when
``fail_fast_after`` is set and reached.
"""

from __future__ import annotations

import logging
import random

from escudeiro_pools._redact import describe_error

__all__ = ["Breaker", "times_in_a_row"]

logger = logging.getLogger("escudeiro_pools")


def times_in_a_row(failures: int) -> str:
    return "once" if failures == 1 else f"{failures} times in a row"


class Breaker:
    """Counts consecutive factory failures and schedules retries with jittered backoff."""

    __slots__ = (
        "_delay",
        "_initial",
        "_maximum",
        "_name",
        "error",
        "failures",
        "is_open",
        "probing",
        "retry_at",
        "threshold",
    )

    def __init__(self, name: str, threshold: int | None, backoff: tuple[float, float]) -> None:
        self._name = name
        self.threshold = threshold
        self._initial, self._maximum = backoff
        self._delay = self._initial
        self.failures = 0
        self.error: BaseException | None = None
        self.is_open = False
        #: A background probe (the one creation allowed while open) is running.
        self.probing = False
        #: When the factory may next be tried in the background (after a failure).
        self.retry_at = 0.0

    def failed(self, error: BaseException, now: float) -> None:
        """A factory call failed at ``now`` (or was cut off by a deadline)."""
        self.failures += 1
        self.error = error
        self.probing = False
        self.retry_at = now + self._jittered()
        self._delay = min(self._maximum, self._delay * 2)
        if not self.is_open and self.threshold is not None and self.failures >= self.threshold:
            self.is_open = True
            logger.warning(
                "pool %r: the factory failed %s (%s); refusing callers that would create "
                "until a retry succeeds",
                self._name,
                times_in_a_row(self.failures),
                describe_error(error),
            )

    def succeeded(self) -> None:
        """A factory call succeeded."""
        if self.is_open:
            self.is_open = False
            logger.info(
                "pool %r: the factory succeeded again after %d failures; serving callers",
                self._name,
                self.failures,
            )
        self.failures = 0
        self.error = None
        self.probing = False
        self.retry_at = 0.0
        self._delay = self._initial

    def start_probe(self) -> None:
        """The one creation allowed while open has been reserved."""
        self.probing = True

    def probe_ended(self) -> None:
        """A creation was cancelled: it told neither success nor failure."""
        self.probing = False

    def interrupted(self, now: float) -> None:
        """A creation was interrupted (a ``BaseException``) at ``now``: not a failure,
        but the background does not retry before the first backoff step, so a
        factory that keeps raising one is not called in a tight loop."""
        self.probing = False
        self.retry_at = max(self.retry_at, now + self._initial)

    def reset(self) -> None:
        """Forget every failure (the pool was reopened)."""
        self.succeeded()

    def retry_after(self, now: float) -> float:
        """Seconds until the next background try."""
        return max(0.0, self.retry_at - now)

    def last_error(self) -> str | None:
        return None if self.error is None else describe_error(self.error)

    def _jittered(self) -> float:
        # "Equal jitter": between half and all of the current delay, so many
        # pools that failed together do not retry together.
        return self._delay * (0.5 + random.random() / 2)
