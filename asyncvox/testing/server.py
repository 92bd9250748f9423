"""A real aiohttp.web server that speaks the call API, with scripted and random faults.

Use it to test code that uses asyncvox (or asyncvox itself) against real HTTP on
127.0.0.1, no account and no network::

    from asyncvox.testing import DemoServer, Fault

    async with DemoServer(api_key="test-key") as server:
        server.add_call({"id": "c1", "status": "completed"}, call_id="abc")
        server.script("flaky", [503, Fault.drop(), 200])    # per-id fault sequence
        async with asyncvox.Client("test-key", server.base_url) as client:
            ...
        assert server.stats.requests_for("flaky") == 3

It also runs in a thread (``with DemoServer().running_in_thread() as server:``) for
synchronous tests, and in its own process (``python -m asyncvox.testing``) so that
benchmarks do not share a core with the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import msgspec
from aiohttp import web

from ._synth import envelope, synth_call

__all__ = ["DemoServer", "Fault", "FaultProfile", "RequestRecord", "ServerStats"]

_NOT_FOUND = msgspec.json.encode({"success": False, "error": "Call not found"})
_HTML_404 = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><hr>nginx</body></html>"
_HTML_5XX = b"<html><head><title>%d Bad Gateway</title></head><body><h1>%d</h1>upstream error</body></html>"
_ERRORS = {
    400: "Invalid request",
    403: "This API key may not read calls",
    422: "Unprocessable call id",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (``hash()`` of a str is salted per process),
    so which ids are missing, drifted or served which pooled body depends only on the seed."""
    return zlib.crc32(text.encode())


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted answer. Plain ints in a script mean ``Fault(status=N)``.

    ``status=200`` serves the call normally (after ``delay``), which is how a script says
    "then succeed". Helpers: :meth:`drop`, :meth:`slow`, :meth:`rate_limited`,
    :meth:`html`, :meth:`garbage`.
    """

    status: int = 200
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    disconnect: bool = False
    delay: float = 0.0

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering (a dropped keep-alive, a crashed proxy)."""
        return cls(disconnect=True)

    @classmethod
    def slow(cls, seconds: float, status: int = 200) -> Fault:
        """Answer after ``seconds`` (to trip a client timeout)."""
        return cls(status=status, delay=seconds)

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Fault:
        """429 with ``Retry-After`` (seconds or an HTTP date; ``None`` sends none)."""
        return cls(status=429, retry_after=retry_after)

    @classmethod
    def html(cls, status: int) -> Fault:
        """An HTML error page, as a proxy or load balancer sends."""
        return cls(
            status=status, body=_HTML_5XX.replace(b"%d", str(status).encode()), content_type="text/html"
        )

    @classmethod
    def garbage(cls, status: int = 200) -> Fault:
        """A body that is not JSON."""
        return cls(status=status, body=b"<<not json>>", content_type="text/plain")


@dataclass(slots=True)
class FaultProfile:
    """Random faults and limits applied to every request that no script answers.

    Rates are probabilities per request; ``latency`` is a (low, high) range of added
    seconds; ``rps_limit`` answers 429 beyond that many requests in any one second;
    ``missing_rate`` makes that share of synthetic ids not found (decided by the id, so it
    is stable across requests). ``seed`` makes the random faults reproducible.
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    retry_after: str | None = "1"
    latency: tuple[float, float] | None = None
    rps_limit: float | None = None
    missing_rate: float = 0.0
    drift_rate: float = 0.0
    seed: int = 0


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it (kept when ``DemoServer(record=True)``).

    Times are the event loop's clock; ``status`` is ``None`` for a dropped connection;
    ``note`` is what ``DemoServer.on_request`` returned as the request arrived.
    """

    call_id: str | None
    arrived: float
    answered: float
    status: int | None
    body_bytes: int
    note: Any = None


@dataclass(slots=True)
class ServerStats:
    """What the server saw: requests, statuses, and the most requests in flight at once."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    dropped: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    per_id: Counter[str] = field(default_factory=Counter)
    user_agents: set[str] = field(default_factory=set)

    def requests_for(self, call_id: str) -> int:
        """Requests received for ``call_id``."""
        return self.per_id[call_id]


class DemoServer:
    """A fault-injecting call API on 127.0.0.1 (see the module docstring).

    Args:
        api_key: the only bearer token accepted (others get 401).
        forbidden_keys: tokens that get 403.
        synthetic: serve a generated call for any id not registered (else 404).
        seed: seed of the synthetic calls.
        profile: random faults and limits.
        body_pool: serve synthetic calls from this many pre-encoded bodies (fast; for
            benchmarks) instead of generating one per id.
        turns: transcript length of synthetic calls (``None``: varied, ~25 KB median).
        count_ids: keep per-id request counts (turn off for million-id runs).
        record: keep a :class:`RequestRecord` of every request in :attr:`log`.
        port: 0 picks a free port.
    """

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        forbidden_keys: Iterable[str] = (),
        synthetic: bool = True,
        seed: int = 0,
        profile: FaultProfile | None = None,
        body_pool: int | None = None,
        turns: int | None = None,
        count_ids: bool = True,
        record: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "/v1",
    ) -> None:
        self.api_key = api_key
        self.forbidden_keys = set(forbidden_keys)
        self.synthetic = synthetic
        self.seed = seed
        self.profile = profile or FaultProfile()
        self.turns = turns
        self.count_ids = count_ids
        #: Every request, in arrival order, when ``record=True`` (see :class:`RequestRecord`).
        self.log: list[RequestRecord] | None = [] if record else None
        #: Called with the call id (or ``None``) as each request arrives; its return value
        #: is kept as the record's ``note`` (e.g. to read client state at that moment).
        self.on_request: Callable[[str | None], Any] | None = None
        self.host = host
        self.port = port
        self.prefix = prefix.rstrip("/")
        self.stats = ServerStats()
        self._calls: dict[str, bytes] = {}
        self._missing: set[str] = set()
        self._scripts: dict[str | None, deque[Fault]] = {}
        self._rng = random.Random(self.profile.seed)
        self._window: deque[float] = deque()
        self._pool: list[bytes] = []
        if body_pool:
            self._pool = [
                envelope(synth_call(f"pool-{i}", seed=seed, turns=turns, drift=self._drifts(f"pool-{i}")))
                for i in range(body_pool)
            ]
        self._runner: web.AppRunner | None = None
        self._auth_ok = f"Bearer {api_key}"

    # -- configuration ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL to give ``asyncvox.Client(base_url=...)``."""
        return f"http://{self.host}:{self.port}{self.prefix}"

    def add_call(self, call: dict[str, Any] | bytes, *, call_id: str | None = None) -> None:
        """Serve ``call`` (a JSON object, or a whole pre-encoded 200 body as bytes)."""
        if isinstance(call, bytes):
            if call_id is None:
                raise ValueError("call_id is required with a pre-encoded body")
            self._calls[call_id] = call
            return
        key = call_id or call.get("customerCallId") or call.get("id")
        if not isinstance(key, str):
            raise ValueError("call has no id; pass call_id=")
        self._calls[key] = envelope(call)

    def add_missing(self, *call_ids: str) -> None:
        """Answer these ids with the API's 404."""
        self._missing.update(call_ids)

    def script(self, call_id: str | None, faults: Iterable[Fault | int]) -> None:
        """Answer the next requests for ``call_id`` (``None``: for any id) with ``faults``, in order."""
        self._scripts.setdefault(call_id, deque()).extend(
            Fault(status=f) if isinstance(f, int) else f for f in faults
        )

    def reset_stats(self) -> None:
        """Zero the counters."""
        self.stats = ServerStats()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> DemoServer:
        """Bind and serve; fills in :attr:`port` when it was 0."""
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        # Slow scripted answers must not hold up a test's teardown for long.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._runner = runner
        return self

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> DemoServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[DemoServer]:
        """Serve from a background thread with its own event loop (for sync code and tests)."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        thread = threading.Thread(target=self._thread_main, args=(loop, started), daemon=True)
        thread.start()
        started.wait()
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def _thread_main(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self.start())
        started.set()
        loop.run_forever()

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled."""
        if self._runner is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # -- answering -------------------------------------------------------------------

    def _call_id(self, raw_path: str) -> str | None:
        path = raw_path.split("?", 1)[0]
        for prefix in (self.prefix + "/calls/", "/calls/"):
            if path.startswith(prefix) and len(path) > len(prefix):
                return unquote(path[len(prefix) :])
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        if stats.in_flight > stats.peak_in_flight:
            stats.peak_in_flight = stats.in_flight
        log = self.log
        if log is not None or self.on_request is not None:
            arrived = asyncio.get_running_loop().time()
            call_id = self._call_id(request.raw_path)
            note = self.on_request(call_id) if self.on_request is not None else None
        try:
            response = await self._answer(request)
        finally:
            stats.in_flight -= 1
        if log is not None:
            body = response.body if response is not None else None
            log.append(
                RequestRecord(
                    call_id,
                    arrived,
                    asyncio.get_running_loop().time(),
                    response.status if response is not None else None,
                    len(body) if isinstance(body, bytes) else 0,
                    note,
                )
            )
        if response is None:
            stats.dropped += 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp treats this as "connection gone"
        stats.statuses[response.status] += 1
        return response

    async def _answer(self, request: web.Request) -> web.Response | None:
        stats = self.stats
        auth = request.headers.get("Authorization", "")
        ua = request.headers.get("User-Agent")
        if ua and len(stats.user_agents) < 16:
            stats.user_agents.add(ua)
        call_id = self._call_id(request.raw_path)
        if call_id is None:
            return web.Response(status=404, body=_HTML_404, content_type="text/html")
        if self.count_ids:
            stats.per_id[call_id] += 1
        if auth != self._auth_ok:
            token = auth[7:] if auth.startswith("Bearer ") else ""
            if token and token in self.forbidden_keys:
                return self._json(403, _ERRORS[403])
            return self._json(401, "Invalid Bearer token" if token else "Invalid or missing Bearer token")
        fault = self._next_fault(call_id)
        profile = self.profile
        if fault is None and profile.rps_limit is not None:
            wait = self._over_rps(profile.rps_limit)
            if wait is not None:
                return self._json(429, _ERRORS[429], {"Retry-After": f"{wait:.2f}"})
        if fault is None:
            fault = self._random_fault()
        if profile.latency is not None:
            await asyncio.sleep(self._rng.uniform(*profile.latency))
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.disconnect:
                return None
            if fault.status != 200 or fault.body is not None:
                return self._fault_response(fault)
        return self._serve(call_id)

    def _next_fault(self, call_id: str) -> Fault | None:
        for key in (call_id, None):
            queue = self._scripts.get(key)
            if queue:
                return queue.popleft()
        return None

    def _random_fault(self) -> Fault | None:
        p = self.profile
        if not (p.rate_429 or p.rate_5xx or p.rate_drop or p.rate_slow):
            return None
        r = self._rng.random()
        if r < p.rate_429:
            return Fault.rate_limited(p.retry_after)
        r -= p.rate_429
        if r < p.rate_5xx:
            status = self._rng.choice((500, 502, 503, 504))
            return Fault.html(status) if status == 502 else Fault(status=status)
        r -= p.rate_5xx
        if r < p.rate_drop:
            return Fault.drop()
        r -= p.rate_drop
        if r < p.rate_slow:
            return Fault.slow(p.slow_seconds)
        return None

    def _over_rps(self, limit: float) -> float | None:
        now = time.monotonic()
        window = self._window
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= limit:
            return max(0.01, window[0] + 1.0 - now)
        window.append(now)
        return None

    def _drifts(self, call_id: str) -> bool:
        rate = self.profile.drift_rate
        return bool(rate) and stable_hash(f"{self.seed}:drift:{call_id}") % 10_000 < rate * 10_000

    def _is_missing(self, call_id: str) -> bool:
        if call_id in self._missing:
            return True
        rate = self.profile.missing_rate
        return bool(rate) and stable_hash(f"{self.seed}:{call_id}") % 10_000 < rate * 10_000

    def _serve(self, call_id: str) -> web.Response:
        body = self._calls.get(call_id)
        if body is None:
            if not self.synthetic or self._is_missing(call_id):
                return web.Response(status=404, body=_NOT_FOUND, content_type="application/json")
            if self._pool:
                body = self._pool[stable_hash(call_id) % len(self._pool)]
            else:
                drift = self._drifts(call_id)
                body = envelope(synth_call(call_id, seed=self.seed, turns=self.turns, drift=drift))
        return web.Response(status=200, body=body, content_type="application/json")

    @staticmethod
    def _json(status: int, error: str, headers: dict[str, str] | None = None) -> web.Response:
        body = msgspec.json.encode({"success": False, "error": error})
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    def _fault_response(self, fault: Fault) -> web.Response:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        if fault.body is not None:
            return web.Response(
                status=fault.status, body=fault.body, content_type=fault.content_type, headers=headers
            )
        return self._json(fault.status, _ERRORS.get(fault.status, "Error"), headers)
