"""Shared limits for every request a client sends.

One :class:`Governor` per client, consulted by every attempt (single calls and all
batches alike):

* an in-flight cap that shrinks by half when the server throttles (429) and grows back by
  one per window of successes (AIMD), never above the client's ``concurrency``;
* a client-wide pause: after a 429 no new request starts until its ``Retry-After`` has
  passed, so workers slow down together instead of hammering on their own schedules;
* an optional start rate (requests per second), spaced evenly (GCRA / virtual scheduling);
* a retry budget, so that retries cannot multiply the load of an outage.

The fast path (:meth:`Governor.try_acquire`) is a few attribute checks with no ``await``
and no allocation; the machinery only runs once the server pushes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from ._testmode import is_testing
from .errors import APITimeoutError, ConfigurationError, RateLimitError

__all__ = ["DEFAULT_THROTTLE_PAUSE", "Governor", "RetryBudget"]

#: Pause after a 429 that carried no ``Retry-After``.
DEFAULT_THROTTLE_PAUSE = 1.0


class RetryBudget:
    """Retries allowed as a fraction of recent first attempts, plus a small reserve.

    Like Finagle's ``RetryBudget`` and gRPC's retry throttling: every first attempt
    deposits ``ratio`` of a token (up to ``max_balance``), every retry withdraws one; a
    reserve refilled at ``min_per_second`` (up to that many tokens) keeps a small batch, or
    the tail of a large one, from being starved.

    Defaults: ``ratio=0.5`` means a server failing every request sees about 1.5x the first
    attempts (plus the reserve), while a batch in which a fifth of the ids fail once or
    twice (0.2-0.4 retries per first attempt) never runs dry. 429s do not draw on it:
    throttling is handled by the governor's pause and in-flight limit.
    """

    __slots__ = (
        "_balance",
        "_credited",
        "_reserve",
        "_stamp",
        "first_attempts",
        "max_balance",
        "min_per_second",
        "ratio",
        "refused",
    )

    def __init__(self, ratio: float = 0.5, min_per_second: float = 10.0, max_balance: float = 100.0) -> None:
        settings = {"ratio": ratio, "min_per_second": min_per_second, "max_balance": max_balance}
        for name, value in settings.items():
            if not value >= 0:
                raise ConfigurationError(f"RetryBudget {name} must be >= 0, got {value!r}")
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.max_balance = max_balance
        #: Incremented by the request path on every first attempt (a bare ``+= 1``).
        self.first_attempts = 0
        self._credited = 0
        self._balance = 0.0
        self._reserve = min_per_second
        self._stamp = time.monotonic()
        #: Retries refused because the budget was empty.
        self.refused = 0

    def try_withdraw(self) -> bool:
        """Take one retry from the budget; ``False`` when it is empty."""
        new = self.first_attempts - self._credited
        if new:
            self._credited = self.first_attempts
            self._balance = min(self.max_balance, self._balance + new * self.ratio)
        now = time.monotonic()
        self._reserve = min(self.min_per_second, self._reserve + (now - self._stamp) * self.min_per_second)
        self._stamp = now
        if self._balance >= 1.0:
            self._balance -= 1.0
            return True
        if self._reserve >= 1.0:
            self._reserve -= 1.0
            return True
        self.refused += 1
        return False


class Governor:
    """In-flight cap (AIMD), client-wide 429 pause and optional start rate for one client."""

    def __init__(
        self,
        concurrency: int,
        *,
        rate_limit: float | None = None,
        max_pause: float = 60.0,
        budget: RetryBudget | None = None,
    ) -> None:
        self.cap = concurrency
        #: The current in-flight limit (between 1 and ``cap``).
        self.limit = concurrency
        self.in_flight = 0
        #: The most requests that were ever in flight at once.
        self.peak_in_flight = 0
        self.throttled = 0
        self.budget = budget if budget is not None else RetryBudget()
        self.max_pause = max_pause
        self._interval = 1.0 / rate_limit if rate_limit else 0.0
        self._next_start = 0.0
        self._pause_until = 0.0
        self._decrease_guard = 0.0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._resume_handle: asyncio.TimerHandle | None = None
        # True while nothing but the in-flight count can hold a request back.
        self._simple = not self._interval

    def try_acquire(self) -> bool:
        """Take a slot without waiting, if nothing holds requests back right now."""
        if self._simple and self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            if self.in_flight > self.peak_in_flight:
                self.peak_in_flight = self.in_flight
            return True
        return False

    @property
    def paused_for(self) -> float:
        """Seconds until new requests may start again after a 429 (0.0 when not paused)."""
        if not self._pause_until:
            return 0.0
        return max(0.0, self._pause_until - asyncio.get_running_loop().time())

    async def acquire(self, call_id: str | None = None, deadline: float | None = None) -> None:
        """Wait for a slot (the slow path): behind the pause, the in-flight limit and the queue.

        Waiters are served in order; a slot is handed over by whoever frees it
        (:meth:`release`, the end of a pause, a higher limit), already counted in
        ``in_flight``. ``deadline`` (a :func:`time.monotonic` time) bounds the wait: a
        pause that would outlast it raises :class:`~asyncvox.RateLimitError` at once (with
        the pause left as ``retry_after``), a slot that does not free up in time
        :class:`~asyncvox.APITimeoutError`. Neither was sent: both carry ``sent = False``.
        """
        loop = asyncio.get_running_loop()
        if self._pause_until or self.in_flight >= self.limit or self._waiters:
            left = self._pause_until - loop.time()
            if deadline is not None and left > 0 and time.monotonic() + left > deadline:
                raise RateLimitError(
                    429,
                    f"the client is pausing {left:.2f} s after a 429, past this call's total_timeout",
                    call_id=call_id,
                    retry_after=left,
                    sent=False,
                )
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            try:
                if deadline is None:
                    await fut
                else:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await fut
            except BaseException as exc:
                if fut.done() and not fut.cancelled():
                    self.release()  # a slot was handed to us; we will not use it
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(fut)
                if isinstance(exc, TimeoutError):
                    raise APITimeoutError(
                        "no free request slot within total_timeout", call_id=call_id, sent=False
                    ) from None
                raise
        else:
            self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        if self._interval:
            now = loop.time()
            start = max(now, self._next_start)
            if start > now and deadline is not None and time.monotonic() + (start - now) > deadline:
                # Never sent: no reservation is taken, so nothing has to be given back.
                self.release()
                raise APITimeoutError(
                    f"rate_limit would start this call in {start - now:.2f} s, past its total_timeout",
                    call_id=call_id,
                    sent=False,
                )
            self._next_start = start + self._interval
            if start > now:
                try:
                    await asyncio.sleep(start - now)
                except BaseException:
                    # A call that never sends gives its start back, so the calls after it
                    # do not wait for a request that never happened.
                    self._next_start = max(loop.time(), self._next_start - self._interval)
                    self.release()
                    raise

    def release(self) -> None:
        """Give a slot back; hand it to the first waiter, if any."""
        self.in_flight -= 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        """Hand free slots to waiters, in order, unless a pause is on."""
        if self._pause_until:
            return
        waiters = self._waiters
        while waiters and self.in_flight < self.limit:
            fut = waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def on_success(self) -> None:
        """Additive increase: one more slot per ``limit`` successes, up to ``cap``."""
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self.limit += 1
            if self._waiters:
                self._wake()

    def on_throttle(self, retry_after: float | None) -> None:
        """A 429: pause new requests client-wide and halve the in-flight limit (once per pause)."""
        self.throttled += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        pause = DEFAULT_THROTTLE_PAUSE if retry_after is None else retry_after
        # The testing switch zeroes every wait: the limit still halves, nobody pauses.
        until = now + (0.0 if is_testing() else min(pause, self.max_pause))
        if until > now and until > self._pause_until:
            self._pause_until = until
            self._simple = False
            if self._resume_handle is not None:
                self._resume_handle.cancel()
            self._resume_handle = loop.call_at(until, self._resume)
        if now >= self._decrease_guard:
            self.limit = max(1, self.limit // 2)
            self._successes = 0
            self._decrease_guard = until

    def _resume(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pause_until > loop.time():
            # Some loops (uvloop) fire timers a little early: come back when it is really over.
            self._resume_handle = loop.call_at(self._pause_until, self._resume)
            return
        self._resume_handle = None
        self._pause_until = 0.0
        self._simple = not self._interval
        self._wake()
