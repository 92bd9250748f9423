"""The fleet's news, pushed: a Redis pub/sub channel every process listens on.

The scripts (:mod:`asyncvox._fleet_scripts`) publish when the fleet's pace is cut (or
first set) and when a fleet-wide pause begins. Without this, a process hears of either
only at its next sync or lease, up to ``sync_interval`` later, and a window's limiter
refuses everything it starts meanwhile (measured: most of a fleet's refusals on a fixed
window came in those gaps). The channel only makes the news faster: syncs and leases stay
the source of truth, so a lost message, a listener that fails or a Redis without pub/sub
changes nothing but speed.

A message is ASCII, ``"<kind> <now_us> <a> <b>"``: ``cut <now> <rate x 1000> <pace x 1000>``
or ``pause <now> <until_us> 0``, times on the Redis server's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["FleetNews", "Listener", "parse"]

logger = logging.getLogger("asyncvox")

#: Seconds one read of the channel waits (also how soon a stop is noticed).
_READ = 0.5


class FleetNews(NamedTuple):
    """One message from the channel."""

    #: ``"cut"`` (the pace changed) or ``"pause"`` (a fleet-wide pause began)
    kind: str
    #: the Redis server's clock when it was published (µs)
    now_us: int
    #: ``cut``: the estimate x 1000; ``pause``: when the pause ends (µs)
    a: int
    #: ``cut``: the pace x 1000
    b: int


def parse(data: object) -> FleetNews | None:
    """A message's payload, or ``None`` for anything that is not one of ours."""
    if not isinstance(data, bytes | str):
        return None
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    parts = text.split()
    if len(parts) != 4 or parts[0] not in ("cut", "pause"):
        return None
    try:
        now_us, a, b = (int(p) for p in parts[1:])
    except ValueError:
        return None
    return FleetNews(parts[0], now_us, a, b)


class Listener:
    """Listens on ``channel`` through its own connection (a subscribed connection can do
    nothing else) and hands each message to ``on_news``. Best effort: on any fault it
    stops; :meth:`ensure` starts it again (the link calls it after each good sync)."""

    def __init__(
        self, url: str, channel: str, connect_timeout: float, on_news: Callable[[FleetNews], None]
    ) -> None:
        self._url = url
        self._channel = channel
        self._connect_timeout = connect_timeout
        self._on_news = on_news
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Set once the channel is subscribed (news published before may be missed).
        self.subscribed = asyncio.Event()

    @property
    def listening(self) -> bool:
        """Whether the listener runs."""
        return self._task is not None and not self._task.done()

    def ensure(self) -> None:
        """Start listening unless already (inside the running loop)."""
        if not self.listening and not self._stopping:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="asyncvox-fleet-news")

    async def aclose(self) -> None:
        """Stop listening and close the connection (within about a second)."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            # redis-py's get_message can hold a cancellation until its read times out
            # (seen: swallow it, and the loop went on for ever): the flag ends the loop
            # at its next read, and closing never waits on it for longer than that.
            await asyncio.wait([task], timeout=2 * _READ)

    async def _listen(self) -> None:
        import redis.asyncio as aioredis

        # No socket_timeout: a quiet channel is normal, and reads wait on get_message's own.
        client: Any = aioredis.Redis.from_url(
            self._url, socket_connect_timeout=self._connect_timeout, decode_responses=False
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            self.subscribed.set()
            while not self._stopping:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_READ)
                if message is None or message.get("type") != "message":
                    continue
                news = parse(message.get("data"))
                if news is not None:
                    self._on_news(news)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the link's syncs notice and report real faults
            logger.debug("asyncvox fleet: the news channel stopped (%s)", type(exc).__name__)
        finally:
            self.subscribed.clear()
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()
