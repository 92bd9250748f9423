"""The :class:`Client`: configuration, the session's lifecycle, and the public calls.

A call id travels one straight line, strictly downward: ``Client.fetch`` (or a
:class:`~asyncvox.CallStream` worker) -> :class:`~asyncvox.request.Requester` (governor
slot, one transport GET, the answer mapped; on a transient failure only, tenacity's retry
loop) -> :class:`~asyncvox.transport.AiohttpTransport`. This module only configures those
layers and hands each call to them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import warnings
from collections.abc import AsyncIterable, Iterable
from typing import Any, Final, Literal

import aiohttp

from ._fleet_scripts import fleet_keys
from ._input import noting_order
from ._version import __version__
from .errors import ConfigurationError
from .fleet import REDIS_URL_ENV, RedisFleet
from .limits import Governor
from .models import Call
from .outcomes import FetchOutcome
from .request import USE_CLIENT_DEFAULT, Requester, UseClientDefault, check_call_id
from .retry import RetryBudget, RetryPolicy
from .stream import CallStream
from .transport import DEFAULT_MAX_BODY_BYTES, AiohttpTransport, Transport, check_base_url
from .waiting import PollPolicy, ReadyPredicate, Waiting, check_wait, wait_for_one

__all__ = ["DEFAULT_BASE_URL", "Client"]

DEFAULT_BASE_URL: Final = "https://api.fixa.dev/v1"
API_KEY_ENV: Final = "ASYNCVOX_API_KEY"
BASE_URL_ENV: Final = "ASYNCVOX_BASE_URL"
#: One call's whole time (all attempts and waits) unless told otherwise.
DEFAULT_TOTAL_TIMEOUT: Final = 300.0
USER_AGENT: Final = (
    f"asyncvox/{__version__} aiohttp/{aiohttp.__version__} "
    f"python/{sys.version_info.major}.{sys.version_info.minor}"
)

_Ids = Iterable[Any] | AsyncIterable[Any]


class Client:
    """An async client for the call API, safe to share between any number of tasks.

    It owns one aiohttp connection pool (created lazily inside the running event loop)
    and one :class:`~asyncvox.limits.Governor` that every request goes through.

    Args:
        api_key: bearer token; default ``$ASYNCVOX_API_KEY``.
        base_url: default ``$ASYNCVOX_BASE_URL``, else ``https://api.fixa.dev/v1``.
        timeout: seconds per attempt, or an :class:`aiohttp.ClientTimeout`. Time spent
            waiting for a slot, the rate limiter or a 429 pause is not part of it.
        max_retries: retries after the first attempt, for transient failures only.
        concurrency: most requests in flight at once on this client (and its pool size).
        rate_limit: most requests started per second; ``None`` = unlimited.
        session: an :class:`aiohttp.ClientSession` you own; it is used, never closed.
        retry: the full :class:`~asyncvox.RetryPolicy` (``max_retries`` overrides its
            field when given).
        total_timeout: seconds one call may take across all attempts and waits
            (default 300; ``None``: no limit).
        retry_budget: the client's :class:`~asyncvox.RetryBudget`.
        transport: send requests through this :class:`~asyncvox.transport.Transport`
            instead of aiohttp (tests, custom stacks); ``timeout``, ``session`` and
            ``max_body_bytes`` are then not used.
        fleet: share this key's limits with other processes through Redis: a
            ``redis://`` URL or a :class:`~asyncvox.RedisFleet`; default
            ``$ASYNCVOX_REDIS_URL`` when set; ``None`` or ``False``: this process's own
            limits only. See "Many processes, one key" in the README.
        max_body_bytes: the largest answer read, decompressed (default 64 MiB, at least
            1024; ``None``: no limit); a 200 over it fails with
            :class:`~asyncvox.ResponseTooLargeError`, an error status's body is cut there.

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
        total_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        retry_budget: RetryBudget | None = None,
        transport: Transport | None = None,
        fleet: RedisFleet | str | Literal[False] | UseClientDefault | None = USE_CLIENT_DEFAULT,
        max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key or not isinstance(key, str):
            raise ConfigurationError(
                f"no api key: pass Client(api_key=...) or set the {API_KEY_ENV} environment variable"
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
            raise ConfigurationError("api key contains a control character (a stray newline?)")
        base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        check_base_url(base, DEFAULT_BASE_URL)
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if rate_limit is not None and not rate_limit > 0:
            raise ConfigurationError(f"rate_limit must be > 0 or None, got {rate_limit!r}")
        if isinstance(timeout, aiohttp.ClientTimeout):
            client_timeout = timeout
        elif isinstance(timeout, int | float) and timeout > 0:
            client_timeout = aiohttp.ClientTimeout(total=float(timeout))
        else:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        policy = retry if retry is not None else RetryPolicy()
        if max_retries is not None:
            policy = dataclasses.replace(policy, max_retries=max_retries)
        total: float | None
        if isinstance(total_timeout, UseClientDefault):
            total = policy.deadline if policy.deadline is not None else DEFAULT_TOTAL_TIMEOUT
        else:
            total = total_timeout
        if total is not None and not total > 0:
            raise ConfigurationError(f"total_timeout must be > 0 seconds or None, got {total!r}")
        self.base_url: Final[str] = base.rstrip("/")
        self.concurrency: Final[int] = concurrency
        self.rate_limit: Final[float | None] = rate_limit
        self.total_timeout: Final[float | None] = total
        headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if transport is None:
            transport = AiohttpTransport(
                headers=headers,
                timeout=client_timeout,
                pool_size=concurrency,
                session=session,
                proxy_for=self.base_url,
                max_body_bytes=max_body_bytes,
            )
        self._transport = transport
        self._governor = Governor(
            concurrency,
            rate_limit=rate_limit,
            max_pause=policy.max_retry_after,
            budget=retry_budget,
            **_fleet_choice(fleet, self.base_url, key),
        )
        self._requester = Requester(
            transport=transport,
            base_url=self.base_url,
            governor=self._governor,
            policy=policy,
            attempt_seconds=client_timeout.total or float("inf"),
            total_timeout=total,
            secret=key.encode(),
        )
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
        self._governor.close()  # requests waiting to start end now, not when the wait would
        if self._governor.fleet is not None:
            await self._governor.fleet.aclose()
        await self._transport.aclose()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._requester.policy

    @property
    def governor(self) -> Governor:
        """The shared limits (in-flight cap, 429 pause, rate, retry budget) of this client."""
        return self._governor

    @property
    def transport(self) -> Transport:
        """The transport every request goes through."""
        return self._transport

    def _ready(self) -> None:
        """Check state and loop; open the transport on first use inside the running loop."""
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
            if self._governor.fleet is not None:
                self._governor.fleet.start()
        open_ = getattr(self._transport, "open", None)
        if open_ is not None:
            open_()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<asyncvox.Client base_url={self.base_url!r} concurrency={self.concurrency} {state}>"

    def __del__(self, _warnings: Any = warnings) -> None:
        transport = getattr(self, "_transport", None)
        if isinstance(transport, AiohttpTransport) and transport.session_open:
            _warnings.warn(
                f"unclosed {self!r}: use `async with asyncvox.Client(...)` or `await client.aclose()`",
                ResourceWarning,
                source=self,
            )

    # -- single calls: get_call returns a call or raises; fetch returns an outcome --

    async def get_call(
        self,
        call_id: str,
        *,
        max_retries: int | UseClientDefault = USE_CLIENT_DEFAULT,
        total_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Call | None:
        """Fetch one call; ``None`` when the API says it does not exist.

        Raises the matching :class:`~asyncvox.AsyncvoxError` once retries are exhausted
        (for example :class:`~asyncvox.AuthenticationError` at once on a bad key).
        ``total_timeout=None`` means no limit for this call; leave it out for the client's.

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
        max_retries: int | UseClientDefault = USE_CLIENT_DEFAULT,
        total_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> FetchOutcome:
        """Fetch one call as a :class:`FetchOutcome`: failures are returned, not raised.

        Use it when you want the server's raw bytes (``outcome.raw``) or the attempt count.
        An invalid id still raises :class:`~asyncvox.InvalidCallIdError` at once.
        """
        check_call_id(call_id)
        self._ready()
        fetched = await self._requester.fetch(
            call_id, None, max_retries=max_retries, total_timeout=total_timeout
        )
        return fetched.outcome()

    # -- waiting for a call's analysis ---------------------------------------------

    async def wait_for_call(
        self,
        call_id: str,
        *,
        # The and the user's word for it; asyncio.timeout() would cancel the
        # poll in flight instead of ending the wait with CallNotReadyError.
        timeout: float,  # noqa: ASYNC109
        ready: ReadyPredicate | None = None,
        poll: PollPolicy | None = None,
    ) -> Call:
        """Wait until a call's analysis is done and return it.

        Polls ``GET /calls/{id}`` (after about a second, then less and less often, see
        :class:`~asyncvox.PollPolicy`) while the API answers its own 404 or the call's
        status is ``queued`` / ``in_progress`` / ``analyzing`` (or ``ready(call)`` is
        false). Raises :class:`~asyncvox.CallNotReadyError` when ``timeout`` seconds pass
        first (a poll still in flight then is given up: a server that stops answering
        cannot hold the wait past its end), and any other error with its usual meaning
        (a wrong URL, a bad key, ...).
        """
        check_call_id(call_id)
        check_wait(timeout)
        self._ready()
        requester = self._requester
        outcome = await wait_for_one(
            requester.fetch,
            call_id,
            Waiting(timeout, ready, poll or PollPolicy()),
            requester.total_timeout,
            # The governor's sleep: closing the client ends the wait between polls at once.
            lambda seconds: self._governor.sleep(seconds, call_id),
        )
        if outcome.call is None:
            assert outcome.error is not None
            raise outcome.error
        return outcome.call

    # -- bulk: iter_calls and fetch_calls return outcomes ---------------------------

    def iter_calls(
        self,
        ids: _Ids,
        *,
        concurrency: int | None = None,
        ordered: bool = False,
        dedupe: bool = True,
        wait: float | None = None,
        ready: ReadyPredicate | None = None,
        poll: PollPolicy | None = None,
    ) -> CallStream:
        """Stream one :class:`FetchOutcome` per distinct id; see :class:`asyncvox.CallStream`.

        ``concurrency`` caps this batch's workers (at most the client's ``concurrency``).
        ``wait=SECONDS`` waits for each call's analysis (as :meth:`wait_for_call` does,
        without a task per id): each outcome comes as soon as its call is ready, or with a
        :class:`~asyncvox.CallNotReadyError` when its wait runs out. Completion order only.
        """
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise ConfigurationError(f"iter_calls concurrency must be an int >= 1, got {concurrency!r}")
        check_wait(wait)
        waiting = None
        if wait is not None:
            if ordered:
                raise ConfigurationError(
                    "iter_calls(wait=...) yields each call as soon as it is ready: it cannot be "
                    "ordered=True (fetch_calls(wait=...) returns a list in input order)"
                )
            waiting = Waiting(wait, ready, poll or PollPolicy())
        elif ready is not None or poll is not None:
            raise ConfigurationError("ready= and poll= only apply with wait=SECONDS")
        workers = min(concurrency or self.concurrency, self.concurrency)
        return CallStream(
            self._requester,
            ids,
            workers=workers,
            ordered=ordered,
            dedupe=dedupe,
            waiting=waiting,
            before_start=self._ready,
        )

    async def fetch_calls(
        self,
        ids: _Ids,
        *,
        concurrency: int | None = None,
        dedupe: bool = True,
        wait: float | None = None,
        ready: ReadyPredicate | None = None,
        poll: PollPolicy | None = None,
    ) -> list[FetchOutcome]:
        """Fetch many calls; one outcome per distinct id, in input order.

        With ``wait=SECONDS``, each call is waited for as in :meth:`iter_calls`.
        """
        if wait is None:
            stream = self.iter_calls(ids, concurrency=concurrency, ordered=True, dedupe=dedupe)
            async with stream:
                return [outcome async for outcome in stream]
        order: dict[str, list[int]] = {}
        stream = self.iter_calls(
            noting_order(ids, order),
            concurrency=concurrency,
            dedupe=dedupe,
            wait=wait,
            ready=ready,
            poll=poll,
        )
        async with stream:
            outcomes = [outcome async for outcome in stream]
        # Without dedupe an id may come back more than once: its outcomes take its
        # occurrences' places in turn (sort computes the keys in list order, once each).
        places = {key: iter(where) for key, where in order.items()}
        outcomes.sort(key=lambda o: next(places.get(o.call_id, iter(())), len(outcomes)))
        return outcomes

    async def get_calls(
        self,
        ids: _Ids,
        *,
        concurrency: int | None = None,
        dedupe: bool = True,
    ) -> list[FetchOutcome]:
        """Deprecated alias of :meth:`fetch_calls` (it returns outcomes, not calls)."""
        warnings.warn(
            "Client.get_calls is deprecated; use Client.fetch_calls (same arguments and result)",
            DeprecationWarning,
            stacklevel=2,
        )
        return await self.fetch_calls(ids, concurrency=concurrency, dedupe=dedupe)


def _fleet_choice(choice: object, base_url: str, key: str) -> dict[str, Any]:
    """The Governor's fleet arguments for ``Client(fleet=...)`` (see its docstring)."""
    if isinstance(choice, UseClientDefault):
        choice = os.environ.get(REDIS_URL_ENV) or None
    if choice is None or choice is False:
        return {}
    if isinstance(choice, str):
        choice = RedisFleet(choice)
    if not isinstance(choice, RedisFleet):
        raise ConfigurationError(
            f"fleet must be a redis:// URL, a RedisFleet, None or False, got {type(choice).__name__}"
        )
    return {"fleet": choice, "fleet_keys": fleet_keys(base_url, key)}
