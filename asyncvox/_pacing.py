"""The rate half of the control logic: measure what the server grants, pace starts under it.

Pure (no asyncio, no I/O, no clock of its own): :class:`Pacer` is driven by
:class:`asyncvox._control.Controller`, which decides which refusals are about the rate.

* **Measuring.** Every start's time is kept in a ring, by sequence number, so the starts
  the server admitted over any recent span can be counted. The rate is measured at an
  *onset*, the first refusal after admitted starts: there a token bucket is just empty
  and a window just full, so the span before it holds what the limiter grants over such
  a span. The span is :data:`ONSET_SPAN` (longer than the common 1 s window, so a window's
  edge or a bucket's burst is spread over it) and begins no earlier than the first
  refusal (before it the limiter was not pushed: a burst it held would count as rate).
  Refused at a pace crossing slowly upward, the limit is not far below that pace either.
  When everything was refused (a chain of pauses, from its second pause on), the span
  reaches to the pause's end; when the refusals are over, up to the last refused start
  (the limiter was still exhausted then), from the end of the chain before (a window's
  edge), with no floor if admitted starts fill it (a window exhausted by slow start).
* **Pacing.** Starts are spaced at ``pace`` (GCRA), a little below the estimate.
* **Probing.** After each cut the pace climbs back to the estimate concavely (a cubic,
  as CUBIC does around its last maximum), past it slowly (a refusal or two per crossing
  of a steady limit), then doubling (a limit that rose is found in seconds); at twice
  the estimate with nothing refused, the estimate was wrong: it moves up under the
  probe, which goes on doubling, faster.
  A limit measured again where it was is climbed back to more slowly (crossed less often).
  Slow start refused a few milliseconds in, after a burst (a fast server), ramps instead:
  its guess was the burst, not a rate.
* **Emergencies.** Refusals that go on after a cut (the limit fell) cut the pace at once
  to what was admitted since, halving at most per step, and the next onset measures over
  a short span.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ._ring import RING, Counted, StartRing
from ._tuning import TOLD, UNTOLD

__all__ = ["MARGIN", "RING", "Lately", "Pacer"]

#: Pace this far below the estimated rate.
MARGIN = 0.03
#: Pace this far below a rate the user told (start jitter must not trip a rolling window).
TOLD_MARGIN = 0.02
#: The span of starts before an onset the rate is measured over (>= a common 1 s window).
ONSET_SPAN = 2.0
#: The span measured over at an onset after an emergency slow-down (the limit may have
#: fallen: a long span would hold the old limit up for seconds).
SHORT_SPAN = 0.5
#: ... at least the time this many starts take at the pace.
SPAN_STARTS = 16
#: The shortest span of starts a rate is measured over.
MIN_SPAN = 0.05
#: A pause's span with this many admitted starts measured the limit (not a burst of refusals).
EVIDENCE = 8
#: A chain of pauses measures the limit from this many pauses on.
CHAIN_PAUSES = 2
#: Onsets closer than this to the last measurement are emergencies' business.
MEASURE_GAP = 0.25
#: Seconds the probe takes to climb back from the paced rate to the estimate (and to climb
#: a margin past it) ...
PROBE_K = 2.0
#: ... or, climbing back, the time this many starts take at the estimate, if longer: each
#: crossing costs a refusal or two, so a low rate crosses less often in time and as often
#: in requests.
PROBE_STARTS = 100
#: ... twice as long for each measurement in a row that found the estimate within this
#: share of where it was (a steady limit is probed less often), up to :attr:`Tuning.k_max`.
STEADY = 0.05
#: Past the estimate the cubic climbs this many margins; beyond, the probe doubles ...
PROBE_CUBIC = 4.0
#: ... every this many seconds ...
PROBE_DOUBLING = 2.0
#: ... or this many once it found nothing at twice the estimate (the estimate was wrong:
#: a limit that rose, or capacity that processes sharing the key left when they finished,
#: is found within seconds).
RESTART_DOUBLING = 1.0
#: The probe never goes above this multiple of the estimate (then the estimate was wrong).
PROBE_MAX = 2.0
#: Slow start refused within this share of its guess's span of the client's first start,
#: after a burst was admitted, guessed the burst and not a rate: the pace ramps from it,
#: doubling every :data:`RAMP_DOUBLING` seconds ...
RAMP_AGE = 0.25
RAMP_DOUBLING = 0.25
#: ... and the onset that ends the ramp measures over this span (a longer one would hold
#: the ramp's slower part, and the estimate would start low).
RAMP_SPAN = 0.125
#: Seconds the pace takes to climb back after slow start's first refusal halved it.
FIRST_BACK = 1.0
#: An emergency slow-down needs this many starts since the cut ...
EMERGENCY_STARTS = 4
#: ... and afterwards the probe aims at most this multiple of its pace.
EMERGENCY_REACH = 2.0


class Lately(NamedTuple):
    """What the recent successes showed (the controller's latency batches)."""

    #: successes per second
    delivered: float
    #: their mean latency, seconds
    latency: float


class Pacer:
    """The learned rate, the pace of starts and the probe; fed by the controller."""

    __slots__ = (
        "_c_above",
        "_c_below",
        "_chain_end",
        "_chain_floor",
        "_chain_pauses",
        "_cut_seq",
        "_cut_start",
        "_doubling",
        "_emergency",
        "_first_refused",
        "_k",
        "_last_refused",
        "_measured",
        "_next",
        "_onset",
        "_onsets",
        "_post_refused",
        "_ramping",
        "_ring",
        "_seq",
        "_steady",
        "_t0",
        "_tuning",
        "_x1",
        "measured",
        "pace",
        "rate",
        "starts",
        "told",
    )

    def __init__(self, told: float | None) -> None:
        self.told = told
        self._tuning = UNTOLD if told is None else TOLD
        #: The learned estimate of the server's rate (requests/s); ``None`` until throttled.
        self.rate: float | None = None
        #: The start rate in force, ``None`` while starts are not paced.
        self.pace: float | None = told * (1 - TOLD_MARGIN) if told else None
        #: Whether a refusal measured the rate (not only slow start's first guess).
        self.measured = False
        self._ring = StartRing()
        #: Start times by sequence number, written by the controller on every start.
        self.starts = self._ring.times
        self._next = 0.0
        self._seq = 0  # the last paced start's sequence number
        self._last_refused = -1
        self._onset = False  # whether the last refusal noted was an onset
        self._onsets = 0  # rates measured at an onset so far
        self._first_refused = 0.0
        self._measured = 0.0  # when the rate was last measured
        self._emergency = False  # the last cut was an emergency
        self._ramping = False  # the pace ramps from slow start's guess of a burst
        self._chain_floor: float | None = None  # the lowest estimate the pause chain allows
        self._chain_end = 0.0  # the first admitted start after the last pause chain
        self._chain_pauses = 0  # pauses in the chain going on
        self._steady = 0  # measurements in a row that found the estimate where it was
        self._cut_seq = 0
        self._cut_start = 0.0
        self._post_refused = 0  # refusals of starts since the cut
        # The probe: its clock, where it meets the estimate, and its two cubics' factors.
        self._t0 = 0.0
        self._k = PROBE_K
        self._x1 = PROBE_K * PROBE_CUBIC ** (1 / 3)
        self._c_below = self._c_above = MARGIN / PROBE_K**3
        self._doubling = PROBE_DOUBLING

    # -- starts ------------------------------------------------------------------------

    def delay(self, now: float) -> float:
        """Seconds until the pace lets the next start go."""
        wait = self._next - now
        return wait if wait > 0.0 else 0.0

    def started(self, now: float, seq: int) -> None:
        """A paced start (number ``seq``) went at ``now``."""
        self._seq = seq
        if self.rate is not None:
            assert self.pace is not None
            idle = now - self._next
            if idle > 1.0 / self.pace:
                # The pace held nothing back (idle, or the cap bound): the probe waits
                # too, or it would climb with no evidence and burst later.
                self._t0 += idle if self._next > self._t0 else now - self._t0
            self.pace = self._probe(now)
        if self.pace is not None:
            # GCRA with a little tolerance (half an interval, at least 2 ms): a start a
            # little late (timers fire late) lets the next come that much sooner, so the
            # pace holds on average, while any span of t seconds holds at most
            # t x pace + 1.5 starts (+ 2 ms of starts above 250/s).
            interval = 1.0 / self.pace
            self._next = max(self._next, now - max(0.5 * interval, 0.002)) + interval

    def _probe(self, now: float) -> float:
        """The pace at ``now``: concave back to the estimate, a cubic past it, then doubling."""
        assert self.rate is not None
        x = now - self._t0 - self._k
        if x < 0:
            factor = 1.0 + self._c_below * x * x * x
        elif x < self._x1:
            factor = 1.0 + self._c_above * x * x * x
        else:
            factor = (1 + PROBE_CUBIC * MARGIN) * 2.0 ** ((x - self._x1) / self._doubling)
            if factor >= PROBE_MAX:
                # Twice the estimate and still nothing refused: it was wrong (a limit that
                # rose, capacity another process left). The estimate moves up under the
                # probe, which goes on doubling from where it is: nothing says a limit is
                # near, so no plateau again (the next refusal measures).
                top = 1 + PROBE_CUBIC * MARGIN
                self.rate = self._bounded(PROBE_MAX * self.rate / top)
                self._steady = 0
                self._t0 = now - self._k - self._x1
                self._doubling = min(self._doubling, RESTART_DOUBLING)
                factor = top
        pace = self.rate * factor
        return pace if self.told is None else min(pace, self.told * (1 - TOLD_MARGIN))

    # -- refusals ----------------------------------------------------------------------

    def note_refused(self, seq: int) -> None:
        """The start numbered ``seq`` was refused (whatever for): it was not admitted."""
        self._onset = seq > self._last_refused + 1  # the first refusal after admitted starts
        if seq > self._last_refused:
            self._last_refused = seq
        self._ring.refused.append(seq)

    def refused(self, now: float, started: float, seq: int, newest: int, lately: Lately) -> None:
        """The start ``seq`` (at ``started``) was refused for the rate (after :meth:`note_refused`).

        ``newest`` is the last start's number; ``lately`` what the successes showed, for
        the first refusal.
        """
        if self.rate is None:
            self._first_refusal(now, started, newest, lately)
            return
        if seq <= self._cut_seq:
            return  # started before the last cut: the old pace's doing
        assert self.pace is not None
        if self._onset and (self._ramping or started - self._measured >= MEASURE_GAP):
            emergency, self._emergency = self._emergency, False
            # At least enough starts to count (a short span at a low pace holds too few,
            # and an emergency at a low rate would never be measured, only cut again).
            ramping = self._ramping
            span = RAMP_SPAN if ramping else SHORT_SPAN if emergency else ONSET_SPAN
            span = max(span, SPAN_STARTS / self.pace)
            counted = self._admitted(started, seq, span=span)
            if counted is not None:
                estimate = counted.rate
                if started - self._first_refused < ONSET_SPAN:
                    # A span shorter than a window may have caught a window's limiter
                    # between two of its lumps (or a pause in it): at most halve.
                    estimate = max(estimate, 0.5 * self.rate)
                # The span may hold stretches paced below the limit (not granted in full
                # then): refused at this pace, the limit is not far below it, if the probe
                # was crossing slowly (a window's limiter refuses up to a window late, and
                # a fast probe, as one climbing back after an emergency, is far past it).
                if not (emergency or ramping):
                    estimate = max(estimate, (1 - MARGIN) * min(self.pace, (1 + 2 * MARGIN) * self.rate))
                # Measured again where it was: the limit is steady, probe it less often.
                steady = abs(estimate - self.rate) <= STEADY * self.rate
                self._steady = min(self._steady + 1, 3) if steady else 0
                if steady and estimate > self.rate:
                    # A little above where it was: partly a bucket's burst refilled while
                    # paced below (granted once, not per second). Halfway (told: not at
                    # all, see Tuning.hold_rise), so one crossing costs one refusal and not
                    # a second one soon after.
                    estimate = self.rate if self._tuning.hold_rise else 0.5 * (estimate + self.rate)
                self.rate = self._bounded(estimate)
                self._measured = started
                self.measured = True
                self._onsets += 1
                self._cut(now, newest, min(self.pace, (1 - MARGIN) * self.rate))
                return
        # Refusals go on under the pace set at the cut: slow down to what was admitted since.
        self._post_refused += 1
        posts = seq - self._cut_seq
        span = started - self._cut_start
        admitted = posts - self._post_refused
        if admitted < 1 or posts < EMERGENCY_STARTS or span < MIN_SPAN:
            return  # too little seen since the cut (nothing admitted: a pause's business)
        pace = max(self._tuning.emergency_floor * self.pace, min(self.pace, admitted / span))
        # The probe aims back at most at twice this pace: if the limit fell, not far above
        # it; if this caught a window's limiter between two lumps, still above them.
        self.rate = min(self.rate, EMERGENCY_REACH * pace)
        self._steady = 0
        self._cut(now, newest, pace)
        self._emergency = True

    def _first_refusal(self, now: float, started: float, newest: int, lately: Lately) -> None:
        """Slow start overshot: pace every start from now on.

        The rate starts went at over the last round trip bounds the rate from above (so
        does the rate successes came back at); pace at half of it (the window doubled in
        the last round trip; a quarter under a told rate, see :attr:`Tuning.first_cut`)
        until a refusal measures better.
        """
        self._first_refused = self._measured = started
        ring = self._ring
        span = max(0.1, lately.latency)
        sent = (newest - ring.first_after(now - span, newest) + 1) / span
        self.rate = self._bounded(max(1.0, sent, lately.delivered))
        self.measured = False
        tuning = self._tuning
        pace = tuning.first_cut * self.rate
        self._cut(now, newest, pace, back=FIRST_BACK if tuning.first_back else None)
        if self.told is None and ring.at(1) > now - RAMP_AGE * span and ring.refused[0] > EVIDENCE:
            # Refused a few milliseconds into the client's life, after a burst was admitted
            # (nginx's limit_req with a burst, before a fast server): the guess is that
            # burst over a span the client had not lived, whatever the rate. The pace
            # doubles from the cut (a round trip of milliseconds makes the overshoot cost
            # next to nothing) until an onset measures, over a span the ramp cannot hold.
            self.rate = pace / (1 + PROBE_CUBIC * MARGIN)  # the doubling part starts at pace
            self._t0 = now - self._k - self._x1
            self._doubling, self._ramping = RAMP_DOUBLING, True
            self.pace = self._probe(now)

    def paused(self, now: float, until: float, seq: int, lately: Lately) -> None:
        """Everything is refused, starts stop until ``until``: resume at what was granted.

        Granted over a span that reaches to the pause's end (a window's limiter grants
        nothing while exhausted), so the end of a pause is never a burst.
        """
        if self.rate is None:
            self._first_refusal(now, now, seq, lately)  # whatever comes after is paced
        assert self.rate is not None
        self._chain_pauses += 1
        if self._chain_pauses < CHAIN_PAUSES:
            return  # one pause may be a moment's refusals (a cap full, a burst): no measure
        counted = self._admitted(until, seq, clip=False)
        evidence = counted is not None and counted.admitted >= EVIDENCE
        if self._chain_floor is None and not self._onsets and not evidence:
            # Refused from the first, no onset ever measured the limit: a chain of pauses
            # halves the estimate at most once, in all. A span of nothing but refusals (a
            # burst of 429s from a server that then recovers) says little about the limit
            # after it, and halving per pause would compound to a crawl. (A span that
            # holds admitted starts, as a window's limiter exhausted by slow start, does.)
            self._chain_floor = 0.5 * self.rate
        if counted is not None and counted.rate < self.rate:
            self.rate = self._bounded(max(counted.rate, self._chain_floor or 0.0))
            self.measured = True
            self._cut(now, seq, (1 - MARGIN) * self.rate)

    def pause_over(self, started: float, seq: int, measure: bool = True) -> None:
        """A start after a pause (``seq``, at ``started``) was admitted: refusals ended before it.

        Measured up to the last refused start: the limiter was still exhausted there, so
        the span holds what it grants over such a span (and not the pause's overshoot).
        From the end of the chain before, if any: a window's limiter that ended one there
        grants its limit from that edge to this one (a span reaching further back holds
        the client's first, partial window, whose limit it took in less than a window).
        """
        if not measure:
            # Admitted, but started before the chain's last pause (let go by the pace
            # before the pause's probe was answered): the chain is over, but the span up
            # to it is all the chain's refusals and says nothing of the limit.
            self._chain_end, self._chain_floor, self._chain_pauses = started, None, 0
            return
        last = self._last_refused if self._last_refused < seq else seq
        end = self._ring.at(last)
        counted = self._admitted(end, last, clip=False, after=self._chain_end)
        if counted is None:
            counted = self._admitted(end, last, clip=False)
        first, self._chain_end = not self._chain_end, started
        floor, self._chain_floor = self._chain_floor, None
        pauses, self._chain_pauses = self._chain_pauses, 0
        if counted is not None and self.rate is not None and pauses >= CHAIN_PAUSES:
            self.rate = self._bounded(max(counted.rate, floor or 0.0))
            self._measured = started
            self.measured = True
            # The first chain's span may hold a partial window: an estimate that may be
            # low is probed past quickly (as slow start's first guess is).
            self._cut(started, seq, (1 - MARGIN) * self.rate, back=FIRST_BACK if first else None)

    def forget(self) -> None:
        """Pace no more (slow start's first refusal turned out to be about concurrency)."""
        self.rate = self.pace = None

    # -- measuring -----------------------------------------------------------------------

    def _admitted(
        self, end: float, seq: int, clip: bool = True, span: float = ONSET_SPAN, after: float = 0.0
    ) -> Counted | None:
        """The starts admitted over ``span`` seconds of starts up to ``seq`` (at ``end``).

        With ``clip``, the span begins no earlier than the first refusal; never before the
        start at ``after``. ``None`` if it is too short to say.
        """
        since = max(end - span, after - 1e-9)
        if clip:
            since = max(since, self._first_refused)
        return self._ring.counted(since, end, seq, MIN_SPAN)

    def admitted_lately(self, now: float, seq: int, span: float, since: float = -math.inf) -> float:
        """Starts admitted per second over the last ``span`` seconds (up to start ``seq``),
        for a fleet's report: what this process got, whether or not it was refused.

        Not from before ``since``, and over at least a second, however young the process
        or late ``since``: a window's limiter grants a whole window to a first burst,
        which over the burst's own time looks like twice the rate or more (a young
        fleet's emergencies and pauses measured it so).
        """
        return self._ring.lately(now, seq, span, count_refused=False, least=1.0, since=since)

    def started_lately(self, now: float, seq: int, span: float) -> float:
        """Starts per second over the last ``span`` seconds, refused or not (a fleet's
        report: what the fleet sent is its first guess when it was admitted far less)."""
        return self._ring.lately(now, seq, span, count_refused=True, least=0.1)

    def _bounded(self, estimate: float) -> float:
        return estimate if self.told is None else min(estimate, self.told)

    def _cut(self, now: float, seq: int, pace: float, back: float | None = None) -> None:
        """Pace at ``pace`` from now on (starts after ``seq`` are the new pace's); the probe
        climbs back to the estimate within ``back`` seconds (concavely), then beyond it."""
        assert self.rate is not None
        first = back == FIRST_BACK
        longest = self._tuning.k_max
        k0 = FIRST_BACK if first else min(max(PROBE_K, PROBE_STARTS / self.rate), longest)
        # Untold, past the estimate the probe keeps one time scale whatever the rate: a
        # limit that rose, or capacity another process on the key left, is found as fast
        # at 20/s as at 100/s (the climb back, in starts, keeps crossings of a steady limit
        # rare). Told, crossings stay as rare in requests as can be (see Tuning).
        above = k0 if self._tuning.above_in_starts else FIRST_BACK if first else PROBE_K
        self._c_above = MARGIN / above**3
        self._x1 = above * PROBE_CUBIC ** (1 / 3)  # where the cubic is that far above the estimate
        depth = max(MARGIN, 1.0 - pace / self.rate)
        # A steady limit is crossed less often: the climb back to it takes longer (the
        # climb past it does not, so a limit that rose is found as fast).
        back = min(k0 * 2**self._steady, longest) if back is None else back
        self._k = k = min(back, (depth / MARGIN) ** (1 / 3) * back)
        self._c_below = depth / (k * k * k)
        self._t0 = now
        self._doubling = PROBE_DOUBLING
        self._ramping = False
        self._cut_seq = seq
        self._cut_start = now
        self._post_refused = 0
        self.pace = self._probe(now)
        self._next = max(self._next, now)
