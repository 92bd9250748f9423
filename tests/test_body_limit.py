"""A server cannot fill the client's memory: ``max_body_bytes`` (a hostile or broken
server, a proxy's endless page, a gzip bomb), against a real loopback server.

A 200 over the limit is that id's :class:`~asyncvox.ResponseTooLargeError` (not retried,
the batch goes on, the pool stays usable); an error status's body is cut at the limit
and mapped as usual; under the limit, every way of sending a body (declared, chunked,
gzip) decodes as before.
"""

from __future__ import annotations

import asyncio
import gzip
import pickle
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from conftest import API_KEY

import asyncvox
from asyncvox.testing import envelope, synth_call

LIMIT = 64 * 1024
#: A valid call 16 times the limit (its notes are long).
BIG_CALL = {**synth_call("big", turns=2), "notes": "x" * (16 * LIMIT)}


@dataclass
class Sent:
    """What the loopback server sent for its endless answers."""

    requests: list[str] = field(default_factory=list)
    endless_bytes: int = 0
    endless_over: asyncio.Event = field(default_factory=asyncio.Event)


async def _chunked(request: web.Request, body: bytes, status: int = 200) -> web.StreamResponse:
    resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(0, len(body), 1000):
        await resp.write(body[i : i + 1000])
    await resp.write_eof()
    return resp


@pytest.fixture
async def odd_server() -> AsyncIterator[tuple[str, Sent]]:
    sent = Sent()

    async def handle(request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        sent.requests.append(call_id)
        if call_id == "big":
            return web.Response(body=envelope(BIG_CALL), content_type="application/json")
        if call_id == "chunked":
            return await _chunked(request, envelope(synth_call("chunked", turns=40)))
        if call_id == "gzip":
            body = gzip.compress(envelope(synth_call("gzip", turns=40)))
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            return web.Response(body=body, headers=headers)
        if call_id == "bomb":
            # 64 MiB of JSON whitespace in ~64 kB of gzip: small on the wire, huge inflated.
            body = gzip.compress(b'{"success":true,"call":' + b" " * (64 * 1024 * 1024), compresslevel=9)
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            return web.Response(body=body, headers=headers)
        if call_id == "endless":
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            try:
                await resp.write(b'{"success":true,"call":{"id":"endless","notes":"')
                while sent.endless_bytes < 10_000 * LIMIT:  # ~640 MiB: never reached
                    await resp.write(b"x" * 16384)
                    sent.endless_bytes += 16384
            except (ConnectionError, RuntimeError):
                pass  # the client hung up: what the test wants
            finally:
                sent.endless_over.set()
            return resp
        if call_id.startswith("echo-"):  # a page echoing the request's headers
            pad = int(call_id[5:])
            page = b"x" * pad + b"<p>" + request.headers["Authorization"].encode() + b"</p>"
            return await _chunked(request, page, status=502)
        if call_id == "gone":  # the API's own 404, sent chunked (so it goes the capped way)
            return await _chunked(request, b'{"success":false,"error":"Call not found"}', status=404)
        if call_id == "big-500":
            return await _chunked(request, b"<html>" + b"e" * (4 * LIMIT), status=500)
        return web.Response(body=envelope(synth_call(call_id, turns=2)), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/calls/{call_id}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", sent
    await runner.cleanup()


async def test_a_success_over_the_limit_is_that_ids_error_and_is_not_retried(
    odd_server: tuple[str, Sent],
) -> None:
    base, sent = odd_server
    async with asyncvox.Client(API_KEY, base, max_body_bytes=LIMIT, max_retries=3) as client:
        outcome = await client.fetch("big")
    error = outcome.error
    assert isinstance(error, asyncvox.ResponseTooLargeError)
    assert (error.call_id, error.limit, error.declared) == ("big", LIMIT, len(envelope(BIG_CALL)))
    assert outcome.attempts == 1 and sent.requests == ["big"]
    assert "max_body_bytes=65,536" in str(error) and "'big'" in str(error)
    assert API_KEY not in str(error) + repr(error)


async def test_the_same_call_under_a_higher_limit_or_none_is_read(odd_server: tuple[str, Sent]) -> None:
    base, _ = odd_server
    for limit in (None, 32 * LIMIT):
        async with asyncvox.Client(API_KEY, base, max_body_bytes=limit) as client:
            call = await client.get_call("big")
        assert call is not None and call.notes == BIG_CALL["notes"]


async def test_chunked_and_gzip_answers_under_the_limit_decode_as_before(
    odd_server: tuple[str, Sent],
) -> None:
    base, _ = odd_server
    # Exactly the larger one's size: a body at the limit is read.
    limit = max(len(envelope(synth_call(i, turns=40))) for i in ("chunked", "gzip"))
    async with asyncvox.Client(API_KEY, base, max_body_bytes=limit) as client:
        outcomes = await client.fetch_calls(["chunked", "gzip", "plain"])
    assert [o.error for o in outcomes] == [None, None, None]
    expected = [synth_call(i, turns=40 if i != "plain" else 2)["id"] for i in ("chunked", "gzip", "plain")]
    assert [o.call.id if o.call else None for o in outcomes] == expected


async def test_an_endless_answer_is_cut_off_and_the_batch_goes_on(odd_server: tuple[str, Sent]) -> None:
    base, sent = odd_server
    ids = [f"a-{i}" for i in range(10)] + ["endless"] + [f"b-{i}" for i in range(10)]
    async with asyncvox.Client(API_KEY, base, max_body_bytes=LIMIT, concurrency=2) as client:
        outcomes = await client.fetch_calls(ids)
        await asyncio.wait_for(sent.endless_over.wait(), 30)
        # The pool is still good for more (the cut connection was closed, not reused).
        assert await client.get_call("after") is not None
    bad = outcomes[10]
    assert isinstance(bad.error, asyncvox.ResponseTooLargeError) and bad.error.declared is None
    assert all(o.found for o in outcomes if o is not bad)
    # Stopped reading near the limit: the server could only send what socket buffers hold.
    assert sent.endless_bytes < 200 * LIMIT


async def test_a_gzip_bomb_stops_at_the_limit_inflated(odd_server: tuple[str, Sent]) -> None:
    base, _ = odd_server
    async with asyncvox.Client(API_KEY, base, max_body_bytes=LIMIT) as client:
        outcome = await client.fetch("bomb")
    assert isinstance(outcome.error, asyncvox.ResponseTooLargeError)
    assert outcome.error.declared is None  # the wire size says nothing of the inflated one


async def test_an_error_status_with_a_huge_body_is_mapped_with_its_body_cut(
    odd_server: tuple[str, Sent],
) -> None:
    base, sent = odd_server
    async with asyncvox.Client(API_KEY, base, max_body_bytes=LIMIT, max_retries=2) as client:
        outcome = await client.fetch("big-500")
    assert isinstance(outcome.error, asyncvox.ServerError)
    assert len(outcome.error.body) == LIMIT and outcome.error.body.startswith(b"<html>")
    assert outcome.attempts == 3 and sent.requests.count("big-500") == 3  # a 500 is retried as ever


@pytest.mark.parametrize("bad", [0, -1, 1023, True, 1.5, "64"])
def test_a_bad_max_body_bytes_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(asyncvox.ConfigurationError, match="max_body_bytes"):
        asyncvox.Client(API_KEY, "http://127.0.0.1:1/v1", max_body_bytes=bad)  # type: ignore[arg-type]


def test_the_error_pickles_with_its_figures() -> None:
    err = asyncvox.ResponseTooLargeError(10, declared=99, call_id="c")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is asyncvox.ResponseTooLargeError
    assert (copy.limit, copy.declared, copy.call_id) == (10, 99, "c")
    assert str(copy) == str(err)


async def test_a_cut_error_body_never_keeps_part_of_an_echoed_key(odd_server: tuple[str, Sent]) -> None:
    """A proxy's page that echoes the Authorization header, cut by the limit inside the
    key: the part of the key before the cut is blanked as the whole key would be."""
    base, _ = odd_server
    limit = 1024
    async with asyncvox.Client(API_KEY, base, max_body_bytes=limit, max_retries=0) as client:
        for cut_after in (1, 5, len(API_KEY) - 1):
            pad = limit - len("<p>Bearer ") - cut_after
            outcome = await client.fetch(f"echo-{pad}")
            assert isinstance(outcome.error, asyncvox.ServerError)
            body = outcome.error.body
            assert len(body) <= limit + 3 and body.endswith(b"Bearer ***"), body[-30:]
            assert API_KEY[:cut_after].encode() not in body[-40:]
            assert API_KEY[:cut_after] not in str(outcome.error)[-60:]


async def test_the_small_limit_floor_keeps_the_apis_own_404(odd_server: tuple[str, Sent]) -> None:
    base, _ = odd_server
    async with asyncvox.Client(API_KEY, base, max_body_bytes=1024) as client:
        outcome = await client.fetch("gone")
    assert outcome.error is None and not outcome.found  # the API's own not found, not a batch-ender
