"""The exception tree, and the mapping from an HTTP error response to an exception.

Every exception carries what a user needs to act on it (status, the server's ``error``
text, the call id) and never the api key: the key is not an input to anything here.
"""

from __future__ import annotations

import codecs
import email.utils
import functools
import re
import time
from typing import Any

import msgspec

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncvoxError",
    "AuthenticationError",
    "BadRequestError",
    "CallNotReadyError",
    "CertificateError",
    "ConfigurationError",
    "DecodeError",
    "EndpointNotFoundError",
    "InvalidCallIdError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ServerError",
]

#: How much of a body that is not the API's JSON goes into a message.
_EXCERPT_CHARS = 200
#: The most of an API error body's ``error`` text an exception's message carries.
_MESSAGE_CHARS = 1000


class AsyncvoxError(Exception):
    """Base of everything asyncvox raises."""

    #: ``False`` when the error arose before a request was sent (e.g. the call's
    #: ``total_timeout`` ran out while it waited for a slot or a client-wide pause).
    sent: bool = True


class ConfigurationError(AsyncvoxError, ValueError):
    """The client is misconfigured (no api key, bad ``base_url``, a bad setting) or used
    after close. Never retried; aborts a bulk fetch. Also a :class:`ValueError`, so code
    that caught the ``ValueError`` of a bad setting keeps working."""


class CertificateError(ConfigurationError):
    """The server's TLS certificate (or its hostname) could not be verified.

    Not transient: every id would fail the same way, so it is never retried and aborts a
    bulk fetch. Trust a private CA with ``SSL_CERT_FILE=/path/to/ca.pem`` (or pass an
    :class:`aiohttp.ClientSession` whose connector has your ``ssl`` context).
    """


class InvalidCallIdError(AsyncvoxError, ValueError):
    """A call id that cannot be sent: not a string, or empty. Raised before any request."""


class APIConnectionError(AsyncvoxError):
    """The request did not get an HTTP answer: could not connect, or the connection dropped.

    ``call_id`` names the call that was being fetched (set by the request path, since the
    transport that raised it does not know the id); ``str()`` includes it.
    """

    def __init__(self, message: str, *, call_id: str | None = None, sent: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.call_id = call_id
        self.sent = sent

    def __str__(self) -> str:
        if self.call_id is None:
            return self.message
        return f"{self.message} (call_id={self.call_id!r})"


class APITimeoutError(APIConnectionError):
    """One attempt took longer than the client's ``timeout``."""


class APIStatusError(AsyncvoxError):
    """The server answered with an error status.

    Attributes:
        status: the HTTP status code.
        message: the server's ``error`` text, or an excerpt of a body that is not JSON.
        call_id: the call id that was asked for.
        body: the response body as received (the api key blanked out if it was echoed).
        retry_after: seconds the server asked to wait (``Retry-After`` on a 429 or 503).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        call_id: str | None = None,
        body: bytes = b"",
        retry_after: float | None = None,
        sent: bool = True,
    ) -> None:
        self.sent = sent
        self.status = status
        self.message = message
        self.call_id = call_id
        self.body = body
        self.retry_after = retry_after
        super().__init__(status, message, call_id)

    def __str__(self) -> str:
        text = f"HTTP {self.status} for call_id={self.call_id!r}: {self.message}"
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g} s)"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, message={self.message!r}, call_id={self.call_id!r})"
        )

    def __reduce__(self) -> Any:
        return (_rebuild_status_error, (type(self), self.__dict__))


class AuthenticationError(APIStatusError):
    """401: the api key is missing or invalid. Never retried; aborts a bulk fetch."""


class PermissionDeniedError(APIStatusError):
    """403: the api key may not do this. Never retried; aborts a bulk fetch."""


class BadRequestError(APIStatusError):
    """400 or 422: the server rejected this request. Never retried."""


class EndpointNotFoundError(APIStatusError):
    """A 404 that is not the API's own "Call not found": the URL (usually ``base_url``) is wrong.

    Never retried and never turned into ``None``; aborts a bulk fetch.
    """


class RateLimitError(APIStatusError):
    """429: too many requests. Retried after ``retry_after`` seconds (when the server said).

    Raised to the caller when retries run out, or when the server asks for a longer pause
    than the client's ``max_retry_after`` allows.
    """


class ServerError(APIStatusError):
    """5xx: the server failed. 500, 502, 503 and 504 are retried with backoff.

    A 503's ``retry_after`` replaces the computed backoff when it is within the retry
    policy's ``max_retry_after``.
    """


class CallNotReadyError(AsyncvoxError):
    """A call's wait (``wait_for_call``, ``iter_calls(wait=...)``) ran out before it was ready.

    Attributes:
        call_id: the call waited for.
        last_status: the status of the last answer that found the call (``queued``,
            ``in_progress``, ``analyzing``, ...), or ``None`` if it was never found.
        found: whether the call was ever found (the API answered 404 on every poll if not).
        waited: seconds waited.
        polls: requests made for it while waiting.
    """

    def __init__(
        self,
        *,
        call_id: str,
        last_status: str | None,
        found: bool,
        waited: float,
        polls: int,
    ) -> None:
        self.call_id = call_id
        self.last_status = last_status
        self.found = found
        self.waited = waited
        self.polls = polls
        state = f"still {last_status!r}" if found else "never found (the API answered 404)"
        super().__init__(f"call_id={call_id!r} not ready after {waited:.1f} s and {polls} polls: {state}")

    def __reduce__(self) -> Any:
        return (_rebuild_not_ready, (type(self), self.__dict__))


def _rebuild_not_ready(cls: type[CallNotReadyError], state: dict[str, Any]) -> CallNotReadyError:
    err = cls(**{k: state[k] for k in ("call_id", "last_status", "found", "waited", "polls")})
    err.__dict__.update(state)
    return err


class DecodeError(AsyncvoxError):
    """The body is not a call: not JSON, or no call object where one must be.

    ``raw`` keeps the bytes exactly as received, so nothing is lost.
    """

    def __init__(self, message: str, *, raw: bytes, call_id: str | None = None) -> None:
        super().__init__(f"{message} (call_id={call_id!r}, {len(raw)} bytes)")
        #: What was wrong, without the call id and size that ``str()`` adds.
        self.reason = message
        self.raw = raw
        self.call_id = call_id

    def __reduce__(self) -> Any:
        return (_rebuild_decode_error, (type(self), self.args, self.__dict__))


class ResponseTooLargeError(AsyncvoxError):
    """A call's answer was bigger than the client's ``max_body_bytes``: it was not read.

    Reading stops at the limit (counted after decompression, so a small gzip that
    inflates to gigabytes stops there too) and the connection is closed. Not transient:
    the same answer would come again. Raise the limit (``Client(max_body_bytes=...)``,
    or ``--max-body-bytes`` on the command line) for calls that really are that large.

    Attributes:
        call_id: the call that was asked for.
        limit: the ``max_body_bytes`` in force.
        declared: the size the server declared (``Content-Length``), if it did.
    """

    def __init__(self, limit: int, *, declared: int | None = None, call_id: str | None = None) -> None:
        super().__init__(limit)
        self.limit = limit
        self.declared = declared
        self.call_id = call_id

    def __str__(self) -> str:
        size = f"declared {self.declared:,} bytes" if self.declared is not None else "still sending"
        return (
            f"the answer is larger than max_body_bytes={self.limit:,} ({size}): not read "
            f"(call_id={self.call_id!r}); raise Client(max_body_bytes=...) (asyncvox fetch/get: "
            "--max-body-bytes) if calls are that large"
        )

    def __reduce__(self) -> Any:
        return (_rebuild_too_large, (type(self), self.__dict__))


def _rebuild_too_large(cls: type[ResponseTooLargeError], state: dict[str, Any]) -> ResponseTooLargeError:
    err = cls(state["limit"])
    err.__dict__.update(state)
    return err


def _rebuild_decode_error(
    cls: type[DecodeError], args: tuple[Any, ...], state: dict[str, Any]
) -> DecodeError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


def _rebuild_status_error(cls: type[AsyncvoxError], state: dict[str, Any]) -> AsyncvoxError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, *[state.get(k) for k in ("status", "message", "call_id") if k in state])
    return err


class _ErrorBody(msgspec.Struct):
    success: Any = None
    error: Any = None


_error_body_decoder = msgspec.json.Decoder(_ErrorBody)


def _api_error_text(body: bytes) -> tuple[bool, str | None]:
    """Return (is the API's own error envelope, its ``error`` text)."""
    # A UTF-8 byte order mark (some proxies and frameworks add one) is not part of the
    # JSON: the API's own 404 behind one is still the API's "not found", not a wrong URL.
    body = body.removeprefix(codecs.BOM_UTF8)
    try:
        parsed = _error_body_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):  # too deep to read is not the API's envelope
        return False, None
    is_api = parsed.success is False
    error = parsed.error
    if error is None or isinstance(error, str):
        return is_api, error
    try:
        return is_api, msgspec.json.encode(error).decode()
    except RecursionError:
        return is_api, None


def _clipped(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (then ``...``)."""
    text = one_line(text[: limit * 4])
    return text[:limit] + "..." if len(text) > limit else text


def body_excerpt(body: bytes) -> str:
    """A short, single-line excerpt of a body for an error message."""
    return _clipped(body[: _EXCERPT_CHARS * 4].decode("utf-8", "replace"), _EXCERPT_CHARS) or "(empty body)"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110): delta-seconds or an HTTP date.

    Delta-seconds are ASCII digits only: ``1.5``, ``-4``, ``1e9``, ``inf`` or ``1_0`` are
    not, and like anything else unparsable count as no header at all (``None``). Never
    negative; how long a valid value may hold anything back is the caller's cap
    (``RetryPolicy.max_retry_after``).
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Never int() many digits whole (it refuses over 4300, float() over 308): past
        # 15 they are a wait beyond any cap anyway, and capped like any other.
        digits = value.lstrip("0") or "0"
        return float(int(digits)) if len(digits) <= 15 else _FOREVER
    if not _HTTP_DATE_RE.match(value):
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)


#: What a Retry-After of more than 15 digits means: longer than anything waits.
_FOREVER = 1e15

#: The shapes of an HTTP date (IMF-fixdate, and the obsolete RFC 850 / asctime forms):
#: a weekday name first. Cheap gate before the lenient stdlib parser.
_HTTP_DATE_RE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? ", re.ASCII)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace and control characters made one space, so that
    a server's text (or an id) can never start a new line in a log (log injection)."""
    return " ".join(_CONTROL_RE.sub(" ", text).split())


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def is_api_not_found(body: bytes) -> bool:
    """Whether a 404 body is the API's own "not found" answer (and not a proxy's page)."""
    return _api_error_text(body)[0]


@functools.lru_cache(maxsize=4)
def _escaped_secret(secret: bytes) -> re.Pattern[bytes]:
    r"""The key as a JSON string may hold it: each character as itself or escaped
    (``\u002f``, hex digits in either case; ``\/``, ``\"`` and ``\\`` too)."""
    parts: list[bytes] = []
    for char in secret.decode("utf-8", "replace"):
        forms = [re.escape(char.encode())]
        if ord(char) <= 0xFFFF:
            forms.append(rb"\\u" + "".join(f"[{d}{d.upper()}]" for d in f"{ord(char):04x}").encode())
        if char in '/"\\':
            forms.append(re.escape(b"\\" + char.encode()))
        parts.append(b"(?:" + b"|".join(forms) + b")")
    return re.compile(b"".join(parts))


def status_error(
    status: int,
    body: bytes,
    call_id: str | None,
    *,
    path: str = "",
    retry_after: str | None = None,
    secret: bytes | None = None,
    cut: bool = False,
) -> APIStatusError:
    """Map an error response to the matching exception of the tree.

    ``secret`` (the api key) is blanked out of the body first: a proxy page that echoes
    the request's headers must not carry the key into a message, a log line or ``.body``.
    A body ``cut`` at the client's ``max_body_bytes`` may end inside the key: such an end
    is blanked too.
    """
    if secret:
        if secret in body:
            body = body.replace(secret, b"***")
        if b"\\" in body:
            # A JSON echo may escape any of the key's characters (``\/`` for ``/``, as
            # PHP writes it, or ``\u0061``): the bytes then miss the key, but the decoded
            # ``error`` text, and anyone reading ``.body``, would have it.
            body = _escaped_secret(secret).sub(b"***", body)
        if cut:
            for size in range(min(len(secret), len(body)), 0, -1):
                if body.endswith(secret[:size]):
                    body = body[:-size] + b"***"
                    break
    is_api, text = _api_error_text(body)
    # The API's own text, clipped: a server may put megabytes there (a stack trace, the
    # request echoed), and a message goes into every log line; ``.body`` keeps it whole.
    message = _clipped(text, _MESSAGE_CHARS) if text is not None else body_excerpt(body)
    if status == 401:
        return AuthenticationError(status, message, call_id=call_id, body=body)
    if status == 403:
        return PermissionDeniedError(status, message, call_id=call_id, body=body)
    if status in (400, 422):
        return BadRequestError(status, message, call_id=call_id, body=body)
    if status == 404 and not is_api:
        return EndpointNotFoundError(
            status,
            f"{path or 'the URL'} is not an endpoint of the call API (check base_url); "
            f"the server said: {message}",
            call_id=call_id,
            body=body,
        )
    if status == 429:
        return RateLimitError(
            status,
            message,
            call_id=call_id,
            body=body,
            retry_after=parse_retry_after(retry_after),
        )
    if status >= 500:
        return ServerError(
            status,
            message,
            call_id=call_id,
            body=body,
            retry_after=parse_retry_after(retry_after) if status == 503 else None,
        )
    return APIStatusError(status, message, call_id=call_id, body=body)
