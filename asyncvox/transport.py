"""The transport seam: one GET in, one :class:`Response` out (after httpx's
``handle_async_request``).

Everything above this module (governor, retries, decoding, bulk) deals in
:class:`Response` values and asyncvox errors, never in aiohttp objects, so it can be
driven by :class:`AiohttpTransport` in production or by any object with the same two
methods in tests (see :class:`asyncvox.testing.MockTransport`).

A transport raises only :class:`~asyncvox.APIConnectionError` (no HTTP answer),
:class:`~asyncvox.APITimeoutError` (no complete answer in time),
:class:`~asyncvox.ResponseTooLargeError` (a success too large to read),
:class:`~asyncvox.CertificateError` (TLS verification failed: not transient) or
:class:`~asyncvox.ConfigurationError` (used after close). It never sees a call id: the
request path adds it to the error.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import msgspec
from yarl import URL

from .errors import (
    APIConnectionError,
    APITimeoutError,
    CertificateError,
    ConfigurationError,
    ResponseTooLargeError,
    one_line,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MIN_MAX_BODY_BYTES",
    "AiohttpTransport",
    "Response",
    "Transport",
    "check_base_url",
    "env_proxy",
]

#: The largest answer read by default: a thousand times a typical call (~25 kB) and more
#: than any real one, yet a server (or a proxy, or a gzip bomb) cannot fill memory.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
#: The smallest limit allowed: an error body cut shorter may no longer read as the API's
#: own (its "Call not found" 404 would look like a wrong base URL and end a batch).
MIN_MAX_BODY_BYTES = 1024

#: Statuses whose headers the layers above read (throttling, and the wait path's
#: poll-interval hints on a not-yet 404). A 200's headers are never kept.
_HEADER_STATUSES = frozenset({404, 429, 503})


def check_base_url(base: str, example: str) -> None:
    """Raise :class:`~asyncvox.ConfigurationError` unless ``base`` is an http(s) URL a
    request can go to (a port of 0-65535, brackets closed): else every request would
    fail with aiohttp's ``ValueError``, so it is said once, up front. ``example`` is a
    good one, for the message."""
    try:
        parts = urlsplit(base)
        parts.port  # noqa: B018
        URL(base).raw_host  # noqa: B018
    except ValueError as exc:
        raise ConfigurationError(f"base_url is not a valid URL ({exc}): {base!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"base_url must be an http(s) URL such as {example!r}, got {base!r}")


class Response(msgspec.Struct, gc=False):
    """One HTTP answer, as the layers above need it.

    Attributes:
        status: the HTTP status code.
        body: the whole body.
        headers: the response headers for a 404, 429 or 503 (``Retry-After`` and similar
            hints live there); ``None`` otherwise, so the success path keeps nothing.
        cut: whether the body was cut at ``max_body_bytes`` (an error status's).
    """

    status: int
    body: bytes
    headers: Mapping[str, str] | None = None
    cut: bool = False


class Transport(Protocol):
    """What the request path needs from HTTP: send one GET, and close.

    ``time_limit`` is ``None`` for the transport's own per-attempt timeout, or the seconds
    left before the call's ``total_timeout`` (the last attempt is cut short there).
    """

    async def get(self, url: str, time_limit: float | None = None) -> Response:
        """Send ``GET url`` (already percent-encoded) and return the whole answer."""
        ...

    async def aclose(self) -> None:
        """Release the transport's resources; safe to call twice."""
        ...


def env_proxy(url: str) -> str | None:
    """The proxy the environment sets for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``).

    Resolved once per client: aiohttp's ``trust_env`` would look it up (and ``~/.netrc``)
    in a worker thread on every request, which costs more than the request itself.
    """
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def _is_certificate_error(exc: BaseException) -> bool:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return True
    cause = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
    return isinstance(cause, ssl.SSLCertVerificationError | ssl.CertificateError)


class AiohttpTransport:
    """The production transport: one :class:`aiohttp.ClientSession` and its pool.

    Args:
        headers: sent with every request (the client's ``Authorization`` among them).
        timeout: the per-attempt timeout.
        pool_size: the connection pool's size (the client's ``concurrency``).
        session: a session you own: used as is (never closed), with ``headers`` and
            ``timeout`` passed on each request. aiohttp's own silent re-send of a dropped
            GET stays as you configured it.
        proxy_for: the base URL whose proxy is resolved once from the environment (see
            :func:`env_proxy`).
        max_body_bytes: the largest answer read (after decompression), at least
            :data:`MIN_MAX_BODY_BYTES`; ``None``: no limit.
            A 200 over it raises :class:`~asyncvox.ResponseTooLargeError`; an error
            status's body is cut there (only its first bytes go into the error).
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        pool_size: int,
        session: aiohttp.ClientSession | None = None,
        proxy_for: str | None = None,
        max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if max_body_bytes is not None and (
            not isinstance(max_body_bytes, int)
            or isinstance(max_body_bytes, bool)
            or max_body_bytes < MIN_MAX_BODY_BYTES
        ):
            raise ConfigurationError(
                f"max_body_bytes must be an int >= {MIN_MAX_BODY_BYTES} or None, got {max_body_bytes!r}"
            )
        self._max_body = max_body_bytes
        self._headers = dict(headers)
        self._timeout = timeout
        self._pool_size = pool_size
        self._own = session is None
        self._session = session
        self._closed = False
        kwargs: dict[str, Any] = (
            {} if self._own else {"headers": self._headers, "timeout": timeout, "raise_for_status": False}
        )
        proxy = env_proxy(proxy_for) if proxy_for is not None and self._own else None
        #: The proxy every request goes through (``None``: direct).
        self.proxy = proxy
        if proxy is not None:
            kwargs["proxy"] = proxy
        #: Keyword arguments of every ``session.get`` (empty for our own session).
        self.request_kwargs: dict[str, Any] = kwargs

    def open(self) -> None:
        """Create the session (inside the running event loop) if it does not exist yet."""
        if self._closed:
            raise ConfigurationError("this transport is closed")
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0, ttl_dns_cache=300)
            session = self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=connector,
                # The proxy is resolved once (env_proxy); CA settings (SSL_CERT_FILE,
                # SSL_CERT_DIR) apply through the default SSL context either way.
                trust_env=False,
                # An API client has no use for cookies; skipping the jar saves work per request.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp >= 3.14 re-sends an idempotent request once, invisibly, when the
            # connection drops; asyncvox counts and budgets its own retries instead.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
        elif session.closed:
            raise ConfigurationError("the aiohttp session given to this Client is closed")

    @property
    def owns_session(self) -> bool:
        """Whether the session is the transport's own (created and closed by it)."""
        return self._own

    @property
    def session_open(self) -> bool:
        """Whether the transport's own session exists and is not closed."""
        return self._own and self._session is not None and not self._session.closed

    async def get(self, url: str, time_limit: float | None = None) -> Response:
        """Send one GET and read the whole body; map aiohttp's failures to asyncvox errors."""
        kwargs = self.request_kwargs if time_limit is None else self._cut(time_limit)
        session = self._session
        if session is None:
            raise ConfigurationError("the transport is not open")
        try:
            async with session.get(URL(url, encoded=True), **kwargs) as resp:
                status = resp.status
                cap = self._max_body
                # aiohttp's own read when the size is known and fits (the usual answer);
                # counted as it comes otherwise (chunked, compressed, or declared too big).
                size = resp.content_length
                if cap is not None and (size is None or size > cap or "Content-Encoding" in resp.headers):
                    body, cut = await _read_capped(resp, cap, status)
                else:
                    body, cut = await resp.read(), False
                return Response(status, body, resp.headers if status in _HEADER_STATUSES else None, cut)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise APITimeoutError("no complete answer within the timeout") from None
        except aiohttp.ClientError as exc:
            if _is_certificate_error(exc):
                raise CertificateError(
                    f"TLS certificate verification failed for {urlsplit(url).netloc}: {exc}. "
                    "If the server uses a private CA, trust it with SSL_CERT_FILE=/path/to/ca.pem"
                ) from None
            # aiohttp's text may hold a server's bytes (a redirect's Location, undecodable:
            # lone surrogates) and newlines: one line, and encodable, for logs and files.
            text = one_line(str(exc)).encode("utf-8", "backslashreplace").decode()
            raise APIConnectionError(f"connection failed: {type(exc).__name__}: {text}") from None
        except RuntimeError:
            if self._closed or session.closed:  # aiohttp's "Session is closed"
                raise ConfigurationError("this asyncvox.Client was closed while the call ran") from None
            raise

    def _cut(self, seconds: float) -> dict[str, Any]:
        t = self._timeout
        timeout = aiohttp.ClientTimeout(
            total=seconds, connect=t.connect, sock_read=t.sock_read, sock_connect=t.sock_connect
        )
        return {**self.request_kwargs, "timeout": timeout}

    async def aclose(self) -> None:
        """Close the session if it is the transport's own. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        session = self._session
        if session is not None and self._own:
            await session.close()


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, status: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the body (decompressed), and whether it was cut. A 200 over
    it raises :class:`ResponseTooLargeError`; another status keeps its first ``cap`` bytes.
    The rest is never read: leaving the response closes its connection."""
    declared = resp.content_length if "Content-Encoding" not in resp.headers else None
    if status == 200 and declared is not None and declared > cap:
        raise ResponseTooLargeError(cap, declared=declared)
    blocks: list[bytes] = []
    size = 0
    content = resp.content
    while size <= cap:
        block = await content.readany()
        if not block:
            return b"".join(blocks), False
        blocks.append(block)
        size += len(block)
    if status == 200:
        raise ResponseTooLargeError(cap)
    return b"".join(blocks)[:cap], True
