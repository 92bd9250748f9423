"""``asyncvox.cli._data_summary``: what the data says, in the server's units, with the
evaluations that fail most named by their template."""

from __future__ import annotations

from typing import Any

import msgspec

from asyncvox import Call
from asyncvox.cli._data_summary import describe_call, failing_evaluations, summarize_calls
from asyncvox.testing import synth_call


def _result(name: str | None, success: bool | None, critical: bool = False, eid: str = "e") -> dict[str, Any]:
    evaluation = {"isCritical": critical, "evaluationTemplate": {"name": name}} if name else None
    return {"evaluationId": eid, "success": success, "evaluation": evaluation}


def _call(**wire: Any) -> Call:
    return msgspec.json.decode(msgspec.json.encode({"status": "completed", **wire}), type=Call)


def test_latency_and_first_word_are_milliseconds_across_calls() -> None:
    calls = [_call(latencyP50=v, timeToFirstWord=1000 + v) for v in range(600, 1600, 10)]  # 100 calls
    lines = summarize_calls(calls)
    assert lines[0] == "what the data says:"
    latency = next(line for line in lines if "latency p50" in line)
    assert latency.endswith("1,095 / 1,491 / 1,540 ms")
    first_word = next(line for line in lines if "time to first word" in line)
    assert first_word.endswith("2,095 / 2,491 / 2,540 ms")
    assert not any(line.rstrip().endswith(" s") for line in lines)


def test_evaluations_that_fail_most_are_named_by_template() -> None:
    calls = [
        _call(
            evaluationResults=[
                _result("Verifies identity", success=i % 2 == 0, critical=True),
                _result("Greets the caller", success=i != 0),
                _result("Polite and concise", success=True),
                _result(None, success=i % 5 != 0, eid="eval-legacy"),  # no nested names: the id
                _result("Unscored", success=None),
            ]
        )
        for i in range(10)
    ]
    worst = failing_evaluations(calls)
    assert [(t.name, t.failed, t.runs, t.critical) for t in worst] == [
        ("Verifies identity", 5, 10, True),
        ("eval-legacy", 2, 10, False),
        ("Greets the caller", 1, 10, False),
    ]
    assert worst[0].fail_rate == 0.5
    lines = summarize_calls(calls)
    at = lines.index("  evaluations that fail most:")
    assert lines[at + 1 : at + 4] == [
        "    'Verifies identity': failed 5 of 10 (50.0%, critical)",
        "    'eval-legacy': failed 2 of 10 (20.0%)",
        "    'Greets the caller': failed 1 of 10 (10.0%)",
    ]
    assert "  evaluations passed: 32/40 (80.0%)" in lines
    assert not any("Polite and concise" in line or "Unscored" in line for line in lines)


def test_statuses_reasons_and_fetch_failures() -> None:
    calls = [
        _call(status="analyzing"),
        _call(status="queued"),
        _call(status="archived", failureReason="A critical evaluation failed"),
        _call(failureReason="A critical evaluation failed"),
    ]
    lines = summarize_calls(calls, failures={"ServerError": 3, "APITimeoutError": 1})
    assert "  calls still being analysed (queued / in progress / analyzing): 2" in lines
    assert "  calls with an undocumented status (kept as sent): 1" in lines
    assert "  failure reason: 'A critical evaluation failed' x2" in lines
    assert lines[-2:] == ["  fetch failed: ServerError x3", "  fetch failed: APITimeoutError x1"]


def test_empty_and_single_call_inputs() -> None:
    assert summarize_calls([]) == [
        "what the data says:",
        "  latency p50 per call, across calls (p50/p90/p95): -",
        "  time to first word, across calls (p50/p90/p95): -",
        "  evaluations passed: 0/0",
    ]
    (one,) = [line for line in summarize_calls([_call(latencyP50=680)]) if "latency" in line]
    assert one.endswith("680 ms (one call)")


def test_synthetic_calls_summarise_with_plausible_milliseconds() -> None:
    calls = [_call(**synth_call(f"s-{i}")) for i in range(60)]
    lines = summarize_calls(iter(calls))  # any iterable, read once
    latency = next(line for line in lines if "latency p50" in line)
    p50 = float(latency.split(": ")[1].split(" / ")[0].replace(",", ""))
    assert 300 < p50 < 2000
    assert "  evaluations that fail most:" in lines


def test_describe_call_uses_units_and_evaluation_names() -> None:
    call = _call(
        id="c1",
        latencyP50=680,
        latencyP90=910,
        latencyP95=1020,
        timeToFirstWord=1200,
        duration=62.5,
        scenario={"name": "Missing order"},
        evaluationResults=[_result("Verifies identity", False, critical=True) | {"details": "not asked"}],
        messages=[{"role": "tool_call_result", "secondsFromStart": 3.0, "message": "{}"}],
    )
    text = describe_call(call, "https://fixa.dev/observe/c1")
    assert "latency p50/p90/p95  680 / 910 / 1020 ms   time to first word 1200 ms" in text
    assert "duration 62.5 s" in text
    assert "  scenario: Missing order" in text
    assert "  [FAIL] Verifies identity (critical): not asked" in text
    assert "tool_call_result: {}" in text
    assert "  dashboard: https://fixa.dev/observe/c1" in text
