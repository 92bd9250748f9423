"""What a set of calls says, as lines for a person: latency, evaluations, drift.

Pure functions of decoded calls (no click, no I/O), so the demo's "what the data says"
and ``asyncvox get`` print the same figures in the same units. Units are the server's:
``latency_p*``, ``interruption_p*`` and ``time_to_first_word`` are milliseconds;
durations and ``seconds_from_start`` are seconds. An evaluation is named by its template
(``EvaluationResult.name``), falling back to its id.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from asyncvox import Call, CallStatus, EvaluationResult

__all__ = ["EvaluationTally", "describe_call", "failing_evaluations", "summarize_calls"]

#: Statuses of a call whose analysis is not finished.
_UNFINISHED = frozenset({CallStatus.QUEUED, CallStatus.IN_PROGRESS, CallStatus.ANALYZING})
_KNOWN_STATUSES = frozenset(s.value for s in CallStatus)


class EvaluationTally(NamedTuple):
    """How one evaluation (by name) went across calls."""

    name: str
    failed: int
    runs: int
    #: Whether any of its results was marked critical.
    critical: bool

    @property
    def fail_rate(self) -> float:
        """Failed runs over runs with a known outcome."""
        return self.failed / self.runs if self.runs else 0.0


def _label(result: EvaluationResult) -> str:
    return result.name or result.evaluation_id or "(unnamed evaluation)"


def failing_evaluations(calls: Iterable[Call], *, top: int = 3) -> list[EvaluationTally]:
    """The ``top`` evaluations that failed most often (by count, then rate), by name.

    Results whose ``success`` is unknown are not counted; evaluations that never failed
    are left out.
    """
    runs: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    critical: set[str] = set()
    for call in calls:
        for result in call.evaluation_results or ():
            if result.success is None:
                continue
            name = _label(result)
            runs[name] += 1
            if result.success is False:
                failed[name] += 1
            if result.is_critical:
                critical.add(name)
    tallies = [EvaluationTally(name, failed[name], runs[name], name in critical) for name in failed]
    tallies.sort(key=lambda t: (-t.failed, -t.fail_rate, t.name))
    return tallies[:top]


def _ms(value: float) -> str:
    return f"{value:,.0f}"


def _spread_ms(values: list[float]) -> str:
    """p50 / p90 / p95 of ``values`` (milliseconds) across calls."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{_ms(values[0])} ms (one call)"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"{_ms(q[49])} / {_ms(q[89])} / {_ms(q[94])} ms"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def summarize_calls(calls: Iterable[Call], *, failures: Mapping[str, int] | None = None) -> list[str]:
    """Lines of "what the data says" about ``calls`` (the first is a heading).

    Latency and time to first word in milliseconds across calls, the evaluations'
    pass rate and the ones that fail most (by template name), calls still being
    analysed, undocumented statuses, the commonest failure reasons, and ``failures``
    (an error name -> count of ids that could not be fetched).
    """
    calls = list(calls)
    latency = [float(c.latency_p50) for c in calls if c.latency_p50 is not None]
    first_word = [float(c.time_to_first_word) for c in calls if c.time_to_first_word is not None]
    results = [r.success for c in calls for r in c.evaluation_results or () if r.success is not None]
    passed = sum(results)
    lines = [
        "what the data says:",
        f"  latency p50 per call, across calls (p50/p90/p95): {_spread_ms(latency)}",
        f"  time to first word, across calls (p50/p90/p95): {_spread_ms(first_word)}",
        f"  evaluations passed: {passed}/{len(results)}"
        + (f" ({_pct(passed, len(results))})" if results else ""),
    ]
    worst = failing_evaluations(calls)
    if worst:
        lines.append("  evaluations that fail most:")
        for t in worst:
            mark = ", critical" if t.critical else ""
            lines.append(f"    {t.name!r}: failed {t.failed} of {t.runs} ({_pct(t.failed, t.runs)}{mark})")
    unfinished = sum(1 for c in calls if c.status in _UNFINISHED)
    if unfinished:
        lines.append(f"  calls still being analysed (queued / in progress / analyzing): {unfinished}")
    drift = sum(1 for c in calls if c.status is not None and c.status not in _KNOWN_STATUSES)
    if drift:
        lines.append(f"  calls with an undocumented status (kept as sent): {drift}")
    reasons = Counter(c.failure_reason for c in calls if c.failure_reason)
    for reason, count in reasons.most_common(3):
        lines.append(f"  failure reason: {reason!r} x{count}")
    for name, count in Counter(failures or {}).most_common(3):
        lines.append(f"  fetch failed: {name} x{count}")
    return lines


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}{unit}"
    return f"{value}{unit}"


def describe_call(call: Call, url: str | None = None) -> str:
    """One call for a person (``asyncvox get``): figures in their units, evaluations by
    name, then the transcript."""
    lines = [
        f"call {call.customer_call_id or call.id}  ({call.id})",
        f"  status {_fmt(call.status)}   result {_fmt(call.result)}   duration {_fmt(call.duration, ' s')}",
        f"  latency p50/p90/p95  {_fmt(call.latency_p50)} / {_fmt(call.latency_p90)} / "
        f"{_fmt(call.latency_p95, ' ms')}   time to first word {_fmt(call.time_to_first_word, ' ms')}",
        f"  interruptions over 2 s {_fmt(call.num_interruptions)}   errors {len(call.errors or [])}",
    ]
    if call.scenario is not None and call.scenario.name:
        lines.append(f"  scenario: {call.scenario.name}")
    if call.failure_reason:
        lines.append(f"  failure reason: {call.failure_reason}")
    if url:
        lines.append(f"  dashboard: {url}")
    if call.evaluation_results:
        lines.append("evaluations")
        for ev in call.evaluation_results:
            mark = "pass" if ev.success else "FAIL" if ev.success is False else "  ? "
            critical = " (critical)" if ev.is_critical else ""
            lines.append(f"  [{mark}] {_label(ev)}{critical}: {ev.details or ev.result or ''}")
    if call.messages:
        lines.append("transcript")
        for msg in call.messages:
            at = f"{msg.seconds_from_start:7.1f}s" if msg.seconds_from_start is not None else "       -"
            lines.append(f"  {at}  {msg.role or '?':>16}: {msg.message or ''}")
    return "\n".join(lines)
