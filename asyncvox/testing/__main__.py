"""Run the loopback call API in its own process (for benchmarks and other tools).

    python -m asyncvox.testing --port 0 --body-pool 64
    python -m asyncvox.testing --port 8787 --analysis-delay 2:30 --rate-slow 0.05

Prints the base URL as the first line of stdout, then serves until interrupted.
``--analysis-delay MIN:MAX`` makes each call take MIN-MAX seconds from its first request
before it is found (the API's 404 until then), as uploaded calls do on the real server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from ._options import add_server_arguments, server_from_args


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default: the command line) and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncvox.testing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_server_arguments(parser)
    server = server_from_args(parser.parse_args(argv))

    async def run() -> None:
        await server.start()
        print(server.base_url, flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
