"""``uvicorn --workers 3`` serving the example app: a pool per worker process.

One run of the server, loaded by a real HTTP client while a probe reads
``pg_stat_activity`` on PostgreSQL itself every few milliseconds, then
stopped with SIGTERM; each test below checks one thing it showed. The example
names each process's pool ``notes-api-<pid>``, and so each worker's sessions.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from examples.fastapi_asyncpg import SCHEMA
from tests.scaling.support import Served, free_port, serving

WORKERS = 3
POOL_SIZE = 2
CONCURRENCY = 24
LOAD_SECONDS = 2.0

APP_SESSIONS = """
SELECT application_name, count(*) AS sessions
FROM pg_stat_activity
WHERE application_name LIKE 'notes-api-%'
GROUP BY application_name
"""


@dataclass
class Run:
    """What one server run showed."""

    worker_pids: set[int] = field(default_factory=set)
    samples: list[Counter[str]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    served_by: set[str] = field(default_factory=set)  # pool names that answered /pools
    exit_code: int | None = None
    left_after_exit: Counter[str] = field(default_factory=Counter)
    seconds_to_clear: float = 0.0

    @property
    def names(self) -> set[str]:
        return {name for sample in self.samples for name in sample}


async def sessions(probe: asyncpg.Connection) -> Counter[str]:
    return Counter(
        {row["application_name"]: row["sessions"] for row in await probe.fetch(APP_SESSIONS)}
    )


async def drive(served: Served, direct_dsn: str, run: Run) -> None:
    probe = await asyncpg.connect(direct_dsn)
    try:
        deadline = time.monotonic() + 30
        # Ready: every worker's pool prefilled.
        while len(sample := await sessions(probe)) < WORKERS or set(sample.values()) != {POOL_SIZE}:
            assert time.monotonic() < deadline, (sample, served.output())
            await asyncio.sleep(0.05)
        run.worker_pids = served.children()
        stop = asyncio.Event()

        async def sample_until_stopped() -> None:
            while not stop.is_set():
                run.samples.append(await sessions(probe))
                await asyncio.sleep(0.01)

        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=served.base_url, limits=limits, timeout=30) as client:

            async def user(n: int) -> None:
                while not stop.is_set():
                    note = await client.post("/notes", json={"body": f"note from user {n}"})
                    run.statuses[note.status_code] += 1
                    if note.status_code == 201:
                        read = await client.get(f"/notes/{note.json()['id']}")
                        run.statuses[read.status_code] += 1
                    pools = await client.get("/pools")
                    run.statuses[pools.status_code] += 1
                    run.served_by.add(pools.json()["db"]["name"])

            sampler = asyncio.create_task(sample_until_stopped())
            users = asyncio.gather(*(user(n) for n in range(CONCURRENCY)))
            await asyncio.sleep(LOAD_SECONDS)
            stop.set()
            await asyncio.wait_for(users, 30)
            await sampler

        run.exit_code = await asyncio.to_thread(served.stop)
        stopped_at = time.monotonic()
        names = run.names
        while True:
            left = await sessions(probe)
            run.left_after_exit = Counter({n: c for n, c in left.items() if n in names})
            if not run.left_after_exit or time.monotonic() - stopped_at > 5:
                break
            await asyncio.sleep(0.02)
        run.seconds_to_clear = time.monotonic() - stopped_at
    finally:
        await probe.close()


@pytest.fixture(scope="module")
def run(direct_dsn: str) -> Run:
    async def create_schema() -> None:
        # Before the workers start: three concurrent CREATE TABLE IF NOT EXISTS
        # can collide in PostgreSQL's catalog.
        connection = await asyncpg.connect(direct_dsn)
        try:
            await connection.execute(SCHEMA)
        finally:
            await connection.close()

    asyncio.run(create_schema())
    port = free_port()
    arguments = ["-m", "uvicorn", "--factory", "examples.fastapi_asyncpg:app_from_env"]
    arguments += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    arguments += ["--log-level", "warning", "--no-access-log"]
    env = {"DATABASE_URL": direct_dsn, "POOL_SIZE": str(POOL_SIZE)}
    result = Run()
    with serving(arguments, env, port=port) as served:
        asyncio.run(drive(served, direct_dsn, result))
        print(
            f"\nuvicorn --workers {WORKERS}: {sum(result.statuses.values())} requests "
            f"{dict(result.statuses)}, {len(result.samples)} samples of pg_stat_activity, "
            f"at most {max(sum(s.values()) for s in result.samples)} sessions; "
            f"{len(result.served_by)} workers answered /pools; exit {result.exit_code}, "
            f"sessions gone {result.seconds_to_clear:.2f} s after"
        )
    return result


def test_each_worker_has_its_own_pool_named_after_its_pid(run: Run) -> None:
    assert len(run.worker_pids) >= WORKERS
    names = run.names
    assert len(names) == WORKERS
    pids = {int(name.removeprefix("notes-api-")) for name in names}
    assert pids <= run.worker_pids  # the workers', not the supervisor's
    assert run.served_by <= names


def test_the_server_never_sees_more_than_workers_times_pool_size(run: Run) -> None:
    assert len(run.samples) >= 10
    totals = [sum(sample.values()) for sample in run.samples]
    assert max(totals) == WORKERS * POOL_SIZE  # reached: every pool was full
    assert all(count <= POOL_SIZE for sample in run.samples for count in sample.values())


def test_every_request_under_load_succeeds(run: Run) -> None:
    assert set(run.statuses) <= {200, 201}, run.statuses
    assert run.statuses[201] >= CONCURRENCY  # every user got at least one note in


def test_shutdown_leaves_no_server_connection_behind(run: Run) -> None:
    assert run.exit_code == 0
    assert not run.left_after_exit
    assert run.seconds_to_clear < 2.0
