"""Scaling and flat memory: time per call and peak RSS as a batch grows from 1k to 100k ids.

Each run is a fresh process (pinned to CPU 0) that streams ``iter_calls`` outcomes from
the loopback server (its own process on CPU 1) straight to a JSONL file, as an export
does: the ids come from a generator (the input is never a list), each outcome's ``call``
is touched and its ``raw`` bytes are written. Reported per size: µs per call (wall),
client CPU µs per call, peak RSS (interpreter included) and peak RSS above what the
process held after its imports.

With ``dedupe=False`` nothing grows with the input, so peak RSS at 100k ids should stay
within 1.2x of 10k (the target); with dedupe on (the default) the set of seen ids grows
by roughly 100 bytes per id, reported beside it. Sizes up to ``--repeat-below`` ids run
``--repeat`` times (median), larger ones once.

Bodies: small (``--turns 6``, ~4 KB) by default, so that 100k ids take ~15 s and the
per-request cost shows; ``--turns 0`` serves the typical ~26 KB bodies (slower). The
server is ``benchmarks/_fastserver.py`` (same bodies as ``python -m asyncvox.testing``).

    python benchmarks/bench_memory.py                       # 1k, 10k, 100k; ~1 minute
    python benchmarks/bench_memory.py --sizes 1000,10000,30000 --repeat 1

Written to ``benchmarks/results/memory.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    API_KEY,
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

#: The target: peak RSS at the largest size over the second largest, dedupe off.
FLAT_TARGET = 1.2


def child(base: str, n: int, dedupe: bool, concurrency: int) -> None:
    import asyncvox

    async def workload() -> int:
        found = 0
        with tempfile.TemporaryDirectory() as tmp, open(os.path.join(tmp, "calls.jsonl"), "wb") as out:  # noqa: ASYNC230 - as an export does
            async with asyncvox.Client(API_KEY, base, concurrency=concurrency) as client:
                ids = (f"mem-{i:07d}" for i in range(n))  # a generator: the input is never a list
                async with client.iter_calls(ids, dedupe=dedupe) as stream:
                    async for outcome in stream:
                        if outcome.call is not None and outcome.raw is not None:
                            out.write(outcome.raw)
                            out.write(b"\n")
                            found += 1
        return found

    emit(measure(workload, n))


def run_size(server: Server, n: int, dedupe: bool, args: argparse.Namespace) -> dict[str, Any]:
    repeats = args.repeat if n <= args.repeat_below else 1
    runs = []
    for _ in range(repeats):
        wait_quiet(60.0)
        argv = [__file__, "--child", server.base_url, str(n), "1" if dedupe else "0"]
        r = run_contender([*argv, "--concurrency", str(args.concurrency)], server=server, timeout=900)
        if r["found"] != n:
            raise RuntimeError(f"found {r['found']} of {n} calls")
        runs.append(r)
    row = {
        "n": n,
        "dedupe": dedupe,
        "runs": repeats,
        "us_per_call": 1e6 * median([r["wall_s"] / n for r in runs]),
        "cpu_us_per_call": 1000 * median([r["cpu_ms_per_call"] for r in runs]),
        "peak_rss_mb": median([r["peak_rss_mb"] for r in runs]),
        "rss_growth_mb": median([r["peak_rss_mb"] - r["rss_after_imports_mb"] for r in runs]),
        "server_util": median([r.get("server_util", float("nan")) for r in runs]),
        "foreign_load": median([r.get("foreign_load", 0.0) for r in runs]),
    }
    print(
        f"  n={n:>7,} dedupe={'on' if dedupe else 'off':3}: {row['us_per_call']:6.1f} µs/call, "
        f"CPU {row['cpu_us_per_call']:6.1f} µs/call, peak RSS {row['peak_rss_mb']:.1f} MB "
        f"(+{row['rss_growth_mb']:.1f} MB after imports)",
        flush=True,
    )
    return row


def render(
    rows: list[dict[str, Any]], flat: list[dict[str, Any]], args: argparse.Namespace, server: str
) -> str:
    lines = [
        "# Scaling and flat memory",
        "",
        f"- date: {args.date}",
        f"- command: `{args.command}`",
        f"- workload: {args.body}, concurrency {args.concurrency}, ids from a generator, outcomes "
        "streamed to a JSONL file (`outcome.call` touched, `outcome.raw` written); sizes up to "
        f"{args.repeat_below:,} ids: median of {args.repeat} runs, larger: one run",
        f"- server: `{server}`",
        machine_markdown(),
        "",
        "| ids | dedupe | µs per call | calls/s | client CPU µs/call | peak RSS MB | RSS above imports MB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {'on' if r['dedupe'] else 'off'} | {r['us_per_call']:.1f} | "
            f"{1e6 / r['us_per_call']:,.0f} | {r['cpu_us_per_call']:.1f} | {r['peak_rss_mb']:.1f} | "
            f"{r['rss_growth_mb']:.1f} |"
        )
    lines += [
        "",
        "| flat memory | dedupe | peak RSS ratio | target | met |",
        "| --- | --- | ---: | ---: | :---: |",
    ]
    for f in flat:
        target = f"<= {FLAT_TARGET:g}" if not f["dedupe"] else "(none)"
        met = ("yes" if f["met"] else "**no**") if not f["dedupe"] else "-"
        lines.append(
            f"| {f['large']:,} vs {f['small']:,} ids | {'on' if f['dedupe'] else 'off'} | "
            f"{f['ratio']:.2f} | {target} | {met} |"
        )
    busy = median([r["foreign_load"] for r in rows])
    if busy > 0.15:
        lines += ["", f"- **Busy machine**: other processes used {busy:.2f} CPUs during the runs."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated id counts")
    parser.add_argument("--turns", type=int, default=6, help="transcript turns per body; 0 = typical bodies")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size for the smaller sizes")
    parser.add_argument("--repeat-below", type=int, default=10_000, help="sizes up to this are repeated")
    parser.add_argument("--child", nargs=3, metavar=("BASE", "N", "DEDUPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        base, n, dedupe = args.child
        child(base, int(n), dedupe == "1", args.concurrency)
        return
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if len(sizes) < 2:
        parser.error("--sizes needs at least two sizes")
    args.command = shlex.join(["python", "benchmarks/bench_memory.py", *sys.argv[1:]])
    args.date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    server_args = ["--turns", str(args.turns)] if args.turns else []
    args.body = f"small bodies (--turns {args.turns})" if args.turns else "typical bodies (~26 KB)"
    small, large = sizes[-2], sizes[-1]
    rows = []
    with Server(server_args, fast=True) as server:
        print(f"{args.body}: {server.command}", flush=True)
        for n in sizes:
            rows.append(run_size(server, n, False, args))
        for n in (small, large):
            rows.append(run_size(server, n, True, args))
    flat = []
    for dedupe in (False, True):
        by_n = {r["n"]: r for r in rows if r["dedupe"] == dedupe}
        ratio = by_n[large]["peak_rss_mb"] / by_n[small]["peak_rss_mb"]
        flat.append(
            {"dedupe": dedupe, "small": small, "large": large, "ratio": ratio, "met": ratio <= FLAT_TARGET}
        )
    report = render(rows, flat, args, server.command)
    print("\n" + report)
    data = {
        "date": args.date,
        "command": args.command,
        "machine": machine_info(),
        "body": args.body,
        "rows": rows,
        "flat": flat,
        "target": FLAT_TARGET,
    }
    print(f"written to {write_report('memory', report, data)}")


if __name__ == "__main__":
    main()
