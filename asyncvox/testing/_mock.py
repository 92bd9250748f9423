"""A transport with no sockets, after httpx's ``MockTransport``: a function answers each GET.

For unit tests of the layers above the transport (governor, retries, bulk scheduling)
that need exact control of every answer and no event-loop I/O::

    def answer(url: str) -> asyncvox.Response:
        return asyncvox.Response(200, envelope({"id": url.rsplit("/", 1)[-1]}))

    client = asyncvox.Client("key", "http://api.test/v1", transport=MockTransport(answer))

The handler may be sync or async, and may raise :class:`~asyncvox.APIConnectionError` or
:class:`~asyncvox.APITimeoutError` to stand for a dropped connection or a timeout.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from ..errors import ConfigurationError
from ..transport import Response

__all__ = ["MockTransport"]

Handler = Callable[[str], Response | Awaitable[Response]]


class MockTransport:
    """A :class:`~asyncvox.Transport` whose answers come from ``handler(url)``.

    Attributes:
        requests: every URL asked for, in order (the call id is its last, encoded, part).
        time_limits: the ``time_limit`` of each request (``None``: the default timeout).
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[str] = []
        self.time_limits: list[float | None] = []
        self.closed = False

    async def get(self, url: str, time_limit: float | None = None) -> Response:
        """Record the request and return the handler's answer."""
        if self.closed:
            raise ConfigurationError("this MockTransport is closed")
        self.requests.append(url)
        self.time_limits.append(time_limit)
        answer = self.handler(url)
        if inspect.isawaitable(answer):
            return await answer
        return answer

    async def aclose(self) -> None:
        """Mark the transport closed."""
        self.closed = True
