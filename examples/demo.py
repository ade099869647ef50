"""The demo: the FastAPI example on a real PostgreSQL, under load, through an outage.

Starts an embedded PostgreSQL (or uses ``DATABASE_URL``), serves
``examples.fastapi_asyncpg`` with uvicorn on 127.0.0.1, and drives the
announced number of requests with the announced number in flight at once.
Halfway through it stops the database for a couple of seconds (embedded
server only): the pool fails fast with 503s while it is away and serves
again as soon as it is back. A live view shows throughput, latency and the
server pool's gauges; then a final table. Everything started is stopped,
also on Ctrl-C.

    python -m examples.demo [--requests 3000] [--concurrency 100] [--outage 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from escudeiro_pools import PoolStats
from examples.embedded_pg import embedded_server, start_server, stop_server
from examples.fastapi_asyncpg import create_app
from examples.serving import serve

GAUGES = ("size", "idle", "in_use", "waiting", "created", "available", "timeouts", "unavailable")


@dataclass
class Tally:
    """What the load saw: latencies of successes, statuses, the outage's window."""

    total: int
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0  # no HTTP answer at all
    started: float = field(default_factory=time.perf_counter)
    outage: str = ""

    @property
    def done(self) -> int:
        return sum(self.statuses.values()) + self.failures

    @property
    def unexpected(self) -> int:
        """Answers other than success and 503 (the documented answer while the database is away)."""
        good = self.statuses[200] + self.statuses[201] + self.statuses[503]
        return self.done - good

    def rate(self) -> float:
        return self.done / max(1e-9, time.perf_counter() - self.started)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies[-2000:]) or [0.0]
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def drive(url: str, tally: Tally, concurrency: int, outage: Callable[[], Any] | None) -> None:
    """Send ``tally.total`` requests, ``concurrency`` in flight; run ``outage`` halfway."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(tally.total):
        queue.put_nowait(n)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    halfway = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while not queue.empty():
                if tally.done >= tally.total // 2:
                    halfway.set()
                n = queue.get_nowait()
                began = time.perf_counter()
                try:
                    if n % 4 == 0:
                        response = await client.post("/notes", json={"body": f"note {n}"})
                    else:
                        response = await client.get("/notes")
                except httpx.HTTPError:
                    tally.failures += 1
                    continue
                tally.statuses[response.status_code] += 1
                if response.status_code < 400:
                    tally.latencies.append(time.perf_counter() - began)
                elif response.status_code == 503:
                    await asyncio.sleep(0.01)  # a polite client backs off

        workers = asyncio.gather(*(worker() for _ in range(concurrency)))
        if outage is not None:
            waiting: asyncio.Future[Any] = asyncio.ensure_future(halfway.wait())
            await asyncio.wait([waiting, workers], return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if halfway.is_set():
                await asyncio.to_thread(outage)
        await workers


def live_view(tally: Tally, stats: PoolStats, progress: Progress) -> Group:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("req/s", "p50 ms", "p99 ms", "200/201", "503", *GAUGES):
        table.add_column(column, justify="right")
    table.add_row(
        f"{tally.rate():,.0f}",
        f"{tally.percentile(0.5) * 1000:.1f}",
        f"{tally.percentile(0.99) * 1000:.1f}",
        str(tally.statuses[200] + tally.statuses[201]),
        str(tally.statuses[503]),
        *(str(getattr(stats, g)) for g in GAUGES),
    )
    return Group(progress, table, f"[dim]{tally.outage}[/dim]")


def plain_line(tally: Tally, stats: PoolStats) -> str:
    """One short line of progress, for a log or a pipe (no terminal)."""
    return (
        f"{tally.done}/{tally.total} requests, {tally.rate():,.0f} req/s, "
        f"p50 {tally.percentile(0.5) * 1000:.1f} ms, {tally.statuses[503]} x 503; "
        f"pool size {stats.size}, in use {stats.in_use}, waiting {stats.waiting}"
        + ("" if stats.available else ", failing fast")
        + (f"; {tally.outage}" if tally.outage else "")
    )


def final_table(tally: Tally, elapsed: float, stats: PoolStats, outage: bool) -> Table:
    ordered = sorted(tally.latencies) or [0.0]
    table = Table(title="demo results", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("what it means")
    succeeded = tally.statuses[200] + tally.statuses[201]
    rows = [
        ("requests", f"{tally.total}", "sent by the load, 1 in 4 a write"),
        ("succeeded", f"{succeeded}", "answered 200 or 201"),
        (
            "503 answers",
            f"{tally.statuses[503]}",
            "the app's answer while the database was away: refused at once, not hung"
            if outage
            else "the app's answer when no connection was free in time",
        ),
        ("errors", f"{tally.unexpected}", "any other answer, or none: should be 0"),
        ("throughput", f"{tally.total / elapsed:,.0f} req/s", "all requests, outage included"),
        ("latency p50", f"{statistics.median(ordered) * 1000:.1f} ms", "of the successes"),
        (
            "latency p99",
            f"{ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000:.1f} ms",
            "of the successes; it spans the outage: a request that waited for a "
            "connection while the database was away succeeded once it was back"
            if outage
            else "of the successes",
        ),
        ("pool size", f"{stats.size} of {stats.pool_size}", "connections open now, of the most"),
        ("pool created", f"{stats.created}", "connections opened in all (outage included)"),
        ("pool acquired", f"{stats.acquired}", "leases: one per request that got a connection"),
        ("pool waits", f"{stats.waits}", "leases that had to wait for a connection"),
        ("pool wait max", f"{stats.wait_time_max * 1000:.1f} ms", "the longest of those waits"),
        ("pool timeouts", f"{stats.timeouts}", "waits that ran out (each a 503)"),
        (
            "pool refused while down",
            f"{stats.unavailable}",
            "callers the pool refused at once while failing fast (each a 503); the other "
            "503s are requests whose connect or query met the outage itself",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def run(args: argparse.Namespace, console: Console, dsn: str, server: Any) -> int:
    app = create_app(dsn, pool_size=10)
    pool = app.state.pool
    tally = Tally(args.requests)

    def outage() -> None:
        tally.outage = f"database stopped for {args.outage:g} s: the pool fails fast (503)"
        stop_server(server)
        time.sleep(args.outage)
        start_server(server)
        tally.outage = "database back: serving again"

    with serve(app) as url:
        console.print(
            f"serving the FastAPI example at {url} (a pool of "
            f"{pool.pool_size} connection{'' if pool.pool_size == 1 else 's'})"
        )
        console.print(
            f"driving {args.requests} requests, {args.concurrency} in flight at once"
            + (f", the database away for {args.outage:g} s halfway" if server else "")
        )
        tally.started = time.perf_counter()
        finished = threading.Event()

        def load_it() -> None:
            try:
                asyncio.run(drive(url, tally, args.concurrency, outage if server else None))
            finally:
                finished.set()

        load = threading.Thread(target=load_it, daemon=True)
        load.start()
        if console.is_terminal:
            progress = Progress(TextColumn("requests"), BarColumn(), MofNCompleteColumn())
            task = progress.add_task("requests", total=args.requests)
            with Live(console=console, refresh_per_second=10) as live:
                while not finished.wait(0.1):
                    progress.update(task, completed=tally.done)
                    live.update(live_view(tally, pool.stats(), progress))
                progress.update(task, completed=tally.done)
                live.update(live_view(tally, pool.stats(), progress))
        else:
            while not finished.wait(1.0):
                console.print(plain_line(tally, pool.stats()), soft_wrap=True, markup=False)
        load.join()
        elapsed = time.perf_counter() - tally.started
        stats = pool.stats()
    console.print(final_table(tally, elapsed, stats, outage=server is not None))
    return 0 if tally.unexpected == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument(
        "--outage", type=float, default=2.0, help="seconds the database is away (0: none)"
    )
    args = parser.parse_args(argv)
    console = Console()
    try:
        configured = os.environ.get("DATABASE_URL")
        if configured:
            console.print("using DATABASE_URL (no outage: the demo stops only its own server)")
            return run(args, console, configured, None)
        console.print("starting PostgreSQL ...")
        with embedded_server() as server:
            code = run(args, console, server.get_uri(), server if args.outage > 0 else None)
        console.print("stopped the server and PostgreSQL.")
        return code
    except KeyboardInterrupt:
        console.print("interrupted: stopped what was started.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
