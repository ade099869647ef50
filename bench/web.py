"""Scenario 4: FastAPI end to end, over a real socket, server in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from bench.report import Row, Target
from bench.timing import percentile

__all__ = ["web"]

S4 = "4. FastAPI end to end (SELECT 1 per request, uvicorn on 127.0.0.1)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _server(dsn: str) -> Iterator[str]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench.web_app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    env = {**os.environ, "BENCH_DSN": dsn}
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bench server did not start")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(30)


async def _load(
    client: httpx.AsyncClient, path: str, concurrency: int, requests: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_worker = requests // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            started = time.perf_counter()
            response = await client.get(path)
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - started), latencies


async def _measure(
    base: str, rounds: int, requests: int, concurrency: int
) -> dict[str, list[tuple[float, float, float]]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    samples: dict[str, list[tuple[float, float, float]]] = {"/ours": [], "/asyncpg": []}
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:
        for path in samples:  # warm up connections and pools
            await _load(client, path, concurrency, concurrency * 4)
        for round_number in range(rounds):
            order = list(samples)
            if round_number % 2:
                order.reverse()  # neither case always goes first
            for path in order:
                rate, latencies = await _load(client, path, concurrency, requests)
                samples[path].append(
                    (rate, percentile(latencies, 0.5), percentile(latencies, 0.99))
                )
    return samples


def web(dsn: str, rounds: int, requests: int, concurrency: int = 50) -> list[Row]:
    with _server(dsn) as base:
        samples = asyncio.run(_measure(base, rounds, requests, concurrency))
    ours = [s[0] for s in samples["/ours"]]
    theirs = [s[0] for s in samples["/asyncpg"]]
    # Noise: how far apart two rounds of the same case land, relative to the median.
    # Noise: how far apart rounds of the same case land (interquartile range,
    # relative to the median), the larger of the two cases.
    noise = max(
        (statistics.quantiles(values, n=4)[2] - statistics.quantiles(values, n=4)[0])
        / statistics.median(values)
        for values in (ours, theirs)
    )
    rows = []
    for path, label in (
        ("/ours", "Depends(pool.lease), escudeiro-pools recipe"),
        ("/asyncpg", "yield dependency over asyncpg.Pool"),
    ):
        rate = statistics.median(s[0] for s in samples[path])
        p50 = statistics.median(s[1] for s in samples[path])
        p99 = statistics.median(s[2] for s in samples[path])
        rows.append(
            Row(
                S4,
                label,
                rate,
                "req/s",
                detail=f"latency p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms",
            )
        )
    ratio = statistics.median(ours) / statistics.median(theirs)
    rows.append(
        Row(
            S4,
            "escudeiro-pools vs asyncpg.Pool",
            ratio,
            "x",
            ratio,
            "throughput",
            Target(">=", round(1 - noise, 3)),
            detail=f"round-to-round noise {noise:.1%}",
        )
    )
    return rows
