"""The bulk engine (``iter_calls`` / ``get_calls``) under load and faults, against real HTTP.

Every test talks to a :class:`DemoServer` on 127.0.0.1. Retry waits are zeroed unless a
test is marked ``real_waits`` (see conftest). Nothing here sleeps to let a race settle:
tests await events, outcomes or conditions; the few negative checks ("the input is not
pulled further") watch a bounded window while the consumer holds still.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import msgspec
import pytest
from conftest import API_KEY

import asyncvox
from asyncvox import RetryBudget
from asyncvox.testing import DemoServer, Fault, FaultProfile

# A hang guard, not a speed limit: every test here finishes in a few seconds.
pytestmark = pytest.mark.timeout(30)


# -- helpers -------------------------------------------------------------------------


class Source:
    """A lazy input that counts how many ids were pulled from it (``limit=None``: endless)."""

    def __init__(self, limit: int | None = None, prefix: str = "lazy") -> None:
        self.limit = limit
        self.prefix = prefix
        self.pulled = 0

    def __iter__(self) -> Iterator[str]:
        counter = itertools.count() if self.limit is None else range(self.limit)
        for i in counter:
            self.pulled += 1
            yield f"{self.prefix}-{i}"


def make_ids(n: int, prefix: str = "id") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def worker_tasks() -> list[asyncio.Task[Any]]:
    """asyncvox worker tasks still alive on this loop."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("asyncvox-worker") and not t.done()]


async def settle(rounds: int = 3) -> None:
    """Let the loop run a few iterations (cancelled tasks finish unwinding)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for a condition (polling the loop), failing after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.002)


async def drain(stream: AsyncIterator[asyncvox.FetchOutcome], into: list[asyncvox.FetchOutcome]) -> None:
    """Consume ``stream`` into ``into`` (which keeps what came before an exception)."""
    async for outcome in stream:
        into.append(outcome)


async def hold_and_watch(check: Callable[[], None], seconds: float = 0.3) -> None:
    """The consumer holds still; ``check`` must keep passing while the workers run on."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        check()
        await asyncio.sleep(0.005)
    check()


async def assert_batch_gone(server: DemoServer, client: asyncvox.Client) -> None:
    """After a batch stopped early: no worker left, nothing in flight, the client still works."""
    await settle()
    assert worker_tasks() == []
    assert client.governor.in_flight == 0
    await until(lambda: server.stats.in_flight == 0)
    call = await client.get_call("after-the-batch")
    assert call is not None
    assert call.customer_call_id == "after-the-batch"


def check_found(outcome: asyncvox.FetchOutcome) -> None:
    assert outcome.ok, outcome
    assert outcome.found, outcome
    assert outcome.call is not None
    assert outcome.call.customer_call_id == outcome.call_id
    assert outcome.raw is not None
    assert msgspec.json.decode(outcome.raw)["customerCallId"] == outcome.call_id
    assert outcome.attempts >= 1


def max_in_window(times: list[float], width: float) -> int:
    """The most events in any half-open window of ``width`` seconds."""
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# -- scale, faults, exactly-once ---------------------------------------------------------


async def test_thousands_of_ids_with_mixed_faults_yield_exactly_one_outcome_each() -> None:
    profile = FaultProfile(rate_429=0.03, rate_5xx=0.06, rate_drop=0.03, retry_after="0", seed=7)
    ids = make_ids(3000, "mix")
    missing = set(ids[::10])
    async with DemoServer(api_key=API_KEY, turns=2, profile=profile) as server:
        server.add_missing(*missing)
        # max_retries=8: a transient fault (12% of requests) failing one id 9 times is ~1e-8.
        async with (
            asyncvox.Client(API_KEY, server.base_url, concurrency=16, max_retries=8) as client,
            client.iter_calls(ids) as stream,
        ):
            outcomes = [o async for o in stream]

        seen = Counter(o.call_id for o in outcomes)
        assert len(outcomes) == len(ids)
        assert set(seen) == set(ids)
        assert max(seen.values()) == 1
        for outcome in outcomes:
            if outcome.call_id in missing:
                assert outcome.ok and not outcome.found, outcome
                assert outcome.raw is None
            else:
                check_found(outcome)
        assert stream.stats.found == len(ids) - len(missing)
        assert stream.stats.missing == len(missing)
        assert stream.stats.failed == 0
        # The faults really happened, and retries covered them.
        assert server.stats.statuses[429] > 0
        assert sum(server.stats.statuses[s] for s in (500, 502, 503, 504)) > 0
        assert server.stats.dropped > 0
        assert sum(o.attempts for o in outcomes) == server.stats.requests > len(ids)
        assert stream.stats.requests == server.stats.requests
        assert server.stats.peak_in_flight <= 16
        assert client.governor.peak_in_flight <= 16


async def test_duplicates_are_fetched_once(server: DemoServer, client: asyncvox.Client) -> None:
    distinct = make_ids(40, "dup")
    ids = [distinct[(i * 7) % 40] for i in range(200)]  # every id five times, interleaved
    async with client.iter_calls(ids) as stream:
        outcomes = [o async for o in stream]
    assert sorted(o.call_id for o in outcomes) == sorted(distinct)
    for outcome in outcomes:
        check_found(outcome)
        assert server.stats.requests_for(outcome.call_id) == 1
    assert server.stats.requests == 40
    assert stream.stats.duplicates == 160
    assert stream.stats.done == 40


async def test_get_calls_with_duplicates_keeps_first_occurrence_order(
    server: DemoServer, client: asyncvox.Client
) -> None:
    ids = ["b", "a", "b", "c", "a", "d", "c"]
    outcomes = await client.fetch_calls(ids)
    assert [o.call_id for o in outcomes] == ["b", "a", "c", "d"]
    assert server.stats.requests == 4


@pytest.mark.parametrize("ordered", [False, True])
async def test_dedupe_false_fetches_every_occurrence(
    server: DemoServer, client: asyncvox.Client, ordered: bool
) -> None:
    ids = ["x", "y", "x", "z", "x", "y"]
    async with client.iter_calls(ids, dedupe=False, ordered=ordered) as stream:
        outcomes = [o async for o in stream]
    assert len(outcomes) == len(ids)
    if ordered:
        assert [o.call_id for o in outcomes] == ids
    assert Counter(o.call_id for o in outcomes) == Counter(ids)
    for call_id, count in Counter(ids).items():
        assert server.stats.requests_for(call_id) == count
    assert stream.stats.duplicates == 0


# -- order ---------------------------------------------------------------------------------


async def test_ordered_yields_input_order_when_the_head_is_slow() -> None:
    async with DemoServer(api_key=API_KEY, turns=2, profile=FaultProfile(latency=(0.0, 0.004))) as server:
        ids = make_ids(300, "ord")
        server.script(ids[0], [Fault.slow(0.3)])
        server.script(ids[5], [Fault.slow(0.15)])
        async with asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client:
            order = [o.call_id async for o in client.iter_calls(ids, ordered=True)]
            assert order == ids
            # Unordered, the slow head does not hold anything back: it comes out late.
            server.script(ids[0], [Fault.slow(0.3)])
            unordered = [o.call_id async for o in client.iter_calls(ids)]
            assert sorted(unordered) == sorted(ids)
            assert unordered.index(ids[0]) > 100


async def test_get_calls_returns_input_order() -> None:
    async with DemoServer(api_key=API_KEY, turns=2, profile=FaultProfile(latency=(0.0, 0.003))) as server:
        ids = make_ids(200, "gc")
        server.add_missing(ids[3], ids[150])
        server.script(ids[0], [Fault.slow(0.2)])
        server.script(ids[10], [503, 503])
        async with asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client:
            outcomes = await client.fetch_calls(ids)
        assert [o.call_id for o in outcomes] == ids
        assert not outcomes[3].found and outcomes[3].ok
        assert not outcomes[150].found and outcomes[150].ok
        assert outcomes[10].found and outcomes[10].attempts == 3


# -- input kinds -------------------------------------------------------------------------------


async def test_async_generator_input(server: DemoServer, client: asyncvox.Client) -> None:
    async def ids() -> AsyncIterator[str]:
        for i in range(300):
            if i % 25 == 0:
                await asyncio.sleep(0)
            yield f"agen-{i}"

    stream = client.iter_calls(ids())
    outcomes = [o async for o in stream]
    assert sorted(o.call_id for o in outcomes) == sorted(f"agen-{i}" for i in range(300))
    for outcome in outcomes:
        check_found(outcome)
    assert stream.stats.total is None
    assert stream.stats.done == 300

    ordered = await client.fetch_calls(ids())
    assert [o.call_id for o in ordered] == [f"agen-{i}" for i in range(300)]


@pytest.mark.parametrize("ordered", [False, True])
async def test_ids_streaming_in_from_a_queue(
    server: DemoServer, client: asyncvox.Client, ordered: bool
) -> None:
    """Ids arrive while outcomes go out: the second half is only produced after the first
    half's outcomes were consumed, so a batch that waited for its whole input would hang."""
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=4)
    first_half_seen = asyncio.Event()

    async def producer() -> None:
        for i in range(60):
            await queue.put(f"q-{i}")
        await first_half_seen.wait()
        for i in range(60, 120):
            await queue.put(f"q-{i}")
        await queue.put(None)

    async def from_queue() -> AsyncIterator[str]:
        while (item := await queue.get()) is not None:
            yield item

    task = asyncio.create_task(producer())
    received: list[str] = []
    async for outcome in client.iter_calls(from_queue(), ordered=ordered, concurrency=4):
        check_found(outcome)
        received.append(outcome.call_id)
        if len(received) == 60:
            first_half_seen.set()
    await task
    assert sorted(received) == sorted(f"q-{i}" for i in range(120))
    if ordered:
        assert received == [f"q-{i}" for i in range(120)]


@pytest.mark.parametrize("mode", ["unordered", "ordered", "wait"])
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_input_that_raises_ends_the_batch_with_its_error(
    server: DemoServer, client: asyncvox.Client, mode: str, kind: str
) -> None:
    def ids() -> Iterator[str]:
        yield from make_ids(30, "pre")
        raise RuntimeError("the id file is corrupt")

    async def async_ids() -> AsyncIterator[str]:
        for call_id in ids():
            yield call_id

    received: list[asyncvox.FetchOutcome] = []
    source = ids() if kind == "sync" else async_ids()
    stream = client.iter_calls(source, ordered=mode == "ordered", wait=10 if mode == "wait" else None)
    with pytest.raises(RuntimeError, match="corrupt"):
        await drain(stream, received)
    # Every id the input gave before it raised was fetched and is delivered first (the
    # batch used to drop what it had fetched and not yet handed over).
    expected = make_ids(30, "pre")
    got = [o.call_id for o in received]
    assert (got if mode == "ordered" else sorted(got)) == (
        expected if mode == "ordered" else sorted(expected)
    )
    assert all(o.found for o in received)
    await settle()
    assert worker_tasks() == []
    assert client.governor.in_flight == 0


def test_not_an_iterable_is_a_type_error(client: asyncvox.Client) -> None:
    with pytest.raises(TypeError):
        client.iter_calls(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.iter_calls("one-id-not-a-list")
    with pytest.raises(ValueError, match="concurrency"):
        client.iter_calls(["a"], concurrency=0)


# -- laziness and back-pressure ----------------------------------------------------------------


@pytest.mark.parametrize("ordered", [False, True])
async def test_input_is_pulled_lazily_while_the_consumer_holds(server: DemoServer, ordered: bool) -> None:
    workers = 4
    k = 25
    source = Source()  # endless: an eager engine would never stop pulling
    async with asyncvox.Client(API_KEY, server.base_url, concurrency=workers) as client:
        stream = client.iter_calls(source, ordered=ordered)
        for _ in range(k):
            check_found(await anext(stream))
        bound = k + 4 * workers

        def check() -> None:
            assert source.pulled <= bound

        # The workers run ahead of the consumer (at least one id each) ...
        await until(lambda: server.stats.requests >= k + workers)
        # ... and then stop, a small window ahead, however long the consumer holds.
        await hold_and_watch(check)
        assert server.stats.requests <= source.pulled
        # Consuming moves the window on.
        for _ in range(50):
            await anext(stream)
        await until(lambda: source.pulled > k + 50)
        await hold_and_watch(lambda: None, 0.05)
        assert source.pulled <= k + 50 + 4 * workers
        await stream.aclose()
        await settle()
        assert worker_tasks() == []


async def test_ordered_slow_head_holds_the_window_not_the_input() -> None:
    workers = 4
    async with DemoServer(api_key=API_KEY, turns=2) as server:
        server.script("lazy-0", [Fault.slow(0.4)])
        source = Source()
        async with asyncvox.Client(API_KEY, server.base_url, concurrency=workers) as client:
            stream = client.iter_calls(source, ordered=True)
            head = await anext(stream)  # returns once the slow head is answered
            pulled_while_waiting = source.pulled
            assert head.call_id == "lazy-0" and head.found
            # Other ids went ahead while the head was slow, within a small window.
            assert server.stats.requests > workers
            assert pulled_while_waiting <= 1 + 4 * workers
            rest = [await anext(stream) for _ in range(30)]
            assert [o.call_id for o in rest] == [f"lazy-{i}" for i in range(1, 31)]
            await stream.aclose()
    assert worker_tasks() == []


async def test_unordered_slow_consumer_applies_back_pressure(server: DemoServer) -> None:
    """A consumer that takes its time is never far behind the requests sent."""
    workers = 4
    source = Source(limit=200)
    async with asyncvox.Client(API_KEY, server.base_url, concurrency=workers) as client:
        done = 0
        async for outcome in client.iter_calls(source):
            check_found(outcome)
            done += 1
            assert server.stats.requests <= done + 3 * workers
            assert source.pulled <= done + 3 * workers
            await asyncio.sleep(0)  # a consumer doing a little work of its own
        assert done == 200


async def test_attempt_timeout_does_not_count_the_wait_for_a_slot() -> None:
    """Every request takes 0.25 s; with 2 slots the 8th id waits ~1 s before it is sent,
    well past the 0.5 s per-attempt timeout, yet no attempt times out (aiohttp #10313)."""
    profile = FaultProfile(latency=(0.25, 0.25))
    async with (
        DemoServer(api_key=API_KEY, turns=2, profile=profile) as server,
        asyncvox.Client(API_KEY, server.base_url, concurrency=2, timeout=0.5) as client,
    ):
        outcomes = await client.fetch_calls(make_ids(8, "slot"))
    for outcome in outcomes:
        check_found(outcome)
        assert outcome.attempts == 1
    assert server.stats.requests == 8


# -- per-id failures become outcomes -----------------------------------------------------------


async def test_an_always_failing_id_becomes_an_outcome_and_the_batch_goes_on(
    server: DemoServer, client: asyncvox.Client
) -> None:
    server.script("dead", [503] * 50)
    ids = [*make_ids(20, "a"), "dead", *make_ids(20, "b")]
    outcomes = await client.fetch_calls(ids)
    assert [o.call_id for o in outcomes] == ids
    dead = outcomes[20]
    assert isinstance(dead.error, asyncvox.ServerError)
    assert dead.error.status == 503
    assert dead.error.call_id == "dead"
    assert dead.attempts == client.retry_policy.max_retries + 1 == 5
    assert not dead.found and not dead.ok and dead.raw is None
    assert server.stats.requests_for("dead") == 5
    for outcome in outcomes[:20] + outcomes[21:]:
        check_found(outcome)


async def test_max_retries_bounds_the_attempts_of_a_failing_id(server: DemoServer) -> None:
    server.script("dead", [500] * 50)
    async with asyncvox.Client(API_KEY, server.base_url, max_retries=2) as client:
        outcomes = {o.call_id: o async for o in client.iter_calls(["ok-1", "dead", "ok-2"])}
    assert outcomes["dead"].attempts == 3
    assert isinstance(outcomes["dead"].error, asyncvox.ServerError)
    assert server.stats.requests_for("dead") == 3
    assert outcomes["ok-1"].found and outcomes["ok-2"].found


@pytest.mark.parametrize("ordered", [False, True])
async def test_bad_ids_in_the_stream_are_their_own_outcomes(
    server: DemoServer, client: asyncvox.Client, ordered: bool
) -> None:
    ids: list[Any] = ["good-1", "", "good-2", 5, "good-3", None]
    async with client.iter_calls(ids, ordered=ordered) as stream:
        outcomes = [o async for o in stream]
    assert len(outcomes) == 6
    if ordered:
        assert [o.call_id for o in outcomes] == ["good-1", "", "good-2", "5", "good-3", "None"]
    bad = [o for o in outcomes if not o.call_id.startswith("good")]
    assert len(bad) == 3
    for outcome in bad:
        assert isinstance(outcome.error, asyncvox.InvalidCallIdError)
        assert outcome.attempts == 0
        assert outcome.call is None and outcome.raw is None
    for outcome in outcomes:
        if outcome.call_id.startswith("good"):
            check_found(outcome)
    assert server.stats.requests == 3
    assert stream.stats.failed == 3 and stream.stats.found == 3


class _Ids(enum.StrEnum):
    FIRST = "enum-1"
    SECOND = "enum-2"


@pytest.mark.parametrize("mode", ["unordered", "ordered", "wait"])
async def test_str_subclass_ids_are_fetched_as_plain_str(client: asyncvox.Client, mode: str) -> None:
    # A StrEnum member (or numpy.str_) is a str: the unordered worker took it for a
    # ready result and the batch ended with an AssertionError.
    ids: list[str] = [_Ids.FIRST, "plain", _Ids.SECOND, "enum-1"]
    kwargs: dict[str, Any] = {"ordered": mode == "ordered", "wait": 5 if mode == "wait" else None}
    async with client.iter_calls(ids, **kwargs) as stream:
        outcomes = [o async for o in stream]
    assert sorted(o.call_id for o in outcomes) == ["enum-1", "enum-2", "plain"]  # deduped
    for outcome in outcomes:
        check_found(outcome)
        assert type(outcome.call_id) is str


# -- failures that doom every id abort the batch --------------------------------------------


@pytest.mark.parametrize("ordered", [False, True])
async def test_wrong_api_key_aborts_the_batch(server: DemoServer, ordered: bool) -> None:
    async with asyncvox.Client("not-the-key", server.base_url, concurrency=8) as client:
        with pytest.raises(asyncvox.AuthenticationError) as info:
            async for _ in client.iter_calls(make_ids(2000), ordered=ordered):
                pass
        assert info.value.status == 401
        assert "not-the-key" not in str(info.value) and "not-the-key" not in repr(info.value)
        assert server.stats.requests <= 2 * 8
        await settle()
        assert worker_tasks() == []
        assert client.governor.in_flight == 0


async def test_get_calls_raises_on_a_wrong_api_key(server: DemoServer) -> None:
    async with asyncvox.Client("not-the-key", server.base_url, concurrency=8) as client:
        with pytest.raises(asyncvox.AuthenticationError):
            await client.fetch_calls(make_ids(1000))
    assert server.stats.requests <= 2 * 8
    await settle()
    assert worker_tasks() == []


async def test_forbidden_key_aborts_the_batch() -> None:
    async with DemoServer(api_key=API_KEY, forbidden_keys=["read-only"], turns=2) as server:
        async with asyncvox.Client("read-only", server.base_url, concurrency=8) as client:
            with pytest.raises(asyncvox.PermissionDeniedError) as info:
                async for _ in client.iter_calls(make_ids(1000)):
                    pass
        assert info.value.status == 403
        assert server.stats.requests <= 2 * 8
        assert server.stats.statuses[403] == server.stats.requests
    await settle()
    assert worker_tasks() == []


@pytest.mark.parametrize("ordered", [False, True])
async def test_wrong_base_url_aborts_the_batch(server: DemoServer, ordered: bool) -> None:
    wrong = f"http://127.0.0.1:{server.port}/v9/api"
    async with asyncvox.Client(API_KEY, wrong, concurrency=8) as client:
        with pytest.raises(asyncvox.EndpointNotFoundError) as info:
            async for _ in client.iter_calls(make_ids(1000), ordered=ordered):
                pass
    assert info.value.status == 404
    assert server.stats.requests <= 2 * 8
    await settle()
    assert worker_tasks() == []


async def test_fatal_error_after_some_successes_still_aborts(
    server: DemoServer, client: asyncvox.Client
) -> None:
    ids = make_ids(500, "rev")
    server.script(ids[50], [401])  # the key is revoked mid-batch
    received: list[asyncvox.FetchOutcome] = []
    with pytest.raises(asyncvox.AuthenticationError):
        await drain(client.iter_calls(ids, concurrency=4), received)
    assert 0 < len(received) < 100
    assert all(o.found for o in received)
    assert server.stats.requests < 100
    await settle()
    assert worker_tasks() == []


# -- cancellation ------------------------------------------------------------------------------


def _slowish_server() -> DemoServer:
    return DemoServer(api_key=API_KEY, turns=2, profile=FaultProfile(latency=(0.002, 0.01)))


@pytest.mark.parametrize("ordered", [False, True])
async def test_break_out_of_the_loop_stops_the_batch(ordered: bool) -> None:
    async with (
        _slowish_server() as server,
        asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client,
    ):
        n = 0
        async for outcome in client.iter_calls(make_ids(5000), ordered=ordered):
            check_found(outcome)
            n += 1
            if n == 40:
                break
        await assert_batch_gone(server, client)
        assert server.stats.requests <= 40 + 1 + 4 * 8 + 1  # the window, plus the check call


@pytest.mark.parametrize("ordered", [False, True])
async def test_aclose_stops_the_batch(ordered: bool) -> None:
    async with (
        _slowish_server() as server,
        asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client,
    ):
        stream = client.iter_calls(make_ids(5000), ordered=ordered)
        for _ in range(40):
            check_found(await anext(stream))
        await stream.aclose()
        assert worker_tasks() == []  # aclose waits for the workers
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        await stream.aclose()  # twice is fine
        await assert_batch_gone(server, client)


@pytest.mark.parametrize("ordered", [False, True])
async def test_aclose_from_another_task_ends_the_consumer_waiting_in_anext(ordered: bool) -> None:
    # An app's shutdown handler stops a batch whose consumer waits for the next outcome:
    # the consumer's loop ends (no task left blocked forever on workers that are gone).
    async with DemoServer(api_key=API_KEY) as server:
        server.script(None, [Fault.slow(60)] * 4)  # the batch's requests hang: the consumer waits
        arrived = asyncio.Event()
        server.on_request = lambda _id: arrived.set()
        async with asyncvox.Client(API_KEY, server.base_url, concurrency=4) as client:
            stream = client.iter_calls(make_ids(4), ordered=ordered)

            async def consume() -> list[asyncvox.FetchOutcome]:
                return [outcome async for outcome in stream]

            consumer = asyncio.create_task(consume())
            await arrived.wait()
            await until(lambda: client.governor.in_flight == 4)
            await stream.aclose()
            done, _ = await asyncio.wait({consumer}, timeout=10)
            assert consumer in done, "the consumer still waits in anext() after aclose()"
            assert consumer.result() == []
            assert worker_tasks() == [] and client.governor.in_flight == 0
            assert (await client.get_call("after-the-batch")) is not None  # the client still works


async def test_leaving_async_with_stops_the_batch() -> None:
    async with (
        _slowish_server() as server,
        asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client,
    ):
        async with client.iter_calls(make_ids(5000)) as stream:
            async for _ in stream:
                if stream.stats.done == 30:
                    break
        assert worker_tasks() == []
        await assert_batch_gone(server, client)


@pytest.mark.parametrize("ordered", [False, True])
async def test_cancelling_the_consuming_task_stops_the_batch(ordered: bool) -> None:
    async with (
        _slowish_server() as server,
        asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client,
    ):
        got_some = asyncio.Event()
        count = 0

        async def consume() -> None:
            nonlocal count
            async for _ in client.iter_calls(make_ids(5000), ordered=ordered):
                count += 1
                if count == 40:
                    got_some.set()

        task = asyncio.create_task(consume())
        await got_some.wait()
        # Cancel while requests are in flight.
        await until(lambda: client.governor.in_flight > 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await assert_batch_gone(server, client)
        assert count < 200


async def test_cancelling_get_calls_stops_the_batch() -> None:
    async with (
        _slowish_server() as server,
        asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client,
    ):
        task = asyncio.create_task(client.fetch_calls(make_ids(5000)))
        await until(lambda: server.stats.requests >= 40)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await assert_batch_gone(server, client)
        assert server.stats.requests < 200


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("how", ["asyncio.timeout", "asyncio.wait_for", "wait_for(anext(s, None))"])
async def test_a_timeout_around_anext_loses_nothing(server: DemoServer, ordered: bool, how: str) -> None:
    """A consumer that polls with a timeout (the head id is slow) still gets every outcome.

    Every spelling of "a timeout around anext()" must leave the batch running: the
    timeout cancels the wait for an outcome, not the batch. ``wait_for`` runs ``anext`` in
    a task of its own, which ends cancelled when the timeout fires; ``anext(s, default)``
    is not a coroutine, so (on 3.11) that task runs asyncio's wrapper of an awaitable.
    """
    ids = make_ids(40, "poll")
    server.script(ids[0], [Fault.slow(0.3)])
    got: list[str] = []
    timeouts = 0
    async with asyncvox.Client(API_KEY, server.base_url, concurrency=4) as client:
        stream = client.iter_calls(ids, ordered=ordered)
        async with asyncio.timeout(3):  # a hang guard: the batch needs ~0.3 s
            while len(got) < len(ids):
                try:
                    if how == "asyncio.wait_for":
                        outcome = await asyncio.wait_for(anext(stream), 0.05)
                    elif how == "wait_for(anext(s, None))":
                        maybe = await asyncio.wait_for(anext(stream, None), 0.05)
                        assert maybe is not None
                        outcome = maybe
                    else:
                        async with asyncio.timeout(0.05):
                            outcome = await anext(stream)
                except TimeoutError:
                    timeouts += 1
                    continue
                check_found(outcome)
                got.append(outcome.call_id)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        await stream.aclose()
    assert timeouts > 0
    assert sorted(got) == sorted(ids)
    if ordered:
        assert got == ids


# -- the governor: client-wide 429 pause, AIMD limit ------------------------------------------


@pytest.mark.real_waits
async def test_a_429_window_in_a_batch_loses_no_id_and_slow_starts_again_under_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cap = 8
    async with DemoServer(api_key=API_KEY, turns=2, record=True) as server:
        server.script(None, [Fault.rate_limited("1")] * 10)
        async with asyncvox.Client(API_KEY, server.base_url, concurrency=cap, max_retries=10) as client:
            gov = client.governor
            server.on_request = lambda _call_id: gov.in_flight
            ids = make_ids(40, "thr")
            with caplog.at_level(logging.INFO, logger="asyncvox"):
                async with client.iter_calls(ids, ordered=True) as stream:
                    outcomes = [o async for o in stream]
            summary = stream.stats.summary()["governor"]
        assert [o.call_id for o in outcomes] == ids
        for outcome in outcomes:
            check_found(outcome)
        assert gov.throttled == 10 and gov.in_flight == 0
        # the governor's state is readable in the batch's figures, and logged when it moves
        assert summary["throttles"] == 10 and summary["last_throttle_reason"].startswith("429")
        assert summary["in_flight_cap"] <= cap
        assert any("governor: pace" in r.getMessage() for r in caplog.records)
        assert server.log is not None
        assert max(r.note for r in server.log) <= cap  # never more in flight than the cap
        assert server.stats.peak_in_flight <= cap


async def test_429s_do_not_draw_on_the_retry_budget(server: DemoServer) -> None:
    no_budget = RetryBudget(ratio=0.0, min_per_second=0.0, max_balance=0.0)
    server.script("throttled", [Fault.rate_limited("0")] * 3)
    server.script("broken", [503])
    async with asyncvox.Client(API_KEY, server.base_url, retry_budget=no_budget) as client:
        outcomes = {o.call_id: o async for o in client.iter_calls(["throttled", "broken", "fine"])}
    assert outcomes["throttled"].found and outcomes["throttled"].attempts == 4
    assert isinstance(outcomes["broken"].error, asyncvox.ServerError)
    assert outcomes["broken"].attempts == 1  # the empty budget refused the retry
    assert outcomes["fine"].found
    assert no_budget.refused == 1


async def test_testing_mode_zeroes_the_client_wide_429_pause(server: DemoServer) -> None:
    """With waits switched off (conftest), a 429's Retry-After must not stall the batch.

    Retry-After: 30 is honoured in production; in testing mode the retry wait is zero,
    and so must be the client-wide pause (retry.py: "every client-wide 429 pause zero").
    """
    server.script(None, [Fault.rate_limited("30")])
    async with asyncvox.Client(API_KEY, server.base_url) as client, asyncio.timeout(5):
        outcomes = await client.fetch_calls(make_ids(20, "tm"))
    assert all(o.found for o in outcomes)
    assert server.stats.statuses[429] == 1


# -- the retry budget ----------------------------------------------------------------------


async def test_a_server_failing_everything_sees_retries_within_the_budget() -> None:
    n = 2000
    async with DemoServer(api_key=API_KEY, turns=2, profile=FaultProfile(rate_5xx=1.0, seed=3)) as server:
        async with asyncvox.Client(API_KEY, server.base_url) as client:
            async with client.iter_calls(make_ids(n, "down")) as stream:
                outcomes = [o async for o in stream]
            budget = client.governor.budget
        elapsed = stream.stats.elapsed
        assert len(outcomes) == n
        for outcome in outcomes:
            assert isinstance(outcome.error, asyncvox.ServerError), outcome
            assert 1 <= outcome.attempts <= 5
        assert sum(o.attempts for o in outcomes) == server.stats.requests
        # ratio 0.5 of first attempts, plus the reserve (10 tokens, refilled at 10/s).
        allowed = n * 1.5 + budget.min_per_second * (1 + elapsed)
        assert server.stats.requests <= allowed
        assert server.stats.requests < n * (1 + client.retry_policy.max_retries) / 2
        # ... and the budget is used, not refused outright.
        assert server.stats.requests >= n * 1.3
        assert budget.refused > 0
        assert stream.stats.failed == n


async def test_a_server_dropping_every_connection_sees_retries_within_the_budget() -> None:
    n = 600
    async with DemoServer(api_key=API_KEY, turns=2, profile=FaultProfile(rate_drop=1.0, seed=3)) as server:
        async with asyncvox.Client(API_KEY, server.base_url) as client:
            async with client.iter_calls(make_ids(n, "gone")) as stream:
                outcomes = [o async for o in stream]
            budget = client.governor.budget
        for outcome in outcomes:
            assert isinstance(outcome.error, asyncvox.APIConnectionError), outcome
        allowed = n * 1.5 + budget.min_per_second * (1 + stream.stats.elapsed)
        assert server.stats.requests <= allowed
        assert sum(o.attempts for o in outcomes) == server.stats.requests


async def test_a_fifth_of_ids_failing_once_or_twice_are_all_fetched() -> None:
    ids = make_ids(1000, "flaky")
    async with DemoServer(api_key=API_KEY, turns=2) as server:
        expected_retries = 0
        for i, call_id in enumerate(ids):
            if i % 5 == 2:
                faults = [503] if i % 10 == 2 else [500, Fault.html(502)]
                server.script(call_id, faults)
                expected_retries += len(faults)
        async with (
            asyncvox.Client(API_KEY, server.base_url) as client,
            client.iter_calls(ids) as stream,
        ):
            outcomes = [o async for o in stream]
        assert len(outcomes) == 1000
        for outcome in outcomes:
            check_found(outcome)
        assert expected_retries == 300
        assert stream.stats.retries == expected_retries
        assert server.stats.requests == 1000 + expected_retries
        assert client.governor.budget.refused == 0


# -- rate limit ------------------------------------------------------------------------------------


@pytest.mark.real_waits
async def test_client_rate_limit_keeps_under_the_server_limit() -> None:
    rate = 200
    profile = FaultProfile(rps_limit=rate * 1.1)
    async with DemoServer(api_key=API_KEY, turns=2, profile=profile, record=True) as server:
        async with asyncvox.Client(API_KEY, server.base_url, rate_limit=rate) as client:
            ids = make_ids(400, "rl")
            outcomes = [o async for o in client.iter_calls(ids)]
        assert sorted(o.call_id for o in outcomes) == sorted(ids)
        assert all(o.found for o in outcomes)
        # (Almost) never over the server's limit: a 1 s window can only hold more than R
        # arrivals through network/loop jitter, and the server allows 10% on top.
        assert server.stats.statuses[429] <= len(ids) // 100
        # Starts are spaced 1/R apart: the batch cannot go faster than R per second.
        arrivals = sorted(e.arrived for e in server.log)
        assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) / rate * 0.98
        assert max_in_window(arrivals, 0.1) <= rate * 0.1 * 2


@pytest.mark.real_waits
async def test_a_rate_limited_server_loses_no_id_without_a_client_rate_limit() -> None:
    rate = 200
    async with DemoServer(api_key=API_KEY, turns=2, profile=FaultProfile(rps_limit=rate)) as server:
        async with asyncvox.Client(API_KEY, server.base_url) as client:
            ids = make_ids(400, "srl")
            async with client.iter_calls(ids) as stream:
                outcomes = [o async for o in stream]
        assert sorted(o.call_id for o in outcomes) == sorted(ids)
        for outcome in outcomes:
            check_found(outcome)
        assert server.stats.statuses[429] > 0
        assert stream.stats.failed == 0
        # The client backed off as a whole: far fewer 429s than a hammering client.
        assert server.stats.statuses[429] < len(ids)


# -- stats -----------------------------------------------------------------------------------------


async def test_stats_agree_with_the_server() -> None:
    async with DemoServer(api_key=API_KEY, turns=2, record=True) as server:
        ids: list[Any] = make_ids(120, "st")
        server.add_missing(*ids[:10])
        for call_id in ids[10:20]:
            server.script(call_id, [503])
        for call_id in ids[20:25]:
            server.script(call_id, [Fault.rate_limited("0"), 500])
        server.script(ids[25], [504] * 10)  # fails for good (max_retries=4)
        ids += [ids[30], ids[31], ids[30], "", 7]
        async with asyncvox.Client(API_KEY, server.base_url) as client:
            stream = client.iter_calls(ids)
            assert stream.stats.total == len(ids)
            outcomes = [o async for o in stream]
            stats = stream.stats
            assert stats.in_flight == 0
            assert 1 <= stats.limit <= client.concurrency  # halved by the 429s, growing back

        assert stats.done == len(outcomes) == 122
        assert stats.found == sum(o.found for o in outcomes) == 109
        assert stats.missing == sum(o.ok and not o.found for o in outcomes) == 10
        assert stats.failed == sum(not o.ok for o in outcomes) == 3
        assert stats.duplicates == 3
        assert stats.requests == server.stats.requests == sum(o.attempts for o in outcomes) == 144
        assert stats.retries == sum(max(0, o.attempts - 1) for o in outcomes) == 24
        assert stats.retries_by_cause == Counter({"503": 10, "429": 5, "500": 5, "504": 4})
        assert stats.statuses == server.stats.statuses
        assert stats.statuses == Counter({200: 109, 404: 10, 503: 10, 429: 5, 500: 5, 504: 5})
        assert stats.bytes_received == sum(e.body_bytes for e in server.log)
        assert stats.bytes_received > sum(len(o.raw) for o in outcomes if o.raw is not None)
        assert stats.elapsed > 0

        summary = stats.summary()
        assert json.loads(json.dumps(summary)) == summary
        assert summary["done"] == 122 and summary["found"] == 109
        assert summary["missing"] == 10 and summary["failed"] == 3
        assert summary["requests"] == 144 and summary["retries"] == 24
        assert summary["duplicates"] == 3
        assert summary["statuses"]["200"] == 109
        assert summary["retries_by_cause"]["503"] == 10
        assert summary["bytes_received"] == stats.bytes_received
        assert summary["total"] == len(ids)


async def test_stats_are_live_during_the_batch(server: DemoServer, client: asyncvox.Client) -> None:
    seen: list[tuple[int, int]] = []
    async with client.iter_calls(make_ids(100, "live")) as stream:
        async for _ in stream:
            seen.append((stream.stats.done, stream.stats.requests))
            assert 0 <= stream.stats.in_flight <= client.concurrency
            assert 1 <= stream.stats.limit <= client.concurrency
    assert [d for d, _ in seen] == list(range(1, 101))
    assert all(r >= d for d, r in seen)


async def test_attempts_and_request_counts_include_dropped_connections(
    server: DemoServer, client: asyncvox.Client
) -> None:
    """``attempts`` is "the number of requests asyncvox sent for that id" (api.md), and
    ``stats.requests`` counts every request sent, answered or not."""
    server.script("drop-once", [Fault.drop(), 200])
    server.script("drop-twice", [Fault.drop(), Fault.drop(), 200])
    server.script("drop-forever", [Fault.drop()] * 20)
    ids = ["drop-once", "drop-twice", "drop-forever", "fine"]
    async with client.iter_calls(ids) as stream:
        outcomes = {o.call_id: o async for o in stream}
    assert outcomes["drop-once"].found and outcomes["drop-twice"].found
    assert isinstance(outcomes["drop-forever"].error, asyncvox.APIConnectionError)
    for call_id, outcome in outcomes.items():
        assert outcome.attempts == server.stats.requests_for(call_id), outcome
    assert outcomes["drop-forever"].attempts == client.retry_policy.max_retries + 1
    assert stream.stats.requests == server.stats.requests
    assert stream.stats.retries_by_cause["connection"] == stream.stats.retries


# -- concurrency ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("batch", "expected"), [(2, 2), (64, 8), (None, 8)])
async def test_batch_concurrency_only_lowers_the_client_cap(batch: int | None, expected: int) -> None:
    profile = FaultProfile(latency=(0.002, 0.006))
    async with (
        DemoServer(api_key=API_KEY, turns=2, profile=profile) as server,
        asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client,
    ):
        outcomes = [o async for o in client.iter_calls(make_ids(300, "cc"), concurrency=batch)]
        assert len(outcomes) == 300
        assert server.stats.peak_in_flight <= expected
        assert client.governor.peak_in_flight <= expected
        assert server.stats.peak_in_flight >= 2


async def test_concurrent_batches_share_the_client_cap() -> None:
    async with DemoServer(api_key=API_KEY, turns=2, profile=FaultProfile(latency=(0.002, 0.006))) as server:
        async with asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client:

            async def batch(prefix: str) -> list[asyncvox.FetchOutcome]:
                return [o async for o in client.iter_calls(make_ids(150, prefix), concurrency=8)]

            async def singles() -> list[asyncvox.Call | None]:
                return [await client.get_call(f"single-{i}") for i in range(20)]

            a, b, c = await asyncio.gather(batch("a"), batch("b"), singles())
        assert len(a) == len(b) == 150 and all(call is not None for call in c)
        assert server.stats.peak_in_flight <= 8


# -- regressions found in review -----------------------------------------------------------


async def test_a_timeout_whose_handler_awaits_does_not_stop_the_batch(client: asyncvox.Client) -> None:
    ids = make_ids(60, "tmo")
    got: list[str] = []
    async with client.iter_calls(ids) as stream:
        while len(got) < len(ids):
            try:
                async with asyncio.timeout(0.0005):
                    try:
                        got.append((await anext(stream)).call_id)
                    finally:
                        await asyncio.sleep(0)  # the consumer suspends before the timeout exits
            except TimeoutError:
                continue
    assert sorted(got) == sorted(ids)


async def test_two_tasks_cannot_consume_one_stream_at_once(client: asyncvox.Client) -> None:
    async with client.iter_calls(make_ids(50, "two")) as stream:
        first = asyncio.create_task(anext(stream))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already being awaited"):
            await anext(stream)
        assert (await first).found
        rest = [o async for o in stream]
    assert len(rest) == 49
