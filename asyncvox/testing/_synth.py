"""Deterministic synthetic calls shaped like the real server's: plausible transcripts,
figures and evaluations from a seed.

A call id always produces the same call (the id seeds the generator), so a test, the demo
server and a benchmark can all agree on what ``/calls/<id>`` holds without storing it.

What the server's own code sends, and so what these calls carry (see
``../shared/api/get-call.md``): the nested ``scenario`` (with its evaluations and their
templates), ``testAgent``, and on every evaluation result its ``evaluation`` with its
``evaluationTemplate``; latency and interruption percentiles and time to first word in
rounded milliseconds, computed from the blocks' durations in seconds; message roles and
evaluation-result types mostly in the server schema's vocabulary (``bot``,
``tool_calls``, ``boolean``...), in about one call of five in the reference page's
(``assistant``, ``tool``, ``auto``...); ``status`` ``completed`` (the server creates the
row only once analysis is done); ``errors`` usually absent (the server does not load
them). One thing differs on purpose: ``customerCallId`` is the id asked for (the server
sends ``null`` there and the id in ``id``), which lets tests match calls to ids.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from ._synth_data import (
    AGENT_LINES,
    DAYS,
    ERROR_TYPES,
    PERSONAS,
    SCENARIOS,
    TEMPLATES,
    USER_LINES,
    Scenario,
    Template,
)

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: The server counts only interruptions longer than this many seconds.
_COUNTED_INTERRUPTION_S = 2.0


def _rng(call_id: str, seed: int) -> random.Random:
    digest = hashlib.blake2b(f"{seed}:{call_id}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _percentile_ms(seconds: list[float], q: float) -> int:
    """A percentile of durations in seconds as the server sends it: rounded milliseconds."""
    if not seconds:
        return 0
    ordered = sorted(seconds)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000)


def _template(t: Template, owner: str) -> dict[str, Any]:
    return {
        "id": f"tmpl-{t.key}",
        "createdAt": _iso(_EPOCH - timedelta(days=90)),
        "name": t.name,
        "description": t.description,
        "params": [],
        "contentType": t.content_type,
        "toolCallExpectedResult": "the account was found" if t.content_type == "tool" else "",
        "ownerId": owner,
        "deleted": False,
        "hidden": False,
    }


def _evaluation(sc: Scenario, key: str, critical: bool, owner: str) -> dict[str, Any]:
    return {
        "id": f"eval-{sc.kind}-{key}",
        "createdAt": _iso(_EPOCH - timedelta(days=30)),
        "enabled": True,
        "isCritical": critical,
        "params": {},
        "evaluationTemplateId": f"tmpl-{key}",
        "scenarioId": f"scenario-{sc.kind}",
        "evaluationGroupId": None,
        "evaluationTemplate": _template(TEMPLATES[key], owner),
    }


def _scenario(sc: Scenario, owner: str) -> dict[str, Any]:
    return {
        "id": f"scenario-{sc.kind}",
        "createdAt": _iso(_EPOCH - timedelta(days=30)),
        "agentId": f"agent-{sc.kind}",
        "name": sc.name,
        "instructions": f"You are calling about {sc.ask.split('{')[0].strip()}. Stay in character.",
        "successCriteria": sc.success_criteria,
        "includeDateTime": False,
        "timezone": None,
        "deleted": False,
        "evaluations": [_evaluation(sc, key, critical, owner) for key, critical in sc.evaluations],
    }


def _test_agent(rng: random.Random, owner: str) -> dict[str, Any]:
    index = rng.randrange(len(PERSONAS))
    name, description = PERSONAS[index]
    return {
        "id": f"persona-{index + 1}",
        "ownerId": owner,
        "name": name,
        "headshotUrl": f"https://images.example.invalid/personas/{name.lower()}.png",
        "description": description,
        "prompt": f"You are {name}. {description}.",
        "enabled": True,
        "defaultSelected": index == 0,
        "order": index,
    }


def _transcript(
    rng: random.Random, call_id: str, n_turns: int, detail: str, kind: str, started: datetime, page: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], float, float]:
    """(messages, latency blocks, interruptions, seconds to the agent's first word, length)."""
    agent, tool_call, tool_result = (
        ("assistant", "assistant", "tool") if page else ("bot", "tool_calls", "tool_call_result")
    )
    start_ms = int(started.timestamp() * 1000)
    first_word = round(rng.uniform(0.6, 2.2), 3)
    t = first_word
    messages: list[dict[str, Any]] = []
    latencies: list[dict[str, Any]] = []
    interruptions: list[dict[str, Any]] = []
    side = "agent"
    for i in range(n_turns):
        msg: dict[str, Any] = {"id": f"{call_id}-msg-{i}", "callId": call_id}
        if side in ("tool", "result"):
            duration = round(rng.uniform(0.2, 0.9), 3)
            if side == "tool":
                msg.update(role=tool_call, message="")
                msg["toolCalls"] = [
                    {
                        "id": f"tool_{rng.getrandbits(32):08x}",
                        "type": "function",
                        "function": {"name": f"lookup_{kind}", "arguments": f'{{"query": "{detail}"}}'},
                    }
                ]
            else:
                msg.update(role=tool_result, message="", name=f"lookup_{kind}", result='{"found": true}')
        else:
            pool = AGENT_LINES if side == "agent" else USER_LINES
            text = rng.choice(pool).format(detail=detail)
            if rng.random() < 0.3:
                text += " " + rng.choice(pool).format(detail=detail)
            duration = round(len(text) / rng.uniform(12.0, 18.0), 3)
            if side == "agent" and i > 0:
                gap = round(rng.lognormvariate(-0.4, 0.35), 3)
                latencies.append(
                    {
                        "id": f"{call_id}-lat-{len(latencies)}",
                        "callId": call_id,
                        "secondsFromStart": round(t, 3),
                        "duration": gap,
                    }
                )
                t += gap
            msg.update(role=agent if side == "agent" else "user", message=text)
        msg.update(
            time=start_ms + int(t * 1000),
            endTime=start_ms + int((t + duration) * 1000),
            secondsFromStart=round(t, 3),
            duration=duration,
        )
        messages.append(msg)
        if side == "user" and rng.random() < 0.08:
            interruptions.append(
                {
                    "id": f"{call_id}-int-{len(interruptions)}",
                    "callId": call_id,
                    "secondsFromStart": round(t + duration * 0.6, 3),
                    "duration": round(rng.uniform(0.3, 3.2), 3),
                    "text": msg["message"].split(",")[0],
                }
            )
        t += duration + round(rng.uniform(0.05, 0.4), 3)
        if side == "user":
            side = "tool" if rng.random() < 0.1 else "agent"
        else:
            side = {"agent": "user", "tool": "result", "result": "agent"}[side]
    return messages, latencies, interruptions, first_word, t


def _results(
    rng: random.Random, call_id: str, scenario: dict[str, Any], started: datetime, length: float, page: bool
) -> list[dict[str, Any]]:
    results = []
    for j, evaluation in enumerate(scenario["evaluations"]):
        template = TEMPLATES[evaluation["evaluationTemplateId"].removeprefix("tmpl-")]
        ok = rng.random() >= template.fail_rate
        if page:
            kind = "auto" if rng.random() < 0.9 else "manual"
            value = "pass" if ok else "fail"
        else:
            kind = rng.choices(("boolean", "number", "percentage"), (8, 1, 1))[0]
            value = {
                "boolean": "true" if ok else "false",
                "number": str(rng.randint(4, 5) if ok else rng.randint(1, 3)),
                "percentage": str(rng.randint(70, 100) if ok else rng.randint(10, 69)),
            }[kind]
        results.append(
            {
                "id": f"{call_id}-er-{j}",
                "createdAt": _iso(started + timedelta(seconds=length + 5 + j)),
                "callId": call_id,
                "evaluationId": evaluation["id"],
                "result": value,
                "success": ok,
                "secondsFromStart": round(rng.uniform(0, length), 3),
                "duration": round(rng.uniform(0.5, 5.0), 3),
                "type": kind,
                "details": template.description + (" - met." if ok else " - not met."),
                "evaluation": evaluation,
            }
        )
    return results


def synth_call(
    call_id: str, *, seed: int = 0, turns: int | None = None, drift: bool = False
) -> dict[str, Any]:
    """One plausible call as the server's JSON object (camelCase keys; see the module doc).

    ``turns`` sets the transcript's number of messages (default: drawn per call; the median
    call is ~25 KB). ``drift`` adds what no documentation lists: an undocumented status,
    role and evaluation type, unknown fields (top level and nested), ``null`` for a
    documented field, a float where an int is expected, and a free-text ``startedAt``.
    """
    rng = _rng(call_id, seed)
    sc = rng.choice(SCENARIOS)
    detail = sc.ask.format(
        n=rng.randint(2, 8),
        day=rng.choice(DAYS),
        time=f"{rng.randint(5, 9)}:{rng.choice(['00', '30'])} pm",
        order=f"#{rng.randint(10000, 99999)}",
        amount=f"{rng.randint(5, 300)}.{rng.randint(0, 99):02d}",
    )
    page = rng.random() < 0.2
    owner = f"org_{seed}"
    n_turns = turns if turns is not None else rng.randint(54, 94)
    created = _EPOCH + timedelta(seconds=rng.randint(0, 300 * 86400))
    started = created + timedelta(seconds=rng.randint(1, 30))
    messages, latencies, interruptions, first_word, t = _transcript(
        rng, call_id, n_turns, detail, sc.kind, started, page
    )
    gaps = [b["duration"] for b in latencies]
    cuts = [b["duration"] for b in interruptions]
    scenario = _scenario(sc, owner)
    evals = _results(rng, call_id, scenario, started, t, page)
    critical_failed = any(not e["success"] and e["evaluation"]["isCritical"] for e in evals)
    result = "failure" if critical_failed else "success"
    call: dict[str, Any] = {
        "id": f"cl_{hashlib.blake2b(call_id.encode(), digest_size=8).hexdigest()}",
        "customerCallId": call_id,
        "ownerId": owner,
        "createdAt": _iso(created),
        "status": "completed",
        "result": result,
        "failureReason": None if result == "success" else "A critical evaluation failed",
        "stereoRecordingUrl": f"https://recordings.example.invalid/{call_id}/stereo.wav",
        "monoRecordingUrl": f"https://recordings.example.invalid/{call_id}/mono.wav",
        "agentId": f"agent-{sc.kind}",
        "scenarioId": scenario["id"],
        "testId": f"test-{rng.randint(1, 40)}",
        "regionId": rng.choice(["us-east", "us-west", "eu-west"]),
        "vapiCallId": f"vapi_{rng.getrandbits(48):012x}",
        "ofOneDeviceId": None,
        "deleted": False,
        "isRead": rng.random() < 0.3,
        "readBy": None,
        "notes": None,
        "duration": round(t, 3),
        "startedAt": _iso(started),
        "endedAt": _iso(started + timedelta(seconds=t)),
        "timeToFirstWord": round(first_word * 1000),
        "latencyP50": _percentile_ms(gaps, 0.5),
        "latencyP90": _percentile_ms(gaps, 0.9),
        "latencyP95": _percentile_ms(gaps, 0.95),
        "interruptionP50": _percentile_ms(cuts, 0.5),
        "interruptionP90": _percentile_ms(cuts, 0.9),
        "interruptionP95": _percentile_ms(cuts, 0.95),
        "numInterruptions": sum(1 for d in cuts if d > _COUNTED_INTERRUPTION_S),
        "messages": messages,
        "latencyBlocks": latencies,
        "interruptions": interruptions,
        "evaluationResults": evals,
        "evalSetToSuccess": {"default": result == "success"},
        "metadata": {
            "campaign": f"{sc.kind}-q{rng.randint(1, 4)}",
            "persona": {"mood": rng.choice(["calm", "rushed", "annoyed"])},
        },
    }
    test_agent = _test_agent(rng, owner)
    call["testAgentId"] = test_agent["id"]
    call["testAgent"] = test_agent
    call["scenario"] = scenario
    if rng.random() < 0.1:  # the reference documents ``errors``; the server rarely sends it
        call["errors"] = [
            {
                "id": f"{call_id}-err-{k}",
                "callId": call_id,
                "type": rng.choice(ERROR_TYPES),
                "description": "Component exceeded its time budget",
                "secondsFromStart": round(rng.uniform(0, t), 3),
                "duration": round(rng.uniform(0.1, 2.0), 3),
            }
            for k in range(rng.randint(1, 2))
        ]
    if drift:
        _add_drift(call, started)
    return call


def _add_drift(call: dict[str, Any], started: datetime) -> None:
    call["status"] = "queued_for_review"
    call["stereoRecordingUrl"] = None
    call["numInterruptions"] = float(call["numInterruptions"])
    call["startedAt"] = started.strftime("%b %d %Y, %I:%M %p")
    call["evalSetToSuccess"]["unscored"] = None
    call["reviewQueue"] = {"position": 3, "tags": ["drift"]}
    call["scenario"] = {**call["scenario"], "tags": ["drift", call["scenario"]["name"]]}
    call["testAgent"]["voice"] = {"provider": "example", "speed": 1.1}
    messages = call["messages"]
    if messages:
        messages[-1]["role"] = "narrator"
        messages[-1]["extraAnalysis"] = {"sentiment": 0.4}
    evals = call["evaluationResults"]
    if evals:
        first = evals[0]
        first["type"] = "llm_judge"
        evaluation = {**first["evaluation"], "weight": 2}
        evaluation["evaluationTemplate"] = {**evaluation["evaluationTemplate"], "version": 7}
        first["evaluation"] = evaluation


def envelope(call: dict[str, Any] | None, *, dashboard: str = "https://fixa.dev/observe") -> bytes:
    """The 200 body the API sends for ``call`` (``None`` gives ``call: null``)."""
    if call is None:
        return msgspec.json.encode({"success": False, "call": None})
    return msgspec.json.encode({"success": True, "call": call, "url": f"{dashboard}/{call['id']}"})
