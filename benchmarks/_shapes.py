"""Server shapes for the rate-limit benchmarks: real limiter algorithms as pure objects.

Not a benchmark itself. Each limiter decides on a request's arrival, given the time
(``admit(now)``); :class:`Backend` says how long an admitted request takes to answer. The
same objects run inside the discrete-event simulator (``_sim.py``, a virtual clock) and
inside the loopback servers (``_shapes_server.py``, ``time.monotonic()``), so the
simulated and the real table measure one definition of each shape.

:data:`SHAPES` is the catalogue; :func:`ideal` says what "perfect" is on each.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

__all__ = ["SHAPES", "Backend", "Limiter", "Params", "Shape", "Unlimited", "Verdict", "ideal", "shape_named"]


class Verdict(NamedTuple):
    """A limiter's answer: admitted, or refused with the true wait until one would be."""

    admitted: bool
    wait: float = 0.0


ADMIT = Verdict(True)


class Limiter(Protocol):
    """Decides on arrival; ``done`` is told when an admitted request has been answered."""

    def admit(self, now: float) -> Verdict: ...

    def done(self, now: float) -> None: ...


class _NoDone:
    def done(self, now: float) -> None:
        pass


class Unlimited(_NoDone):
    """No limiter at all."""

    def admit(self, now: float) -> Verdict:
        return ADMIT


class TokenBucket(_NoDone):
    """``rate`` tokens per second into a bucket of ``burst``; one token per request.

    ``drop_at`` / ``drop_to``: ``drop_at`` seconds after the first request, the rate
    becomes ``drop_to`` (a quota cut mid-run).
    """

    def __init__(self, rate: float, burst: float, drop_at: float | None = None, drop_to: float = 0.0) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp: float | None = None
        self.drop_at = drop_at
        self.drop_to = drop_to
        self.first: float | None = None

    def admit(self, now: float) -> Verdict:
        if self.first is None:
            self.first = self.stamp = now
        if self.drop_at is not None and now - self.first >= self.drop_at:
            self._refill(self.first + self.drop_at)
            self.rate, self.drop_at = self.drop_to, None
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return ADMIT
        return Verdict(False, (1.0 - self.tokens) / self.rate)

    def _refill(self, now: float) -> None:
        assert self.stamp is not None
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now


class Gcra(_NoDone):
    """nginx ``limit_req rate=R burst=B nodelay``: excess drains at R, refuse above B."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.excess = 0.0
        self.stamp: float | None = None

    def admit(self, now: float) -> Verdict:
        # nginx keeps time in whole milliseconds; so does this.
        ms = math.floor(now * 1000.0)
        if self.stamp is None:
            self.stamp = ms
        excess = max(0.0, self.excess - self.rate * (ms - self.stamp) / 1000.0) + 1.0
        if excess > self.burst + 1:
            return Verdict(False, (excess - self.burst - 1) / self.rate)
        self.excess, self.stamp = excess, ms
        return ADMIT


class FixedWindow(_NoDone):
    """At most ``limit`` requests per aligned window of ``window`` seconds."""

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self.index = -1
        self.count = 0

    def admit(self, now: float) -> Verdict:
        index = math.floor(now / self.window)
        if index != self.index:
            self.index, self.count = index, 0
        if self.count < self.limit:
            self.count += 1
            return ADMIT
        return Verdict(False, (index + 1) * self.window - now)


class SlidingLog(_NoDone):
    """At most ``limit`` admitted requests in any trailing ``window`` seconds (exact log)."""

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self.log: deque[float] = deque()

    def admit(self, now: float) -> Verdict:
        log = self.log
        while log and log[0] <= now - self.window:
            log.popleft()
        if len(log) < self.limit:
            log.append(now)
            return ADMIT
        return Verdict(False, log[0] + self.window - now)


class SlidingCounter(_NoDone):
    """Cloudflare-style approximate sliding window: this window's count plus a weighted last one."""

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self.index = -1
        self.current = 0
        self.previous = 0

    def admit(self, now: float) -> Verdict:
        index = math.floor(now / self.window)
        if index != self.index:
            self.previous = self.current if index == self.index + 1 else 0
            self.index, self.current = index, 0
        weight = 1.0 - (now / self.window - index)
        if self.previous * weight + self.current < self.limit:
            self.current += 1
            return ADMIT
        return Verdict(False, (index + 1) * self.window - now)


class ConcurrencyCap:
    """At most ``cap`` admitted requests being served at once (no rate limit)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.busy = 0

    def admit(self, now: float) -> Verdict:
        if self.busy < self.cap:
            self.busy += 1
            return ADMIT
        return Verdict(False, 1.0)

    def done(self, now: float) -> None:
        self.busy -= 1


class Backend:
    """How long an admitted request takes: a uniform latency, or a queue of ``workers``.

    With ``workers``, requests wait in FIFO order for one of that many workers, each
    serving for a uniform ``service`` time: a single machine with no limiter, whose
    latency grows with the load.
    """

    def __init__(self, latency: tuple[float, float], workers: int | None = None) -> None:
        self.latency = latency
        self.workers = workers
        self._free: list[float] = [0.0] * workers if workers else []

    def serve(self, now: float, rng: random.Random) -> float:
        """The latency of a request admitted at ``now`` (its queueing included)."""
        service = rng.uniform(*self.latency)
        if not self.workers:
            return service
        start = max(now, heapq.heappop(self._free))
        heapq.heappush(self._free, start + service)
        return start + service - now


class Params(NamedTuple):
    """The knobs every shape is built from."""

    n: int = 3000
    rate: float = 100.0
    concurrency: int = 64


@dataclass(frozen=True)
class Shape:
    """One server: its limiter, how it answers a refusal, its latency, and what is ideal."""

    name: str
    description: str
    limiter: Callable[[Params], Limiter]
    #: the status of a refusal (429, or 503 for servers that signal overload)
    status: int = 429
    #: what Retry-After says: "one" = always 1, "ceil" = the true wait rounded up, "none" = absent
    retry_after: str = "one"
    latency: tuple[float, float] = (0.05, 0.15)
    workers: int | None = None
    #: how many client processes share the limit
    clients: int = 1
    #: the name of the ideal's definition (see :func:`ideal`)
    ideal: str = "rate"

    def retry_after_header(self, wait: float) -> str | None:
        """The ``Retry-After`` value a refusal carries (integer seconds, as HTTP says)."""
        if self.retry_after == "none":
            return None
        if self.retry_after == "one":
            return "1"
        return str(max(1, math.ceil(wait)))

    def backend(self) -> Backend:
        return Backend(self.latency, self.workers)


def _mean(bounds: tuple[float, float]) -> float:
    return (bounds[0] + bounds[1]) / 2


def ideal(shape: Shape, p: Params) -> float:
    """The best possible completion time for ``p.n`` ids on ``shape``.

    * rate limiters: N / R (a large burst lets a client beat it by burst / R);
    * the concurrency cap: N x mean latency / cap;
    * the quota cut to a quarter half-way (at N / 2R): N / 2R + (N / 2) / (R / 4) (less
      done before the cut if the concurrency cannot reach R: concurrency / latency < R);
    * the generous server (10 R): N / 10R, or the concurrency bound N x latency / concurrency;
    * the queue (no limiter): N x mean service / workers, what a fixed-concurrency client gets.

    A rate bound counts starts: the last start of a perfect client goes at the bound, its
    answer one latency later, so the rate ideals add the shape's shortest latency (50 ms on
    a 20 s run is nothing; 20 ms on the generous server's 2 s is 1%).
    """
    if shape.ideal == "concurrency":
        return p.n * _mean(shape.latency) / min(CONCURRENCY_CAP, p.concurrency)
    if shape.ideal == "queue":
        assert shape.workers
        return p.n * _mean(shape.latency) / shape.workers
    if shape.ideal == "drop":
        # Until the cut (at N / 2R) at R, or at what the concurrency allows if that is less.
        most = p.concurrency / _mean(shape.latency)
        cut = p.n / (2 * p.rate)
        done = min(p.rate, most) * cut
        bound = cut + (p.n - done) / min(p.rate / 4, most)
    elif shape.ideal == "generous":
        bound = max(p.n / (10 * p.rate), p.n * _mean(shape.latency) / p.concurrency)
    else:
        bound = max(p.n / p.rate, p.n * _mean(shape.latency) / p.concurrency)
    return bound + shape.latency[0]


#: The in-flight cap of the concurrency-capped shape.
CONCURRENCY_CAP = 16
#: The overloaded single machine: its workers, and how many may wait for one.
OVERLOAD_WORKERS = 8
OVERLOAD_QUEUE = 16


def _small_burst(p: Params) -> float:
    return max(2.0, p.rate / 10)


SHAPES: tuple[Shape, ...] = (
    Shape(
        "token-bucket-small",
        "token bucket, burst R/10, 429 + Retry-After: 1",
        lambda p: TokenBucket(p.rate, _small_burst(p)),
    ),
    Shape(
        "token-bucket-large",
        "token bucket, burst 3R, 429 + Retry-After: 1",
        lambda p: TokenBucket(p.rate, 3 * p.rate),
    ),
    Shape(
        "fixed-window",
        "R per aligned 1 s window, 429 + Retry-After to the window's end",
        lambda p: FixedWindow(round(p.rate)),
        retry_after="ceil",
    ),
    Shape(
        "sliding-log",
        "R in any trailing 1 s (exact log), 429 without Retry-After",
        lambda p: SlidingLog(round(p.rate)),
        retry_after="none",
    ),
    Shape(
        "sliding-counter",
        "R per 1 s, weighted sliding window counter, 429 + Retry-After to the window's end",
        lambda p: SlidingCounter(round(p.rate)),
        retry_after="ceil",
    ),
    Shape(
        "token-bucket-503",
        "token bucket, burst R/10, 503 + Retry-After: 1",
        lambda p: TokenBucket(p.rate, _small_burst(p)),
        status=503,
    ),
    Shape(
        "concurrency-cap",
        f"at most {CONCURRENCY_CAP} in flight, 429 + Retry-After: 1 beyond (no rate limit)",
        lambda p: ConcurrencyCap(CONCURRENCY_CAP),
        ideal="concurrency",
    ),
    Shape(
        "quota-drop",
        "token bucket R, burst R/10, cut to R/4 after N/2R s, 429 + Retry-After: 1",
        lambda p: TokenBucket(p.rate, _small_burst(p), drop_at=p.n / (2 * p.rate), drop_to=p.rate / 4),
        ideal="drop",
    ),
    Shape(
        "generous",
        "token bucket 10R, burst R, 20-40 ms latency",
        lambda p: TokenBucket(10 * p.rate, p.rate),
        latency=(0.02, 0.04),
        ideal="generous",
    ),
    Shape(
        "queue",
        "no limiter: 8 workers, 10-30 ms each, FIFO queue (latency grows with load)",
        lambda p: Unlimited(),
        latency=(0.01, 0.03),
        workers=8,
        ideal="queue",
    ),
    Shape(
        "overload",
        "no limiter: 8 workers, 10-30 ms each, at most 16 waiting; 503 without Retry-After beyond",
        lambda p: ConcurrencyCap(OVERLOAD_WORKERS + OVERLOAD_QUEUE),
        status=503,
        retry_after="none",
        latency=(0.01, 0.03),
        workers=OVERLOAD_WORKERS,
        ideal="queue",
    ),
    Shape(
        "shared-3",
        "token bucket R, burst R/10, shared by 3 client processes (N/3 ids each)",
        lambda p: TokenBucket(p.rate, _small_burst(p)),
        clients=3,
    ),
    Shape(
        "gcra-nginx",
        "nginx limit_req model: rate R, burst 10 nodelay, 429 + Retry-After: 1, a fast upstream (1-3 ms)",
        lambda p: Gcra(p.rate, 10),
        latency=(0.001, 0.003),
    ),
)


def shape_named(name: str) -> Shape:
    """The shape called ``name`` (``ValueError`` naming the choices otherwise)."""
    for shape in SHAPES:
        if shape.name == name:
            return shape
    raise ValueError(f"no shape {name!r}; choose from {', '.join(s.name for s in SHAPES)}")
