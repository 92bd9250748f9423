"""Blocking entry points for scripts and notebooks.

``asyncio.run()`` fails inside a running event loop (a Jupyter cell, an async framework's
sync callback). These functions work in both places: with no loop running they use
``asyncio.run``; with one running in this thread they run their own loop in a worker
thread and block until it is done. In a notebook, prefer top-level ``await`` with a
:class:`~asyncvox.Client` when you can: it does not block the notebook's loop.

>>> outcomes = asyncvox.fetch_calls_sync(["call-1", "call-2"])  # doctest: +SKIP
>>> call = asyncvox.get_call_sync("call-1")                      # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from .client import Client
from .models import Call
from .outcomes import FetchOutcome
from .waiting import PollPolicy, ReadyPredicate

__all__ = ["fetch_calls_sync", "get_call_sync"]

T = TypeVar("T")


def _run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    running: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]]
    running = concurrent.futures.Future()

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        running.set_result((asyncio.get_running_loop(), task))
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asyncvox-sync") as pool:
        done = pool.submit(lambda: asyncio.run(main()))
        try:
            return done.result()
        except BaseException:
            # Interrupted while blocked (Ctrl-C in a notebook): stop the work in the thread
            # as asyncio.run stops it on Ctrl-C; leaving the pool would wait for its end.
            if not done.done():
                loop, task = running.result()  # set as soon as the thread runs main()
                with contextlib.suppress(RuntimeError):  # its loop closed just now
                    loop.call_soon_threadsafe(task.cancel)
            raise


def get_call_sync(
    call_id: str, *, api_key: str | None = None, base_url: str | None = None, **client_kwargs: Any
) -> Call | None:
    """Blocking :meth:`Client.get_call` with a client of its own (closed before returning)."""

    async def run() -> Call | None:
        async with Client(api_key, base_url, **client_kwargs) as client:
            return await client.get_call(call_id)

    return _run_blocking(run)


def fetch_calls_sync(
    ids: Iterable[str],
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    concurrency: int | None = None,
    dedupe: bool = True,
    wait: float | None = None,
    ready: ReadyPredicate | None = None,
    poll: PollPolicy | None = None,
    **client_kwargs: Any,
) -> list[FetchOutcome]:
    """Blocking :meth:`Client.fetch_calls`: one outcome per distinct id, in input order
    (``wait=``, ``ready=`` and ``poll=`` wait for each call's analysis, as there)."""

    async def run() -> list[FetchOutcome]:
        kwargs = dict(client_kwargs)
        if concurrency is not None:
            kwargs["concurrency"] = concurrency
        async with Client(api_key, base_url, **kwargs) as client:
            return await client.fetch_calls(ids, dedupe=dedupe, wait=wait, ready=ready, poll=poll)

    return _run_blocking(run)
