"""Remote APIs with limits of every shape: does a batch finish close to ideal, few refused, none lost?

Each server is a loopback process shaped like a real limiter (``_shapes.py``: token buckets
with small and large bursts, fixed and sliding windows, with and without ``Retry-After``,
503 as the throttle signal, a cap on requests in flight, a quota cut to a quarter
mid-run, a generous limit, no limiter but a queue of workers, one that sheds load with
503s, a limit shared by three client processes), plus Debian's nginx ``limit_req`` in
front of a fast upstream, with TLS and gzip (``_nginx.py``). A fresh server per run, so
every client meets an empty window. The contenders, each in a fresh process:

* ``asyncvox`` - ``Client(...)`` on its defaults, ``iter_calls`` over all ids: whatever
  ``asyncvox.Client`` does today (``--client-option KEY=JSON`` passes more to it);
* ``asyncvox+rate_limit`` - the same told the limit (``rate_limit=R``; R/3 for each of
  three processes sharing it; not run where no rate applies);
* ``stainless-style`` - what generated SDKs do: a semaphore + ``asyncio.gather`` over all
  ids, 2 retries with 0.5-8 s exponential backoff, honouring ``Retry-After`` up to 60 s.

Reported per shape: time / ideal (the ideal is defined per shape, see ``_shapes.ideal``),
the share of requests refused (429 or 503) and ids lost (no call and not reported not
found). ``--simulate`` runs the same shapes in the discrete-event simulator instead
(``_sim.py``: seconds, not minutes), where ``asyncvox`` is the new control logic
(``asyncvox._control``) and ``asyncvox-0.1`` an emulation of the governor it replaces.
Written to ``benchmarks/results/ratelimit.md`` (``ratelimit-sim.md``) and ``.json``.

    python benchmarks/bench_ratelimit.py [--n 2000] [--rps 100] [--concurrency 64] [--shapes a,b]
    python benchmarks/bench_ratelimit.py --simulate [--n 3000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, CLIENT_CPU, Server, emit, machine_info, machine_markdown, pin, write_report
from _nginx import Nginx, nginx_binary
from _shapes import SHAPES, Params, Shape, Unlimited, ideal, shape_named
from _sim import CONTENDERS as SIM_CONTENDERS
from _sim import run as simulate
from _sim import told_rate

CONTENDERS = [
    "asyncvox",
    "asyncvox+rate_limit",
    "stainless-style",
]
SIM_ORDER = ["asyncvox", "asyncvox+rate_limit", "asyncvox-0.1", "stainless-style"]
#: The real nginx: same ideal as the rate shapes, its model in the simulator is ``gcra-nginx``.
NGINX = Shape(
    "nginx",
    "Debian's nginx, limit_req rate=R burst=10 nodelay, 429 + Retry-After: 1, TLS and gzip, fast upstream",
    lambda p: Unlimited(),  # nginx does the limiting
    latency=(0.0, 0.001),
)
NGINX_BURST = 10


# -- child side: one contender ------------------------------------------------------------------


async def _asyncvox(base: str, ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import asyncvox

    options = dict(json.loads(args.client_options))
    if args.rate_limit:
        options["rate_limit"] = args.rate_limit
    async with asyncvox.Client(API_KEY, base, concurrency=args.concurrency, **options) as client:
        stream = client.iter_calls(ids)
        async with stream:
            async for _ in stream:
                pass
        s = stream.stats
    return {
        "requests": s.requests,
        "refused": s.statuses.get(429, 0) + s.statuses.get(503, 0),
        "ok": s.found + s.missing,
        "lost": s.failed,
    }


async def _stainless(base: str, ids: list[str], concurrency: int) -> dict[str, Any]:
    import aiohttp

    counts = {"requests": 0, "refused": 0}
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
            if status in (429, 503):
                counts["refused"] += 1
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
    ids = [f"{args.prefix}-{i:06d}" for i in range(args.n)]
    start = time.time()  # wall clock: processes sharing a limit are compared
    if args.contender == "stainless-style":
        result = asyncio.run(_stainless(args.base, ids, args.concurrency))
    else:
        result = asyncio.run(_asyncvox(args.base, ids, args))
    end = time.time()
    emit({**result, "start": start, "end": end, "wall_s": end - start})


# -- parent side ------------------------------------------------------------------------------


def _children(argvs: list[list[str]], env: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """Run the contender processes side by side (pinned to the client CPU); their results."""
    procs = []
    for argv in argvs:
        proc = subprocess.Popen(
            [sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        pin(proc.pid, CLIENT_CPU)
        procs.append(proc)
    results = []
    for proc, argv in zip(procs, argvs, strict=True):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise RuntimeError(f"contender timed out after {timeout:.0f} s: {shlex.join(argv)}") from None
        lines = out.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"contender failed ({proc.returncode}): {shlex.join(argv)}\n{err[-4000:]}")
        results.append(json.loads(lines[-1]))
    return results


def run_real(shape: Shape, contender: str, p: Params, args: argparse.Namespace) -> dict[str, Any] | None:
    """One contender on a fresh server of ``shape``; merged over the client processes."""
    told = told_rate(shape, p) if contender.endswith("+rate_limit") else None
    if contender.endswith("+rate_limit") and told is None:
        return None  # no rate to tell: the same as the defaults
    share = p.n // shape.clients
    env = dict(os.environ)
    timeout = 20 * ideal(shape, p) + 120

    def argvs(base: str) -> list[list[str]]:
        return [
            [
                __file__, "--contender", contender, "--base", base, "--n", str(share),
                "--concurrency", str(p.concurrency), "--prefix", f"c{i}",
                "--rate-limit", str(told or 0), "--client-options", args.client_options,
            ]
            for i in range(shape.clients)
        ]  # fmt: skip

    if shape is NGINX:
        with (
            Server([], fast=True) as upstream,
            Nginx(upstream.base_url, rate=p.rate, burst=NGINX_BURST) as nginx,
        ):
            # The default SSL context (aiohttp makes it at import) trusts the test CA.
            env["SSL_CERT_FILE"] = nginx.cert_file
            results = _children(argvs(nginx.base_url), env, timeout)
    else:
        from _shapes_server import ShapeServer

        with ShapeServer(shape.name, p) as server:
            results = _children(argvs(server.base_url), env, timeout)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    merged = {key: sum(r[key] for r in results) for key in ("requests", "refused", "ok", "lost")}
    return {**merged, "wall_s": wall, "ideal_s": ideal(shape, p), "time_over_ideal": wall / ideal(shape, p)}


def run_simulated(shape: Shape, contender: str, p: Params, seeds: int) -> dict[str, Any] | None:
    """``contender`` on ``shape`` in the simulator, the worst of ``seeds`` runs."""
    if contender == "asyncvox+rate_limit" and told_rate(shape, p) is None:
        return None
    runs = [simulate(shape, contender, p, seed=seed) for seed in range(seeds)]
    worst = max(runs, key=lambda r: r.wall)
    refused = max((r.throttled + r.failed) / r.requests for r in runs)
    return {
        "requests": worst.requests,
        "refused": round(refused * worst.requests),
        "refused_share": refused,
        "ok": worst.ok,
        "lost": max(r.lost for r in runs),
        "wall_s": worst.wall,
        "ideal_s": ideal(shape, p),
        "time_over_ideal": worst.wall / ideal(shape, p),
    }


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "- | - | -"
    share = r.get("refused_share", r["refused"] / max(1, r["requests"]))
    return f"{r['time_over_ideal']:.2f} | {100 * share:.1f}% | {r['lost']}"


def _ideal_note(shape: Shape) -> str:
    lat = " + latency" if shape.latency[0] else ""
    return {
        "concurrency": "N x latency / cap",
        "drop": f"N/2R + (N/2) / (R/4){lat}",
        "generous": f"N / 10R{lat}",
        "queue": "N x service / workers",
    }.get(shape.ideal, f"N / R{lat}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=None, help="ids per run (2000 real, 3000 simulated)")
    parser.add_argument("--rps", type=float, default=100.0, help="the limit R, requests per second")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--shapes", default="", help="comma-separated shape names (default: all)")
    parser.add_argument("--contenders", default="", help="comma-separated (default: all)")
    parser.add_argument("--simulate", action="store_true", help="the simulator, not real servers")
    parser.add_argument("--seeds", type=int, default=5, help="simulated runs per cell (the worst is shown)")
    parser.add_argument("--report", default="", help="results/<REPORT>.md (default ratelimit, ratelimit-sim)")
    parser.add_argument(
        "--client-option", action="append", default=[], metavar="KEY=JSON",
        help="passed to asyncvox.Client(...), e.g. max_pause=5 (repeatable)",
    )  # fmt: skip
    # The child side (one contender process).
    for flag in ("--contender", "--base", "--prefix"):
        parser.add_argument(flag, default="", help=argparse.SUPPRESS)
    parser.add_argument("--rate-limit", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--client-options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        child(args)
        return
    args.client_options = json.dumps(
        {k: json.loads(v) for k, _, v in (opt.partition("=") for opt in args.client_option)}
    )
    n = args.n or (3000 if args.simulate else 2000)
    p = Params(n, args.rps, args.concurrency)
    catalogue = [*SHAPES] if args.simulate else [s for s in SHAPES if s.name != "gcra-nginx"] + [NGINX]
    wanted = [s for s in args.shapes.split(",") if s]
    if wanted:
        catalogue = [s for s in catalogue if s.name in wanted] + [
            shape_named(w) for w in wanted if w not in {s.name for s in catalogue}
        ]
    if not args.simulate and NGINX in catalogue and nginx_binary() is None:
        print("nginx is not installed (Debian: apt-get install -y nginx): skipping it", flush=True)
        catalogue.remove(NGINX)
    contenders = [c for c in args.contenders.split(",") if c] or (SIM_ORDER if args.simulate else CONTENDERS)
    for c in contenders:
        if c not in (SIM_CONTENDERS if args.simulate else CONTENDERS):
            parser.error(f"no contender {c!r}")
    results: dict[str, dict[str, Any]] = {}
    rows = []
    t0 = time.perf_counter()
    for shape in catalogue:
        results[shape.name] = {}
        for c in contenders:
            r = run_simulated(shape, c, p, args.seeds) if args.simulate else run_real(shape, c, p, args)
            results[shape.name][c] = r
        cells = " | ".join(_cell(results[shape.name][c]) for c in contenders)
        rows.append(f"| {shape.name} | {_ideal_note(shape)} = {ideal(shape, p):.1f} s | {cells} |")
        print(rows[-1], flush=True)
    header = " | ".join(f"{c}: time / ideal | refused | lost" for c in contenders)
    table = "\n".join(
        [
            f"| shape | ideal | {header} |",
            "| --- | --- |" + " ---: | ---: | ---: |" * len(contenders),
            *rows,
        ]
    )
    shapes_list = "\n".join(f"- `{s.name}`: {s.description}" for s in catalogue)
    how = (
        f"simulated (`_sim.py`), the worst of {args.seeds} seeded runs per cell (time, refused, lost)"
        if args.simulate
        else "real loopback servers, one run per cell"
    )
    command = shlex.join(["python", "benchmarks/bench_ratelimit.py", *sys.argv[1:]])
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = (
        f"# Remote limits of every shape ({'simulated' if args.simulate else 'real servers'})\n\n"
        f"- date: {date}\n- command: `{command}` (took {time.perf_counter() - t0:.0f} s)\n"
        f"- {how}; N = {n} ids, R = {args.rps:g} req/s, concurrency {args.concurrency}; "
        f"latency 50-150 ms unless the shape says\n{machine_markdown()}\n\n{shapes_list}\n\n{table}\n"
    )
    # For run.py's headline: each contender's worst shape and its ids lost in all.
    summary = {}
    for c in contenders:
        cells = [(s, results[s][c]) for s in results if results[s][c] is not None]
        if cells:
            worst_shape, worst = max(cells, key=lambda sc: sc[1]["time_over_ideal"])
            summary[c] = {
                "time_over_ideal": worst["time_over_ideal"],
                "worst_shape": worst_shape,
                "lost": sum(r["lost"] for _, r in cells),
            }
    data = {
        "date": date,
        "command": command,
        "machine": machine_info(),
        "simulated": args.simulate,
        "n": n,
        "rps": args.rps,
        "concurrency": args.concurrency,
        "shapes": results,
        "results": summary,
    }
    write_report(args.report or ("ratelimit-sim" if args.simulate else "ratelimit"), report, data)
    print(table)


if __name__ == "__main__":
    main()
