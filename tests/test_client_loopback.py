"""``Client`` against the real loopback server: retries, timeouts, 429s, cancellation,
logging, secrets, lifecycle, configuration and the concurrency cap.

Retry waits are zero unless a test is marked ``real_waits`` (see conftest). Timing
assertions here are lower bounds only ("waited at least Retry-After"), never limits.
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import logging
import math
import socket
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import API_KEY

import asyncvox
from asyncvox import (
    APIConnectionError,
    APITimeoutError,
    AsyncvoxError,
    AuthenticationError,
    ConfigurationError,
    DecodeError,
    EndpointNotFoundError,
    InvalidCallIdError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from asyncvox.testing import DemoServer, Fault, FaultProfile

#: Lower-bound slack for the event loop's clock resolution when measuring a wait.
SLACK = 0.02


class SignalServer(DemoServer):
    """A DemoServer that reports each request's call path as it arrives."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: asyncio.Queue[str] = asyncio.Queue()

    async def _answer(self, request: web.Request) -> web.Response | None:
        self.arrivals.put_nowait(request.raw_path)
        return await super()._answer(request)

    async def arrived(self) -> str:
        async with asyncio.timeout(3):
            return await self.arrivals.get()


@pytest.fixture
async def signal_server() -> AsyncIterator[SignalServer]:
    srv = SignalServer(api_key=API_KEY, turns=4)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- retries ------------------------------------------------------------------------------


async def test_503_503_200_is_found_after_three_attempts(server: DemoServer, client: asyncvox.Client) -> None:
    server.script("flaky", [503, 503, 200])
    outcome = await client.fetch("flaky")
    assert outcome.found and outcome.ok
    assert outcome.attempts == 3
    assert outcome.call is not None and outcome.call.customer_call_id == "flaky"
    assert server.stats.requests_for("flaky") == 3
    assert server.stats.statuses[503] == 2


async def test_get_call_after_transient_failures_returns_the_call(
    server: DemoServer, client: asyncvox.Client
) -> None:
    server.script("flaky", [500, Fault.html(502), 504, 200])
    call = await client.get_call("flaky")
    assert call is not None and call.customer_call_id == "flaky"
    assert server.stats.requests_for("flaky") == 4


@pytest.mark.parametrize("max_retries", [0, 1, 2, 4])
async def test_retries_exhausted_raises_server_error(server: DemoServer, max_retries: int) -> None:
    server.script("down", [503] * 10)
    async with asyncvox.Client(API_KEY, server.base_url, max_retries=max_retries) as c:
        with pytest.raises(ServerError) as info:
            await c.get_call("down")
    assert info.value.status == 503
    assert info.value.message == "Service unavailable"
    assert info.value.call_id == "down"
    assert server.stats.requests_for("down") == max_retries + 1


async def test_default_client_makes_five_attempts(server: DemoServer, client: asyncvox.Client) -> None:
    server.script("down", [503] * 10)
    outcome = await client.fetch("down")
    assert isinstance(outcome.error, ServerError)
    assert outcome.attempts == 5
    assert server.stats.requests_for("down") == 5


async def test_per_call_max_retries_zero(server: DemoServer, client: asyncvox.Client) -> None:
    server.script("once", [503, 200])
    with pytest.raises(ServerError):
        await client.get_call("once", max_retries=0)
    assert server.stats.requests_for("once") == 1
    # the client's own setting is untouched: the next call goes through
    assert await client.get_call("once") is not None
    assert server.stats.requests_for("once") == 2


async def test_per_call_max_retries_can_raise_the_clients(server: DemoServer) -> None:
    server.script("twice", [503, 503, 200])
    async with asyncvox.Client(API_KEY, server.base_url, max_retries=0) as c:
        outcome = await c.fetch("twice", max_retries=2)
    assert outcome.found
    assert outcome.attempts == 3


@pytest.mark.parametrize("status", [400, 401, 403, 422, 404])
async def test_non_transient_statuses_are_sent_once(
    server: DemoServer, client: asyncvox.Client, status: int
) -> None:
    server.script("bad", [status, 200])
    outcome = await client.fetch("bad")
    assert outcome.attempts == 1
    assert server.stats.requests_for("bad") == 1
    if status == 404:
        # the scripted 404 is the API's JSON: not found
        assert outcome.ok and not outcome.found
    else:
        assert isinstance(outcome.error, asyncvox.APIStatusError)
        assert outcome.error.status == status


async def test_wrong_api_key_fails_fast(server: DemoServer) -> None:
    async with asyncvox.Client("wrong-key", server.base_url) as c:
        with pytest.raises(AuthenticationError) as info:
            await c.get_call("abc")
    assert info.value.message == "Invalid Bearer token"
    assert server.stats.requests == 1


async def test_forbidden_api_key_fails_fast() -> None:
    async with (
        DemoServer(api_key=API_KEY, forbidden_keys=["read-only-key"], turns=2) as server,
        asyncvox.Client("read-only-key", server.base_url) as c,
    ):
        with pytest.raises(PermissionDeniedError):
            await c.get_call("abc")
        assert server.stats.requests == 1


async def test_html_404_from_wrong_base_url_raises_endpoint_not_found(server: DemoServer) -> None:
    base = server.base_url.replace("/v1", "/v2")
    async with asyncvox.Client(API_KEY, base) as c:
        with pytest.raises(EndpointNotFoundError) as info:
            await c.get_call("abc")
    assert info.value.status == 404
    assert "/v2/calls/abc" in str(info.value)
    assert server.stats.requests == 1


async def test_garbage_200_raises_decode_error_once(server: DemoServer, client: asyncvox.Client) -> None:
    server.script("junk", [Fault.garbage()])
    with pytest.raises(DecodeError) as info:
        await client.get_call("junk")
    assert info.value.raw == b"<<not json>>"
    assert server.stats.requests_for("junk") == 1


async def test_missing_call_returns_none(server: DemoServer, client: asyncvox.Client) -> None:
    server.add_missing("gone")
    assert await client.get_call("gone") is None
    assert server.stats.requests_for("gone") == 1


async def test_registered_call_keeps_the_servers_bytes(server: DemoServer, client: asyncvox.Client) -> None:
    body = b'{"success":true,"call":{"id":"cl_x","status":"weird","extra":{"a":1}},"url":"https://d/x"}'
    server.add_call(body, call_id="x/y z")
    outcome = await client.fetch("x/y z")
    assert outcome.raw == b'{"id":"cl_x","status":"weird","extra":{"a":1}}'
    assert outcome.dashboard_url == "https://d/x"
    assert outcome.call is not None and outcome.call.status == "weird"


@pytest.mark.parametrize("call_id", ["a/b", "a b", "#", "é/通话", "100%", "?q=1"])
async def test_odd_ids_reach_the_server_as_one_id(
    server: DemoServer, client: asyncvox.Client, call_id: str
) -> None:
    call = await client.get_call(call_id)
    assert call is not None and call.customer_call_id == call_id
    assert server.stats.requests_for(call_id) == 1


# -- dropped connections and timeouts -----------------------------------------------------


async def test_dropped_connection_is_survived(server: DemoServer) -> None:
    server.script("drop", [Fault.drop(), 200])
    async with asyncvox.Client(API_KEY, server.base_url) as c:
        outcome = await c.fetch("drop")
    assert outcome.found
    assert server.stats.requests_for("drop") == 2
    assert server.stats.dropped == 1


# aiohttp (3.14) re-sends an idempotent request once by itself when the connection drops,
# fresh or reused; two drops in a row get past it and need asyncvox's own retry.
@pytest.mark.parametrize("warm", [False, True], ids=["fresh-connection", "reused-connection"])
async def test_two_consecutive_drops_are_retried(server: DemoServer, warm: bool) -> None:
    async with asyncvox.Client(API_KEY, server.base_url) as c:
        if warm:
            assert await c.get_call("warm-up") is not None  # leaves a keep-alive connection
        server.script("drop2", [Fault.drop(), Fault.drop(), 200])
        outcome = await c.fetch("drop2")
    assert outcome.found
    assert outcome.attempts >= 2  # asyncvox retried at least once
    assert server.stats.requests_for("drop2") == 3
    assert server.stats.dropped == 2


async def test_two_consecutive_drops_without_retries_fail(server: DemoServer) -> None:
    server.script("drop2", [Fault.drop(), Fault.drop(), 200])
    async with asyncvox.Client(API_KEY, server.base_url, max_retries=0) as c:
        outcome = await c.fetch("drop2")
    assert isinstance(outcome.error, APIConnectionError)
    assert outcome.attempts == 1
    # 2 with aiohttp's own hidden re-send, 1 without it; never asyncvox's retry
    assert server.stats.requests_for("drop2") in (1, 2)


async def test_drops_exhaust_retries_into_connection_error(server: DemoServer) -> None:
    server.script("gone", [Fault.drop()] * 10)
    async with asyncvox.Client(API_KEY, server.base_url, max_retries=1) as c:
        with pytest.raises(APIConnectionError) as info:
            await c.get_call("gone")
    assert not isinstance(info.value, APITimeoutError)
    assert info.value.call_id == "gone"
    assert "gone" in str(info.value)


async def test_connection_refused_is_retried_then_raises() -> None:
    base = f"http://127.0.0.1:{_free_port()}/v1"
    async with asyncvox.Client(API_KEY, base, max_retries=2) as c:
        outcome = await c.fetch("abc")
        with pytest.raises(APIConnectionError):
            await c.get_call("abc")
    assert isinstance(outcome.error, APIConnectionError)
    assert outcome.attempts == 3


async def test_slow_response_times_out_after_retries(server: DemoServer) -> None:
    server.script("slow", [Fault.slow(0.5), Fault.slow(0.5), 200])
    async with asyncvox.Client(API_KEY, server.base_url, timeout=0.1, max_retries=1) as c:
        with pytest.raises(APITimeoutError) as info:
            await c.get_call("slow")
    assert isinstance(info.value, APIConnectionError)
    assert info.value.call_id == "slow"
    assert "slow" in str(info.value)
    assert server.stats.requests_for("slow") == 2


async def test_slow_then_fast_succeeds(server: DemoServer) -> None:
    server.script("slow", [Fault.slow(0.5), 200])
    async with asyncvox.Client(API_KEY, server.base_url, timeout=0.1) as c:
        outcome = await c.fetch("slow")
    assert outcome.found
    assert outcome.attempts == 2


# -- 429 and Retry-After ------------------------------------------------------------------


@pytest.mark.real_waits
async def test_429_retry_after_seconds_is_honoured(server: DemoServer, client: asyncvox.Client) -> None:
    server.script("limited", [Fault.rate_limited("1"), 200])
    started = time.monotonic()
    outcome = await client.fetch("limited")
    elapsed = time.monotonic() - started
    assert outcome.found
    assert outcome.attempts == 2
    assert elapsed >= 1 - SLACK


@pytest.mark.real_waits
async def test_429_retry_after_http_date_is_honoured(server: DemoServer, client: asyncvox.Client) -> None:
    target = math.floor(time.time()) + 2  # an HTTP date has whole seconds: 1 to 2 s from now
    server.script("limited", [Fault.rate_limited(email.utils.formatdate(target, usegmt=True)), 200])
    outcome = await client.fetch("limited")
    assert outcome.found
    assert outcome.attempts == 2
    assert time.time() >= target - SLACK


@pytest.mark.real_waits
async def test_429_retry_after_http_date_in_the_past_is_retried(
    server: DemoServer, client: asyncvox.Client
) -> None:
    server.script("limited", [Fault.rate_limited("Wed, 21 Oct 2015 07:28:00 GMT"), 200])
    outcome = await client.fetch("limited")
    assert outcome.found
    assert outcome.attempts == 2


async def test_429_retries_exhausted_raises_rate_limit_error(server: DemoServer) -> None:
    server.script("limited", [Fault.rate_limited("0")] * 5)
    async with asyncvox.Client(API_KEY, server.base_url, max_retries=2) as c:
        with pytest.raises(RateLimitError) as info:
            await c.get_call("limited")
    assert info.value.status == 429
    assert info.value.retry_after == 0.0
    assert server.stats.requests_for("limited") == 3


@pytest.mark.parametrize(
    ("policy", "retry_after"),
    [
        pytest.param(RetryPolicy(), "3600", id="default-cap-60s"),
        pytest.param(RetryPolicy(max_retry_after=1.0), "120", id="cap-1s"),
    ],
)
async def test_retry_after_above_the_cap_raises_without_retrying(
    server: DemoServer, policy: RetryPolicy, retry_after: str
) -> None:
    server.script("limited", [Fault.rate_limited(retry_after), 200])
    async with asyncvox.Client(API_KEY, server.base_url, retry=policy) as c:
        with pytest.raises(RateLimitError) as info:
            await c.get_call("limited")
    assert info.value.retry_after == float(retry_after)
    assert info.value.status == 429
    assert f"retry after {retry_after} s" in str(info.value)
    assert server.stats.requests_for("limited") == 1


async def test_testing_mode_makes_a_429_pause_zero(server: DemoServer, client: asyncvox.Client) -> None:
    # asyncvox.set_testing (on for this test) promises zero retry waits *and* zero client-wide
    # 429 pauses. A 30 s Retry-After must therefore not hold the retry back.
    server.script("limited", [Fault.rate_limited("30"), 200])
    async with asyncio.timeout(3):  # a hang guard far below the 30 s the server asked for
        outcome = await client.fetch("limited")
    assert outcome.found
    assert outcome.attempts == 2


# -- total_timeout ------------------------------------------------------------------------


@pytest.mark.real_waits
async def test_total_timeout_stops_retries_whose_wait_would_pass_it(server: DemoServer) -> None:
    server.script("down", [503, 200])
    policy = RetryPolicy(initial_wait=1.0, jitter=0.0)
    async with asyncvox.Client(API_KEY, server.base_url, retry=policy, total_timeout=0.5) as c:
        outcome = await c.fetch("down")
    assert isinstance(outcome.error, ServerError)
    assert outcome.attempts == 1
    assert server.stats.requests_for("down") == 1


@pytest.mark.real_waits
async def test_per_call_total_timeout_stops_retries(server: DemoServer) -> None:
    server.script("down", [503, 200])
    policy = RetryPolicy(initial_wait=1.0, jitter=0.0)
    async with asyncvox.Client(API_KEY, server.base_url, retry=policy) as c:
        with pytest.raises(ServerError):
            await c.get_call("down", total_timeout=0.5)
    assert server.stats.requests_for("down") == 1


async def test_total_timeout_bounds_slow_failing_attempts(server: DemoServer) -> None:
    server.script("slow-down", [Fault.slow(0.3, 503)] * 11)
    async with asyncvox.Client(API_KEY, server.base_url, max_retries=10, total_timeout=0.5) as c:
        # The 503 of attempt 1, or attempt 2 cut short where the 0.5 s run out.
        with pytest.raises((ServerError, APITimeoutError)):
            await c.get_call("slow-down")
    # each attempt takes >= 0.3 s, so no third attempt can start within 0.5 s
    assert 1 <= server.stats.requests_for("slow-down") <= 2


@pytest.mark.real_waits
async def test_deprecated_retry_policy_deadline_still_bounds_the_call(server: DemoServer) -> None:
    server.script("down", [503, 200])
    with pytest.warns(DeprecationWarning, match="total_timeout"):
        policy = RetryPolicy(initial_wait=1.0, jitter=0.0, deadline=0.5)
    async with asyncvox.Client(API_KEY, server.base_url, retry=policy) as c:
        assert c.total_timeout == 0.5
        outcome = await c.fetch("down")
    assert isinstance(outcome.error, ServerError)
    assert server.stats.requests_for("down") == 1


# -- cancellation -------------------------------------------------------------------------


async def test_cancelled_get_call_is_not_retried(signal_server: SignalServer) -> None:
    signal_server.script("stuck", [Fault.slow(0.5), 200])
    async with asyncvox.Client(API_KEY, signal_server.base_url) as c:
        task = asyncio.create_task(c.get_call("stuck"))
        assert await signal_server.arrived() == "/v1/calls/stuck"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c.governor.in_flight == 0
        # still usable, and the cancelled call was never sent again
        assert await c.get_call("after") is not None
    assert signal_server.stats.requests_for("stuck") == 1


async def test_cancel_during_a_retry_is_not_retried(signal_server: SignalServer) -> None:
    signal_server.script("stuck", [503, Fault.slow(0.5), 200])
    async with asyncvox.Client(API_KEY, signal_server.base_url) as c:
        task = asyncio.create_task(c.get_call("stuck"))
        await signal_server.arrived()
        await signal_server.arrived()  # the retry is in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c.governor.in_flight == 0
        assert await c.get_call("after") is not None
    assert signal_server.stats.requests_for("stuck") == 2


# -- logging and secrets ------------------------------------------------------------------


async def test_retries_are_logged_at_warning(
    server: DemoServer, client: asyncvox.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncvox")
    server.script("logged-id", [503, Fault.html(502), 200])
    assert await client.get_call("logged-id") is not None
    records = [r for r in caplog.records if r.name == "asyncvox"]
    assert len(records) == 2
    assert all(r.levelno == logging.WARNING for r in records)
    first, second = (r.getMessage() for r in records)
    assert "logged-id" in first and "attempt 1" in first and "503" in first
    assert "logged-id" in second and "attempt 2" in second and "502" in second
    assert API_KEY not in caplog.text


async def test_success_is_not_logged(
    server: DemoServer, client: asyncvox.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncvox")
    assert await client.get_call("quiet") is not None
    assert [r for r in caplog.records if r.name == "asyncvox" and r.levelno >= logging.WARNING] == []


def _no_secret(err: BaseException, *secrets: str) -> None:
    texts = [str(err), repr(err), "".join(traceback.format_exception(err))]
    for secret in secrets:
        for text in texts:
            assert secret not in text


async def test_api_key_is_never_in_errors_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-live-SECRET-0123456789"
    wrong = "sk-wrong-SECRET-9876543210"
    forbidden = "sk-forbidden-SECRET-5555"
    errors: list[BaseException] = []
    async with DemoServer(api_key=secret, forbidden_keys=[forbidden], turns=2) as server:
        server.script("down", [503] * 3)
        server.script("limited", [Fault.rate_limited("3600")])
        server.script("slow", [Fault.slow(0.3)] * 2)
        server.script("junk", [Fault.garbage()])
        server.script("dropped", [Fault.drop()] * 10)
        async with asyncvox.Client(secret, server.base_url, max_retries=1, timeout=0.1) as c:
            assert secret not in repr(c)
            for call_id in ("down", "limited", "slow", "junk", "dropped"):
                outcome = await c.fetch(call_id)
                assert outcome.error is not None
                errors.append(outcome.error)
                assert secret not in repr(outcome)
        async with asyncvox.Client(secret, server.base_url.replace("/v1", "/nope")) as c:
            errors.append((await c.fetch("x")).error or AssertionError("no error"))
        for key, expected in ((wrong, AuthenticationError), (forbidden, PermissionDeniedError)):
            async with asyncvox.Client(key, server.base_url) as c:
                with pytest.raises(expected) as info:
                    await c.get_call("x")
                errors.append(info.value)
                assert key not in repr(c)
        closed = asyncvox.Client(secret, server.base_url)
        await closed.aclose()
        with pytest.raises(ConfigurationError) as closed_info:
            await closed.get_call("x")
        errors.append(closed_info.value)
    async with asyncvox.Client(secret, f"http://127.0.0.1:{_free_port()}/v1", max_retries=0) as c:
        errors.append((await c.fetch("refused")).error or AssertionError("no error"))
    kinds = {type(e) for e in errors}
    assert {ServerError, RateLimitError, APITimeoutError, DecodeError, APIConnectionError} <= kinds
    assert {EndpointNotFoundError, AuthenticationError, PermissionDeniedError, ConfigurationError} <= kinds
    for err in errors:
        assert isinstance(err, AsyncvoxError)
        _no_secret(err, secret, wrong, forbidden)
    for secret_text in (secret, wrong, forbidden):
        assert secret_text not in caplog.text


def test_api_key_with_line_break_is_rejected_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        asyncvox.Client("sk-SECRET\r\nX-Evil: 1", "http://127.0.0.1:9/v1")
    assert "SECRET" not in str(info.value)


# -- lifecycle ----------------------------------------------------------------------------


async def test_aclose_twice_and_use_after_close(server: DemoServer) -> None:
    c = asyncvox.Client(API_KEY, server.base_url)
    assert await c.get_call("a") is not None
    assert not c.closed
    await c.aclose()
    await c.aclose()
    assert c.closed
    assert "closed" in repr(c)
    with pytest.raises(ConfigurationError, match="closed"):
        await c.get_call("b")
    with pytest.raises(ConfigurationError, match="closed"):
        await c.fetch("b")
    with pytest.raises(ConfigurationError, match="closed"):
        async with c:
            pass
    assert server.stats.requests_for("b") == 0


async def test_async_with_closes_the_client(server: DemoServer) -> None:
    async with asyncvox.Client(API_KEY, server.base_url) as c:
        await c.get_call("a")
    assert c.closed
    with pytest.raises(ConfigurationError):
        await c.get_call("a")


async def test_aclose_of_a_never_used_client(server: DemoServer) -> None:
    c = asyncvox.Client(API_KEY, server.base_url)
    await c.aclose()
    await c.aclose()
    assert c.closed


def test_client_used_from_another_event_loop_raises() -> None:
    with DemoServer(api_key=API_KEY, turns=2).running_in_thread() as server:
        client = asyncvox.Client(API_KEY, server.base_url)
        with asyncio.Runner() as first:
            assert first.run(client.get_call("first-loop")) is not None
            with pytest.raises(ConfigurationError, match="event loop"):
                asyncio.run(client.get_call("second-loop"))
            # still fine on its own loop, then closed there
            assert first.run(client.get_call("first-loop-again")) is not None
            first.run(client.aclose())
        assert server.stats.requests_for("second-loop") == 0
        assert server.stats.requests_for("first-loop-again") == 1


async def test_callers_session_is_used_and_not_closed(server: DemoServer) -> None:
    async with aiohttp.ClientSession() as session:  # no headers of its own
        async with asyncvox.Client(API_KEY, server.base_url, session=session) as c:
            call = await c.get_call("abc")
            assert call is not None
        assert not session.closed
        assert server.stats.requests_for("abc") == 1
        assert any(ua.startswith(f"asyncvox/{asyncvox.__version__}") for ua in server.stats.user_agents)
        # the session still works for its owner
        async with session.get(
            server.base_url + "/calls/own", headers={"Authorization": f"Bearer {API_KEY}"}
        ) as r:
            assert r.status == 200
    assert session.closed


async def test_callers_session_with_other_auth_header_still_sends_ours(server: DemoServer) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer someone-else"}) as session:
        async with asyncvox.Client(API_KEY, server.base_url, session=session) as c:
            assert await c.get_call("abc") is not None
        assert not session.closed


async def test_callers_session_with_raise_for_status_still_maps_statuses(server: DemoServer) -> None:
    server.add_missing("gone")
    server.script("down", [503, 503, 503])
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        asyncvox.Client(API_KEY, server.base_url, session=session, max_retries=2) as c,
    ):
        assert await c.get_call("gone") is None
        with pytest.raises(ServerError):
            await c.get_call("down")
    assert server.stats.requests_for("gone") == 1


async def test_callers_closed_session_raises_configuration_error(server: DemoServer) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    c = asyncvox.Client(API_KEY, server.base_url, session=session)
    with pytest.raises(ConfigurationError, match="closed"):
        await c.get_call("abc")
    await c.aclose()
    assert server.stats.requests == 0


async def test_unclosed_client_emits_resource_warning(
    server: DemoServer, recwarn: pytest.WarningsRecorder
) -> None:
    client = asyncvox.Client(API_KEY, server.base_url)
    await client.__aenter__()  # entered, never exited
    del client
    gc.collect()
    messages = [str(w.message) for w in recwarn if issubclass(w.category, ResourceWarning)]
    # The warning holds the client as its source; releasing it frees the client's aiohttp
    # session, which warns in its turn (still recorded here, so it cannot leak elsewhere).
    recwarn.clear()
    gc.collect()
    assert any("asyncvox" in m and "unclosed" in m for m in messages), messages


async def test_closed_client_does_not_warn(server: DemoServer, recwarn: pytest.WarningsRecorder) -> None:
    client = asyncvox.Client(API_KEY, server.base_url)
    await client.get_call("a")
    await client.aclose()
    del client
    gc.collect()
    assert [w for w in recwarn if issubclass(w.category, ResourceWarning)] == []


# -- configuration ------------------------------------------------------------------------


def test_missing_api_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCVOX_API_KEY", raising=False)
    with pytest.raises(ConfigurationError) as info:
        asyncvox.Client(base_url="http://127.0.0.1:9/v1")
    assert "api_key" in str(info.value)
    assert "ASYNCVOX_API_KEY" in str(info.value)
    with pytest.raises(ConfigurationError):
        asyncvox.Client("", "http://127.0.0.1:9/v1")


async def test_api_key_from_environment(server: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCVOX_API_KEY", API_KEY)
    async with asyncvox.Client(base_url=server.base_url) as c:
        assert await c.get_call("abc") is not None
    assert server.stats.statuses[200] == 1


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://127.0.0.1/v1",
        "127.0.0.1:8080/v1",
        "localhost/v1",
        "",
        "http://",
        "file:///etc/passwd",
        "ws://127.0.0.1/v1",
    ],
)
def test_non_http_base_url_is_a_configuration_error(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        asyncvox.Client(API_KEY, base_url)


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:abc/v1", "http://127.0.0.1:99999/v1", "http://[::1/v1"]
)
def test_a_base_url_no_request_could_go_to_is_a_configuration_error(base_url: str) -> None:
    # Accepted, every fetch raised aiohttp's bare ValueError (and the CLI a traceback).
    with pytest.raises(ConfigurationError, match="base_url is not a valid URL"):
        asyncvox.Client(API_KEY, base_url)


def test_non_http_base_url_from_environment_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCVOX_BASE_URL", "ftp://127.0.0.1/v1")
    with pytest.raises(ConfigurationError, match="base_url"):
        asyncvox.Client(API_KEY)


async def test_base_url_from_environment(server: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCVOX_BASE_URL", server.base_url)
    async with asyncvox.Client(API_KEY) as c:
        assert c.base_url == server.base_url
        assert await c.get_call("abc") is not None
    assert server.stats.requests_for("abc") == 1


def test_explicit_base_url_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCVOX_BASE_URL", "http://127.0.0.1:1/env")
    assert asyncvox.Client(API_KEY, "http://127.0.0.1:2/arg").base_url == "http://127.0.0.1:2/arg"


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCVOX_BASE_URL", raising=False)
    assert asyncvox.Client(API_KEY).base_url == asyncvox.DEFAULT_BASE_URL == "https://api.fixa.dev/v1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"concurrency": 0},
        {"timeout": 0},
        {"timeout": -1.0},
        {"max_retries": -1},
        {"rate_limit": 0},
    ],
)
def test_bad_settings_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        asyncvox.Client(API_KEY, "http://127.0.0.1:9/v1", **kwargs)


@pytest.mark.parametrize("call_id", ["", None, 123, b"abc", ["a"], 1.5])
async def test_invalid_call_id_raises_before_any_request(
    server: DemoServer, client: asyncvox.Client, call_id: Any
) -> None:
    with pytest.raises(InvalidCallIdError) as info:
        await client.get_call(call_id)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, AsyncvoxError)
    with pytest.raises(InvalidCallIdError):
        await client.fetch(call_id)
    assert server.stats.requests == 0


# -- the concurrency cap ------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_concurrent_calls_never_exceed_the_cap(concurrency: int) -> None:
    profile = FaultProfile(latency=(0.01, 0.02))
    async with (
        DemoServer(api_key=API_KEY, turns=2, profile=profile) as server,
        asyncvox.Client(API_KEY, server.base_url, concurrency=concurrency) as c,
    ):
        ids = [f"cap-{i}" for i in range(10 * concurrency)]
        calls = await asyncio.gather(*(c.get_call(i) for i in ids))
    assert [call.customer_call_id if call else None for call in calls] == ids
    assert server.stats.requests == len(ids)
    assert server.stats.peak_in_flight <= concurrency
    assert c.governor.peak_in_flight <= concurrency
    assert server.stats.peak_in_flight >= min(concurrency, 2)  # the cap was actually reached for


# -- regressions found in review -----------------------------------------------------------


async def test_a_proxy_page_echoing_the_key_does_not_leak_it(server: DemoServer) -> None:
    key = server.api_key
    echo = f"<html><pre>GET /v1/calls/x\nAuthorization: Bearer {key}\n</pre>bad gateway</html>".encode()
    server.script("x", [Fault(status=502, body=echo, content_type="text/html")])
    async with asyncvox.Client(key, server.base_url) as client:
        outcome = await client.fetch("x", max_retries=0)
    error = outcome.error
    assert isinstance(error, asyncvox.ServerError)
    assert key not in str(error) and key not in repr(error)
    assert key.encode() not in error.body
    assert "Authorization: Bearer ***" in error.message


def test_an_api_key_with_a_control_character_is_refused() -> None:
    with pytest.raises(asyncvox.ConfigurationError, match="control character"):
        asyncvox.Client("sk-abc\x00def", "http://127.0.0.1:1/v1")


def test_backoff_never_exceeds_max_wait_even_with_jitter() -> None:
    policy = asyncvox.RetryPolicy(initial_wait=0.5, max_wait=8.0, jitter=0.25)
    waits = [policy.backoff(n) for n in range(1, 12) for _ in range(50)]
    assert max(waits) <= 8.0
    assert (
        min(policy.backoff(1) for _ in range(50)) >= 0.375
        and max(policy.backoff(1) for _ in range(50)) <= 0.625
    )


async def test_total_timeout_cuts_the_attempt_it_falls_in(server: DemoServer) -> None:
    """A call never outlives its total_timeout by a whole per-attempt timeout."""
    server.script("slow", [Fault.slow(5.0)])
    async with asyncvox.Client(server.api_key, server.base_url, timeout=30.0) as client:
        async with asyncio.timeout(4):  # far below the 30 s attempt timeout
            outcome = await client.fetch("slow", total_timeout=0.3)
    assert isinstance(outcome.error, asyncvox.APITimeoutError)
    assert server.stats.requests_for("slow") == 1


@pytest.mark.real_waits
async def test_a_503_with_retry_after_waits_as_asked(server: DemoServer) -> None:
    server.script("busy", [Fault(status=503, retry_after="1"), 200])
    async with asyncvox.Client(server.api_key, server.base_url) as client:
        started = asyncio.get_running_loop().time()
        outcome = await client.fetch("busy")
        waited = asyncio.get_running_loop().time() - started
    assert outcome.found and outcome.attempts == 2
    assert waited >= 1 - SLACK  # the server's Retry-After; the first backoff is at most 0.625 s


@pytest.mark.real_waits  # wait_for is only computed here, nothing sleeps
def test_retry_after_on_a_503_is_parsed_and_capped() -> None:
    error = asyncvox.errors.status_error(
        503, b'{"success":false,"error":"maintenance"}', "c", retry_after="7"
    )
    assert isinstance(error, ServerError) and error.retry_after == 7.0
    policy = RetryPolicy(max_retry_after=5.0, jitter=0.0)
    assert policy.wait_for(error, 1) == policy.backoff(1)  # beyond the cap: plain backoff
    assert RetryPolicy().wait_for(error, 1) == 7.0


HUGE_RETRY_AFTER = "1" + "0" * 400  # digits only, as RFC 9110 says, and past float's range


async def test_a_retry_after_of_hundreds_of_digits_is_that_ids_failure(server: DemoServer) -> None:
    server.script("bad", [Fault.rate_limited(HUGE_RETRY_AFTER)])
    async with asyncvox.Client(API_KEY, server.base_url, concurrency=1) as client:
        outcomes = await client.fetch_calls(["ok-1", "bad", "ok-2"])
        assert [o.call_id for o in outcomes] == ["ok-1", "bad", "ok-2"]
        assert outcomes[0].call is not None and outcomes[2].call is not None
        assert isinstance(outcomes[1].error, asyncvox.RateLimitError)
        # The slot went back: with concurrency 1 a leaked one would hold every later call.
        assert client.governor.in_flight == 0
        assert (await client.fetch("ok-3")).call is not None


async def test_a_not_yet_404s_retry_after_of_thousands_of_digits_is_no_crash(server: DemoServer) -> None:
    server.analysis_retry_after = "9" * 5000
    server.script_analysis("late", visible_after=math.inf)
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        outcome = await client.fetch("late")
    assert outcome.error is None and outcome.call is None
