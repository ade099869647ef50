"""The demo: the FastAPI example on a real PostgreSQL, under load.

Starts an embedded PostgreSQL (or uses ``DATABASE_URL``), serves
``examples.fastapi_asyncpg`` with uvicorn on 127.0.0.1, drives concurrent
requests at it through a pool of httpx clients, prints a table, and stops
everything it started (also on Ctrl-C).

    python -m examples.demo [--requests 3000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field

from escudeiro_pools.integrations.httpx import client_pool
from examples.embedded_pg import database_url
from examples.fastapi_asyncpg import create_app
from examples.serving import serve


@dataclass
class Tally:
    total: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def done(self) -> int:
        return len(self.latencies) + self.errors

    def progress(self) -> None:
        width = 40
        filled = width * self.done // self.total
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
        sys.stderr.flush()


async def drive(url: str, requests: int, concurrency: int) -> Tally:
    tally = Tally(requests)
    clients = client_pool(pool_size=concurrency // 10 or 1, base_url=url, name="demo-clients")
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            began = time.perf_counter()
            try:
                async with clients.lease() as client:
                    if n % 4 == 0:
                        response = await client.post("/notes", json={"body": f"note {n}"})
                    else:
                        response = await client.get("/notes")
                if response.status_code >= 400:
                    tally.errors += 1
                else:
                    tally.latencies.append(time.perf_counter() - began)
            except Exception:
                tally.errors += 1
            if tally.done % 50 == 0 or tally.done == requests:
                tally.progress()

    async with clients:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    sys.stderr.write("\n")
    return tally


def report(tally: Tally, elapsed: float, stats: dict[str, object]) -> str:
    ordered = sorted(tally.latencies) or [0.0]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    rows = [
        ("requests", f"{tally.total}"),
        ("succeeded", f"{len(tally.latencies)}"),
        ("errors", f"{tally.errors}"),
        ("throughput", f"{tally.total / elapsed:,.0f} req/s"),
        ("latency p50", f"{statistics.median(ordered) * 1000:.1f} ms"),
        ("latency p99", f"{p99 * 1000:.1f} ms"),
    ]
    rows += [
        (f"pool {key}", f"{stats[key]}")
        for key in ("pool_size", "size", "in_use", "created", "acquired", "waits", "timeouts")
    ]
    width = max(len(k) for k, _ in rows)
    lines = ["", f"  {'metric'.ljust(width)}  value", f"  {'-' * width}  {'-' * 14}"]
    lines += [f"  {key.ljust(width)}  {value}" for key, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        print("starting PostgreSQL ...", flush=True)
        with database_url() as dsn:
            app = create_app(dsn, pool_size=10)
            with serve(app) as url:
                print(f"serving the FastAPI example at {url}", flush=True)
                print(f"driving {args.requests} requests, {args.concurrency} at a time:")
                began = time.perf_counter()
                tally = asyncio.run(drive(url, args.requests, args.concurrency))
                elapsed = time.perf_counter() - began
                stats = app.state.pool.stats().as_dict()
            print(report(tally, elapsed, stats))
            print("\nstopped the server and PostgreSQL.")
    except KeyboardInterrupt:
        print("\ninterrupted: stopped what was started.", file=sys.stderr)
        return 130
    return 0 if tally.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
