"""Deterministic synthetic calls: plausible transcripts and figures from a seed.

A call id always produces the same call (the id seeds the generator), so a test, the demo
server and a benchmark can all agree on what ``/calls/<id>`` holds without storing it.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

_SCENARIOS = [
    ("booking", "a table for {n} on {day} at {time}"),
    ("support", "my order {order} never arrived"),
    ("billing", "a charge of ${amount} I don't recognise"),
    ("reschedule", "moving my appointment from {day} to next week"),
    ("cancel", "cancelling my subscription before {day}"),
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_AGENT_LINES = [
    "Thanks for calling, this is Ava, how can I help you today?",
    "I can help with that. Could you give me your full name, please?",
    "Thank you. And what's the best phone number to reach you on?",
    "Let me check that for you, one moment please.",
    "I've found your account. I can see the details here.",
    "Just to confirm, you'd like {detail}, is that right?",
    "Perfect, I've taken care of that. You'll get a confirmation by text shortly.",
    "Is there anything else I can help you with today?",
    "I'm sorry about the trouble. I've escalated it and someone will follow up within a day.",
    "Could you spell that for me, please?",
]
_USER_LINES = [
    "Hi, yes, I'm calling about {detail}.",
    "Sure, it's Jordan Alvarez, A-L-V-A-R-E-Z.",
    "It's five five five, zero one nine, two two four eight.",
    "Okay, thanks.",
    "Yes, that's right.",
    "Actually, wait, can you make it a bit later?",
    "No, that's everything, thank you so much.",
    "Sorry, could you repeat that?",
    "Hmm, I thought I already did that last week.",
]
_EVALS = [
    ("greeting", "Agent greets the caller and introduces itself"),
    ("verification", "Agent verifies the caller's identity before changes"),
    ("resolution", "Agent resolves the caller's request"),
    ("tone", "Agent stays polite and concise"),
    ("confirmation", "Agent confirms the final details back to the caller"),
]
_ERROR_TYPES = ["tts_timeout", "asr_low_confidence", "tool_error", "llm_latency_spike"]
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _rng(call_id: str, seed: int) -> random.Random:
    digest = hashlib.blake2b(f"{seed}:{call_id}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def synth_call(
    call_id: str, *, seed: int = 0, turns: int | None = None, drift: bool = False
) -> dict[str, Any]:
    """One plausible call as the server's JSON object (camelCase keys).

    ``turns`` sets the transcript length (default: drawn per call; ~85 turns make ~25 KB).
    ``drift`` adds what the live server sends beyond the reference: an undocumented status
    and role, extra nested objects, ``null`` for documented fields, a float where an int is
    expected, and a free-text ``startedAt``.
    """
    rng = _rng(call_id, seed)
    kind, template = rng.choice(_SCENARIOS)
    detail = template.format(
        n=rng.randint(2, 8),
        day=rng.choice(_DAYS),
        time=f"{rng.randint(5, 9)}:{rng.choice(['00', '30'])} pm",
        order=f"#{rng.randint(10000, 99999)}",
        amount=f"{rng.randint(5, 300)}.{rng.randint(0, 99):02d}",
    )
    n_turns = turns if turns is not None else rng.randint(60, 110)
    created = _EPOCH + timedelta(seconds=rng.randint(0, 300 * 86400))
    started = created + timedelta(seconds=rng.randint(1, 30))
    t = 0.0
    messages: list[dict[str, Any]] = []
    latencies: list[dict[str, Any]] = []
    interruptions: list[dict[str, Any]] = []
    start_ms = int(started.timestamp() * 1000)
    for i in range(n_turns):
        assistant = i % 2 == 0
        pool = _AGENT_LINES if assistant else _USER_LINES
        text = rng.choice(pool).format(detail=detail)
        if rng.random() < 0.3:
            text += " " + rng.choice(pool).format(detail=detail)
        duration = round(len(text) / rng.uniform(12.0, 18.0), 3)
        if assistant and i > 0:
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
        msg: dict[str, Any] = {
            "id": f"{call_id}-msg-{i}",
            "callId": call_id,
            "role": "assistant" if assistant else "user",
            "message": text,
            "time": start_ms + int(t * 1000),
            "endTime": start_ms + int((t + duration) * 1000),
            "secondsFromStart": round(t, 3),
            "duration": duration,
        }
        if assistant and rng.random() < 0.12:
            msg["toolCalls"] = [
                {
                    "id": f"tool_{rng.getrandbits(32):08x}",
                    "type": "function",
                    "function": {"name": f"lookup_{kind}", "arguments": f'{{"query": "{detail}"}}'},
                }
            ]
        messages.append(msg)
        if not assistant and rng.random() < 0.08:
            interruptions.append(
                {
                    "id": f"{call_id}-int-{len(interruptions)}",
                    "callId": call_id,
                    "secondsFromStart": round(t + duration * 0.6, 3),
                    "duration": round(rng.uniform(0.2, 1.5), 3),
                    "text": text.split(",")[0],
                }
            )
        t += duration + round(rng.uniform(0.05, 0.4), 3)
    gaps = [b["duration"] for b in latencies]
    cuts = [b["duration"] for b in interruptions]
    evals = []
    success_map: dict[str, bool] = {}
    for j, (name, description) in enumerate(rng.sample(_EVALS, rng.randint(2, len(_EVALS)))):
        ok = rng.random() < 0.8
        eval_id = f"eval-{name}"
        success_map[eval_id] = ok
        evals.append(
            {
                "id": f"{call_id}-er-{j}",
                "callId": call_id,
                "createdAt": (started + timedelta(seconds=t + 5 + j)).isoformat().replace("+00:00", "Z"),
                "evaluationId": eval_id,
                "evaluationTemplateId": f"tmpl-{name}",
                "result": "pass" if ok else "fail",
                "details": description + (" - met." if ok else " - not met: " + rng.choice(_USER_LINES)),
                "success": ok,
                "type": "auto" if rng.random() < 0.9 else "manual",
                "secondsFromStart": round(rng.uniform(0, t), 3),
                "duration": round(rng.uniform(0.5, 5.0), 3),
            }
        )
    errors = [
        {
            "id": f"{call_id}-err-{k}",
            "callId": call_id,
            "type": rng.choice(_ERROR_TYPES),
            "description": "Component exceeded its time budget",
            "secondsFromStart": round(rng.uniform(0, t), 3),
            "duration": round(rng.uniform(0.1, 2.0), 3),
        }
        for k in range(rng.choice([0, 0, 0, 1, 2]))
    ]
    ended = started + timedelta(seconds=t)
    result = "success" if all(success_map.values()) else "failure"
    call: dict[str, Any] = {
        "id": f"cl_{hashlib.blake2b(call_id.encode(), digest_size=8).hexdigest()}",
        "customerCallId": call_id,
        "ownerId": f"org_{seed}",
        "createdAt": created.isoformat().replace("+00:00", "Z"),
        "status": "completed",
        "result": result,
        "failureReason": None if result == "success" else "One or more evaluations failed",
        "stereoRecordingUrl": f"https://recordings.example.invalid/{call_id}/stereo.wav",
        "monoRecordingUrl": f"https://recordings.example.invalid/{call_id}/mono.wav",
        "agentId": f"agent-{kind}",
        "scenarioId": f"scenario-{kind}",
        "testId": f"test-{rng.randint(1, 40)}",
        "testAgentId": f"persona-{rng.randint(1, 12)}",
        "regionId": rng.choice(["us-east", "us-west", "eu-west"]),
        "vapiCallId": f"vapi_{rng.getrandbits(48):012x}",
        "ofOneDeviceId": None,
        "deleted": False,
        "isRead": rng.random() < 0.3,
        "readBy": None,
        "notes": None,
        "duration": round(t, 3),
        "startedAt": started.isoformat().replace("+00:00", "Z"),
        "endedAt": ended.isoformat().replace("+00:00", "Z"),
        "timeToFirstWord": round(rng.uniform(0.6, 2.2), 3),
        "latencyP50": _percentile(gaps, 0.5),
        "latencyP90": _percentile(gaps, 0.9),
        "latencyP95": _percentile(gaps, 0.95),
        "interruptionP50": _percentile(cuts, 0.5),
        "interruptionP90": _percentile(cuts, 0.9),
        "interruptionP95": _percentile(cuts, 0.95),
        "numInterruptions": len(interruptions),
        "messages": messages,
        "latencyBlocks": latencies,
        "interruptions": interruptions,
        "errors": errors,
        "evaluationResults": evals,
        "evalSetToSuccess": {"default": result == "success"},
        "metadata": {
            "campaign": f"{kind}-q{rng.randint(1, 4)}",
            "persona": {"mood": rng.choice(["calm", "rushed", "annoyed"])},
        },
    }
    if drift:
        call["status"] = "queued_for_review"
        call["stereoRecordingUrl"] = None
        call["numInterruptions"] = float(len(interruptions))
        call["startedAt"] = started.strftime("%b %d %Y, %I:%M %p")
        call["scenario"] = {"id": call["scenarioId"], "name": kind, "tags": ["drift", kind]}
        call["evalSetToSuccess"]["unscored"] = None
        if messages:
            messages[-1]["role"] = "bot"
            messages[-1]["extraAnalysis"] = {"sentiment": 0.4}
        if evals:
            evals[0]["type"] = "llm_judge"
    return call


def envelope(call: dict[str, Any] | None, *, dashboard: str = "https://fixa.dev/observe") -> bytes:
    """The 200 body the API sends for ``call`` (``None`` gives ``call: null``)."""
    if call is None:
        return msgspec.json.encode({"success": False, "call": None})
    return msgspec.json.encode({"success": True, "call": call, "url": f"{dashboard}/{call['id']}"})
