"""A discrete-event simulator: clients and their control logic against a shaped server.

Not a benchmark itself. A virtual clock, a heap of events, one seeded RNG per run: a
few thousand requests take milliseconds of CPU and every run is reproducible. What runs:

* the server: a :mod:`_shapes` limiter deciding on each arrival, its :class:`Backend`
  giving the latency of admitted requests; refusals answer in 1-3 ms; its clock is
  offset from the client's by a random fraction of a second (a window's edges fall
  anywhere in the client's first second, as on a real server);
* a client: ``workers`` workers (asyncvox's bulk has one per ``concurrency``), each
  fetching ids one after the other, every attempt going through a *gate* (the control
  logic: :class:`asyncvox._control.Controller`, or an emulation of another client's);
  a throttled attempt waits its ``Retry-After`` (else the retry policy's backoff) and
  queues for the gate again, up to ``max_retries``; an id whose retries run out is lost.
  Timers fire 0-1 ms late, as an event loop's do.

:func:`run` simulates one contender on one shape and returns a :class:`Result`.
"""

from __future__ import annotations

import heapq
import math
import random
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

if "_shapes" not in sys.modules:  # run as a script or imported from benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shapes import Backend, Limiter, Params, Shape

from asyncvox._control import Controller

__all__ = ["CONTENDERS", "Gate", "Result", "Sim", "run"]


class Sim:
    """The clock and the event heap."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._n = 0

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._heap, (when, self._n, fn, args))
        self._n += 1

    def run(self, until: float = math.inf) -> None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            when, _, fn, args = heapq.heappop(heap)
            self.now = when
            fn(*args)


class Answer(NamedTuple):
    status: int
    retry_after: float | None
    latency: float


class SimServer:
    """A shaped server on the virtual clock."""

    def __init__(self, sim: Sim, shape: Shape, params: Params, rng: random.Random) -> None:
        self.sim = sim
        self.shape = shape
        self.limiter: Limiter = shape.limiter(params)
        self.backend: Backend = shape.backend()
        self.rng = rng
        self.arrivals = 0
        # The server's clock: a real server's windows are aligned to its own clock, so a
        # client's first request falls anywhere in one.
        self.epoch = rng.uniform(0.0, 1.0)

    def request(self, now: float) -> Answer:
        self.arrivals += 1
        verdict = self.limiter.admit(now + self.epoch)
        if not verdict.admitted:
            header = self.shape.retry_after_header(verdict.wait)
            return Answer(
                self.shape.status, None if header is None else float(header), self.rng.uniform(0.001, 0.003)
            )
        latency = self.backend.serve(now, self.rng)
        self.sim.at(now + latency, self.limiter.done, now + latency + self.epoch)
        return Answer(200, None, latency)


class Gate(Protocol):
    """What a runtime asks its control logic (the :class:`Controller` API)."""

    in_flight: int
    cap: int

    def may_start(self, now: float) -> float: ...

    def on_start(self, now: float) -> int: ...

    def on_success(self, now: float, latency: float, ticket: int) -> None: ...

    def on_throttle(
        self, now: float, latency: float, ticket: int, retry_after: float | None, status: int
    ) -> None: ...

    def on_failure(self, now: float, latency: float, ticket: int, kind: str) -> None: ...


class FixedGate:
    """A semaphore: ``cap`` in flight, nothing else (what generated SDKs do)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.in_flight = 0

    def may_start(self, now: float) -> float:
        return 0.0

    def on_start(self, now: float) -> int:
        self.in_flight += 1
        return 0

    def on_success(self, now: float, latency: float, ticket: int) -> None:
        self.in_flight -= 1

    def on_throttle(
        self, now: float, latency: float, ticket: int, retry_after: float | None, status: int
    ) -> None:
        self.in_flight -= 1

    def on_failure(self, now: float, latency: float, ticket: int, kind: str) -> None:
        self.in_flight -= 1


class OldGovernor:
    """asyncvox 0.1's governor, emulated: AIMD in-flight limit, a client-wide pause per 429.

    One 429 stops every start for its ``Retry-After`` (else 1 s) and halves the limit (once
    per pause); the pause's end releases every waiter the limit allows at once; one more
    slot per ``limit`` successes. A 503 never reaches it. ``rate_limit`` spaces starts
    evenly (GCRA).
    """

    def __init__(self, concurrency: int, rate_limit: float | None = None) -> None:
        self.ceiling = concurrency
        self.cap = concurrency
        self.in_flight = 0
        self.interval = 1.0 / rate_limit if rate_limit else 0.0
        self.next_start = 0.0
        self.pause_until = 0.0
        self.guard = 0.0
        self.successes = 0

    def may_start(self, now: float) -> float:
        if self.pause_until > now:
            return self.pause_until - now
        return max(0.0, self.next_start - now) if self.interval else 0.0

    def on_start(self, now: float) -> int:
        self.in_flight += 1
        if self.interval:
            self.next_start = max(now, self.next_start) + self.interval
        return 0

    def on_success(self, now: float, latency: float, ticket: int) -> None:
        self.in_flight -= 1
        if self.cap < self.ceiling:
            self.successes += 1
            if self.successes >= self.cap:
                self.successes = 0
                self.cap += 1

    def on_throttle(
        self, now: float, latency: float, ticket: int, retry_after: float | None, status: int
    ) -> None:
        self.in_flight -= 1
        if status != 429:
            return
        until = now + (1.0 if retry_after is None else min(retry_after, 60.0))
        self.pause_until = max(self.pause_until, until)
        if now >= self.guard:
            self.cap = max(1, self.cap // 2)
            self.successes = 0
            self.guard = until

    def on_failure(self, now: float, latency: float, ticket: int, kind: str) -> None:
        self.in_flight -= 1


@dataclass
class Policy:
    """The retry policy of a simulated client."""

    max_retries: int = 4
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.25
    #: generated SDKs scale down only: the wait is in [base x (1 - jitter), base]
    down_only: bool = False

    def backoff(self, retry: int, rng: random.Random) -> float:
        base = min(self.max_wait, self.initial_wait * 2.0 ** (retry - 1))
        low = 1 - self.jitter
        return base * (rng.uniform(low, 1.0) if self.down_only else rng.uniform(low, 1 + self.jitter))


@dataclass
class Result:
    """One simulated run."""

    wall: float = 0.0
    requests: int = 0
    throttled: int = 0
    #: answers that were failures, not throttles (a 5xx without Retry-After)
    failed: int = 0
    ok: int = 0
    lost: int = 0
    #: (time, pacing rate or 0, learned rate or 0, in-flight cap, throttles so far) every 0.25 s
    trace: list[tuple[float, float, float, int, int]] = field(default_factory=list)


class SimClient:
    """One client process: workers pulling ids, every attempt through the gate."""

    def __init__(
        self,
        sim: Sim,
        server: SimServer,
        gate: Gate,
        ids: int,
        workers: int,
        policy: Policy,
        rng: random.Random,
        result: Result,
    ) -> None:
        self.sim = sim
        self.server = server
        self.gate = gate
        self.left = ids
        self.policy = policy
        self.rng = rng
        self.result = result
        self.ready: deque[int] = deque()  # attempts (their retry number) waiting for the gate
        self.wake_at = math.inf
        self.finished = 0
        self.total = ids
        self.last_done = 0.0
        for _ in range(min(workers, ids)):
            self._next_id()
        self.pump()

    def _next_id(self) -> None:
        if self.left:
            self.left -= 1
            self.ready.append(0)

    def pump(self) -> None:
        """Start every attempt the gate lets through now; come back when it says."""
        now = self.sim.now
        gate = self.gate
        while self.ready and gate.in_flight < gate.cap:
            delay = gate.may_start(now)
            if delay > 0:
                # An event loop's timer fires a little late, never early.
                when = now + delay + self.rng.uniform(0.0, 0.001)
                if when < self.wake_at:
                    self.wake_at = when
                    self.sim.at(when, self._wake, when)
                return
            retry = self.ready.popleft()
            ticket = gate.on_start(now)
            self.result.requests += 1
            answer = self.server.request(now)
            self.sim.at(now + answer.latency, self._answered, retry, ticket, answer)

    def _wake(self, when: float) -> None:
        if when == self.wake_at:
            self.wake_at = math.inf
            self.pump()

    def _answered(self, retry: int, ticket: int, answer: Answer) -> None:
        now = self.sim.now
        gate = self.gate
        if answer.status in (200, 404):
            gate.on_success(now, answer.latency, ticket)
            self._finish(now, ok=True)
        else:
            throttled = answer.status == 429 or (answer.status == 503 and answer.retry_after is not None)
            if throttled:
                self.result.throttled += 1
                gate.on_throttle(now, answer.latency, ticket, answer.retry_after, answer.status)
            else:
                self.result.failed += 1
                gate.on_failure(now, answer.latency, ticket, str(answer.status))
            if retry >= self.policy.max_retries:
                self._finish(now, ok=False)
            else:
                wait = answer.retry_after
                if wait is None:
                    wait = self.policy.backoff(retry + 1, self.rng)
                self.sim.at(now + wait + self.rng.uniform(0.0, 0.001), self._requeue, retry + 1)
        self.pump()

    def _requeue(self, retry: int) -> None:
        self.ready.append(retry)
        self.pump()

    def _finish(self, now: float, *, ok: bool) -> None:
        if ok:
            self.result.ok += 1
        else:
            self.result.lost += 1
        self.finished += 1
        self.last_done = now
        self._next_id()


def told_rate(shape: Shape, p: Params) -> float | None:
    """The rate a user who knows the quota tells the client (None where no rate applies)."""
    if shape.ideal in ("concurrency", "queue"):
        return None
    if shape.ideal == "generous":
        return 10 * p.rate
    return p.rate / shape.clients


class Contender(NamedTuple):
    """How to build one client: its gate, workers and retry policy."""

    gate: Callable[[Shape, Params], Gate]
    workers: Callable[[Params], int]
    policy: Policy


CONTENDERS: dict[str, Contender] = {
    "asyncvox": Contender(lambda s, p: Controller(p.concurrency), lambda p: p.concurrency, Policy()),
    "asyncvox+rate_limit": Contender(
        lambda s, p: Controller(p.concurrency, rate_limit=told_rate(s, p)), lambda p: p.concurrency, Policy()
    ),
    "asyncvox-0.1": Contender(lambda s, p: OldGovernor(p.concurrency), lambda p: p.concurrency, Policy()),
    "stainless-style": Contender(
        lambda s, p: FixedGate(p.concurrency), lambda p: p.n, Policy(max_retries=2, down_only=True)
    ),
}


def run(
    shape: Shape,
    contender: str,
    params: Params | None = None,
    seed: int = 0,
    trace: bool = False,
    gate: Callable[[Shape, Params], Gate] | None = None,
) -> Result:
    """Simulate ``contender`` fetching ``params.n`` ids from ``shape``.

    ``trace`` samples the first client's state every 0.25 s; ``gate`` replaces the
    contender's control logic (its workers and retry policy stay).
    """
    params = Params() if params is None else params
    spec = CONTENDERS[contender]
    make_gate = spec.gate if gate is None else gate
    rng = random.Random(seed)
    sim = Sim()
    server = SimServer(sim, shape, params, rng)
    result = Result()
    share = Params(params.n // shape.clients, params.rate, params.concurrency)
    clients: list[SimClient] = []
    for i in range(shape.clients):
        # Processes sharing a key do not start in the same millisecond.
        gate_i = make_gate(shape, share)
        sim.at(0.05 * i, _start_client, sim, clients, server, gate_i, share, spec, rng, result)
    if trace:
        _sample(sim, clients, result)
    sim.run()
    result.wall = max(c.last_done for c in clients)
    return result


def _start_client(
    sim: Sim,
    clients: list[SimClient],
    server: SimServer,
    gate: Gate,
    share: Params,
    spec: Contender,
    rng: random.Random,
    result: Result,
) -> None:
    clients.append(SimClient(sim, server, gate, share.n, spec.workers(share), spec.policy, rng, result))


def _sample(sim: Sim, clients: list[SimClient], result: Result) -> None:
    if clients and all(c.finished == c.total for c in clients):
        return
    if clients:
        gate = clients[0].gate
        pace = getattr(gate, "pace", None) or 0.0
        rate = getattr(gate, "rate", None) or 0.0
        result.trace.append((sim.now, pace, rate, gate.cap, result.throttled))
    sim.at(sim.now + 0.25, _sample, sim, clients, result)
