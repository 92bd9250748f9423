"""One call id's request path, strictly downward (after httpx's ``send`` ->
``_send_single_request`` -> transport):

    Requester.fetch            the call's deadline; the fast path; hands over to ...
      Requester._retry         ... tenacity, only after a first attempt failed
        Requester._attempt     a governor slot, one transport GET, the answer mapped:
          transport.get        -> Response
          split_body           -> CallSlice (200), None (the API's own 404), or an error

The result is a :class:`Fetched`: the call still undecoded, so that bulk workers can hand
it over cheaply; :meth:`Fetched.outcome` decodes it into a :class:`FetchOutcome` (in bulk,
in the consumer's task right before it is yielded). The success path allocates nothing
beyond the transport's answer and these two small records.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlsplit

import msgspec

from ._decode import CallSlice, decode_found, split_body
from .errors import (
    APIConnectionError,
    APITimeoutError,
    AsyncvoxError,
    DecodeError,
    InvalidCallIdError,
    RateLimitError,
    ResponseTooLargeError,
    is_api_not_found,
    parse_retry_after,
    status_error,
)
from .limits import Governor
from .outcomes import BatchStats, FetchOutcome
from .retry import RetryPolicy
from .transport import Transport

__all__ = [
    "USE_CLIENT_DEFAULT",
    "Fetched",
    "Requester",
    "UseClientDefault",
    "call_id_problem",
    "check_call_id",
]

#: An id made only of what ``quote(id, safe="")`` leaves alone (RFC 3986's unreserved
#: characters): the usual id, put in the URL as it is without quote's encode and decode.
_unreserved = re.compile(r"[A-Za-z0-9._~-]+").fullmatch


class UseClientDefault:
    """The type of :data:`USE_CLIENT_DEFAULT` (after httpx's sentinel of the same name)."""

    _instance: UseClientDefault | None = None

    def __new__(cls) -> UseClientDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"

    def __reduce__(self) -> str:
        return "USE_CLIENT_DEFAULT"


#: "Use the client's setting" for a per-call override (``total_timeout``,
#: ``max_retries``), so that ``None`` can keep its own meaning (no limit).
USE_CLIENT_DEFAULT: Final = UseClientDefault()


def call_id_problem(call_id: object) -> str | None:
    """Why ``call_id`` cannot be sent, or ``None`` when it can."""
    if not isinstance(call_id, str):
        return f"call id must be a str, got {type(call_id).__name__}: {call_id!r:.80}"
    if not call_id:
        return "call id must not be empty"
    if not call_id.isascii():
        try:
            call_id.encode()
        except UnicodeEncodeError:
            return f"call id is not valid Unicode (a lone surrogate?): {call_id!r:.80}"
    return None


def check_call_id(call_id: object) -> str:
    """Return ``call_id`` if it can be sent, else raise :class:`InvalidCallIdError`."""
    problem = call_id_problem(call_id)
    if problem is not None:
        raise InvalidCallIdError(problem)
    assert isinstance(call_id, str)
    return call_id


class Fetched(msgspec.Struct):
    """One id's result before its call is decoded.

    Attributes:
        call_id: the id as given.
        attempts: requests sent for it (0: never sent).
        error: why it failed, or ``None``.
        found: where the call is in the body; ``None`` when not found or failed.
        poll_after: for the API's own 404, the seconds the server asked to wait before
            asking again (``Retry-After`` or ``X-Poll-Interval``), if it said.
    """

    call_id: str
    attempts: int
    error: AsyncvoxError | None = None
    found: CallSlice | None = None
    poll_after: float | None = None

    def outcome(self) -> FetchOutcome:
        """Decode the call (if any) into this id's :class:`FetchOutcome`."""
        found = self.found
        if found is None:
            return FetchOutcome(self.call_id, None, self.error, self.attempts)
        try:
            call = decode_found(found, self.call_id)
        except DecodeError as exc:
            return FetchOutcome(self.call_id, None, exc, self.attempts)
        return FetchOutcome(self.call_id, call, None, self.attempts, bytes(found.call), found.dashboard_url)


def _retry_cause(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status is not None:
        return str(status)
    if isinstance(exc, APITimeoutError):
        return "timeout"
    return "connection"


class NotYet(msgspec.Struct, gc=False):
    """The API's own 404 that came with a hint of when to ask again."""

    poll_after: float


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]``, its case ignored: aiohttp's mapping ignores it, but a custom
    transport's plain dict may hold ``retry-after`` (httpx and HTTP/2 write names so)."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def _poll_hint(headers: Mapping[str, str] | None) -> NotYet | None:
    if not headers:
        return None
    seconds = parse_retry_after(_header(headers, "Retry-After"))
    if seconds is None:
        seconds = parse_retry_after(_header(headers, "X-Poll-Interval"))
    return NotYet(seconds) if seconds is not None else None


class Requester:
    """Fetches one call id at a time over a transport, under a governor and a retry policy.

    One per :class:`~asyncvox.Client`, shared by its single calls and all its batches.

    Args:
        transport: sends the GETs.
        base_url: the API's base URL, without a trailing slash.
        governor: the client's shared limits.
        policy: the retry policy.
        attempt_seconds: the per-attempt timeout (an attempt starting closer than this to
            the call's deadline is cut short at the deadline).
        total_timeout: the client's default for one call's whole time (``None``: none).
        secret: the api key's bytes, blanked out of any error body that echoes it.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        base_url: str,
        governor: Governor,
        policy: RetryPolicy,
        attempt_seconds: float,
        total_timeout: float | None,
        secret: bytes,
    ) -> None:
        self.transport = transport
        self.governor = governor
        self.policy = policy
        self.total_timeout = total_timeout
        self._calls_prefix = base_url + "/calls/"
        self._calls_path = urlsplit(self._calls_prefix).path
        self._attempt_seconds = attempt_seconds
        self._secret = secret

    async def fetch(
        self,
        call_id: str,
        stats: BatchStats | None = None,
        *,
        max_retries: int | UseClientDefault = USE_CLIENT_DEFAULT,
        total_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Fetched:
        """Fetch one (valid, see :func:`check_call_id`) id: never raises an asyncvox error."""
        url = self._calls_prefix + (call_id if _unreserved(call_id) else quote(call_id, safe=""))
        limit = self.total_timeout if isinstance(total_timeout, UseClientDefault) else total_timeout
        deadline = time.monotonic() + limit if limit is not None else None
        self.governor.budget.first_attempts += 1
        try:
            found = await self._attempt(call_id, url, stats, deadline)
        except AsyncvoxError as exc:
            retries = self.policy.max_retries if isinstance(max_retries, UseClientDefault) else max_retries
            return await self._retry(call_id, url, exc, stats, retries, deadline)
        if isinstance(found, NotYet):
            return Fetched(call_id, 1, None, None, found.poll_after)
        return Fetched(call_id, 1, None, found)

    async def _attempt(
        self, call_id: str, url: str, stats: BatchStats | None, deadline: float | None
    ) -> CallSlice | NotYet | None:
        """Send one request: the call's slice, ``None`` (or :class:`NotYet`, when the server
        said when to ask again) for the API's not found, or raise."""
        gov = self.governor
        started = time.monotonic()
        ticket = gov.try_start(started)
        if ticket < 0:
            ticket = await gov.start(call_id, deadline)
            started = time.monotonic()
        timeout = None
        if deadline is not None:
            left = deadline - started
            if left < self._attempt_seconds:  # the call's last attempt ends at its deadline
                if left <= 0:
                    gov.abandoned(ticket)
                    raise APITimeoutError("total_timeout ran out", call_id=call_id, sent=False)
                timeout = left
        if stats is not None:
            stats.requests += 1
        try:
            resp = await self.transport.get(url, timeout)
        except APIConnectionError as exc:
            kind = "timeout" if isinstance(exc, APITimeoutError) else "connection"
            gov.failed(ticket, started, time.monotonic(), kind)
            exc.call_id = call_id
            raise
        except ResponseTooLargeError as exc:
            gov.succeeded(ticket, started, time.monotonic())  # answered: nothing about load
            if stats is not None:
                stats.statuses[200] += 1  # an answer, though not read
            exc.call_id = call_id
            raise
        except BaseException:
            gov.abandoned(ticket)  # cancelled, or closed under us: says nothing of the server
            raise
        status = resp.status
        body = resp.body
        if stats is not None:
            stats.statuses[status] += 1
            stats.bytes_received += len(body)
        if status == 200:
            gov.succeeded(ticket, started, time.monotonic())
            return split_body(body, call_id)
        headers = resp.headers
        if status == 404 and is_api_not_found(body):
            gov.succeeded(ticket, started, time.monotonic())
            return _poll_hint(headers)
        error = status_error(
            status,
            body,
            call_id,
            # Still percent-encoded: an id's CR/LF never reaches a message or a log line.
            path=self._calls_path + url[len(self._calls_prefix) :],
            retry_after=_header(headers, "Retry-After") if headers is not None else None,
            secret=self._secret,
            cut=resp.cut,
        )
        ended = time.monotonic()
        if status == 429 or (status == 503 and error.retry_after is not None):
            gov.throttled_by(ticket, started, ended, error.retry_after, status)
        elif status >= 500:
            gov.failed(ticket, started, ended, str(status))
        else:
            gov.succeeded(ticket, started, ended)  # answered: nothing about load
        raise error

    async def _retry(
        self,
        call_id: str,
        url: str,
        first: AsyncvoxError,
        stats: BatchStats | None,
        retries: int,
        deadline: float | None,
    ) -> Fetched:
        """The slow path: tenacity drives attempts 2..n after a first failure."""
        policy = self.policy
        if retries == 0 or not policy.should_retry(first):
            return Fetched(call_id, int(first.sent), first)
        retrying = policy.retrying(
            call_id=call_id,
            max_retries=retries,
            deadline=deadline,
            allow_retry=self._allow_retry,
            # The governor's sleep: closing the client ends a retry's wait at once.
            sleep=lambda seconds: self.governor.sleep(seconds, call_id),
        )
        attempts = 0
        last: AsyncvoxError = first
        found: CallSlice | NotYet | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number == 1:
                        # Attempt 1 already happened on the fast path: replay its failure
                        # so tenacity's counts and waits match the requests really sent.
                        attempts = int(first.sent)
                        raise first
                    attempts += 1
                    if stats is not None:
                        stats.retries += 1
                        stats.retries_by_cause[_retry_cause(last)] += 1
                    try:
                        found = await self._attempt(call_id, url, stats, deadline)
                    except AsyncvoxError as exc:
                        last = exc
                        if not exc.sent:
                            attempts -= 1
                        raise
        except AsyncvoxError as exc:
            return Fetched(call_id, attempts, exc)
        if isinstance(found, NotYet):
            return Fetched(call_id, attempts, None, None, found.poll_after)
        return Fetched(call_id, attempts, None, found)

    def _allow_retry(self, exc: BaseException) -> bool:
        # Throttling is the governor's job (pause + smaller limit); the budget is for outages.
        if isinstance(exc, RateLimitError):
            return True
        return self.governor.budget.try_withdraw()
