"""Run an ASGI app under a real uvicorn server on 127.0.0.1, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

#: The event loop ``serve`` runs servers on: ``"auto"`` (uvloop when installed,
#: as ``uvicorn[standard]`` does in production), ``"asyncio"`` or ``"uvloop"``.
LOOP = "auto"


@contextmanager
def serve(app: Any, *, loop: str | None = None) -> Iterator[str]:
    """Serve ``app`` (lifespan included) on a free port; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        loop=loop or LOOP,
    )
    server = uvicorn.Server(config)
    exits: list[SystemExit] = []

    def run() -> None:
        try:
            server.run()
        except SystemExit as exc:  # uvicorn exits when the lifespan startup fails
            exits.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(
                f"the server failed to start (exit {exits[0].code if exits else '?'})"
            )
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not start within 20 s")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
