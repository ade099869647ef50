"""What a ``ThreadPool`` runs besides its callers' own calls: the releasers,
the creations for the pool (prefill, the maintainer) and the maintainer
thread. It holds the pool's lock and is the state's ``Signals`` (called
under that lock).
"""

from __future__ import annotations

import logging
import threading
from typing import Final, Generic, TypeVar

from escudeiro_pools._events import Observers
from escudeiro_pools._options import FOREVER, Options
from escudeiro_pools._slot import GONE, LEASED, Slot
from escudeiro_pools._state import PoolState
from escudeiro_pools._thread_calls import ThreadCalls

__all__ = ["ThreadUpkeep"]

T = TypeVar("T")

logger: Final = logging.getLogger("escudeiro_pools")


class ThreadUpkeep(Generic[T]):
    """The pool's lock, its releasers and creations, and its maintainer thread."""

    __slots__ = ("_calls", "_events", "_state", "changed", "lock", "maintainer")

    def __init__(self, options: Options, calls: ThreadCalls[T], events: Observers) -> None:
        self.lock = threading.Lock()
        #: Notified (under ``lock``) whenever the maintainer or a waiting
        #: ``close``/``wait_ready`` may have something to see.
        self.changed = threading.Condition(self.lock)
        self._state: PoolState[T] = PoolState(options, self)
        self._calls = calls
        self._events = events
        self.maintainer: threading.Thread | None = None

    @property
    def state(self) -> PoolState[T]:
        return self._state

    # -- releasers --------------------------------------------------------------------

    def release_all(self, slots: list[Slot[T]]) -> list[Exception]:
        """Release retired slots one by one; returns the releaser errors.

        An interrupt (``KeyboardInterrupt``) in one releaser does not stop
        the others: every slot is released and its capacity freed, then the
        first interrupt is raised.
        """
        errors: list[Exception] = []
        interrupt: BaseException | None = None
        for slot in slots:
            error = None
            try:
                error = self._calls.release(slot.resource)
            except BaseException as exc:
                interrupt = interrupt or exc
                with self.lock:
                    self._state.release_done(failed=True)
            else:
                with self.lock:
                    self._state.release_done(failed=error is not None)
            try:
                self.destroyed(slot)
            except BaseException as exc:
                interrupt = interrupt or exc
            if error is not None:
                errors.append(error)
        if interrupt is not None:
            raise interrupt
        return errors

    def release_aside(self, slot: Slot[T]) -> None:
        """Release ``slot`` in a thread of its own, without waiting for it."""
        threading.Thread(
            target=self.release_all, args=([slot],), name=f"{self._state.name} releaser"
        ).start()

    def destroyed(self, slot: Slot[T]) -> None:
        if self._events.active:
            self._events.destroyed(slot.resource, slot.fate)

    # -- creations for the pool ---------------------------------------------------------

    def created(self, seconds: float, slot: Slot[T]) -> None:
        """Tell the observers; if one is interrupted, a slot lent for it is released."""
        if self._events.active:
            try:
                self._events.created(seconds)
            except BaseException:
                if slot.state == LEASED:
                    with self.lock:
                        stale = self._state.end_lease(slot, slot.serial, "broken")
                    if stale is not None:
                        self.release_all([stale])
                raise

    def create_placed(self, prefill: bool) -> None:
        """Create one resource for the pool under a reservation already made."""
        try:
            resource, seconds = self._calls.create()
        except BaseException as exc:
            with self.lock:
                self._state.creation_failed(exc, prefill=prefill)
            raise
        with self.lock:
            slot = self._state.creation_done(resource, for_caller=False, prefill=prefill)
        if slot.state == GONE:
            self.release_all([slot])
        self.created(seconds, slot)

    # -- the maintainer thread ----------------------------------------------------------

    def start_maintainer(self) -> None:
        """Under the lock: start the maintainer thread if the pool needs one."""
        if self.maintainer is None and self._state.needs_maintainer():
            thread = threading.Thread(
                target=self._maintain, name=f"{self._state.name}-maintainer", daemon=True
            )
            self.maintainer = thread
            thread.start()

    def _maintain(self) -> None:
        me = threading.current_thread()
        state = self._state
        while True:
            with self.lock:
                if self.maintainer is not me:
                    return  # forked, or replaced
                if not state.needs_maintainer():
                    self.maintainer = None
                    return
                plan = state.maintain()
                if not (plan.creations or plan.retire or plan.leaks):
                    delay = None if plan.wake is None else max(0.0, plan.wake - state.clock())
                    self.changed.wait(None if delay is None else min(delay, FOREVER))
                    continue
            for slot in plan.leaks:
                logger.warning(
                    "pool %r: a resource has been leased for more than %g s; acquired at %s",
                    state.name,
                    state.leak_timeout,
                    slot.site or "<unknown>",
                )
            # The maintainer survives whatever its work raises: nothing else restarts it.
            try:
                self.release_all([slot for slot, _ in plan.retire])
            except BaseException:
                logger.exception("pool %r: the maintainer's releaser was interrupted", state.name)
            for _ in range(plan.creations):
                try:
                    self.create_placed(False)
                except BaseException:
                    level = logging.DEBUG if state.breaker.is_open else logging.WARNING
                    logger.log(
                        level,
                        "pool %r: the maintainer failed to create a resource",
                        state.name,
                        exc_info=True,
                    )

    # -- the state's signals (under the lock) -------------------------------------------

    def _wake_maintainer(self) -> None:
        if self.maintainer is None:
            self.start_maintainer()
        else:
            self.changed.notify_all()

    def _progressed(self) -> None:
        self.changed.notify_all()

    def _drained(self) -> None:
        self.changed.notify_all()

    # pragma: no mutate start
    def after_fork(self) -> None:  # pragma: no cover - runs in the child (tests/test_fork.py)
        # The lock may have been held by a thread that does not exist in the child.
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.maintainer = None
        self._state.forget()

    # pragma: no mutate end
