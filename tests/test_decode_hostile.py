"""Bodies a broken or hostile server sends (issue 10, "Decoding").

The rule: a well-formed JSON call never fails because of its shape, and a body that is not
a call is a :class:`DecodeError` that keeps the bytes; no other exception leaves the decode
path. Each body goes through the functions the client uses (``split_body`` ->
``decode_found``, and ``decode_call``), in the server's canonical envelope and in a
reordered one (which msgspec splits), and the last tests fetch them from a real loopback
server in one batch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

import asyncvox
from asyncvox import Call, DecodeError
from asyncvox._decode import decode_body, decode_call, decode_found, split_body
from asyncvox.errors import ServerError, is_api_not_found, status_error
from asyncvox.testing import DemoServer, Fault, synth_call

URL = "https://fixa.dev/observe/cl_h"

#: A small call with one element in every list, every kind of field set.
BASE: dict[str, Any] = {
    "id": "cl_h",
    "status": "completed",
    "createdAt": "2026-03-04T05:06:07Z",
    "duration": 12.5,
    "notes": "fine",
    "messages": [
        {"id": "m-0", "role": "user", "message": "hello", "time": 1, "toolCalls": [{"name": "f"}]},
        {"id": "m-1", "role": "assistant", "message": "hi there", "duration": 0.5},
    ],
    "evaluationResults": [{"id": "er-0", "success": True, "createdAt": "2026-03-04T05:06:07Z"}],
    "errors": [{"id": "err-0", "description": "slow"}],
    "latencyBlocks": [{"id": "lb-0", "duration": 0.7}],
    "interruptions": [{"id": "in-0", "text": "wait"}],
    "evalSetToSuccess": {"default": True},
    "metadata": {"campaign": "q1"},
}
BASE_CALL = msgspec.json.decode(msgspec.json.encode(BASE), type=Call)
LISTS = {
    "messages": "messages",
    "evaluationResults": "evaluation_results",
    "errors": "errors",
    "latencyBlocks": "latency_blocks",
    "interruptions": "interruptions",
}


def canonical(call: bytes) -> bytes:
    """The envelope exactly as the server writes it (split without parsing)."""
    return b'{"success":true,"call":' + call + b',"url":"' + URL.encode() + b'"}'


def reordered(call: bytes) -> bytes:
    """Another key order: split by msgspec (or the scanner) instead."""
    return b'{"url":"' + URL.encode() + b'", "call": ' + call + b', "success": true}'


ENVELOPES = [pytest.param(canonical, id="canonical"), pytest.param(reordered, id="reordered")]
Envelope = Callable[[bytes], bytes]


def splice(obj: dict[str, Any], members: dict[str, bytes]) -> bytes:
    """``obj`` as JSON with ``members`` (raw JSON text) put in place of those keys."""
    rest = msgspec.json.encode({k: v for k, v in obj.items() if k not in members})
    extra = b"".join(b',"' + k.encode() + b'":' + v for k, v in members.items())
    return rest[:-1] + (extra if rest != b"{}" else extra[1:]) + b"}"


def with_first_message(message: bytes) -> bytes:
    """BASE with its first message replaced by raw JSON text."""
    rest = b",".join(msgspec.json.encode(m) for m in BASE["messages"][1:])
    return splice(BASE, {"messages": b"[" + message + b"," + rest + b"]"})


def deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def decode_through_body(envelope: Envelope, call: bytes) -> tuple[Call, bytes]:
    """What the client does with a 200 body: split, then decode what was found."""
    body = envelope(call)
    found = split_body(body, "h")
    assert found is not None
    assert found.dashboard_url == URL
    decoded = decode_found(found, "h")
    assert bytes(found.call) == call  # exactly the call value, nothing around it
    return decoded, bytes(found.call)


# -- 1. nesting deeper than msgspec (or Python) can recurse -------------------------------

#: The issue's 1,000 levels (beyond the recursion limit on Python 3.11; msgspec may decode
#: it on 3.12+, whose C recursion limit is higher), and 100,000: beyond msgspec everywhere.
DEPTHS = [pytest.param(1_000, id="1k-deep"), pytest.param(100_000, id="100k-deep")]
KINDS = ["array", "object"]


def lost_or_kept(value: Any, depth: int) -> bool:
    """A too-deep value is ``None``; one msgspec could decode is kept (not compared: that
    would recurse as deep)."""
    return value is None or (depth <= 10_000 and isinstance(value, list | dict))


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_metadata_is_none_and_the_rest_decodes(envelope: Envelope, kind: str, depth: int) -> None:
    call = splice(BASE, {"metadata": deep(depth, kind)})
    for decoded in (decode_through_body(envelope, call)[0], decode_call(call, "h")):
        assert lost_or_kept(decoded.metadata, depth)
        assert msgspec.structs.replace(decoded, metadata=None) == msgspec.structs.replace(
            BASE_CALL, metadata=None
        )


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_unknown_field_is_ignored(envelope: Envelope, kind: str, depth: int) -> None:
    for call in (
        splice(BASE, {"extras": deep(depth, kind)}),
        with_first_message(splice(BASE["messages"][0], {"analysis": deep(depth, kind)})),
    ):
        decoded, _ = decode_through_body(envelope, call)
        assert decoded == BASE_CALL


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_tool_call_is_none_in_place(envelope: Envelope, kind: str, depth: int) -> None:
    tool_calls = b'[{"name":"before"},' + deep(depth, kind) + b',{"name":"after"}]'
    call = with_first_message(splice(BASE["messages"][0], {"toolCalls": tool_calls}))
    decoded, _ = decode_through_body(envelope, call)
    assert decoded.messages is not None and BASE_CALL.messages is not None
    first = decoded.messages[0]
    assert first.tool_calls is not None and len(first.tool_calls) == 3
    assert first.tool_calls[0] == {"name": "before"} and first.tool_calls[2] == {"name": "after"}
    assert lost_or_kept(first.tool_calls[1], depth)
    assert msgspec.structs.replace(first, tool_calls=None) == msgspec.structs.replace(
        BASE_CALL.messages[0], tool_calls=None
    )
    assert decoded.messages[1:] == BASE_CALL.messages[1:]
    assert msgspec.structs.replace(decoded, messages=None) == msgspec.structs.replace(
        BASE_CALL, messages=None
    )


def test_deep_envelope_member_does_not_hide_the_call() -> None:
    call = msgspec.json.encode(BASE)
    body = (
        b'{"success":true,"trace":'
        + deep(50_000, "array")
        + b',"call":'
        + call
        + b',"url":"'
        + URL.encode()
        + b'"}'
    )
    found = split_body(body, "h")
    assert found is not None and bytes(found.call) == call and found.dashboard_url == URL
    assert decode_found(found, "h") == BASE_CALL


def test_nesting_msgspec_can_decode_is_kept() -> None:
    call = splice(BASE, {"metadata": deep(200, "array")})
    assert decode_call(call, "h").metadata == msgspec.json.decode(deep(200, "array"))


@pytest.mark.parametrize(
    "value", [b"1e400", b"[1,-1e999]", b'{"n":1e400}'], ids=["float", "in-a-list", "in-an-object"]
)
@pytest.mark.parametrize("key", ["success", "url"])
def test_an_envelope_number_out_of_range_does_not_hide_the_call(key: str, value: bytes) -> None:
    # Well-formed JSON, but no Python float holds 1e400: msgspec's envelope decoder
    # refused the whole body (ValidationError), so a good call was a DecodeError.
    call = msgspec.json.encode(BASE)
    part = b'{"' + key.encode() + b'":' + value + b',"call":' + call
    for rest in (b"", b',"trace":' + deep(50_000, "array"), b',"note":"\\ud83d"'):
        assert decode_body(part + rest + b"}", "h") == (BASE_CALL, call, None)
    with pytest.raises(DecodeError, match="not a call envelope") as info:  # still: not an object
        decode_body(b'[{"success":1e400}]', "h")
    assert info.value.raw == b'[{"success":1e400}]'


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(canonical(deep(5_000, "array")), id="call-is-a-deep-array"),
        pytest.param(b"[" * 100_000, id="unterminated-deep-array"),
        pytest.param(b'{"success":true,"call":{"a":' + b"[" * 100_000 + b"}}", id="call-unterminated-deep"),
        pytest.param(deep(100_000, "object"), id="deep-object-body"),
        pytest.param(b'{"success":true,"call":{"x":' + deep(5_000, "array") + b",}}", id="deep-then-invalid"),
    ],
)
def test_deep_body_that_is_not_a_call_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_body(body, "h")
    assert info.value.raw == body


def test_deep_error_body_maps_to_a_status_error() -> None:
    # A deep 5xx/404 body used to raise RecursionError from the request path itself.
    body = b'{"success":false,"error":' + deep(5_000, "array") + b"}"
    error = status_error(500, body, "h")
    assert isinstance(error, ServerError) and error.body == body
    assert is_api_not_found(body) is False


# -- 2 and 3. the repair is one linear pass; no budget decides what a call is ------------

ELEMENTS: dict[str, list[Any]] = {
    "300-strings": ["x"] * 300,
    "1000-ints": list(range(1000)),
    "1000-nulls": [None] * 1000,
    "1000-bools": [True, False] * 500,
    "1000-floats": [0.5] * 1000,
    "mix": ["a", 1, None, True, 2.5, [1, {"id": "in-a-list"}], [], "{}"] * 125,
}


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("field", sorted(LISTS))
@pytest.mark.parametrize("junk", sorted(ELEMENTS))
def test_non_objects_in_a_list_of_objects_are_dropped(envelope: Envelope, field: str, junk: str) -> None:
    items = ELEMENTS[junk]
    call = msgspec.json.encode({**BASE, field: [*items, *BASE[field], *items]})
    decoded, _ = decode_through_body(envelope, call)
    assert decoded == BASE_CALL  # the objects kept, in order; nothing else touched


def test_every_element_drifted_in_several_fields_keeps_every_element() -> None:
    # Five bad values in every ~60-byte message: more repairs than the old per-byte budget
    # (one per 16 bytes) allowed, so the call used to fail; each is one repair here.
    messages = [
        {"message": str(i), "id": 1, "role": 2, "name": 3, "time": "", "result": 4} for i in range(3_000)
    ]
    decoded = decode_call(msgspec.json.encode({"id": "c", "messages": messages}), "c")
    assert decoded.messages is not None
    assert [m.message for m in decoded.messages] == [str(i) for i in range(3_000)]
    assert all(m.id is m.role is m.name is m.time is m.result is None for m in decoded.messages)


def test_drift_at_every_level_repairs_only_the_bad_values() -> None:
    call = {
        **BASE,
        "duration": "12.5",  # coerced, as before
        "createdAt": "2026-03-04T05:06:07",  # naive: UTC
        "status": 5,
        "evalSetToSuccess": {"default": True, "odd": "maybe", "none": None},
        "messages": [{**BASE["messages"][0], "time": "soon"}, "junk", BASE["messages"][1]],
        "errors": {"not": "a list"},
    }
    decoded = decode_call(msgspec.json.encode(call), "h")
    assert decoded == msgspec.structs.replace(
        BASE_CALL,
        status=None,
        errors=None,
        eval_set_to_success={"default": True, "odd": None, "none": None},
        messages=[msgspec.structs.replace(BASE_CALL.messages[0], time=None), BASE_CALL.messages[1]],  # type: ignore[index]
    )


# -- 4. lone surrogate escapes (JSON.stringify of a string cut inside an emoji) -----------

SURROGATES = [
    pytest.param(b'"ok \\ud83d"', "ok \ufffd", id="high-at-end"),
    pytest.param(b'"\\ude00 ok"', "\ufffd ok", id="low-alone"),
    pytest.param(b'"a\\ud83d\\nb"', "a\ufffd\nb", id="high-then-escape"),
    pytest.param(b'"\\ud83d\\ud83d\\ude00"', "\ufffd\U0001f600", id="high-then-pair"),
    pytest.param(b'"\\ud83d\\ude00 kept"', "\U0001f600 kept", id="pair-untouched"),
    pytest.param(b'"a \\\\ud83d b"', "a \\ud83d b", id="escaped-backslash-is-text"),
]


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize(("text", "expected"), SURROGATES)
def test_lone_surrogate_becomes_a_replacement_character(
    envelope: Envelope, text: bytes, expected: str
) -> None:
    cases: list[tuple[bytes, Callable[[Call], Any]]] = [
        (splice(BASE, {"notes": text}), lambda c: c.notes),
        (with_first_message(splice(BASE["messages"][0], {"message": text})), lambda c: c.messages[0].message),
        (splice(BASE, {"metadata": b'{"k":' + text + b"}"}), lambda c: c.metadata["k"]),
        (splice(BASE, {"evalSetToSuccess": b"{" + text + b":true}"}), lambda c: list(c.eval_set_to_success)),
    ]
    for call, read in cases:
        decoded, raw = decode_through_body(envelope, call)
        assert raw == call  # the server's bytes, escapes and all
        value = read(decoded)
        assert value == expected or value == [expected]


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_lone_surrogate_in_unknown_field_or_key_does_not_matter(envelope: Envelope) -> None:
    for call in (splice(BASE, {"extras": b'"x\\ud83d"'}), splice(BASE, {"\\ud83d": b"1"})):
        decoded, _ = decode_through_body(envelope, call)
        assert decoded == BASE_CALL


def test_lone_surrogate_in_the_envelope_url() -> None:
    body = b'{"url":"https://fixa.dev/o/\\ud83d","call":' + msgspec.json.encode(BASE) + b"}"
    assert decode_body(body, "h") == (BASE_CALL, msgspec.json.encode(BASE), "https://fixa.dev/o/\ufffd")


# -- 5. bytes that are not UTF-8 -------------------------------------------------------------

INVALID_UTF8 = [
    pytest.param(lambda bad: splice(BASE, {"extras": b'"' + bad + b'"'}), id="unknown-value"),
    pytest.param(lambda bad: msgspec.json.encode(BASE)[:-1] + b',"sc' + bad + b'":1}', id="unknown-key"),
    pytest.param(lambda bad: splice(BASE, {"extras": b'{"tags":["' + bad + b'"]}'}), id="unknown-nested"),
    pytest.param(
        lambda bad: with_first_message(splice(BASE["messages"][0], {"extra": b'"' + bad + b'"'})),
        id="unknown-in-a-message",
    ),
    pytest.param(lambda bad: splice(BASE, {"notes": b'"' + bad + b'"'}), id="known-field"),
    pytest.param(lambda bad: splice(BASE, {"status": b"5", "extras": b'"' + bad + b'"'}), id="with-drift"),
]
BAD_BYTES = [
    pytest.param(b"\xff", id="ff"),
    pytest.param(b"\xe2\x80", id="truncated"),
    pytest.param(b"\xc0\xaf", id="overlong"),
    pytest.param(b"\xed\xa0\xbd", id="encoded-surrogate"),
]


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("make", INVALID_UTF8)
@pytest.mark.parametrize("bad", BAD_BYTES)
def test_invalid_utf8_is_a_decode_error_keeping_the_bytes(
    envelope: Envelope, make: Callable[[bytes], bytes], bad: bytes
) -> None:
    call = make(bad)
    body = envelope(call)
    with pytest.raises(DecodeError) as info:
        decode_body(body, "h")
    assert info.value.raw == body and info.value.call_id == "h"
    with pytest.raises(DecodeError) as info:
        decode_call(call, "h")
    assert info.value.raw == call


@pytest.mark.parametrize(
    "member",
    [
        pytest.param(b'"deep":' + deep(50_000, "array"), id="deep-member"),
        pytest.param(b'"note":"\\ud83d"', id="lone-surrogate"),
    ],
)
@pytest.mark.parametrize("key", [b'"\\u0041\xff"', b'"\xff\\n"'], ids=["escape-then-ff", "ff-then-escape"])
def test_invalid_utf8_in_an_escaped_envelope_key_is_ignored(key: bytes, member: bytes) -> None:
    # Outside the call, msgspec skips an unknown key without checking its UTF-8; the
    # scanner (used when the envelope is too deep or holds a lone surrogate) used to
    # raise UnicodeDecodeError from json.loads on such a key, escaping the decode path.
    call = msgspec.json.encode(BASE)
    body = b"{" + key + b":1," + member + b',"call":' + call + b',"success":true}'
    assert decode_body(body, "h") == (BASE_CALL, call, None)


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_valid_non_ascii_is_kept_and_raw_is_utf8_json(envelope: Envelope) -> None:
    text = "caf\u00e9 \u2019 \u4f60\u597d \U0001f600"
    call = msgspec.json.encode({**BASE, "notes": text, "extras": {"name": text}})
    decoded, raw = decode_through_body(envelope, call)
    assert decoded.notes == text
    assert msgspec.json.decode(raw.decode("utf-8"))["extras"]["name"] == text


# -- 6. raw is exactly the call value --------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [(b" ", b" "), (b"\n\t", b"\r\n"), (b"", b"  "), (b"   ", b"")],
    ids=["spaces", "newlines-tabs", "after-only", "before-only"],
)
def test_whitespace_around_the_call_is_not_part_of_raw(before: bytes, after: bytes) -> None:
    call = msgspec.json.encode(BASE)
    body = b'{"success":true,"call":' + before + call + after + b',"url":"' + URL.encode() + b'"}'
    found = split_body(body, "h")
    assert found is not None and bytes(found.call) == call and found.dashboard_url == URL
    assert decode_body(body, "h") == (BASE_CALL, call, URL)
    spaced_null = b'{"success":true,"call":' + before + b"null" + after + b',"url":"' + URL.encode() + b'"}'
    assert split_body(spaced_null, "h") is None


# -- nothing but DecodeError, whatever the bytes ----------------------------------------------


def test_mutated_bodies_decode_or_raise_decode_error_only() -> None:
    rng = random.Random(10)
    seeds = [canonical(msgspec.json.encode(BASE)), reordered(msgspec.json.encode(BASE))]
    alphabet = b'{}[],:"\\ 0-1.eEtrufalsn\x00\x7f\xc3\xa9\xff' + b"\\ud83d"
    for _ in range(3_000):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(body))
            if rng.random() < 0.5:
                del body[at : at + rng.randint(1, 3)]
            else:
                body[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        error: DecodeError | None = None
        try:
            call, raw, _ = decode_body(bytes(body), "fuzz")
        except DecodeError as exc:
            error = exc
        if error is not None:
            assert error.raw == bytes(body)
        elif raw is not None:
            assert isinstance(call, Call)
            raw.decode("utf-8")  # what is handed out is UTF-8


# -- end to end: one batch from a real server, bad ids among good ones --------------------------

API_KEY = "hostile-key-0123456789"


async def test_a_batch_of_hostile_bodies_goes_on_past_each_bad_id() -> None:
    good = msgspec.json.encode(BASE)
    bodies = {
        "deep": canonical(splice(BASE, {"metadata": deep(50_000, "array")})),
        "deep-reordered": reordered(splice(BASE, {"extras": deep(50_000, "object")})),
        "strings": canonical(msgspec.json.encode({**BASE, "messages": ["x"] * 300 + BASE["messages"]})),
        "surrogate": canonical(splice(BASE, {"notes": b'"fine \\ud83d"'})),
        "not-utf8": canonical(splice(BASE, {"extras": b'"\xff"'})),
        "spaced": b'{"success":true,"call": ' + good + b' ,"url":"' + URL.encode() + b'"}',
        "escaped-key": b'{"\\u0041\xff":1,"n":"\\ud83d","call":' + good + b"}",
    }
    async with DemoServer(api_key=API_KEY, turns=2) as server:
        for call_id, body in bodies.items():
            server.add_call(body, call_id=call_id)
        ids = ["ok-1", *bodies, "ok-2"]
        async with asyncvox.Client(API_KEY, server.base_url, max_retries=0) as client:
            outcomes = {o.call_id: o for o in await client.fetch_calls(ids)}
            streamed = [o.call_id async for o in client.iter_calls(ids)]
            single = await client.fetch("deep")
    assert sorted(streamed) == sorted(ids)
    assert outcomes.keys() == set(ids)
    for call_id in ("ok-1", "ok-2"):
        assert outcomes[call_id].found and outcomes[call_id].raw == msgspec.json.encode(
            synth_call(call_id, turns=2)
        )
    assert outcomes["deep"].call == msgspec.structs.replace(BASE_CALL, metadata=None)
    assert single.call == outcomes["deep"].call and single.raw == outcomes["deep"].raw
    assert outcomes["deep-reordered"].call == BASE_CALL
    assert outcomes["strings"].call == BASE_CALL
    surrogate = outcomes["surrogate"]
    assert surrogate.call is not None and surrogate.call.notes == "fine \ufffd"
    assert surrogate.raw is not None and b"\\ud83d" in surrogate.raw
    assert outcomes["spaced"].raw == good
    assert outcomes["escaped-key"].call == BASE_CALL
    failed = outcomes["not-utf8"]
    assert isinstance(failed.error, DecodeError) and failed.error.raw == bodies["not-utf8"]
    assert failed.attempts == 1


async def test_a_deep_error_body_fails_only_its_own_id() -> None:
    deep_500 = b'{"success":false,"error":' + deep(5_000, "array") + b"}"
    async with DemoServer(api_key=API_KEY, turns=2) as server:
        server.script("bad", [Fault(status=500, body=deep_500)])
        async with asyncvox.Client(API_KEY, server.base_url, max_retries=0) as client:
            outcomes = {o.call_id: o for o in await client.fetch_calls(["ok-1", "bad", "ok-2"])}
    assert outcomes["ok-1"].found and outcomes["ok-2"].found
    error = outcomes["bad"].error
    assert isinstance(error, ServerError) and error.body == deep_500


BOM = b"\xef\xbb\xbf"


def test_a_byte_order_mark_before_the_envelope_is_ignored() -> None:
    # msgspec refuses a UTF-8 BOM, so a call a proxy or framework prefixed with one was a
    # DecodeError, and the API's own 404 behind one read as a wrong base URL.
    body = msgspec.json.encode({"success": True, "call": {"id": "c1", "status": "completed"}, "url": "u"})
    decoded = decode_body(BOM + body, "c1")
    assert decoded.call is not None and decoded.call.id == "c1" and decoded.dashboard_url == "u"
    assert decode_body(BOM + b'{"success":true,"call":{"id":"c2"},"url":"u"}', "c2").call is not None
    with pytest.raises(DecodeError) as info:
        split_body(BOM + b"<<not json>>", "c3")
    assert info.value.raw == BOM + b"<<not json>>"  # every byte as received
    not_found = BOM + b'{"success":false,"error":"Call not found"}'
    assert is_api_not_found(not_found)
    assert not isinstance(status_error(404, not_found, "c4"), asyncvox.EndpointNotFoundError)


async def test_a_404_behind_a_byte_order_mark_does_not_end_the_batch() -> None:
    async with DemoServer(api_key="k") as server:
        server.script("bom", [Fault(status=404, body=BOM + b'{"success":false,"error":"Call not found"}')])
        async with asyncvox.Client("k", server.base_url) as client:
            outcomes = await client.fetch_calls(["a-1", "bom", "a-2"])
    assert [(o.call_id, o.found, o.error) for o in outcomes] == [
        ("a-1", True, None),
        ("bom", False, None),
        ("a-2", True, None),
    ]
