"""A throwaway PostgreSQL server for the tests, from Debian's binaries.

``start()`` runs ``initdb`` and ``postgres`` (as the ``postgres`` user when we are
root) in a private temporary directory, on a free local port, with ``fsync=off``,
in the foreground with a parent-death signal: a killed pytest leaves no server.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ("PgServer", "find_binaries", "start")

_PR_SET_PDEATHSIG = 1


def find_binaries() -> str | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``postgres``."""
    found = [
        path
        for path in glob.glob("/usr/lib/postgresql/*/bin")
        if os.path.exists(f"{path}/initdb") and os.path.exists(f"{path}/postgres")
    ]
    return max(found, key=lambda p: int(p.split("/")[-2]), default=None)


@dataclass
class PgServer:
    """A running server: ``dsn(name)`` addresses database ``name`` on it."""

    process: subprocess.Popen[bytes]
    port: int
    directory: str

    def dsn(self, database: str = "postgres") -> str:
        # No TLS: asyncpg first tries a TLS upgrade (sslmode=prefer), and a connect
        # cancelled during it leaves a future whose "unexpected connection_lost()"
        # error nobody retrieves; the test runner fails the test on it.
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_owner(uid: int | None, gid: int | None) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def prepare() -> None:
        if uid is not None and gid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        # After the uid change: changing credentials clears the parent-death signal.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return prepare


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(binaries: str, *, timeout: float = 60.0) -> PgServer:
    """Initialise and start a server; raise ``RuntimeError`` with its log if it fails."""
    directory = tempfile.mkdtemp(prefix="actors-pg-")
    uid = gid = None
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        uid, gid = owner.pw_uid, owner.pw_gid
        os.chown(directory, uid, gid)
    data, log = f"{directory}/data", f"{directory}/server.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    init = subprocess.run(
        [f"{binaries}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        preexec_fn=_as_owner(uid, gid),
        env=env,
        capture_output=True,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')}")
    port = _free_port()
    options = {
        "port": str(port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": directory,
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
    }
    command = [f"{binaries}/postgres", "-D", data]
    for name, value in options.items():
        command += ["-c", f"{name}={value}"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, preexec_fn=_as_owner(uid, gid), env=env, stdout=out, stderr=out
        )
    server = PgServer(process, port, directory)
    _wait_ready(server, log, timeout)
    return server


def _wait_ready(server: PgServer, log: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        if "ready to accept connections" in _read(log):
            return
        time.sleep(0.05)
    text = _read(log)
    server.stop()
    raise RuntimeError(f"the PostgreSQL server did not start:\n{text}")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except OSError:
        return ""
