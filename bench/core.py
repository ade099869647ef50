"""Scenarios 1, 2, 6 and 7: the pool itself, on a no-op resource."""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import time
import tracemalloc
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from bench.peers import OldAsyncPool, connection_pool_class, noop_strategy
from bench.report import Row, Target
from bench.timing import interleaved_async, percentile
from escudeiro_pools import AsyncPool
from escudeiro_pools.integrations.opentelemetry import instrument

__all__ = ["contention", "memory", "overhead", "scale"]

S1 = "1. Core overhead (one task, no-op resource, per operation)"
S2 = "2. Contention (100 tasks on 10 resources, each lease awaits once)"
S6 = "6. Scale (per lease, ratio to a bare asyncio.Queue at the same scale)"
S7 = "7. Memory (bookkeeping bytes per pooled resource, tracemalloc)"

now = time.perf_counter


async def make() -> object:
    return object()


async def drop(resource: object) -> None:
    return None


async def ours(size: int = 10, **options: Any) -> AsyncPool[object]:
    pool: AsyncPool[object] = AsyncPool(make, drop, pool_size=size, **options)
    await pool.prefill()
    return pool


async def old(size: int = 10) -> Any:
    pool = OldAsyncPool(make, drop, pool_size=size)
    await pool.prefill()
    return pool


def filled(queue_class: type[asyncio.Queue[object]], size: int) -> asyncio.Queue[object]:
    queue: asyncio.Queue[object] = queue_class()
    for _ in range(size):
        queue.put_nowait(object())
    return queue


# -- 1. overhead -----------------------------------------------------------------


def _per_op(n: int, loop_body: Callable[[int], Awaitable[None]]) -> Callable[[], Awaitable[float]]:
    async def case() -> float:
        gc.collect()
        started = now()
        await loop_body(n)
        return (now() - started) / n

    return case


def _meter_provider() -> Any:
    """An SDK meter provider with an in-memory reader (what an app pays per point)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    return MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)


async def overhead(rounds: int, n: int) -> list[Row]:
    queue = filled(asyncio.LifoQueue, 10)
    pool = await ours()
    pool_no_recycle = await ours(pool_recycle=0)
    provider = _meter_provider()
    pool_otel = await ours()
    instrument(pool_otel, meter_provider=provider)
    pool_otel_stats = await ours()
    instrument(pool_otel_stats, meter_provider=provider, timings=False)

    async def floor(n: int) -> None:
        for _ in range(n):
            resource = await queue.get()
            queue.put_nowait(resource)

    async def acquire_release(n: int) -> None:
        for _ in range(n):
            resource = await pool.acquire()
            await pool.release(resource)

    async def acquire_release_no_recycle(n: int) -> None:
        for _ in range(n):
            resource = await pool_no_recycle.acquire()
            await pool_no_recycle.release(resource)

    async def lease(n: int) -> None:
        for _ in range(n):
            async with pool.lease():
                pass

    async def acquire_release_otel(n: int) -> None:
        for _ in range(n):
            resource = await pool_otel.acquire()
            await pool_otel.release(resource)

    async def acquire_release_otel_stats(n: int) -> None:
        for _ in range(n):
            resource = await pool_otel_stats.acquire()
            await pool_otel_stats.release(resource)

    cases: dict[str, Callable[[], Awaitable[float]]] = {
        "floor": _per_op(n, floor),
        "acquire+release": _per_op(n, acquire_release),
        "acquire+release, pool_recycle=0": _per_op(n, acquire_release_no_recycle),
        "lease": _per_op(n, lease),
        "otel": _per_op(n, acquire_release_otel),
        "otel, timings=False": _per_op(n, acquire_release_otel_stats),
    }
    if OldAsyncPool is not None:
        old_pool = await old()

        async def old_acquire_release(n: int) -> None:
            for _ in range(n):
                resource = await old_pool.acquire()
                await old_pool.release(resource)

        cases["old"] = _per_op(n, old_acquire_release)
    connection_pool = connection_pool_class()
    if connection_pool is not None:
        acp = connection_pool(strategy=noop_strategy(), max_size=10)

        async def acp_lease(n: int) -> None:
            for _ in range(n):
                async with acp.get_connection():
                    pass

        cases["acp"] = _per_op(n, acp_lease)

    cost = await interleaved_async(rounds, cases)
    provider.shutdown()
    ns = {name: seconds * 1e9 for name, seconds in cost.items()}
    floor_ns = ns["floor"]
    versus = "of floor"
    rows = [
        Row(S1, "asyncio.LifoQueue get + put_nowait (floor)", floor_ns, "ns"),
        Row(
            S1,
            "escudeiro-pools acquire + release",
            ns["acquire+release"],
            "ns",
            ns["acquire+release"] / floor_ns,
            versus,
            Target("<=", 1.8),
        ),
        Row(
            S1,
            "escudeiro-pools acquire + release, recycle off",
            ns["acquire+release, pool_recycle=0"],
            "ns",
            ns["acquire+release, pool_recycle=0"] / floor_ns,
            versus,
        ),
        Row(
            S1,
            "escudeiro-pools async with lease()",
            ns["lease"],
            "ns",
            ns["lease"] / floor_ns,
            versus,
            Target("<=", 2.5),
        ),
        Row(
            S1,
            "escudeiro-pools acquire + release, OpenTelemetry instrumented",
            ns["otel"],
            "ns",
            ns["otel"] / floor_ns,
            versus,
            detail="SDK MeterProvider, in-memory reader: a wait_time and a use_time point",
        ),
        Row(
            S1,
            "OpenTelemetry instrumented / not (acquire + release)",
            ns["otel"] / ns["acquire+release"],
            "x",
            ns["otel"] / ns["acquire+release"],
            "of the plain pool's cost",
        ),
        Row(
            S1,
            "OpenTelemetry timings=False / not instrumented (acquire + release)",
            ns["otel, timings=False"] / ns["acquire+release"],
            "x",
            ns["otel, timings=False"] / ns["acquire+release"],
            "of the plain pool's cost",
            detail="gauges and counters only, read from stats() at collection",
        ),
    ]
    if "old" in ns:
        rows.append(
            Row(
                S1,
                "escudeiro 0.4.0 acquire + release",
                ns["old"],
                "ns",
                ns["old"] / floor_ns,
                versus,
            )
        )
        rows.append(
            Row(
                S1,
                "escudeiro 0.4.0 / escudeiro-pools (acquire + release)",
                ns["old"] / ns["acquire+release"],
                "x",
                ns["old"] / ns["acquire+release"],
                "faster",
                Target(">=", 3.0),
            )
        )
    if "acp" in ns:
        rows.append(
            Row(
                S1,
                "asyncio-connection-pool get_connection()",
                ns["acp"],
                "ns",
                ns["acp"] / floor_ns,
                versus,
            )
        )
    return rows


# -- 2. contention ---------------------------------------------------------------


class Handoff:
    """The least a fair pool must do: idle list, FIFO futures, direct hand-off.

    The floor lets a returning task take the resource straight back, so a
    waiter can starve; a fair pool pays one wake-up per hand-off instead.
    """

    def __init__(self, size: int) -> None:
        self.idle = [object() for _ in range(size)]
        self.waiters: deque[asyncio.Future[object]] = deque()

    async def get(self) -> object:
        if self.idle:
            return self.idle.pop()
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def put(self, resource: object) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(resource)
                return
        self.idle.append(resource)


Lease = Callable[[list[float], int], Awaitable[None]]


async def _contend(worker: Lease, tasks: int, per_task: int) -> tuple[float, list[float]]:
    waits: list[float] = []
    gc.collect()
    started = now()
    await asyncio.gather(*(worker(waits, per_task) for _ in range(tasks)))
    elapsed = now() - started
    return tasks * per_task / elapsed, waits


async def contention(rounds: int, per_task: int, tasks: int = 100) -> list[Row]:
    queue = filled(asyncio.LifoQueue, 10)
    pool = await ours()

    async def floor(waits: list[float], n: int) -> None:
        for _ in range(n):
            started = now()
            resource = await queue.get()
            waits.append(now() - started)
            await asyncio.sleep(0)
            queue.put_nowait(resource)

    async def lease(waits: list[float], n: int) -> None:
        for _ in range(n):
            started = now()
            async with pool.lease():
                waits.append(now() - started)
                await asyncio.sleep(0)

    async def acquire_release(waits: list[float], n: int) -> None:
        for _ in range(n):
            started = now()
            resource = await pool.acquire()
            waits.append(now() - started)
            await asyncio.sleep(0)
            await pool.release(resource)

    handoff = Handoff(10)

    async def fair(waits: list[float], n: int) -> None:
        for _ in range(n):
            started = now()
            resource = await handoff.get()
            waits.append(now() - started)
            await asyncio.sleep(0)
            handoff.put(resource)

    workers: dict[str, Lease] = {
        "asyncio.LifoQueue (floor)": floor,
        "first-come-first-served hand-off, 15 lines (reference)": fair,
        "escudeiro-pools lease()": lease,
        "escudeiro-pools acquire + release": acquire_release,
    }
    if OldAsyncPool is not None:
        old_pool = await old()

        async def old_acquire_release(waits: list[float], n: int) -> None:
            for _ in range(n):
                started = now()
                resource = await old_pool.acquire()
                waits.append(now() - started)
                await asyncio.sleep(0)
                await old_pool.release(resource)

        workers["escudeiro 0.4.0 acquire + release"] = old_acquire_release
    connection_pool = connection_pool_class()
    if connection_pool is not None:
        acp = connection_pool(strategy=noop_strategy(), max_size=10)

        async def acp_lease(waits: list[float], n: int) -> None:
            for _ in range(n):
                started = now()
                async with acp.get_connection():
                    waits.append(now() - started)
                    await asyncio.sleep(0)

        workers["asyncio-connection-pool get_connection()"] = acp_lease

    samples: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in workers}
    for _ in range(rounds):
        for name, worker in workers.items():
            throughput, waits = await _contend(worker, tasks, per_task)
            samples[name].append(
                (throughput, percentile(waits, 0.5), percentile(waits, 0.99), max(waits))
            )
    summary = {
        name: tuple(statistics.median(s[i] for s in runs) for i in range(4))
        for name, runs in samples.items()
    }
    floor_rate = summary["asyncio.LifoQueue (floor)"][0]
    fair_rate = summary["first-come-first-served hand-off, 15 lines (reference)"][0]
    old_rate = summary.get("escudeiro 0.4.0 acquire + release", (None,))[0]
    rows: list[Row] = []
    for name, (rate, p50, p99, worst) in summary.items():
        detail = f"wait p50 {p50 * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us, max {worst * 1e6:.0f} us"
        ours_case = name.startswith("escudeiro-pools")
        rows.append(
            Row(
                S2,
                name,
                rate,
                "ops/s",
                rate / floor_rate,
                "of floor's throughput",
                None,
                detail,
            )
        )
        if ours_case:
            rows.append(
                Row(
                    S2,
                    f"{name} vs the fair hand-off reference",
                    rate / fair_rate,
                    "x",
                    rate / fair_rate,
                    "of the reference's throughput",
                    Target(">=", 0.75),
                )
            )
        if ours_case and old_rate is not None:
            rows.append(
                Row(
                    S2,
                    f"{name} vs escudeiro 0.4.0",
                    rate / old_rate,
                    "x",
                    rate / old_rate,
                    "of 0.4.0's throughput",
                    Target(">=", 1.0),
                )
            )
        if ours_case:
            rows.append(
                Row(
                    S2,
                    f"{name}: max wait / p50 wait (fairness)",
                    worst / p50,
                    "x",
                    worst / p50,
                    "",
                    Target("<", 2.0),
                )
            )
    return rows


# -- 6. scale ----------------------------------------------------------------------


async def _lease_cost_sizes(
    size: int, n: int, pool: AsyncPool[object]
) -> tuple[float, float, float]:
    queue = filled(asyncio.Queue, size)

    async def floor() -> float:
        gc.collect()
        started = now()
        for _ in range(n):
            resource = await queue.get()
            queue.put_nowait(resource)
        return (now() - started) / n

    async def lease() -> float:
        gc.collect()
        started = now()
        for _ in range(n):
            async with pool.lease():
                pass
        return (now() - started) / n

    return await floor(), await lease(), math.nan


async def _lease_cost_waiters(waiters: int, total: int) -> tuple[float, float, float]:
    """Per lease: the floor, escudeiro-pools, and the fair hand-off reference."""
    per_task = max(2, total // waiters)
    queue = filled(asyncio.Queue, 10)
    pool = await ours(10, queue_class=asyncio.Queue)
    handoff = Handoff(10)

    async def handoff_worker() -> None:
        for _ in range(per_task):
            resource = await handoff.get()
            await asyncio.sleep(0)
            handoff.put(resource)

    async def floor_worker() -> None:
        for _ in range(per_task):
            resource = await queue.get()
            await asyncio.sleep(0)
            queue.put_nowait(resource)

    async def lease_worker() -> None:
        for _ in range(per_task):
            async with pool.lease():
                await asyncio.sleep(0)

    async def run(worker: Callable[[], Awaitable[None]]) -> float:
        gc.collect()
        started = now()
        await asyncio.gather(*(worker() for _ in range(waiters)))
        return (now() - started) / (waiters * per_task)

    return await run(floor_worker), await run(lease_worker), await run(handoff_worker)


async def scale(rounds: int, n: int) -> list[Row]:
    rows: list[Row] = []
    for label, points, measure in (
        ("pool_size", (10, 1_000, 10_000), "sizes"),
        ("waiters on 10", (10, 1_000, 10_000), "waiters"),
    ):
        ratios: dict[int, float] = {}
        costs: dict[int, float] = {}
        references: dict[int, float] = {}
        for point in points:
            samples: list[tuple[float, float, float]] = []
            pool = await ours(point, queue_class=asyncio.Queue) if measure == "sizes" else None
            for _ in range(rounds):
                if pool is not None:
                    samples.append(await _lease_cost_sizes(point, n, pool))
                else:
                    samples.append(await _lease_cost_waiters(point, n))
            floor = statistics.median(s[0] for s in samples)
            cost = statistics.median(s[1] for s in samples)
            ratios[point], costs[point] = cost / floor, cost
            references[point] = statistics.median(s[2] for s in samples) / floor
            if pool is not None:
                await pool.close()
        for point in points:
            rows.append(
                Row(
                    S6,
                    f"lease, {label} {point:,}",
                    costs[point] * 1e9,
                    "ns",
                    ratios[point],
                    "of asyncio.Queue",
                    detail=""
                    if math.isnan(references[point])
                    else f"fair hand-off reference: {references[point]:.2f}x",
                )
            )
        flatness = max(ratios.values()) / min(ratios.values())
        rows.append(
            Row(
                S6,
                f"lease, {label}: largest / smallest ratio",
                flatness,
                "x",
                flatness,
                "",
                Target("<=", 1.3 if measure == "sizes" else 1.2),
            )
        )
    return rows


# -- 7. memory ----------------------------------------------------------------------


async def _bytes_per_resource(
    size: int, build: Callable[[Callable[[], Awaitable[object]]], Awaitable[object]]
) -> float:
    per_resource = 0.0
    for _ in range(2):  # the first run also grows asyncio's own tables: measure the second
        made = [object() for _ in range(size)]

        async def factory(made: list[object] = made) -> object:
            return made.pop()

        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            holder = await build(factory)
            for _ in range(3):
                await asyncio.sleep(0)  # let finished tasks be dropped
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        del holder
        per_resource = (after - before) / size
    return per_resource


async def memory(size: int = 10_000) -> list[Row]:
    async def floor(factory: Callable[[], Awaitable[object]]) -> object:
        queue: asyncio.LifoQueue[object] = asyncio.LifoQueue()
        for _ in range(size):
            queue.put_nowait(await factory())
        return queue

    async def build_ours(factory: Callable[[], Awaitable[object]]) -> object:
        pool: AsyncPool[object] = AsyncPool(factory, drop, pool_size=size)
        await pool.prefill()
        return pool

    ours_bytes = await _bytes_per_resource(size, build_ours)
    rows = [
        Row(
            S7,
            "asyncio.LifoQueue holding the resources (floor)",
            await _bytes_per_resource(size, floor),
            "B",
        ),
        Row(S7, "escudeiro-pools AsyncPool", ours_bytes, "B"),
    ]
    if OldAsyncPool is not None:

        async def build_old(factory: Callable[[], Awaitable[object]]) -> object:
            pool = OldAsyncPool(factory, drop, pool_size=size)
            await pool.prefill()
            return pool

        old_bytes = await _bytes_per_resource(size, build_old)
        rows.append(Row(S7, "escudeiro 0.4.0 AsyncPool", old_bytes, "B"))
        rows.append(
            Row(
                S7,
                "escudeiro-pools / escudeiro 0.4.0",
                ours_bytes / old_bytes,
                "x",
                ours_bytes / old_bytes,
                "of 0.4.0's bytes",
            )
        )
    return rows
