"""The retry policy: what is transient, how long to wait, when to give up; and the
:class:`RetryBudget` that bounds how many retries a client makes in all.

Built on tenacity and kept visible: :meth:`RetryPolicy.retrying` returns a plain
:class:`tenacity.AsyncRetrying` that a caller can inspect or copy. The client only enters
it after a first attempt has failed, so the success path pays nothing for retries.

The testing switch that zeroes every wait is :func:`asyncvox.set_testing`; the old names
here (``asyncvox.retry.set_testing`` / ``testing``) still work for one release and warn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_any
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from . import _testmode
from .errors import (
    APIConnectionError,
    APIStatusError,
    ConfigurationError,
    RateLimitError,
)

__all__ = [
    "TRANSIENT_STATUSES",
    "RetryBudget",
    "RetryPolicy",
    "is_testing",
    "is_transient",
    "set_testing",
    "testing",
]

logger = logging.getLogger("asyncvox")

#: HTTP statuses worth another attempt: the server is throttling or briefly failing.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def set_testing(on: bool) -> None:
    """Deprecated: use :func:`asyncvox.set_testing`."""
    warnings.warn(
        "asyncvox.retry.set_testing is deprecated; use asyncvox.set_testing",
        DeprecationWarning,
        stacklevel=2,
    )
    _testmode.set_testing(on)


def is_testing() -> bool:
    """Whether :func:`asyncvox.set_testing` is on."""
    return _testmode.is_testing()


@contextlib.contextmanager
def testing(on: bool = True) -> Iterator[None]:
    """Deprecated: use ``with asyncvox.set_testing(True):``."""
    warnings.warn(
        "asyncvox.retry.testing() is deprecated; use `with asyncvox.set_testing(True):`",
        DeprecationWarning,
        stacklevel=3,
    )
    with _testmode.set_testing(on):
        yield


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth another attempt (never ``CancelledError``)."""
    if isinstance(exc, APIStatusError):
        return exc.status in TRANSIENT_STATUSES
    return isinstance(exc, APIConnectionError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How asyncvox retries transient failures.

    Args:
        max_retries: retries after the first attempt (``0`` disables retrying).
        initial_wait: the first backoff, in seconds; each next one doubles.
        max_wait: the longest single backoff, in seconds.
        jitter: each backoff is scaled by a random factor in ``[1 - jitter, 1 + jitter]``
            so that many workers that failed together do not retry together.
        max_retry_after: the longest ``Retry-After`` honoured. A server asking for more
            gets a :class:`~asyncvox.RateLimitError` (with ``retry_after``) instead of a
            sleep; the same cap bounds the client-wide pause after a 429.
        deadline: deprecated, use ``Client(total_timeout=...)``: it is the same setting.
            Honoured (with a :class:`DeprecationWarning`) when the client's
            ``total_timeout`` is not given.

    >>> policy = RetryPolicy(max_retries=2, initial_wait=0.1)
    >>> policy.backoff(1) <= 0.1 * 1.25
    True
    """

    max_retries: int = 4
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    deadline: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.max_retries, int) and self.max_retries >= 0):
            raise ConfigurationError(f"RetryPolicy max_retries must be an int >= 0, got {self.max_retries!r}")
        for name in ("initial_wait", "max_wait", "max_retry_after"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigurationError(f"RetryPolicy {name} must be >= 0 seconds, got {value!r}")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"RetryPolicy jitter must be within [0, 1], got {self.jitter!r}")
        if self.deadline is not None:
            warnings.warn(
                "RetryPolicy(deadline=...) is deprecated; use Client(total_timeout=...) "
                "(or total_timeout= per call): it is the same setting",
                DeprecationWarning,
                stacklevel=3,
            )
            if not self.deadline > 0:
                raise ConfigurationError(f"RetryPolicy deadline must be > 0 or None, got {self.deadline!r}")

    def backoff(self, retry_number: int) -> float:
        """The computed wait before retry number ``retry_number`` (1-based), with jitter."""
        base: float = self.initial_wait * 2.0 ** (retry_number - 1)
        return min(self.max_wait, base * random.uniform(1 - self.jitter, 1 + self.jitter))

    def wait_for(self, exc: BaseException | None, retry_number: int) -> float:
        """The wait before the next retry: the server's ``Retry-After`` when it sent one."""
        if _testmode.is_testing():
            return 0.0
        retry_after = exc.retry_after if isinstance(exc, APIStatusError) else None
        # A 429 beyond the cap is not retried at all (should_retry); a 503's is just ignored.
        if retry_after is not None and (
            isinstance(exc, RateLimitError) or retry_after <= self.max_retry_after
        ):
            return float(retry_after)
        return self.backoff(retry_number)

    def should_retry(self, exc: BaseException) -> bool:
        """Whether ``exc`` is retried at all (before attempt limits and budgets)."""
        if not is_transient(exc):
            return False
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return exc.retry_after <= self.max_retry_after
        return True

    def retrying(
        self,
        *,
        call_id: str,
        max_retries: int | None = None,
        deadline: float | None = None,
        allow_retry: Callable[[BaseException], bool] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> AsyncRetrying:
        """A fresh :class:`tenacity.AsyncRetrying` for one call.

        ``deadline`` is an absolute :func:`time.monotonic` time; ``allow_retry`` is asked
        last, only for a retry that every other rule allows (the client's retry budget);
        ``sleep`` waits between attempts (default :func:`asyncio.sleep`).
        The last exception is re-raised when retrying stops.
        """
        retries = self.max_retries if max_retries is None else max_retries
        stops: list[stop_base] = [_StopAfterRetries(retries)]
        if deadline is not None:
            stops.append(_StopAtDeadline(deadline))
        if allow_retry is not None:
            stops.append(_StopUnless(allow_retry))
        return AsyncRetrying(
            retry=retry_if_exception(self.should_retry),
            stop=stop_any(*stops),
            wait=_Wait(self),
            sleep=sleep if sleep is not None else asyncio.sleep,
            before_sleep=_LogRetry(call_id),
            reraise=True,
        )


class _Wait(wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return self.policy.wait_for(exc, retry_state.attempt_number)


class _StopAfterRetries(stop_base):
    def __init__(self, retries: int) -> None:
        self.retries = retries

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.attempt_number > self.retries


class _StopAtDeadline(stop_base):
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return time.monotonic() + upcoming >= self.deadline


class _StopUnless(stop_base):
    def __init__(self, allow: Callable[[BaseException], bool]) -> None:
        self.allow = allow

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return exc is not None and not self.allow(exc)


class _LogRetry:
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id

    def __call__(self, retry_state: RetryCallState) -> None:
        if not logger.isEnabledFor(logging.WARNING):
            return
        outcome = retry_state.outcome
        exc: Any = outcome.exception() if outcome is not None else None
        status = getattr(exc, "status", None)
        logger.warning(
            "retrying call_id=%r after attempt %d (%s%s); waiting %.2f s",
            self.call_id,
            retry_state.attempt_number,
            type(exc).__name__,
            f" {status}" if status is not None else "",
            retry_state.upcoming_sleep,
        )


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
