"""Waiting for calls to be analysed: when to poll again, and when a call is ready.

The server answers its own 404 until a call's analysis is done (and may show it as
``queued`` / ``in_progress`` / ``analyzing`` before that). Waiting is polling with a
growing, jittered interval; every poll is an ordinary request through the client's
governor, so a 429 slows all polling, and nothing holds a task per id: pending ids sit in
one :class:`PollSchedule` (a heap) that the batch's fixed workers serve.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ._decode import CallSlice, decode_found
from .errors import APITimeoutError, CallNotReadyError, ConfigurationError, DecodeError
from .models import Call
from .outcomes import BatchStats, FetchOutcome
from .request import Fetched

__all__ = ["NOT_READY_STATUSES", "PollPolicy", "PollSchedule", "Waiting", "is_ready"]

#: Statuses of a call whose analysis is not finished (the server's own schema).
NOT_READY_STATUSES = frozenset({"queued", "in_progress", "analyzing"})

#: ``ready(call)``: whether a found call is what the caller is waiting for.
ReadyPredicate = Callable[[Call], bool]


def is_ready(call: Call) -> bool:
    """The default readiness: found, with a status other than queued / in progress / analyzing."""
    return call.status not in NOT_READY_STATUSES


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often a pending call is asked for again.

    The n-th wait is ``first * factor ** (n - 1)``, capped at ``cap``, each scaled by a
    random factor in ``[1 - jitter, 1 + jitter]`` so that ids uploaded together spread
    out. A server that says when to ask again (``Retry-After`` or ``X-Poll-Interval`` on
    its 404) is obeyed instead (a last poll still happens when the wait ends). The
    testing switch does not shorten polls:
    how long to wait is the caller's choice (pass a small policy in tests).
    """

    first: float = 1.0
    factor: float = 1.5
    cap: float = 15.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not self.first > 0 or not self.cap >= self.first:
            raise ConfigurationError(
                f"PollPolicy needs first > 0 and cap >= first, got first={self.first!r} cap={self.cap!r}"
            )
        if not self.factor >= 1:
            raise ConfigurationError(f"PollPolicy factor must be >= 1, got {self.factor!r}")
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(f"PollPolicy jitter must be within [0, 1), got {self.jitter!r}")

    def delay(self, polls: int, hint: float | None = None) -> float:
        """Seconds before poll number ``polls + 1``, given ``polls`` made so far."""
        if hint is not None:
            return hint  # the server knows best; the wait's own end still bounds it
        base = min(self.cap, self.first * self.factor ** max(0, polls - 1))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


def check_wait(wait: float | None) -> None:
    """Raise :class:`ConfigurationError` unless ``wait`` is ``None`` or seconds > 0."""
    # A bool is an int: wait=True would be a one-second wait, not "wait with a default".
    if wait is not None and not (isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0):
        raise ConfigurationError(f"wait must be seconds > 0 (or None for no waiting), got {wait!r}")


class _StatusOnly(msgspec.Struct):
    status: Any = None


_status_decoder = msgspec.json.Decoder(_StatusOnly)


def peek_status(found: CallSlice) -> str | None:
    """The call's ``status`` without decoding the rest (a fraction of a full decode)."""
    try:
        status = _status_decoder.decode(found.call).status
    except msgspec.ValidationError:
        return None  # not a call object: the full decode reports it, with its bytes
    except (msgspec.DecodeError, RecursionError):
        # Nested too deep for msgspec somewhere, even where it skips; a lone surrogate
        # escape (refused even where msgspec skips); a quick split's slice that is not one
        # value (a key between the call and the url): the full decode reads all of them.
        # Not None here: a queued call would pass for ready.
        try:
            status = decode_found(found, None).status
        except DecodeError:
            return None
    return status if isinstance(status, str) else None


class Pending(msgspec.Struct, gc=False):
    """One id being waited for."""

    call_id: str
    started: float
    deadline: float
    polls: int = 0
    found: bool = False
    last_status: str | None = None
    #: When to poll next (set by :meth:`Waiting.judge` when the answer was "not yet").
    due: float = 0.0


class PollSchedule:
    """The ids waiting for their next poll, earliest first, and a signal for workers.

    Workers take due ids (:meth:`pop_due`) and, with nothing due, wait for the earliest
    due time or a change (:meth:`wait`): an id scheduled, a poll finished, input ended.
    """

    def __init__(self, stats: BatchStats | None = None) -> None:
        self._heap: list[tuple[float, int, Pending]] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        #: Polls being made right now (they may put their id back).
        self.active = 0
        self._stats = stats

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, pending: Pending) -> None:
        """Schedule ``pending``'s next poll at ``pending.due`` (a :func:`time.monotonic` time)."""
        heapq.heappush(self._heap, (pending.due, next(self._seq), pending))
        self.notify()

    def pop_due(self, now: float) -> Pending | None:
        """The earliest id whose poll is due, or ``None``."""
        heap = self._heap
        if heap and heap[0][0] <= now:
            return heapq.heappop(heap)[2]
        return None

    def notify(self) -> None:
        """Wake every waiting worker to look again."""
        if self._stats is not None:
            self._stats.pending = len(self._heap) + self.active
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, now: float) -> None:
        """Until the earliest poll is due or something changes."""
        changed = self._changed
        timeout = self._heap[0][0] - now if self._heap else None
        try:
            async with asyncio.timeout(timeout):
                await changed.wait()
        except TimeoutError:
            pass


class Waiting:
    """What waiting means for one batch or call: how long, what is ready, how often to poll."""

    def __init__(self, wait: float, ready: ReadyPredicate | None, poll: PollPolicy) -> None:
        self.wait = wait
        self.ready = ready
        self.poll = poll

    def start(self, call_id: str, now: float) -> Pending:
        """A new id: its wait starts now."""
        return Pending(call_id, now, now + self.wait)

    @staticmethod
    def poll_timeout(pending: Pending, now: float, client_total: float | None) -> float:
        """A poll's ``total_timeout``: the client's, cut to what is left of the id's wait, so
        a server that stalls cannot hold a wait (``wait_for_call(timeout=10)``) past its end."""
        left = max(pending.deadline - now, 0.001)
        return left if client_total is None or left < client_total else client_total

    def judge(self, pending: Pending, fetched: Fetched, now: float) -> Fetched | FetchOutcome | None:
        """What one poll means: the id's result (done), or ``None``: not yet, poll again
        at ``pending.due``.

        The API's own 404 and a found call that is not ready yet are "not yet"; any
        other result (an error after retries, a wrong URL, a bad key) ends the wait with
        its own meaning. A wait that runs out ends with :class:`CallNotReadyError`.
        """
        pending.polls += 1
        if fetched.error is not None:
            if isinstance(fetched.error, APITimeoutError) and now >= pending.deadline:
                # The poll ran into the wait's end (its time was cut to it): the wait ran
                # out, as it would have with the poll answered "not yet".
                return self.expired(pending, now, fetched.attempts)
            return fetched
        found = fetched.found
        if found is not None:
            pending.found = True
            if self.ready is None:
                status = peek_status(found)
                pending.last_status = status
                if status not in NOT_READY_STATUSES:
                    return fetched  # decoded later, in the consumer's task, as always
            else:
                outcome = fetched.outcome()
                if outcome.call is None:
                    return outcome  # not decodable: its DecodeError, bytes kept
                pending.last_status = outcome.call.status
                if self.ready(outcome.call):
                    return outcome
        if now >= pending.deadline:
            return self.expired(pending, now, fetched.attempts)
        delay = self.poll.delay(pending.polls, fetched.poll_after)
        pending.due = min(now + delay, pending.deadline)
        return None

    @staticmethod
    def expired(pending: Pending, now: float, attempts: int) -> FetchOutcome:
        """The outcome of an id whose wait ran out."""
        error = CallNotReadyError(
            call_id=pending.call_id,
            last_status=pending.last_status,
            found=pending.found,
            waited=now - pending.started,
            polls=pending.polls,
        )
        return FetchOutcome(pending.call_id, None, error, attempts)


async def wait_for_one(
    fetch: Callable[..., Awaitable[Fetched]],
    call_id: str,
    waiting: Waiting,
    client_total: float | None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> FetchOutcome:
    """Poll one id until it is ready, fails, or its wait runs out (``wait_for_call``).

    ``fetch`` is the requester's fetch for one id; the waits are ``sleep``s in the
    caller's task, so cancelling it stops polling at once (and the client's ``sleep``,
    the governor's, ends at its close).
    """
    pending = waiting.start(call_id, time.monotonic())
    while True:
        limit = waiting.poll_timeout(pending, time.monotonic(), client_total)
        fetched = await fetch(call_id, total_timeout=limit)
        result = waiting.judge(pending, fetched, time.monotonic())
        if result is not None:
            return result.outcome() if isinstance(result, Fetched) else result
        await sleep(max(0.0, pending.due - time.monotonic()))
