"""The control logic of the governor: a pure state machine, fed events and a clock.

No asyncio and no I/O: the runtime tells a :class:`Controller` what happened (a request
started, succeeded, was throttled, failed, each with ``now``, a monotonic time in
seconds) and asks it what to do (how long until the next start may go, how many may be
in flight). So it runs as well on a simulated clock, in tests and in the benchmark's
simulator, as on the event loop's.

How it decides:

* **Slow start.** The in-flight cap begins at ``initial_window`` and grows by one per
  success (doubling every round trip) up to the user's ``concurrency`` while nothing
  pushes back. Until the server throttles, starts are not paced at all, and a success
  costs a few attribute updates. With a told rate there is no slow start: the pace
  already spreads the starts (the cap fills at the pace, never as a burst), and a window
  growing per round trip would only hold the told rate back for the first round trips.
* **A rate, measured** (:mod:`asyncvox._pacing`): the first throttle switches pacing on;
  the rate the server grants is measured from the starts it admitted while refusing
  some, starts are paced a little below it, and the pace probes upward (concave, then
  convex), so a limit that rises is found without a storm.
* **An in-flight cap, learned apart.** A refusal cuts the cap only when its evidence says
  "too many at once": it started deeper (more requests in flight) than nearly every
  admitted request ever did. Otherwise the cap follows latency (a batch's mean against
  the best batch mean seen, Vegas-style) and failure surges (5xx, timeouts), so a bulk
  fetch backs off before it takes a single-machine server down, and grows back when
  latency recovers.
* **Pauses only when everything is refused.** The whole client stops only after a run
  of consecutive starts, spanning a while, all refused: for half as long as the refusals
  have lasted, up to their ``Retry-After``, probing with one start after each pause;
  afterwards starts resume at the pace, never as one burst. (A throttled request waits
  its own ``Retry-After`` regardless: that is the runtime's job.)
* **A told rate** (``rate_limit``) paces starts a hair below it from the first request;
  the learned estimate never exceeds it.
* **A fleet** (processes sharing the limit through Redis) tells how many share it
  (:meth:`Controller.shared_by`: slow start's window is divided among them) and when its
  shared pace holds the load (:meth:`Controller.shared_pace`: the window is given back).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ._pacing import RING, Lately, Pacer
from ._pauses import PauseChain

__all__ = ["ControlState", "Controller"]

#: Latency: cut the cap when a batch's mean exceeds this multiple of the base ...
LATENCY_HIGH = 2.0
#: ... but never for a mean under this (seconds): an answer that fast is not a server
#: drowning, and on a busy client the latency measured is mostly its own event loop's.
LATENCY_FLOOR = 0.025
#: ... and grow it back while the mean stays under this one.
LATENCY_OK = 1.5
#: A batch with more than this share of failures (5xx, timeouts) cuts the cap.
FAILURE_SURGE = 0.1
#: Seconds without a refusal for concurrency before the cap probes one above its limit.
CAP_PROBE = 10.0
#: The smallest in-flight cap latency or failures can cut to.
MIN_CAP = 2
#: A refusal is "too many at once" if fewer than this share of the last :data:`DEPTHS`
#: admitted starts went as deep.
DEEP = 0.03
DEPTHS = 64
_DEPTH_BITS = 12
_DEPTH_MASK = (1 << _DEPTH_BITS) - 1
_RING_MASK = RING - 1
# Controller._edge_after: no clip point yet; or the clip point is final (no edge to find).
_NO_CLIP = 0
_EDGE_FOUND = -1


class ControlState(NamedTuple):
    """What :meth:`Controller.snapshot` returns; see the attributes of the same names."""

    rate: float | None
    pace: float | None
    cap: int
    in_flight: int
    paused_until: float
    last_throttle_reason: str | None
    throttles: int


class Controller:
    """Pacing, in-flight cap and pause for one client; see the module docstring.

    The runtime, per request: while :attr:`free` is true and ``in_flight < cap`` it may
    start at once; otherwise it waits :meth:`may_start` seconds (and for ``in_flight <
    cap``). At the start it calls :meth:`on_start` and keeps the returned ticket; at the
    end exactly one of :meth:`on_success` (any answer that is not a refusal or a
    failure: 200, 404, other 4xx), :meth:`on_throttle` (429, 503 with ``Retry-After``),
    :meth:`on_failure` (other 5xx, timeouts, connection errors) or :meth:`on_cancel`,
    with the ticket and the request's latency (seconds from start to answer). After
    each, waiting starts may go (a slot freed, the pace changed). Not thread-safe: one
    event loop.
    """

    __slots__ = (
        "_base",
        "_batch",
        "_batch_t0",
        "_cap_limit",
        "_cap_limit_at",
        "_delivered",
        "_depths",
        "_depths_n",
        "_edge_after",
        "_failures",
        "_latency",
        "_latency_sum",
        "_pacer",
        "_pauses",
        "_rate_depth",
        "_report_from",
        "_seq",
        "_share",
        "_share_released",
        "_slow_start",
        "_starts",
        "_successes",
        "_wall",
        "cap",
        "ceiling",
        "free",
        "in_flight",
        "last_throttle_reason",
        "max_pause",
        "paused_until",
        "throttles",
    )

    def __init__(
        self,
        concurrency: int,
        *,
        rate_limit: float | None = None,
        initial_window: int = 4,
        max_pause: float = 60.0,
    ) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be > 0 or None, got {rate_limit!r}")
        if initial_window < 1:
            raise ValueError(f"initial_window must be >= 1, got {initial_window!r}")
        if not max_pause >= 0:
            raise ValueError(f"max_pause must be >= 0, got {max_pause!r}")
        #: The user's concurrency: the cap never exceeds it.
        self.ceiling = concurrency
        #: The in-flight cap in force.
        self.cap = concurrency if rate_limit is not None else min(initial_window, concurrency)
        #: Requests started and not yet ended.
        self.in_flight = 0
        #: When the client-wide pause ends (a clock time); 0.0 = no pause.
        self.paused_until = 0.0
        #: What the last refusal was taken for, e.g. ``"429: rate"``; ``None`` before any.
        self.last_throttle_reason: str | None = None
        #: Refusals (throttles) seen.
        self.throttles = 0
        self.max_pause = max_pause
        self._pacer = Pacer(rate_limit)
        self._starts = self._pacer.starts
        #: True while nothing but the in-flight cap holds starts back (the fast path).
        self.free = self._pacer.pace is None
        self._seq = 0
        # Latency batches: the cap's signal while nothing is refused.
        self._slow_start = rate_limit is None
        self._successes = 0
        self._failures = 0
        self._latency_sum = 0.0
        self._batch = 1  # the first success closes a batch of one: it starts the clock
        self._batch_t0: float | None = None
        self._delivered = 0.0  # successes per second, last batch
        self._latency = 0.0  # mean latency, last batch
        self._base = math.inf  # the best batch mean seen
        self._cap_limit = concurrency  # the most in flight at once the server took
        self._cap_limit_at = 0.0
        # Refusals. The depths of the last admitted starts, kept only after the first one.
        self._depths: list[int] | None = None
        self._depths_n = 0
        self._wall = -2  # the depth of the last refusal deeper than admitted starts go
        # The shallowest depth a refusal the pace was measured from (taken for the rate, or
        # pausing the client) started at, since the pace was last dropped (_DEPTH_MASK: none).
        self._rate_depth = _DEPTH_MASK
        self._pauses = PauseChain()
        self._share = 1  # processes sharing the limit (a fleet), as last told
        self._share_released = False  # whether the shared pace gave the divided window back
        # A fleet's report counts admitted starts from here on (see admitted_lately): the
        # first refused start's time, then the first admitted one's after it; or the
        # time the fleet's pace began, if earlier (shared_pace).
        self._report_from = -math.inf
        # The refused start whose first admitted successor is the edge (_NO_CLIP before
        # any clip point; _EDGE_FOUND once _report_from is final).
        self._edge_after = _NO_CLIP

    # -- readable state ----------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """The learned estimate of the server's rate (requests/s); ``None`` until throttled."""
        return self._pacer.rate

    @property
    def pace(self) -> float | None:
        """The start rate in force (requests/s); ``None`` while starts are not paced."""
        return self._pacer.pace

    @property
    def told(self) -> float | None:
        """The rate the user told (``rate_limit``), or ``None``."""
        return self._pacer.told

    @property
    def paused(self) -> bool:
        """Whether a client-wide pause is on (see :attr:`paused_until`)."""
        return self.paused_until > 0.0

    def snapshot(self) -> ControlState:
        """The readable state at once (for a progress line, stats or a log record)."""
        return ControlState(
            self.rate,
            self.pace,
            self.cap,
            self.in_flight,
            self.paused_until,
            self.last_throttle_reason,
            self.throttles,
        )

    @property
    def growing(self) -> bool:
        """Whether slow start is still growing the cap (nothing pushed back yet)."""
        return self._slow_start and self.cap < self.ceiling

    def admitted_lately(self, now: float, span: float = 2.0, from_edge: bool = False) -> float:
        """Starts admitted per second over the last ``span`` seconds (a fleet's report).

        ``from_edge``: never from before the first refusal, nor from before the first
        start admitted after it, once there is one (what an onset measures the rate by).
        A window's limiter exhausted by slow start grants its first window in a lump and
        then nothing up to the window's edge, so a span reaching back over that lump
        holds it on top of the next window's grant (the fleet took a third too much for
        the rate and probed into the limit for seconds). From the edge on, the next
        window's grant over at least a second is its rate. (Not what an emergency slows
        down to: before the edge that reads nothing at all.)
        """
        since = self._report_from if from_edge else -math.inf
        return self._pacer.admitted_lately(now, self._seq, span, since)

    def started_lately(self, now: float, span: float = 0.25) -> float:
        """Starts per second over the last ``span`` seconds (a fleet's report)."""
        return self._pacer.started_lately(now, self._seq, span)

    # -- what the runtime asks ---------------------------------------------------------

    def may_start(self, now: float) -> float:
        """Seconds until the next start may go (0.0 = now), the in-flight cap aside."""
        if self.paused_until:
            if now < self.paused_until:
                return self.paused_until - now
            self.paused_until = 0.0
            self.free = self._pacer.pace is None
        return 0.0 if self._pacer.pace is None else self._pacer.delay(now)

    def on_start(self, now: float) -> int:
        """A request starts now; returns its ticket (hand it back with its outcome)."""
        self.in_flight += 1
        seq = self._seq = self._seq + 1
        self._starts[seq & _RING_MASK] = now
        if not self.free:
            self._pacer.started(now, seq)
        depth = self.in_flight
        return (seq << _DEPTH_BITS) | (depth if depth < _DEPTH_MASK else _DEPTH_MASK)

    # -- a fleet ------------------------------------------------------------------------

    def shared_by(self, processes: int) -> None:
        """``processes`` processes share the limit (a fleet's count, this one included).

        While slow start grows, the window is divided among them: together they open with
        one window and double it per round trip, as one process would, instead of each
        doubling into the limit at once.
        """
        if processes > self._share:
            if self.growing:
                self.cap = max(1, math.ceil(self.cap * self._share / processes))
            self._share = processes

    def shared_pace(self) -> None:
        """A fleet's shared pace now holds the load: the window divided for slow start is
        given back (once; cut by a refusal it would grow back a step per batch). The cap
        is still cut on evidence of too many at once.

        A fleet's report counts admitted starts from the last start before it (see
        :meth:`admitted_lately`), unless a refusal of this process's own came first: the
        starts before were slow start's, part of the first lump a window granted, though
        none of this process's was refused.
        """
        if self._edge_after == _NO_CLIP and self._seq:
            self._report_from = self._starts[self._seq & _RING_MASK]
            self._edge_after = _EDGE_FOUND
        if self._share > 1 and not self._share_released:
            self._share_released = True
            self.cap = max(self.cap, self.ceiling)

    # -- what happened -----------------------------------------------------------------

    def on_success(self, now: float, latency: float, ticket: int) -> None:
        """The request of ``ticket`` was answered (not refused) after ``latency`` seconds."""
        self.in_flight -= 1
        self._latency_sum += latency
        self._successes += 1
        if self._slow_start and self.cap < self.ceiling:
            self.cap += 1
        if self._successes >= self._batch:
            self._end_batch(now)
        if self._depths is not None:
            self._admitted(now - latency, ticket)

    def on_failure(self, now: float, latency: float, ticket: int, kind: str) -> None:
        """The request failed, not for load: ``kind`` is e.g. ``"500"``, ``"timeout"``."""
        self.in_flight -= 1
        self._failures += 1
        if self._successes + self._failures >= self._batch:
            self._end_batch(now)

    def on_cancel(self, ticket: int) -> None:
        """The request of ``ticket`` was abandoned (cancelled) before an answer: no signal."""
        self.in_flight -= 1

    def on_throttle(
        self, now: float, latency: float, ticket: int, retry_after: float | None, status: int
    ) -> None:
        """The request was refused for load: a 429, or a 503 with ``Retry-After``."""
        self.in_flight -= 1
        self.throttles += 1
        seq, depth = ticket >> _DEPTH_BITS, ticket & _DEPTH_MASK
        started = now - latency
        if self._depths is None:
            self._depths = [0] * DEPTHS
            self._slow_start = False
            if self._edge_after == _NO_CLIP:
                self._report_from, self._edge_after = started, seq
        pacer = self._pacer
        pacer.note_refused(seq)
        if seq <= self._pauses.seq:
            return  # started before the last pause: says nothing new
        deep = self._too_deep(depth)
        if self._pauses.all_refused(seq, started, pacer.pace):
            self._rate_depth = min(self._rate_depth, depth)  # a pause measures the rate too
            self._pause(now, retry_after, status)
        elif deep and abs(depth - self._wall) > 1:
            # Deeper than the admitted starts went, but the first time at this depth: a
            # pace that climbs goes deeper too. Blame neither until it is hit again.
            self._wall = depth
        elif deep:
            # A wall: refused again at the depth no admitted start reaches.
            self.last_throttle_reason = f"{status}: concurrency"
            self._cap_limit = max(1, depth - 1)
            self._cap_limit_at = now
            self.cap = min(self.cap, self._cap_limit)
            if pacer.told is None and (not pacer.measured or self._rate_depth > self._cap_limit):
                # The pace came from slow start's first refusal, or from refusals that all
                # started beyond this wall (taken for the rate before the wall was found,
                # they measured what the cap let through): this one explains them. The
                # cap holds the load now, nothing says there is a rate to keep to.
                pacer.forget()
                self._rate_depth = _DEPTH_MASK
                self.free = not self.paused_until
        else:
            self.last_throttle_reason = f"{status}: rate"
            self._rate_depth = min(self._rate_depth, depth)
            pacer.refused(now, started, seq, self._seq, Lately(self._delivered, self._latency))
            self.free = False

    # -- refusals ----------------------------------------------------------------------

    def _admitted(self, started: float, ticket: int) -> None:
        """Keep an admitted start's depth; one after a pause ends the chain of pauses."""
        seq = ticket >> _DEPTH_BITS
        if self._edge_after != _EDGE_FOUND and seq > self._edge_after:
            self._report_from, self._edge_after = started, _EDGE_FOUND
        ended = self._pauses.admitted(seq)
        if ended is not None:
            self._pacer.pause_over(started, seq, measure=ended)
        depths = self._depths
        assert depths is not None
        depths[self._depths_n % DEPTHS] = ticket & _DEPTH_MASK
        self._depths_n += 1

    def _pause(self, now: float, retry_after: float | None, status: int) -> None:
        """Stop every start (:meth:`PauseChain.begin` says how long)."""
        wait = self._pauses.begin(now, retry_after, self.max_pause, self._seq)
        self.paused_until = max(self.paused_until, now + wait)
        self.last_throttle_reason = f"{status}: all refused, pausing"
        self.free = False
        self._pacer.paused(now, self.paused_until, self._seq, Lately(self._delivered, self._latency))

    def _too_deep(self, depth: int) -> bool:
        """Whether a refusal at ``depth`` in flight is "too many at once".

        Under a rate limit refusals fall at the depths the pace brings (Little's law:
        rate x latency), as admitted starts do; under a concurrency cap only above it,
        where next to no admitted start went lately.
        """
        depths = self._depths
        assert depths is not None
        if self._depths_n < 20:
            return False
        seen = depths if self._depths_n >= DEPTHS else depths[: self._depths_n]
        return sum(1 for d in seen if d >= depth) < DEEP * len(seen)

    # -- latency and failures ------------------------------------------------------------

    def _end_batch(self, now: float) -> None:
        """A batch of answers is complete: move the cap by its latency and failures."""
        successes, failures = self._successes, self._failures
        t0 = self._batch_t0
        self._batch_t0 = now
        if t0 is not None and now > t0:
            self._delivered = successes / (now - t0)
        self._successes = self._failures = 0
        total = self._latency_sum
        self._latency_sum = 0.0
        self._batch = max(16, self.cap)
        if failures > FAILURE_SURGE * (successes + failures):
            self._slow_start = False
            self.cap = max(MIN_CAP, min(self.cap, int(self.cap * 0.75)))
            return
        if successes < 4:
            return
        mean = self._latency = total / successes
        if mean < self._base:
            self._base = mean
        if mean > LATENCY_HIGH * self._base and mean > LATENCY_FLOOR:
            self._slow_start = False
            if self.cap <= MIN_CAP:
                # Slow even with next to nothing in flight: not our doing, the new normal.
                self._base = mean / LATENCY_OK
            self.cap = max(MIN_CAP, int(self.cap * max(0.5, LATENCY_HIGH * self._base / mean)))
        elif not self._slow_start and mean < LATENCY_OK * self._base and self.cap < self.ceiling:
            if self.cap >= self._cap_limit:
                if now - self._cap_limit_at < CAP_PROBE:
                    return  # a concurrency limit was found lately: stay under it
                # Long without a refusal for concurrency: the limit may have risen.
                self._cap_limit += 1
                self._cap_limit_at = now
            self.cap = min(self._cap_limit, self.cap + max(1, self.cap // 8))
