"""Fleet benchmark: several client processes on one api key's limit, with and without Redis.

    python benchmarks/bench_fleet.py [--rate 100] [--n 1200] [--report]

For each limiter shape (token bucket, fixed window; ``_shapes``) and fleet size (3 and 8
processes), the same ``n`` ids split over the processes are fetched three ways: each
process on its own governor ("alone"), sharing the limit through one ``redis-server``
("redis"), and sharing it while Redis is killed a third of the way in and restarted a
third later ("redis killed"). Reported: time / ideal (``_shapes.ideal``), % of requests
throttled, ids lost, Redis round trips per request, and the client processes' CPU per
request. Needs ``redis-server`` on PATH and ``asyncvox[redis]``. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY
from _shapes import Params, ideal, shape_named
from _shapes_server import ShapeServer

SHAPES = ("token-bucket-small", "fixed-window")
SIZES = (3, 8)
MODES = ("alone", "redis", "redis killed")


async def worker(base: str, redis_url: str, prefix: str, count: int) -> None:
    import asyncvox

    fleet = asyncvox.RedisFleet(redis_url, retry_interval=1.0) if redis_url != "-" else False
    async with asyncvox.Client(API_KEY, base, concurrency=16, fleet=fleet, max_retries=50) as client:
        outcomes = await client.fetch_calls([f"{prefix}-{i}" for i in range(count)])
        state = client.governor.fleet_state
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "ok": sum(o.error is None for o in outcomes),
                "requests": sum(o.attempts for o in outcomes),
                "throttles": client.governor.throttled,
                "round_trips": state.round_trips if state is not None else 0,
                "fallbacks": state.fallbacks if state is not None else 0,
                "cpu": usage.ru_utime + usage.ru_stime,
            }
        ),
        flush=True,
    )


class Redis:
    def __init__(self, port: int, workdir: str) -> None:
        self.port, self.workdir = port, workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            sys.exit("bench_fleet needs redis-server on PATH (apt-get install -y redis-server)")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        r = redis.Redis(port=self.port, socket_timeout=0.5)
        for _ in range(200):
            try:
                if r.ping():
                    r.close()
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        sys.exit("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


async def run_fleet(
    base: str, redis: Redis | None, procs: int, n: int, kill_at: float | None
) -> dict[str, Any]:
    url = f"redis://127.0.0.1:{redis.port}/0" if redis is not None else "-"
    each = n // procs
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCVOX_")}
    t0 = time.monotonic()
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            base,
            url,
            f"p{i}",
            str(each),
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for i in range(procs)
    ]
    if kill_at is not None and redis is not None:
        await asyncio.sleep(kill_at)
        redis.kill()
        await asyncio.sleep(kill_at)
        redis.start()
    reports = [json.loads((await c.communicate())[0].decode().splitlines()[-1]) for c in children]
    elapsed = time.monotonic() - t0
    requests = sum(r["requests"] for r in reports)
    return {
        "elapsed": elapsed,
        "lost": each * procs - sum(r["ok"] for r in reports),
        "throttled": sum(r["throttles"] for r in reports) / requests,
        "rt_per_request": sum(r["round_trips"] for r in reports) / requests,
        "cpu_us_per_request": 1e6 * sum(r["cpu"] for r in reports) / requests,
        "fallbacks": sum(r["fallbacks"] for r in reports),
    }


async def main(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        redis = Redis(port, tmp)
        for shape_name in SHAPES:
            shape = shape_named(shape_name)
            for procs in SIZES:
                params = Params(args.n, args.rate, 16 * procs)
                best = ideal(shape, params)
                for mode in MODES:
                    with ShapeServer(shape_name, params) as server:
                        if mode != "alone":
                            redis.start()
                        kill_at = best / 3 if mode == "redis killed" else None
                        try:
                            res = await run_fleet(
                                server.base_url, redis if mode != "alone" else None, procs, args.n, kill_at
                            )
                        finally:
                            redis.kill()
                    res.update(shape=shape_name, procs=procs, mode=mode, ratio=res["elapsed"] / best)
                    rows.append(res)
                    print(json.dumps(res), flush=True)
    table = [
        "| shape | processes | mode | time / ideal | throttled | ids lost | Redis round trips / request "
        "| client CPU µs / request | fallbacks |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        table.append(
            f"| {r['shape']} | {r['procs']} | {r['mode']} | {r['ratio']:.2f}x | {100 * r['throttled']:.1f}% "
            f"| {r['lost']} | {r['rt_per_request']:.3f} | {r['cpu_us_per_request']:.0f} | {r['fallbacks']} |"
        )
    text = "\n".join(table)
    print(text)
    if args.report:
        _write_report(args, text)


def _write_report(args: argparse.Namespace, text: str) -> None:
    out = Path(__file__).resolve().parent / "results" / "fleet.md"
    out.write_text(
        "# Fleet: several processes on one key's limit\n\n"
        f"`python benchmarks/bench_fleet.py --rate {args.rate:g} --n {args.n} --report`: "
        f"{args.n} ids split over the processes, limit {args.rate:g}/s, concurrency 16 per process; "
        '"redis killed": Redis killed at a third of the ideal time, restarted a third later.\n\n'
        + text
        + "\n"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
        sys.exit(0)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--n", type=int, default=1200)
    parser.add_argument("--report", action="store_true", help="write benchmarks/results/fleet.md")
    asyncio.run(main(parser.parse_args()))
