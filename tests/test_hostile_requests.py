"""Hostile ids, proxies, certificates and headers (issue 10, items 7-11): one id's problem
never ends a batch, and configuration problems end it at once instead of being retried."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
import yarl
from aiohttp import web
from conftest import API_KEY

import asyncvox
from asyncvox.testing import DemoServer, Fault, MockTransport, envelope, synth_call

# -- 7. ids that cannot be encoded -------------------------------------------------------


async def test_an_id_with_a_lone_surrogate_is_an_invalid_call_id(client: asyncvox.Client) -> None:
    with pytest.raises(asyncvox.InvalidCallIdError, match="surrogate"):
        await client.get_call("a\ud800b")
    with pytest.raises(asyncvox.InvalidCallIdError):
        await client.fetch("\udcff")


async def test_an_unencodable_id_is_that_ids_outcome_and_the_batch_goes_on(
    client: asyncvox.Client,
) -> None:
    outcomes = await client.fetch_calls(["ok-1", "a\ud800b", "ok-2"])
    assert [o.call_id for o in outcomes] == ["ok-1", "a\ud800b", "ok-2"]
    assert outcomes[0].found and outcomes[2].found
    assert isinstance(outcomes[1].error, asyncvox.InvalidCallIdError)
    assert outcomes[1].attempts == 0


# -- 8. a proxy's own 404 for one id -----------------------------------------------------


class EncodedSlashProxy:
    """Apache's default: a 404 page of its own for any path holding an encoded slash;
    everything else is passed to the API."""

    def __init__(self, api: DemoServer) -> None:
        self.api = api
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if "%2F" in request.raw_path.upper():
            page = "<html><body>Not Found</body></html>"
            return web.Response(status=404, text=page, content_type="text/html")
        assert self.session is not None
        call_id = request.raw_path.rsplit("/", 1)[-1]
        url = yarl.URL(f"{self.api.base_url}/calls/{call_id}", encoded=True)
        async with self.session.get(url, headers={"Authorization": request.headers["Authorization"]}) as up:
            return web.Response(status=up.status, body=await up.read(), content_type="application/json")

    async def __aenter__(self) -> str:
        self.session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None and self.session is not None
        await self.runner.cleanup()
        await self.session.close()


async def test_a_non_api_404_after_the_api_answered_is_that_ids_failure(server: DemoServer) -> None:
    async with EncodedSlashProxy(server) as base:
        ids = [f"ok-{i}" for i in range(20)] + ["team/call-1"] + [f"later-{i}" for i in range(20)]
        async with asyncvox.Client(API_KEY, base, concurrency=1) as client:
            outcomes = await client.fetch_calls(ids)
    assert len(outcomes) == len(ids)
    bad = outcomes[20]
    assert bad.call_id == "team/call-1"
    assert isinstance(bad.error, asyncvox.EndpointNotFoundError)
    assert all(o.found for o in outcomes if o is not bad)


async def test_a_non_api_404_before_any_api_answer_still_aborts_as_a_wrong_base_url(
    server: DemoServer,
) -> None:
    async with EncodedSlashProxy(server) as base, asyncvox.Client(API_KEY, base, concurrency=1) as client:
        with pytest.raises(asyncvox.EndpointNotFoundError):
            await client.fetch_calls(["team/call-1", *[f"ok-{i}" for i in range(50)]])


async def test_an_ids_cr_lf_never_reaches_an_error_message(server: DemoServer) -> None:
    async with EncodedSlashProxy(server) as base, asyncvox.Client(API_KEY, base) as client:
        outcome = await client.fetch("evil/\r\nINFO forged log line")
    assert isinstance(outcome.error, asyncvox.EndpointNotFoundError)
    text = str(outcome.error)
    assert "\r" not in text and "\n" not in text
    assert "%0D%0A" in text  # the path as sent, still encoded


def test_a_servers_error_text_with_newlines_is_one_line() -> None:
    err = asyncvox.errors.status_error(500, b'{"success":false,"error":"boom\\r\\nFAKE 200 OK"}', "c")
    assert err.message == "boom FAKE 200 OK"
    assert "\n" not in str(err) and "\r" not in str(err)


async def test_a_redirect_to_a_location_that_is_not_utf8_is_one_encodable_line() -> None:
    # aiohttp's error text carries the server's bytes (lone surrogates) and, for other
    # errors, newlines: as they were, the CLI could not write the failure (a traceback
    # ended the run) and a log line could be split.
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"/calls/bad " in head:
            location = b"http://\xff\xfe.example/"
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location)
        else:
            body = envelope(synth_call("ok", turns=1))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with asyncvox.Client(API_KEY, f"http://127.0.0.1:{port}/v1", max_retries=0) as client:
            outcomes = await client.fetch_calls(["ok", "bad"])
    finally:
        listener.close()
        await listener.wait_closed()
    assert outcomes[0].call is not None
    error = outcomes[1].error
    assert isinstance(error, asyncvox.APIConnectionError)
    text = str(error)
    text.encode("utf-8")  # no lone surrogate left
    assert "\n" not in text and "Redirect" in text, text


# -- 9. an untrusted certificate --------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS tests need the `openssl` command (Debian package openssl) to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_server(self_signed: tuple[Path, Path]) -> AsyncIterator[tuple[str, list[int]]]:
    """A TLS server with a self-signed certificate; counts the requests that got through."""
    cert, key = self_signed
    seen: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(1)
        call_id = request.match_info["call_id"]
        return web.Response(body=envelope(synth_call(call_id, turns=2)), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/calls/{call_id}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}/v1", seen
    await runner.cleanup()


async def test_an_untrusted_certificate_is_not_retried_and_says_how_to_trust_a_ca(
    tls_server: tuple[str, list[int]],
) -> None:
    base, seen = tls_server
    async with asyncvox.Client(API_KEY, base, max_retries=4) as client:
        outcome = await client.fetch("c-1")
    assert isinstance(outcome.error, asyncvox.CertificateError)
    assert isinstance(outcome.error, asyncvox.ConfigurationError)
    assert outcome.attempts == 1  # no retry: every attempt would fail the same way
    assert "SSL_CERT_FILE" in str(outcome.error)
    assert seen == []


async def test_an_untrusted_certificate_ends_a_batch_at_once(tls_server: tuple[str, list[int]]) -> None:
    base, _ = tls_server
    async with asyncvox.Client(API_KEY, base, concurrency=4) as client:
        stream = client.iter_calls([f"id-{i}" for i in range(200)])
        with pytest.raises(asyncvox.CertificateError):
            async for _ in stream:
                pass
        assert stream.stats.requests <= 4 + 4  # at most the first wave, never 200 x retries


async def test_trusting_the_ca_with_ssl_cert_file_works(
    tls_server: tuple[str, list[int]], self_signed: tuple[Path, Path]
) -> None:
    base, seen = tls_server
    cert, _ = self_signed
    script = textwrap.dedent(
        f"""
        import asyncio, asyncvox
        async def main():
            async with asyncvox.Client({API_KEY!r}, {base!r}) as c:
                call = await c.get_call("trusted-1")
                print("found" if call is not None else "not found")
        asyncio.run(main())
        """
    )

    # CA settings are read when aiohttp builds its default SSL context, at import: a fresh
    # process with SSL_CERT_FILE set is what a user does. The server runs on this loop.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        env={**os.environ, "SSL_CERT_FILE": str(cert)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "found"
    assert seen == [1]


# -- 10. total_timeout while waiting for rate_limit's pacing ----------------------------


def _found(url: str) -> asyncvox.Response:
    return asyncvox.Response(200, envelope(synth_call(url.rsplit("/", 1)[-1], turns=2)))


@pytest.mark.real_waits
async def test_total_timeout_bounds_the_wait_for_rate_limit_pacing() -> None:
    mock = MockTransport(_found)
    async with asyncvox.Client(API_KEY, "http://api.test/v1", transport=mock, rate_limit=1.0) as client:
        outcomes = await asyncio.gather(*(client.fetch(f"p-{i}", total_timeout=1.5) for i in range(10)))
    sent = [o for o in outcomes if o.found]
    refused = [o for o in outcomes if not o.found]
    assert len(sent) == 2  # starts at 0 s and 1 s; the third would start at 2 s > 1.5 s
    assert len(mock.requests) == 2
    for outcome in refused:
        assert isinstance(outcome.error, asyncvox.APITimeoutError)
        assert outcome.error.sent is False and outcome.attempts == 0
        assert "rate_limit" in str(outcome.error)


@pytest.mark.real_waits
async def test_a_call_that_never_sends_gives_its_rate_limit_start_back() -> None:
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    def answer(url: str) -> asyncvox.Response:
        starts.append(loop.time())
        return _found(url)

    mock = MockTransport(answer)
    async with asyncvox.Client(API_KEY, "http://api.test/v1", transport=mock, rate_limit=1.0) as client:
        await client.fetch("first")  # starts now; the next start is 1 s later
        abandoned = asyncio.create_task(client.fetch("abandoned"))  # reserves that start ...
        await asyncio.sleep(0)
        abandoned.cancel()  # ... and never sends
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        await client.fetch("next")
    assert mock.requests[-1].endswith("/next") and len(mock.requests) == 2
    # "next" takes the abandoned start (1 s after "first"), not the one after it (2 s)
    assert starts[1] - starts[0] < 1.5


# -- 11. Retry-After values the RFC does not allow ---------------------------------------


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e9", "1e1", "1_0"])
async def test_a_retry_after_that_is_not_delta_seconds_counts_as_no_header(
    server: DemoServer, value: str
) -> None:
    server.script("odd", [Fault.rate_limited(value), 200])
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        outcome = await client.fetch("odd")
    assert outcome.found and outcome.attempts == 2


@pytest.mark.real_waits
async def test_a_huge_valid_retry_after_never_pauses_the_client_beyond_max_retry_after(
    server: DemoServer,
) -> None:
    server.script("huge", [Fault.rate_limited("999999")])
    policy = asyncvox.RetryPolicy(max_retry_after=1.0)
    async with asyncvox.Client(API_KEY, server.base_url, retry=policy) as client:
        outcome = await client.fetch("huge")
        assert isinstance(outcome.error, asyncvox.RateLimitError)
        assert outcome.error.retry_after == 999999.0  # reported as sent ...
        assert outcome.attempts == 1  # ... not waited for
        assert client.governor.paused_for <= 1.0  # and the client pauses at most the cap


# -- an error body that echoes the api key JSON-escaped ----------------------------------

#: A key with a slash (base64 keys have them): PHP's json_encode, and others, write `\/`.
SLASHED_KEY = "sk/live+KEY=0123456789"


def _json_escaped(key: str, every: bool) -> bytes:
    if every:  # any character may be written as \uXXXX, as some encoders do for all
        return "".join(f"\\u{ord(c):04x}" for c in key).encode()
    return key.replace("/", "\\/").encode()


@pytest.mark.parametrize("every", [False, True], ids=["escaped-slash", "all-u-escapes"])
async def test_an_error_body_echoing_the_key_json_escaped_never_carries_it(every: bool) -> None:
    escaped = _json_escaped(SLASHED_KEY, every)
    echo_401 = b'{"success":false,"error":"Invalid Bearer token ' + escaped + b'"}'
    echo_502 = b'{"success":false,"error":{"authorization":"Bearer ' + escaped + b'"}}'
    async with DemoServer(api_key=SLASHED_KEY, turns=2) as server:
        server.script("echo-401", [Fault(status=401, body=echo_401)])
        server.script("echo-502", [Fault(status=502, body=echo_502)])
        async with asyncvox.Client(SLASHED_KEY, server.base_url, max_retries=0) as client:
            outcomes = [await client.fetch(call_id) for call_id in ("echo-502", "echo-401")]
    errors = [o.error for o in outcomes]
    assert isinstance(errors[0], asyncvox.ServerError) and isinstance(errors[1], asyncvox.AuthenticationError)
    for error in errors:
        assert isinstance(error, asyncvox.APIStatusError)
        assert SLASHED_KEY not in str(error) + repr(error) + error.message
        assert escaped not in error.body and b"***" in error.body
        assert SLASHED_KEY not in repr(msgspec.json.decode(error.body))  # still JSON, key blanked


# -- a custom transport's headers in lowercase -------------------------------------------


@pytest.mark.parametrize("name", ["retry-after", "RETRY-AFTER"])
async def test_retry_after_from_a_transport_with_lowercase_header_names_is_honoured(name: str) -> None:
    # Header names are case-insensitive; aiohttp's mapping is, but a custom transport's
    # plain dict may not be (httpx and HTTP/2 give names in lowercase): its Retry-After
    # was ignored, so a 429 asking for an hour was retried at once, and a 404's poll hint
    # lost.
    def answer(url: str) -> asyncvox.Response:
        if url.endswith("/limited"):
            return asyncvox.Response(429, b'{"success":false,"error":"slow down"}', {name: "3600"})
        return asyncvox.Response(404, b'{"success":false,"error":"Call not found"}', {name: "7"})

    mock = MockTransport(answer)
    policy = asyncvox.RetryPolicy(max_retry_after=1.0)
    async with asyncvox.Client(API_KEY, "http://api.test/v1", transport=mock, retry=policy) as client:
        outcome = await client.fetch("limited")
        fetched = await client._requester.fetch("gone")
    assert isinstance(outcome.error, asyncvox.RateLimitError)
    assert outcome.error.retry_after == 3600.0 and outcome.attempts == 1  # beyond the cap: not retried
    assert fetched.error is None and fetched.found is None and fetched.poll_after == 7.0
