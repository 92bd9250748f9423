"""The shared governor with real pauses (no testing switch), on asyncio and on uvloop.

uvloop fires timers slightly early; the client-wide pause must still end, and every slot
must be handed on afterwards (the CLI runs on uvloop when it is installed).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import asyncvox
from asyncvox.testing import DemoServer, Fault, FaultProfile, MockTransport

KEY = "governor-key"


def _loops() -> list[Any]:
    loops: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the test extra on POSIX
        return loops
    loops.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return loops


def run_on(loop_factory: Callable[[], asyncio.AbstractEventLoop], main: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(asyncio.wait_for(main, 30))


@pytest.mark.real_waits
@pytest.mark.parametrize("loop_factory", _loops())
def test_a_batch_survives_repeated_429_pauses(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def main() -> tuple[list[asyncvox.FetchOutcome], asyncvox.Governor]:
        profile = FaultProfile(rate_429=0.01, retry_after="1", seed=3)
        async with (
            DemoServer(api_key=KEY, turns=2, profile=profile) as server,
            asyncvox.Client(KEY, server.base_url, concurrency=16) as client,
        ):
            outcomes = await client.fetch_calls([f"g-{i}" for i in range(400)])
            return outcomes, client.governor

    outcomes, gov = run_on(loop_factory, main())
    assert len(outcomes) == 400
    assert all(o.found for o in outcomes), [o for o in outcomes if not o.found][:3]
    assert gov.throttled > 0
    assert gov.in_flight == 0


@pytest.mark.real_waits
@pytest.mark.parametrize("loop_factory", _loops())
def test_a_throttled_request_waits_its_retry_after_while_others_go_on(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> tuple[list[asyncvox.FetchOutcome], list[Any]]:
        async with DemoServer(api_key=KEY, turns=2, record=True) as server:
            server.script("slow-lane", [Fault.rate_limited("1"), 200])
            async with asyncvox.Client(KEY, server.base_url, concurrency=8) as client:
                ids = ["slow-lane", *(f"o-{i}" for i in range(300))]
                outcomes = await client.fetch_calls(ids)
            assert server.log is not None
            return outcomes, server.log

    outcomes, log = run_on(loop_factory, main())
    assert all(o.found for o in outcomes)
    slow = [r for r in log if r.call_id == "slow-lane"]
    assert [r.status for r in slow] == [429, 200]
    assert slow[1].arrived - slow[0].answered >= 1.0 - 0.02  # its own Retry-After
    during = [r for r in log if r.call_id != "slow-lane" and slow[0].answered < r.arrived < slow[1].arrived]
    assert during, "one throttled id must not stop the others"


@pytest.mark.real_waits
@pytest.mark.parametrize("loop_factory", _loops())
def test_when_everything_is_refused_the_client_pauses_and_resumes_without_a_burst(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> tuple[int, list[Any], asyncvox.Governor]:
        async with DemoServer(api_key=KEY, turns=2, record=True) as server:
            server.script(None, [Fault.rate_limited("1")] * 12)
            # 429s count as attempts: enough retries that no id runs out during the episode.
            async with asyncvox.Client(KEY, server.base_url, concurrency=16, max_retries=12) as client:
                gov = client.governor
                server.on_request = lambda _id: gov.paused_for
                results = await asyncio.gather(*(client.get_call(f"w-{i}") for i in range(200)))
            assert server.log is not None
            return sum(r is not None for r in results), server.log, gov

    found, log, gov = run_on(loop_factory, main())
    assert found == 200
    assert gov.in_flight == 0
    assert gov.last_throttle_reason is not None
    refused = [r for r in log if r.status == 429]
    assert len(refused) == 12
    # After the last refusal, the waiting requests go at the pace, not all at once.
    after = sorted(r.arrived for r in log if r.arrived > refused[-1].answered)
    assert after, "nothing was sent after the refusals"
    burst = sum(1 for t in after if t - after[0] < 0.005)
    assert burst < 16, f"{burst} requests left within 5 ms of the pause's end"


async def _refuse_everything(client: asyncvox.Client) -> None:
    """Send until the governor stops the whole client: every answer a 429."""
    for _ in range(40):
        outcomes = await asyncio.gather(*(client.fetch(f"r-{i}", max_retries=0) for i in range(4)))
        assert all(isinstance(o.error, asyncvox.RateLimitError) for o in outcomes)
        if client.governor.paused_for > 0:
            return
    pytest.fail("the governor never paused although every answer was a 429")


async def _always_429(url: str) -> asyncvox.Response:
    await asyncio.sleep(0.01)  # answers take a while, so the refusals span some time
    return asyncvox.Response(429, b'{"success":false,"error":"slow down"}', {"Retry-After": "30"})


@pytest.mark.real_waits
async def test_a_pause_past_a_calls_deadline_fails_at_once_without_sending() -> None:
    mock = MockTransport(_always_429)
    async with asyncvox.Client(KEY, "http://api.test/v1", transport=mock, concurrency=4) as client:
        await _refuse_everything(client)
        sent = len(mock.requests)
        outcome = await client.fetch("b", total_timeout=0.001)
        assert client.governor.last_throttle_reason == "429: all refused, pausing"
    assert isinstance(outcome.error, asyncvox.RateLimitError)
    assert outcome.error.sent is False and outcome.attempts == 0
    assert len(mock.requests) == sent  # nothing was sent for "b"


@pytest.mark.real_waits
async def test_cancelling_a_call_waiting_in_a_pause_leaves_nothing_held() -> None:
    mock = MockTransport(_always_429)
    async with asyncvox.Client(KEY, "http://api.test/v1", transport=mock, concurrency=4) as client:
        await _refuse_everything(client)
        waiting = asyncio.create_task(client.get_call("c"))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert client.governor.in_flight == 0
        assert not mock.requests or not mock.requests[-1].endswith("/c")


async def test_single_calls_and_batches_share_one_governor() -> None:
    async with DemoServer(api_key=KEY, turns=2, profile=FaultProfile(latency=(0.002, 0.01))) as server:
        async with asyncvox.Client(KEY, server.base_url, concurrency=6) as client:
            batch = asyncio.create_task(client.fetch_calls([f"b-{i}" for i in range(300)]))
            singles = await asyncio.gather(*(client.get_call(f"s-{i}") for i in range(100)))
            outcomes = await batch
            assert client.governor.peak_in_flight <= 6
        assert server.stats.peak_in_flight <= 6
    assert all(s is not None for s in singles) and all(o.found for o in outcomes)


async def _until(predicate: Callable[[], bool]) -> None:
    """Wait for a condition (polling the loop), failing after 10 s."""
    async with asyncio.timeout(10):
        while True:
            if predicate():
                return
            await asyncio.sleep(0)


async def test_closing_the_client_ends_a_call_waiting_for_the_pace_at_once() -> None:
    async with DemoServer(api_key=KEY, turns=2) as server:
        # A told pace of one start per 20 s: the second call waits in the governor.
        client = asyncvox.Client(KEY, server.base_url, rate_limit=0.05, total_timeout=None)
        assert await client.get_call("first") is not None
        waiting = asyncio.create_task(client.fetch("second"))
        await _until(lambda: client.governor.state.in_flight == 0 and bool(client.governor._waiters))
        await client.aclose()
        async with asyncio.timeout(10):  # before the fix: asleep until the pace let it go
            outcome = await waiting
        assert isinstance(outcome.error, asyncvox.ConfigurationError)
        assert outcome.error.sent is False and outcome.attempts == 0
        assert client.governor.in_flight == 0
        assert server.stats.requests_for("second") == 0


@pytest.mark.real_waits
async def test_closing_the_client_ends_a_call_waiting_out_its_retry_after_at_once() -> None:
    async with DemoServer(api_key=KEY, turns=2) as server:
        server.script("told-to-wait", [Fault.rate_limited("30"), 200])
        client = asyncvox.Client(KEY, server.base_url, total_timeout=None)
        waiting = asyncio.create_task(client.fetch("told-to-wait"))
        await _until(
            lambda: server.stats.requests_for("told-to-wait") == 1 and client.governor.in_flight == 0
        )
        await client.aclose()
        async with asyncio.timeout(10):  # before the fix: asleep for the whole 30 s
            outcome = await waiting
        assert isinstance(outcome.error, asyncvox.ConfigurationError)
        assert outcome.attempts == 1  # the 429; nothing sent after the close
        assert server.stats.requests_for("told-to-wait") == 1


async def test_closing_the_client_ends_a_wait_for_call_between_polls_at_once() -> None:
    async with DemoServer(api_key=KEY, turns=2) as server:
        server.script_analysis("never-ready", visible_after=math.inf)
        client = asyncvox.Client(KEY, server.base_url)
        poll = asyncvox.PollPolicy(first=30.0, cap=30.0, jitter=0.0)
        waiting = asyncio.create_task(client.wait_for_call("never-ready", timeout=120, poll=poll))
        await _until(lambda: server.stats.requests_for("never-ready") == 1 and client.governor.in_flight == 0)
        await client.aclose()
        async with asyncio.timeout(10):  # before the fix: asleep until the next poll, 30 s on
            with pytest.raises(asyncvox.ConfigurationError, match="closed"):
                await waiting
        assert server.stats.requests_for("never-ready") == 1
