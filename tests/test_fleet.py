"""A fleet of client processes on one Redis and one rate-limited loopback server.

The server (``DemoServer`` with ``rps_limit``) answers 429 beyond its limit and counts
what it grants; the clients are separate processes (``_fleet_worker.py``) on a real
``redis-server`` started here.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import AsyncIterator

import pytest
from _fleet import RedisServer, run_workers, spawn
from conftest import API_KEY

import asyncvox
from asyncvox import _fleet_link, _fleet_scripts
from asyncvox.testing import DemoServer, FaultProfile

LIMIT = 100


@pytest.fixture
async def limited() -> AsyncIterator[DemoServer]:
    profile = FaultProfile(rps_limit=LIMIT, retry_after="0.5")
    async with DemoServer(api_key=API_KEY, turns=4, profile=profile, count_ids=False, record=True) as srv:
        yield srv


def _refused_after_the_first_second(srv: DemoServer) -> int:
    """429s after the first second of refusals (slow start's first overshoot, which every
    process makes before anything is known, is the same with or without a fleet)."""
    assert srv.log is not None
    refused = [r.arrived for r in srv.log if r.status == 429]
    return sum(1 for t in refused if t > refused[0] + 1.0) if refused else 0


@pytest.mark.real_waits
async def test_processes_on_one_redis_share_one_pace_and_lose_nothing(
    redis_server: RedisServer, limited: DemoServer
) -> None:
    alone = await run_workers(limited.base_url, None, 3, 200)
    refused_alone = _refused_after_the_first_second(limited)
    limited.reset_stats()
    assert limited.log is not None
    limited.log.clear()

    fleet = await run_workers(limited.base_url, redis_server.url, 3, 200)
    refused_fleet = _refused_after_the_first_second(limited)

    for run in (alone, fleet):
        assert all(r["found"] == 200 and r["failed"] == [] for r in run)
    # Not asserted yet: fewer refusals than alone. On this sliding window the fleet is
    # refused less in some runs and more in others (see benchmarks/results/fleet.md).
    assert refused_fleet >= 0 and refused_alone > 0
    for r in fleet:
        state = r["fleet"]
        assert state["state"] == "fleet" and state["paced"] and state["fallbacks"] == 0
        assert state["leases"] > 0
        # Not asserted yet either: fewer Redis round trips than requests. Leases shrink to
        # one or two starts when the shared rate is low (0.3-1.45 round trips per request
        # in benchmarks/results/fleet.md; 1.2 seen once in CI). Issue 13 stays open on it.


@pytest.mark.real_waits
async def test_a_throttle_seen_by_one_reaches_all_at_once(
    redis_server: RedisServer, limited: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every sync is a minute away (a refusal still reports at once): only news pushed to
    # the calm client can tell it.
    monkeypatch.setattr(_fleet_link, "FAST_SYNC", 60.0)
    hot_fleet = asyncvox.RedisFleet(redis_server.url, sync_interval=60.0)
    calm_fleet = asyncvox.RedisFleet(redis_server.url, sync_interval=60.0)
    async with (
        asyncvox.Client(API_KEY, limited.base_url, fleet=hot_fleet) as hot,
        asyncvox.Client(API_KEY, limited.base_url, fleet=calm_fleet) as calm,
    ):
        await calm.get_call("calm-0")  # joins (one round trip) and starts listening
        link = calm.governor.fleet
        assert link is not None and not link.paced
        await asyncio.wait_for(link._listener.subscribed.wait(), 10)
        heard = asyncio.Event()
        changed = link._on_change

        def on_change() -> None:
            changed()
            if link.paced:
                heard.set()

        link._on_change = on_change
        outcomes = await hot.fetch_calls([f"hot-{i}" for i in range(250)])
        assert all(o.call is not None for o in outcomes)
        assert hot.governor.throttled > 0
        await asyncio.wait_for(heard.wait(), 10)  # bounded; it comes within milliseconds
        assert link.paced and link.round_trips == 1, "told by the news, not by a sync of its own"
        # The calm client was never refused, yet its starts come from the fleet's leases.
        outcomes = await calm.fetch_calls([f"calm-{i}" for i in range(1, 60)])
        state = calm.governor.fleet_state
        assert state is not None and state.leases > 0 and state.pace is not None
        assert all(o.call is not None for o in outcomes)


async def test_processes_open_slow_start_with_one_window_between_them(
    redis_server: RedisServer, limited: DemoServer
) -> None:
    # A generous timeout: a join that timed out on a loaded machine would fall back alone.
    fleet = asyncvox.RedisFleet(redis_server.url, socket_timeout=2.0)
    async with (
        asyncvox.Client(API_KEY, limited.base_url, fleet=False) as alone,
        asyncvox.Client(API_KEY, limited.base_url, fleet=fleet) as first,
    ):
        await alone.get_call("w-0")
        await first.get_call("w-0")  # joined when it opened: the only process so far
        async with asyncvox.Client(API_KEY, limited.base_url, fleet=fleet) as second:
            await second.get_call("w-0")  # its first start waited for the fleet's answer
            for client in (first, second):
                state = client.governor.fleet_state
                assert state is not None and state.state == "fleet", state
            link = second.governor.fleet
            assert link is not None and link.processes == 2
            # Slow start opens at 4 and grows one per success; the second process of two
            # opens with half of it.
            assert alone.governor.limit == 5
            assert second.governor.limit == 3


@pytest.mark.real_waits
async def test_a_killed_process_leaves_nothing_held(redis_server: RedisServer, limited: DemoServer) -> None:
    proc = await spawn(limited.base_url, redis_server.url, "k", 200, "hold")
    assert proc.stdout is not None
    line = await proc.stdout.readline()  # the batch is done, the process holds
    assert b'"found": 200' in line
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    keys = redis_server.dump()
    assert keys, "the fleet wrote its state"
    longest = max(_fleet_scripts.RATE_TTL, _fleet_scripts.GCRA_TTL, _fleet_scripts.PROCS_TTL)
    for key, ttl, _ in keys:
        assert 0 < ttl <= longest, (key, ttl)  # every key expires: nothing stays held
    # A newcomer starts at once: the dead process's leased start times are not in its way.
    after = await run_workers(limited.base_url, redis_server.url, 1, 20)
    assert after[0]["found"] == 20 and after[0]["fleet"]["state"] == "fleet"


@pytest.mark.real_waits
async def test_the_api_key_never_reaches_redis(redis_server: RedisServer, limited: DemoServer) -> None:
    await run_workers(limited.base_url, redis_server.url, 2, 150)
    secret = API_KEY.encode()
    plain = hashlib.sha256(secret).hexdigest().encode()
    dump = redis_server.dump()
    assert any(key.endswith(b":rate") for key, _, _ in dump)
    for key, _, value in dump:
        for needle in (secret, plain, plain[:32]):
            assert needle not in key and needle not in value
        assert key.startswith(b"asyncvox:{127.0.0.1:")
