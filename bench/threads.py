"""Scenario 5: ``ThreadPool`` with 8 threads on 4 resources."""

from __future__ import annotations

import functools
import gc
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

from bench.peers import OldThreadPool
from bench.report import Row, Target
from bench.timing import interleaved
from escudeiro_pools import ThreadPool

__all__ = ["threads"]

S5 = "5. Threads (8 threads on 4 resources, per operation)"


def _run(
    threads: int, per_thread: int, body: Callable[[int], None], errors: list[BaseException]
) -> float:
    """Seconds per operation; a worker's error (the pool broke under load) goes to ``errors``."""
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        try:
            body(per_thread)
        except Exception as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    gc.collect()
    started = time.perf_counter()
    start.wait()
    for thread in workers:
        thread.join()
    return (time.perf_counter() - started) / (threads * per_thread)


class Handoff:
    """The least a fair thread pool must do: FIFO waiters, each woken with its resource."""

    def __init__(self, size: int) -> None:
        self.lock = threading.Lock()
        self.idle = [object() for _ in range(size)]
        self.waiters: deque[tuple[threading.Lock, list[object]]] = deque()

    def get(self) -> object:
        with self.lock:
            if self.idle:
                return self.idle.pop()
            signal = threading.Lock()
            signal.acquire()
            box: list[object] = []
            self.waiters.append((signal, box))
        signal.acquire()
        return box[0]

    def put(self, resource: object) -> None:
        with self.lock:
            if self.waiters:
                signal, box = self.waiters.popleft()
                box.append(resource)
                signal.release()
            else:
                self.idle.append(resource)


def threads(rounds: int, per_thread: int, count: int = 8, size: int = 4) -> list[Row]:
    lifo: queue.LifoQueue[object] = queue.LifoQueue()
    for _ in range(size):
        lifo.put(object())
    pool: ThreadPool[object] = ThreadPool(object, lambda resource: None, pool_size=size)
    pool.prefill()

    def floor(n: int) -> None:
        for _ in range(n):
            resource = lifo.get()
            lifo.put(resource)

    handoff = Handoff(size)

    def fair(n: int) -> None:
        for _ in range(n):
            resource = handoff.get()
            handoff.put(resource)

    def acquire_release(n: int) -> None:
        for _ in range(n):
            resource = pool.acquire()
            pool.release(resource)

    lease_pool: ThreadPool[object] = ThreadPool(object, lambda resource: None, pool_size=size)
    lease_pool.prefill()

    def lease(n: int) -> None:
        for _ in range(n):
            with lease_pool.lease():
                pass

    bodies: dict[str, Callable[[int], None]] = {
        "floor": floor,
        "fair": fair,
        "acquire+release": acquire_release,
        "lease": lease,
    }
    if OldThreadPool is not None:
        old_pool = OldThreadPool(object, lambda resource: None, pool_size=size)
        old_pool.prefill()

        def old_acquire_release(n: int) -> None:
            for _ in range(n):
                resource = old_pool.acquire()
                old_pool.release(resource)

        bodies["old"] = old_acquire_release

    errors: dict[str, list[BaseException]] = {name: [] for name in bodies}
    cost = interleaved(
        rounds,
        {
            name: functools.partial(_run, count, per_thread, body, errors[name])
            for name, body in bodies.items()
        },
    )
    ns = {name: seconds * 1e9 for name, seconds in cost.items()}
    broken = {name: type(found[0]).__name__ for name, found in errors.items() if found}
    versus = "of floor"
    rows = [
        Row(S5, "queue.LifoQueue get + put (floor)", ns["floor"], "ns"),
        Row(
            S5,
            "first-come-first-served hand-off, 25 lines (reference)",
            ns["fair"],
            "ns",
            ns["fair"] / ns["floor"],
            versus,
        ),
        Row(
            S5,
            "escudeiro-pools acquire + release",
            ns["acquire+release"],
            "ns",
            ns["acquire+release"] / ns["floor"],
            versus,
            None,
            _waited(pool),
        ),
        Row(
            S5,
            "escudeiro-pools with lease()",
            ns["lease"],
            "ns",
            ns["lease"] / ns["floor"],
            versus,
            None,
            _waited(lease_pool),
        ),
        Row(
            S5,
            "escudeiro-pools acquire + release vs the fair reference (time per operation)",
            ns["acquire+release"] / ns["fair"],
            "x",
            ns["acquire+release"] / ns["fair"],
            "of the reference's time",
            Target("<=", 1.8),
        ),
        Row(
            S5,
            "escudeiro-pools with lease() vs the fair reference (time per operation)",
            ns["lease"] / ns["fair"],
            "x",
            ns["lease"] / ns["fair"],
            "of the reference's time",
            Target("<=", 1.8),
        ),
    ]
    if "old" in ns:
        rows.append(
            Row(
                S5,
                "escudeiro 0.4.0 acquire + release",
                ns["old"],
                "ns",
                ns["old"] / ns["floor"],
                versus,
                detail=f"raised {broken['old']} under contention" if "old" in broken else "",
            )
        )
    pool.close()
    lease_pool.close()
    return rows


def _waited(pool: ThreadPool[object]) -> str:
    stats = pool.stats()
    return f"{stats.waits / max(1, stats.acquired):.0%} of acquires waited (hand-off convoys)"
