"""A tiny web app for the fleet benchmark's web-app scenario: one ``asyncvox.Client`` per worker.

Not a benchmark itself; ``_webrun.py`` serves it with ``uvicorn --workers 4``. A plain
ASGI callable (no framework), written the way a real app is:

* the client is module-level, opened in the lifespan startup and closed on shutdown;
* it is configured from the environment only (``ASYNCVOX_API_KEY``,
  ``ASYNCVOX_BASE_URL`` and, to join the fleet, ``ASYNCVOX_REDIS_URL``): no fleet code;
* ``GET /calls/{id}`` awaits ``client.get_call(id)`` and answers 200 with the call's
  status, or 502 naming the error; ``GET /healthz`` answers 200.

For the benchmark only: with ``$BENCH_WEBAPP_DIR`` set, each worker writes
``ready-<pid>`` there once its client is open and ``stats-<pid>.json`` (what its client
did, every success's monotonic time included) once it is closed.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncvox

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

client: asyncvox.Client | None = None
_ok = 0
_failed = 0
_done_at: list[float] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await _http(scope, send)


async def _http(scope: Scope, send: Send) -> None:
    global _ok, _failed
    path: str = scope["path"]
    if path == "/healthz":
        await _respond(send, 200, b"ok")
        return
    if not path.startswith("/calls/") or client is None:
        await _respond(send, 404, b'{"error":"not found"}')
        return
    try:
        call = await client.get_call(path[len("/calls/") :])
    except asyncvox.AsyncvoxError as exc:
        _failed += 1
        await _respond(send, 502, json.dumps({"error": type(exc).__name__}).encode())
        return
    _ok += 1
    _done_at.append(time.monotonic())
    status = call.status if call is not None else None
    await _respond(send, 200, json.dumps({"status": status}).encode())


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _dump_tasks() -> None:
    print(f"--- worker {os.getpid()}: {len(asyncio.all_tasks())} tasks ---", file=sys.stderr)
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


def _note(directory: str, what: str, text: str) -> None:
    # One small local file at startup and one at shutdown: not worth a thread.
    Path(directory, f"{what}-{os.getpid()}" + (".json" if text else "")).write_text(text)


async def _lifespan(receive: Receive, send: Send) -> None:
    global client
    out = os.environ.get("BENCH_WEBAPP_DIR")
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                client = asyncvox.Client()
                await client.__aenter__()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                return
            # A worker that will not stop can be asked what it is waiting for.
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
            if out:
                _note(out, "ready", "")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if client is not None:
                governor = client.governor
                state = governor.fleet_state
                await client.aclose()
                if out:
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    stats = {
                        "ok": _ok,
                        "failed": _failed,
                        # each get_call ends in one answer; every refusal before it is one more request
                        "requests": _ok + _failed + governor.throttled,
                        "throttles": governor.throttled,
                        "round_trips": state.round_trips if state is not None else 0,
                        "fallbacks": state.fallbacks if state is not None else 0,
                        "link": state.state if state is not None else None,
                        "cpu": usage.ru_utime + usage.ru_stime,
                        "done_at": _done_at,
                    }
                    _note(out, "stats", json.dumps(stats))
            await send({"type": "lifespan.shutdown.complete"})
            return
