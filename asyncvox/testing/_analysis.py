"""The demo server's analysis simulation: a call is not found until it has been processed.

The real service creates a call's row only once its analysis has finished, so until then
``GET /calls/{id}`` answers the API's own 404 ``Call not found``; some calls (a test run's)
are visible earlier, their status moving ``queued`` -> ``in_progress`` -> ``analyzing``
-> ``completed``. This module decides, for one id at one moment, which of those the
server answers.

**Time is measured per id from its first request** (the first one that passes
authentication, whatever it is answered with): that is "when the client started
waiting", so a newcomer's first look always finds the call still processing, and a test
knows each id's timeline from what it sent. The clock is injectable
(``DemoServer(clock=ManualClock())``) so that tests drive time instead of sleeping.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import msgspec

__all__ = ["AnalysisPlan", "AnalysisSimulator", "AnalysisView", "ManualClock", "StatusStep"]

#: The call's fields that analysis produces: absent while a call is not yet ``completed``.
_ANALYSIS_FIELDS = (
    "result",
    "failureReason",
    "evaluationResults",
    "evalSetToSuccess",
    "latencyP50",
    "latencyP90",
    "latencyP95",
    "interruptionP50",
    "interruptionP90",
    "interruptionP95",
    "timeToFirstWord",
    "numInterruptions",
)
_DONE = "completed"
#: Where a randomly planned call that is visible early turns queued, in progress,
#: analyzing, as shares of its processing time (it is completed at the end).
_EARLY_STEPS = (("queued", 0.25), ("in_progress", 0.4), ("analyzing", 0.7), (_DONE, 1.0))


class StatusStep(NamedTuple):
    """From ``at`` seconds after the id's first request, the call's status is ``status``."""

    status: str
    at: float


class AnalysisPlan(NamedTuple):
    """One id's timeline, in seconds after its first request.

    Before ``visible_after`` the id gets the API's 404 (``math.inf``: it never appears).
    Once visible, its status is that of the last step whose ``at`` has passed (the first
    step's before any has); a ``completed`` step, or no steps at all, serves the call as
    stored. Any other status serves the call with that status and without what analysis
    produces (evaluation results, result, latency and interruption figures).
    """

    visible_after: float
    steps: tuple[StatusStep, ...] = ()

    @property
    def ready_after(self) -> float:
        """Seconds after the first request until the call is served as stored (``inf``: never)."""
        if not self.steps:
            return self.visible_after
        done = [s.at for s in self.steps if s.status == _DONE]
        return max(self.visible_after, done[0]) if done else math.inf


class AnalysisView(NamedTuple):
    """What the server answers for an id now: not found, or found with ``status``.

    ``status`` is ``None`` when the call is served as stored (its analysis is done).
    """

    visible: bool
    status: str | None = None


class ManualClock:
    """A clock that moves only when told, for ``DemoServer(clock=...)`` in tests.

    >>> clock = ManualClock()
    >>> clock.advance(2.5)
    2.5
    >>> clock()
    2.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (not backward); returns the new time."""
        if not seconds >= 0:
            raise ValueError(f"a clock moves forward: advance({seconds!r})")
        self.now += seconds
        return self.now


def make_plan(visible_after: float, statuses: Iterable[tuple[str, float]] = ()) -> AnalysisPlan:
    """Validate a scripted timeline (see :class:`AnalysisPlan`); :class:`ValueError` names
    what is wrong."""
    if not visible_after >= 0:  # also rejects NaN
        raise ValueError(f"visible_after must be >= 0 seconds (math.inf: never), not {visible_after!r}")
    steps: list[StatusStep] = []
    for item in statuses:
        try:
            status, at = item
        except (TypeError, ValueError):
            raise ValueError(f"each status is a (status, seconds) pair, not {item!r}") from None
        if not isinstance(status, str) or not status:
            raise ValueError(f"a status must be a non-empty string, not {status!r}")
        if not isinstance(at, int | float) or not 0 <= at < math.inf:
            raise ValueError(f"the time of status {status!r} must be finite seconds >= 0, not {at!r}")
        if steps and at < steps[-1].at:
            raise ValueError(
                f"statuses must be in time order: {status!r} at {at} comes after "
                f"{steps[-1].status!r} at {steps[-1].at}"
            )
        steps.append(StatusStep(status, float(at)))
    return AnalysisPlan(float(visible_after), tuple(steps))


class AnalysisSimulator:
    """Per-id analysis timelines: scripted ones, and random ones from a delay range.

    With ``delay=(low, high)``, every id not scripted takes a processing time drawn
    from that range (decided by the seed and the id, so the same in every run); a share
    ``visible_early`` of ids is visible from a quarter of that time on, moving through
    ``queued``, ``in_progress`` and ``analyzing``, the others are not found until done.
    It keeps one time per id asked for (when its clock started).
    """

    def __init__(
        self,
        *,
        delay: tuple[float, float] | None = None,
        visible_early: float = 0.5,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if delay is not None and not 0 <= delay[0] <= delay[1] < math.inf:
            raise ValueError(f"analysis_delay must be (min, max) seconds with 0 <= min <= max, not {delay!r}")
        if not 0 <= visible_early <= 1:
            raise ValueError(f"analysis_visible_early must be a share between 0 and 1, not {visible_early!r}")
        self.delay = delay
        self.visible_early = visible_early
        self.seed = seed
        self.clock = clock
        self._scripts: dict[str, AnalysisPlan] = {}
        self._first: dict[str, float] = {}

    @property
    def active(self) -> bool:
        """Whether any id can be delayed (a delay range is set, or an id is scripted)."""
        return self.delay is not None or bool(self._scripts)

    def script(self, call_id: str, plan: AnalysisPlan) -> None:
        """Give ``call_id`` this timeline (replacing a random one); its clock is not reset."""
        self._scripts[call_id] = plan

    def plan(self, call_id: str) -> AnalysisPlan | None:
        """The id's timeline (``None``: it is not delayed at all)."""
        scripted = self._scripts.get(call_id)
        if scripted is not None or self.delay is None:
            return scripted
        digest = hashlib.blake2b(f"{self.seed}:analysis:{call_id}".encode(), digest_size=16).digest()
        u1 = int.from_bytes(digest[:8], "big") / 2**64
        u2 = int.from_bytes(digest[8:], "big") / 2**64
        low, high = self.delay
        total = low + u1 * (high - low)
        if u2 >= self.visible_early:
            return AnalysisPlan(total)
        steps = tuple(StatusStep(status, total * share) for status, share in _EARLY_STEPS)
        return AnalysisPlan(steps[0].at, steps)

    def first_request_at(self, call_id: str) -> float | None:
        """The clock's time at the id's first request, or ``None`` before it."""
        return self._first.get(call_id)

    def ready_at(self, call_id: str) -> float | None:
        """The clock's time from which the id is served as stored (``inf``: never; ``None``:
        not asked for yet, or not delayed)."""
        plan, first = self.plan(call_id), self._first.get(call_id)
        if plan is None or first is None:
            return None
        return first + plan.ready_after

    def touch(self, call_id: str) -> None:
        """Note a request for ``call_id`` (the first one starts its clock)."""
        if call_id not in self._first and self.plan(call_id) is not None:
            self._first[call_id] = self.clock()

    def view(self, call_id: str) -> AnalysisView | None:
        """What to answer for ``call_id`` now (``None``: not delayed, answer as usual)."""
        plan = self.plan(call_id)
        if plan is None:
            return None
        first = self._first.get(call_id)
        if first is None:
            first = self._first[call_id] = self.clock()
        elapsed = self.clock() - first
        if elapsed < plan.visible_after:
            return AnalysisView(False)
        status = plan.steps[0].status if plan.steps else _DONE
        for step in plan.steps:
            if step.at > elapsed:
                break
            status = step.status
        return AnalysisView(True, None if status == _DONE else status)


def unfinished_body(body: bytes, status: str) -> bytes:
    """A stored 200 body as it looks before analysis is done: ``status`` set, and the
    fields analysis produces removed."""
    envelope = msgspec.json.decode(body)
    call = envelope.get("call") if isinstance(envelope, dict) else None
    if not isinstance(call, dict):
        return body
    call = {k: v for k, v in call.items() if k not in _ANALYSIS_FIELDS}
    call["status"] = status
    return msgspec.json.encode({**envelope, "call": call})
