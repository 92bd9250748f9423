"""A real ``redis-server`` for fleet tests and benchmarks: started on a free 127.0.0.1 port
with no persistence, killed (as a crash looks) and restarted on the same port.

Readiness is a raw ``PING`` over a socket, so this needs the ``redis-server`` program but
not redis-py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

__all__ = ["RedisServer"]

_READY_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1, owned by a test or a benchmark.

    ``start()`` raises :class:`RuntimeError` naming the reason when the program is missing,
    exits at start or never answers ``PING`` (within 10 s): a test that needs Redis fails
    with that message, never skips.
    """

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None) -> None:
        self.port = port if port is not None else _free_port()
        self.workdir = os.fspath(workdir)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers ``PING``."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [exe, *args, "--dir", self.workdir], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} exited at start: {err.strip()}")
            if self._pong():
                return
            time.sleep(0.05)  # polling a process that is starting to listen
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {_READY_TIMEOUT:g} s")

    def kill(self) -> None:
        """SIGKILL (what a crash looks like to the clients); no-op when not running."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False
