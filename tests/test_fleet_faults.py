"""Faults of the store lose nothing: Redis down at start, killed mid-batch, flushed,
holding corrupted values. Clients in this process, a real ``redis-server``, a loopback
API server with a rate limit."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import AsyncIterator

import pytest
from _cli import env, ids_file, one_error_line, run
from _fleet import RedisServer, free_port
from conftest import API_KEY

import asyncvox
from asyncvox._fleet_link import FleetLink
from asyncvox._fleet_scripts import fleet_keys
from asyncvox.testing import DemoServer, FaultProfile

pytestmark = pytest.mark.real_waits


@pytest.fixture
async def limited() -> AsyncIterator[DemoServer]:
    profile = FaultProfile(rps_limit=200, retry_after="0.2")
    async with DemoServer(api_key=API_KEY, turns=4, profile=profile, count_ids=False) as srv:
        yield srv


def _fleet(url: str) -> asyncvox.RedisFleet:
    return asyncvox.RedisFleet(url, socket_timeout=0.2, retry_interval=0.1, sync_interval=0.05)


def _link(client: asyncvox.Client) -> FleetLink:
    link = client.governor.fleet
    assert link is not None
    return link


async def test_redis_down_at_start_falls_back_once_and_rejoins(
    tmp_path: pathlib.Path, limited: DemoServer, caplog: pytest.LogCaptureFixture
) -> None:
    down = RedisServer(tmp_path)  # a port nothing listens on, yet
    caplog.set_level(logging.WARNING, logger="asyncvox")
    async with asyncvox.Client(API_KEY, limited.base_url, fleet=_fleet(down.url), max_retries=20) as client:
        outcomes = await client.fetch_calls([f"a-{i}" for i in range(300)])
        assert [o.call_id for o in outcomes if o.call is None] == []  # nothing failed for Redis
        link = _link(client)
        assert not await link._sync_once()
        state = client.governor.fleet_state
        assert state is not None and state.state == "local" and state.fallbacks == 1
        assert state.last_error is not None
        warnings = [r for r in caplog.records if "Redis" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING  # once per outage
        assert API_KEY not in caplog.text
        down.start()  # Redis comes up: the next sync rejoins
        try:
            assert await link._sync_once()
            assert client.governor.fleet_state is not None
            assert client.governor.fleet_state.state == "fleet"
            more = await client.fetch_calls([f"b-{i}" for i in range(50)])
            assert all(o.call is not None for o in more)
        finally:
            down.kill()


async def test_refusals_met_on_its_own_limits_are_not_news_for_the_fleet_it_rejoins(
    tmp_path: pathlib.Path, limited: DemoServer
) -> None:
    # Reported at the rejoin, a process's refusals from its time alone read as a fresh
    # onset, measured from the few processes back so far: the fleet paced at a fraction
    # of the limit for many seconds after Redis came back.
    down = RedisServer(tmp_path)
    async with asyncvox.Client(
        API_KEY, limited.base_url, fleet=_fleet(down.url), max_retries=20, concurrency=64
    ) as client:
        outcomes = await client.fetch_calls([f"a-{i}" for i in range(600)])
        assert all(o.call is not None for o in outcomes)
        assert client.governor.throttled > 0  # refused on its own limits, Redis down
        down.start()
        try:
            link = _link(client)
            assert await link._sync_once()
            assert client.governor.fleet_state is not None
            assert client.governor.fleet_state.state == "fleet"
            r = down.client()
            try:
                state = r.hgetall(fleet_keys(limited.base_url, API_KEY).rate)
            finally:
                r.close()
            assert state == {}  # no refusal reported, no rate guessed from it
            assert not link.paced
        finally:
            down.kill()


async def test_redis_killed_mid_batch_loses_nothing(redis_server: RedisServer, limited: DemoServer) -> None:
    async with asyncvox.Client(
        API_KEY, limited.base_url, fleet=_fleet(redis_server.url), max_retries=20
    ) as client:
        link = _link(client)
        done = 0
        killed = asyncio.Event()

        async def ids() -> AsyncIterator[str]:
            nonlocal done
            for i in range(800):
                if i == 400:
                    assert link.paced, "the fleet is paced (the server refused) before the kill"
                    redis_server.kill()
                    killed.set()
                yield f"k-{i}"
                done += 1

        outcomes = [o async for o in client.iter_calls(ids())]
        assert killed.is_set() and len(outcomes) == 800
        assert [o.call_id for o in outcomes if o.call is None] == []
        assert not await link._sync_once()
        state = client.governor.fleet_state
        assert state is not None and state.state == "local" and not state.paced
        redis_server.start()
        assert await link._sync_once()
        assert client.governor.fleet_state is not None and client.governor.fleet_state.state == "fleet"


async def test_a_flushed_store_is_a_fleet_starting_over(
    redis_server: RedisServer, limited: DemoServer
) -> None:
    async with asyncvox.Client(
        API_KEY, limited.base_url, fleet=_fleet(redis_server.url), max_retries=20
    ) as client:
        first = await client.fetch_calls([f"f-{i}" for i in range(400)])
        link = _link(client)
        assert link.paced
        redis_server.client().flushall()  # scripts and state gone
        r = redis_server.client()
        r.script_flush()
        r.close()
        second = await client.fetch_calls([f"g-{i}" for i in range(400)])
        assert all(o.call is not None for o in first + second)
        state = client.governor.fleet_state
        assert state is not None and state.state == "fleet" and state.fallbacks == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("rate", b"nan"), ("rate", b"-5"), ("rate", b"1e300"), ("rate", b"\xff\xfe")],
)
async def test_a_corrupted_rate_is_clamped_not_trusted(
    redis_server: RedisServer, limited: DemoServer, field: str, value: bytes
) -> None:
    keys = fleet_keys(limited.base_url, API_KEY)
    r = redis_server.client()
    r.hset(keys.rate, field, value)
    r.set(keys.gcra, b"9" * 18)  # a start time centuries ahead
    r.set(keys.pause, b"99999999999999999")  # a pause centuries long
    r.close()
    async with asyncvox.Client(
        API_KEY, limited.base_url, fleet=_fleet(redis_server.url), max_retries=20
    ) as client:
        outcomes = await client.fetch_calls([f"c-{i}" for i in range(300)])
        assert all(o.call is not None for o in outcomes)
        state = client.governor.fleet_state
        assert state is not None and state.state == "fleet"
        assert state.paused_for == 0.0
        assert state.rate is None or 0.1 <= state.rate <= 10 * 200


async def test_a_wrong_type_under_a_key_falls_back(redis_server: RedisServer, limited: DemoServer) -> None:
    keys = fleet_keys(limited.base_url, API_KEY)
    r = redis_server.client()
    r.rpush(keys.rate, b"not a hash")
    r.close()
    async with asyncvox.Client(
        API_KEY, limited.base_url, fleet=_fleet(redis_server.url), max_retries=20
    ) as client:
        outcomes = await client.fetch_calls([f"w-{i}" for i in range(100)])
        assert all(o.call is not None for o in outcomes)
        state = client.governor.fleet_state
        assert state is not None and state.state == "local" and state.last_error == "ResponseError"


def test_fleet_choice_env_and_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("ASYNCVOX_REDIS_URL", url)
    joined = asyncvox.Client(API_KEY, "http://127.0.0.1:9/v1")
    assert joined.governor.fleet is not None and joined.governor.fleet.config.url == url
    for opt_out in (None, False):
        alone = asyncvox.Client(API_KEY, "http://127.0.0.1:9/v1", fleet=opt_out)
        assert alone.governor.fleet is None and alone.governor.fleet_state is None
    with pytest.raises(asyncvox.ConfigurationError, match="redis://"):
        asyncvox.Client(API_KEY, "http://127.0.0.1:9/v1", fleet="http://x")
    secret = asyncvox.RedisFleet("redis://:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in repr(secret)


# -- configuration and one broken key (found by a review) ------------------------------------


def test_a_redis_url_with_a_bad_port_is_refused_up_front_without_its_password() -> None:
    # Accepted, redis-py raised ValueError at the first connect, and redacting the URL for
    # the WARNING raised it again inside the fallback: the fleet task died, the link stayed
    # "joining", and every id waited out its total_timeout.
    with pytest.raises(asyncvox.ConfigurationError) as info:
        asyncvox.RedisFleet("redis://:hunter2@127.0.0.1:99999/0")
    assert "hunter2" not in str(info.value) and "99999" in str(info.value)


# -- 2. a password in the URL's query (redis-py's ?password=, the usual unix:// form) -----


async def test_a_password_in_the_url_query_never_reaches_a_log_or_repr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncvox")
    url = f"redis://127.0.0.1:{free_port()}/0?password=hunter2"  # nothing listens there
    assert "hunter2" not in repr(asyncvox.RedisFleet(url))
    async with (
        DemoServer(api_key=API_KEY, turns=2) as server,
        asyncvox.Client(API_KEY, server.base_url, fleet=_fleet(url)) as client,
    ):
        outcomes = await client.fetch_calls([f"q-{i}" for i in range(5)])
    assert all(o.call is not None for o in outcomes)
    assert "Redis at" in caplog.text  # the fallback WARNING was logged
    assert "hunter2" not in caplog.text


# -- 3. a wrong type under the gcra key only: SYNC works, LEASE fails -> a WARNING per flap -


async def test_a_wrong_type_under_the_gcra_key_warns_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncvox")
    async with DemoServer(api_key=API_KEY, turns=2) as server:
        keys = fleet_keys(server.base_url, API_KEY)
        r = redis_server.client()
        secs, micros = r.time()
        now = secs * 1_000_000 + micros
        # a paced fleet (as a refusal anywhere leaves it) ...
        r.hset(
            keys.rate,
            mapping={"rate": "500", "pace0": "450", "cut_at": now, "k": "1", "probe_at": now, "confirmed": 1},
        )
        r.hset(keys.gcra, "oops", "a hash where a string belongs")  # ... with a broken gcra key
        r.close()
        async with asyncvox.Client(API_KEY, server.base_url, fleet=_fleet(redis_server.url)) as client:
            link = _link(client)
            for round_ in range(3):
                outcomes = await client.fetch_calls([f"g{round_}-{i}" for i in range(20)])
                assert all(o.call is not None for o in outcomes)
                await link._sync_once()  # the next background sync (SYNC works: "rejoined")
            state = client.governor.fleet_state
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "Redis" in r.getMessage()]
    assert state is not None
    assert len(warnings) == 1, (len(warnings), state)  # one WARNING for one broken key


# -- 4. a malformed --redis URL: a bare ValueError from Client(), a traceback from the CLI ---


def test_a_malformed_fleet_url_is_a_configuration_error() -> None:
    with pytest.raises(asyncvox.ConfigurationError):
        asyncvox.Client(API_KEY, "http://127.0.0.1:9/v1", fleet="redis://[::1/0")


def test_cli_fetch_with_a_malformed_redis_url_exits_2_with_one_line(tmp_path: pathlib.Path) -> None:
    ids = ids_file(tmp_path, ["a"])
    environ = env(None, ASYNCVOX_API_KEY="k", ASYNCVOX_BASE_URL="http://127.0.0.1:9/v1")
    proc = run(["fetch", str(ids), "-o", str(tmp_path / "o.jsonl"), "--redis", "redis://:pw@[::1/0"], environ)
    assert proc.returncode == 2, proc.stderr[-400:]
    assert "pw" not in one_error_line(proc)
