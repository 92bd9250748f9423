"""Plumbing shared by the fleet benchmark's scenarios (``bench_fleet.py``, ``_webrun.py``).

Not a benchmark itself.

* :class:`RedisServer` runs a throwaway ``redis-server`` (no persistence) on a port and
  kills / restarts it on demand;
* :func:`run_batch` (child side) fetches ids on one :class:`asyncvox.Client` and returns
  a :class:`BatchReport`, the completion time of every id included;
* :func:`recovery` turns completion times into the fleet's pace after Redis returned.

Times are ``time.monotonic()``: on Linux ``CLOCK_MONOTONIC`` is one clock for the whole
machine, so stamps taken in different processes can be compared.
"""

from __future__ import annotations

import resource
import socket
import sys
import time
from typing import Any, NamedTuple

from asyncvox import testing

__all__ = ["BatchReport", "RedisServer", "free_port", "percentile", "recovery", "run_batch"]

#: Seconds after Redis's restart before the recovery window opens (rejoin + one sync).
SETTLE = 3.0
#: Fewer completions than this in the recovery window: no figure (too few to mean anything).
MIN_RECOVERY_COMPLETIONS = 20


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class RedisServer(testing.RedisServer):
    """``asyncvox.testing.RedisServer`` (start, kill as a crash, restart on the same port);
    a benchmark that cannot start it exits with the reason."""

    def __init__(self, port: int, workdir: str) -> None:
        super().__init__(workdir, port)

    def start(self) -> None:
        try:
            super().start()
        except RuntimeError as exc:
            sys.exit(f"bench_fleet: {exc}")


class BatchReport(NamedTuple):
    """What one process's batch did (sent to the parent as JSON: ``_asdict()``)."""

    ok: int
    lost: int
    requests: int
    throttles: int
    round_trips: int
    fallbacks: int
    #: the fleet link's state at the end ("fleet" = in the fleet again), ``None`` without one
    link: str | None
    cpu: float
    started: float
    finished: float
    #: the monotonic time each id was answered successfully
    done_at: list[float]


async def run_batch(base_url: str | None, prefix: str, count: int, fleet: Any) -> BatchReport:
    """Fetch ``prefix-0 .. prefix-<count-1>`` on one client; ``fleet`` as ``Client(fleet=)``.

    ``base_url=None`` and the default ``fleet`` take both from the environment, as the
    CLI or an app would. Uses ``iter_calls`` (what ``fetch_calls`` collects) unordered, so
    every outcome is stamped when it arrives, not when the ids before it have.
    """
    from _common import API_KEY

    import asyncvox

    kwargs: dict[str, Any] = {} if fleet is None else {"fleet": fleet}
    done_at: list[float] = []
    ok = requests = 0
    async with asyncvox.Client(API_KEY, base_url, concurrency=16, max_retries=50, **kwargs) as client:
        started = time.monotonic()
        async with client.iter_calls([f"{prefix}-{i}" for i in range(count)]) as stream:
            async for outcome in stream:
                requests += outcome.attempts
                if outcome.error is None:
                    ok += 1
                    done_at.append(time.monotonic())
        finished = time.monotonic()
        state = client.governor.fleet_state
        throttles = client.governor.throttled
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return BatchReport(
        ok=ok,
        lost=count - ok,
        requests=requests,
        throttles=throttles,
        round_trips=state.round_trips if state is not None else 0,
        fallbacks=state.fallbacks if state is not None else 0,
        link=state.state if state is not None else None,
        cpu=usage.ru_utime + usage.ru_stime,
        started=started,
        finished=finished,
        done_at=done_at,
    )


class Recovery(NamedTuple):
    """The fleet's pace once Redis was back: ``ratio`` = window x limit / completions."""

    ratio: float
    completions: int
    window: float


def recovery(done_at: list[float], restarted: float, rate: float) -> Recovery | None:
    """The fleet's completions from ``restarted + SETTLE`` to the last one, against the limit.

    ``ratio`` is the time that work took over its ideal (completions / ``rate``): 1.0 is
    the whole limit used, 1.5 the issue's bound. ``None`` when the window holds fewer
    than :data:`MIN_RECOVERY_COMPLETIONS` (the run ended too soon after the restart).
    """
    opens = restarted + SETTLE
    inside = [t for t in done_at if t >= opens]
    if len(inside) < MIN_RECOVERY_COMPLETIONS:
        return None
    window = max(inside) - opens
    return Recovery(window * rate / len(inside), len(inside), window)
