"""Request and response handling of ``Client.get_call``, with aioresponses (no sockets).

aioresponses patches ``ClientSession._request``; the session's default headers are merged
into the recorded request, so the headers asyncvox sends are visible here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

import asyncvox
from asyncvox import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Call,
    DecodeError,
    EndpointNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

API_KEY = "unit-key-0123456789abcdef"
#: Never contacted: aioresponses answers. Loopback, in case anything slipped through.
BASE = "http://127.0.0.1:9/v1"
ANY_CALL = re.compile(r"^http://127\.0\.0\.1:9/.*$")

CALL_JSON = b'{"id":"cl_1","customerCallId":"abc","status":"completed","latencyP50":0.5}'
FOUND = b'{"success":true,"call":' + CALL_JSON + b',"url":"https://fixa.dev/observe/cl_1"}'
HTML_404 = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>nginx</body></html>"
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body>upstream error</body></html>"


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 does not pass ``stream_writer``, which aiohttp 3.14 requires."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class Mock:
    """aioresponses with the compatible response class and helpers to read what was sent."""

    def __init__(self, mocked: aioresponses) -> None:
        self.mocked = mocked

    def get(self, url: str | re.Pattern[str] = ANY_CALL, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _CompatResponse)
        self.mocked.get(url, **kwargs)

    def sent(self) -> list[tuple[URL, dict[str, Any]]]:
        """Every request sent, as (url, kwargs) in the order of first appearance per url."""
        return [(url, call.kwargs) for (_, url), calls in self.mocked.requests.items() for call in calls]

    def count(self) -> int:
        return len(self.sent())


@pytest.fixture
def mock() -> Iterator[Mock]:
    with aioresponses() as mocked:
        yield Mock(mocked)


@pytest.fixture
async def client() -> AsyncIterator[asyncvox.Client]:
    async with asyncvox.Client(API_KEY, BASE) as c:
        yield c


# -- the request -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call_id", "segment"),
    [
        ("abc-123", "abc-123"),
        ("A.b_c~9-Z", "A.b_c~9-Z"),  # unreserved: as it is
        ("a.b/", "a.b%2F"),
        ("a/b", "a%2Fb"),
        ("a b", "a%20b"),
        ("#", "%23"),
        ("a#frag", "a%23frag"),
        ("a?x=1&y=2", "a%3Fx%3D1%26y%3D2"),
        ("100%", "100%25"),
        ("%2F", "%252F"),
        ("a+b", "a%2Bb"),
        ("é", "%C3%A9"),
        ("通话/1", "%E9%80%9A%E8%AF%9D%2F1"),
        ("🙂", "%F0%9F%99%82"),
        (" padded ", "%20padded%20"),
        ("a\\b", "a%5Cb"),
    ],
)
async def test_call_id_is_percent_encoded_into_one_path_segment(
    mock: Mock, client: asyncvox.Client, call_id: str, segment: str
) -> None:
    mock.get(body=FOUND)
    assert await client.get_call(call_id) is not None
    ((url, _),) = mock.sent()
    assert url.raw_path == "/v1/calls/" + segment
    assert url.raw_path.split("/") == ["", "v1", "calls", segment]
    assert unquote(url.raw_path.rsplit("/", 1)[1]) == call_id
    assert url.raw_query_string == ""
    assert url.raw_fragment == ""
    assert (url.host, url.port) == ("127.0.0.1", 9)


async def test_base_url_trailing_slash_is_not_doubled(mock: Mock) -> None:
    mock.get(body=FOUND)
    async with asyncvox.Client(API_KEY, BASE + "/") as c:
        await c.get_call("abc")
    ((url, _),) = mock.sent()
    assert url.raw_path == "/v1/calls/abc"


async def test_request_headers(mock: Mock, client: asyncvox.Client) -> None:
    mock.get(body=FOUND)
    await client.get_call("abc")
    ((_, kwargs),) = mock.sent()
    headers = kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "application/json"
    assert f"asyncvox/{asyncvox.__version__}" in headers["User-Agent"]


async def test_caller_session_gets_asyncvox_headers_per_request(mock: Mock) -> None:
    mock.get(body=FOUND)
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer not-this-one", "X-App": "mine"}) as session,
        asyncvox.Client(API_KEY, BASE, session=session) as c,
    ):
        await c.get_call("abc")
    ((_, kwargs),) = mock.sent()
    headers = kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "application/json"
    assert f"asyncvox/{asyncvox.__version__}" in headers["User-Agent"]
    assert headers["X-App"] == "mine"


async def test_request_is_a_get(mock: Mock, client: asyncvox.Client) -> None:
    mock.get(body=FOUND)
    await client.get_call("abc")
    assert [method for method, _ in mock.mocked.requests] == ["GET"]


# -- the response table ------------------------------------------------------------------


async def test_200_found_returns_the_call(mock: Mock, client: asyncvox.Client) -> None:
    mock.get(body=FOUND)
    call = await client.get_call("abc")
    assert isinstance(call, Call)
    assert call.id == "cl_1"
    assert call.customer_call_id == "abc"
    assert call.latency_p50 == 0.5


async def test_fetch_outcome_keeps_raw_bytes_and_dashboard_url(mock: Mock, client: asyncvox.Client) -> None:
    mock.get(body=FOUND)
    outcome = await client.fetch("abc")
    assert outcome.found and outcome.ok
    assert outcome.call_id == "abc"
    assert outcome.raw == CALL_JSON
    assert outcome.dashboard_url == "https://fixa.dev/observe/cl_1"
    assert outcome.attempts == 1
    assert outcome.error is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(200, b'{"success":false,"call":null}', id="200-call-null"),
        pytest.param(200, b'{"success":true,"call":null,"url":null}', id="200-success-call-null"),
        pytest.param(200, b'{"success":false,"error":"Call not found"}', id="200-success-false"),
        pytest.param(404, b'{"success":false,"error":"Call not found"}', id="404-api"),
        pytest.param(404, b'{"success":false}', id="404-api-no-error-text"),
    ],
)
async def test_not_found_returns_none(mock: Mock, client: asyncvox.Client, status: int, body: bytes) -> None:
    mock.get(status=status, body=body)
    assert await client.get_call("gone") is None
    assert mock.count() == 1


async def test_not_found_outcome(mock: Mock, client: asyncvox.Client) -> None:
    mock.get(status=404, body=b'{"success":false,"error":"Call not found"}')
    outcome = await client.fetch("gone")
    assert (outcome.call, outcome.error, outcome.raw) == (None, None, None)
    assert outcome.ok and not outcome.found
    assert outcome.attempts == 1


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        pytest.param(
            401,
            b'{"success":false,"error":"Invalid or missing Bearer token"}',
            AuthenticationError,
            "Invalid or missing Bearer token",
            id="401-missing",
        ),
        pytest.param(
            401,
            b'{"success":false,"error":"Invalid Bearer token"}',
            AuthenticationError,
            "Invalid Bearer token",
            id="401-invalid",
        ),
        pytest.param(
            403,
            b'{"success":false,"error":"This key may not read calls"}',
            PermissionDeniedError,
            "This key may not read calls",
            id="403",
        ),
        pytest.param(
            400, b'{"success":false,"error":"Invalid request"}', BadRequestError, "Invalid request", id="400"
        ),
        pytest.param(
            422, b'{"success":false,"error":"Unprocessable"}', BadRequestError, "Unprocessable", id="422"
        ),
        pytest.param(418, b'{"success":false,"error":"teapot"}', APIStatusError, "teapot", id="418-other"),
        pytest.param(501, b'{"success":false,"error":"nope"}', ServerError, "nope", id="501-not-transient"),
    ],
)
async def test_client_errors_raise_at_once_and_are_sent_exactly_once(
    mock: Mock, client: asyncvox.Client, status: int, body: bytes, cls: type[APIStatusError], message: str
) -> None:
    mock.get(status=status, body=body, repeat=True)
    with pytest.raises(cls) as info:
        await client.get_call("abc")
    err = info.value
    assert type(err) is cls
    assert err.status == status
    assert err.message == message
    assert err.call_id == "abc"
    assert err.body == body
    assert mock.count() == 1
    assert client.retry_policy.max_retries >= 1  # retries were available, and not used


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(500, b'{"success":false,"error":"Internal server error"}', id="500"),
        pytest.param(502, HTML_502, id="502-html"),
        pytest.param(503, b'{"success":false,"error":"Service unavailable"}', id="503"),
        pytest.param(504, b"Gateway Timeout", id="504-text"),
    ],
)
async def test_5xx_is_retried_then_raises_server_error(mock: Mock, status: int, body: bytes) -> None:
    mock.get(status=status, body=body, repeat=True)
    async with asyncvox.Client(API_KEY, BASE, max_retries=2) as c:
        with pytest.raises(ServerError) as info:
            await c.get_call("abc")
    assert info.value.status == status
    assert info.value.call_id == "abc"
    assert mock.count() == 3
    if body.startswith(b"{"):
        assert info.value.message in body.decode()
    else:
        assert info.value.message == body.decode()


async def test_429_is_retried_then_raises_rate_limit_error(mock: Mock) -> None:
    mock.get(
        status=429, body=b'{"success":false,"error":"Too many"}', headers={"Retry-After": "0"}, repeat=True
    )
    async with asyncvox.Client(API_KEY, BASE, max_retries=2) as c:
        with pytest.raises(RateLimitError) as info:
            await c.get_call("abc")
    assert info.value.status == 429
    assert info.value.retry_after == 0.0
    assert info.value.message == "Too many"
    assert mock.count() == 3


async def test_transient_failure_then_success(mock: Mock) -> None:
    mock.get(status=503, body=b'{"success":false,"error":"down"}')
    mock.get(status=502, body=HTML_502)
    mock.get(body=FOUND)
    async with asyncvox.Client(API_KEY, BASE, max_retries=3) as c:
        outcome = await c.fetch("abc")
    assert outcome.found
    assert outcome.attempts == 3
    assert outcome.raw == CALL_JSON
    assert mock.count() == 3


async def test_connection_error_is_retried_then_raises(mock: Mock) -> None:
    mock.get(exception=aiohttp.ClientConnectionError("boom"), repeat=True)
    async with asyncvox.Client(API_KEY, BASE, max_retries=2) as c:
        with pytest.raises(APIConnectionError) as info:
            await c.get_call("abc")
    assert not isinstance(info.value, APITimeoutError)
    assert info.value.call_id == "abc"
    assert "abc" in str(info.value)
    assert mock.count() == 3


async def test_timeout_is_retried_then_raises(mock: Mock) -> None:
    mock.get(timeout=True, repeat=True)
    async with asyncvox.Client(API_KEY, BASE, max_retries=1) as c:
        with pytest.raises(APITimeoutError) as info:
            await c.get_call("abc")
    assert isinstance(info.value, APIConnectionError)
    assert info.value.call_id == "abc"
    assert mock.count() == 2


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>oops</html>", id="html"),
        pytest.param(b'{"success":true}', id="no-call"),
        pytest.param(b'[{"id":"cl_1"}]', id="array"),
    ],
)
async def test_200_that_is_not_a_call_raises_decode_error_once(
    mock: Mock, client: asyncvox.Client, body: bytes
) -> None:
    mock.get(body=body, repeat=True)
    with pytest.raises(DecodeError) as info:
        await client.get_call("abc")
    assert info.value.raw == body
    assert info.value.call_id == "abc"
    assert mock.count() == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(HTML_404, "text/html", id="html"),
        pytest.param(
            b'{"message":"no Route matched with those values"}', "application/json", id="proxy-json"
        ),
        pytest.param(b'{"error":"Not Found"}', "application/json", id="json-without-success"),
        pytest.param(b"", "text/plain", id="empty"),
    ],
)
async def test_404_that_is_not_the_api_raises_endpoint_not_found(
    mock: Mock, body: bytes, content_type: str
) -> None:
    mock.get(status=404, body=body, content_type=content_type, repeat=True)
    async with asyncvox.Client(API_KEY, "http://127.0.0.1:9/wrong-prefix") as c:
        with pytest.raises(EndpointNotFoundError) as info:
            await c.get_call("abc")
    err = info.value
    assert isinstance(err, APIStatusError)
    assert err.status == 404
    assert "/wrong-prefix/calls/abc" in err.message
    assert "/wrong-prefix/calls/abc" in str(err)
    assert err.call_id == "abc"
    assert mock.count() == 1


async def test_endpoint_not_found_outcome_is_a_failure_not_a_miss(
    mock: Mock, client: asyncvox.Client
) -> None:
    mock.get(status=404, body=HTML_404, content_type="text/html")
    outcome = await client.fetch("abc")
    assert not outcome.ok
    assert isinstance(outcome.error, EndpointNotFoundError)
    assert outcome.call is None


async def test_per_call_max_retries_zero(mock: Mock, client: asyncvox.Client) -> None:
    mock.get(status=503, body=b'{"success":false,"error":"down"}', repeat=True)
    with pytest.raises(ServerError):
        await client.get_call("abc", max_retries=0)
    assert mock.count() == 1


async def test_api_key_not_in_errors(mock: Mock, client: asyncvox.Client) -> None:
    mock.get(status=401, body=b'{"success":false,"error":"Invalid Bearer token"}')
    mock.get(status=502, body=HTML_502, repeat=True)
    errors: list[BaseException] = []
    for call_id in ("a", "b"):
        try:
            await client.get_call(call_id, max_retries=0)
        except asyncvox.AsyncvoxError as exc:
            errors.append(exc)
    assert [type(e) for e in errors] == [AuthenticationError, ServerError]
    for err in errors:
        assert API_KEY not in str(err)
        assert API_KEY not in repr(err)
        assert API_KEY.encode() not in getattr(err, "body", b"")
    assert API_KEY not in repr(client)
