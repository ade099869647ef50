"""One async face over both pools, so one contract suite runs against each.

``ThreadPool`` calls go through a worker thread: the thread pool really
blocks in a worker thread while the test awaits it.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from escudeiro_pools import AsyncPool, PoolStats, ThreadPool

_ids = itertools.count(1)


class Resource:
    """A stand-in for a connection: knows how often it was released."""

    def __init__(self) -> None:
        self.id = next(_ids)
        self.released = 0
        self.broken = False
        self.dirty = False

    def __repr__(self) -> str:
        return f"<Resource {self.id}>"


class FakeClock:
    """A clock tests move by hand, so ages pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Ledger:
    """Makes and releases resources, and remembers everything it did."""

    made: list[Resource] = field(default_factory=list)
    factory_failures: int = 0
    failed_calls: int = 0
    releaser_failures: int = 0
    factory_delay: float = 0.0
    releaser_delay: float = 0.0
    returns_not_awaitable: bool = False

    def make(self) -> Resource:
        if self.factory_failures:
            self.factory_failures -= 1
            self.failed_calls += 1
            raise ConnectionError("factory failed")
        resource = Resource()
        self.made.append(resource)
        return resource

    def release(self, resource: Resource) -> None:
        resource.released += 1
        if self.releaser_failures:
            self.releaser_failures -= 1
            raise OSError("releaser failed")

    @property
    def live(self) -> list[Resource]:
        return [r for r in self.made if not r.released]

    def assert_released_once(self) -> None:
        counts = {r.id: r.released for r in self.made}
        assert all(n == 1 for n in counts.values()), counts


class Kit:
    """Builds and drives a pool of one flavour with one async API."""

    flavour: str

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def pool(self, **options: Any) -> Any:
        raise NotImplementedError

    async def acquire(self, pool: Any, *args: Any, **kwargs: Any) -> Resource:
        raise NotImplementedError

    async def release(self, pool: Any, resource: Resource) -> None:
        raise NotImplementedError

    async def discard(self, pool: Any, resource: Resource) -> None:
        raise NotImplementedError

    async def prefill(self, pool: Any, count: int | None = None) -> None:
        raise NotImplementedError

    async def dispose(self, pool: Any) -> None:
        raise NotImplementedError

    async def close(self, pool: Any, timeout: float | None = 5.0) -> None:
        raise NotImplementedError

    async def open(self, pool: Any) -> None:
        raise NotImplementedError

    def lease(self, pool: Any) -> Any:
        raise NotImplementedError

    def stats(self, pool: Any) -> PoolStats:
        stats: PoolStats = pool.stats()
        return stats

    async def settle(self, pool: Any) -> None:
        """Let background releasers finish."""
        for _ in range(200):
            stats = self.stats(pool)
            if not stats.releasing and not stats.creating:
                return
            await asyncio.sleep(0.005)


_executors: dict[int, ThreadPoolExecutor] = {}


def _executor() -> ThreadPoolExecutor:
    """The threads the thread kit blocks in: one executor per process, since a
    forked process (mutation testing's workers) has none of its parent's threads."""
    pid = os.getpid()
    executor = _executors.get(pid)
    if executor is None:
        executor = _executors[pid] = ThreadPoolExecutor(max_workers=64, thread_name_prefix="kit")
    return executor


class AsyncKit(Kit):
    flavour = "async"

    def pool(self, **options: Any) -> AsyncPool[Resource]:
        ledger = self.ledger

        async def factory() -> Resource:
            if ledger.factory_delay:
                await asyncio.sleep(ledger.factory_delay)
            return ledger.make()

        async def releaser(resource: Resource) -> None:
            if ledger.releaser_delay:
                await asyncio.sleep(ledger.releaser_delay)
            ledger.release(resource)

        for key in ("check", "reset", "setup"):
            if key in options and not inspect.iscoroutinefunction(options[key]):
                options[key] = _as_async(options[key])
        return AsyncPool(
            options.pop("factory", factory), options.pop("releaser", releaser), **options
        )

    async def acquire(self, pool: Any, *args: Any, **kwargs: Any) -> Resource:
        resource: Resource = await pool.acquire(*args, **kwargs)
        return resource

    async def release(self, pool: Any, resource: Resource) -> None:
        await pool.release(resource)

    async def discard(self, pool: Any, resource: Resource) -> None:
        await pool.discard(resource)

    async def prefill(self, pool: Any, count: int | None = None) -> None:
        await pool.prefill(count)

    async def dispose(self, pool: Any) -> None:
        await pool.dispose()

    async def close(self, pool: Any, timeout: float | None = 5.0) -> None:
        await pool.close(timeout)

    async def open(self, pool: Any) -> None:
        await pool.open()

    def lease(self, pool: Any) -> Any:
        return pool.lease()


class ThreadKit(Kit):
    flavour = "thread"

    # Enough threads that blocked acquirers never starve the returns.
    async def _run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor(), partial(function, *args, **kwargs))

    def pool(self, **options: Any) -> ThreadPool[Resource]:
        ledger = self.ledger

        def factory() -> Resource:
            if ledger.factory_delay:
                time.sleep(ledger.factory_delay)
            return ledger.make()

        def releaser(resource: Resource) -> None:
            if ledger.releaser_delay:
                time.sleep(ledger.releaser_delay)
            ledger.release(resource)

        options.pop("releaser_timeout", None)
        if "queue_class" in options:
            import queue

            options["queue_class"] = {
                asyncio.LifoQueue: queue.LifoQueue,
                asyncio.Queue: queue.Queue,
            }[options["queue_class"]]
        return ThreadPool(
            options.pop("factory", factory), options.pop("releaser", releaser), **options
        )

    async def acquire(self, pool: Any, *args: Any, **kwargs: Any) -> Resource:
        resource: Resource = await self._run(pool.acquire, *args, **kwargs)
        return resource

    async def release(self, pool: Any, resource: Resource) -> None:
        await self._run(pool.release, resource)

    async def discard(self, pool: Any, resource: Resource) -> None:
        await self._run(pool.discard, resource)

    async def prefill(self, pool: Any, count: int | None = None) -> None:
        await self._run(pool.prefill, count)

    async def dispose(self, pool: Any) -> None:
        await self._run(pool.dispose)

    async def close(self, pool: Any, timeout: float | None = 5.0) -> None:
        await self._run(pool.close, timeout)

    async def open(self, pool: Any) -> None:
        await self._run(pool.open)

    @asynccontextmanager
    async def lease(self, pool: Any) -> AsyncIterator[Resource]:
        lease = pool.lease()
        resource = await self._run(lease.__enter__)
        try:
            yield resource
        except BaseException as exc:
            await self._run(lease.__exit__, type(exc), exc, exc.__traceback__)
            raise
        else:
            await self._run(lease.__exit__, None, None, None)


def _as_async(function: Callable[[Resource], Any]) -> Callable[[Resource], Any]:
    async def wrapper(resource: Resource) -> Any:
        return function(resource)

    return wrapper


def assert_gauges_add_up(stats: PoolStats) -> None:
    """The documented sum of the gauges, at any moment ``stats()`` can be read."""
    parts = (
        stats.idle,
        stats.in_use,
        stats.creating,
        stats.checking,
        stats.resetting,
        stats.releasing,
    )
    assert stats.size == sum(parts), stats
    assert min(parts) >= 0, stats


class Gate:
    """A hook (``check``/``reset``) that blocks until the test opens it, in either flavour."""

    def __init__(self, kit: Kit) -> None:
        self.flavour = kit.flavour
        self._entered = threading.Event()
        self._opened = threading.Event()

    @property
    def check(self) -> Callable[[Resource], Any]:
        if self.flavour == "async":

            async def wait(resource: Resource) -> bool:
                self._entered.set()
                while not self._opened.is_set():
                    await asyncio.sleep(0.001)
                return True

            return wait

        def block(resource: Resource) -> bool:
            self._entered.set()
            self._opened.wait(10)
            return True

        return block

    async def entered(self) -> None:
        for _ in range(5000):
            if self._entered.is_set():
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the hook never ran")

    def open(self) -> None:
        self._opened.set()


def as_factory(kit: Kit, function: Callable[[], Any]) -> Callable[[], Any]:
    """``function`` as a factory of ``kit``'s flavour."""
    if kit.flavour == "thread":
        return function

    async def factory() -> Any:
        return function()

    return factory


async def enter(kit: Kit, lease: Any) -> Any:
    """Enter ``lease`` as its flavour does (a thread pool's blocks in a worker thread)."""
    if kit.flavour == "async":
        return await lease.__aenter__()
    return await ThreadKit._run(kit, lease.__enter__)  # type: ignore[arg-type]


async def eventually(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait until ``condition()`` holds (a task or thread did its work); fail
    after ``seconds``, a bound a busy machine never reaches."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Block until ``condition()`` holds (a thread or timer did its work); fail
    after ``seconds``, a bound a busy machine never reaches."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.001)


class Timings:
    """A ``PoolObserver`` that keeps what it is told."""

    def __init__(self) -> None:
        self.creates: list[float] = []
        self.waits: list[float] = []
        self.uses: list[float] = []

    def created(self, seconds: float) -> None:
        self.creates.append(seconds)

    def waited(self, seconds: float) -> None:
        self.waits.append(seconds)

    def used(self, seconds: float) -> None:
        self.uses.append(seconds)


async def wait_ready(kit: Kit, pool: Any, timeout: float | None = 5.0) -> None:
    """``pool.wait_ready`` as its flavour runs it (a thread pool's in a worker thread)."""
    if kit.flavour == "async":
        await pool.wait_ready(timeout)
    else:
        await asyncio.to_thread(pool.wait_ready, timeout)


async def resize(kit: Kit, pool: Any, size: int | None = None, **options: Any) -> None:
    """``pool.resize``; without arguments it only wakes the maintainer."""
    if kit.flavour == "async":
        await pool.resize(size, **options)
    else:
        await asyncio.to_thread(pool.resize, size, **options)


async def detach(kit: Kit, pool: Any, resource: Resource) -> None:
    """``pool.detach`` as its flavour runs it."""
    if kit.flavour == "async":
        await pool.detach(resource)
    else:
        await asyncio.to_thread(pool.detach, resource)


class Hold:
    """Blocks the callbacks it wraps, once armed, until opened; in either flavour."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.armed = False
        self.entered = threading.Event()
        self.opened = threading.Event()

    def wrap(self, function: Callable[[Resource], Any] | Callable[[], Any]) -> Any:
        def blocking(*args: Any) -> Any:
            if self.armed and not self.opened.is_set():
                self.entered.set()
                self.opened.wait(30.0)
            return function(*args)

        async def waiting(*args: Any) -> Any:
            if self.armed and not self.opened.is_set():
                self.entered.set()
                while not self.opened.is_set():
                    await asyncio.sleep(0.001)
            return function(*args)

        return blocking if self.flavour == "thread" else waiting

    async def reached(self) -> None:
        await eventually(self.entered.is_set, 30.0)


class Interrupt(BaseException):
    """A ``BaseException`` of the user's own, as a callback or a framework may raise."""


async def assert_kept_its_books(kit: Kit, pool: Any, detached: Sequence[Resource] = ()) -> None:
    """Once its work is done the pool kept its books and its capacity (the whole
    pool can be leased at once, unless it is closed); it then closes with every
    resource the factory made released exactly once, or never if ``detached``."""
    await eventually(lambda: not kit.stats(pool).releasing and not kit.stats(pool).creating, 30.0)
    stats = kit.stats(pool)
    assert_gauges_add_up(stats)
    assert stats.in_use == 0, stats
    assert stats.size <= pool.pool_size, stats
    if not pool.closed:
        size = pool.pool_size
        held = await asyncio.gather(*(kit.acquire(pool, timeout=30.0) for _ in range(size)))
        assert len({id(resource) for resource in held}) == size
        for resource in held:
            await kit.release(pool, resource)
    await kit.close(pool, 30.0)
    await eventually(lambda: not kit.stats(pool).releasing, 30.0)
    assert kit.stats(pool).size == 0
    kept = {id(resource) for resource in detached}
    for resource in kit.ledger.made:
        assert resource.released == (0 if id(resource) in kept else 1), resource
