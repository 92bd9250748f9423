"""A real aiohttp.web server that speaks the call API, with scripted and random faults,
and calls that take time to be analysed.

Use it to test code that uses asyncvox (or asyncvox itself) against real HTTP on
127.0.0.1, no account and no network::

    from asyncvox.testing import DemoServer, Fault

    async with DemoServer(api_key="test-key") as server:
        server.add_call({"id": "c1", "status": "completed"}, call_id="abc")
        server.script("flaky", [503, Fault.drop(), 200])    # per-id fault sequence
        async with asyncvox.Client("test-key", server.base_url) as client:
            ...
        assert server.stats.requests_for("flaky") == 3

Analysis (see :mod:`asyncvox.testing._analysis`): ``DemoServer(analysis_delay=(2, 30))``
makes every call take 2-30 s from its first request before it is found;
``server.script_analysis("c1", visible_after=1, statuses=[("analyzing", 1), ("completed",
3)])`` scripts one id, and ``DemoServer(clock=ManualClock())`` lets a test move time.

It also runs in a thread (``with DemoServer().running_in_thread() as server:``) for
synchronous tests, and in its own process (``python -m asyncvox.testing``) so that
benchmarks do not share a core with the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from ._analysis import AnalysisSimulator, make_plan, unfinished_body
from ._faults import ERRORS, Fault, FaultProfile, RandomFaults, error_body, stable_hash
from ._synth import envelope, synth_call

__all__ = ["DemoServer", "Fault", "FaultProfile", "RequestRecord", "ServerStats", "stable_hash"]

_NOT_FOUND = error_body(ERRORS[404])
_HTML_404 = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><hr>nginx</body></html>"


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
    #: 404s for calls whose analysis has not made them visible yet.
    not_yet_visible: int = 0
    #: 200s for calls served with a status before ``completed``.
    unfinished: int = 0

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
        analysis_delay: ``(min, max)`` seconds each call takes to be analysed, counted from
            its first request (``None``: calls are there at once); see :attr:`analysis`.
        analysis_visible_early: with ``analysis_delay``, the share of calls visible before
            they are done (``queued`` -> ``in_progress`` -> ``analyzing``); the others are
            not found until done, as uploaded calls are on the real server.
        analysis_retry_after: a ``Retry-After`` value sent on the 404s of calls not yet
            visible (``None``: none, as the real server).
        clock: the analysis clock, in seconds (default :func:`time.monotonic`); pass a
            :class:`~asyncvox.testing.ManualClock` to drive it from a test.
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
        analysis_delay: tuple[float, float] | None = None,
        analysis_visible_early: float = 0.5,
        analysis_retry_after: str | None = None,
        clock: Callable[[], float] | None = None,
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
        self._faults = RandomFaults(self.profile)
        #: Per-id analysis timelines (see :class:`~asyncvox.testing.AnalysisSimulator`).
        self.analysis = AnalysisSimulator(
            delay=analysis_delay,
            visible_early=analysis_visible_early,
            seed=seed,
            clock=clock or time.monotonic,
        )
        self.analysis_retry_after = analysis_retry_after
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

    def script_analysis(
        self,
        call_id: str,
        *,
        visible_after: float = 0.0,
        statuses: Iterable[tuple[str, float]] = (),
    ) -> None:
        """Script how ``call_id``'s analysis goes, in seconds after its first request.

        Not found (the API's 404) before ``visible_after`` (``math.inf``: never); then,
        with ``statuses`` such as ``[("queued", 0), ("analyzing", 2), ("completed", 5)]``,
        the status of the last step reached (a call stuck ``analyzing`` has no
        ``completed`` step). ``completed``, or no statuses, serves the call as stored.
        Raises :class:`ValueError` for a negative time or statuses out of time order.
        """
        self.analysis.script(call_id, make_plan(visible_after, statuses))

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
                return self._json(403, ERRORS[403])
            return self._json(401, "Invalid Bearer token" if token else "Invalid or missing Bearer token")
        if self.analysis.active:
            self.analysis.touch(call_id)
        fault = self._next_fault(call_id)
        faults = self._faults
        if fault is None:
            wait = faults.over_rps()
            if wait is not None:
                return self._json(429, ERRORS[429], {"Retry-After": f"{wait:.2f}"})
            fault = faults.pick()
        if self.profile.latency is not None:
            await asyncio.sleep(faults.latency())
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
        if body is None and (not self.synthetic or self._is_missing(call_id)):
            return web.Response(status=404, body=_NOT_FOUND, content_type="application/json")
        view = self.analysis.view(call_id) if self.analysis.active else None
        if view is not None and not view.visible:
            self.stats.not_yet_visible += 1
            retry = self.analysis_retry_after
            headers = {"Retry-After": retry} if retry is not None else None
            return web.Response(status=404, body=_NOT_FOUND, content_type="application/json", headers=headers)
        if body is None:
            if self._pool:
                body = self._pool[stable_hash(call_id) % len(self._pool)]
            else:
                drift = self._drifts(call_id)
                body = envelope(synth_call(call_id, seed=self.seed, turns=self.turns, drift=drift))
        if view is not None and view.status is not None:
            self.stats.unfinished += 1
            body = unfinished_body(body, view.status)
        return web.Response(status=200, body=body, content_type="application/json")

    @staticmethod
    def _json(status: int, error: str, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status, body=error_body(error), content_type="application/json", headers=headers
        )

    def _fault_response(self, fault: Fault) -> web.Response:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        if fault.body is not None:
            return web.Response(
                status=fault.status, body=fault.body, content_type=fault.content_type, headers=headers
            )
        return self._json(fault.status, ERRORS.get(fault.status, "Error"), headers)
