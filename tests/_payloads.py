"""Real-shaped call payloads for the analysis tests, written from the wire contract.

``server_call`` follows what the server's own code sends (shared/api/get-call.md, "What
the server's own code sends"): nested ``scenario`` (with its evaluations), ``testAgent``,
``evaluationResults[].evaluation.evaluationTemplate``, ``ownerId``, ``customerCallId:
null``, no ``errors``, the schema's role and type vocabularies (``bot``, ``tool_calls``,
``tool_call_result``; ``boolean``, ``number``, ``percentage``), percentiles and time to
first word in rounded milliseconds, durations and offsets in seconds, message
``time``/``endTime`` in epoch milliseconds.

``reference_call`` follows the reference page instead: roles ``assistant``/``function``/
``tool``, types ``manual``/``auto``, ``errors`` present, no nested objects.
"""

from __future__ import annotations

import copy
from typing import Any

_TEMPLATES = {
    "tpl-greet": ("Greets the caller", "content"),
    "tpl-verify": ("Verifies identity before changes", "content"),
    "tpl-book": ("Calls the booking tool with the right slot", "tool"),
}


def _template(tid: str) -> dict[str, Any]:
    name, kind = _TEMPLATES[tid]
    return {
        "id": tid,
        "createdAt": "2025-11-02T09:00:00.000Z",
        "name": name,
        "description": f"{name} (from the template library)",
        "params": ["agent_name"],
        "contentType": kind,
        "toolCallExpectedResult": "booked" if kind == "tool" else "",
        "ownerId": "org_42",
        "deleted": False,
        "hidden": False,
    }


def _evaluation(eid: str, tid: str, *, critical: bool, scenario_id: str) -> dict[str, Any]:
    return {
        "id": eid,
        "createdAt": "2025-11-02T09:05:00.000Z",
        "enabled": True,
        "isCritical": critical,
        "params": {"agent_name": "Ava"},
        "evaluationTemplateId": tid,
        "scenarioId": scenario_id,
        "evaluationGroupId": None,
        "evaluationTemplate": _template(tid),
    }


def _msg(
    call_id: str,
    n: int,
    role: str,
    text: str | None,
    start_ms: int,
    at: float,
    duration: float | None,
    **extra: Any,
) -> dict[str, Any]:
    """A message with epoch-millisecond ``time``/``endTime`` and second offsets."""
    msg: dict[str, Any] = {"id": f"{call_id}-m{n}", "callId": call_id, "role": role, "message": text}
    msg |= {"time": start_ms + round(at * 1000), "secondsFromStart": at}
    if duration is not None:
        msg |= {"endTime": start_ms + round((at + duration) * 1000), "duration": duration}
    return msg | extra


def server_call(
    call_id: str = "call-srv-1", *, scenario: str = "Book a table", passed: bool = True
) -> dict[str, Any]:
    """One call as the fixa server's route sends it (see the module docstring)."""
    sid = "scn-" + scenario.lower().replace(" ", "-")
    evals = [
        _evaluation("ev-greet", "tpl-greet", critical=False, scenario_id=sid),
        _evaluation("ev-book", "tpl-book", critical=True, scenario_id=sid),
    ]
    start_ms = 1_767_261_600_000  # 2026-01-01T10:00:00Z
    tool_calls = [
        {"id": "tc_1", "type": "function", "function": {"name": "book", "arguments": '{"party": 4}'}}
    ]
    messages = [
        _msg(call_id, 0, "system", "You are Ava.", start_ms, 0, 0),
        _msg(call_id, 1, "bot", "Hi, this is Ava, how can I help?", start_ms, 1.24, 2.66),
        _msg(call_id, 2, "user", "A table for four at 7 pm, please.", start_ms, 4.5, 2.6),
        _msg(call_id, 3, "tool_calls", None, start_ms, 8.0, None, toolCalls=tool_calls),
        _msg(call_id, 4, "tool_call_result", None, start_ms, 8.4, None, name="book", result="booked"),
        _msg(call_id, 5, "bot", "Done: four people at 7 pm.", start_ms, 9.1, 1.9),
    ]
    return {
        "id": call_id,
        "customerCallId": None,
        "ownerId": "org_42",
        "createdAt": "2026-01-01T10:00:20.000Z",
        "status": "completed",
        "result": "success" if passed else "failure",
        "failureReason": None if passed else "Booking tool was never called",
        "stereoRecordingUrl": f"https://storage.example.invalid/{call_id}.wav",
        "monoRecordingUrl": None,
        "agentId": "agt_internal_7",
        "scenarioId": sid,
        "testId": "test_3",
        "testAgentId": "ta_9",
        "regionId": None,
        "vapiCallId": None,
        "ofOneDeviceId": "dev_1",
        "deleted": False,
        "isRead": False,
        "readBy": None,
        "notes": None,
        "duration": 11.0,
        "startedAt": "2026-01-01T10:00:00.000Z",
        "endedAt": "2026-01-01T10:00:11.000Z",
        "timeToFirstWord": 1240,
        "latencyP50": 610,
        "latencyP90": 900,
        "latencyP95": 1180,
        "interruptionP50": 0,
        "interruptionP90": 0,
        "interruptionP95": 0,
        "numInterruptions": 0,
        "messages": messages,
        "latencyBlocks": [
            {"id": f"{call_id}-lb0", "callId": call_id, "secondsFromStart": 3.9, "duration": 0.6},
            {"id": f"{call_id}-lb1", "callId": call_id, "secondsFromStart": 7.1, "duration": 1.18},
        ],
        "interruptions": [
            {
                "id": f"{call_id}-i0",
                "callId": call_id,
                "secondsFromStart": 5.2,
                "duration": 0.4,
                "text": "sorry",
            },
        ],
        "evaluationResults": [
            {
                "id": f"{call_id}-er0",
                "callId": call_id,
                "createdAt": "2026-01-01T10:01:00.000Z",
                "evaluationId": "ev-greet",
                "result": "true",
                "details": "Greeted by name",
                "success": True,
                "type": "boolean",
                "secondsFromStart": 1.24,
                "duration": 2.66,
                "evaluation": evals[0],
            },
            {
                "id": f"{call_id}-er1",
                "callId": call_id,
                "createdAt": "2026-01-01T10:01:00.000Z",
                "evaluationId": "ev-book",
                "result": "1" if passed else "0",
                "details": "Tool called with party=4" if passed else "No booking",
                "success": passed,
                "type": "number",
                "evaluation": evals[1],
            },
            {
                "id": f"{call_id}-er2",
                "callId": call_id,
                "createdAt": "2026-01-01T10:01:00.000Z",
                "evaluationId": "ev-greet",
                "evaluationTemplateId": "tpl-greet",
                "result": "87",
                "details": "Tone score",
                "success": None,
                "type": "percentage",
            },
        ],
        "evalSetToSuccess": {"set_main": passed},
        "metadata": {"campaign": "q1", "persona": {"mood": "calm"}},
        "testAgent": {
            "id": "ta_9",
            "ownerId": "org_42",
            "name": "Impatient Ian",
            "headshotUrl": "https://img.example.invalid/ian.png",
            "description": "Interrupts a lot",
            "prompt": "You are in a hurry.",
            "enabled": True,
            "defaultSelected": False,
            "order": 2,
        },
        "scenario": {
            "id": sid,
            "createdAt": "2025-11-02T09:00:00.000Z",
            "agentId": "agt_internal_7",
            "name": scenario,
            "instructions": "Ask for a table for four.",
            "successCriteria": "The booking tool is called.",
            "includeDateTime": True,
            "timezone": None,
            "deleted": False,
            "evaluations": evals,
        },
    }


def reference_call(call_id: str = "call-ref-1") -> dict[str, Any]:
    """One call as the reference page documents it: its vocabularies, errors present."""
    return {
        "id": call_id,
        "customerCallId": "cust-" + call_id,
        "createdAt": "2026-02-03T04:05:06+02:00",
        "status": "analyzing",
        "stereoRecordingUrl": "https://storage.example.invalid/r.wav",
        "result": "failure",
        "failureReason": "Caller hung up",
        "duration": 42.5,
        "startedAt": "2026-02-03T02:04:00Z",
        "endedAt": "not recorded",
        "latencyP50": 700.0,
        "latencyP90": 1500.0,
        "latencyP95": 2400.0,
        "timeToFirstWord": 2100.0,
        "numInterruptions": 3.0,
        "messages": [
            {
                "id": "r-m0",
                "callId": call_id,
                "role": "assistant",
                "message": "Hello?",
                "time": 1770084240.5,
                "secondsFromStart": 0.5,
                "duration": 1.0,
            },
            {"id": "r-m1", "callId": call_id, "role": "function", "name": "lookup", "result": "{}"},
            {"id": "r-m2", "callId": call_id, "role": "tool", "message": "ok"},
            {"id": "r-m3", "callId": call_id, "role": "user", "message": "Bye."},
        ],
        "evaluationResults": [
            {
                "id": "r-er0",
                "createdAt": "2026-02-03T02:05:00Z",
                "details": "d",
                "evaluationId": "ev-x",
                "result": "fail",
                "success": False,
                "type": "manual",
            },
            {
                "id": "r-er1",
                "createdAt": "2026-02-03T02:05:00Z",
                "details": "d",
                "evaluationId": "ev-y",
                "evaluationTemplateId": "tpl-y",
                "result": "pass",
                "success": True,
                "type": "auto",
            },
        ],
        "errors": [
            {
                "id": "r-e0",
                "callId": call_id,
                "type": "tts_timeout",
                "description": "TTS took 4 s",
                "secondsFromStart": 12.0,
                "duration": 4.0,
            },
        ],
    }


def variant(call: dict[str, Any], call_id: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of ``call`` under another id, with top-level fields changed."""
    out = copy.deepcopy(call)
    out["id"] = call_id
    out.update(changes)
    return out
