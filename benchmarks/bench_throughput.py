"""Bulk-fetch throughput: asyncvox ``iter_calls`` against a hand-tuned aiohttp + msgspec loop.

What it measures: the same ``--n`` ids (default 5000) at the same concurrency (default 32)
fetched from the loopback server (``python -m asyncvox.testing``, its own process on CPU 1;
the clients run on CPU 0), by three contenders, each in a fresh process:

* ``asyncvox``  -- ``Client("test-key", base, concurrency=32)`` + ``async for o in
  c.iter_calls(ids)``, counting ``o.found``; every safety feature on (retries, outcomes,
  dedupe, governor), ``rate_limit`` off;
* ``handtuned`` -- 32 worker tasks on one ``ClientSession`` (``TCPConnector(limit=32)``),
  ``resp.read()``, one reused ``msgspec.json.Decoder`` of an envelope whose ``call`` is
  ``asyncvox.models.Call``: the same models, only the plumbing differs;
* ``raw``       -- the hand-tuned loop without decoding: the ceiling of this client/server pair.

The report also says, per contender, whether the client or the server process was the one
saturated (CPU share of each), and warns when other processes were busy on the machine.

Rounds are interleaved (ABC, CBA, ABC, ... so slow drift cancels out), the ratio
asyncvox / handtuned is taken within each round and the median over rounds is reported,
with the medians of calls/s, client CPU ms per call and peak RSS. Two body profiles, each
with its own server process: typical (the server's default, ~26 KB) and small
(``--turns 6``, ~4 KB; the envelope alone is ~2.5 KB). The table is printed and written,
with the machine details, to ``benchmarks/results/throughput.md``.

Run (a few minutes with the defaults)::

    python benchmarks/bench_throughput.py
    python benchmarks/bench_throughput.py --n 2000 --rounds 3 --profiles small

``--child NAME --base URL`` runs one contender once and prints its JSON result (that is
how the parent runs each contender; also handy under a profiler).
"""

# No ``from __future__ import annotations`` here: msgspec must resolve ``Envelope``'s
# annotations at run time, also when this file runs as ``__main__`` under a profiler.
import argparse
import asyncio
import datetime as dt
import os
import shlex
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from _common import API_KEY, RESULTS_DIR, Server, emit, machine_info, measure, median, run_contender

import asyncvox
from asyncvox.models import Call

CONTENDERS = ("asyncvox", "handtuned", "raw")
PROFILES: dict[str, tuple[str, list[str]]] = {
    "typical": ("typical bodies (server default, ~26 KB)", []),
    "small": ("small bodies (--turns 6, ~4 KB)", ["--turns", "6"]),
}
#: A process busy for this share of the wall time (or more) is what sets the pace.
CLIENT_BOUND = 0.9
SERVER_BOUND = 0.85
#: Other processes' CPU use (in CPUs) above which the report warns about noise.
BUSY_MACHINE = 0.15


def bound(row: dict[str, float]) -> str:
    """Which side limits a contender, from the CPU share each process used."""
    client, server = row["client_util"], row["server_util"]
    usage = f"client CPU {client:.0%}, server CPU {server:.0%}"
    if client >= CLIENT_BOUND and server >= SERVER_BOUND:
        return f"client and server both saturated ({usage})"
    if client >= CLIENT_BOUND:
        return f"client-bound ({usage})"
    if server >= SERVER_BOUND:
        return f"server-bound ({usage}): the server is the bottleneck"
    return f"neither process saturated ({usage}): latency or CPU taken by other processes"


# -- the contenders (run in the child process) -------------------------------------------


def make_ids(n: int) -> list[str]:
    return [f"bench-{i:07d}" for i in range(n)]


async def run_asyncvox(base: str, ids: list[str], concurrency: int) -> int:
    found = 0
    async with asyncvox.Client(API_KEY, base, concurrency=concurrency) as client:
        async for outcome in client.iter_calls(ids):
            if outcome.found:
                found += 1
    return found


class Envelope(msgspec.Struct, gc=False):
    """The 200 body, ``{"success": true, "call": {...}, "url": "..."}``, with asyncvox's own Call."""

    success: bool | None = None
    call: Call | None = None
    url: str | None = None


async def run_handtuned(base: str, ids: list[str], concurrency: int, *, decode: bool = True) -> int:
    decoder = msgspec.json.Decoder(Envelope)
    prefix = f"{base}/calls/"
    pending = iter(ids)  # shared by the workers: each takes the next id
    found = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal found
        for call_id in pending:
            async with session.get(prefix + call_id) as resp:
                body = await resp.read()
                status = resp.status
            if status != 200:
                continue
            if not decode or decoder.decode(body).call is not None:
                found += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return found


async def run_raw(base: str, ids: list[str], concurrency: int) -> int:
    return await run_handtuned(base, ids, concurrency, decode=False)


RUNNERS: dict[str, Callable[[str, list[str], int], Awaitable[int]]] = {
    "asyncvox": run_asyncvox,
    "handtuned": run_handtuned,
    "raw": run_raw,
}


def child(name: str, base: str, n: int, concurrency: int) -> None:
    ids = make_ids(n)
    result = measure(lambda: RUNNERS[name](base, ids, concurrency), n)
    result["contender"] = name
    emit(result)


# -- the parent: rounds, medians, report ---------------------------------------------------


def mean_body_kb(base: str, ids: list[str]) -> float:
    """Mean 200-body size over ``ids`` (plain urllib, 127.0.0.1)."""
    total = 0
    for call_id in ids:
        req = urllib.request.Request(
            f"{base}/calls/{call_id}", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            total += len(resp.read())
    return total / len(ids) / 1000


def run_profile(key: str, args: argparse.Namespace) -> dict[str, Any]:
    label, server_args = PROFILES[key]
    script = str(Path(__file__).resolve())
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}

    def once(name: str, server: Server, n: int) -> dict[str, Any]:
        argv = [script, "--child", name, "--base", server.base_url, "--n", str(n)]
        result = run_contender([*argv, "--concurrency", str(args.concurrency)], server=server)
        if result["found"] != n:
            raise RuntimeError(f"{name} found {result['found']} of {n} calls on {server.base_url}")
        return result

    with Server(server_args) as server:
        body_kb = mean_body_kb(server.base_url, make_ids(min(args.n, 256)))
        print(f"\n## {label}, mean body {body_kb:.1f} KB: {server.command}", flush=True)
        once("handtuned", server, min(args.n, 1000))  # warm-up, discarded
        for r in range(args.rounds):
            order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
            for name in order:
                result = once(name, server, args.n)
                runs[name].append(result)
            print(
                f"  round {r + 1}/{args.rounds}: "
                + ", ".join(f"{name} {runs[name][-1]['calls_per_s']:,.0f}/s" for name in CONTENDERS),
                flush=True,
            )
    return {"key": key, "label": label, "server": server.command, "body_kb": body_kb, "runs": runs}


def summarize(profile: dict[str, Any]) -> dict[str, Any]:
    runs = profile["runs"]
    av, ht = runs["asyncvox"], runs["handtuned"]
    rows = {}
    for name, rs in runs.items():
        rows[name] = {
            "calls_per_s": median([r["calls_per_s"] for r in rs]),
            "cpu_ms_per_call": median([r["cpu_ms_per_call"] for r in rs]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in rs]),
            "client_util": median([r["client_util"] for r in rs]),
            "helper_us": 1000 * median([r["helper_threads_ms_per_call"] for r in rs]),
            "server_util": median([r.get("server_util", float("nan")) for r in rs]),
            "tput_ratio": median([r["calls_per_s"] / h["calls_per_s"] for r, h in zip(rs, ht, strict=True)]),
            "cpu_ratio": median(
                [r["cpu_ms_per_call"] / h["cpu_ms_per_call"] for r, h in zip(rs, ht, strict=True)]
            ),
        }
    per_round = [a["calls_per_s"] / h["calls_per_s"] for a, h in zip(av, ht, strict=True)]
    extra_us = median(
        [1000 * (a["cpu_ms_per_call"] - h["cpu_ms_per_call"]) for a, h in zip(av, ht, strict=True)]
    )
    notes = []
    foreign = median([r.get("foreign_load", 0.0) for rs in runs.values() for r in rs])
    if foreign > BUSY_MACHINE:
        notes.append(
            f"**Busy machine**: other processes used {foreign:.2f} CPUs on average during the runs "
            f"(of {os.cpu_count()}). Absolute figures and the notes below are unreliable; the per-round "
            "CPU ratios are the most robust figure. Rerun on a quiet machine."
        )
    notes += [f"{name}: {bound(row)}." for name, row in rows.items()]
    if rows["asyncvox"]["client_util"] >= CLIENT_BOUND and rows["handtuned"]["client_util"] >= CLIENT_BOUND:
        notes.append("asyncvox and handtuned are both client-bound: their ratio measures client overhead.")
    elif rows["handtuned"]["server_util"] >= SERVER_BOUND:
        notes.append(
            "The server is the bottleneck for handtuned: the throughput ratio understates asyncvox's "
            "overhead; compare CPU ms/call."
        )
    notes += [
        f"{name}: {row['helper_us']:.0f} µs/call of its CPU ran in helper threads (thread-pool hops), "
        "not on the event loop."
        for name, row in rows.items()
        if row["helper_us"] >= 5
    ]
    if rows["handtuned"]["calls_per_s"] > 0.9 * rows["raw"]["calls_per_s"]:
        notes.append(
            "handtuned reaches over 90% of the raw (no-decode) ceiling: decoding is not what limits it."
        )
    return {
        "rows": rows,
        "per_round": per_round,
        "ratio": median(per_round),
        "cpu_ratio": rows["asyncvox"]["cpu_ratio"],
        "extra_us": extra_us,
        "notes": notes,
    }


def render(profiles: list[dict[str, Any]], summaries: list[dict[str, Any]], args: argparse.Namespace) -> str:
    info = machine_info()
    lines = [
        "# Throughput: asyncvox vs a hand-tuned aiohttp + msgspec loop",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{args.command}`",
        f"- workload: {args.n} ids per run, concurrency {args.concurrency}, {args.rounds} interleaved "
        "rounds, each contender in a fresh process",
    ]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        "",
        "Ratios are taken within each round (asyncvox or raw over handtuned), then the median. "
        "`x tput` > 1 is faster than handtuned; `x CPU` < 1 uses less client CPU per call. "
        "CPU is the client process's user + system time (helper threads included); "
        "peak RSS includes the interpreter.",
    ]
    for profile, s in zip(profiles, summaries, strict=True):
        lines += [
            "",
            f"## {profile['label']}",
            "",
            f"server: `{profile['server']}`; mean body over the first ids: {profile['body_kb']:.1f} KB",
            "",
            "| contender | calls/s | x tput | CPU ms/call | x CPU | peak RSS MB | client CPU | server CPU |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, row in s["rows"].items():
            lines.append(
                f"| {name} | {row['calls_per_s']:,.0f} | {row['tput_ratio']:.2f} | "
                f"{row['cpu_ms_per_call']:.3f} | {row['cpu_ratio']:.2f} | {row['peak_rss_mb']:.1f} | "
                f"{row['client_util']:.0%} | {row['server_util']:.0%} |"
            )
        lines += [
            "",
            f"**asyncvox / handtuned: {s['ratio']:.2f}x throughput** (median of per-round ratios "
            f"{', '.join(f'{x:.2f}' for x in s['per_round'])}), {s['cpu_ratio']:.2f}x client CPU per call "
            f"({s['extra_us']:+.0f} µs/call).",
            "",
            *[f"- {note}" for note in s["notes"]],
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000, help="ids per run (default 5000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--profiles", default="typical,small", help=f"comma-separated, of {', '.join(PROFILES)}"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "throughput.md", help="markdown report")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if not args.base:
            parser.error("--child needs --base")
        child(args.child, args.base, args.n, args.concurrency)
        return
    keys = [k.strip() for k in args.profiles.split(",") if k.strip()]
    unknown = [k for k in keys if k not in PROFILES]
    if unknown:
        parser.error(f"unknown profile(s) {unknown}; choose from {list(PROFILES)}")
    args.command = shlex.join(["python", "benchmarks/bench_throughput.py", *sys.argv[1:]])
    profiles = [run_profile(key, args) for key in keys]
    summaries = [summarize(p) for p in profiles]
    report = render(profiles, summaries, args)
    print("\n" + report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
