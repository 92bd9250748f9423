"""A rate-limited remote API: does a batch finish close to N/R, with few 429s and no id lost?

The loopback server (its own process) adds 50-150 ms of latency to every answer and allows
R requests per second, answering 429 with ``Retry-After`` beyond that. The same N ids go
through, each in a fresh process:

* ``asyncvox`` - ``iter_calls`` with no knowledge of R (the governor learns it from 429s);
* ``asyncvox+rate_limit`` - ``Client(rate_limit=R)``, for when you know the quota;
* ``stainless-style`` - what generated SDKs do: a semaphore + ``asyncio.gather`` over all
  ids, 2 retries with 0.5-8 s exponential backoff, honouring ``Retry-After`` up to 60 s.

Reported: completion time / (N/R) (1.0 is perfect), the share of requests that got 429,
and ids lost (no call and not reported not-found). Written to
``benchmarks/results/ratelimit.md`` (and ``.json``); about half a minute with the defaults.

    python benchmarks/bench_ratelimit.py [--n 1000] [--rps 100] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, Server, emit, machine_info, machine_markdown, run_contender, write_report


async def _asyncvox(base: str, ids: list[str], concurrency: int, rate_limit: float | None) -> dict[str, Any]:
    import asyncvox

    async with asyncvox.Client(API_KEY, base, concurrency=concurrency, rate_limit=rate_limit) as client:
        stream = client.iter_calls(ids)
        async with stream:
            async for _ in stream:
                pass
        s = stream.stats
    return {
        "requests": s.requests,
        "r429": s.statuses.get(429, 0),
        "ok": s.found + s.missing,
        "lost": s.failed,
    }


async def _stainless(base: str, ids: list[str], concurrency: int) -> dict[str, Any]:
    import aiohttp

    counts = {"requests": 0, "r429": 0}
    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def one(session: aiohttp.ClientSession, call_id: str) -> bool:
        for attempt in range(3):  # the first try and 2 retries
            async with sem:
                counts["requests"] += 1
                try:
                    async with session.get(f"{base}/calls/{call_id}", headers=headers) as resp:
                        await resp.read()
                        status, retry_after = resp.status, resp.headers.get("Retry-After")
                except aiohttp.ClientError:
                    status, retry_after = 0, None
            if status in (200, 404):
                return True
            if status == 429:
                counts["r429"] += 1
            if attempt == 2:
                break
            wait = None
            if retry_after is not None:
                try:
                    wait = float(retry_after)
                except ValueError:
                    wait = None
            if wait is None or not 0 < wait <= 60:
                wait = min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())
            await asyncio.sleep(wait)
        return False

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        results = await asyncio.gather(*(one(session, i) for i in ids), return_exceptions=True)
    ok = sum(1 for r in results if r is True)
    return {**counts, "ok": ok, "lost": len(ids) - ok}


def child(args: argparse.Namespace) -> None:
    ids = [f"rl-{i:06d}" for i in range(args.n)]
    t0 = time.perf_counter()
    if args.contender == "stainless-style":
        result = asyncio.run(_stainless(args.base, ids, args.concurrency))
    else:
        limit = args.rps if args.contender == "asyncvox+rate_limit" else None
        result = asyncio.run(_asyncvox(args.base, ids, args.concurrency, limit))
    result["wall_s"] = time.perf_counter() - t0
    emit(result)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rps", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--contender")
    parser.add_argument("--base")
    args = parser.parse_args()
    if args.contender:
        child(args)
        return
    contenders = ["asyncvox", "asyncvox+rate_limit", "stainless-style"]
    rows = []
    results: dict[str, dict[str, Any]] = {}
    server_args = ["--turns", "6", "--latency", "0.05", "0.15", "--rps-limit", str(args.rps)]
    ideal = args.n / args.rps
    for name in contenders:
        # A fresh server per contender: its rate window starts empty for everyone.
        with Server(server_args) as server:
            result = run_contender(
                [
                    __file__,
                    "--contender",
                    name,
                    "--base",
                    server.base_url,
                    "--n",
                    str(args.n),
                    "--rps",
                    str(args.rps),
                    "--concurrency",
                    str(args.concurrency),
                ],
                server=server,
            )
        result["time_over_ideal"] = result["wall_s"] / ideal
        results[name] = result
        rows.append(
            f"| {name} | {result['wall_s']:.1f} | {result['wall_s'] / ideal:.2f} | "
            f"{result['requests']} | {100 * result['r429'] / max(1, result['requests']):.1f}% | "
            f"{result['lost']} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            f"N = {args.n} ids, server limit R = {args.rps:g} req/s (ideal N/R = {ideal:.1f} s), "
            f"latency 50-150 ms, concurrency {args.concurrency}",
            "",
            "| client | time (s) | time / (N/R) | requests | got 429 | ids lost |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    command = shlex.join(["python", "benchmarks/bench_ratelimit.py", *sys.argv[1:]])
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = (
        f"# Rate-limited remote simulation\n\n- date: {date}\n- command: `{command}`\n"
        f"- server: `{server.command}` (a fresh one per client)\n{machine_markdown()}\n\n{table}\n"
    )
    data = {
        "date": date,
        "command": command,
        "machine": machine_info(),
        "n": args.n,
        "rps": args.rps,
        "ideal_s": ideal,
        "results": results,
    }
    write_report("ratelimit", report, data)
    print(table)


if __name__ == "__main__":
    main()
