"""Shared limits for every request a client sends: the :class:`Governor` and the
:class:`RetryBudget`.

One governor per client, consulted by every attempt (single calls, batches and polls
alike). It runs the control logic of :mod:`asyncvox._control` (a pure state machine fed
events and a clock) against the event loop:

* **slow start**: a small in-flight window that grows quickly while nothing pushes back,
  up to the client's ``concurrency``;
* **a measured rate**: once the server throttles (429, or 503 with ``Retry-After``), the
  rate it grants is estimated over a span as long as its window and starts are paced a
  little below it, probing upward along a bounded cubic;
* **an in-flight cap learned apart**: cut only on evidence of "too many at once", or on
  rising latency and failure surges from a server that never says 429;
* **pauses only when the server means it**: the whole client stops only when every
  answer is a refusal, and afterwards starts resume at the pace, never as a burst;
* a told ``rate_limit`` paces a hair under it and caps the estimate.

The fast path (:meth:`Governor.try_start`) is a few attribute checks and one counter
update, no ``await`` and no allocation, until the server pushes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from ._closing import Closed, Sleeps, closed_error
from ._control import Controller, ControlState
from ._fleet_link import FleetCounts, FleetLink
from ._fleet_scripts import FleetKeys
from ._testmode import is_testing
from .errors import APITimeoutError, ConfigurationError, RateLimitError
from .fleet import FleetState, RedisFleet
from .retry import RetryBudget

__all__ = ["Governor", "GovernorState", "RetryBudget"]

logger = logging.getLogger("asyncvox")


class GovernorState(NamedTuple):
    """What the governor knows right now (:attr:`Governor.state`), for a progress line.

    Attributes:
        rate: the learned estimate of the server's rate (requests/s); ``None`` until it
            throttled.
        pace: the start rate in force (requests/s); ``None`` while starts are not paced.
        cap: the in-flight cap in force (at most the client's ``concurrency``).
        in_flight: requests on the wire.
        paused_for: seconds until a client-wide pause ends (0.0: none).
        last_throttle_reason: what the last refusal was taken for (``"429: rate"``,
            ``"429: concurrency"``, ``"503: all refused, pausing"``), or ``None``.
        throttles: refusals seen.
    """

    rate: float | None
    pace: float | None
    cap: int
    in_flight: int
    paused_for: float
    last_throttle_reason: str | None
    throttles: int


class Governor:
    """The shared limits of one client; see the module docstring.

    The request path asks for a start with :meth:`try_start` (or, when that returns
    ``-1``, awaits :meth:`start`), keeps the ticket it gets, and reports how the request
    ended with exactly one of :meth:`succeeded`, :meth:`throttled_by`, :meth:`failed` or
    :meth:`abandoned`. Times are :func:`time.monotonic` seconds.
    """

    def __init__(
        self,
        concurrency: int,
        *,
        rate_limit: float | None = None,
        max_pause: float = 60.0,
        budget: RetryBudget | None = None,
        initial_window: int = 4,
        fleet: RedisFleet | None = None,
        fleet_keys: FleetKeys | None = None,
    ) -> None:
        self._ctl = Controller(
            concurrency, rate_limit=rate_limit, initial_window=initial_window, max_pause=max_pause
        )
        #: The client's ``concurrency``: the in-flight cap never exceeds it.
        self.cap = concurrency
        self.budget = budget if budget is not None else RetryBudget()
        self.max_pause = max_pause
        #: The most requests that were ever in flight at once.
        self.peak_in_flight = 0
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadlines: dict[asyncio.Future[int], float] = {}
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at = 0.0
        self._logged: ControlState | None = None
        self._sleeps = Sleeps()
        #: The link to a fleet's shared limits (:mod:`asyncvox.fleet`), consulted only on
        #: the slow path; ``None`` for a governor of its own.
        self.fleet: FleetLink | None = None
        if fleet is not None:
            if fleet_keys is None:
                raise ConfigurationError("a fleet governor needs its keys")
            self.fleet = FleetLink(fleet, fleet_keys, self._fleet_counts, self._fleet_changed)
            self._ctl.free = False  # starts wait for the fleet's first answer (joining)

    # -- readable state ----------------------------------------------------------------

    @property
    def limit(self) -> int:
        """The in-flight cap in force (slow start, then learned; at most :attr:`cap`)."""
        return self._ctl.cap

    @property
    def in_flight(self) -> int:
        """Requests on the wire right now."""
        return self._ctl.in_flight

    @property
    def throttled(self) -> int:
        """Refusals (429, or 503 with ``Retry-After``) seen."""
        return self._ctl.throttles

    @property
    def rate(self) -> float | None:
        """The learned estimate of the server's rate (requests/s); ``None`` until throttled."""
        return self._ctl.rate

    @property
    def pace(self) -> float | None:
        """The start rate in force (requests/s); ``None`` while starts are not paced."""
        return self._ctl.pace

    @property
    def last_throttle_reason(self) -> str | None:
        """What the last refusal was taken for, or ``None``."""
        return self._ctl.last_throttle_reason

    @property
    def paused_for(self) -> float:
        """Seconds until the client-wide pause ends (0.0 when not paused)."""
        until = self._ctl.paused_until
        return max(0.0, until - time.monotonic()) if until else 0.0

    @property
    def fleet_state(self) -> FleetState | None:
        """The fleet link's state (:class:`~asyncvox.fleet.FleetState`); ``None`` without one."""
        return self.fleet.state if self.fleet is not None else None

    @property
    def state(self) -> GovernorState:
        """All of the above at once."""
        ctl = self._ctl
        return GovernorState(
            ctl.rate,
            ctl.pace,
            ctl.cap,
            ctl.in_flight,
            self.paused_for,
            ctl.last_throttle_reason,
            ctl.throttles,
        )

    # -- starting a request ------------------------------------------------------------

    def try_start(self, now: float) -> int:
        """A ticket for a start now, or ``-1`` if the caller must :meth:`start` (wait)."""
        ctl = self._ctl
        if ctl.free and ctl.in_flight < ctl.cap and not self._waiters:
            ticket = ctl.on_start(now)
            if ctl.in_flight > self.peak_in_flight:
                self.peak_in_flight = ctl.in_flight
            return ticket
        return -1

    async def start(self, call_id: str | None = None, deadline: float | None = None) -> int:
        """Wait for a start (the slow path): behind the pause, the pace, the cap and the queue.

        Waiters are served in order, one start at a time at the pace. ``deadline`` (a
        :func:`time.monotonic` time) bounds the wait: a pause or pace that would start
        the call after it raises at once (:class:`~asyncvox.RateLimitError` for a pause,
        with the pause left as ``retry_after``; :class:`~asyncvox.APITimeoutError`
        otherwise), and so does a slot that does not free up in time. Neither was sent:
        both carry ``sent = False``.
        """
        if self._sleeps.closed:
            raise closed_error(call_id)
        if deadline is not None:
            self._check_deadline(call_id, deadline)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if deadline is not None:
            # One governor-wide timer at the earliest deadline instead of a timeout per
            # waiter: waiting for a slot is common (the cap below the workers), expiring rare.
            self._deadlines[fut] = deadline
            if not self._expiry_at or deadline < self._expiry_at:
                self._arm_expiry(deadline)
        self._pump()
        try:
            return await fut
        except BaseException as exc:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._ctl.on_cancel(fut.result())  # a start was handed to us; never sent
                self._pump()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            if isinstance(exc, TimeoutError):
                raise APITimeoutError(
                    "no request slot or start within total_timeout", call_id=call_id, sent=False
                ) from None
            if isinstance(exc, Closed):
                raise closed_error(call_id) from None
            raise
        finally:
            if deadline is not None:
                del self._deadlines[fut]

    def close(self) -> None:
        """The client closed: every waiting start fails now, and so does every later one.

        Nothing else would wake them: a waiter behind a pause or a slow pace slept on
        until then (minutes, with a low ``rate_limit``) only to find the transport closed.
        """
        for timer in (self._timer, self._expiry):
            if timer is not None:
                timer.cancel()
        self._timer = self._expiry = None
        self._timer_at = self._expiry_at = 0.0
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_exception(Closed())
        self._sleeps.close()

    @property
    def closed(self) -> bool:
        """Whether the client closed (every start fails from then on)."""
        return self._sleeps.closed

    def on_close(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the client closes; returns what stops that."""
        return self._sleeps.listen(callback)

    async def sleep(self, seconds: float, call_id: str | None = None) -> None:
        """:func:`asyncio.sleep` for a retry's wait, ended by :meth:`close` (raising its
        :class:`~asyncvox.ConfigurationError`): a ``Retry-After`` of a minute must not
        hold a closed client's call for that minute."""
        await self._sleeps.sleep(seconds, call_id)

    def _arm_expiry(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry_at = deadline
        self._expiry = loop.call_at(loop.time() + max(0.0, deadline - time.monotonic()), self._expire)

    def _expire(self) -> None:
        """Fail the waiters whose deadline passed; come back at the next deadline."""
        self._expiry = None
        self._expiry_at = 0.0
        now = time.monotonic()
        earliest = 0.0
        for fut, deadline in self._deadlines.items():
            if fut.done():
                continue
            if deadline <= now:
                fut.set_exception(TimeoutError())
            elif not earliest or deadline < earliest:
                earliest = deadline
        if earliest:
            self._arm_expiry(earliest)

    def _check_deadline(self, call_id: str | None, deadline: float) -> None:
        now = time.monotonic()
        ctl = self._ctl
        if is_testing() and ctl.told is None:
            return
        wait = ctl.may_start(now)
        if ctl.pace is not None and self._waiters:
            wait += len(self._waiters) / ctl.pace  # each waiter ahead takes one interval
        if wait <= 0 or now + wait <= deadline:
            return
        if ctl.paused:
            raise RateLimitError(
                429,
                f"the client is pausing {wait:.2f} s (every request was refused), past this "
                "call's total_timeout",
                call_id=call_id,
                retry_after=wait,
                sent=False,
            )
        raise APITimeoutError(
            f"the start pace ({ctl.pace or 0:.3g}/s: rate_limit, or the rate the server grants) would "
            f"start this call in {wait:.2f} s, past its total_timeout",
            call_id=call_id,
            sent=False,
        )

    def _pump(self) -> None:
        """Hand starts to waiters, in order, as the controller allows; come back when it says."""
        ctl = self._ctl
        waiters = self._waiters
        testing = is_testing()
        fleet = self.fleet
        paced = fleet is not None and fleet.paced
        if fleet is not None and fleet.joining:
            return  # the first sync's answer pumps again
        while waiters and ctl.in_flight < ctl.cap:
            now = time.monotonic()
            wait = ctl.may_start(now)
            if paced:
                assert fleet is not None
                # The fleet's leased start times pace instead of the local pacer; a local
                # pause (everything refused here) and a told rate still hold.
                wait = max(wait if ctl.paused or ctl.told is not None else 0.0, fleet.wait(now, len(waiters)))
                if wait == math.inf:
                    break  # a lease is on its way: its arrival pumps again
            if wait > 0 and not (testing and ctl.told is None):
                self._arm(wait)
                break
            fut = waiters.popleft()
            if fut.done():
                continue
            if paced:
                assert fleet is not None
                fleet.take()
            fut.set_result(ctl.on_start(now))
            if ctl.in_flight > self.peak_in_flight:
                self.peak_in_flight = ctl.in_flight
        if paced:
            ctl.free = False  # every start goes through here while the fleet is paced

    def _arm(self, wait: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + wait
        timer = self._timer
        if timer is not None:
            if self._timer_at <= when:
                return
            timer.cancel()
        # Kept apart: uvloop's handles have no when(). A timer that fires a little early
        # (uvloop does) finds may_start() > 0 and arms again.
        self._timer_at = when
        self._timer = loop.call_at(when, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._pump()

    # -- how it ended ------------------------------------------------------------------

    def succeeded(self, ticket: int, started: float, now: float) -> None:
        """An answer that was not a refusal or a failure (200, the API's 404, other 4xx)."""
        ctl = self._ctl
        ctl.on_success(now, now - started, ticket)
        if self._waiters:
            self._pump()

    def throttled_by(
        self, ticket: int, started: float, now: float, retry_after: float | None, status: int
    ) -> None:
        """A refusal for load: a 429, or a 503 with ``Retry-After``."""
        ctl = self._ctl
        ctl.on_throttle(now, now - started, ticket, retry_after, status)
        if self.fleet is not None:
            self.fleet.throttled(ctl.paused_until - now if ctl.paused_until > now else 0.0)
        self._pump()
        self._log_change()

    def failed(self, ticket: int, started: float, now: float, kind: str) -> None:
        """A failure not for load: another 5xx, a timeout, a dropped connection."""
        self._ctl.on_failure(now, now - started, ticket, kind)
        self._pump()
        self._log_change()

    def abandoned(self, ticket: int) -> None:
        """The request was cancelled (or never answered for a reason of ours): no signal."""
        self._ctl.on_cancel(ticket)
        if self._waiters:
            self._pump()

    # -- the fleet ---------------------------------------------------------------------

    def _fleet_counts(self) -> FleetCounts:
        ctl = self._ctl
        # Read from the start ring, not counted: the fast path pays nothing for the
        # fleet's batched reports.
        now = time.monotonic()
        return FleetCounts(
            ctl.throttles,
            ctl.admitted_lately(now),
            ctl.started_lately(now),
            ctl.growing,
            ctl.admitted_lately(now, from_edge=True),
        )

    def _fleet_changed(self) -> None:
        """The fleet's verdict changed (paced or not, a lease, a fault): start waiters again."""
        ctl = self._ctl
        fleet = self.fleet
        assert fleet is not None
        ctl.shared_by(fleet.processes)
        if fleet.paced:
            ctl.shared_pace()
        if fleet.paced or fleet.joining:
            ctl.free = False
        else:
            ctl.free = ctl.pace is None and not ctl.paused
        self._pump()

    def _log_change(self) -> None:
        """An INFO line when the pace, the cap or the pause changed materially."""
        if not logger.isEnabledFor(logging.INFO):
            return
        now = self._ctl.snapshot()
        before = self._logged
        if before is not None and not _material(before, now):
            return
        self._logged = now
        pace = f"{now.pace:.1f}/s" if now.pace is not None else "off"
        rate = f"{now.rate:.1f}/s" if now.rate is not None else "unknown"
        logger.info(
            "governor: pace %s (server rate %s), in-flight cap %d, %s; last throttle: %s",
            pace,
            rate,
            now.cap,
            "paused" if now.paused_until else "running",
            now.last_throttle_reason,
        )


def _material(a: ControlState, b: ControlState) -> bool:
    """Whether the state moved enough to be worth a log line (20% of pace or cap, a pause)."""
    if bool(a.paused_until) != bool(b.paused_until) or (a.pace is None) != (b.pace is None):
        return True
    if a.pace is not None and b.pace is not None and abs(a.pace - b.pace) > 0.2 * a.pace:
        return True
    return abs(a.cap - b.cap) > max(1, a.cap // 5)
