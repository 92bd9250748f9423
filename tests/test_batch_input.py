"""A batch that stops early closes the caller's id generator then, not at garbage
collection: its ``finally`` (a cursor, a file, a subscription) runs before ``aclose()``
/ the ``async with`` block / ``fetch_calls`` returns. A batch that used its input up
leaves it alone. (Each test keeps a reference to its generator, so only the batch can
have closed it.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from conftest import API_KEY

import asyncvox
from asyncvox.testing import DemoServer


class Tracked:
    """A generator of ids that records how far it got and whether its cleanup ran."""

    def __init__(self, n: int, *, cleanup_fails: bool = False) -> None:
        self.n = n
        self.pulled = 0
        self.cleaned = 0
        self.cleanup_fails = cleanup_fails

    async def agen(self) -> AsyncIterator[str]:
        try:
            with contextlib.closing(self.gen()) as ids:
                for call_id in ids:
                    yield call_id
        finally:
            if self.cleanup_fails:
                raise OSError("the caller's cursor would not close")

    def gen(self) -> Iterator[str]:
        try:
            for i in range(self.n):
                self.pulled += 1
                yield f"id-{i}"
        finally:
            self.cleaned += 1


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_breaking_out_closes_the_generator(client: asyncvox.Client, ordered: bool, kind: str) -> None:
    ids = Tracked(10_000)
    source = ids.agen() if kind == "async" else ids.gen()
    got = 0
    async with client.iter_calls(source, ordered=ordered) as stream:
        async for _ in stream:
            got += 1
            if got == 5:
                break
        assert ids.cleaned == 0  # still open while the block runs: the stream may go on
    assert ids.cleaned == 1
    assert ids.pulled < 10_000  # lazy: only what the workers pulled ahead
    del source


async def test_aclose_closes_it_too_and_only_once(client: asyncvox.Client) -> None:
    ids = Tracked(10_000)
    source = ids.agen()
    stream = client.iter_calls(source)
    await anext(stream)
    await stream.aclose()
    await stream.aclose()
    assert ids.cleaned == 1
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    del source


async def test_an_input_used_up_is_not_touched_again(client: asyncvox.Client) -> None:
    ids = Tracked(20)
    source = ids.agen()
    outcomes = await client.fetch_calls(source)
    assert len(outcomes) == 20 and ids.pulled == 20
    assert ids.cleaned == 1  # its own end ran the finally; nothing ran it twice
    del source


async def test_a_batch_ended_by_a_fatal_error_closes_it_and_raises_that_error(server: DemoServer) -> None:
    ids = Tracked(10_000, cleanup_fails=True)  # a failing cleanup must not hide the 401
    source = ids.agen()
    server.script("id-3", [401])
    async with asyncvox.Client(API_KEY, server.base_url, concurrency=2) as client:
        with pytest.raises(asyncvox.AuthenticationError):
            await client.fetch_calls(source)
    assert ids.cleaned == 1
    del source


async def test_a_failing_cleanup_on_an_early_close_is_the_callers_to_see(client: asyncvox.Client) -> None:
    ids = Tracked(10_000, cleanup_fails=True)
    source = ids.agen()
    stream = client.iter_calls(source)
    await anext(stream)
    with pytest.raises(OSError, match="would not close"):
        await stream.aclose()
    assert ids.cleaned == 1
    assert client.governor.in_flight == 0  # the workers were gone before the cleanup ran
    del source


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_fetch_calls_waiting_closes_it_on_a_fatal_error_too(server: DemoServer, kind: str) -> None:
    ids = Tracked(10_000)
    source = ids.agen() if kind == "async" else ids.gen()
    server.script("id-3", [401])
    async with asyncvox.Client(API_KEY, server.base_url, concurrency=2) as client:
        with pytest.raises(asyncvox.AuthenticationError):
            await client.fetch_calls(source, wait=5)
    assert ids.cleaned == 1
    del source


async def test_a_cleanup_that_cancels_its_own_helper_hides_nothing(server: DemoServer) -> None:
    """A generator whose ``finally`` cancels a helper task and awaits it raises
    CancelledError out of its cleanup: the batch's 401 is what the caller sees, and the
    caller's task is not left cancelled."""
    helper_done = asyncio.Event()

    async def ids() -> AsyncIterator[str]:
        helper = asyncio.create_task(helper_done.wait())
        try:
            for i in range(10_000):
                yield f"id-{i}"
        finally:
            helper.cancel()
            await helper

    server.script("id-3", [401])
    source = ids()
    async with asyncvox.Client(API_KEY, server.base_url, concurrency=2) as client:
        with pytest.raises(asyncvox.AuthenticationError):
            await client.fetch_calls(source)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        assert await client.get_call("after") is not None
    del source
