"""The lenient path: how long one decode of a drifted or hostile call takes, by size.

The decode is synchronous (it runs in the consumer's task), so its time is also how long
it holds the event loop. Cases:

* ``drift-N``: N messages, each with one value of the wrong type (``"duration": "n/a"``),
  the issue-10 shape (10,000 messages ~ 600 KB). Linear repair means the time per
  message stays flat as N grows;
* ``junk-1000``: 1,000 ints among the messages (dropped);
* ``deep-1k`` / ``deep-100k``: metadata nested 1,000 / 100,000 levels (beyond msgspec:
  split by the non-recursive scanner);
* ``surrogate``: a realistic ~26 KB call with one lone surrogate escape.

Median of ``--rounds`` (the process pinned to CPU 0). Written to
``benchmarks/results/repair.md`` (and ``.json``).

    python benchmarks/bench_repair.py [--rounds 5] [--max 100000]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
from _common import CLIENT_CPU, machine_info, machine_markdown, pin, write_report

from asyncvox._decode import decode_call
from asyncvox.testing import synth_call


def _drift(n: int) -> tuple[bytes, int]:
    messages = [{"id": f"m{i}", "role": "user", "message": "hi", "duration": "n/a"} for i in range(n)]
    return msgspec.json.encode({"id": "c", "messages": messages}), n


def _junk() -> tuple[bytes, int]:
    return msgspec.json.encode({"id": "c", "messages": list(range(1000))}), 0


def _deep(depth: int) -> tuple[bytes, int]:
    return b'{"id":"c","metadata":' + b"[" * depth + b"]" * depth + b"}", 0


def _surrogate() -> tuple[bytes, int]:
    call = msgspec.json.encode(synth_call("s-1"))
    return call.replace(b'"notes":null', b'"notes":"cut \\ud83d"', 1), len(synth_call("s-1")["messages"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case (default 5)")
    parser.add_argument("--max", type=int, default=100_000, help="largest drift-N (default 100000)")
    args = parser.parse_args()
    pin(os.getpid(), CLIENT_CPU)
    cases = {f"drift-{n}": _drift(n) for n in (1_000, 10_000, 100_000) if n <= args.max}
    cases.update(
        {
            "junk-1000": _junk(),
            "deep-1k": _deep(1_000),
            "deep-100k": _deep(100_000),
            "surrogate": _surrogate(),
        }
    )
    rows = []
    results = {}
    for name, (body, messages) in cases.items():
        decode_call(body, name)  # warm up (and check it decodes)
        samples = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            decode_call(body, name)
            samples.append(time.perf_counter() - t0)
        seconds = statistics.median(samples)
        per_message = seconds / messages * 1e6 if messages else None
        results[name] = {
            "bytes": len(body),
            "ms": seconds * 1e3,
            "mb_per_s": len(body) / seconds / 1e6,
            "us_per_message": per_message,
        }
        per = f"{per_message:.2f}" if per_message is not None else "-"
        speed = len(body) / seconds / 1e6
        rows.append(f"| {name} | {len(body) / 1e3:,.0f} | {seconds * 1e3:.1f} | {speed:.1f} | {per} |")
    table = "\n".join(
        [
            f"median of {args.rounds} rounds; one decode is also how long it holds the event loop",
            "",
            "| case | KB | ms per decode | MB/s | µs per message |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    print(table)
    command = shlex.join(["python", "benchmarks/bench_repair.py", *sys.argv[1:]])
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = f"# Lenient decode\n\n- date: {date}\n- command: `{command}`\n{machine_markdown()}\n\n{table}\n"
    data = {"date": date, "command": command, "machine": machine_info(), "cases": results}
    write_report("repair", report, data)


if __name__ == "__main__":
    main()
