"""What an ``AsyncPool`` runs on its event loop besides its callers' awaits:
the releasers, the creations for the pool (prefill, the maintainer), the
maintainer, and the binding to one loop. It is also the state's ``Signals``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final, Generic, TypeVar

from escudeiro_pools import _report
from escudeiro_pools._async_calls import AsyncCalls
from escudeiro_pools._binding import Binding
from escudeiro_pools._errors import PoolError, PoolTimeout
from escudeiro_pools._events import Observers
from escudeiro_pools._options import Options
from escudeiro_pools._protocol import Grant
from escudeiro_pools._slot import GONE, LEASED, Slot
from escudeiro_pools._state import PoolState

__all__ = ["AsyncUpkeep", "Claim"]

T = TypeVar("T")

logger: Final = logging.getLogger("escudeiro_pools")


class Claim:
    """A caller waits for the releaser of a stale slot, to get what comes after it."""

    __slots__ = ("error", "grant", "wanted")

    def __init__(self) -> None:
        self.wanted = True
        self.grant: Grant | None = None
        self.error: PoolError | None = None


class AsyncUpkeep(Generic[T]):
    """The pool's own tasks on its loop, and which loop that is."""

    __slots__ = ("_calls", "_dead", "_events", "_state", "_timeout", "binding", "loop")

    @property
    def state(self) -> PoolState[T]:
        return self._state

    def __init__(self, options: Options, calls: AsyncCalls[T], events: Observers) -> None:
        #: The pool's state; this object is its ``Signals``.
        self._state: PoolState[T] = PoolState(options, self)
        acquire_timeout = options.acquire_timeout
        self._calls = calls
        self._events = events
        self._timeout = acquire_timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.binding: Binding | None = None
        # Bindings of closed loops whose tasks never finished: kept referenced.
        self._dead: list[Binding] = []

    # -- the loop ---------------------------------------------------------------------

    def on_loop(self, binding: Binding | None) -> bool:
        """Whether the pool still runs on the loop a coroutine began on.

        If not, that loop is closed or gone, and what was in flight there is
        forgotten when the next loop takes the pool over: the coroutine's
        cleanup (or its closing, when a dead loop's task is collected) must
        leave the pool's state alone.
        """
        return binding is self.binding and (binding is None or not binding.loop.is_closed())

    def bind(self) -> Binding:
        """The binding of the running loop, taking the pool over from a closed one.

        Raises:
            PoolError: the pool has live resources on another loop that is open.
        """
        loop = asyncio.get_running_loop()
        binding = self.binding
        if binding is not None and binding.loop is loop:
            return binding
        state = self._state
        if binding is not None:
            live = len(state.slots) + state.creating + state.releasing
            if live or state.queue.waiting:
                if not binding.loop.is_closed():
                    raise PoolError(
                        f"pool {state.name!r} has {_report.plural(live, 'live resource')} "
                        "bound to another "
                        "event loop that is still open; dispose() or close() it in that loop "
                        "first, or make one pool per loop"
                    )
                # That loop is gone: its resources cannot be touched any more.
                state.forget()
                if binding.tasks or binding.maintainer is not None:
                    # Its unfinished tasks stay referenced: collected, their
                    # coroutines would run this pool's cleanup against the
                    # state it has just forgotten.
                    self._dead.append(binding)
            binding.abandon()
        self.binding = binding = Binding(loop, state)
        self.loop = loop
        self.start_maintainer(binding)
        return binding

    def forget(self) -> None:  # pragma: no cover - runs in a forked child
        self.binding = None
        self.loop = None

    # -- releasers --------------------------------------------------------------------

    def spawn_release(
        self, slot: Slot[T], claim: Claim | None = None, *, report: bool = True
    ) -> asyncio.Task[BaseException | None]:
        """Release a retired slot in a task of its own (a cancelled caller cannot
        interrupt it); with ``claim``, its capacity goes to the waiting caller."""
        binding = self.binding
        assert binding is not None
        return binding.spawn(self._run_releaser(slot, claim, report))

    async def _run_releaser(
        self, slot: Slot[T], claim: Claim | None, report: bool
    ) -> BaseException | None:
        binding = self.binding
        error: BaseException | None = None
        try:
            error = await self._calls.release(slot.resource, report=report)
        finally:
            if not self.on_loop(binding):
                pass
            elif claim is None:
                self._state.release_done(failed=error is not None)
            else:
                try:
                    claim.grant = self._state.replaced(claim.wanted, failed=error is not None)
                except PoolError as refused:
                    claim.error = refused
        if self._events.active:
            self._events.destroyed(slot.resource, slot.fate)
        return error

    async def release_all(self, slots: list[Slot[T]]) -> list[BaseException]:
        """Release retired slots concurrently; a cancelled caller leaves them running."""
        if not slots:
            return []
        tasks = [self.spawn_release(slot, report=False) for slot in slots]
        results = await asyncio.shield(asyncio.gather(*tasks))
        return [r for r in results if r is not None]

    # -- creations for the pool ---------------------------------------------------------

    def cut_off(self, timeout: float | None) -> PoolTimeout:
        """What the breaker records for a factory call cut off by a deadline."""
        return PoolTimeout(
            f"pool {self._state.name!r}: the factory did not finish within {timeout} s"
        )

    def created(self, seconds: float, slot: Slot[T]) -> None:
        """Tell the observers; if one is interrupted, a slot lent for it is released."""
        if self._events.active:
            try:
                self._events.created(seconds)
            except BaseException:
                if slot.state == LEASED:
                    stale = self._state.end_lease(slot, slot.serial, "broken")
                    if stale is not None:
                        self.spawn_release(stale)
                raise

    def spawn_creation(self, binding: Binding, *, prefill: bool) -> asyncio.Task[None]:
        """Create one resource for the pool under a reservation already made."""
        started = [False]
        task = binding.spawn(self._create_placed(started, prefill))

        def never_started(task: asyncio.Task[None]) -> None:
            # Cancelled before its first step: its body never ran to use the reservation.
            if not started[0] and self.on_loop(binding):
                self._state.creation_failed(asyncio.CancelledError(), prefill=prefill)

        task.add_done_callback(never_started)
        return task

    async def _create_placed(self, started: list[bool], prefill: bool) -> None:
        started[0] = True
        binding = self.binding
        timeout = self._timeout
        state = self._state
        try:
            async with asyncio.timeout(timeout) as scope:
                resource, seconds = await self._calls.create()
        except BaseException as exc:
            cut = isinstance(exc, TimeoutError) and scope.expired()
            error = self.cut_off(timeout) if cut else exc
            if self.on_loop(binding):
                state.creation_failed(error, prefill=prefill)
            if not prefill and isinstance(error, Exception):
                # While the breaker is open its failed probes are expected: it warned once.
                level = logging.DEBUG if state.breaker.is_open else logging.WARNING
                logger.log(
                    level,
                    "pool %r: the maintainer failed to create a resource",
                    state.name,
                    exc_info=error,
                )
            if cut:
                raise PoolTimeout(
                    f"pool {state.name!r}: creating a resource took more than {timeout} s "
                    "(acquire_timeout)"
                ) from None
            raise
        slot = state.creation_done(resource, for_caller=False, prefill=prefill)
        if slot.state == GONE:
            self.spawn_release(slot)
        self.created(seconds, slot)

    # -- the maintainer -------------------------------------------------------------

    def start_maintainer(self, binding: Binding) -> None:
        if binding.maintainer is None and self._state.needs_maintainer():
            binding.nudge.clear()
            binding.maintainer = binding.loop.create_task(self._maintain(binding))

    async def stop_maintainer(self, binding: Binding) -> None:
        task = binding.maintainer
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _maintain(self, binding: Binding) -> None:
        state = self._state
        try:
            while True:
                plan = state.maintain()
                for slot, _ in plan.retire:
                    self.spawn_release(slot)
                for slot in plan.leaks:
                    logger.warning(
                        "pool %r: a resource has been leased for more than %g s; acquired at %s",
                        state.name,
                        state.leak_timeout,
                        slot.site or "<unknown>",
                    )
                if plan.creations:
                    creations = range(plan.creations)
                    tasks = [self.spawn_creation(binding, prefill=False) for _ in creations]
                    await asyncio.gather(*tasks, return_exceptions=True)
                    continue
                if not state.needs_maintainer():
                    return
                delay = None if plan.wake is None else max(0.0, plan.wake - state.clock())
                binding.nudge.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await binding.nudge.wait()
        finally:
            if self.on_loop(binding) and binding.maintainer is asyncio.current_task():
                binding.maintainer = None

    # -- the state's signals -------------------------------------------------------------

    def _wake_maintainer(self) -> None:
        binding = self.binding
        if binding is not None:
            if binding.maintainer is None:
                self.start_maintainer(binding)
            else:
                binding.nudge.set()

    def _progressed(self) -> None:
        binding = self.binding
        if binding is not None and binding.ready:
            binding.wake(binding.ready)

    def _drained(self) -> None:
        binding = self.binding
        if binding is not None and binding.drains:
            binding.wake(binding.drains)
