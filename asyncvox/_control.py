"""The control logic of the governor: a pure state machine, fed events and a clock.

No asyncio and no I/O: the runtime tells a :class:`Controller` what happened (a request
started, succeeded, was throttled, failed; all with ``now``, a monotonic time in seconds)
and asks it what to do (how long until the next start may go, how many may be in flight,
whether the whole client stops). So it can be driven by a simulated clock in tests.

How it decides:

* **Slow start.** The in-flight cap begins at ``initial_window`` and grows by one per
  success (doubling every round trip) up to the user's ``concurrency`` while nothing
  pushes back. Until the server throttles, starts are not paced at all: the success path
  is a few attribute updates.
* **A rate, measured.** The first throttle switches pacing on. The rate the server grants
  is measured from the starts it admitted while it was refusing some: since the last cut
  of the pace, and between two *onsets* (the first refusal after admitted starts), the
  points where a token bucket is empty or a window is just full, so that the span
  between them holds exactly what the limiter grants over it, bursts and window edges
  excluded. Starts are paced a little below that estimate, and the pace probes upward
  along a cubic (concave back to the estimate, then convex beyond), so a limit that rises
  is found without a storm.
* **An in-flight cap, learned apart.** A refusal cuts the cap only when its evidence
  says "too many at once": it started deeper (more requests in flight) than nearly every
  admitted request. Without throttles the cap follows latency (the mean of a batch of
  successes against the best batch mean seen, as a Vegas-style limiter does) and
  failure surges (5xx, timeouts), and grows back when latency recovers.
* **Pauses only when everything is refused.** The whole client stops only after a run
  of consecutive starts, spanning a while, all refused; for the ``Retry-After`` given;
  afterwards starts resume at the pace, never as one burst.
* **A told rate** (``rate_limit``) paces starts a hair below it from the first request;
  the learned estimate never exceeds it.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["Controller"]

#: Pace this far below the estimated rate.
MARGIN = 0.03
#: Pace this far below a rate the user told (start jitter must not trip a rolling window).
TOLD_MARGIN = 0.02
#: Seconds the cubic probe takes to climb back from the paced rate to the estimate.
PROBE_K = 2.0
#: ... or the time this many starts take at the estimate, if longer: each probe costs a
#: refusal or two, so a low rate probes less often in time and as often in requests.
PROBE_STARTS = 100
#: Seconds the pace takes to climb back after slow start's first refusal halved it.
FIRST_BACK = 1.0
#: The span measured over at an onset after an emergency slow-down.
SHORT_SPAN = 0.5
#: After an emergency slow-down, the probe aims at most this multiple of its pace.
EMERGENCY_REACH = 2.0
#: An emergency slow-down needs this many starts since the cut.
EMERGENCY_STARTS = 4
#: The shortest span of starts a rate is measured over.
MIN_SPAN = 0.05
#: Until the measured span is a full :data:`ONSET_SPAN`, measurements this far apart.
MEASURE_GAP = 0.25
#: The probe never goes above this multiple of the estimate.
PROBE_MAX = 2.0
#: Past the cubic, the probe doubles every this many probe periods.
PROBE_DOUBLING = 1.0
#: The span of starts before an onset the rate is measured over (>= a common 1 s window).
ONSET_SPAN = 2.0
#: A client-wide pause needs at least this many consecutive refused starts ...
PAUSE_RUN = 4
#: ... spanning at least this long (seconds; and at least two intervals of the pace).
PAUSE_SPAN = 0.05
#: Each pause lasts this share of the time everything has been refused so far.
PAUSE_GROWTH = 0.5
#: The longest pause after an all-refused run whose answers carried no ``Retry-After``.
DEFAULT_PAUSE = 1.0
#: Latency: cut the cap when a batch's mean exceeds this multiple of the base ...
LATENCY_HIGH = 2.0
#: ... and grow it back while the mean stays under this one.
LATENCY_OK = 1.5
#: A batch with more than this share of failures (5xx, timeouts) cuts the cap.
FAILURE_SURGE = 0.1
#: Seconds without a refusal for concurrency before the cap probes one above its limit.
CAP_PROBE = 10.0
#: The smallest in-flight cap latency or failures can cut to.
MIN_CAP = 2
_DEPTH_BITS = 12
_RING = 4096
_RING_MASK = _RING - 1
_DEPTH_MASK = (1 << _DEPTH_BITS) - 1


class Controller:
    """Pacing, in-flight cap and pause for one client; see the module docstring.

    The runtime, per request: when :attr:`free` is true and ``in_flight < cap`` it may
    start at once; otherwise it waits :meth:`may_start` seconds (and for ``in_flight <
    cap``). At the start it calls :meth:`on_start` and keeps the returned ticket; at the
    end exactly one of :meth:`on_success`, :meth:`on_throttle` or :meth:`on_failure`
    with the ticket and the request's latency (seconds from start to answer).
    """

    __slots__ = (
        "_base",
        "_batch",
        "_batch_t0",
        "_cap_limit",
        "_cap_limit_at",
        "_cut_seq",
        "_cut_start",
        "_delivered",
        "_emergency",
        "_failures",
        "_first_refused",
        "_hist",
        "_hist_n",
        "_last_refused_seq",
        "_latency_sum",
        "_mean_latency",
        "_measured",
        "_next",
        "_pause_len",
        "_pause_seq",
        "_post_refused",
        "_probe_c",
        "_probe_cx",
        "_probe_k",
        "_probe_k0",
        "_probe_t0",
        "_probe_x1",
        "_rate_measured",
        "_refused",
        "_refused_seqs",
        "_run_len",
        "_run_seq",
        "_run_t0",
        "_seq",
        "_slow_start",
        "_starts",
        "_successes",
        "cap",
        "ceiling",
        "free",
        "in_flight",
        "last_throttle_reason",
        "max_pause",
        "pace",
        "paused_until",
        "rate",
        "told",
    )

    def __init__(
        self,
        concurrency: int,
        *,
        rate_limit: float | None = None,
        initial_window: int = 4,
        max_pause: float = 60.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be > 0 or None, got {rate_limit!r}")
        if initial_window < 1:
            raise ValueError(f"initial_window must be >= 1, got {initial_window!r}")
        #: The user's concurrency: the cap never exceeds it.
        self.ceiling = concurrency
        #: The in-flight cap in force.
        self.cap = min(initial_window, concurrency)
        self.in_flight = 0
        #: The rate the user told (``rate_limit``), or ``None``.
        self.told = rate_limit
        #: The learned estimate of the server's rate (requests/s); ``None`` until throttled.
        self.rate: float | None = None
        #: The start rate in force (requests/s), ``None`` while starts are not paced.
        self.pace: float | None = rate_limit * (1 - TOLD_MARGIN) if rate_limit else None
        #: When the client-wide pause ends (a :meth:`may_start` clock time); 0.0 = none.
        self.paused_until = 0.0
        #: What the last refusal was taken for, e.g. ``"429: rate"``; ``None`` before any.
        self.last_throttle_reason: str | None = None
        #: True while nothing but the in-flight cap holds starts back (the fast path).
        self.free = self.pace is None
        self.max_pause = max_pause
        self._cap_limit = concurrency  # the most in flight at once the server took
        self._cap_limit_at = 0.0
        self._seq = 0
        self._next = 0.0
        # Latency batches (the cap's signal while nothing is refused).
        self._slow_start = True
        self._successes = 0
        self._failures = 0
        self._latency_sum = 0.0
        # The first success closes a batch of one: it starts the clock of the next.
        self._batch = 1
        self._batch_t0: float | None = None
        self._delivered = 0.0
        self._base = math.inf
        self._mean_latency = 0.0
        # Refusals: off until the first one (the success path pays nothing for them).
        self._hist: list[int] | None = None
        self._hist_n = 0
        self._refused = 0
        self._cut_seq = 0
        self._cut_start = 0.0
        self._post_refused = 0
        self._probe_t0 = 0.0
        self._probe_k = self._probe_k0 = PROBE_K
        self._probe_x1 = PROBE_K * 2.0 ** (1 / 3)
        self._probe_c = self._probe_cx = MARGIN / PROBE_K**3
        self._first_refused = 0.0
        self._measured = 0.0
        self._rate_measured = False
        self._emergency = False  # the last slow-down was for refusals going on after a cut
        self._last_refused_seq = -1
        self._refused_seqs: deque[int] = deque(maxlen=_RING)
        #: start times by sequence number (a ring): what was admitted over a span
        self._starts = [0.0] * _RING
        self._run_seq = -1
        self._run_t0 = 0.0
        self._run_len = 0
        self._pause_seq = 0
        self._pause_len = 0.0  # the last pause's length, while no answer has ended it

    @property
    def paused(self) -> bool:
        """Whether a client-wide pause was ordered (see :attr:`paused_until`)."""
        return self.paused_until > 0.0

    # -- what the runtime asks -------------------------------------------------------

    def may_start(self, now: float) -> float:
        """Seconds until the next start may go (0.0 = now), the in-flight cap aside."""
        if self.paused_until:
            if now < self.paused_until:
                return self.paused_until - now
            self.paused_until = 0.0
            self.free = self.pace is None
        if self.pace is None:
            return 0.0
        wait = self._next - now
        return wait if wait > 0.0 else 0.0

    def on_start(self, now: float) -> int:
        """A request starts now; returns its ticket (hand it back with its outcome)."""
        self.in_flight += 1
        seq = self._seq = self._seq + 1
        self._starts[seq & _RING_MASK] = now
        if not self.free:
            self._paced_start(now)
        depth = self.in_flight
        return (seq << _DEPTH_BITS) | (depth if depth < _DEPTH_MASK else _DEPTH_MASK)

    def _paced_start(self, now: float) -> None:
        if self.rate is not None:
            if now > self._next:
                # Starts were not held back by the pace (idle, or the cap bound): the probe
                # waits too, or it would climb with no evidence and burst later.
                self._probe_t0 += now - max(self._next, self._probe_t0)
            self.pace = self._probe(now)
        if self.pace is not None:
            # GCRA with half an interval of tolerance: a start a little late (a timer fires
            # late) lets the next come that much sooner, so the pace is kept on average,
            # while any span of t seconds still holds at most t x pace + 1.5 starts.
            interval = 1.0 / self.pace
            self._next = max(self._next, now - 0.5 * interval) + interval

    def _probe(self, now: float) -> float:
        """The pace of the probe at ``now``.

        Concave from the cut back up to the estimate (the cut set how deep), then convex:
        a cubic up to twice the margin above it, then doubling every half probe period,
        so a limit that rose (or a share another client left) is found in seconds, while
        a steady one is crossed slowly, for a refusal or two.
        """
        assert self.rate is not None
        x = now - self._probe_t0 - self._probe_k
        if x < 0:
            factor = 1.0 + self._probe_c * x * x * x
        elif x < self._probe_x1:
            factor = 1.0 + self._probe_cx * x * x * x
        else:
            factor = (1 + 2 * MARGIN) * 2.0 ** ((x - self._probe_x1) / (PROBE_DOUBLING * self._probe_k0))
            if factor >= PROBE_MAX:
                # Twice the estimate and still nothing refused: it was wrong. Start over
                # from there (the next refusal measures again).
                self.rate = self._bounded(PROBE_MAX * self.rate)
                self._slow_down(now, self.rate)
                factor = 1.0 - MARGIN
        pace = self.rate * factor
        if self.told is not None:
            pace = min(pace, self.told * (1 - TOLD_MARGIN))
        return pace

    # -- what happened ---------------------------------------------------------------

    def on_success(self, now: float, latency: float, ticket: int) -> None:
        """The request of ``ticket`` was answered (not throttled) after ``latency`` s."""
        self.in_flight -= 1
        self._latency_sum += latency
        self._successes += 1
        if self._slow_start and self.cap < self.ceiling:
            self.cap += 1
        if self._successes >= self._batch:
            self._end_batch(now)
        if self._hist is not None:
            if self._pause_len and ticket >> _DEPTH_BITS > self._pause_seq:
                self._pause_over(now - latency, ticket >> _DEPTH_BITS)
            depth = ticket & _DEPTH_MASK
            hist = self._hist
            hist[depth if depth < len(hist) else -1] += 1
            self._hist_n += 1
            if self._hist_n > 4096:
                self._hist = [n // 2 for n in hist]
                self._hist_n = sum(self._hist)

    def on_failure(self, now: float, latency: float, ticket: int, kind: str) -> None:
        """The request failed without a throttle: ``kind`` is e.g. ``"503"``, ``"timeout"``."""
        self.in_flight -= 1
        self._failures += 1
        if self._successes + self._failures >= self._batch:
            self._end_batch(now)

    def on_throttle(
        self, now: float, latency: float, ticket: int, retry_after: float | None, status: int
    ) -> None:
        """The request was refused for load: a 429, or a 503 with ``Retry-After``."""
        self.in_flight -= 1
        self._refused += 1
        if self._hist is None:
            self._hist = [0] * (self.ceiling + 2)
            self._slow_start = False
        seq, depth = ticket >> _DEPTH_BITS, ticket & _DEPTH_MASK
        started = now - latency
        if seq <= self._pause_seq:
            return  # started before the pause: says nothing new
        if self._all_refused(seq, started):
            self._pause(now, started, retry_after, status)
            return
        if self._too_deep(depth):
            self.last_throttle_reason = f"{status}: concurrency"
            self._cap_limit = max(1, depth - 1)
            self._cap_limit_at = now
            self.cap = min(self.cap, self._cap_limit)
            if not self._rate_measured and self.told is None:
                # The pace came from slow start's first refusal, which this one explains:
                # the cap holds the load now, nothing says there is a rate to keep to.
                self.rate = self.pace = None
                self.free = not self.paused_until
            return
        self.last_throttle_reason = f"{status}: rate"
        self._rate_refused(now, started, seq)

    # -- refusals ----------------------------------------------------------------------

    def _all_refused(self, seq: int, started: float) -> bool:
        """Track runs of consecutive refused starts; true when one is long enough to pause."""
        if self._pause_len:
            return True  # the first answer after a pause is refused too: pause again, longer
        if seq == self._run_seq + 1:
            self._run_len += 1
        elif seq > self._run_seq:
            self._run_len, self._run_t0 = 1, started
        else:
            return False  # answered out of order: already counted around it
        self._run_seq = seq
        span = PAUSE_SPAN if self.pace is None else max(PAUSE_SPAN, 2.0 / self.pace)
        return self._run_len >= PAUSE_RUN and started - self._run_t0 >= span

    def _pause(self, now: float, started: float, retry_after: float | None, status: int) -> None:
        """Stop every start for half as long as everything has been refused so far.

        At most the ``Retry-After``. The refusals' end is passed by at most a third of
        their length, for one probe (a refused start) per step; the next answer decides
        whether the pause was long enough (an admitted one ends them, :meth:`_pause_over`).
        """
        longest = min(DEFAULT_PAUSE if retry_after is None else retry_after, self.max_pause)
        wait = min(longest, max(PAUSE_GROWTH * (now - self._run_t0), PAUSE_SPAN))
        self._pause_len = wait
        self.paused_until = max(self.paused_until, now + wait)
        self.last_throttle_reason = f"{status}: all refused, pausing"
        self.free = False
        self._pause_seq = self._seq
        self._run_len = 0
        if self.rate is None:
            self._start_pacing(now, started)  # whatever comes after the pause is paced
        assert self.rate is not None
        # Granted so far, over a span reaching to the pause's end: the pace to resume at,
        # so that the end of a pause is never a burst.
        estimate = self._admitted_rate(self.paused_until, self._seq, clip=False)
        if estimate is not None and estimate < self.rate:
            self.rate = self._bounded(estimate)
            self._rate_measured = True
            self._slow_down(now, (1 - MARGIN) * self.rate)
        self._next = self.paused_until

    def _pause_over(self, started: float, seq: int) -> None:
        """A start after the pause was admitted: the refusals ended before it.

        The limiter granted what it admitted over the span before this start, refusals
        and pauses included (a window's limiter grants nothing while exhausted).
        """
        self._pause_len = 0.0
        estimate = self._admitted_rate(started, seq, clip=False)
        if estimate is not None and self.rate is not None:
            self.rate = self._bounded(estimate)
            self._measured = started
            self._rate_measured = True
            self._slow_down(started, (1 - MARGIN) * self.rate)

    def _too_deep(self, depth: int) -> bool:
        """Whether a refusal at ``depth`` in flight is "too many at once".

        Under a rate limit refusals fall at any depth; under a concurrency cap only above
        it, where nearly no admitted request ever started.
        """
        hist = self._hist
        assert hist is not None
        if self._hist_n < 20:
            return False
        deeper = sum(hist[min(depth, len(hist) - 1) :])
        return deeper < 0.02 * self._hist_n

    def _rate_refused(self, now: float, started: float, seq: int) -> None:
        onset = seq > self._last_refused_seq + 1  # the first refusal after admitted starts
        self._last_refused_seq = max(self._last_refused_seq, seq)
        self._refused_seqs.append(seq)
        if self.rate is None:
            self._start_pacing(now, started)
            return
        if seq <= self._cut_seq:
            return  # started before the last cut: the old pace's doing
        assert self.pace is not None
        if onset and started - self._measured >= MEASURE_GAP:
            # The limiter is just exhausted here: what it admitted over the span before
            # this start is what it grants over such a span (a burst it held is spread
            # over the span, a window's edge is at its end).
            # After an emergency slow-down the limit may have fallen: measure over a
            # shorter span, or the old limit in it would hold the estimate up for seconds.
            estimate = self._admitted_rate(started, seq, span=SHORT_SPAN if self._emergency else ONSET_SPAN)
            self._emergency = False
            if estimate is not None:
                if started - self._first_refused < ONSET_SPAN:
                    # A span shorter than a window may have caught a window's limiter
                    # between two of its lumps (or a pause in it): at most halve.
                    estimate = max(estimate, 0.5 * self.rate)
                # The span may hold stretches paced below the limit (which it then did not
                # grant in full): refused at this pace, the limit is not far below it, if
                # the probe was crossing slowly (a window's limiter refuses up to a window
                # late: a fast probe is far past the limit by then).
                estimate = max(estimate, (1 - MARGIN) * min(self.pace, (1 + 2 * MARGIN) * self.rate))
                self.rate = self._bounded(estimate)
                self._measured = started
                self._rate_measured = True
                self._slow_down(now, min(self.pace, (1 - MARGIN) * self.rate))
                return
        # Refusals go on under the pace set at the cut: slow down to what was admitted
        # since (the probe climbs back to the estimate, concavely, in case this short span
        # caught a window's limiter between two of its lumps).
        self._post_refused += 1
        posts = seq - self._cut_seq
        span = started - self._cut_start
        admitted = posts - self._post_refused
        if admitted < 1 or posts < EMERGENCY_STARTS or span < MIN_SPAN:
            return  # too little seen since the cut (nothing admitted: a pause's business)
        pace = max(0.5 * self.pace, min(self.pace, admitted / span))
        # The probe aims back at most at twice this pace: if the limit fell, not so far
        # above it; if this caught a window's limiter between lumps, still above them.
        self.rate = min(self.rate, EMERGENCY_REACH * pace)
        self._slow_down(now, pace)
        self._emergency = True

    def _start_pacing(self, now: float, started: float) -> None:
        """The first refusal: slow start overshot; from now on every start is paced.

        The rate starts were sent at lately bounds the rate from above; pace at half of
        it (the window doubled in the last round trip) until a measurement says better.
        """
        self._first_refused = self._measured = started
        seq = self._seq
        span = max(0.1, self._mean_latency)
        sent = (seq - self._first_after(now - span, seq) + 1) / span
        self.rate = self._bounded(max(1.0, sent, self._delivered))
        self._slow_down(now, 0.5 * self.rate, back=FIRST_BACK)

    def _first_after(self, since: float, seq: int) -> int:
        """The sequence number of the first start after ``since`` (up to ``seq``), by bisection."""
        starts = self._starts
        low, high = max(1, seq - _RING_MASK), seq
        while low < high:
            mid = (low + high) // 2
            if starts[mid & _RING_MASK] <= since:
                low = mid + 1
            else:
                high = mid
        return low

    def _admitted_rate(
        self, end: float, seq: int, clip: bool = True, span: float = ONSET_SPAN
    ) -> float | None:
        """Starts admitted per second over the :data:`ONSET_SPAN` of starts up to ``seq``.

        With ``clip``, the span begins no earlier than the first refusal: before it the
        limiter was not yet pushed, and a burst it held would count as rate. ``None`` if
        the span is too short to say.
        """
        oldest = max(1, seq - _RING_MASK)  # the oldest start still in the ring
        since = max(end - span, self._starts[oldest & _RING_MASK])
        if since >= self._starts[seq & _RING_MASK]:
            return None
        if clip:
            since = max(since, self._first_refused)
        low = self._first_after(since, seq)
        if end - since < MIN_SPAN or seq - low < 8:
            return None
        refused = 0
        for s in reversed(self._refused_seqs):
            if s < low:
                break
            refused += 1
        return max(1, (seq - low + 1) - refused) / (end - since)

    def _bounded(self, estimate: float) -> float:
        return estimate if self.told is None else min(estimate, self.told)

    def _slow_down(self, now: float, pace: float, back: float | None = None) -> None:
        """Pace at ``pace`` from now on; the probe climbs back to the estimate from there
        (concavely, within ``back`` seconds), and beyond it convexly."""
        assert self.rate is not None
        self._probe_k0 = k0 = max(PROBE_K, PROBE_STARTS / self.rate)
        self._probe_cx = MARGIN / k0**3
        self._probe_x1 = k0 * 2.0 ** (1 / 3)  # where the cubic is 2 x MARGIN above
        depth = max(MARGIN, 1.0 - pace / self.rate)
        self._probe_k = k = min(k0 if back is None else back, (depth / self._probe_cx) ** (1 / 3))
        self._probe_c = depth / (k * k * k)
        self._probe_t0 = now
        self._cut_seq = self._seq
        self._cut_start = now
        self._post_refused = 0
        self.pace = self._probe(now)
        self.free = False
        self._next = max(self._next, now)

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
        mean = self._mean_latency = total / successes
        if mean < self._base:
            self._base = mean
        if mean > LATENCY_HIGH * self._base:
            self._slow_start = False
            self.cap = max(MIN_CAP, int(self.cap * max(0.5, LATENCY_HIGH * self._base / mean)))
        elif not self._slow_start and mean < LATENCY_OK * self._base and self.cap < self.ceiling:
            if self.cap >= self._cap_limit:
                if now - self._cap_limit_at < CAP_PROBE:
                    return  # a concurrency limit was found lately: stay under it
                # Long without a refusal for concurrency: the limit may have risen.
                self._cap_limit += 1
                self._cap_limit_at = now
            self.cap = min(self._cap_limit, self.cap + max(1, self.cap // 8))
