"""What a closing client ends at once: the governor's waiters and the calls' sleeps.

Nothing else would wake them: a request waiting behind a pause or a slow pace, or a retry
sleeping out a minute's ``Retry-After``, slept on until then only to find the transport
closed. :class:`Sleeps` is the sleeping half; :class:`Closed` is what the governor sets on
its waiters' futures; :func:`closed_error` is what the call gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .errors import ConfigurationError

__all__ = ["Closed", "Sleeps", "closed_error"]


class Closed(Exception):
    """Set on a waiting future when the client closes (never raised out of asyncvox)."""


def closed_error(call_id: str | None) -> ConfigurationError:
    """The error of a call that the client's close ended before it was sent (again)."""
    which = f"call {call_id!r}" if call_id is not None else "a call"
    error = ConfigurationError(f"this asyncvox.Client was closed while {which} waited to start")
    error.sent = False  # nothing was sent for it
    return error


class Sleeps:
    """:func:`asyncio.sleep`, ended by :meth:`close` for every sleeper at once."""

    def __init__(self) -> None:
        self.closed = False
        self._futures: set[asyncio.Future[None]] = set()
        self._listeners: set[Callable[[], None]] = set()

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` at :meth:`close` (something that waits on its own, such as a
        batch's poll schedule, wakes to see it); returns what stops listening."""
        self._listeners.add(callback)
        return lambda: self._listeners.discard(callback)

    async def sleep(self, seconds: float, call_id: str | None = None) -> None:
        """Sleep ``seconds``; raise :func:`closed_error` if closed before or meanwhile."""
        if self.closed:
            raise closed_error(call_id)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _wake, fut)
        self._futures.add(fut)
        try:
            await fut
        except Closed:
            raise closed_error(call_id) from None
        finally:
            timer.cancel()
            self._futures.discard(fut)

    def close(self) -> None:
        """End every sleep now, and every later one at once."""
        self.closed = True
        for fut in self._futures:
            if not fut.done():
                fut.set_exception(Closed())
        for callback in list(self._listeners):
            callback()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
