"""Open a page in a real headless Chromium over the DevTools protocol (CDP) and report on it.

Debian's ``chromium`` package (``apt-get install -y chromium``; ``.ci/run`` installs it
when missing). A test that needs it fails, with that line, when it cannot be found: a
report nobody could open is not a passing test.

The browser listens on 127.0.0.1 only (``--remote-debugging-port=0``: it picks a free
port and prints it); the page's console messages, log entries and uncaught exceptions are
collected from CDP events while it loads, then an expression is evaluated in the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest

_NAMES = ("chromium", "chromium-browser")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
_LISTENING = re.compile(rb"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")
#: Generous bounds on a slow, shared machine; they end a hung browser, they time nothing.
_START_TIMEOUT = 60.0
_LOAD_TIMEOUT = 60.0


class PageRun(NamedTuple):
    """What happened while the page loaded, and the evaluated expression's value."""

    console_errors: list[str]
    exceptions: list[str]
    value: Any


def chromium_path() -> str:
    """The Chromium binary, or fail the test saying how to install it."""
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "headless Chromium is needed to open the report and was not found on PATH: "
        "apt-get update && apt-get install -y chromium (.ci/run does this when it is missing)",
        pytrace=False,
    )


class _Cdp:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            msg = await self._next()
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise AssertionError(f"CDP {method} failed: {msg['error']}")
                return msg.get("result", {})  # type: ignore[no-any-return]
            self.events.append(msg)

    async def wait_event(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            msg = await self._next()
            self.events.append(msg)
            if msg.get("method") == method:
                return msg

    async def _next(self) -> dict[str, Any]:
        msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"the DevTools connection ended: {msg.type!r}")
        return json.loads(msg.data)  # type: ignore[no-any-return]


def _console_errors(events: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    errors, exceptions = [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            errors.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
            errors.append(params["entry"].get("text", ""))
        elif method == "Runtime.exceptionThrown":
            exceptions.append(json.dumps(params.get("exceptionDetails", {}))[:500])
    return errors, exceptions


async def open_page(path: Path, expression: str) -> PageRun:
    """Load ``path`` (a local file) in headless Chromium; evaluate ``expression`` once loaded."""
    binary = chromium_path()
    url = _file_url(path)
    with tempfile.TemporaryDirectory(prefix="asyncvox-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            binary,
            *_FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        drain: asyncio.Task[None] | None = None
        try:
            port = await asyncio.wait_for(_devtools_port(proc.stderr), _START_TIMEOUT)
            # Keep reading stderr so that the browser never blocks on a full pipe.
            drain = asyncio.create_task(_drain(proc.stderr))
            return await asyncio.wait_for(_run(port, url, expression), _LOAD_TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            if drain is not None:
                await drain


async def _devtools_port(stderr: asyncio.StreamReader) -> int:
    seen = b""
    while True:
        line = await stderr.readline()
        if not line:
            raise AssertionError(
                f"Chromium exited before it listened for DevTools:\n{seen.decode(errors='replace')}"
            )
        seen += line
        match = _LISTENING.search(line)
        if match:
            return int(match.group(2))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(1 << 16):
        pass


def _file_url(path: Path) -> str:
    return path.resolve().as_uri()


async def _run(port: int, url: str, expression: str) -> PageRun:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = _Cdp(ws)
            for domain in ("Runtime", "Log", "Page"):
                await cdp.call(f"{domain}.enable")
            await cdp.call("Page.navigate", url=url)
            await cdp.wait_event("Page.loadEventFired")
            result = await cdp.call("Runtime.evaluate", expression=expression, returnByValue=True)
            if "exceptionDetails" in result:
                raise AssertionError(f"the page check itself failed: {result['exceptionDetails']}")
            errors, exceptions = _console_errors(cdp.events)
            return PageRun(errors, exceptions, result["result"].get("value"))
