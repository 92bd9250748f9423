"""Decoding: the typed models, drift tolerance, and the 200-body decoder's raw bytes.

Wire names are camelCase (``../shared/api/get-call.md``); attributes are snake_case.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

import asyncvox
from asyncvox import (
    Call,
    CallError,
    CallResult,
    CallStatus,
    DecodeError,
    EvaluationResult,
    EvaluationType,
    Interruption,
    LatencyBlock,
    Message,
    MessageRole,
)
from asyncvox._decode import decode_body, decode_call
from asyncvox.testing import envelope, synth_call

# -- a call carrying every field of the contract, exactly as the reference documents it --

REFERENCE_CALL: dict[str, Any] = {
    "createdAt": "2026-03-04T05:06:07.250Z",
    "id": "cl_ref",
    "status": "completed",
    "stereoRecordingUrl": "https://rec.example.invalid/ref/stereo.wav",
    "customerCallId": "customer-ref-1",
    "ownerId": "org_1",
    "agentId": "agent-1",
    "deleted": False,
    "duration": 83.5,
    "endedAt": "2026-03-04T05:07:31.000Z",
    "errors": [
        {
            "callId": "cl_ref",
            "description": "TTS took too long",
            "duration": 1.25,
            "id": "err-1",
            "secondsFromStart": 12.5,
            "type": "tts_timeout",
        }
    ],
    "evalSetToSuccess": {"set-a": True, "set-b": False},
    "evaluationResults": [
        {
            "createdAt": "2026-03-04T05:08:00+02:00",
            "details": "Agent greeted the caller",
            "evaluationId": "eval-greeting",
            "id": "er-1",
            "result": "pass",
            "success": True,
            "type": "auto",
            "callId": "cl_ref",
            "duration": 2.5,
            "evaluationTemplateId": "tmpl-greeting",
            "secondsFromStart": 1.5,
        }
    ],
    "failureReason": "none really",
    "interruptionP50": 0.5,
    "interruptionP90": 0.9,
    "interruptionP95": 0.95,
    "interruptions": [
        {"callId": "cl_ref", "duration": 0.75, "id": "int-1", "secondsFromStart": 30.25, "text": "wait"}
    ],
    "isRead": True,
    "latencyBlocks": [{"callId": "cl_ref", "duration": 0.8, "id": "lat-1", "secondsFromStart": 4.0}],
    "latencyP50": 0.61,
    "latencyP90": 0.92,
    "latencyP95": 1.05,
    "messages": [
        {
            "callId": "cl_ref",
            "id": "msg-1",
            "role": "assistant",
            "duration": 2.25,
            "endTime": 1772600769250,
            "message": "Hello, how can I help?",
            "name": "ava",
            "result": "ok",
            "secondsFromStart": 0.5,
            "time": 1772600767000,
            "toolCalls": [{"id": "tool_1", "type": "function", "function": {"name": "lookup"}}],
        },
        {"callId": "cl_ref", "id": "msg-2", "role": "user", "message": "Hi"},
    ],
    "metadata": {"campaign": "spring", "nested": {"list": [1, 2, {"k": None}]}},
    "monoRecordingUrl": "https://rec.example.invalid/ref/mono.wav",
    "notes": "Follow up",
    "numInterruptions": 1,
    "ofOneDeviceId": "device-9",
    "readBy": "user-7",
    "regionId": "eu-west",
    "result": "success",
    "scenarioId": "scenario-1",
    "startedAt": "2026-03-04T05:06:08.000Z",
    "testAgentId": "persona-3",
    "testId": "test-4",
    "timeToFirstWord": 1.2,
    "vapiCallId": "vapi_abc",
}

#: wire name -> snake_case attribute, for every scalar field of the contract's Call table.
SCALAR_FIELDS = {
    "id": "id",
    "status": "status",
    "stereoRecordingUrl": "stereo_recording_url",
    "customerCallId": "customer_call_id",
    "agentId": "agent_id",
    "deleted": "deleted",
    "duration": "duration",
    "endedAt": "ended_at",
    "startedAt": "started_at",
    "evalSetToSuccess": "eval_set_to_success",
    "failureReason": "failure_reason",
    "interruptionP50": "interruption_p50",
    "interruptionP90": "interruption_p90",
    "interruptionP95": "interruption_p95",
    "isRead": "is_read",
    "latencyP50": "latency_p50",
    "latencyP90": "latency_p90",
    "latencyP95": "latency_p95",
    "metadata": "metadata",
    "monoRecordingUrl": "mono_recording_url",
    "notes": "notes",
    "numInterruptions": "num_interruptions",
    "ofOneDeviceId": "of_one_device_id",
    "readBy": "read_by",
    "regionId": "region_id",
    "result": "result",
    "scenarioId": "scenario_id",
    "testAgentId": "test_agent_id",
    "testId": "test_id",
    "timeToFirstWord": "time_to_first_word",
    "vapiCallId": "vapi_call_id",
}


def _encode(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


def _call(obj: dict[str, Any]) -> Call:
    return decode_call(_encode(obj), "test-id")


def _ref(**changes: Any) -> dict[str, Any]:
    call = copy.deepcopy(REFERENCE_CALL)
    call.update(changes)
    return call


# -- the reference call ---------------------------------------------------------------


@pytest.mark.parametrize(("wire", "attr"), sorted(SCALAR_FIELDS.items()))
def test_reference_scalar_field_maps_camel_to_snake(wire: str, attr: str) -> None:
    call = _call(REFERENCE_CALL)
    assert getattr(call, attr) == REFERENCE_CALL[wire]


def test_reference_call_decodes_named_examples() -> None:
    call = _call(REFERENCE_CALL)
    assert call.of_one_device_id == "device-9"
    assert call.eval_set_to_success == {"set-a": True, "set-b": False}
    assert call.latency_p50 == 0.61
    assert call.messages is not None
    assert call.messages[0].seconds_from_start == 0.5
    assert call.num_interruptions == 1
    assert type(call.num_interruptions) is int


def test_created_at_is_timezone_aware_datetime() -> None:
    call = _call(REFERENCE_CALL)
    assert call.created_at == datetime(2026, 3, 4, 5, 6, 7, 250000, tzinfo=UTC)
    assert call.created_at is not None and call.created_at.tzinfo is not None
    assert call.evaluation_results is not None
    created = call.evaluation_results[0].created_at
    assert created is not None
    assert created.utcoffset() == timedelta(hours=2)
    assert created == datetime(2026, 3, 4, 3, 8, tzinfo=UTC)


def test_reference_messages_decode_every_field() -> None:
    call = _call(REFERENCE_CALL)
    assert call.messages == [
        Message(
            id="msg-1",
            call_id="cl_ref",
            role="assistant",
            message="Hello, how can I help?",
            name="ava",
            result="ok",
            time=1772600767000,
            end_time=1772600769250,
            seconds_from_start=0.5,
            duration=2.25,
            tool_calls=[{"id": "tool_1", "type": "function", "function": {"name": "lookup"}}],
        ),
        Message(id="msg-2", call_id="cl_ref", role="user", message="Hi"),
    ]
    # epoch times are not converted: still the server's integers
    assert type(call.messages[0].time) is int


def test_reference_nested_lists_decode_every_field() -> None:
    call = _call(REFERENCE_CALL)
    assert call.errors == [
        CallError(
            id="err-1",
            call_id="cl_ref",
            description="TTS took too long",
            type="tts_timeout",
            seconds_from_start=12.5,
            duration=1.25,
        )
    ]
    assert call.interruptions == [
        Interruption(id="int-1", call_id="cl_ref", text="wait", seconds_from_start=30.25, duration=0.75)
    ]
    assert call.latency_blocks == [
        LatencyBlock(id="lat-1", call_id="cl_ref", seconds_from_start=4.0, duration=0.8)
    ]
    assert call.evaluation_results is not None
    (er,) = call.evaluation_results
    assert isinstance(er, EvaluationResult)
    assert (er.id, er.evaluation_id, er.result, er.details, er.success, er.type) == (
        "er-1",
        "eval-greeting",
        "pass",
        "Agent greeted the caller",
        True,
        "auto",
    )
    assert (er.call_id, er.duration, er.evaluation_template_id, er.seconds_from_start) == (
        "cl_ref",
        2.5,
        "tmpl-greeting",
        1.5,
    )


def test_documented_enum_values_compare_equal() -> None:
    call = _call(REFERENCE_CALL)
    assert call.status == CallStatus.COMPLETED
    assert call.result == CallResult.SUCCESS
    assert call.messages is not None and call.evaluation_results is not None
    assert call.messages[0].role == MessageRole.ASSISTANT
    assert call.messages[1].role == MessageRole.USER
    assert call.evaluation_results[0].type == EvaluationType.AUTO
    assert call.status != CallStatus.IN_PROGRESS
    # the reference page's values and the server schema's, side by side
    assert {s.value for s in CallStatus} == {"queued", "in_progress", "analyzing", "completed"}
    assert {r.value for r in MessageRole} == {
        *("assistant", "user", "system", "function", "tool"),
        *("bot", "tool_calls", "tool_call_result"),
    }
    assert {t.value for t in EvaluationType} == {"manual", "auto", "boolean", "number", "percentage"}
    assert {r.value for r in CallResult} == {"success", "failure"}


def test_started_and_ended_at_kept_as_sent_with_parsed_form() -> None:
    call = _call(REFERENCE_CALL)
    assert call.started_at == "2026-03-04T05:06:08.000Z"
    assert call.started_at_datetime == datetime(2026, 3, 4, 5, 6, 8, tzinfo=UTC)
    assert call.ended_at_datetime == datetime(2026, 3, 4, 5, 7, 31, tzinfo=UTC)


def test_models_are_frozen() -> None:
    call = _call(REFERENCE_CALL)
    with pytest.raises(AttributeError):
        call.status = "analyzing"  # type: ignore[misc]


def test_encoding_a_call_uses_wire_names() -> None:
    call = _call({"id": "c1", "ofOneDeviceId": "d", "latencyP50": 0.5})
    encoded = msgspec.json.decode(msgspec.json.encode(call))
    assert encoded == {"id": "c1", "ofOneDeviceId": "d", "latencyP50": 0.5}


def test_minimal_call_has_absent_fields_as_none() -> None:
    call = _call({"id": "c1"})
    assert call.id == "c1"
    assert call.messages is None
    assert call.created_at is None
    assert call.started_at_datetime is None


# -- drift ------------------------------------------------------------------------------


def test_unknown_enum_values_are_kept_as_strings() -> None:
    obj = _ref(status="queued_for_review", result="partial")
    obj["messages"][0]["role"] = "narrator"
    obj["evaluationResults"][0]["type"] = "llm_judge"
    call = _call(obj)
    assert call.status == "queued_for_review"
    assert call.result == "partial"
    assert call.messages is not None and call.evaluation_results is not None
    assert call.messages[0].role == "narrator"
    assert call.evaluation_results[0].type == "llm_judge"
    assert call.status not in set(CallStatus)
    # the rest of the call is intact
    assert call.latency_p50 == 0.61


def test_extra_fields_and_nested_objects_are_ignored() -> None:
    obj = _ref(review={"id": "s", "tags": ["a", {"deep": [1, 2]}]}, newTopLevel=[{"x": None}], weird=None)
    obj["messages"][0]["extraAnalysis"] = {"sentiment": 0.4, "labels": ["calm"]}
    obj["evaluationResults"][0]["judge"] = {"model": "m", "score": 0.9}
    obj["errors"][0]["stack"] = ["a", "b"]
    obj["interruptions"][0]["speaker"] = {"side": "user"}
    obj["latencyBlocks"][0]["kind"] = "llm"
    call = _call(obj)
    assert call == _call(REFERENCE_CALL)


@pytest.mark.parametrize(
    "wire",
    [
        "createdAt",
        "id",
        "status",
        "stereoRecordingUrl",
        "messages",
        "evalSetToSuccess",
        "duration",
        "metadata",
    ],
)
def test_null_for_documented_fields_decodes_as_none(wire: str) -> None:
    call = _call(_ref(**{wire: None}))
    attr = {"createdAt": "created_at", "messages": "messages"}.get(wire) or SCALAR_FIELDS[wire]
    assert getattr(call, attr) is None
    assert call.vapi_call_id == "vapi_abc"


def test_null_for_documented_fields_of_nested_objects() -> None:
    obj = _ref()
    obj["messages"][0].update(callId=None, id=None, role=None)
    obj["evaluationResults"][0].update(createdAt=None, details=None, success=None, type=None)
    call = _call(obj)
    assert call.messages is not None and call.evaluation_results is not None
    assert call.messages[0].role is None
    assert call.messages[0].message == "Hello, how can I help?"
    assert call.evaluation_results[0].created_at is None
    assert call.evaluation_results[0].evaluation_id == "eval-greeting"


def test_float_where_int_expected_is_kept_as_float() -> None:
    call = _call(_ref(numInterruptions=3.0))
    assert call.num_interruptions == 3.0
    assert type(call.num_interruptions) is float


def test_numbers_stay_as_sent() -> None:
    call = _call(_ref(duration=12, latencyP50=0.6100000000000001))
    assert type(call.duration) is int and call.duration == 12
    assert call.latency_p50 == 0.6100000000000001


def test_non_iso_started_at_is_kept_verbatim() -> None:
    call = _call(_ref(startedAt="Oct 22 2026, 04:02 PM", endedAt="sometime later"))
    assert call.started_at == "Oct 22 2026, 04:02 PM"
    assert call.ended_at == "sometime later"
    assert call.started_at_datetime is None
    assert call.ended_at_datetime is None


def test_naive_created_at_becomes_utc_via_lenient_path() -> None:
    obj = _ref(createdAt="2026-03-04T05:06:07")
    obj["evaluationResults"][0]["createdAt"] = "2026-03-04T06:00:00"
    call = _call(obj)
    assert call.created_at == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert call.created_at is not None and call.created_at.utcoffset() == timedelta(0)
    assert call.evaluation_results is not None
    assert call.evaluation_results[0].created_at == datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
    # nothing else was lost by the repair
    assert call.messages == _call(REFERENCE_CALL).messages


def test_unparsable_created_at_becomes_none_without_failing() -> None:
    call = _call(_ref(createdAt="yesterday"))
    assert call.created_at is None
    assert call.id == "cl_ref"
    assert call.messages is not None and len(call.messages) == 2


def test_created_at_with_offset_is_kept_aware() -> None:
    call = _call(_ref(createdAt="2026-03-04T05:06:07-05:00"))
    assert call.created_at == datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5)))


def test_string_number_still_decodes() -> None:
    call = _call(_ref(duration="12.5"))
    assert call.duration == 12.5
    assert call.vapi_call_id == "vapi_abc"


def test_null_inside_a_list_of_objects_still_decodes() -> None:
    obj = _ref()
    obj["messages"] = [None, obj["messages"][0]]
    call = _call(obj)
    assert call.messages is not None
    assert [m.id for m in call.messages] == ["msg-1"]


def test_several_nulls_inside_a_list_keep_the_valid_elements() -> None:
    obj = _ref()
    valid = obj["messages"]
    obj["messages"] = [None, None, valid[0], None, valid[1]]
    call = _call(obj)
    assert call.messages is not None
    assert [m.id for m in call.messages] == ["msg-1", "msg-2"]


def test_wrong_typed_enum_value_still_decodes() -> None:
    call = _call(_ref(status=5))
    # the typed view cannot hold a number here; the raw bytes keep it (see below)
    assert call.status in (None, "5")
    assert call.id == "cl_ref"
    assert call.latency_p90 == 0.92


def test_many_kinds_of_drift_at_once_still_decode() -> None:
    obj = _ref(status=5, duration="12.5", createdAt="2026-03-04T05:06:07", errors="none", extra={"a": 1})
    obj["messages"] = [None, obj["messages"][0]]
    obj["messages"][1]["role"] = 7
    call = _call(obj)
    assert call.id == "cl_ref"
    assert call.duration == 12.5
    assert call.created_at == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert call.errors is None
    assert call.messages is not None and [m.id for m in call.messages] == ["msg-1"]
    assert call.messages[0].message == "Hello, how can I help?"


def test_drift_body_keeps_the_raw_bytes_of_the_call() -> None:
    raw_call = _encode(_ref(status=5, duration="12.5", messages=[None]))
    body = b'{"success":true,"call":' + raw_call + b',"url":"https://fixa.dev/observe/cl_ref"}'
    call, raw, url = decode_body(body, "c")
    assert call is not None and call.id == "cl_ref"
    assert raw == raw_call
    assert url == "https://fixa.dev/observe/cl_ref"


def test_synth_call_with_drift_decodes() -> None:
    obj = synth_call("drift-1", drift=True)
    body = envelope(obj)
    call, raw, url = decode_body(body, "drift-1")
    assert call is not None
    assert call.status == "queued_for_review"
    assert call.stereo_recording_url is None
    assert call.num_interruptions == obj["numInterruptions"]
    assert type(call.num_interruptions) is float
    assert call.started_at == obj["startedAt"]
    assert call.messages is not None and call.messages[-1].role == "narrator"
    assert call.evaluation_results is not None and call.evaluation_results[0].type == "llm_judge"
    assert call.eval_set_to_success is not None and call.eval_set_to_success["unscored"] is None
    assert call.customer_call_id == "drift-1"
    assert raw == _encode(obj)
    assert url == f"https://fixa.dev/observe/{obj['id']}"


def test_synth_call_without_drift_matches_its_json() -> None:
    obj = synth_call("plain-1", turns=6)
    call = _call(obj)
    assert call.status == CallStatus.COMPLETED
    assert call.messages is not None and len(call.messages) == 6
    assert call.latency_p50 == obj["latencyP50"]
    assert call.created_at is not None and call.created_at.tzinfo is not None


# -- decode_body: found / not found / errors -------------------------------------------

RAW_CALL = b'{"id":"cl_1","status":"completed","notes":"a \\"quoted\\" note","metadata":{"url":"x"}}'


def test_decode_body_canonical_envelope_returns_call_bytes_exactly() -> None:
    body = b'{"success":true,"call":' + RAW_CALL + b',"url":"https://fixa.dev/observe/cl_1"}'
    call, raw, url = decode_body(body, "c")
    assert call is not None and call.id == "cl_1"
    assert call.notes == 'a "quoted" note'
    assert raw == RAW_CALL
    assert url == "https://fixa.dev/observe/cl_1"


@pytest.mark.parametrize(
    ("body", "url"),
    [
        pytest.param(
            b'{\n  "success": true,\n  "call": ' + RAW_CALL + b',\n  "url": "https://fixa.dev/o/1"\n}\n',
            "https://fixa.dev/o/1",
            id="whitespace",
        ),
        pytest.param(
            b'{"url":"https://fixa.dev/o/1","call":' + RAW_CALL + b',"success":true}',
            "https://fixa.dev/o/1",
            id="key-order",
        ),
        pytest.param(
            b'{"call":' + RAW_CALL + b',"success":true,"url":"https://fixa.dev/o/1"}',
            "https://fixa.dev/o/1",
            id="call-first",
        ),
        pytest.param(
            b'{"success":true,"call":' + RAW_CALL + b',"url":"https://fixa.dev/o/\\"1\\""}',
            'https://fixa.dev/o/"1"',
            id="url-escaped-quote",
        ),
        pytest.param(b'{"success":true,"call":' + RAW_CALL + b"}", None, id="url-absent"),
        pytest.param(
            b'{"success":true,"call":' + RAW_CALL + b',"url":"https://fixa.dev/o/1","extra":{"a":"b"}}',
            "https://fixa.dev/o/1",
            id="extra-key-after-url",
        ),
        pytest.param(
            b'{"success":true,"call":' + RAW_CALL + b',"requestId":"r-1","url":"https://fixa.dev/o/1"}',
            "https://fixa.dev/o/1",
            id="extra-key-between-call-and-url",
        ),
        pytest.param(
            b'{"success":true,"call":' + RAW_CALL + b',"n":5,"url":"https://fixa.dev/o/1"}',
            "https://fixa.dev/o/1",
            id="extra-number-between-call-and-url",
        ),
        pytest.param(
            b'{"success":true,"call":' + RAW_CALL + b',"url":5}',
            None,
            id="url-not-a-string",
        ),
    ],
)
def test_decode_body_non_canonical_shapes_keep_call_bytes_exactly(body: bytes, url: str | None) -> None:
    call, raw, got_url = decode_body(body, "c")
    assert call is not None and call.id == "cl_1"
    assert raw == RAW_CALL
    assert got_url == url


def test_decode_body_pretty_printed_call_bytes_are_kept_verbatim() -> None:
    pretty = b'{\n    "id" : "cl_2",\n    "status":"analyzing"\n  }'
    body = b'{"success":true,"call":' + pretty + b',"url":"https://fixa.dev/o/2"}'
    call, raw, _ = decode_body(body, "c")
    assert call is not None and call.status == CallStatus.ANALYZING
    assert raw == pretty


def test_decode_body_raw_is_bytes() -> None:
    body = envelope(synth_call("x", turns=2))
    _, raw, _ = decode_body(body, "x")
    assert type(raw) is bytes


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"success":true,"call":null,"url":"https://fixa.dev/o/1"}', id="call-null"),
        pytest.param(b'{"success":false,"call":null}', id="success-false-call-null"),
        pytest.param(b'{"success":false,"error":"Call not found"}', id="success-false-no-call"),
        pytest.param(b'{ "call" : null }', id="call-null-only"),
    ],
)
def test_decode_body_not_found(body: bytes) -> None:
    call, raw, _ = decode_body(body, "c")
    assert call is None
    assert raw is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html><body>502 Bad Gateway</body></html>", id="html"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"success":true,"call":{"id":"c"', id="truncated"),
        pytest.param(b'[{"success":true,"call":{"id":"c"}}]', id="json-array"),
        pytest.param(b'"just a string"', id="json-string"),
        pytest.param(b"null", id="json-null"),
        pytest.param(b'{"success":true}', id="no-call"),
        pytest.param(b'{"success":true,"url":"https://fixa.dev/o/1"}', id="no-call-with-url"),
        pytest.param(b'{"success":true,"call":"cl_1","url":"https://fixa.dev/o/1"}', id="call-is-string"),
        pytest.param(b'{"success":true,"call":[{"id":"c"}]}', id="call-is-array"),
        pytest.param(b'{"success":true,"call":42}', id="call-is-number"),
    ],
)
def test_decode_body_errors_keep_the_body(body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_body(body, "cid-1")
    err = info.value
    assert isinstance(err, asyncvox.AsyncvoxError)
    assert err.raw == body
    assert err.call_id == "cid-1"
    assert "cid-1" in str(err)


def test_decode_call_rejects_non_object_keeping_bytes() -> None:
    with pytest.raises(DecodeError) as info:
        decode_call(b"[1, 2, 3]", "c9")
    assert info.value.raw == b"[1, 2, 3]"
    with pytest.raises(DecodeError) as info:
        decode_call(b"{not json", "c9")
    assert info.value.raw == b"{not json"


def test_drift_in_every_element_of_a_long_list_still_decodes() -> None:
    messages = [{"id": f"m{i}", "role": "user", "message": "hi", "duration": "n/a"} for i in range(600)]
    call = decode_call(msgspec.json.encode({"id": "c", "messages": messages}), "c")
    assert call.messages is not None and len(call.messages) == 600
    assert all(m.duration is None and m.message == "hi" for m in call.messages)
