"""The new control logic plugged into today's ``asyncvox.Client``, for the benchmark only.

Not a benchmark itself, and not how asyncvox will integrate it (that is the governor's
job, in the package): a facade with the interface ``Client`` uses of its private
``_governor`` (``try_acquire``, ``acquire``, ``release``, ``on_success``, ``on_throttle``,
``limit``, ``cap``, ``in_flight``, ``budget``) over :class:`asyncvox._control.Controller`,
so the real servers can measure the controller before the integration:

    client = asyncvox.Client(key, base, concurrency=64)
    install(client)                  # before the first request

What today's request path does not tell a governor, this cannot know: a 503 with
``Retry-After`` reaches it as a failure (not a throttle), and a request's outcome is
matched to its start through the task that runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from asyncvox._governor import RetryBudget

from asyncvox._control import Controller

__all__ = ["ControlGovernor", "install"]


class ControlGovernor:
    """``Client._governor``'s interface over a :class:`Controller` (see the module docstring)."""

    def __init__(
        self, concurrency: int, *, rate_limit: float | None = None, budget: RetryBudget | None = None
    ) -> None:
        self.ctl = Controller(concurrency, rate_limit=rate_limit)
        self.budget = budget if budget is not None else RetryBudget()
        # Today's client calls on_success only while limit < cap: keep it below.
        self.cap = concurrency + 1
        self.peak_in_flight = 0
        self.throttled = 0
        self._waiters: deque[asyncio.Future[tuple[int, float]]] = deque()
        self._started: dict[asyncio.Task[Any] | None, tuple[int, float]] = {}
        self._ended: dict[asyncio.Task[Any] | None, tuple[int, float, float]] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def limit(self) -> int:
        return self.ctl.cap

    @property
    def in_flight(self) -> int:
        return self.ctl.in_flight

    def try_acquire(self) -> bool:
        ctl = self.ctl
        if ctl.free and ctl.in_flight < ctl.cap and not self._waiters:
            now = asyncio.get_running_loop().time()
            self._started[asyncio.current_task()] = (ctl.on_start(now), now)
            self.peak_in_flight = max(self.peak_in_flight, ctl.in_flight)
            return True
        return False

    async def acquire(self, call_id: str | None = None, deadline: float | None = None) -> None:
        fut: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._pump()
        try:
            start = await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.ctl.in_flight -= 1  # started for us, never sent
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise
        self._started[asyncio.current_task()] = start

    def release(self) -> None:
        task = asyncio.current_task()
        ticket, started = self._started.pop(task)
        now = asyncio.get_running_loop().time()
        self._ended[task] = (ticket, now - started, now)
        # Neither on_success nor on_throttle in this same step: a failure (or a 404).
        asyncio.get_running_loop().call_soon(self._settle, task)

    def on_success(self) -> None:
        ended = self._ended.pop(asyncio.current_task(), None)
        if ended is not None:
            ticket, latency, now = ended
            self.ctl.on_success(now, latency, ticket)
            self._pump()

    def on_throttle(self, retry_after: float | None) -> None:
        self.throttled += 1
        ended = self._ended.pop(asyncio.current_task(), None)
        if ended is not None:
            ticket, latency, now = ended
            self.ctl.on_throttle(now, latency, ticket, retry_after, 429)
            self._pump()

    def _settle(self, task: asyncio.Task[Any] | None) -> None:
        ended = self._ended.pop(task, None)
        if ended is not None:
            ticket, latency, now = ended
            self.ctl.on_failure(now, latency, ticket, "error")
        self._pump()

    def _pump(self) -> None:
        """Start waiters, in order, as the controller allows; come back when it says."""
        loop = asyncio.get_running_loop()
        ctl = self.ctl
        while self._waiters and ctl.in_flight < ctl.cap:
            now = loop.time()
            wait = ctl.may_start(now)
            if wait > 0:
                if self._timer is None or self._timer.when() > now + wait:
                    if self._timer is not None:
                        self._timer.cancel()
                    self._timer = loop.call_at(now + wait, self._wake)
                return
            fut = self._waiters.popleft()
            if fut.done():
                continue
            fut.set_result((ctl.on_start(now), now))
            self.peak_in_flight = max(self.peak_in_flight, ctl.in_flight)

    def _wake(self) -> None:
        self._timer = None
        self._pump()


def install(client: Any) -> ControlGovernor:
    """Replace ``client``'s governor (before its first request) by the new control logic."""
    old = client._governor
    governor = ControlGovernor(old.cap, rate_limit=client.rate_limit, budget=old.budget)
    client._governor = governor
    return governor
