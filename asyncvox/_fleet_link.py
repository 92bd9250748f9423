"""One governor's link to the fleet (:mod:`asyncvox.fleet`): joining, background syncs,
leases of start times, news, and the fallback to the process's own limits and rejoin.

The governor (:class:`asyncvox.limits.Governor`) consults it on its slow path only; the
scripts it runs are :mod:`asyncvox._fleet_scripts`, the news it hears
:mod:`asyncvox._fleet_events`, the start times it holds :mod:`asyncvox._fleet_leases`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from ._fleet_events import FleetNews, Listener
from ._fleet_leases import Leases
from ._fleet_scripts import LEASE, MAX_PAUSE, MAX_RATE, MIN_RATE, SYNC, FleetKeys
from ._pacing import MARGIN
from .errors import ConfigurationError
from .fleet import FleetState, RedisFleet, _redact

__all__ = ["FAST_SYNC", "FleetCounts", "FleetLink"]

logger = logging.getLogger("asyncvox")

#: Seconds between syncs while the fleet is unpaced and this process's slow start grows:
#: its first refusal must reach every process within a round trip or two, or each goes
#: on doubling into the limit.
FAST_SYNC: Final = 0.05


class FleetCounts(NamedTuple):
    """What a governor reports at a sync."""

    #: refusals since the governor was made
    refused: int
    #: starts admitted per second lately (over the last two seconds)
    admitted: float
    #: starts per second, refused or not, over the last quarter second
    sent: float
    #: whether slow start is still growing (then the link syncs every FAST_SYNC s)
    growing: bool
    #: as ``admitted``, but not from before the window's edge after the first refusal
    #: (what an onset measures the rate by: :meth:`Controller.admitted_lately`)
    since_edge: float


class FleetLink:
    """One governor's link to the fleet: background syncs, leases, faults (module docstring).

    ``counts`` is asked for the governor's totals at each sync; ``on_change`` is called
    whenever what the governor must do changed (paced or not, a lease arrived, a fault).
    """

    def __init__(
        self,
        config: RedisFleet,
        keys: FleetKeys,
        counts: Callable[[], FleetCounts],
        on_change: Callable[[], None],
    ) -> None:
        self.config = config
        self.keys = keys
        self._counts = counts
        self._on_change = on_change
        #: Whether starts come from the fleet's pace (Redis up and the fleet paced).
        self.paced = False
        self.rate: float | None = None
        self.pace: float | None = None
        self.round_trips = 0
        self.leases = 0
        self.fallbacks = 0
        self.last_error: str | None = None
        #: Processes that reported to the fleet lately (this one included).
        self.processes = 1
        self._state = "connecting"
        self._pause_until = 0.0  # local monotonic time
        self._leases = Leases()
        self._reported = 0  # refusals reported
        self._interval = config.sync_interval
        self._joined = False
        self._closing = False
        #: The outage was logged: no WARNING again until the link worked in full (a lease,
        #: or a sync while unpaced), so a fault of one script alone is one WARNING.
        self._warned = False
        # Names this process's report in Redis: random, never derived from the key.
        self._token = secrets.token_hex(8)
        self._pause_ms = 0.0
        self._urgent = asyncio.Event()
        self._redis: Any = None
        self._sync: Any = None
        self._lease: Any = None
        self._task: asyncio.Task[None] | None = None
        self._leasing: asyncio.Task[None] | None = None
        self._offset = 0.0  # local monotonic seconds minus the Redis clock's, last reply
        self._listener = Listener(config.url, keys.news, config.socket_timeout, self._news)

    @property
    def joining(self) -> bool:
        """True until the first sync answered or failed: starts wait for it (a millisecond
        on a local Redis), so that a process knows how many share the limit before its
        slow start begins."""
        return self._state == "connecting" and not self._joined

    @property
    def state(self) -> FleetState:
        """See :class:`FleetState`."""
        return FleetState(
            self._state,
            self.paced,
            self.rate,
            self.pace,
            max(0.0, self._pause_until - time.monotonic()),
            self.round_trips,
            self.leases,
            self.fallbacks,
            self.last_error,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the background sync (inside the running loop; once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="asyncvox-fleet")

    async def aclose(self) -> None:
        """Stop the background work and close the connection (within a bounded time)."""
        self._closing = True
        tasks = [t for t in (self._task, self._leasing) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            # A cancel that lands as a Redis reply times out can come back as the timeout
            # (seen: a uvicorn worker hung at shutdown); the flag ends the loop anyway, and
            # closing never waits longer than one call can take.
            done, _ = await asyncio.wait(tasks, timeout=2 * self.config.socket_timeout + 0.5)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: a fault here is no news
        self._task = self._leasing = None
        await self._listener.aclose()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None
        self.paced = False

    def _connect(self) -> None:
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError:  # pragma: no cover - the extra is missing
            raise ConfigurationError("a fleet needs redis-py: pip install 'asyncvox[redis]'") from None
        timeout = self.config.socket_timeout
        self._redis = aioredis.Redis.from_url(
            self.config.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a fault falls back at once; the link retries
            decode_responses=False,
        )
        self._sync = self._redis.register_script(SYNC)
        self._lease = self._redis.register_script(LEASE)

    # -- what the governor asks ----------------------------------------------------------

    def wait(self, now: float, demand: int) -> float:
        """Seconds until the next leased start (0: now); ``inf`` while a lease is on its way
        (``on_change`` follows). Only meaningful while :attr:`paced`."""
        if self._pause_until > now:
            return self._pause_until - now
        at = self._leases.next_at(now)
        if at is not None:
            return max(0.0, at - now)
        # Not while closing: aclose() has collected the tasks it waits for, and a lease
        # taken now would outlive it (and open Redis again).
        if not self._closing and (self._leasing is None or self._leasing.done()):
            self._leasing = asyncio.get_running_loop().create_task(self._take_lease(demand))
        return math.inf

    def take(self) -> None:
        """A start went on the first leased time."""
        self._leases.take()

    def throttled(self, pause_for: float) -> None:
        """A refusal: report it (and a pause of ``pause_for`` s, when > 0) without waiting
        for the next sync."""
        if pause_for > 0:
            self._pause_ms = max(self._pause_ms, pause_for * 1000.0)
        self._urgent.set()

    # -- Redis ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            ok = await self._sync_once()
            wait = self._interval if ok else self.config.retry_interval
            self._urgent.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    if ok:
                        await self._urgent.wait()
                    else:
                        await asyncio.Event().wait()  # a fault: wait out the retry interval

    async def _call(self, lease: bool, keys: list[str], args: list[Any]) -> list[int] | None:
        """Run a script; on any fault (or a reply later than the timeout) fall back: ``None``."""
        try:
            if self._redis is None:
                self._connect()
            script = self._lease if lease else self._sync
            self.round_trips += 1
            async with asyncio.timeout(self.config.socket_timeout * 2):
                reply = await script(keys=keys, args=args)
            values = [int(v) for v in reply]
        except ConfigurationError:
            raise
        except Exception as exc:  # redis errors, OSError, timeouts, a corrupted reply
            self._fail(exc)
            return None
        if self._state != "fleet":
            logger.log(
                logging.INFO if self._state == "local" else logging.DEBUG,
                "asyncvox fleet: joined at %s",
                _redact(self.config.url),
            )
            self._state = "fleet"
        return values

    async def _sync_once(self) -> bool:
        counts = self._counts()
        # Refusals (and pauses) met on this process's own limits, before a rejoin, are no
        # news for the fleet: reported now they would read as a fresh onset, measured from
        # the few processes back so far.
        member = self._state == "fleet"
        refused = max(0, counts.refused - self._reported) if member else 0
        pause_ms, self._pause_ms = (self._pause_ms if member else 0.0), 0.0
        sent = time.monotonic()
        reply = await self._call(
            False,
            [self.keys.rate, self.keys.procs, self.keys.pause],
            [
                self._token,
                f"{counts.admitted:.3f}",
                f"{counts.sent:.3f}",
                refused,
                f"{pause_ms:.0f}",
                MARGIN,
                self.keys.news,
                f"{counts.since_edge:.3f}",
            ],
        )
        if reply is None or len(reply) != 5:
            self._pause_ms = max(self._pause_ms, pause_ms)
            return False
        self._reported = counts.refused
        joined = self.processes != reply[4] or self._joined is False
        self.processes = max(1, min(reply[4], 10_000))
        self._joined = True
        self._listener.ensure()
        fast = counts.growing and not self.paced
        self._interval = min(FAST_SYNC, self.config.sync_interval) if fast else self.config.sync_interval
        self._adopt(sent, reply[0], reply[1], reply[2], reply[3])
        if not self.paced:
            self._warned = False
        if joined:
            self._on_change()
        return True

    async def _take_lease(self, demand: int) -> None:
        cfg = self.config
        pace = self.pace or MIN_RATE
        # A lease covers this process's share of lease_span: what all processes hold ahead
        # together stays about lease_span of the pace, whatever their number.
        k = max(1, min(cfg.max_lease, demand, int(pace * cfg.lease_span / self.processes)))
        sent = time.monotonic()
        reply = await self._call(
            True,
            [self.keys.rate, self.keys.gcra, self.keys.pause],
            [k, MARGIN, int(max(cfg.lease_span, 1.0) * cfg.max_lease * 1000 * 8)],
        )
        if reply is None or len(reply) != 6:
            self._on_change()
            return
        now_us, first_us, interval_us, rate_milli, pace_milli, pause_us = reply
        self.leases += 1
        self._warned = False
        local = self._adopt(sent, now_us, rate_milli, pace_milli, pause_us)
        if interval_us > 0 and self.paced:
            self._leases.add(local, local + (first_us - now_us) / 1e6, interval_us / 1e6, k)
        self._on_change()

    def _adopt(self, sent: float, now_us: int, rate_milli: int, pace_milli: int, pause_us: int) -> float:
        """Take the fleet's rate, pace and pause from a reply; the local time of the server's
        ``now``."""
        local = (sent + time.monotonic()) / 2
        self._offset = local - now_us / 1e6
        rate = _clamped(rate_milli)
        pause = (pause_us - now_us) / 1e6 if pause_us > now_us else 0.0
        self._paused_until(local + min(pause, MAX_PAUSE) if pause > 0 else 0.0)
        was = self.paced
        self.rate = rate
        self.pace = _clamped(pace_milli) if rate is not None else None
        self.paced = rate is not None
        if was != self.paced:
            self._leases.clear()
            self._on_change()
        return local

    def _paused_until(self, until: float) -> None:
        """The fleet pauses until ``until`` (0.0: no pause). A new pause drops the start
        times held: kept, every process would spend one the moment the pause ends, a
        probe each into a limiter that one probe answers for all."""
        if until > self._pause_until:
            self._leases.clear()
        self._pause_until = until

    def _news(self, news: FleetNews) -> None:
        """A cut or a pause somewhere in the fleet: act on it now, not at the next sync."""
        if self._state != "fleet":
            return
        if news.kind == "pause":
            until = min(self._offset + news.a / 1e6, time.monotonic() + MAX_PAUSE)
            if until <= self._pause_until:
                return
            self._paused_until(until)
        else:
            rate = _clamped(news.a)
            if rate is None:
                return
            pace = _clamped(news.b)
            if self.pace is not None and pace is not None:
                self._leases.thin(self.pace, pace)
            self.rate, self.pace, self.paced = rate, pace, True
        self._on_change()

    def _fail(self, exc: BaseException) -> None:
        self.last_error = type(exc).__name__
        joining = self.joining
        if self._state != "local" and not self._warned:
            self._warned = True
            logger.warning(
                "asyncvox fleet: Redis at %s failed (%s); using this process's own limits, "
                "retrying every %.1f s",
                _redact(self.config.url),
                self.last_error,
                self.config.retry_interval,
            )
            self.fallbacks += 1
        self._state = "local"
        self._leases.clear()
        self._pause_until = 0.0
        self.processes = 1
        if self.paced or joining:
            self.paced = False
            self.rate = self.pace = None
            self._on_change()


def _clamped(milli: int) -> float | None:
    """A rate read back from Redis (x 1000), clamped; ``None`` for "no rate"."""
    if milli <= 0:
        return None
    return min(max(milli / 1000.0, MIN_RATE), MAX_RATE)
