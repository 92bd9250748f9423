"""The call as the server's own code sends it: nested scenario, test agent and evaluations,
both enum vocabularies, millisecond percentiles (``../shared/api/get-call.md``, "What the
server's own code sends").
"""

from __future__ import annotations

import copy
import statistics
from collections import Counter
from typing import Any

import msgspec
import pytest
from conftest import API_KEY

import asyncvox
from asyncvox import (
    Call,
    CallStatus,
    ContentType,
    Evaluation,
    EvaluationResult,
    EvaluationTemplate,
    EvaluationType,
    MessageRole,
    Scenario,
    TestAgent,
)
from asyncvox._decode import decode_body
from asyncvox.testing import DemoServer, envelope, synth_call


def _template(key: str, name: str, content_type: str = "content") -> dict[str, Any]:
    return {
        "id": f"tmpl-{key}",
        "createdAt": "2026-01-02T03:04:05.000Z",
        "name": name,
        "description": f"{name}, judged from the transcript",
        "params": ["expected_name"],
        "contentType": content_type,
        "toolCallExpectedResult": "",
        "ownerId": "org_1",
        "deleted": False,
        "hidden": False,
    }


def _evaluation(key: str, name: str, critical: bool, content_type: str = "content") -> dict[str, Any]:
    return {
        "id": f"eval-{key}",
        "createdAt": "2026-01-03T00:00:00.000Z",
        "enabled": True,
        "isCritical": critical,
        "params": {"expected_name": "Jordan"},
        "evaluationTemplateId": f"tmpl-{key}",
        "scenarioId": "scn-1",
        "evaluationGroupId": None,
        "evaluationTemplate": _template(key, name, content_type),
    }


GREETING = _evaluation("greeting", "Greets the caller", critical=False)
LOOKUP = _evaluation("lookup", "Looks up the account", critical=True, content_type="tool")

#: As the server's route answers: ``id`` is the caller's id, ``customerCallId`` null,
#: percentiles and time to first word in rounded ms, durations in seconds, schema roles.
SERVER_CALL: dict[str, Any] = {
    "id": "my-call-1",
    "customerCallId": None,
    "ownerId": "org_1",
    "agentId": "agent_internal_9",
    "createdAt": "2026-03-04T05:06:07.250Z",
    "status": "completed",
    "result": "failure",
    "stereoRecordingUrl": "https://rec.example.invalid/1/stereo.wav",
    "duration": 62.5,
    "latencyP50": 680,
    "latencyP90": 910,
    "latencyP95": 1020,
    "interruptionP50": 2400,
    "interruptionP90": 2400,
    "interruptionP95": 2400,
    "numInterruptions": 1,
    "timeToFirstWord": 1200,
    "messages": [
        {"id": "m1", "callId": "my-call-1", "role": "bot", "message": "Hi", "time": 1772600768250.0,
         "endTime": 1772600769000.0, "secondsFromStart": 1.2, "duration": 0.75},
        {"id": "m2", "callId": "my-call-1", "role": "user", "message": "Hello"},
        {"id": "m3", "callId": "my-call-1", "role": "tool_calls", "toolCalls": [{"function": {"name": "f"}}]},
        {"id": "m4", "callId": "my-call-1", "role": "tool_call_result", "result": "{}"},
        {"id": "m5", "callId": "my-call-1", "role": "assistant", "message": "page vocabulary too"},
    ],
    "latencyBlocks": [
        {"id": "l1", "callId": "my-call-1", "secondsFromStart": 3.0, "duration": 0.68},
        {"id": "l2", "callId": "my-call-1", "secondsFromStart": 9.0, "duration": 1.02},
    ],
    "interruptions": [{"id": "i1", "callId": "my-call-1", "secondsFromStart": 20.0, "duration": 2.4}],
    "testAgentId": "ta-1",
    "testAgent": {
        "id": "ta-1",
        "ownerId": "org_1",
        "name": "Jordan",
        "headshotUrl": "https://img.example.invalid/jordan.png",
        "description": "Calm and cooperative",
        "prompt": "You are Jordan.",
        "enabled": True,
        "defaultSelected": False,
        "order": 2,
    },
    "scenarioId": "scn-1",
    "scenario": {
        "id": "scn-1",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "agentId": "agent_internal_9",
        "name": "Missing order",
        "instructions": "Ask where order #123 is.",
        "successCriteria": "A replacement is arranged",
        "includeDateTime": True,
        "timezone": None,
        "deleted": False,
        "evaluations": [GREETING, LOOKUP],
    },
    "evaluationResults": [
        {"id": "er1", "createdAt": "2026-03-04T05:08:00.000Z", "callId": "my-call-1",
         "evaluationId": "eval-greeting", "result": "true", "success": True, "secondsFromStart": 1.2,
         "duration": 2.0, "type": "boolean", "details": "greeted", "evaluation": GREETING},
        {"id": "er2", "createdAt": "2026-03-04T05:08:01.000Z", "callId": "my-call-1",
         "evaluationId": "eval-lookup", "result": "35", "success": False, "type": "percentage",
         "details": "no lookup", "evaluation": LOOKUP},
        {"id": "er3", "evaluationId": "eval-x", "result": "4", "success": True, "type": "number"},
        {"id": "er4", "evaluationId": "eval-y", "result": "pass", "success": True, "type": "auto"},
    ],
}  # fmt: skip


def _decode(obj: dict[str, Any]) -> Call:
    # The strict decoder alone: drift tolerance comes from the models, not from a repair.
    return msgspec.json.decode(msgspec.json.encode(obj), type=Call)


def test_nested_objects_are_typed_and_reachable() -> None:
    call = _decode(SERVER_CALL)
    assert call.owner_id == "org_1"
    scenario = call.scenario
    assert isinstance(scenario, Scenario)
    assert (scenario.name, scenario.instructions, scenario.success_criteria) == (
        "Missing order",
        "Ask where order #123 is.",
        "A replacement is arranged",
    )
    assert scenario.include_date_time is True and scenario.timezone is None and scenario.deleted is False
    assert scenario.agent_id == "agent_internal_9"
    assert scenario.evaluations is not None
    greeting, lookup = scenario.evaluations
    assert isinstance(lookup, Evaluation)
    assert (lookup.is_critical, lookup.enabled, lookup.params) == (True, True, {"expected_name": "Jordan"})
    assert (lookup.evaluation_template_id, lookup.scenario_id, lookup.evaluation_group_id) == (
        "tmpl-lookup",
        "scn-1",
        None,
    )
    template = lookup.evaluation_template
    assert isinstance(template, EvaluationTemplate)
    assert template.name == "Looks up the account"
    assert template.content_type == ContentType.TOOL
    assert greeting.evaluation_template is not None
    assert greeting.evaluation_template.content_type == ContentType.CONTENT
    assert template.params == ["expected_name"]
    assert (template.owner_id, template.deleted, template.hidden) == ("org_1", False, False)
    assert template.created_at is not None and template.created_at.tzinfo is not None

    agent = call.test_agent
    assert isinstance(agent, TestAgent)
    assert agent.headshot_url == "https://img.example.invalid/jordan.png"
    assert (agent.name, agent.enabled, agent.default_selected, agent.order) == ("Jordan", True, False, 2)
    assert (agent.owner_id, agent.prompt, agent.description) == (
        "org_1",
        "You are Jordan.",
        "Calm and cooperative",
    )


def test_evaluation_result_names_without_walking_four_levels() -> None:
    call = _decode(SERVER_CALL)
    assert call.evaluation_results is not None
    er1, er2, er3, _ = call.evaluation_results
    assert er2.evaluation is not None and er2.evaluation.evaluation_template is not None
    assert er2.name == er2.evaluation.evaluation_template.name == "Looks up the account"
    assert er2.is_critical is True and er2.success is False
    assert er2.template is er2.evaluation.evaluation_template
    assert (er1.name, er1.is_critical) == ("Greets the caller", False)
    # no nested evaluation: the shortcuts say "unknown", they do not raise
    assert (er3.name, er3.is_critical, er3.template) == (None, None, None)
    failed = [r.name for r in call.evaluation_results if r.success is False]
    assert failed == ["Looks up the account"]


@pytest.mark.parametrize(
    "result",
    [
        {},
        {"evaluation": None},
        {"evaluation": {}},
        {"evaluation": {"isCritical": None, "evaluationTemplate": None}},
        {"evaluation": {"evaluationTemplate": {"name": None}}},
    ],
)
def test_name_shortcuts_are_none_at_any_missing_level(result: dict[str, Any]) -> None:
    er = msgspec.json.decode(msgspec.json.encode(result), type=EvaluationResult)
    assert er.name is None
    assert er.is_critical is None


def test_both_enum_vocabularies_compare_equal() -> None:
    call = _decode(SERVER_CALL)
    assert call.messages is not None and call.evaluation_results is not None
    roles = [m.role for m in call.messages]
    assert roles == [
        MessageRole.BOT,
        MessageRole.USER,
        MessageRole.TOOL_CALLS,
        MessageRole.TOOL_CALL_RESULT,
        MessageRole.ASSISTANT,
    ]
    types = [r.type for r in call.evaluation_results]
    assert types == [
        EvaluationType.BOOLEAN,
        EvaluationType.PERCENTAGE,
        EvaluationType.NUMBER,
        EvaluationType.AUTO,
    ]
    assert _decode({"status": "queued"}).status == CallStatus.QUEUED


def test_millisecond_figures_stay_as_sent() -> None:
    call = _decode(SERVER_CALL)
    assert (call.latency_p50, call.latency_p90, call.latency_p95) == (680, 910, 1020)
    assert type(call.latency_p50) is int
    assert call.time_to_first_word == 1200
    assert call.interruption_p50 == 2400
    # ...while the blocks they summarise are seconds
    assert call.latency_blocks is not None and call.latency_blocks[0].duration == 0.68
    assert call.messages is not None and call.messages[0].time == 1772600768250.0


def test_unknown_values_and_shapes_in_nested_objects_decode_on_the_strict_path() -> None:
    obj = copy.deepcopy(SERVER_CALL)
    obj["status"] = "archived"
    obj["messages"][0]["role"] = "narrator"
    obj["evaluationResults"][0]["type"] = "llm_judge"
    scenario = obj["scenario"]
    scenario["evaluations"][0]["params"] = [1, {"odd": True}]  # not the usual string map
    scenario["evaluations"][1]["evaluationTemplate"]["contentType"] = "audio"
    scenario["evaluations"][1]["evaluationTemplate"]["params"] = None
    call = _decode(obj)  # no ValidationError: no repair needed
    assert call.status == "archived" and call.status not in set(CallStatus)
    assert call.messages is not None and call.messages[0].role == "narrator"
    assert call.evaluation_results is not None and call.evaluation_results[0].type == "llm_judge"
    assert call.scenario is not None and call.scenario.evaluations is not None
    first, second = call.scenario.evaluations
    assert first.params == [1, {"odd": True}]
    assert second.evaluation_template is not None and second.evaluation_template.content_type == "audio"


@pytest.mark.parametrize("wire", ["scenario", "testAgent"])
def test_null_nested_object_decodes_as_none(wire: str) -> None:
    call = _decode({**SERVER_CALL, wire: None})
    assert getattr(call, {"scenario": "scenario", "testAgent": "test_agent"}[wire]) is None
    assert call.latency_p50 == 680


#: Fields no documentation names, at every nesting level.
UNKNOWN = {
    "scenario": ("tags", ["beta"]),
    "testAgent": ("voice", {"provider": "x", "speed": 1.1}),
    "evaluation": ("weight", 2),
    "evaluationTemplate": ("version", 7),
}


def _with_unknown_nested_fields() -> dict[str, Any]:
    obj = copy.deepcopy(SERVER_CALL)
    obj["scenario"][UNKNOWN["scenario"][0]] = UNKNOWN["scenario"][1]
    obj["testAgent"][UNKNOWN["testAgent"][0]] = UNKNOWN["testAgent"][1]
    evaluation = obj["evaluationResults"][1]["evaluation"]
    evaluation[UNKNOWN["evaluation"][0]] = UNKNOWN["evaluation"][1]
    evaluation["evaluationTemplate"][UNKNOWN["evaluationTemplate"][0]] = UNKNOWN["evaluationTemplate"][1]
    return obj


def test_unknown_nested_fields_are_ignored_by_the_typed_view() -> None:
    assert _decode(_with_unknown_nested_fields()) == _decode(SERVER_CALL)


async def test_unknown_nested_fields_are_kept_in_raw_through_the_client() -> None:
    obj = _with_unknown_nested_fields()
    async with DemoServer(api_key=API_KEY) as server:
        server.add_call(obj, call_id="my-call-1")
        async with asyncvox.Client(API_KEY, server.base_url) as client:
            outcome = await client.fetch("my-call-1")
    assert outcome.call is not None and outcome.raw is not None
    assert outcome.call.evaluation_results is not None
    assert outcome.call.evaluation_results[1].name == "Looks up the account"
    raw = msgspec.json.decode(outcome.raw)
    assert raw == obj
    assert raw["scenario"]["tags"] == ["beta"]
    assert raw["testAgent"]["voice"] == {"provider": "x", "speed": 1.1}
    assert raw["evaluationResults"][1]["evaluation"]["weight"] == 2
    assert raw["evaluationResults"][1]["evaluation"]["evaluationTemplate"]["version"] == 7


def test_encoding_nested_objects_uses_wire_names() -> None:
    er = _decode(SERVER_CALL).evaluation_results
    assert er is not None
    wire = msgspec.json.decode(msgspec.json.encode(er[1]))
    assert wire["evaluation"]["isCritical"] is True
    assert wire["evaluation"]["evaluationTemplate"]["contentType"] == "tool"


def test_test_agent_is_not_collected_by_pytest() -> None:
    # imported into a test module, a class named Test* would be collected (and warn) otherwise
    assert TestAgent.__test__ is False
    assert "__test__" not in TestAgent.__struct_fields__


# -- the demo server's synthetic calls follow the server -----------------------------------

SYNTH = [synth_call(f"shape-{i}", drift=i % 25 == 0) for i in range(200)]


@pytest.mark.parametrize("obj", SYNTH[:40])
def test_synth_calls_decode_strictly_with_names_reachable(obj: dict[str, Any]) -> None:
    call, raw, _ = decode_body(envelope(obj), obj["customerCallId"])
    assert call is not None and raw is not None
    assert call == msgspec.json.decode(raw, type=Call)  # the strict path took it
    assert call.scenario is not None and call.scenario.evaluations
    assert call.test_agent is not None and call.test_agent.headshot_url
    assert call.evaluation_results
    assert all(r.name for r in call.evaluation_results)
    assert {r.evaluation_id for r in call.evaluation_results} == {e.id for e in call.scenario.evaluations}


def test_synth_percentiles_are_milliseconds_of_the_blocks_seconds() -> None:
    for obj in SYNTH:
        call = _decode(obj)
        blocks = [b.duration for b in call.latency_blocks or [] if b.duration is not None]
        assert len(blocks) > 5
        for p in (call.latency_p50, call.latency_p90, call.latency_p95):
            assert type(p) is int
            # a rounded millisecond figure of one of the blocks (seconds)
            assert any(abs(p - d * 1000) <= 0.5 for d in blocks), (p, blocks)
        assert call.latency_p50 is not None and call.latency_p95 is not None
        assert call.latency_p50 <= call.latency_p95
        first_agent = next(
            m for m in call.messages or [] if m.role in (MessageRole.BOT, MessageRole.ASSISTANT)
        )
        assert first_agent.seconds_from_start is not None
        assert call.time_to_first_word == round(first_agent.seconds_from_start * 1000)
        cuts = [i.duration for i in call.interruptions or [] if i.duration is not None]
        assert int(call.num_interruptions or 0) == sum(1 for d in cuts if d > 2)
    medians = [_decode(o).latency_p50 or 0 for o in SYNTH]
    assert 400 < statistics.median(medians) < 1500  # a voice agent's latency, in ms


def test_synth_calls_mix_vocabularies_and_mostly_complete() -> None:
    roles: Counter[str] = Counter()
    types: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    with_errors = 0
    for obj in SYNTH:
        roles.update(m["role"] for m in obj["messages"])
        types.update(r["type"] for r in obj["evaluationResults"])
        statuses[obj["status"]] += 1
        with_errors += "errors" in obj
    assert set(roles) >= {"bot", "user", "tool_calls", "tool_call_result", "assistant", "tool"}
    assert roles["bot"] > roles["assistant"] > 0  # mostly the server schema's words
    assert set(types) >= {"boolean", "number", "percentage", "auto", "manual"}
    assert types["boolean"] > types["auto"] > 0
    known = {s.value for s in CallStatus}
    assert statuses["completed"] > 0.9 * len(SYNTH)
    assert 0 < sum(n for s, n in statuses.items() if s not in known) < 0.1 * len(SYNTH)
    assert with_errors < 0.25 * len(SYNTH)


def test_synth_evaluations_fail_at_different_rates() -> None:
    runs: Counter[str] = Counter()
    fails: Counter[str] = Counter()
    for obj in SYNTH:
        for r in _decode(obj).evaluation_results or []:
            assert r.name is not None
            runs[r.name] += 1
            fails[r.name] += r.success is False
    rates = {name: fails[name] / runs[name] for name in runs}
    assert max(rates.values()) > 3 * min(rates.values())
