"""The demo server's analysis simulation, through a real loopback server: not found until
visible, then queued -> in_progress -> analyzing -> completed, on a clock the test moves
(``ManualClock``), so nothing here sleeps or races.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from conftest import API_KEY

import asyncvox
from asyncvox.testing import (
    AnalysisPlan,
    DemoServer,
    Fault,
    ManualClock,
    StatusStep,
    parse_seconds,
    parse_seconds_range,
    synth_call,
)
from asyncvox.testing._analysis import unfinished_body
from asyncvox.testing._options import add_server_arguments, server_from_args

NOT_FOUND = {"success": False, "error": "Call not found"}
LIFECYCLE = [("queued", 2.0), ("in_progress", 3.0), ("analyzing", 4.0), ("completed", 5.0)]


class Probe:
    """GETs one id and says what came back: 404, or the call's status."""

    def __init__(self, server: DemoServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.headers: dict[str, str] = {}

    async def get(self, call_id: str) -> tuple[int, Any]:
        url = f"{self.server.base_url}/calls/{call_id}"
        async with self.session.get(url, headers={"Authorization": f"Bearer {API_KEY}"}) as resp:
            self.headers = dict(resp.headers)
            return resp.status, msgspec.json.decode(await resp.read())

    async def state(self, call_id: str) -> str:
        status, body = await self.get(call_id)
        if status == 404:
            assert body == NOT_FOUND  # the API's own 404, never a bare one
            return "404"
        assert status == 200
        return str(body["call"]["status"])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def server(clock: ManualClock) -> AsyncIterator[DemoServer]:
    async with DemoServer(api_key=API_KEY, turns=6, clock=clock) as srv:
        yield srv


@pytest.fixture
async def probe(server: DemoServer) -> AsyncIterator[Probe]:
    async with aiohttp.ClientSession() as session:
        yield Probe(server, session)


async def test_scripted_call_is_not_found_then_moves_through_the_statuses(
    server: DemoServer, probe: Probe, clock: ManualClock
) -> None:
    server.script_analysis("c1", visible_after=2, statuses=LIFECYCLE)
    seen = []
    for t in (0, 1.99, 2, 2.5, 3, 4, 4.99, 5, 60):
        clock.now = t
        seen.append((t, await probe.state("c1")))
    assert seen == [
        (0, "404"),
        (1.99, "404"),
        (2, "queued"),
        (2.5, "queued"),
        (3, "in_progress"),
        (4, "analyzing"),
        (4.99, "analyzing"),
        (5, "completed"),
        (60, "completed"),
    ]
    assert server.stats.not_yet_visible == 2
    assert server.stats.unfinished == 5
    assert server.stats.requests_for("c1") == 9


async def test_unfinished_call_lacks_what_analysis_produces_and_the_done_one_is_as_stored(
    server: DemoServer, probe: Probe, clock: ManualClock
) -> None:
    stored = synth_call("c2", turns=6)
    server.add_call(stored, call_id="c2")
    server.script_analysis("c2", statuses=[("analyzing", 0), ("completed", 1)])
    _, early = await probe.get("c2")
    call = early["call"]
    assert call["status"] == "analyzing"
    for absent in ("evaluationResults", "result", "latencyP50", "interruptionP95", "timeToFirstWord"):
        assert absent not in call
    assert call["messages"] == stored["messages"]  # the transcript exists already
    clock.advance(1)
    _, done = await probe.get("c2")
    assert done["call"] == stored


async def test_each_id_s_clock_starts_at_its_first_request(
    server: DemoServer, probe: Probe, clock: ManualClock
) -> None:
    for call_id in ("early", "late"):
        server.script_analysis(call_id, visible_after=5)
    assert server.analysis.first_request_at("early") is None
    assert await probe.state("early") == "404"  # t=0
    clock.advance(3)
    assert await probe.state("late") == "404"  # t=3: its clock starts now
    clock.advance(2)  # t=5
    assert (await probe.state("early"), await probe.state("late")) == ("completed", "404")
    assert server.analysis.first_request_at("late") == 3
    assert (server.analysis.ready_at("early"), server.analysis.ready_at("late")) == (5, 8)
    clock.advance(3)
    assert await probe.state("late") == "completed"


async def test_a_faulted_first_request_still_starts_the_clock(
    server: DemoServer, probe: Probe, clock: ManualClock
) -> None:
    server.script_analysis("c3", visible_after=1)
    server.script("c3", [503])
    status, _ = await probe.get("c3")
    assert status == 503
    assert server.analysis.first_request_at("c3") == 0
    clock.advance(1)
    assert await probe.state("c3") == "completed"


async def test_never_visible_and_stuck_calls(server: DemoServer, probe: Probe, clock: ManualClock) -> None:
    server.script_analysis("never", visible_after=math.inf)
    server.script_analysis("stuck", statuses=[("queued", 0), ("analyzing", 1)])
    clock.advance(1e6)
    assert await probe.state("never") == "404"
    assert await probe.state("stuck") == "queued"  # its clock started just now
    clock.advance(1e6)
    assert (await probe.state("never"), await probe.state("stuck")) == ("404", "analyzing")
    assert server.analysis.ready_at("never") == math.inf
    assert server.analysis.ready_at("stuck") == math.inf


async def test_through_the_client_not_found_until_visible_then_a_typed_call(
    server: DemoServer, clock: ManualClock
) -> None:
    server.script_analysis("c4", visible_after=2, statuses=LIFECYCLE)
    statuses = []
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        assert await client.get_call("c4") is None
        for t in (2, 3, 4, 5):
            clock.now = t
            call = await client.get_call("c4")
            assert call is not None
            statuses.append(call.status)
    assert statuses == [
        asyncvox.CallStatus.QUEUED,
        asyncvox.CallStatus.IN_PROGRESS,
        asyncvox.CallStatus.ANALYZING,
        asyncvox.CallStatus.COMPLETED,
    ]
    assert call.evaluation_results and all(r.name for r in call.evaluation_results)


async def test_retry_after_on_not_yet_visible_404s_only_when_configured(clock: ManualClock) -> None:
    async with (
        DemoServer(api_key=API_KEY, turns=2, clock=clock, analysis_retry_after="3") as server,
        aiohttp.ClientSession() as session,
    ):
        probe = Probe(server, session)
        server.script_analysis("c5", visible_after=1)
        server.add_missing("gone")
        assert await probe.state("c5") == "404"
        assert probe.headers.get("Retry-After") == "3"
        assert await probe.state("gone") == "404"  # missing, not processing: no hint
        assert "Retry-After" not in probe.headers
        clock.advance(1)
        assert await probe.state("c5") == "completed"
        assert "Retry-After" not in probe.headers
        assert server.stats.not_yet_visible == 1


async def test_retry_after_is_off_by_default(server: DemoServer, probe: Probe) -> None:
    server.script_analysis("c6", visible_after=1)
    assert await probe.state("c6") == "404"
    assert "Retry-After" not in probe.headers


async def test_missing_ids_stay_missing_under_analysis(
    server: DemoServer, probe: Probe, clock: ManualClock
) -> None:
    server.add_missing("gone")
    server.script_analysis("gone", visible_after=0)
    clock.advance(100)
    assert await probe.state("gone") == "404"
    assert server.stats.not_yet_visible == 0


# -- random delays ------------------------------------------------------------------------


def _plans(delay: tuple[float, float], visible_early: float, n: int = 400) -> list[AnalysisPlan]:
    server = DemoServer(analysis_delay=delay, analysis_visible_early=visible_early, seed=3)
    plans = [server.analysis.plan(f"id-{i}") for i in range(n)]
    assert all(p is not None for p in plans)
    return [p for p in plans if p is not None]


def test_random_plans_are_per_id_within_the_range_and_the_same_every_run() -> None:
    plans = _plans((10, 20), 0.5)
    assert plans == _plans((10, 20), 0.5)
    ready = [p.ready_after for p in plans]
    assert all(10 <= r <= 20 for r in ready)
    assert len(set(ready)) == len(ready)
    early = [p for p in plans if p.visible_after < p.ready_after]
    assert 0.4 < len(early) / len(plans) < 0.6
    for p in early:
        assert [s.status for s in p.steps] == ["queued", "in_progress", "analyzing", "completed"]
        assert p.visible_after == p.steps[0].at
    assert all(not p.steps for p in plans if p not in early)


def test_visible_early_zero_means_not_found_until_done() -> None:
    assert all(p.visible_after == p.ready_after and not p.steps for p in _plans((1, 2), 0.0))


async def test_random_delays_through_the_server(clock: ManualClock) -> None:
    ids = [f"r-{i}" for i in range(30)]
    async with (
        DemoServer(api_key=API_KEY, turns=2, clock=clock, analysis_delay=(4, 8)) as server,
        aiohttp.ClientSession() as session,
    ):
        probe = Probe(server, session)
        timelines: dict[str, list[str]] = {i: [] for i in ids}
        for _ in range(20):  # t = 0, 0.5, ... 9.5
            for call_id in ids:
                state = await probe.state(call_id)
                if not timelines[call_id] or timelines[call_id][-1] != state:
                    timelines[call_id].append(state)
            clock.advance(0.5)
    shapes = {tuple(t) for t in timelines.values()}
    assert shapes == {("404", "completed"), ("404", "queued", "in_progress", "analyzing", "completed")}
    for call_id in ids:
        ready = server.analysis.ready_at(call_id)
        assert ready is not None and 4 <= ready <= 8


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"visible_after": -1}, "visible_after must be >= 0"),
        ({"visible_after": math.nan}, "visible_after must be >= 0"),
        ({"statuses": [("analyzing", 2), ("queued", 1)]}, "in time order"),
        ({"statuses": [("queued", -1)]}, "finite seconds >= 0"),
        ({"statuses": [("queued", math.inf)]}, "finite seconds >= 0"),
        ({"statuses": [("", 1)]}, "non-empty string"),
        ({"statuses": ["queued"]}, "(status, seconds) pair"),
    ],
)
def test_bad_scripts_are_refused_with_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DemoServer().script_analysis("x", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"analysis_delay": (5, 1)}, "analysis_delay"),
        ({"analysis_delay": (-1, 1)}, "analysis_delay"),
        ({"analysis_visible_early": 1.5}, "analysis_visible_early"),
    ],
)
def test_bad_analysis_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DemoServer(**kwargs)


def test_manual_clock_only_moves_forward() -> None:
    clock = ManualClock(10)
    assert clock.advance(0.5) == 10.5 == clock()
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_plan_ready_after() -> None:
    assert AnalysisPlan(3).ready_after == 3
    assert AnalysisPlan(1, (StatusStep("queued", 1), StatusStep("completed", 4))).ready_after == 4
    assert AnalysisPlan(5, (StatusStep("completed", 2),)).ready_after == 5
    assert AnalysisPlan(0, (StatusStep("analyzing", 0),)).ready_after == math.inf


def test_unfinished_body_of_a_body_without_a_call_is_left_alone() -> None:
    body = b'{"success":false,"call":null}'
    assert unfinished_body(body, "queued") == body


# -- option parsing (python -m asyncvox.testing; asyncvox serve-demo reuses the parsers) ----


@pytest.mark.parametrize(
    ("text", "expected"), [("2:30", (2, 30)), ("5", (5, 5)), (" 0.5:1.5 ", (0.5, 1.5)), ("0:0", (0, 0))]
)
def test_parse_seconds_range(text: str, expected: tuple[float, float]) -> None:
    parsed = parse_seconds_range(text)
    assert parsed == expected
    assert (parsed.low, parsed.high) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected MIN:MAX"),
        ("a:b", "not a number"),
        ("5:1", "MIN is more than MAX"),
        ("-1:2", ">= 0"),
        ("1:2:3", "expected MIN:MAX"),
        ("1:inf", "finite"),
        ("nan", "finite"),
    ],
)
def test_parse_seconds_range_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_seconds_range(text)
    assert repr(text) in str(info.value)


def test_parse_seconds() -> None:
    assert parse_seconds("2.5") == 2.5
    with pytest.raises(ValueError, match="not a number of seconds"):
        parse_seconds("soon")


def _server_for(argv: list[str]) -> DemoServer:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return server_from_args(parser.parse_args(argv))


def test_module_options_configure_analysis_and_slow_answers() -> None:
    server = _server_for(
        [
            *("--analysis-delay", "2:30", "--analysis-visible-early", "0.2", "--analysis-retry-after", "4"),
            *("--rate-slow", "0.1", "--slow-seconds", "7.5", "--drift-rate", "0.05", "--seed", "9"),
        ]
    )
    assert server.analysis.delay == (2, 30)
    assert server.analysis.visible_early == 0.2
    assert server.analysis_retry_after == "4"
    assert (server.profile.rate_slow, server.profile.slow_seconds) == (0.1, 7.5)
    assert (server.profile.drift_rate, server.profile.seed, server.seed) == (0.05, 9, 9)
    defaults = _server_for([])
    assert defaults.analysis.delay is None and not defaults.analysis.active
    assert (defaults.profile.rate_slow, defaults.profile.slow_seconds) == (0.0, 2.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--analysis-delay", "30:2"], "MIN is more than MAX"),
        (["--rate-slow", "2"], "between 0 and 1"),
        (["--slow-seconds", "-1"], ">= 0"),
    ],
)
def test_module_options_refuse_bad_values(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _server_for(argv)
    assert message in capsys.readouterr().err


def test_python_m_asyncvox_testing_serves_with_analysis_delay() -> None:
    argv = [
        "--api-key",
        API_KEY,
        "--turns",
        "2",
        "--analysis-delay",
        "1000:1000",
        "--analysis-retry-after",
        "7",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncvox.testing", *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        request = urllib.request.Request(f"{base}/calls/x", headers={"Authorization": f"Bearer {API_KEY}"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 404
        assert info.value.headers["Retry-After"] == "7"
        assert msgspec.json.decode(info.value.read()) == NOT_FOUND
        info.value.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


async def test_scripted_faults_still_come_first(server: DemoServer, probe: Probe) -> None:
    server.script_analysis("c7", visible_after=0)
    server.script("c7", [Fault.rate_limited("0")])
    assert (await probe.get("c7"))[0] == 429
    assert await probe.state("c7") == "completed"
