"""The shared governor with real pauses (no testing switch), on asyncio and on uvloop.

uvloop fires timers slightly early; the client-wide pause must still end, and every slot
must be handed on afterwards (the CLI runs on uvloop when it is installed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import asyncvox
from asyncvox.testing import DemoServer, Fault, FaultProfile

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
def test_after_a_pause_the_whole_limit_is_used_again(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Many concurrent get_call tasks (a web app): once the pause ends and the limit grows
    back, all of it is used, not just the slot or two that the end of the pause handed on."""

    async def main() -> tuple[int, int, asyncvox.Governor]:
        profile = FaultProfile(latency=(0.002, 0.004))
        async with DemoServer(api_key=KEY, turns=2, profile=profile) as server:
            server.script(None, [Fault.rate_limited("1")] * 2)
            async with asyncvox.Client(KEY, server.base_url, concurrency=16) as client:
                gov = client.governor
                busiest_after_recovery = 0
                done = asyncio.Event()

                async def watch() -> None:
                    nonlocal busiest_after_recovery
                    while not done.is_set():
                        if gov.throttled and not gov.paused_for and gov.limit == gov.cap:
                            busiest_after_recovery = max(busiest_after_recovery, gov.in_flight)
                        await asyncio.sleep(0)

                watcher = asyncio.create_task(watch())
                results = await asyncio.gather(*(client.get_call(f"w-{i}") for i in range(1200)))
                done.set()
                await watcher
                return sum(r is not None for r in results), busiest_after_recovery, gov

    found, busiest, gov = run_on(loop_factory, main())
    assert found == 1200
    assert gov.throttled == 2
    assert busiest == gov.cap  # every slot in use again, not stuck at a fraction of it
    assert gov.in_flight == 0


@pytest.mark.real_waits
async def test_a_pause_longer_than_total_timeout_fails_at_once_without_sending(
    server: DemoServer,
) -> None:
    server.script("a", [Fault.rate_limited("5")])
    async with asyncvox.Client(server.api_key, server.base_url) as client:
        first = await client.fetch("a", max_retries=0)
        assert isinstance(first.error, asyncvox.RateLimitError) and first.attempts == 1
        assert client.governor.paused_for > 4
        waited = await client.fetch("b", total_timeout=1.0)
    assert isinstance(waited.error, asyncvox.RateLimitError)
    assert waited.error.retry_after is not None and waited.error.retry_after > 4
    assert waited.attempts == 0  # nothing was sent for "b"
    assert server.stats.requests_for("b") == 0
