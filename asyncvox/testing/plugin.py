"""The ``asyncvox_server`` pytest fixture, registered through the ``pytest11`` entry point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import DemoServer


@pytest.fixture
def asyncvox_server() -> Iterator[DemoServer]:
    """A :class:`DemoServer` on 127.0.0.1 (key ``"test-key"``), serving from a background thread.

    Example::

        async def test_my_code(asyncvox_server):
            async with asyncvox.Client("test-key", asyncvox_server.base_url) as client:
                assert await client.get_call("any-id") is not None
    """
    with DemoServer().running_in_thread() as server:
        yield server
