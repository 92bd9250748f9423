"""Fetch a few calls from the built-in loopback server: no account, no network.

    python examples/quickstart.py
"""

import asyncio

import asyncvox
from asyncvox.testing import DemoServer


async def main() -> None:
    async with DemoServer(api_key="demo-key") as server:  # a real HTTP server on 127.0.0.1
        server.add_missing("no-such-call")
        async with asyncvox.Client("demo-key", server.base_url) as client:
            call = await client.get_call("booking-123")
            assert call is not None
            print(f"{call.customer_call_id}: {call.status}, {call.duration:.0f} s, "
                  f"latency p50 {call.latency_p50} s, {len(call.messages or [])} messages")
            print("missing call ->", await client.get_call("no-such-call"))

            ids = [f"call-{i}" for i in range(500)]
            async with client.iter_calls(ids) as stream:
                async for _outcome in stream:
                    pass
                print("batch:", stream.stats.summary())


if __name__ == "__main__":
    asyncio.run(main())
