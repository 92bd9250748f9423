"""The blocking entry points work from plain code and from inside a running event loop."""

from __future__ import annotations

import asyncio
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
