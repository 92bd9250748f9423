"""Run the loopback call API in its own process (for benchmarks and other tools).

    python -m asyncvox.testing --port 0 --body-pool 64

Prints the base URL as the first line of stdout, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from .server import DemoServer, FaultProfile


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asyncvox.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--turns", type=int, default=None, help="transcript length (default: varied)")
    parser.add_argument("--body-pool", type=int, default=None, help="serve from N pre-encoded bodies")
    parser.add_argument("--latency", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None)
    parser.add_argument("--rps-limit", type=float, default=None)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-5xx", type=float, default=0.0)
    parser.add_argument("--rate-drop", type=float, default=0.0)
    parser.add_argument("--missing-rate", type=float, default=0.0)
    parser.add_argument("--no-count-ids", action="store_true", help="do not keep per-id counters")
    args = parser.parse_args(argv)
    profile = FaultProfile(
        rate_429=args.rate_429,
        rate_5xx=args.rate_5xx,
        rate_drop=args.rate_drop,
        latency=tuple(args.latency) if args.latency else None,
        rps_limit=args.rps_limit,
        missing_rate=args.missing_rate,
        seed=args.seed,
    )
    server = DemoServer(
        api_key=args.api_key,
        seed=args.seed,
        profile=profile,
        body_pool=args.body_pool,
        turns=args.turns,
        count_ids=not args.no_count_ids,
        host=args.host,
        port=args.port,
    )

    async def run() -> None:
        await server.start()
        print(server.base_url, flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
