"""Bulk-fetch throughput: asyncvox ``iter_calls`` against the clients users would otherwise write.

What it measures: the same ids at the same concurrency (default 32) fetched from the
loopback server (``python -m asyncvox.testing``, its own process pinned to CPU 1; every
client runs in a fresh process pinned to CPU 0), by these contenders:

* ``asyncvox``         -- ``Client("test-key", base, concurrency=32)`` + ``async for o in
  c.iter_calls(ids)``, touching ``o.call`` (asyncvox decodes each call in the consumer's
  task right before yielding it); every safety feature on (retries, outcomes, dedupe,
  governor), ``rate_limit`` off;
* ``handtuned``        -- 32 worker tasks on one ``ClientSession`` (``TCPConnector(limit=32)``),
  ``resp.read()``, one reused ``msgspec.json.Decoder`` of an envelope whose ``call`` is
  ``asyncvox.models.Call``: the same models, only the plumbing differs. The bar;
* ``raw``              -- the hand-tuned loop without decoding: the ceiling of this pair;
* ``aiohttp-json``     -- the naive script: a semaphore + ``asyncio.gather`` over all ids,
  ``await resp.json()`` into dicts;
* ``httpx-pydantic``   -- what generated SDKs do: ``httpx.AsyncClient`` (limits sized to the
  concurrency), 32 workers, ``Envelope.model_validate_json(resp.content)`` with the
  drift-tolerant pydantic v2 models of ``_pydantic_models.py``. It is slow, so it gets
  ``--slow-n`` ids (default 1000); every figure is per call, so different N compare;
* ``asyncvox-uvloop``, ``handtuned-uvloop``, ``raw-uvloop`` -- the same on uvloop.

Rounds are interleaved (the order is reversed every other round, so slow drift cancels
out, and the pairs that the targets compare run back to back), each ratio is taken within
a round and the median over rounds is reported, with the medians of calls/s, client CPU
ms per call (user + system, helper threads included) and peak RSS. This machine's CPU
speed drifts by tens of percent from second to second (a shared host): only paired
ratios over many rounds are worth reading, and the spread of the per-round ratios is
shown. Two body profiles, each with its own server: typical (the server's default, ~26 KB)
and small (``--turns 6``, ~4 KB; the envelope alone is ~2.5 KB) to expose per-request
overhead. Written to ``benchmarks/results/throughput.md`` (and ``.json``).

Headline ratios and targets (typical bodies): asyncvox / handtuned >= 0.95,
asyncvox-uvloop / raw-uvloop >= 0.8, asyncvox / httpx-pydantic >= 12.

Run (about three minutes with the defaults: 4000 ids, 9 rounds)::

    python benchmarks/bench_throughput.py
    python benchmarks/bench_throughput.py --n 2000 --rounds 3 --profiles small
    python benchmarks/bench_throughput.py --contenders asyncvox,handtuned

``--child NAME --base URL`` runs one contender once and prints its JSON result (that is
how the parent runs each contender; also handy under a profiler).
"""

# No ``from __future__ import annotations`` here: msgspec must resolve the envelope's
# annotations at run time, also when this file runs as ``__main__`` under a profiler.
import argparse
import asyncio
import datetime as dt
import importlib
import os
import shlex
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

from _common import (
    API_KEY,
    RESULTS_DIR,
    Server,
    emit,
    machine_info,
    machine_markdown,
    measure,
    median,
    run_contender,
    wait_quiet,
    write_report,
)

PROFILES: dict[str, tuple[str, list[str]]] = {
    "typical": ("typical bodies (server default, ~26 KB)", []),
    "small": ("small bodies (--turns 6, ~4 KB)", ["--turns", "6"]),
}
#: A process busy for this share of the wall time (or more) is what sets the pace.
CLIENT_BOUND = 0.9
SERVER_BOUND = 0.85
#: Other processes' CPU use (in CPUs) above which the report warns about noise.
BUSY_MACHINE = 0.15
BASELINE = "handtuned"


class Target(NamedTuple):
    """A headline ratio: ``numerator`` calls/s over ``denominator`` calls/s, paired per round."""

    numerator: str
    denominator: str
    minimum: float
    what: str


TARGETS = (
    Target("asyncvox", "handtuned", 0.95, "asyncvox / hand-tuned aiohttp + msgspec"),
    Target("asyncvox-uvloop", "raw-uvloop", 0.8, "asyncvox / raw aiohttp, both on uvloop"),
    Target("asyncvox", "httpx-pydantic", 12.0, "asyncvox / httpx + pydantic v2"),
)
#: The body profile the targets are set for; the others are reported for information.
TARGET_PROFILE = "typical"


# -- the contenders (run in the child process) -------------------------------------------


def make_ids(n: int) -> list[str]:
    return [f"bench-{i:07d}" for i in range(n)]


async def run_asyncvox(base: str, ids: list[str], concurrency: int) -> int:
    import asyncvox

    found = 0
    async with asyncvox.Client(API_KEY, base, concurrency=concurrency) as client:
        async for outcome in client.iter_calls(ids):
            if outcome.call is not None:
                found += 1
    return found


def _handtuned_decoder() -> Any:
    import msgspec

    from asyncvox.models import Call

    class Envelope(msgspec.Struct, gc=False):
        """The 200 body, ``{"success": true, "call": {...}, "url": "..."}``, with asyncvox's Call."""

        success: bool | None = None
        call: Call | None = None
        url: str | None = None

    return msgspec.json.Decoder(Envelope)


async def run_handtuned(base: str, ids: list[str], concurrency: int, *, decode: bool = True) -> int:
    import aiohttp

    decoder = _handtuned_decoder() if decode else None
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
            if decoder is None or decoder.decode(body).call is not None:
                found += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return found


async def run_raw(base: str, ids: list[str], concurrency: int) -> int:
    return await run_handtuned(base, ids, concurrency, decode=False)


async def run_aiohttp_json(base: str, ids: list[str], concurrency: int) -> int:
    """The naive script: one task per id, a semaphore, ``await resp.json()``."""
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def one(session: aiohttp.ClientSession, call_id: str) -> bool:
        async with sem, session.get(f"{base}/calls/{call_id}") as resp:
            if resp.status != 200:
                return False
            data = await resp.json()
        return data.get("call") is not None

    async with aiohttp.ClientSession(headers=headers) as session:
        results = await asyncio.gather(*(one(session, call_id) for call_id in ids))
    return sum(results)


async def run_httpx_pydantic(base: str, ids: list[str], concurrency: int) -> int:
    """A generated SDK's stack: httpx.AsyncClient + pydantic v2 ``model_validate_json``."""
    import httpx
    from _pydantic_models import Envelope

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    pending = iter(ids)
    found = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal found
        for call_id in pending:
            resp = await client.get(f"/calls/{call_id}")
            if resp.status_code != 200:
                continue
            if Envelope.model_validate_json(resp.content).call is not None:
                found += 1

    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return found


class Contender(NamedTuple):
    run: Callable[[str, list[str], int], Awaitable[int]]
    uvloop: bool
    slow: bool  # gets --slow-n ids instead of --n
    #: Imported before the clock starts (the runners import lazily, so that each process
    #: loads only what its contender uses and peak RSS stays comparable).
    modules: tuple[str, ...]


_AIOHTTP = ("aiohttp",)
_HANDTUNED = ("aiohttp", "msgspec", "asyncvox.models")
CONTENDER_SPECS: dict[str, Contender] = {
    "asyncvox": Contender(run_asyncvox, False, False, ("asyncvox",)),
    "handtuned": Contender(run_handtuned, False, False, _HANDTUNED),
    "raw": Contender(run_raw, False, False, _AIOHTTP),
    "aiohttp-json": Contender(run_aiohttp_json, False, False, _AIOHTTP),
    "httpx-pydantic": Contender(run_httpx_pydantic, False, True, ("httpx", "_pydantic_models")),
    "asyncvox-uvloop": Contender(run_asyncvox, True, False, ("asyncvox",)),
    "handtuned-uvloop": Contender(run_handtuned, True, False, _HANDTUNED),
    "raw-uvloop": Contender(run_raw, True, False, _AIOHTTP),
}
CONTENDERS = tuple(CONTENDER_SPECS)
#: Run order within a round (reversed every other round): the pairs the targets compare
#: (asyncvox with handtuned and with httpx-pydantic, asyncvox-uvloop with raw-uvloop)
#: run back to back.
ROUND_ORDER = (
    "httpx-pydantic",
    "asyncvox",
    "handtuned",
    "raw",
    "aiohttp-json",
    "handtuned-uvloop",
    "raw-uvloop",
    "asyncvox-uvloop",
)


def child(name: str, base: str, n: int, concurrency: int) -> None:
    spec = CONTENDER_SPECS[name]
    for module in spec.modules:
        importlib.import_module(module)
    loop_factory = None
    if spec.uvloop:
        import uvloop  # pip install uvloop (asyncvox[speed])

        loop_factory = uvloop.new_event_loop
    ids = make_ids(n)
    result = measure(lambda: spec.run(base, ids, concurrency), n, loop_factory=loop_factory)
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


def run_profile(key: str, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    label, server_args = PROFILES[key]
    script = str(Path(__file__).resolve())
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    order = [name for name in ROUND_ORDER if name in names]

    def once(name: str, server: Server, n: int) -> dict[str, Any]:
        argv = [script, "--child", name, "--base", server.base_url, "--n", str(n)]
        result = run_contender([*argv, "--concurrency", str(args.concurrency)], server=server)
        if result["found"] != n:
            raise RuntimeError(f"{name} found {result['found']} of {n} calls on {server.base_url}")
        if CONTENDER_SPECS[name].uvloop and "uvloop" not in result["loop"]:
            raise RuntimeError(f"{name} ran on {result['loop']}, not uvloop")
        return result

    with Server(server_args, fast=not args.demo_server) as server:
        body_kb = mean_body_kb(server.base_url, make_ids(min(args.n, 256)))
        print(f"\n## {label}, mean body {body_kb:.1f} KB: {server.command}", flush=True)
        once(BASELINE if BASELINE in names else names[0], server, min(args.n, 1000))  # warm-up
        for r in range(args.rounds):
            if args.wait_quiet > 0:
                wait_quiet(args.wait_quiet)
            for name in order if r % 2 == 0 else order[::-1]:
                n = args.slow_n if CONTENDER_SPECS[name].slow else args.n
                runs[name].append(once(name, server, n))
            print(
                f"  round {r + 1}/{args.rounds}: "
                + ", ".join(f"{name} {runs[name][-1]['calls_per_s']:,.0f}/s" for name in order),
                flush=True,
            )
    return {"key": key, "label": label, "server": server.command, "body_kb": body_kb, "runs": runs}


def paired(
    runs: dict[str, list[dict[str, Any]]], num: str, den: str, field: str = "calls_per_s"
) -> list[float]:
    """Per-round ratios ``num / den`` of ``field``."""
    return [a[field] / b[field] for a, b in zip(runs[num], runs[den], strict=True)]


def bound(row: dict[str, float]) -> str:
    """Which side limits a contender, from the CPU share each process used."""
    client, server = row["client_util"], row["server_util"]
    if client >= CLIENT_BOUND and server >= SERVER_BOUND:
        return "both"
    if client >= CLIENT_BOUND:
        return "client"
    if server >= SERVER_BOUND:
        return "**server**"
    return "neither"


def summarize(profile: dict[str, Any]) -> dict[str, Any]:
    runs = profile["runs"]
    base = BASELINE if BASELINE in runs else next(iter(runs))
    rows: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        rows[name] = {
            "n": rs[0]["calls"],
            "calls_per_s": median([r["calls_per_s"] for r in rs]),
            "cpu_ms_per_call": median([r["cpu_ms_per_call"] for r in rs]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in rs]),
            "client_util": median([r["client_util"] for r in rs]),
            "helper_us": 1000 * median([r["helper_threads_ms_per_call"] for r in rs]),
            "server_util": median([r.get("server_util", float("nan")) for r in rs]),
            "tput_ratio": median(paired(runs, name, base)),
            "cpu_ratio": median(paired(runs, name, base, "cpu_ms_per_call")),
        }
        rows[name]["bound"] = bound(rows[name])
    headline = []
    for t in TARGETS:
        if t.numerator not in runs or t.denominator not in runs:
            continue
        per_round = paired(runs, t.numerator, t.denominator)
        cpu = median(paired(runs, t.denominator, t.numerator, "cpu_ms_per_call"))
        ratio = median(per_round)
        headline.append(
            {
                **t._asdict(),
                "ratio": ratio,
                "per_round": per_round,
                "cpu_ratio": cpu,  # denominator's CPU per call over the numerator's
                "applies": profile["key"] == TARGET_PROFILE,
                "met": ratio >= t.minimum,
            }
        )
    notes = []
    foreign = median([r.get("foreign_load", 0.0) for rs in runs.values() for r in rs])
    if foreign > BUSY_MACHINE:
        notes.append(
            f"**Busy machine**: other processes used {foreign:.2f} CPUs on average during the runs "
            f"(of {os.cpu_count()}). Absolute figures are unreliable; the paired ratios are the most "
            "robust figure. Rerun on a quiet machine."
        )
    server_bound = [name for name, row in rows.items() if row["server_util"] >= SERVER_BOUND]
    if server_bound:
        notes.append(
            f"The server process was the bottleneck for {', '.join(server_bound)}: their calls/s (and "
            "ratios against them) understate how fast the client could go; compare CPU ms/call."
        )
    notes += [
        f"{name}: {row['helper_us']:.0f} µs/call of its CPU ran in helper threads, not on the event loop."
        for name, row in rows.items()
        if row["helper_us"] >= 5
    ]
    return {"rows": rows, "headline": headline, "notes": notes, "foreign_load": foreign}


def headline_table(profiles: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| ratio (calls/s, paired per round) | bodies | median | per-round range | target | met |",
        "| --- | --- | ---: | ---: | ---: | :---: |",
    ]
    for profile, s in zip(profiles, summaries, strict=True):
        for h in s["headline"]:
            target = f">= {h['minimum']:g}" if h["applies"] else f"({h['minimum']:g})"
            met = ("yes" if h["met"] else "**no**") if h["applies"] else "-"
            lines.append(
                f"| {h['what']} | {profile['key']} | {h['ratio']:.2f} | "
                f"{min(h['per_round']):.2f} - {max(h['per_round']):.2f} | {target} | {met} |"
            )
    return lines


def render(profiles: list[dict[str, Any]], summaries: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# Throughput: asyncvox vs the clients users would otherwise write",
        "",
        f"- date: {args.date}",
        f"- command: `{args.command}`",
        f"- workload: {args.n} ids per run ({args.slow_n} for httpx-pydantic), concurrency "
        f"{args.concurrency}, {args.rounds} interleaved rounds, each contender in a fresh process",
        machine_markdown(),
        "",
        "Ratios are taken within each round, then the median over rounds. `x tput` is calls/s over "
        "handtuned's (> 1 is faster); `x CPU` is client CPU per call over handtuned's (< 1 is cheaper). "
        "CPU is the client process's user + system time (helper threads included); peak RSS includes "
        "the interpreter. `bound` says which process was saturated (client CPU >= 90%, server CPU "
        ">= 85%). Targets apply to typical bodies; the small profile is shown for the per-request "
        "overhead.",
        "",
        "## Headline",
        "",
        *headline_table(profiles, summaries),
    ]
    for profile, s in zip(profiles, summaries, strict=True):
        lines += [
            "",
            f"## {profile['label']}",
            "",
            f"server: `{profile['server']}`; mean body over the first ids: {profile['body_kb']:.1f} KB",
            "",
            "| contender | ids | calls/s | x tput | CPU ms/call | x CPU | peak RSS MB | client CPU | "
            "server CPU | bound |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for name in [n for n in ROUND_ORDER if n in s["rows"]]:
            row = s["rows"][name]
            lines.append(
                f"| {name} | {row['n']:,} | {row['calls_per_s']:,.0f} | {row['tput_ratio']:.2f} | "
                f"{row['cpu_ms_per_call']:.3f} | {row['cpu_ratio']:.2f} | {row['peak_rss_mb']:.1f} | "
                f"{row['client_util']:.0%} | {row['server_util']:.0%} | {row['bound']} |"
            )
        lines.append("")
        for h in s["headline"]:
            lines.append(
                f"- {h['what']}: **{h['ratio']:.2f}x** calls/s (per round: "
                f"{', '.join(f'{x:.2f}' for x in h['per_round'])}); {h['denominator']} uses "
                f"{h['cpu_ratio']:.2f}x the client CPU per call of {h['numerator']}."
            )
        lines += [f"- {note}" for note in s["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=4000, help="ids per run (default 4000)")
    parser.add_argument(
        "--slow-n", type=int, default=1000, help="ids per run for httpx-pydantic (default 1000)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument(
        "--profiles", default="typical,small", help=f"comma-separated, of {', '.join(PROFILES)}"
    )
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated (default: all)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each round, wait up to this many seconds for an idle machine (0: don't)",
    )
    parser.add_argument(
        "--demo-server",
        action="store_true",
        help="serve from python -m asyncvox.testing (aiohttp) instead of the faster _fastserver.py",
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
    names = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if not names or any(name not in CONTENDER_SPECS for name in names):
        parser.error(f"contenders are {', '.join(CONTENDERS)}")
    args.command = shlex.join(["python", "benchmarks/bench_throughput.py", *sys.argv[1:]])
    args.date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    profiles = [run_profile(key, names, args) for key in keys]
    summaries = [summarize(p) for p in profiles]
    report = render(profiles, summaries, args)
    print("\n" + report)
    data = {
        "date": args.date,
        "command": args.command,
        "machine": machine_info(),
        "profiles": [
            {
                **{k: v for k, v in {**p, **s}.items() if k != "runs"},
                "calls_per_s_by_round": {
                    name: [r["calls_per_s"] for r in runs] for name, runs in p["runs"].items()
                },
                "cpu_ms_per_call_by_round": {
                    name: [r["cpu_ms_per_call"] for r in runs] for name, runs in p["runs"].items()
                },
            }
            for p, s in zip(profiles, summaries, strict=True)
        ],
    }
    if args.out == RESULTS_DIR / "throughput.md":
        write_report("throughput", report, data)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
