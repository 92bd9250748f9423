"""Real components for the fleet tests: a ``redis-server`` on a free loopback port (no
persistence), and client processes that fetch a range of ids through one fleet.

A test that needs Redis fails, with the reason, when the server cannot start: never a skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import socket
import sys
from typing import Any

import redis

from asyncvox import testing

WORKER = pathlib.Path(__file__).with_name("_fleet_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer(testing.RedisServer):
    """The shared ``redis-server`` helper, plus a sync client and a dump for inspection."""

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def dump(self) -> list[tuple[bytes, int, bytes]]:
        """Every key, its TTL and its value (serialized), for inspection."""
        r = self.client()
        out = []
        for key in r.scan_iter(count=1000):
            out.append((key, int(r.ttl(key)), bytes(r.dump(key) or b"") + repr(_value(r, key)).encode()))
        r.close()
        return out


def _value(r: redis.Redis, key: bytes) -> Any:
    kind = r.type(key)
    if kind == b"hash":
        return r.hgetall(key)
    if kind == b"string":
        return r.get(key)
    return kind


async def run_workers(
    base_url: str, redis_url: str | None, n: int, ids_each: int, *extra: str
) -> list[dict[str, Any]]:
    """Run ``n`` client processes at once, each fetching its own ``ids_each`` ids; their reports."""
    procs = [await spawn(base_url, redis_url, f"w{i}", ids_each, *extra) for i in range(n)]
    return [await report(p) for p in procs]


async def spawn(
    base_url: str, redis_url: str | None, prefix: str, count: int, *extra: str
) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCVOX_")}
    env["PYTHONPATH"] = str(WORKER.parent.parent)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        base_url,
        redis_url or "-",
        prefix,
        str(count),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def report(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["log"] = err.decode()
    return result
