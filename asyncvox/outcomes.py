"""What a fetch produces: one :class:`FetchOutcome` per id, and :class:`BatchStats`."""

from __future__ import annotations

import time
import warnings
from collections import Counter
from typing import Any

import msgspec

from .errors import AsyncvoxError
from .limits import Governor, GovernorState
from .models import Call

__all__ = ["BatchStats", "FetchOutcome"]


class FetchOutcome(msgspec.Struct, frozen=True):
    """The result of fetching one call id. Never raised, always returned.

    * found: ``call`` is set, ``raw`` holds the call object's bytes as the server sent them;
    * not found: ``call``, ``error`` and ``raw`` are ``None``;
    * failed: ``error`` says why (after ``attempts`` requests); ``call`` is ``None``.

    >>> outcome = FetchOutcome(call_id="abc", call=None, error=None, attempts=1)
    >>> outcome.found, outcome.ok
    (False, True)
    """

    call_id: str
    call: Call | None
    error: AsyncvoxError | None
    #: Requests sent for this id, the first one included (0: never sent, e.g. a bad id).
    attempts: int
    #: The call object's JSON exactly as the server sent it; ``None`` unless found.
    raw: bytes | None = None
    #: The call's dashboard link from the response envelope.
    dashboard_url: str | None = None

    @property
    def url(self) -> str | None:
        """Deprecated: the dashboard link is :attr:`dashboard_url`."""
        warnings.warn(
            "FetchOutcome.url is deprecated; use FetchOutcome.dashboard_url", DeprecationWarning, stacklevel=2
        )
        return self.dashboard_url

    @property
    def found(self) -> bool:
        """A call came back."""
        return self.call is not None

    @property
    def ok(self) -> bool:
        """No error: the call was found or reported not found."""
        return self.error is None

    def __repr__(self) -> str:
        state = "found" if self.call is not None else ("not found" if self.error is None else "failed")
        extra = f", error={self.error!r}" if self.error is not None else ""
        return f"FetchOutcome(call_id={self.call_id!r}, {state}, attempts={self.attempts}{extra})"


class BatchStats:
    """Live counters of one batch (``iter_calls``/``fetch_calls``), safe to read at any time.

    Read them from a progress bar, a metrics exporter or a log line while the batch runs;
    :meth:`summary` gives the final figures as a plain dict.

    Attributes:
        total: how many ids the input holds, when it has a ``len()``; else ``None``.
        done / found / missing / failed: outcomes produced so far, by kind.
        duplicates: ids skipped because they were seen before.
        requests: HTTP requests sent (first attempts and retries).
        retries: requests that were retries; ``retries_by_cause`` splits them by cause.
        statuses: responses received, by HTTP status.
        bytes_received: body bytes received.
        pending: ids still waiting to be ready (``iter_calls(wait=...)``; else 0).
    """

    __slots__ = (
        "_governor",
        "bytes_received",
        "done",
        "duplicates",
        "failed",
        "found",
        "missing",
        "pending",
        "requests",
        "retries",
        "retries_by_cause",
        "started",
        "statuses",
        "stopped",
        "total",
    )

    def __init__(self, total: int | None = None, governor: Governor | None = None) -> None:
        self.total = total
        self.done = 0
        self.found = 0
        self.missing = 0
        self.failed = 0
        self.duplicates = 0
        self.requests = 0
        self.retries = 0
        self.retries_by_cause: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.bytes_received = 0
        self.pending = 0
        self.started = time.monotonic()
        self.stopped: float | None = None
        self._governor = governor

    @property
    def in_flight(self) -> int:
        """Requests in flight on the client right now (all batches)."""
        return self._governor.in_flight if self._governor is not None else 0

    @property
    def limit(self) -> int:
        """The client's in-flight cap in force (slow start, then learned)."""
        return self._governor.limit if self._governor is not None else 0

    @property
    def governor(self) -> GovernorState | None:
        """What the client's governor knows now: learned rate, pace, cap, pause, last throttle."""
        return self._governor.state if self._governor is not None else None

    @property
    def elapsed(self) -> float:
        """Seconds since the batch started (until it stopped)."""
        end = self.stopped if self.stopped is not None else time.monotonic()
        return end - self.started

    def record(self, outcome: FetchOutcome) -> None:
        """Count one outcome."""
        self.done += 1
        if outcome.call is not None:
            self.found += 1
        elif outcome.error is None:
            self.missing += 1
        else:
            self.failed += 1

    def summary(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict."""
        elapsed = self.elapsed
        return {
            "total": self.total,
            "done": self.done,
            "found": self.found,
            "missing": self.missing,
            "failed": self.failed,
            "duplicates": self.duplicates,
            "pending": self.pending,
            "requests": self.requests,
            "retries": self.retries,
            "retries_by_cause": dict(self.retries_by_cause),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "bytes_received": self.bytes_received,
            "elapsed_s": round(elapsed, 3),
            "calls_per_s": round(self.done / elapsed, 1) if elapsed > 0 else None,
            "governor": self._governor_summary(),
        }

    def _governor_summary(self) -> dict[str, Any] | None:
        state = self.governor
        if state is None:
            return None
        return {
            "learned_rate_per_s": round(state.rate, 2) if state.rate is not None else None,
            "pace_per_s": round(state.pace, 2) if state.pace is not None else None,
            "in_flight_cap": state.cap,
            "throttles": state.throttles,
            "last_throttle_reason": state.last_throttle_reason,
        }

    def __repr__(self) -> str:
        total = "?" if self.total is None else self.total
        return (
            f"BatchStats(done={self.done}/{total}, found={self.found}, missing={self.missing}, "
            f"failed={self.failed}, retries={self.retries}, in_flight={self.in_flight})"
        )
