"""One fleet member for the tests: ``_fleet_worker.py BASE REDIS|- PREFIX COUNT [hold]``.

Fetches ids PREFIX-0 .. PREFIX-(COUNT-1) through a Client on the fleet (or alone, with
``-``) and prints one JSON line: outcomes, the client's view of the fleet. With ``hold``
it prints ``ready`` once the fleet is paced and then waits to be killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import asyncvox

API_KEY = "test-key-0123456789"


async def main() -> None:
    base, redis_url, prefix, count = sys.argv[1:5]
    hold = sys.argv[5:] == ["hold"]
    fleet: asyncvox.RedisFleet | bool = (
        asyncvox.RedisFleet(redis_url, retry_interval=0.2, sync_interval=0.1) if redis_url != "-" else False
    )
    async with asyncvox.Client(API_KEY, base, concurrency=16, fleet=fleet, max_retries=50) as client:
        ids = [f"{prefix}-{i}" for i in range(int(count))]
        if os.environ.get("FLEET_TRACE"):
            asyncio.get_running_loop().create_task(_trace(client))
        outcomes = await client.fetch_calls(ids)
        gov = client.governor
        state = gov.fleet_state
        result = {
            "found": sum(o.call is not None for o in outcomes),
            "failed": [o.call_id for o in outcomes if o.error is not None],
            "requests": sum(o.attempts for o in outcomes),
            "throttles": gov.throttled,
            "fleet": state._asdict() if state is not None else None,
        }
        print(json.dumps(result), flush=True)
        if hold:
            await asyncio.Event().wait()


async def _trace(client: asyncvox.Client) -> None:
    t0 = time.monotonic()
    while True:
        g = client.governor
        print(f"{time.monotonic() - t0:.2f} {g.state} {g.fleet_state}", file=sys.stderr, flush=True)
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main())
