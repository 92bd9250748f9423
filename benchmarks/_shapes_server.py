"""A loopback call API shaped like a real limiter (one of ``_shapes.SHAPES``), in its own process.

Not a benchmark itself. The limiter decides on each request's arrival (``time.monotonic()``);
a refusal answers at once (the shape's status, and ``Retry-After`` as the shape says); an
admitted request waits the shape's latency (or its turn at one of the queue's workers) and
gets a realistic call body (``asyncvox.testing``'s, a pool chosen by a stable hash of the id).

    python benchmarks/_shapes_server.py --shape token-bucket-small [--rate 100] [--n 2000]

Prints its base URL as the first line of stdout, then serves until interrupted (SIGINT).
Parent side: :class:`ShapeServer` runs one and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, ServerProcess
from _shapes import Params, shape_named

__all__ = ["ShapeServer"]

_REFUSED = b'{"success":false,"error":"Too many requests"}'


async def serve(args: argparse.Namespace, log_path: str | None) -> list[float]:
    from aiohttp import web

    from asyncvox.testing import envelope, synth_call
    from asyncvox.testing.server import stable_hash

    shape = shape_named(args.shape)
    limiter = shape.limiter(Params(args.n, args.rate, args.concurrency))
    backend = shape.backend()
    rng = random.Random(0)
    bodies = [envelope(synth_call(f"pool-{i}", seed=0, turns=args.turns)) for i in range(args.pool)]
    expected = f"Bearer {API_KEY}"
    # A diagnosis aid: where the refusals fall in time (seconds from the first request),
    # e.g. to see how many a limiter's first window costs.
    first: list[float] = []
    refused_at: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, body=b'{"success":false,"error":"Unauthorized"}')
        now = time.monotonic()
        verdict = limiter.admit(now)
        if log_path:
            if not first:
                first.append(now)
            if not verdict.admitted:
                refused_at.append(round(now - first[0], 4))
        if not verdict.admitted:
            header = shape.retry_after_header(verdict.wait)
            headers = {"Retry-After": header} if header is not None else None
            return web.Response(
                status=shape.status, body=_REFUSED, content_type="application/json", headers=headers
            )
        try:
            await asyncio.sleep(backend.serve(now, rng))
            body = bodies[stable_hash(request.match_info["call_id"]) % len(bodies)]
            return web.Response(body=body, content_type="application/json")
        finally:
            limiter.done(time.monotonic())

    app = web.Application()
    app.router.add_get("/calls/{call_id}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return refused_at


class ShapeServer(ServerProcess):
    """``with ShapeServer("fixed-window", params) as s: s.base_url`` (pinned to the server CPU)."""

    def __init__(self, shape: str, params: Params, *, turns: int = 6, startup_timeout: float = 60.0) -> None:
        self.args = [
            sys.executable,
            __file__,
            "--shape",
            shape,
            "--n",
            str(params.n),
            "--rate",
            str(params.rate),
            "--concurrency",
            str(params.concurrency),
            "--turns",
            str(turns),
        ]
        self.startup_timeout = startup_timeout

    @property
    def command(self) -> str:
        return " ".join(["python", "benchmarks/_shapes_server.py", *self.args[2:]])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--n", type=int, default=2000, help="ids in the run (the quota drop's timing)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--turns", type=int, default=6, help="transcript turns per call body")
    parser.add_argument("--pool", type=int, default=64, help="distinct call bodies")
    args = parser.parse_args()
    log_path = os.environ.get("ASYNCVOX_BENCH_REFUSALS")  # where to write the refusal times
    with contextlib.suppress(KeyboardInterrupt):
        refused_at = asyncio.run(serve(args, log_path))
        if log_path:
            Path(log_path).write_text(json.dumps(refused_at))


if __name__ == "__main__":
    main()
