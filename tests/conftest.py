"""Shared fixtures: a real loopback server per test, and a client pointed at it.

Retry waits are switched off (``asyncvox.set_testing``) for every test unless it is
marked ``real_waits``: attempt counts and decisions stay exactly as in production.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest
from _fleet import RedisServer

import asyncvox
from asyncvox.testing import DemoServer

API_KEY = "test-key-0123456789"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_waits: keep retry and pause waits real (not zeroed)")


@pytest.fixture(autouse=True)
def _no_retry_waits(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("real_waits"):
        yield
        return
    with asyncvox.set_testing(True):
        yield


@pytest.fixture
async def server() -> AsyncIterator[DemoServer]:
    """A loopback call API with small synthetic calls (8 turns) so tests stay fast."""
    async with DemoServer(api_key=API_KEY, turns=8) as srv:
        yield srv


@pytest.fixture
async def client(server: DemoServer) -> AsyncIterator[asyncvox.Client]:
    async with asyncvox.Client(API_KEY, server.base_url) as c:
        yield c


@pytest.fixture
def redis_server(tmp_path: pathlib.Path) -> Iterator[RedisServer]:
    """A real redis-server on a free 127.0.0.1 port, no persistence; killed afterwards."""
    srv = RedisServer(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()
