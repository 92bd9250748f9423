"""The streaming scheduler behind ``iter_calls`` / ``fetch_calls``: :class:`CallStream`.

A fixed set of worker tasks pulls ids lazily from the caller's (async) iterable, fetches
each through the client's shared request path, and hands the results (body and the call's
location, still undecoded) to the consumer over a bounded queue, so a slow consumer holds
the workers back and memory stays flat. The consumer's task decodes each call right
before yielding its :class:`FetchOutcome` (see :meth:`asyncvox.request.Fetched.outcome`).

* unordered: a queue of results of size ``workers`` (ids pulled ahead <= 2 x workers);
* ordered: each id gets a future, enqueued in input order *before* it is fetched, in a
  queue of ``2 x workers``, awaited in order: a slow head holds that window, not the input.

:class:`CallStream` is a thin handle over :class:`_Batch`; workers reference only the
batch, so dropping the stream cancels them at once (refcounting runs ``__del__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

from ._closing import closed_error
from ._input import END, PULLING, BatchInput
from .errors import (
    AsyncvoxError,
    AuthenticationError,
    ConfigurationError,
    EndpointNotFoundError,
    PermissionDeniedError,
)
from .outcomes import BatchStats, FetchOutcome
from .request import Fetched, Requester
from .waiting import PollSchedule, Waiting

__all__ = ["FATAL_ERRORS", "CallStream"]

#: Failures that doom every id of a batch: it stops and raises instead of reporting each id.
#: (An :class:`EndpointNotFoundError` only until the API has answered once: after that, a
#: non-API 404 is about that one id, e.g. a proxy refusing an encoded slash.)
FATAL_ERRORS = (AuthenticationError, PermissionDeniedError, EndpointNotFoundError, ConfigurationError)


class _Signal(enum.Enum):
    DONE = "done"  # the input is exhausted and every worker finished
    ABORTED = "aborted"  # the batch was stopped (a fatal error, or its consumer went away)


_DONE = _Signal.DONE
_ABORTED = _Signal.ABORTED

#: What the ordered window's futures resolve to.
_Slot = asyncio.Future[Fetched | _Signal]
#: What travels over the queue: a result (unordered; already decoded when a wait's
#: ``ready`` predicate needed the call), a slot (ordered), or a signal.
_Item = Fetched | FetchOutcome | _Slot | _Signal


class _Batch:
    """The engine of one batch: input, workers, output queue, stats and abort state."""

    def __init__(
        self,
        requester: Requester,
        ids: Any,
        workers: int,
        ordered: bool,
        dedupe: bool,
        waiting: Waiting | None = None,
    ) -> None:
        self.requester = requester
        self.ordered = ordered
        self.waiting = waiting
        total = len(ids) if hasattr(ids, "__len__") else None
        self.stats = BatchStats(total=total, governor=requester.governor)
        self.input = BatchInput(ids, dedupe, self.stats)
        self.schedule = PollSchedule(self.stats)
        self.unlisten: Callable[[], None] = lambda: None  # the close's listener (see start)
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=workers * 2 if ordered else workers)
        self.fatal: BaseException | None = None
        self.n_workers = workers
        self.running = workers
        self.tasks: list[asyncio.Task[None]] = []
        self.finished = False
        #: Ordered mode: the head slot being awaited (kept across a timed-out ``anext``).
        self.head: _Slot | None = None
        #: Whether the API itself has answered in this batch (a 200, or its own 404).
        self.api_answered = False
        self.busy = False
        self.watched: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        if self.waiting is not None:  # workers asleep till a poll is due wake at the client's close
            self.unlisten = self.requester.governor.on_close(self.schedule.notify)
        self.tasks = [
            asyncio.create_task(self._work(), name=f"asyncvox-worker-{i}") for i in range(self.n_workers)
        ]

    async def _work(self) -> None:
        try:
            if self.waiting is not None:
                await self._work_waiting(self.waiting)
            elif self.ordered:
                await self._work_ordered()
            else:
                await self._work_unordered()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a fatal error (or the input's BaseException): end the batch
            self.abort(exc)
            return
        self.running -= 1
        if self.running == 0 and self.fatal is None:
            await self.queue.put(_DONE)

    def _check_fatal(self, fetched: Fetched) -> None:
        """Raise the error of ``fetched`` if it dooms every id of the batch."""
        error = fetched.error
        if error is None:
            if not self.api_answered:
                self.api_answered = True
            return
        if isinstance(error, FATAL_ERRORS):
            if isinstance(error, EndpointNotFoundError) and self.api_answered:
                return  # the API answered before: this 404 is about this id only
            raise error

    async def _work_unordered(self) -> None:
        fetch = self.requester.fetch
        stats = self.stats
        queue = self.queue
        ids = self.input
        sync_ids = ids.sync
        while True:
            item: object
            if sync_ids is not None:
                # A plain iterator cannot be entered twice at once: no lock needed.
                try:
                    item = next(sync_ids, END)
                except Exception as exc:
                    item = ids.failed(exc)
                if item is END:
                    ids.exhausted = True
            else:
                async with ids.lock:
                    item = await ids.pull()
            if item is END:
                return
            admitted = ids.admit(item)
            if admitted is None:
                continue
            if type(admitted) is str:
                fetched = await fetch(admitted, stats)
                if fetched.error is not None or not self.api_answered:
                    self._check_fatal(fetched)
            else:
                assert isinstance(admitted, Fetched)
                fetched = admitted
            if queue.full():
                await queue.put(fetched)
            else:
                queue.put_nowait(fetched)  # what put() does with room, without its coroutine
            del fetched  # don't keep a body alive through the next request

    async def _work_ordered(self) -> None:
        fetch = self.requester.fetch
        stats = self.stats
        loop = asyncio.get_running_loop()
        ids = self.input
        while True:
            async with ids.lock:
                while True:
                    item = await ids.pull()
                    if item is END:
                        return
                    admitted = ids.admit(item)
                    if admitted is not None:
                        break
                slot: _Slot = loop.create_future()
                # Enqueued before the fetch, under the lock: queue order is input order.
                await self.queue.put(slot)
            if not isinstance(admitted, str):
                slot.set_result(admitted)
                continue
            try:
                fetched = await fetch(admitted, stats)
            finally:
                if not slot.done() and self.fatal is not None:
                    slot.set_result(_ABORTED)
            if slot.done():
                continue  # the batch was aborted meanwhile
            if fetched.error is not None or not self.api_answered:
                try:
                    self._check_fatal(fetched)
                except AsyncvoxError:
                    slot.set_result(_ABORTED)
                    raise
            slot.set_result(fetched)

    async def _work_waiting(self, waiting: Waiting) -> None:
        """Unordered, with polls: due polls first, then new ids, else wait for either."""
        fetch = self.requester.fetch
        total = self.requester.total_timeout
        stats = self.stats
        schedule = self.schedule
        ids = self.input
        governor = self.requester.governor
        while True:
            if governor.closed:
                raise closed_error(None)  # ends the batch: the client is gone
            now = time.monotonic()
            pending = schedule.pop_due(now)
            if pending is None:
                item = ids.take(schedule.notify)
                if item is END or item is PULLING:
                    if item is END and not schedule and not schedule.active:
                        schedule.notify()  # let the other idle workers see the end too
                        return
                    await schedule.wait(now)
                    continue
                admitted = ids.admit(item)
                if admitted is None:
                    continue
                if not isinstance(admitted, str):
                    await self.queue.put(admitted)
                    continue
                pending = waiting.start(admitted, now)  # taken with no wait since `now`
            schedule.active += 1
            try:
                limit = waiting.poll_timeout(pending, now, total)
                fetched = await fetch(pending.call_id, stats, total_timeout=limit)
            finally:
                schedule.active -= 1
            if fetched.error is not None or not self.api_answered:
                self._check_fatal(fetched)
            result = waiting.judge(pending, fetched, time.monotonic())
            if result is None:
                schedule.push(pending)
                continue
            schedule.notify()
            await self.queue.put(result)
            del fetched, result

    def abort(self, exc: BaseException) -> None:
        """Stop every worker and make the consumer raise ``exc`` next."""
        if self.fatal is None:
            self.fatal = exc
        self.cancel_workers()
        self._signal_consumer(_ABORTED)

    def _signal_consumer(self, signal: _Signal) -> None:
        """End what the consumer waits for, or will next, in :meth:`next` with ``signal``:
        the workers that would have resolved it are gone. Nothing queued is yielded after."""
        head = self.head
        if head is not None and not head.done():
            head.set_result(signal)
        queue = self.queue
        while not queue.empty():
            item = queue.get_nowait()
            if isinstance(item, asyncio.Future) and not item.done():
                item.set_result(signal)
        queue.put_nowait(signal)

    def cancel_workers(self) -> None:
        try:
            current = asyncio.current_task()
        except RuntimeError:  # no running loop: a stream dropped after its loop ended
            current = None
        for task in self.tasks:
            if task is not current and not task.done():
                task.cancel()
        self.input.cancel_pull()

    async def next(self) -> FetchOutcome:
        if self.finished:
            raise StopAsyncIteration
        if self.busy:
            raise RuntimeError(
                "anext(): this CallStream is already being awaited by another task; "
                "consume it from one task and fan its outcomes out yourself"
            )
        self.busy = True
        item: _Item
        try:
            head = self.head
            if head is None:
                queue = self.queue
                # What get() does with an item there, without its coroutine (the usual case
                # in bulk: the workers are ahead of the consumer).
                item = await queue.get() if queue.empty() else queue.get_nowait()
                if isinstance(item, asyncio.Future):
                    head = self.head = item
            if head is not None:
                if not head.done():
                    # asyncio.wait, unlike await, leaves the slot alone if we are cancelled:
                    # a timeout around anext() must not lose the head of the window.
                    await asyncio.wait((head,))
                item = head.result()
                self.head = None
        except asyncio.CancelledError:
            self._consumer_cancelled()
            raise
        finally:
            self.busy = False
        if isinstance(item, _Signal):
            await self.close()
            if self.fatal is not None:
                raise self.fatal
            if self.input.error is not None:
                raise self.input.error  # after every outcome fetched before it
            raise StopAsyncIteration
        if isinstance(item, Fetched):
            outcome = item.outcome()
        else:
            assert isinstance(item, FetchOutcome)
            outcome = item
        self.stats.record(outcome)
        return outcome

    def _consumer_cancelled(self) -> None:
        """A wait for the next outcome was cancelled: a timeout, or the consumer's end?

        A timeout (``asyncio.timeout``, or ``wait_for`` running ``anext()`` in a task of
        its own) lets the consumer carry on, so nothing is stopped now. The batch is
        aborted only if the consuming task itself ends cancelled while the stream is open.
        """
        task = asyncio.current_task()
        if task is None:
            self.cancel_workers()
            return
        coro = task.get_coro()
        if getattr(coro, "cr_code", None) is _ANEXT_CODE or type(coro) is _ANEXT_AWAITABLE:
            return  # a task that only awaited anext(): the real consumer lives on
        if task not in self.watched:
            self.watched.add(task)
            task.add_done_callback(self._consumer_ended)

    def _consumer_ended(self, task: asyncio.Task[Any]) -> None:
        self.watched.discard(task)
        if task.cancelled() and not self.finished and self.fatal is None:
            self.abort(AsyncvoxError("the stream was stopped: its consumer was cancelled"))

    async def close(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.unlisten()
        self.cancel_workers()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        # A consumer waiting in next() (closed from another task) ends now.
        self._signal_consumer(_DONE)
        if self.stats.stopped is None:
            self.stats.stopped = time.monotonic()
        try:
            await self.input.close()  # stopped early: the caller's generator is done with
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled
            # else a cleanup that cancelled a helper task and awaited it: not a cancellation
            # of anyone's, and no error of the batch's
        except Exception:
            if self.fatal is None:
                raise  # the caller's own cleanup failed: theirs to see
            # else the batch's own error is what the consumer raises next


class CallStream:
    """An async iterator of :class:`FetchOutcome`, one per distinct id.

    Returned by :meth:`Client.iter_calls`. Workers start on the first ``__anext__``.
    ``stats`` (a :class:`BatchStats`) is live while it runs.

    Stopping early: ``break`` out of the loop, ``await stream.aclose()``, leave an
    ``async with`` block, or cancel the consuming task; each cancels every in-flight
    request at once and leaves the client usable. ``aclose()`` (and so the ``async with``
    block) also closes the ids' generator if it was not used up, so its ``finally`` runs
    then rather than at garbage collection.

    Example::

        async with client.iter_calls(ids, ordered=True) as stream:
            async for outcome in stream:
                if outcome.error:
                    print("failed", outcome.call_id, outcome.error)
            print(stream.stats.summary())
    """

    def __init__(
        self,
        requester: Requester,
        ids: Iterable[Any] | AsyncIterable[Any],
        *,
        workers: int,
        ordered: bool = False,
        dedupe: bool = True,
        waiting: Waiting | None = None,
        before_start: Callable[[], object] = lambda: None,
    ) -> None:
        self._before_start = before_start
        self._batch = _Batch(requester, ids, workers, ordered, dedupe, waiting)
        self._started = False

    @property
    def stats(self) -> BatchStats:
        """Live counters of this batch."""
        return self._batch.stats

    def __aiter__(self) -> CallStream:
        return self

    async def __anext__(self) -> FetchOutcome:
        if not self._started:
            self._before_start()
            self._started = True
            self._batch.start()
        return await self._batch.next()

    async def aclose(self) -> None:
        """Stop the batch: cancel in-flight requests and wait until the workers are gone."""
        self._started = True
        await self._batch.close()

    async def __aenter__(self) -> CallStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        batch = getattr(self, "_batch", None)
        if batch is not None and not batch.finished:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                for task in batch.tasks:
                    if not task.done():
                        task.cancel()
                batch.input.cancel_pull()


_ANEXT_CODE = CallStream.__anext__.__code__


async def _no_ids() -> AsyncIterator[None]:
    yield None


#: What ``anext(stream, default)`` returns: not ``__anext__``'s coroutine but a wrapper of
#: it, which a task (``wait_for`` on 3.11, ``create_task``) runs as its coroutine.
_ANEXT_AWAITABLE = type(anext(_no_ids(), None))
