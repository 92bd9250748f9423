"""The exception tree: status -> exception mapping, messages, Retry-After, pickling."""

from __future__ import annotations

import email.utils
import json
import pickle
import time

import pytest

from asyncvox import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncvoxError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DecodeError,
    EndpointNotFoundError,
    InvalidCallIdError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from asyncvox.errors import body_excerpt, is_api_not_found, parse_retry_after, status_error


def _api_body(error: str) -> bytes:
    return b'{"success":false,"error":"' + error.encode() + b'"}'


HTML_502 = b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body><h1>502</h1>\n  nginx</body></html>"

# -- the contract's response table -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (
            401,
            _api_body("Invalid or missing Bearer token"),
            AuthenticationError,
            "Invalid or missing Bearer token",
        ),
        (401, _api_body("Invalid Bearer token"), AuthenticationError, "Invalid Bearer token"),
        (
            403,
            _api_body("This API key may not read calls"),
            PermissionDeniedError,
            "This API key may not read calls",
        ),
        (400, _api_body("Invalid request"), BadRequestError, "Invalid request"),
        (422, _api_body("Unprocessable call id"), BadRequestError, "Unprocessable call id"),
        (429, _api_body("Too many requests"), RateLimitError, "Too many requests"),
        (500, _api_body("Internal server error"), ServerError, "Internal server error"),
        (502, _api_body("Bad gateway"), ServerError, "Bad gateway"),
        (503, _api_body("Service unavailable"), ServerError, "Service unavailable"),
        (504, _api_body("Gateway timeout"), ServerError, "Gateway timeout"),
        (418, _api_body("I'm a teapot"), APIStatusError, "I'm a teapot"),
        (409, _api_body("Conflict"), APIStatusError, "Conflict"),
    ],
)
def test_status_error_maps_api_json(
    status: int, body: bytes, cls: type[APIStatusError], message: str
) -> None:
    err = status_error(status, body, "call-7")
    assert type(err) is cls
    assert isinstance(err, APIStatusError)
    assert isinstance(err, AsyncvoxError)
    assert err.status == status
    assert err.message == message
    assert err.call_id == "call-7"
    assert err.body == body


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (400, BadRequestError),
        (422, BadRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
        (418, APIStatusError),
    ],
)
def test_status_error_maps_non_json_bodies_to_an_excerpt(status: int, cls: type[APIStatusError]) -> None:
    err = status_error(status, HTML_502, "call-8")
    assert type(err) is cls
    assert err.status == status
    # whitespace collapsed into one line, the page's text kept
    assert (
        err.message
        == "<html> <head><title>502 Bad Gateway</title></head> <body><h1>502</h1> nginx</body></html>"
    )
    assert "\n" not in str(err)
    assert err.body == HTML_502


def test_api_not_found_404_is_recognised() -> None:
    body = _api_body("Call not found")
    assert is_api_not_found(body)
    err = status_error(404, body, "gone")
    assert not isinstance(err, EndpointNotFoundError)
    assert err.status == 404
    assert err.message == "Call not found"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html><head><title>404 Not Found</title></head><body>nginx</body></html>", id="html"),
        pytest.param(b'{"message":"no Route matched with those values"}', id="proxy-json"),
        pytest.param(b'{"error":"Not Found","statusCode":404}', id="proxy-json-with-error"),
        pytest.param(b'{"success":true}', id="success-true"),
        pytest.param(b"[]", id="json-array"),
        pytest.param(b"", id="empty"),
        pytest.param(b"Cannot GET /v2/calls/abc", id="express-default-text"),
    ],
)
def test_404_that_is_not_the_api_answer_is_endpoint_not_found(body: bytes) -> None:
    assert not is_api_not_found(body)
    err = status_error(404, body, "abc", path="/v2/calls/abc")
    assert type(err) is EndpointNotFoundError
    assert isinstance(err, APIStatusError)
    assert err.status == 404
    assert "/v2/calls/abc" in err.message
    assert "/v2/calls/abc" in str(err)
    assert "base_url" in err.message
    assert err.body == body


def test_endpoint_not_found_message_carries_the_server_text() -> None:
    err = status_error(404, b'{"message":"no Route matched"}', "abc", path="/v1/calls/abc")
    assert "no Route matched" in err.message


def test_error_text_that_is_not_a_string_is_kept_as_json() -> None:
    err = status_error(400, b'{"success":false,"error":{"code":"bad_id","field":"id"}}', "c")
    assert err.message == '{"code":"bad_id","field":"id"}'


def test_api_envelope_without_error_text_uses_an_excerpt() -> None:
    err = status_error(500, b'{"success":false}', "c")
    assert type(err) is ServerError
    assert err.message == '{"success":false}'


def test_long_non_json_body_is_cut_to_an_excerpt() -> None:
    body = b"<html>" + b"x" * 5000 + b"</html>"
    err = status_error(502, body, "c")
    assert err.message.startswith("<html>xxx")
    assert err.message.endswith("...")
    assert len(err.message) <= 203
    assert err.body == body  # the whole body stays available


def test_body_excerpt_edge_cases() -> None:
    assert body_excerpt(b"") == "(empty body)"
    assert body_excerpt(b"   \n\t ") == "(empty body)"
    assert body_excerpt(b"\xff\xfebad bytes") == "\ufffd\ufffdbad bytes"
    assert body_excerpt(b"a\r\n\r\nb") == "a b"


def test_rate_limit_error_parses_retry_after() -> None:
    err = status_error(429, _api_body("Too many requests"), "c", retry_after="25")
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 25.0
    assert "retry after 25 s" in str(err)
    no_header = status_error(429, _api_body("Too many requests"), "c")
    assert isinstance(no_header, RateLimitError)
    assert no_header.retry_after is None


# -- str and repr ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 429, 500, 502, 503, 504, 418])
def test_str_and_repr_carry_status_message_and_call_id(status: int) -> None:
    err = status_error(status, _api_body("the server says no"), "id-with-🙂", path="/v1/calls/x")
    for text in (str(err), repr(err)):
        assert str(status) in text
        assert "the server says no" in text
        assert "id-with-🙂" in text
    assert repr(err).startswith(type(err).__name__ + "(")


def test_str_of_non_json_error_carries_excerpt() -> None:
    err = status_error(503, b"<h1>Service Unavailable</h1>", "c-1")
    assert str(err) == "HTTP 503 for call_id='c-1': <h1>Service Unavailable</h1>"


def test_decode_error_str_carries_call_id_and_size() -> None:
    err = DecodeError("response is not JSON", raw=b"12345", call_id="c-2")
    assert "c-2" in str(err)
    assert "5 bytes" in str(err)
    assert err.raw == b"12345"


def test_invalid_call_id_error_is_a_value_error() -> None:
    assert issubclass(InvalidCallIdError, ValueError)
    assert issubclass(InvalidCallIdError, AsyncvoxError)
    assert issubclass(APITimeoutError, APIConnectionError)
    assert issubclass(EndpointNotFoundError, APIStatusError)
    assert issubclass(ConfigurationError, AsyncvoxError)


# -- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("3", 3.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("007", 7.0),
        ("0" * 400 + "9", 9.0),
        ("9" * 15, 999_999_999_999_999.0),
    ],
)
def test_parse_retry_after_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize("digits", [16, 309, 5000])
def test_parse_retry_after_of_many_digits_is_a_wait_beyond_any_cap_not_a_crash(digits: int) -> None:
    # int() refuses over 4300 digits and float() overflows over 308: a server's header
    # must never raise out of the request path (it ended the batch, leaking a slot).
    seconds = parse_retry_after("1" + "0" * (digits - 1))
    assert seconds is not None and 1e14 < seconds < float("inf")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "soon",
        "Tomorrow at noon",
        "1,5",
        "nan",
        "Wed, 99 Foo 2015 xx:yy GMT",
        # not delta-seconds (RFC 9110 allows digits only): as if no header was sent
        "inf",
        "Infinity",
        "-inf",
        "1e9",
        "1e1",
        "1_0",
        "0.25",
        "1.5",
        "-4",
        "+3",
        "\u0663",  # a non-ASCII digit
        "Wed, 21 Oct 99999 07:28:00 GMT",
    ],
)
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_parse_retry_after_http_date_in_the_future() -> None:
    now = 1_800_000_000.0
    value = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(value, now=now) == pytest.approx(30.0)


def test_parse_retry_after_http_date_against_the_clock() -> None:
    value = email.utils.formatdate(time.time() + 100, usegmt=True)
    seconds = parse_retry_after(value)
    assert seconds is not None
    assert 98.0 <= seconds <= 100.0


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    now = 1_800_000_000.0
    assert parse_retry_after(email.utils.formatdate(now - 5, usegmt=True), now=now) == 0.0


# -- pickling ----------------------------------------------------------------------------


def _round_trip(err: BaseException) -> BaseException:
    return pickle.loads(pickle.dumps(err))  # type: ignore[no-any-return]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 500, 503, 418])
def test_status_errors_pickle_round_trip(status: int) -> None:
    err = status_error(status, _api_body("nope"), "call-p", path="/v1/calls/call-p")
    copy = _round_trip(err)
    assert type(copy) is type(err)
    assert isinstance(copy, APIStatusError)
    assert (copy.status, copy.message, copy.call_id, copy.body) == (
        err.status,
        err.message,
        err.call_id,
        err.body,
    )
    assert str(copy) == str(err)
    assert repr(copy) == repr(err)


def test_rate_limit_error_pickle_keeps_retry_after() -> None:
    err = status_error(429, _api_body("slow down"), "call-r", retry_after="12")
    copy = _round_trip(err)
    assert isinstance(copy, RateLimitError)
    assert copy.retry_after == 12.0
    assert copy.message == "slow down"
    assert str(copy) == str(err)


def test_decode_error_pickle_keeps_raw_call_id_and_message() -> None:
    err = DecodeError("response is not JSON", raw=b"<html>", call_id="call-d")
    copy = _round_trip(err)
    assert isinstance(copy, DecodeError)
    assert copy.raw == b"<html>"
    assert copy.call_id == "call-d"
    assert str(copy) == str(err)


@pytest.mark.parametrize("cls", [APIConnectionError, APITimeoutError])
def test_connection_errors_pickle_keep_call_id(cls: type[APIConnectionError]) -> None:
    err = cls("connection failed for call_id='c'", call_id="c")
    copy = _round_trip(err)
    assert type(copy) is cls
    assert isinstance(copy, APIConnectionError)
    assert copy.call_id == "c"
    assert str(copy) == str(err)


@pytest.mark.parametrize("cls", [ConfigurationError, InvalidCallIdError, AsyncvoxError])
def test_plain_errors_pickle(cls: type[AsyncvoxError]) -> None:
    err = cls("something is wrong")
    copy = _round_trip(err)
    assert type(copy) is cls
    assert str(copy) == "something is wrong"


@pytest.mark.parametrize("status", [400, 429, 500])
def test_a_huge_api_error_text_is_clipped_in_the_message_and_kept_in_the_body(status: int) -> None:
    # A server may put megabytes in its `error` (a stack trace, the request echoed): all of
    # it went into the message, so into every log line that printed the exception.
    text = "boom\n" + "x" * 200_000
    body = json.dumps({"success": False, "error": text}).encode()
    err = status_error(status, body, "call-9")
    assert err.message.startswith("boom x") and err.message.endswith("...")
    assert 1000 <= len(err.message) <= 1003 and "\n" not in err.message
    assert err.body == body and len(str(err)) < 1200
