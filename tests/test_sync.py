"""The blocking entry points work from plain code and from inside a running event loop."""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest

import asyncvox
from asyncvox.testing import DemoServer

KEY = "sync-key"


def test_from_plain_code() -> None:
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        server.add_missing("gone")
        call = asyncvox.get_call_sync("a-1", api_key=KEY, base_url=server.base_url)
        assert call is not None and call.customer_call_id == "a-1"
        outcomes = asyncvox.fetch_calls_sync(["b", "gone", "a", "b"], api_key=KEY, base_url=server.base_url)
    assert [o.call_id for o in outcomes] == ["b", "gone", "a"]
    assert [o.found for o in outcomes] == [True, False, True]


def test_inside_a_running_loop_like_a_notebook_cell() -> None:
    """asyncio.run() would fail here; the sync API runs its own loop in a worker thread."""
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:

        async def notebook_cell() -> tuple[list[asyncvox.FetchOutcome], str]:
            outcomes = asyncvox.fetch_calls_sync(
                [f"n-{i}" for i in range(20)], api_key=KEY, base_url=server.base_url
            )
            call = asyncvox.get_call_sync("n-0", api_key=KEY, base_url=server.base_url)
            assert call is not None
            return outcomes, threading.current_thread().name

        outcomes, thread = asyncio.run(notebook_cell())
    assert thread == threading.main_thread().name
    assert [o.call_id for o in outcomes] == [f"n-{i}" for i in range(20)]
    assert all(o.found for o in outcomes)


def test_errors_propagate() -> None:
    server = DemoServer(api_key=KEY, turns=4)
    with server.running_in_thread(), pytest.raises(asyncvox.AuthenticationError) as info:
        asyncvox.get_call_sync("x", api_key="wrong", base_url=server.base_url)
    assert info.value.status == 401


def test_an_interrupt_inside_a_running_loop_stops_the_batch() -> None:
    """Ctrl-C in a notebook raises KeyboardInterrupt in the cell, blocked on the worker
    thread: the batch there must stop too. It ran on to its end (every id fetched) before
    the interrupt came through."""
    n = 5000
    with DemoServer(api_key=KEY, turns=2).running_in_thread() as server:
        seen = 0

        def on_request(_call_id: str | None) -> None:
            nonlocal seen
            seen += 1
            if seen == 20:  # under way: interrupt the main thread, blocked in the cell
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

        server.on_request = on_request

        async def notebook_cell() -> None:
            asyncvox.fetch_calls_sync(
                [f"k-{i}" for i in range(n)], api_key=KEY, base_url=server.base_url, concurrency=4
            )

        loop = asyncio.new_event_loop()  # as ipykernel runs it: no asyncio SIGINT handler
        try:
            with pytest.raises(KeyboardInterrupt):
                loop.run_until_complete(notebook_cell())
        finally:
            loop.close()
        stopped_at = server.stats.requests
    assert stopped_at < n
    assert not [t for t in threading.enumerate() if t.name.startswith("asyncvox-sync")]


def test_fetch_calls_sync_waits_for_analysis_like_fetch_calls() -> None:
    # wait=/ready=/poll= went on to Client(...): a TypeError, not a wait.
    fast = asyncvox.PollPolicy(first=0.02, cap=0.05)
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        server.script_analysis("up", statuses=[("queued", 0), ("completed", 0.05)])
        outcomes = asyncvox.fetch_calls_sync(
            ["up", "done"], api_key=KEY, base_url=server.base_url, wait=10, poll=fast
        )
        assert server.stats.requests_for("up") >= 2
    assert [o.call_id for o in outcomes] == ["up", "done"]
    assert all(o.call is not None and o.call.status == "completed" for o in outcomes)
