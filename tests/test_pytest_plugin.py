"""The ``asyncvox_server`` fixture that asyncvox registers for users' own test suites."""

from __future__ import annotations

import asyncvox
from asyncvox.testing import DemoServer


async def test_the_fixture_serves_the_api_to_async_tests(asyncvox_server: DemoServer) -> None:
    asyncvox_server.add_missing("gone")
    async with asyncvox.Client("test-key", asyncvox_server.base_url) as client:
        call = await client.get_call("user-test-1")
        assert call is not None and call.customer_call_id == "user-test-1"
        assert await client.get_call("gone") is None
    assert asyncvox_server.stats.requests == 2


def test_the_fixture_serves_sync_code_too(asyncvox_server: DemoServer) -> None:
    call = asyncvox.get_call_sync("user-test-2", api_key="test-key", base_url=asyncvox_server.base_url)
    assert call is not None and call.customer_call_id == "user-test-2"
