"""The :class:`Client`: configuration, the session's lifecycle, and one request.

A call id travels one straight line: ``_fetch`` -> governor slot -> one attempt
(``_attempt``: send, read, decode) -> on a transient failure only, the tenacity loop of
:mod:`asyncvox.retry`. The success path allocates nothing beyond what aiohttp and msgspec
need, so the safety machinery costs nothing until the server pushes back.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import urllib.request
import warnings
from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from ._decode import CallBytes, decode_found, split_body
from ._governor import Governor, RetryBudget
from ._version import __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    AsyncvoxError,
    ConfigurationError,
    DecodeError,
    InvalidCallIdError,
    RateLimitError,
    is_api_not_found,
    status_error,
)
from .models import Call
from .outcomes import BatchStats, FetchOutcome
from .retry import RetryPolicy

if TYPE_CHECKING:
    from ._bulk import CallStream

__all__ = ["DEFAULT_BASE_URL", "Client"]

DEFAULT_BASE_URL: Final = "https://api.fixa.dev/v1"
API_KEY_ENV: Final = "ASYNCVOX_API_KEY"
BASE_URL_ENV: Final = "ASYNCVOX_BASE_URL"
USER_AGENT: Final = (
    f"asyncvox/{__version__} aiohttp/{aiohttp.__version__} "
    f"python/{sys.version_info.major}.{sys.version_info.minor}"
)


class _Unset:
    pass


_UNSET: Final = _Unset()

_Ids = Iterable[Any] | AsyncIterable[Any]


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


#: One id's result before its call is decoded:
#: (call_id, attempts, error, body, the call's bytes or ``None``, dashboard url).
Fetched = tuple[str, int, AsyncvoxError | None, bytes | None, CallBytes | None, str | None]


def complete(fetched: Fetched) -> FetchOutcome:
    """Decode a fetched call into its :class:`FetchOutcome`.

    Bulk workers hand over :data:`Fetched` and the consumer's task calls this right before
    yielding, so the decoded call is fresh when the caller uses it (see ``split_body``).
    """
    call_id, attempts, error, body, raw, link = fetched
    if raw is None or body is None:
        return FetchOutcome(call_id, None, error, attempts)
    try:
        call, exact = decode_found(body, raw, call_id)
    except DecodeError as exc:
        return FetchOutcome(call_id, None, exc, attempts)
    return FetchOutcome(call_id, call, None, attempts, bytes(exact), link)


def check_call_id(call_id: object) -> str:
    """Return ``call_id`` if it can be sent, else raise :class:`InvalidCallIdError`."""
    if not isinstance(call_id, str):
        raise InvalidCallIdError(f"call id must be a str, got {type(call_id).__name__}: {call_id!r:.80}")
    if not call_id:
        raise InvalidCallIdError("call id must not be empty")
    return call_id


def _retry_cause(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status is not None:
        return str(status)
    if isinstance(exc, APITimeoutError):
        return "timeout"
    return "connection"


class Client:
    """An async client for the call API, safe to share between any number of tasks.

    It owns one aiohttp connection pool (created lazily inside the running event loop)
    and one :class:`~asyncvox._governor.Governor` that every request goes through.

    Args:
        api_key: bearer token; default ``$ASYNCVOX_API_KEY``.
        base_url: default ``$ASYNCVOX_BASE_URL``, else ``https://api.fixa.dev/v1``.
        timeout: seconds per attempt, or an :class:`aiohttp.ClientTimeout`. Time spent
            waiting for a slot, the rate limiter or a 429 pause is not part of it.
        max_retries: retries after the first attempt, for transient failures only.
        concurrency: most requests in flight at once on this client (and its pool size).
        rate_limit: most requests started per second; ``None`` = unlimited.
        session: an :class:`aiohttp.ClientSession` you own; it is used, never closed.
        retry: the full :class:`~asyncvox.retry.RetryPolicy` (``max_retries`` overrides
            its field when given).
        total_timeout: seconds one call may take across all attempts and waits.
        retry_budget: the client's :class:`~asyncvox._governor.RetryBudget`.

    Example::

        async with asyncvox.Client() as client:
            call = await client.get_call("customer-call-id")
            if call is not None:
                print(call.status, call.latency_p50)
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | aiohttp.ClientTimeout = 30.0,
        max_retries: int | None = None,
        concurrency: int = 16,
        rate_limit: float | None = None,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        total_timeout: float | _Unset | None = _UNSET,
        retry_budget: RetryBudget | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key or not isinstance(key, str):
            raise ConfigurationError(
                f"no api key: pass Client(api_key=...) or set the {API_KEY_ENV} environment variable"
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
            raise ConfigurationError("api key contains a control character (a stray newline?)")
        base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {base!r}"
            )
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if rate_limit is not None and not rate_limit > 0:
            raise ConfigurationError(f"rate_limit must be > 0 or None, got {rate_limit!r}")
        if isinstance(timeout, aiohttp.ClientTimeout):
            self._timeout = timeout
        elif isinstance(timeout, int | float) and timeout > 0:
            self._timeout = aiohttp.ClientTimeout(total=float(timeout))
        else:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        policy = retry if retry is not None else RetryPolicy()
        try:
            if max_retries is not None:
                policy = RetryPolicy(
                    max_retries=max_retries,
                    initial_wait=policy.initial_wait,
                    max_wait=policy.max_wait,
                    jitter=policy.jitter,
                    max_retry_after=policy.max_retry_after,
                    deadline=policy.deadline,
                )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self._policy = policy
        #: An attempt can take this long: one starting closer to the deadline is cut short.
        self._attempt_seconds = self._timeout.total or float("inf")
        self._total_timeout = policy.deadline if isinstance(total_timeout, _Unset) else total_timeout
        self.base_url: Final[str] = base.rstrip("/")
        self.concurrency: Final[int] = concurrency
        self.rate_limit: Final[float | None] = rate_limit
        self._calls_prefix = self.base_url + "/calls/"
        self._secret = key.encode()
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._governor = Governor(
            concurrency,
            rate_limit=rate_limit,
            max_pause=policy.max_retry_after,
            budget=retry_budget,
        )
        self._user_session = session
        self._session: aiohttp.ClientSession | None = session
        self._request_kwargs: dict[str, Any] = (
            {"headers": self._headers, "timeout": self._timeout, "raise_for_status": False}
            if session is not None
            else {}
        )
        proxy = env_proxy(self.base_url) if session is None else None
        if proxy is not None:
            self._request_kwargs["proxy"] = proxy
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._ready()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the session is yours). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        session = self._session
        if session is not None and session is not self._user_session:
            await session.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._policy

    @property
    def governor(self) -> Governor:
        """The shared limits (in-flight cap, 429 pause, rate, retry budget) of this client."""
        return self._governor

    def _ready(self) -> aiohttp.ClientSession:
        """The session, created on first use inside the running loop; checks loop and state."""
        if self._closed:
            raise ConfigurationError("this asyncvox.Client is closed; create a new one")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                raise ConfigurationError(
                    "this asyncvox.Client is bound to another event loop; create one Client "
                    "per event loop (e.g. inside your app's lifespan)"
                )
            self._loop = loop
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0, ttl_dns_cache=300)
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
        return session

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<asyncvox.Client base_url={self.base_url!r} concurrency={self.concurrency} {state}>"

    def __del__(self, _warnings: Any = warnings) -> None:
        session = getattr(self, "_session", None)
        if session is not None and session is not getattr(self, "_user_session", None) and not session.closed:
            _warnings.warn(
                f"unclosed {self!r}: use `async with asyncvox.Client(...)` or `await client.aclose()`",
                ResourceWarning,
                source=self,
            )

    # -- single calls --------------------------------------------------------------

    async def get_call(
        self,
        call_id: str,
        *,
        max_retries: int | None = None,
        total_timeout: float | None = None,
    ) -> Call | None:
        """Fetch one call; ``None`` when the API says it does not exist.

        Raises the matching :class:`~asyncvox.AsyncvoxError` once retries are exhausted
        (for example :class:`~asyncvox.AuthenticationError` at once on a bad key).

        >>> call = await client.get_call("customer-call-id")  # doctest: +SKIP
        """
        outcome = await self.fetch(call_id, max_retries=max_retries, total_timeout=total_timeout)
        if outcome.error is not None:
            raise outcome.error
        return outcome.call

    async def fetch(
        self,
        call_id: str,
        *,
        max_retries: int | None = None,
        total_timeout: float | None = None,
    ) -> FetchOutcome:
        """Fetch one call as a :class:`FetchOutcome`: failures are returned, not raised.

        Use it when you want the server's raw bytes (``outcome.raw``) or the attempt count.
        An invalid id still raises :class:`~asyncvox.InvalidCallIdError` at once.
        """
        check_call_id(call_id)
        self._ready()
        return complete(await self._fetch(call_id, None, max_retries, total_timeout))

    # -- bulk ----------------------------------------------------------------------

    def iter_calls(
        self,
        ids: _Ids,
        *,
        concurrency: int | None = None,
        ordered: bool = False,
        dedupe: bool = True,
    ) -> CallStream:
        """Stream one :class:`FetchOutcome` per distinct id; see :class:`asyncvox.CallStream`."""
        from ._bulk import CallStream

        return CallStream(self, ids, concurrency=concurrency, ordered=ordered, dedupe=dedupe)

    async def get_calls(
        self,
        ids: _Ids,
        *,
        concurrency: int | None = None,
        dedupe: bool = True,
    ) -> list[FetchOutcome]:
        """Fetch many calls; one outcome per distinct id, in input order."""
        stream = self.iter_calls(ids, concurrency=concurrency, ordered=True, dedupe=dedupe)
        async with stream:
            return [outcome async for outcome in stream]

    # -- one call id, end to end ---------------------------------------------------

    async def _fetch(
        self,
        call_id: str,
        stats: BatchStats | None,
        max_retries: int | None = None,
        total_timeout: float | None = None,
    ) -> Fetched:
        url = URL(self._calls_prefix + quote(call_id, safe=""), encoded=True)
        limit = self._total_timeout if total_timeout is None else total_timeout
        deadline = time.monotonic() + limit if limit is not None else None
        self._governor.budget.first_attempts += 1
        try:
            body, raw, link = await self._attempt(call_id, url, stats, deadline)
        except AsyncvoxError as exc:
            return await self._retry(call_id, url, exc, stats, max_retries, deadline)
        return (call_id, 1, None, body, raw, link)

    async def _attempt(
        self, call_id: str, url: URL, stats: BatchStats | None, deadline: float | None
    ) -> tuple[bytes, CallBytes | None, str | None]:
        """Send one request: (body, the call's bytes or ``None`` for not found, url), or raise."""
        gov = self._governor
        if not gov.try_acquire():
            await gov.acquire(call_id, deadline)
        kwargs = self._request_kwargs
        if deadline is not None and deadline - time.monotonic() < self._attempt_seconds:
            kwargs = self._within_deadline(call_id, deadline)  # the call's last attempt
        if stats is not None:
            stats.requests += 1
        try:
            session = self._session
            assert session is not None
            async with session.get(url, **kwargs) as resp:
                body = await resp.read()
                status = resp.status
                headers = resp.headers if status in (429, 503) else None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise APITimeoutError(
                f"no complete answer within the timeout for call_id={call_id!r}", call_id=call_id
            ) from None
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"connection failed for call_id={call_id!r}: {type(exc).__name__}: {exc}",
                call_id=call_id,
            ) from None
        except RuntimeError:
            if self._closed:  # aiohttp's "Session is closed": closed while this call ran
                raise ConfigurationError("this asyncvox.Client was closed while the call ran") from None
            raise
        finally:
            gov.release()
        if stats is not None:
            stats.statuses[status] += 1
            stats.bytes_received += len(body)
        if status == 200:
            raw, link = split_body(body, call_id)
            if gov.limit < gov.cap:
                gov.on_success()
            return body, raw, link
        if status == 404 and is_api_not_found(body):
            return body, None, None
        error = status_error(
            status,
            body,
            call_id,
            path=url.path,
            retry_after=headers.get("Retry-After") if headers is not None else None,
            secret=self._secret,
        )
        if isinstance(error, RateLimitError):
            gov.on_throttle(error.retry_after)
        raise error

    def _within_deadline(self, call_id: str, deadline: float) -> dict[str, Any]:
        """Request arguments whose timeout ends at the call's deadline (no later)."""
        left = deadline - time.monotonic()
        if left <= 0:
            self._governor.release()
            error = APITimeoutError(f"total_timeout ran out for call_id={call_id!r}", call_id=call_id)
            error.sent = False
            raise error
        t = self._timeout
        timeout = aiohttp.ClientTimeout(
            total=left, connect=t.connect, sock_read=t.sock_read, sock_connect=t.sock_connect
        )
        return {**self._request_kwargs, "timeout": timeout}

    async def _retry(
        self,
        call_id: str,
        url: URL,
        first: AsyncvoxError,
        stats: BatchStats | None,
        max_retries: int | None,
        deadline: float | None,
    ) -> Fetched:
        """The slow path: tenacity drives attempts 2..n after a first failure."""
        policy = self._policy
        retries = policy.max_retries if max_retries is None else max_retries
        if retries == 0 or not policy.should_retry(first):
            return (call_id, int(first.sent), first, None, None, None)
        retrying = policy.retrying(
            call_id=call_id,
            max_retries=retries,
            deadline=deadline,
            allow_retry=self._allow_retry,
        )
        attempts = 0
        last: AsyncvoxError = first
        result: tuple[bytes, CallBytes | None, str | None] | None = None
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
                        result = await self._attempt(call_id, url, stats, deadline)
                    except AsyncvoxError as exc:
                        last = exc
                        if not exc.sent:
                            attempts -= 1
                        raise
        except AsyncvoxError as exc:
            return (call_id, attempts, exc, None, None, None)
        assert result is not None
        body, raw, link = result
        return (call_id, attempts, None, body, raw, link)

    def _allow_retry(self, exc: BaseException) -> bool:
        # Throttling is the governor's job (pause + smaller limit); the budget is for outages.
        if isinstance(exc, RateLimitError):
            return True
        return self._governor.budget.try_withdraw()
