"""``gunicorn --preload`` with uvicorn workers: a pool used in the master before
the fork is never used by a worker.

``tests/scaling/preforked_app.py`` opens a connection in the gunicorn master
and queries with it; then gunicorn forks its workers, each with the same pool
object and the same open socket. The pool resets itself in each child
(``os.register_at_fork``): it forgets the master's connection and opens its
own. (``uvicorn --workers`` spawns fresh interpreters, so it cannot show this.)

Two runs: the master used the pool with ``asyncio.run`` (its loop closed
before the fork), or in a loop it left open. One server run each, checked by
each test below.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from tests.scaling.support import Served, free_port, serving

WORKERS = 2
POOL_SIZE = 2
REQUESTS = 200

SESSIONS = "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid"

BOTH_LOOPS = pytest.mark.parametrize("run", ["closed", "open"], indirect=True)


@dataclass
class Run:
    """What one server run showed."""

    master_loop: str
    answers: list[dict[str, Any]] = field(default_factory=list)
    worker_pids: set[int] = field(default_factory=set)
    sessions_while_serving: list[asyncpg.Record] = field(default_factory=list)
    exit_code: int | None = None
    sessions_after_exit: list[asyncpg.Record] = field(default_factory=list)

    def one(self, key: str) -> Any:
        """What every answer says alike about the master."""
        (value,) = {answer[key] for answer in self.answers}
        return value

    @property
    def worker_sessions(self) -> set[int]:
        return {row["pid"] for row in self.sessions_while_serving} - {self.one("master_backend")}


async def drive(served: Served, direct_dsn: str, run: Run) -> None:
    probe = await asyncpg.connect(direct_dsn)
    try:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as client:
            first = (await client.get("/whoami")).json()
            # Every worker up (gunicorn forks them a moment apart), its pool prefilled.
            deadline = time.monotonic() + 30
            while True:
                rows = await probe.fetch(SESSIONS, first["pool"])
                if len({r["pid"] for r in rows} - {first["master_backend"]}) == WORKERS * POOL_SIZE:
                    break
                assert time.monotonic() < deadline, (rows, served.output())
                await asyncio.sleep(0.05)

            async def ask() -> None:
                response = await client.get("/whoami")
                assert response.status_code == 200, response.text
                run.answers.append(response.json())

            for _ in range(REQUESTS // 20):
                await asyncio.gather(*(ask() for _ in range(20)))
        run.worker_pids = served.children()
        run.sessions_while_serving = await probe.fetch(SESSIONS, run.one("pool"))
        run.exit_code = await asyncio.to_thread(served.stop)
        deadline = time.monotonic() + 5
        while True:
            run.sessions_after_exit = await probe.fetch(SESSIONS, run.one("pool"))
            if not run.sessions_after_exit or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
    finally:
        await probe.close()


@pytest.fixture(scope="module")
def run(request: pytest.FixtureRequest, direct_dsn: str) -> Run:
    port = free_port()
    arguments = ["-m", "gunicorn", "--preload", "--workers", str(WORKERS)]
    arguments += ["--worker-class", "uvicorn_worker.UvicornWorker"]
    arguments += ["--bind", f"127.0.0.1:{port}", "--graceful-timeout", "10"]
    arguments += ["--log-level", "warning", "tests.scaling.preforked_app:app"]
    env = {"DATABASE_URL": direct_dsn, "POOL_SIZE": str(POOL_SIZE), "MASTER_LOOP": request.param}
    result = Run(request.param)
    with serving(arguments, env, port=port) as served:
        asyncio.run(drive(served, direct_dsn, result))
    print(
        f"\ngunicorn --preload, {WORKERS} uvicorn workers, master loop {request.param}: "
        f"master backend {result.one('master_backend')}, workers' backends "
        f"{sorted({a['backend'] for a in result.answers})}, exit {result.exit_code}"
    )
    return result


@BOTH_LOOPS
def test_no_worker_ever_uses_the_connection_the_master_made(run: Run) -> None:
    assert len(run.answers) == REQUESTS
    assert run.one("master_backend") not in {answer["backend"] for answer in run.answers}


@BOTH_LOOPS
def test_each_worker_forgets_the_masters_connection_and_opens_its_own(run: Run) -> None:
    workers = {answer["worker"] for answer in run.answers}
    assert workers <= run.worker_pids
    assert run.one("master") not in workers
    # Each worker's pool abandoned the master's connection, without using it...
    assert run.one("abandoned") == 1
    # ...and filled itself with connections of its own.
    assert len(run.worker_sessions) == WORKERS * POOL_SIZE
    assert {answer["backend"] for answer in run.answers} <= run.worker_sessions


@pytest.mark.parametrize(
    "run",
    [
        "closed",
        "open",
    ],
    indirect=True,
)
def test_the_masters_connection_outlives_the_fork_untouched(run: Run) -> None:
    by_pid = {row["pid"]: row for row in run.sessions_while_serving}
    master = by_pid.get(run.one("master_backend"))
    assert master is not None, "the master's connection is gone"
    # Its last query is still the one the master ran: no worker sent it anything.
    assert (master["state"], master["query"]) == ("idle", run.one("master_query"))


@BOTH_LOOPS
def test_shutdown_leaves_no_server_connection_behind(run: Run) -> None:
    assert run.exit_code == 0
    assert run.sessions_after_exit == []
