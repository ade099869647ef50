"""A FastAPI app for ``gunicorn --preload``: its pool is made, and used, in the
master process before the workers fork.

    DATABASE_URL=... gunicorn --preload -w 2 -k uvicorn_worker.UvicornWorker \\
        tests.scaling.preforked_app:app

Importing this module (in the master, with ``--preload``) opens one
connection and runs ``BEFORE_FORK`` on it, with ``asyncio.run`` or, with
``MASTER_LOOP=open``, in an event loop left open. Each forked worker inherits the
pool object and that connection's socket; the pool forgets the connection in
the child (``os.register_at_fork``), and the worker's lifespan fills it with
connections of its own. ``GET /whoami`` tells which worker and which server
process answered, and what the master did before the fork.
"""

# No `from __future__ import annotations`: FastAPI must see the `Conn` alias.
import asyncio
import os
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI

from escudeiro_pools.integrations.asyncpg import connection_pool
from escudeiro_pools.integrations.fastapi import health_router, lifespan

NAME = "preforked"
BEFORE_FORK = "SELECT pg_backend_pid() /* in the master, before the fork */"

pool = connection_pool(
    os.environ["DATABASE_URL"], name=NAME, pool_size=int(os.environ.get("POOL_SIZE", "3"))
)
Conn = Annotated[asyncpg.Connection, Depends(pool.lease)]


async def use_before_fork() -> int:
    async with pool.lease() as connection:
        return int(await connection.fetchval(BEFORE_FORK))


MASTER_PID = os.getpid()
if os.environ.get("MASTER_LOOP") == "open":
    # The loop stays open, as in a master that goes on using it: a worker can
    # use the pool only because the pool forgot, at the fork, what belongs to
    # the master (else: "PoolError: ... live resources bound to another event
    # loop that is still open").
    master_loop = asyncio.new_event_loop()
    MASTER_BACKEND = master_loop.run_until_complete(use_before_fork())
else:
    MASTER_BACKEND = asyncio.run(use_before_fork())  # the loop is closed, the connection kept

app = FastAPI(lifespan=lifespan(db=pool))
app.include_router(health_router(db=pool))


@app.get("/whoami")
async def whoami(connection: Conn) -> dict[str, Any]:
    stats = pool.stats()
    return {
        "worker": os.getpid(),
        "backend": await connection.fetchval("SELECT pg_backend_pid()"),
        "pool": NAME,
        "master": MASTER_PID,
        "master_backend": MASTER_BACKEND,
        "master_query": BEFORE_FORK,
        "abandoned": stats.abandoned,
        "created": stats.created,
    }
