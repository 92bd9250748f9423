"""A minimal HTTP/1.1 server for the throughput benchmarks: the same bodies, a fraction of the cost.

Not a benchmark itself. ``python -m asyncvox.testing --body-pool 64`` (aiohttp's web
server) spends 60-90 µs of CPU per request: with ~4 KB bodies, or clients on uvloop, it
is the bottleneck (measured: 85-99% of its core while the fastest clients run). This
server answers ``GET .../calls/{id}`` with exactly the bodies that one serves (the same
``envelope(synth_call("pool-{i}", seed, turns))`` pool, chosen by ``stable_hash(id) % pool``
under ``PYTHONHASHSEED=0``) and the same response headers (Content-Type, Content-Length,
Date, Server), keep-alive, pipelining-safe, from a bare ``asyncio.Protocol`` (on uvloop
when installed) with every response pre-encoded: about 10-20 µs per request. It checks
the bearer token (401 otherwise) and answers any other path 404. No faults, no latency,
no rate limit: those benchmarks use ``asyncvox.testing``.

    python benchmarks/_fastserver.py --port 0 --api-key test-key --body-pool 64 [--turns 6]

Prints its base URL as the first line of stdout, then serves until interrupted (SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import signal
import sys

from asyncvox.testing import envelope, synth_call
from asyncvox.testing.server import stable_hash

_END = b"\r\n\r\n"


def _response(status: str, body: bytes, date: str) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Date: {date}\r\nServer: asyncvox-bench\r\n\r\n"
    )
    return head.encode() + body


class _Http(asyncio.Protocol):
    __slots__ = ("buf", "server", "transport")

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        server = self.server
        out = []
        start = 0
        while True:
            end = buf.find(_END, start)
            if end < 0:
                break
            out.append(server.answer(buf[start:end]))
            start = end + 4  # GET requests carry no body
        self.buf = buf[start:]
        if out and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))


class FastServer:
    def __init__(self, api_key: str, pool: int, seed: int, turns: int | None) -> None:
        date = email.utils.formatdate(usegmt=True)
        self.pool = [
            _response("200 OK", envelope(synth_call(f"pool-{i}", seed=seed, turns=turns)), date)
            for i in range(pool)
        ]
        self.auth = f"\r\nauthorization: bearer {api_key}\r\n".encode()
        not_found = b'{"success":false,"error":"Call not found"}'
        self.not_found = _response("404 Not Found", not_found, date)
        unauthorized = b'{"success":false,"error":"Invalid or missing Bearer token"}'
        self.unauthorized = _response("401 Unauthorized", unauthorized, date)

    def answer(self, head: bytes) -> bytes:
        line_end = head.find(b"\r\n")
        request_line = head[:line_end] if line_end >= 0 else head
        if self.auth not in head.lower() + b"\r\n":
            return self.unauthorized
        parts = request_line.split(b" ")
        path = parts[1] if len(parts) == 3 else b""
        marker = path.rfind(b"/calls/")
        call_id = path[marker + 7 :].split(b"?", 1)[0] if marker >= 0 else b""
        if parts[0] != b"GET" or not call_id:
            return self.not_found
        return self.pool[stable_hash(call_id.decode()) % len(self.pool)]


async def serve(args: argparse.Namespace) -> None:
    server = FastServer(args.api_key, args.body_pool, args.seed, args.turns)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _Http(server), args.host, args.port, backlog=1024)
    port = srv.sockets[0].getsockname()[1]
    print(f"http://{args.host}:{port}/v1", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with srv:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--body-pool", type=int, default=64)
    parser.add_argument("--no-count-ids", action="store_true", help="accepted for compatibility (no-op)")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        runner = asyncio.Runner()
    else:
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(serve(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
