"""Waiting for calls to be analysed: ``wait_for_call`` and ``iter_calls(wait=...)``
against the demo server's analysis simulation (calls 404 until analysed), and the
bookkeeping (no task per id) over a socket-free transport."""

from __future__ import annotations

import asyncio
import math
import pickle
from collections.abc import AsyncIterator

import pytest
from conftest import API_KEY

import asyncvox
from asyncvox.testing import DemoServer, Fault, MockTransport

#: Polls every 20-50 ms so that the tests stay short; the default starts at ~1 s.
FAST = asyncvox.PollPolicy(first=0.02, factor=1.5, cap=0.05, jitter=0.1)


async def test_wait_for_call_returns_the_call_once_its_analysis_is_done(server: DemoServer) -> None:
    server.script_analysis(
        "up-1",
        visible_after=0.1,
        statuses=[("queued", 0.1), ("in_progress", 0.15), ("analyzing", 0.2), ("completed", 0.3)],
    )
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        call = await client.wait_for_call("up-1", timeout=10, poll=FAST)
    assert call.status == "completed"
    assert server.stats.requests_for("up-1") >= 3  # 404s and unfinished statuses first


async def test_a_call_that_never_appears_ends_with_call_not_ready(server: DemoServer) -> None:
    server.script_analysis("ghost", visible_after=math.inf)
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        with pytest.raises(asyncvox.CallNotReadyError) as info:
            await client.wait_for_call("ghost", timeout=0.3, poll=FAST)
    error = info.value
    assert error.found is False and error.last_status is None
    assert error.waited >= 0.3 and error.polls >= 2
    assert error.polls == server.stats.requests_for("ghost")
    assert "never found" in str(error)
    assert pickle.loads(pickle.dumps(error)).polls == error.polls


async def test_a_call_stuck_analyzing_ends_with_its_last_status(server: DemoServer) -> None:
    server.script_analysis("stuck", statuses=[("queued", 0), ("analyzing", 0.05)])
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        outcomes = await client.fetch_calls(["stuck"], wait=0.4, poll=FAST)
    error = outcomes[0].error
    assert isinstance(error, asyncvox.CallNotReadyError)
    assert error.found is True and error.last_status == "analyzing"


async def test_calls_arrive_exactly_once_each_in_completion_order(server: DemoServer) -> None:
    # Input order is the reverse of readiness: the stream must not hold early ones back.
    ids = [f"rev-{i}" for i in range(6)]
    for i, call_id in enumerate(ids):
        server.script_analysis(call_id, visible_after=0.25 * (len(ids) - 1 - i))
    async with (
        asyncvox.Client(API_KEY, server.base_url) as client,
        client.iter_calls(ids, wait=10, poll=FAST) as stream,
    ):
        arrived = [o.call_id async for o in stream if o.found]
    assert arrived == ids[::-1]
    assert stream.stats.pending == 0 and stream.stats.found == len(ids)


async def test_random_analysis_delays_none_missing_none_twice() -> None:
    async with DemoServer(api_key=API_KEY, turns=2, analysis_delay=(0.05, 0.6), seed=7) as server:
        ids = [f"r-{i}" for i in range(120)]
        async with asyncvox.Client(API_KEY, server.base_url, concurrency=8) as client:
            outcomes = await client.fetch_calls(ids, wait=20, poll=FAST)
    assert [o.call_id for o in outcomes] == ids  # fetch_calls keeps input order
    assert all(o.found and o.call is not None and o.call.status == "completed" for o in outcomes)
    assert server.stats.not_yet_visible > 0  # the 404s were read as "not yet"


async def test_a_ready_predicate_overrides_the_default(server: DemoServer) -> None:
    server.script_analysis("half", statuses=[("analyzing", 0), ("completed", 0.2)])
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        early = await client.wait_for_call("half", timeout=5, poll=FAST, ready=lambda call: True)
        assert early.status == "analyzing"
        done = await client.wait_for_call(
            "half", timeout=5, poll=FAST, ready=lambda c: c.status == "completed"
        )
        assert done.status == "completed"


@pytest.mark.real_waits
async def test_the_servers_retry_after_on_the_404_sets_the_poll_interval() -> None:
    async with DemoServer(api_key=API_KEY, turns=2, record=True, analysis_retry_after="1") as server:
        server.script_analysis("slow", visible_after=0.5)
        async with asyncvox.Client(API_KEY, server.base_url) as client:
            call = await client.wait_for_call("slow", timeout=10, poll=FAST)
        assert call is not None
        assert server.log is not None
        times = [r.arrived for r in server.log if r.call_id == "slow"]
    assert len(times) == 2  # one 404 (with Retry-After: 1), then the call
    assert times[1] - times[0] >= 1.0 - 0.02


async def test_errors_keep_their_meaning_while_waiting(server: DemoServer) -> None:
    server.script_analysis("w", visible_after=math.inf)
    async with asyncvox.Client("wrong-key", server.base_url) as client:
        with pytest.raises(asyncvox.AuthenticationError):
            await client.wait_for_call("w", timeout=5, poll=FAST)
    async with asyncvox.Client(API_KEY, server.base_url + "/nope") as client:
        with pytest.raises(asyncvox.EndpointNotFoundError):
            await client.fetch_calls(["w", "x"], wait=5, poll=FAST)
    server.script("broken", [500] * 10)
    async with asyncvox.Client(API_KEY, server.base_url, max_retries=1) as client:
        outcome = (await client.fetch_calls(["broken"], wait=5, poll=FAST))[0]
    assert isinstance(outcome.error, asyncvox.ServerError)  # not "not ready": a real failure


async def test_polls_go_through_the_shared_governor(server: DemoServer) -> None:
    server.script_analysis("g", visible_after=0.1)
    server.script("g", [Fault.rate_limited("0"), Fault.rate_limited("0")])
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        call = await client.wait_for_call("g", timeout=10, poll=FAST)
        assert call is not None
        assert client.governor.throttled == 2
        # the 429s turned pacing on for the whole client: every later poll, of any id, is paced
        assert client.governor.pace is not None


async def test_cancelling_a_wait_stops_its_polling(server: DemoServer) -> None:
    server.script_analysis("c", visible_after=math.inf)
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        polled = asyncio.Event()
        server.on_request = lambda _id: polled.set()
        task = asyncio.create_task(client.wait_for_call("c", timeout=60, poll=FAST))
        await polled.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.governor.in_flight == 0


async def test_ten_thousand_pending_ids_hold_no_task_per_id() -> None:
    n = 10_000
    all_seen = asyncio.Event()
    seen = 0

    def not_yet(url: str) -> asyncvox.Response:
        nonlocal seen
        seen += 1
        if seen == n:
            all_seen.set()
        return asyncvox.Response(404, b'{"success":false,"error":"Call not found"}')

    mock = MockTransport(not_yet)
    slow = asyncvox.PollPolicy(first=30, cap=30)
    async with asyncvox.Client(API_KEY, "http://api.test/v1", transport=mock, concurrency=16) as client:
        stream = client.iter_calls((f"p-{i}" for i in range(n)), wait=60, poll=slow)
        consumer = asyncio.create_task(anext(stream))
        await all_seen.wait()
        tasks = len(asyncio.all_tasks())
        assert stream.stats.pending == n
        await stream.aclose()
        consumer.cancel()
    # the test's own task, the consumer and the 16 workers: nothing per id
    assert tasks <= 16 + 3
    assert len(mock.requests) == n  # one first poll each, nothing due again yet


async def test_closing_a_waiting_stream_stops_polling_at_once() -> None:
    polled_twice = asyncio.Event()
    requests = 0

    def not_yet(url: str) -> asyncvox.Response:
        nonlocal requests
        requests += 1
        if requests == 100:
            polled_twice.set()
        return asyncvox.Response(404, b'{"success":false,"error":"Call not found"}')

    mock = MockTransport(not_yet)
    async with asyncvox.Client(API_KEY, "http://api.test/v1", transport=mock) as client:
        async with client.iter_calls([f"x-{i}" for i in range(50)], wait=60, poll=FAST) as stream:
            consumer = asyncio.create_task(anext(stream))
            await polled_twice.wait()
            assert stream.stats.pending > 0
        # aclose() returned: every worker is gone, so nothing is left that could poll
        others = asyncio.all_tasks() - {asyncio.current_task(), consumer}
        assert not others
        consumer.cancel()


def test_wait_settings_are_checked() -> None:
    client = asyncvox.Client(API_KEY, "http://127.0.0.1:9/v1")
    with pytest.raises(asyncvox.ConfigurationError, match="wait"):
        client.iter_calls(["a"], wait=0)
    with pytest.raises(asyncvox.ConfigurationError, match="ordered"):
        client.iter_calls(["a"], wait=5, ordered=True)
    with pytest.raises(asyncvox.ConfigurationError, match="only apply with wait"):
        client.iter_calls(["a"], poll=FAST)
    with pytest.raises(asyncvox.ConfigurationError, match="factor"):
        asyncvox.PollPolicy(factor=0.5)


def _deep_call_body(call_id: str, status: str) -> bytes:
    """A whole 200 body whose call's metadata nests deeper than msgspec goes (even skipping)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    call = b'{"id":"%s","status":"%s","metadata":%s}' % (call_id.encode(), status.encode(), deep)
    return b'{"success":true,"call":' + call + b',"url":"https://x/' + call_id.encode() + b'"}'


async def test_a_call_nested_too_deep_is_waited_for_as_the_plain_fetch_reads_it(server: DemoServer) -> None:
    # Its status was read by a decoder that raised RecursionError: wait_for_call crashed,
    # and a waiting batch ended with it.
    server.add_call(_deep_call_body("deep", "completed"), call_id="deep")
    server.add_call(_deep_call_body("deep-queued", "queued"), call_id="deep-queued")
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        call = await client.wait_for_call("deep", timeout=5)
        assert call.status == "completed" and call.metadata is None  # too deep: None
        outcomes = await client.fetch_calls(["ok-1", "deep", "deep-queued", "ok-2"], wait=0.2)
    assert [o.call_id for o in outcomes] == ["ok-1", "deep", "deep-queued", "ok-2"]
    assert outcomes[1].call is not None and outcomes[1].error is None
    # Queued is not ready: its wait runs out (not taken for ready for want of a status).
    assert isinstance(outcomes[2].error, asyncvox.CallNotReadyError)


@pytest.mark.parametrize(
    "body",
    [
        # What JSON.stringify writes for a string cut inside an emoji: msgspec refuses it.
        pytest.param(
            b'{"success":true,"call":{"id":"odd","status":"queued","notes":"cut \\ud83d"},"url":"https://x/odd"}',
            id="lone-surrogate",
        ),
        # A key between the call and the url: the quick split's slice is not one value.
        pytest.param(
            b'{"success":true,"call":{"id":"odd","status":"queued"},"trace":{"t":1},"url":"https://x/odd"}',
            id="key-after-the-call",
        ),
    ],
)
async def test_a_queued_call_msgspec_cannot_peek_at_is_not_taken_for_ready(
    server: DemoServer, body: bytes
) -> None:
    # The status was peeked at by a decoder that gave up (None) on bodies the full decode
    # reads: such a queued call passed for ready and ended its wait at once.
    server.add_call(body, call_id="odd")
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        assert (await client.fetch("odd")).call.status == "queued"  # type: ignore[union-attr]
        outcomes = await client.fetch_calls(["ok-1", "odd"], wait=0.2, poll=FAST)
        with pytest.raises(asyncvox.CallNotReadyError) as info:
            await client.wait_for_call("odd", timeout=0.2, poll=FAST)
    assert outcomes[0].found
    error = outcomes[1].error
    assert isinstance(error, asyncvox.CallNotReadyError) and error.last_status == "queued"
    assert info.value.last_status == "queued" and info.value.polls >= 2


async def test_an_ids_wait_starts_when_the_input_gives_it(server: DemoServer) -> None:
    # An async input that takes its time (ids arriving as uploads finish): "late" comes
    # only after "ghost"'s whole wait. Its wait was counted from when the worker began to
    # pull, so it ran out at its first poll (queued) although it is ready 10 ms later.
    server.script_analysis("ghost", visible_after=math.inf)
    server.script_analysis("late", statuses=[("queued", 0), ("completed", 0.01)])
    ghost_done = asyncio.Event()

    async def uploads() -> AsyncIterator[str]:
        yield "ghost"
        await ghost_done.wait()
        yield "late"

    outcomes: dict[str, asyncvox.FetchOutcome] = {}
    async with (
        asyncio.timeout(10),  # a hang guard: the batch needs ~0.3 s
        asyncvox.Client(API_KEY, server.base_url, concurrency=2) as client,
        client.iter_calls(uploads(), wait=0.3, poll=FAST) as stream,
    ):
        async for outcome in stream:
            outcomes[outcome.call_id] = outcome
            if outcome.call_id == "ghost":
                ghost_done.set()
    assert isinstance(outcomes["ghost"].error, asyncvox.CallNotReadyError)
    late = outcomes["late"]
    assert late.error is None and late.call is not None and late.call.status == "completed"


async def test_polls_go_on_while_a_single_worker_waits_for_the_input(server: DemoServer) -> None:
    # concurrency=1: the one worker sat in the input's next id, so "a" was never polled
    # again until the input moved; an input that waits for "a" (a pipeline fed back by
    # its own results) hung for ever.
    server.script_analysis("a", statuses=[("queued", 0), ("completed", 0.01)])
    a_done = asyncio.Event()

    async def uploads() -> AsyncIterator[str]:
        yield "a"
        await a_done.wait()
        yield "b"

    got: list[str] = []
    async with (
        asyncio.timeout(10),  # a hang guard: the batch needs ~0.05 s
        asyncvox.Client(API_KEY, server.base_url, concurrency=1) as client,
        client.iter_calls(uploads(), wait=60, poll=FAST) as stream,
    ):
        async for outcome in stream:
            assert outcome.call is not None and outcome.call.status == "completed"
            got.append(outcome.call_id)
            a_done.set()
    assert got == ["a", "b"]
    assert server.stats.requests_for("a") == 2


async def test_fetch_calls_waiting_without_dedupe_keeps_input_order(client: asyncvox.Client) -> None:
    # As fetch_calls without wait= does: every occurrence in its own place (they were
    # grouped at the first occurrence of their id).
    ids = ["a", "b", "a", "c", "b"]
    plain = await client.fetch_calls(ids, dedupe=False)
    waited = await client.fetch_calls(ids, dedupe=False, wait=5, poll=FAST)
    assert [o.call_id for o in plain] == ids
    assert [o.call_id for o in waited] == ids
    assert all(o.found for o in waited)


async def test_a_server_that_stalls_does_not_hold_a_wait_past_its_end(server: DemoServer) -> None:
    # A poll was bounded by the client's total_timeout (300 s) and attempt timeout (30 s),
    # not by what was left of the wait: timeout=0.3 against a server that stopped
    # answering took 30 s and more.
    for call_id in ("stalled-1", "stalled-2"):
        server.script_analysis(call_id, statuses=[("queued", 0), ("completed", 3600)])
        server.script(call_id, [200, Fault.slow(3600)])  # "queued", then no answer
    async with (
        asyncio.timeout(10),  # a hang guard: each wait needs ~0.3 s
        asyncvox.Client(API_KEY, server.base_url) as client,
    ):
        with pytest.raises(asyncvox.CallNotReadyError) as info:
            await client.wait_for_call("stalled-1", timeout=0.3, poll=FAST)
        outcomes = await client.fetch_calls(["ok-1", "stalled-2"], wait=0.3, poll=FAST)
    assert info.value.last_status == "queued" and info.value.polls == 2
    assert outcomes[0].found
    error = outcomes[1].error
    assert isinstance(error, asyncvox.CallNotReadyError) and error.last_status == "queued"


async def test_wait_true_is_refused_not_taken_for_one_second(server: DemoServer) -> None:
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        with pytest.raises(asyncvox.ConfigurationError, match="wait must be seconds"):
            await client.fetch_calls(["ok-1"], wait=True)
        with pytest.raises(asyncvox.ConfigurationError, match="wait must be seconds"):
            client.iter_calls(["ok-1"], wait=True)
        with pytest.raises(asyncvox.ConfigurationError, match="wait must be seconds"):
            await client.wait_for_call("ok-1", timeout=True)


async def test_closing_the_client_ends_a_waiting_batch_between_polls(server: DemoServer) -> None:
    # A waiting worker sleeps until the next poll is due, and the client's close woke
    # nobody: the batch went on until then (30 s here) and only then failed.
    server.script_analysis("never", visible_after=math.inf)
    scheduled = asyncio.Event()

    class Noting(asyncvox.PollPolicy):
        def delay(self, polls: int, hint: float | None = None) -> float:
            scheduled.set()  # the first answer is judged: the worker goes to sleep next
            return super().delay(polls, hint)

    client = asyncvox.Client(API_KEY, server.base_url)
    stream = client.iter_calls(["never"], wait=300, poll=Noting(first=30, cap=30))
    async with asyncio.timeout(10), stream:  # a hang guard: the close should end it at once
        consumer = asyncio.ensure_future(anext(stream))
        await scheduled.wait()
        await client.aclose()
        with pytest.raises(asyncvox.ConfigurationError, match="closed"):
            await consumer
    assert server.stats.requests_for("never") == 1
