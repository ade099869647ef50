"""Real HTTP servers (uvicorn, gunicorn) as subprocesses on 127.0.0.1, and
``eventually`` for conditions that become true a little later.

Each server starts in a session (and process group) of its own with the
repository root as its working directory. ``serving`` waits until it
answers, and on the way out stops it with SIGTERM, waits, and kills whatever
is left of its process group, so no process outlives the test, even a
failing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.pgbouncer import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    """A server subprocess: its process, its base URL and what it printed."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    stopped_with: int | None = field(default=None)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> set[int]:
        """The pids of the server's child processes (its workers), from /proc."""
        found: set[int] = set()
        for task in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found.update(int(pid) for pid in task.read_text().split())
        return found

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait for the server's graceful exit; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.stopped_with = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stopped_with = kill_group(self.process)
        return self.stopped_with


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member we may not signal
        return True
    return True


def kill_group(process: subprocess.Popen[bytes]) -> int:
    """SIGKILL the process group the server leads (the server and its workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait(10)


@contextlib.contextmanager
def serving(
    arguments: list[str],
    env: Mapping[str, str],
    *,
    port: int,
    ready: str = "/ready",
    timeout: float = 60.0,
) -> Iterator[Served]:
    """Run ``python <arguments>`` (it must listen on ``port``) until ``GET ready``
    answers 200; stop it on exit, killing what is left of its process group."""
    with tempfile.NamedTemporaryFile(prefix="escudeiro-pools-server-", suffix=".log") as log:
        process = subprocess.Popen(
            [sys.executable, *arguments],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        served = Served(process, f"http://127.0.0.1:{port}", Path(log.name))
        try:
            wait_ready(served, ready, timeout)
            yield served
        finally:
            if process.poll() is None:
                served.stop()
            deadline = time.monotonic() + 5
            while group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # workers still exiting after their server
            if group_alive(process.pid):
                kill_group(process)


def wait_ready(served: Served, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=served.base_url, timeout=5) as client:
        while True:
            if served.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {served.process.returncode}:\n{served.output()}"
                )
            try:
                if client.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready within {timeout} s:\n{served.output()}")
            time.sleep(0.1)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Wait until ``check()`` is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not true within {within} s"
        await asyncio.sleep(0.02)


__all__ = ["ROOT", "Served", "eventually", "free_port", "serving"]
