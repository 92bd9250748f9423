"""Flat memory: peak RSS streaming 10k vs 100k ids from the loopback server to a file.

Each run is a fresh process that streams ``iter_calls`` outcomes straight to a JSONL file
(the server's raw bytes, as an export does). With ``dedupe=False`` nothing grows with the
input, so the ratio of peak RSS at 100k to 10k should be close to 1; with dedupe on the
set of seen ids grows by a few dozen bytes per id, reported beside it.

    python benchmarks/bench_memory.py [--small 10000] [--large 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, RESULTS_DIR, Server, emit, machine_info, measure, run_contender


def child(base: str, n: int, dedupe: bool) -> None:
    import asyncvox

    async def workload() -> int:
        found = 0
        with tempfile.TemporaryDirectory() as tmp, open(os.path.join(tmp, "calls.jsonl"), "wb") as out:  # noqa: ASYNC230 - as an export does
            async with asyncvox.Client(API_KEY, base, concurrency=32) as client:
                ids = (f"mem-{i:07d}" for i in range(n))  # a generator: the input is never a list
                async with client.iter_calls(ids, dedupe=dedupe) as stream:
                    async for outcome in stream:
                        if outcome.raw is not None:
                            out.write(outcome.raw)
                            out.write(b"\n")
                            found += 1
        return found

    emit(measure(workload, n))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, metavar=("BASE", "N", "DEDUPE"))
    args = parser.parse_args()
    if args.child:
        base, n, dedupe = args.child
        child(base, int(n), dedupe == "1")
        return
    results: dict[tuple[int, bool], dict[str, float]] = {}
    with Server(["--turns", "6"]) as server:
        for dedupe in (False, True):
            for n in (args.small, args.large):
                r = run_contender(
                    [__file__, "--child", server.base_url, str(n), "1" if dedupe else "0"],
                    server=server,
                    timeout=900,
                )
                results[(n, dedupe)] = r
                print(
                    f"n={n} dedupe={dedupe}: peak RSS {r['peak_rss_mb']:.1f} MB, "
                    f"{r['calls_per_s']:.0f} calls/s",
                    flush=True,
                )
    rows = []
    for dedupe in (False, True):
        small, large = results[(args.small, dedupe)], results[(args.large, dedupe)]
        rows.append(
            f"| {'on' if dedupe else 'off'} | {small['peak_rss_mb']:.1f} | {large['peak_rss_mb']:.1f} | "
            f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f} | "
            f"{1e6 / small['calls_per_s']:.0f} / {1e6 / large['calls_per_s']:.0f} |"
        )
    table = "\n".join(
        [
            f"| dedupe | peak RSS {args.small:,} ids (MB) | peak RSS {args.large:,} ids (MB) | ratio | "
            "µs per call (small / large) |",
            "| --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
    info = machine_info()
    report = (
        f"# Flat memory\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python benchmarks/bench_memory.py`; "
        "~2 KB bodies (`--turns 6`), concurrency 32, outcomes streamed to a file.\n\n"
        f"{table}\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n"
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "memory.md").write_text(report)
    print(table)


if __name__ == "__main__":
    main()
