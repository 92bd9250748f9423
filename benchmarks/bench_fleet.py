"""Fleet benchmark: several client processes on one api key's limit, with and without Redis.

    python benchmarks/bench_fleet.py [--rate 100] [--n 1200] [--bulk 1200] [--report]
        [--scenarios fleet,webapp] [--shapes token-bucket-small,fixed-window] [--sizes 3,8]
        [--modes alone,redis,redis-killed]

Two scenarios, each on every limiter shape given (token bucket with a small burst, fixed
window; ``_shapes``), all processes on one key against one ``_shapes_server``:

* **fleet**: P client processes (3 and 8) split ``n`` ids and fetch them;
* **webapp**: ``uvicorn --workers 4`` serving an app whose handler awaits
  ``client.get_call(id)`` (``_webapp.py``), under open-loop load from another process at
  30% of the limit, while a bulk job in a third process fetches ``bulk`` ids (``_webrun.py``).

Each run three ways: every process on its own governor ("alone"), sharing the limit
through one ``redis-server`` ("redis"), and sharing it while Redis is killed a quarter of
the ideal time in and restarted a quarter later ("redis killed"). Reported: time / ideal,
% of requests throttled (fleet-wide), ids lost, Redis round trips and client CPU per
request; for the web app also failed web requests and their latency; with Redis killed,
the recovery pace (:func:`_fleet_common.recovery`). Needs ``redis-server`` on PATH and
``asyncvox[redis]``, ``uvicorn`` for the web app (the ``bench`` extra). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fleet_common import SETTLE, RedisServer, free_port, recovery, run_batch
from _shapes import Params, ideal, shape_named
from _shapes_server import ShapeServer

SCENARIOS = ("fleet", "webapp")
SHAPES = ("token-bucket-small", "fixed-window")
SIZES = (3, 8)
MODES = ("alone", "redis", "redis killed")
WEB_WORKERS = 4
LOAD_SHARE = 0.3


async def worker(base: str, redis_url: str, prefix: str, count: int) -> None:
    import asyncvox

    fleet = asyncvox.RedisFleet(redis_url, retry_interval=1.0) if redis_url != "-" else False
    report = await run_batch(base, prefix, count, fleet)
    print(json.dumps(report._asdict()), flush=True)


async def run_fleet(
    base: str, redis: RedisServer | None, procs: int, n: int, rate: float, kill_at: float | None
) -> dict[str, Any]:
    url = redis.url if redis is not None else "-"
    each = n // procs
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCVOX_")}
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--worker", base, url, f"p{i}", str(each),
            stdout=asyncio.subprocess.PIPE, env=env,
        )
        for i in range(procs)
    ]
    restarted: float | None = None
    if kill_at is not None and redis is not None:
        await asyncio.sleep(kill_at)
        redis.kill()
        await asyncio.sleep(kill_at)
        redis.start()
        restarted = time.monotonic()
    reports = []
    for c in children:
        out = (await c.communicate())[0].decode().splitlines()
        if c.returncode != 0 or not out:
            raise RuntimeError(f"a fleet worker failed (exit {c.returncode}); see its stderr above")
        reports.append(json.loads(out[-1]))
    # From the first batch's start to the last one's end: the processes' own start-up
    # (importing Python, 0.4 s each, serialised on a small machine) is not the fleet's.
    elapsed = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    requests = sum(r["requests"] for r in reports)
    rec = recovery([t for r in reports for t in r["done_at"]], restarted, rate) if restarted else None
    return {
        "elapsed": elapsed,
        "lost": each * procs - sum(r["ok"] for r in reports),
        "throttled": sum(r["throttles"] for r in reports) / requests,
        "rt_per_request": sum(r["round_trips"] for r in reports) / requests,
        "cpu_us_per_request": 1e6 * sum(r["cpu"] for r in reports) / requests,
        "fallbacks": sum(r["fallbacks"] for r in reports),
        "recovery": rec._asdict() if rec is not None else None,
        "rejoined": sum(r["link"] == "fleet" for r in reports),
        "processes": procs,
    }


async def fleet_scenario(args: argparse.Namespace, redis: RedisServer) -> list[dict[str, Any]]:
    rows = []
    for shape_name in args.shapes:
        shape = shape_named(shape_name)
        for procs in args.sizes:
            params = Params(args.n, args.rate, 16 * procs)
            best = ideal(shape, params)
            for mode in args.modes:
                with ShapeServer(shape_name, params) as server:
                    shared = redis if mode != "alone" else None
                    if shared is not None:
                        shared.start()
                    kill_at = best / 4 if mode == "redis killed" else None
                    try:
                        res = await run_fleet(server.base_url, shared, procs, args.n, args.rate, kill_at)
                    finally:
                        redis.kill()
                res.update(scenario="fleet", shape=shape_name, procs=procs, mode=mode)
                res["ratio"] = res["elapsed"] / best
                rows.append(res)
                print(json.dumps(res), flush=True)
    return rows


async def webapp_scenario(args: argparse.Namespace, redis: RedisServer) -> list[dict[str, Any]]:
    import importlib.util

    from _webrun import WebParams, run_webapp

    if importlib.util.find_spec("uvicorn") is None:
        sys.exit("the webapp scenario needs uvicorn: pip install -e '.[bench,redis]'")
    rows = []
    for shape_name in args.shapes:
        params = WebParams(shape_name, args.rate, args.bulk, LOAD_SHARE, WEB_WORKERS)
        for mode in args.modes:
            shared = redis if mode != "alone" else None
            if shared is not None:
                shared.start()
            try:
                res = await run_webapp(params, shared, kill=mode == "redis killed")
            finally:
                redis.kill()
            res.update(scenario="webapp", shape=shape_name, mode=mode)
            rows.append(res)
            print(json.dumps(res), flush=True)
    return rows


def _recovery_cell(r: dict[str, Any]) -> str:
    rec = r["recovery"]
    if r["mode"] != "redis killed":
        return "—"
    pace = f"{rec['ratio']:.2f}x" if rec is not None else "n/a"
    return f"{pace}, {r['rejoined']}/{r['processes']} back in"


def fleet_table(rows: list[dict[str, Any]]) -> str:
    table = [
        "| shape | processes | mode | time / ideal | throttled | ids lost | Redis round trips / request "
        "| client CPU µs / request | fallbacks | after Redis returned |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        table.append(
            f"| {r['shape']} | {r['procs']} | {r['mode']} | {r['ratio']:.2f}x | {100 * r['throttled']:.1f}% "
            f"| {r['lost']} | {r['rt_per_request']:.3f} | {r['cpu_us_per_request']:.0f} | {r['fallbacks']} "
            f"| {_recovery_cell(r)} |"
        )
    return "\n".join(table)


def _ms(seconds: float | None) -> str:
    return f"{1000 * seconds:.0f}" if seconds is not None else "n/a"


def webapp_table(rows: list[dict[str, Any]]) -> str:
    table = [
        "| shape | mode | bulk time / ideal | throttled (bulk, web) | bulk ids lost | web failed / sent "
        "| web p50 / p99 ms (before bulk p50) | Redis round trips / request | client CPU µs / request "
        "| fallbacks | after Redis returned |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        mode = r["mode"] + (f" ({r['missing_workers']} worker hung at exit: its counts missing)"
                            if r["missing_workers"] else "")
        table.append(
            f"| {r['shape']} | {mode} | {r['ratio']:.2f}x | {100 * r['throttled']:.1f}% "
            f"({100 * r['bulk_throttled']:.1f}%, {100 * r['web_throttled']:.1f}%) | {r['lost']} "
            f"| {r['web_failed']} / {r['web_sent']} | {_ms(r['web_p50'])} / {_ms(r['web_p99'])} "
            f"({_ms(r['web_p50_before'])}) | {r['rt_per_request']:.3f} | {r['cpu_us_per_request']:.0f} "
            f"| {r['fallbacks']} | {_recovery_cell(r)} |"
        )
    return "\n".join(table)


async def main(args: argparse.Namespace) -> None:
    tables: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(free_port(), tmp)
        if "fleet" in args.scenarios:
            tables["fleet"] = fleet_table(await fleet_scenario(args, redis))
            print(tables["fleet"], flush=True)
        if "webapp" in args.scenarios:
            tables["webapp"] = webapp_table(await webapp_scenario(args, redis))
            print(tables["webapp"], flush=True)
    if args.report:
        _write_report(args, tables)


RECOVERY_TEXT = (
    f'"After Redis returned" (redis killed only): the fleet\'s successful completions (every '
    f"process, web requests included) from {SETTLE:g} s after Redis's restart to the last one, "
    "as time for that work over its ideal (completions / limit): 1.00x is the whole limit in use, "
    "the issue's bound is 1.5x; n/a when fewer than 20 completions fell in that window. "
    '"k/P back in": how many of the P processes were in the fleet again when they finished.'
)


def _write_report(args: argparse.Namespace, tables: dict[str, str]) -> None:
    out = Path(__file__).resolve().parent / "results" / "fleet.md"
    parts = ["# Fleet: several processes on one key's limit\n"]
    command = " ".join(["python benchmarks/bench_fleet.py", *sys.argv[1:]])
    parts.append(
        f"`{command}`: limit {args.rate:g}/s; \"redis killed\": Redis killed (SIGKILL) a quarter of the "
        "ideal time in and restarted a quarter later. " + RECOVERY_TEXT + "\n"
    )
    if "fleet" in tables:
        parts.append(
            f"## Processes sharing a batch\n\n{args.n} ids split over the processes, concurrency 16 per "
            "process; time / ideal from the first batch's start to the last one's end (the processes' "
            "interpreter start-up excluded).\n\n"
            + tables["fleet"]
            + "\n"
        )
    if "webapp" in tables:
        load = LOAD_SHARE * args.rate
        parts.append(
            f"## Web app and bulk job\n\n`uvicorn --workers {WEB_WORKERS}` (one `asyncvox.Client` per "
            f"worker, configured from the environment) serving `GET /calls/{{id}}` via `get_call`, under "
            f"open-loop load of {load:g} requests/s from another process; meanwhile a bulk job fetches "
            f"{args.bulk} ids in a third process. Bulk ideal: {args.bulk} / ({args.rate:g} - {load:g}) = "
            f"{args.bulk / (args.rate - load):.1f} s. Throttled: all refusals over all requests (bulk "
            "job's, web workers'). Web latency is the load generator's, from each request's scheduled "
            "send time, for requests sent while the bulk job ran (before bulk: during the warm-up). "
            "Client CPU includes the uvicorn workers' HTTP serving.\n\n"
            + tables["webapp"] + "\n"
        )
    out.write_text("\n".join(parts))
    print(f"wrote {out}")


def _choices(allowed: tuple[str, ...]) -> Any:
    """An argparse type: a comma-separated subset of ``allowed`` (``-`` may stand for a space)."""
    spelled = {a.replace(" ", "-"): a for a in allowed}

    def parse(text: str) -> list[str]:
        chosen = [c.strip() for c in text.split(",") if c.strip()]
        bad = [c for c in chosen if c not in spelled]
        if bad or not chosen:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(spelled)} (got {text!r})")
        return [spelled[c] for c in chosen]

    return parse


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes are process counts >= 1, e.g. 3,8 (got {text!r})")
    return sizes


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
        sys.exit(0)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="the limit (requests/s)")
    parser.add_argument("--n", type=int, default=1200, help="ids per fleet run, split over the processes")
    parser.add_argument("--bulk", type=int, default=1200, help="ids of the web-app scenario's bulk job")
    parser.add_argument("--scenarios", type=_choices(SCENARIOS), default=list(SCENARIOS),
                        help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--shapes", type=_choices(SHAPES), default=list(SHAPES),
                        help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--sizes", type=_sizes, default=list(SIZES), help="fleet sizes, e.g. 3,8")
    parser.add_argument("--modes", type=_choices(MODES), default=list(MODES),
                        help="comma-separated, of alone, redis, redis-killed")
    parser.add_argument("--report", action="store_true", help="write benchmarks/results/fleet.md")
    asyncio.run(main(parser.parse_args()))
