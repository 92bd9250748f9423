"""A batch's input: the caller's ids, pulled lazily, checked, de-duplicated, and closed.

:class:`BatchInput` is what :mod:`asyncvox.stream`'s workers pull from. A plain iterator
is pulled without a lock (it cannot be entered twice at once); an async one under
:attr:`BatchInput.lock`. When the batch stops before the input is used up, the input's
iterator is closed (``aclose()`` / ``close()``, as ``async for`` would leave it to
garbage collection): a generator reading a database cursor or a file releases it then,
not at some later collection.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from .errors import InvalidCallIdError
from .outcomes import BatchStats
from .request import Fetched, call_id_problem

__all__ = ["END", "PULLING", "BatchInput", "noting_order"]


class _End(enum.Enum):
    END = "end"
    PULLING = "pulling"


#: What a pull returns once the input is used up.
END = _End.END
#: What :meth:`BatchInput.take` returns while an async input's next item is on its way.
PULLING = _End.PULLING


class BatchInput:
    """The ids of one batch (see the module doc)."""

    def __init__(self, ids: Any, dedupe: bool, stats: BatchStats) -> None:
        self.seen: set[str] | None = set() if dedupe else None
        #: The caller's plain iterator, pulled with ``next(sync, END)`` (or ``None``).
        self.sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        if isinstance(ids, AsyncIterable):
            self._async = aiter(ids)
        elif isinstance(ids, Iterable) and not isinstance(ids, str | bytes):
            self.sync = iter(ids)
        else:
            raise TypeError(f"ids must be an iterable or async iterable of str, got {type(ids).__name__}")
        #: Held while an async input is being pulled.
        self.lock = asyncio.Lock()
        #: The waiting path's pull of an async input, in a task of its own (see :meth:`take`).
        self._pulling: asyncio.Task[object] | None = None
        #: Whether :meth:`pull` saw the end (a plain iterator pulled directly never says).
        self.exhausted = False
        #: The input's own error, once its iterator raised: the input ends there, what the
        #: batch fetched is delivered, and then the consumer gets this.
        self.error: Exception | None = None
        self._stats = stats

    async def pull(self) -> object:
        """The next raw item of the input, or :data:`END`."""
        if self.exhausted:
            return END
        item: object
        try:
            if self.sync is not None:
                item = next(self.sync, END)
            else:
                assert self._async is not None
                try:
                    item = await anext(self._async)
                except StopAsyncIteration:
                    item = END
        except Exception as exc:
            return self.failed(exc)
        if item is END:
            self.exhausted = True
        return item

    def failed(self, exc: Exception) -> object:
        """The input's iterator raised ``exc``: it ends here (:data:`END`), and the batch
        raises ``exc`` once what it fetched is delivered (the first error, if several)."""
        if self.error is None:
            self.error = exc
        self.exhausted = True
        return END

    def take(self, wake: Callable[[], None]) -> object:
        """The next raw item without waiting (the waiting path): an item, :data:`END`, or
        :data:`PULLING` while an async input's next item is pulled in a task of its own,
        ``wake()`` being called once it is there. A worker waiting on a slow input would
        hold back every poll due meanwhile (all of them, with one worker)."""
        pulling = self._pulling
        if pulling is not None:
            if not pulling.done():
                return PULLING
            self._pulling = None
            return pulling.result()  # the input's own error, if it raised
        if self.exhausted:
            return END
        if self.sync is not None:
            try:
                item = next(self.sync, END)  # a plain iterator gives its next item at once
            except Exception as exc:
                return self.failed(exc)
            if item is END:
                self.exhausted = True
            return item
        self._pulling = asyncio.create_task(self._locked_pull(), name="asyncvox-input")
        self._pulling.add_done_callback(lambda _: wake())
        return PULLING

    async def _locked_pull(self) -> object:
        async with self.lock:
            return await self.pull()

    def cancel_pull(self) -> None:
        """Cancel :meth:`take`'s pull, if one is running (the batch is stopping)."""
        if self._pulling is not None:
            self._pulling.cancel()

    def admit(self, item: object) -> Fetched | str | None:
        """A sendable id, a ready result for a bad one, or ``None`` for a duplicate."""
        problem = call_id_problem(item)
        if problem is not None:
            name = item if isinstance(item, str) else repr(item)
            return Fetched(name, 0, InvalidCallIdError(problem))
        assert isinstance(item, str)
        if type(item) is not str:
            # A str subclass (a StrEnum member, numpy.str_): the workers tell an id from a
            # ready result by ``type(...) is str``, and an outcome names a plain str.
            item = str.__str__(item)
        seen = self.seen
        if seen is not None:
            if item in seen:
                self._stats.duplicates += 1
                return None
            seen.add(item)
        return item

    async def close(self) -> None:
        """Close the input's iterator if it has a ``close``/``aclose`` (a generator) and
        was not used up; once. Call it with no pull running (the workers gone) but
        :meth:`take`'s, which is cancelled first."""
        pulling, self._pulling = self._pulling, None
        if pulling is not None:
            pulling.cancel()
            await asyncio.wait((pulling,))
            if not pulling.cancelled():
                pulling.exception()  # seen: the batch's error, if any, is reported already
        if self.exhausted:
            return
        self.exhausted = True
        if self._async is not None:
            aclose = getattr(self._async, "aclose", None)
            if aclose is not None:
                await aclose()
        else:
            close = getattr(self.sync, "close", None)
            if close is not None:
                close()


def noting_order(ids: Any, order: dict[str, list[int]]) -> Any:
    """``ids`` as given (``fetch_calls``), noting the input positions of each one's
    appearances in ``order`` (non-str items under their ``repr``, as their outcomes name
    them): without dedupe, every occurrence has a place of its own."""
    positions = itertools.count()

    def note(item: object) -> None:
        key = item if isinstance(item, str) else repr(item)
        order.setdefault(key, []).append(next(positions))

    if isinstance(ids, str | bytes) or not isinstance(ids, Iterable | AsyncIterable):
        return ids  # not an iterable of ids: CallStream says so
    # Closing a tap closes the caller's iterator too (a loop would not): a batch stopped
    # early closes its input (see CallStream), which must reach the caller's generator.
    if isinstance(ids, AsyncIterable):
        source = aiter(ids)

        async def tap_async() -> AsyncIterator[Any]:
            try:
                async for item in source:
                    note(item)
                    yield item
            finally:
                if hasattr(source, "aclose"):
                    await source.aclose()

        return tap_async()
    plain = iter(ids)

    def tap() -> Iterator[Any]:
        try:
            for item in plain:
                note(item)
                yield item
        finally:
            if hasattr(plain, "close"):
                plain.close()

    return tap()
