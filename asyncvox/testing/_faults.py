"""Faults for the demo server: scripted answers (:class:`Fault`), random ones and limits
(:class:`FaultProfile`), and the per-server state that draws them (:class:`RandomFaults`).
"""

from __future__ import annotations

import random
import time
import zlib
from collections import deque
from dataclasses import dataclass

import msgspec

__all__ = ["ERRORS", "Fault", "FaultProfile", "RandomFaults", "error_body", "stable_hash"]

_HTML_5XX = b"<html><head><title>%d Bad Gateway</title></head><body><h1>%d</h1>upstream error</body></html>"
#: The ``error`` text the demo server sends with each status.
ERRORS = {
    400: "Invalid request",
    403: "This API key may not read calls",
    404: "Call not found",
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


def error_body(error: str) -> bytes:
    """The API's error body: ``{"success": false, "error": ...}``."""
    return msgspec.json.encode({"success": False, "error": error})


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

    Rates are probabilities per request; ``rate_slow`` answers that share after
    ``slow_seconds``; ``latency`` is a (low, high) range of seconds added to every answer;
    ``rps_limit`` answers 429 beyond that many requests in any one second;
    ``missing_rate`` makes that share of synthetic ids not found and ``drift_rate`` that
    share drifted (both decided by the id, so stable across requests). ``seed`` makes
    the random faults reproducible.
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


class RandomFaults:
    """Draws a :class:`FaultProfile`'s random faults and keeps its requests-per-second window."""

    def __init__(self, profile: FaultProfile) -> None:
        self.profile = profile
        self._rng = random.Random(profile.seed)
        self._window: deque[float] = deque()

    def latency(self) -> float:
        """Seconds to add to this answer (0 without a ``latency`` range)."""
        span = self.profile.latency
        return self._rng.uniform(*span) if span is not None else 0.0

    def pick(self) -> Fault | None:
        """A random fault for this request, or ``None`` to answer normally."""
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

    def over_rps(self) -> float | None:
        """Seconds until a request would be within ``rps_limit`` (``None``: it is; counted)."""
        limit = self.profile.rps_limit
        if limit is None:
            return None
        now = time.monotonic()
        window = self._window
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= limit:
            return max(0.01, window[0] + 1.0 - now)
        window.append(now)
        return None
