"""After ``os.fork()`` the child never touches the parent's resources.

Each case runs in a fresh interpreter (no stray threads to make ``fork`` unsafe)
and prints what the child saw.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script: str) -> list[str]:
    """Run ``script`` in a new interpreter; the lines the child wrote to its pipe."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


CHILD = """
def child(body):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, body().encode())
        except BaseException as exc:
            os.write(write, f"raised:{type(exc).__name__}".encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1000).decode()
    os.waitpid(pid, 0)
    print(answer)
"""


def test_a_thread_lease_open_at_fork_is_inert_in_the_child() -> None:
    lines = run(
        "import os\nfrom escudeiro_pools import ThreadPool, PoolError\n"
        + CHILD
        + """
released = []
pool = ThreadPool(object, released.append, pool_size=2)
lease = pool.lease()
resource = lease.__enter__()
other = pool.acquire()

def body():
    lease.__exit__(None, None, None)
    try:
        pool.release(other)
        refused = "no"
    except PoolError as exc:
        refused = "yes" if "not acquired from this pool" in str(exc) else "other"
    stats = pool.stats()
    fresh = pool.acquire()
    pool.release(fresh)
    return (
        f"refused={refused} in_use={stats.in_use} size={stats.size} "
        f"released={len(released)} fresh={fresh is not resource and fresh is not other}"
    )

child(body)
stats = pool.stats()
print(f"parent_in_use={stats.in_use}")
lease.__exit__(None, None, None)
pool.release(other)
print(f"parent_idle={pool.stats().idle}")
"""
    )
    assert lines == [
        "refused=yes",
        "in_use=0",
        "size=0",
        "released=0",
        "fresh=True",
        "parent_in_use=2",
        "parent_idle=2",
    ]


def test_an_async_lease_open_at_fork_is_inert_in_the_child() -> None:
    lines = run(
        "import asyncio, os\nfrom escudeiro_pools import AsyncPool, PoolError\n"
        + CHILD
        + """
released = []

async def make():
    return object()

async def drop(resource):
    released.append(resource)

pool = AsyncPool(make, drop, pool_size=2)

async def parent():
    lease = pool.lease()
    resource = await lease.__aenter__()
    other = await pool.acquire()

    def body():
        async def in_child():
            await lease.__aexit__(None, None, None)
            try:
                await pool.release(other)
                refused = "no"
            except PoolError as exc:
                refused = "yes" if "not acquired from this pool" in str(exc) else "other"
            stats = pool.stats()
            fresh = await pool.acquire()
            await pool.release(fresh)
            return (
                f"refused={refused} in_use={stats.in_use} size={stats.size} "
                f"released={len(released)} fresh={fresh is not resource}"
            )

        return asyncio.run(in_child())

    child(body)
    print(f"parent_in_use={pool.stats().in_use}")
    await lease.__aexit__(None, None, None)
    await pool.release(other)
    print(f"parent_idle={pool.stats().idle}")

asyncio.run(parent())
"""
    )
    assert lines == [
        "refused=yes",
        "in_use=0",
        "size=0",
        "released=0",
        "fresh=True",
        "parent_in_use=2",
        "parent_idle=2",
    ]


@pytest.mark.parametrize("how", ["constructed", "resized"])
def test_a_child_keeps_min_size_with_a_maintainer_of_its_own(how: str) -> None:
    """The parent's maintainer thread is not copied by fork: the child's first
    acquire starts one, which keeps ``min_size`` with resources of the child's."""
    lines = run(
        "import os, time, warnings\nfrom escudeiro_pools import ThreadPool\n"
        + CHILD
        + f"""
made = []
def factory():
    made.append(os.getpid())
    return object()

if {how!r} == "constructed":
    pool = ThreadPool(factory, lambda r: None, pool_size=3, min_size=2)
else:
    pool = ThreadPool(factory, lambda r: None, pool_size=3)
    pool.resize(min_size=2)
pool.wait_ready(5)

def body():
    resource = pool.acquire()  # made by the child: the parent's are not its own
    pool.release(resource)
    for _ in range(500):
        if pool.stats().size >= 2:
            break
        time.sleep(0.01)
    mine = made.count(os.getpid())
    return f"size={{pool.stats().size}} made_by_child={{mine}}"

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # a fork beside the maintainer thread
    child(body)
pool.close()
"""
    )
    assert lines == ["size=2", "made_by_child=2"]
