"""Exporting calls to tables: time against decoding alone, and flat memory from 10k to 100k calls.

A JSONL file of N synthetic calls (the demo server's bodies, typical ~26 KB unless
``--turns`` says otherwise; every line a distinct id) is written once per size, then each
contender runs on it in a fresh process (pinned to CPU 0 where possible):

* ``decode``  -- read the lines and decode each into ``asyncvox.Call`` (msgspec, one
  reused decoder): the floor, what any typed use of the file costs;
* ``export``  -- ``asyncvox.analysis.export_jsonl`` to Parquet (the six tables, row
  groups of 1,000 calls, parts of 20,000);
* ``report``  -- ``asyncvox.analysis.write_report`` of the same file (streams it through
  the table builder, keeps a few columns, draws eight plots).

Reported per size: seconds, µs per call, the ratio to ``decode``, peak RSS (the
process's ``ru_maxrss``, interpreter and imports included) and peak RSS above what the
process held after its imports. The target: export's peak RSS at the largest size within
1.2x of the second largest (memory does not grow with the file).

    python benchmarks/bench_analysis.py                     # 10k and 100k calls; ~3 minutes
    python benchmarks/bench_analysis.py --sizes 2000,10000 --turns 20

Written to ``benchmarks/results/analysis.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CLIENT_CPU, machine_markdown, pin, wait_quiet, write_report

FLAT_TARGET = 1.2
MODES = ("decode", "export", "report")
_POOL = 256


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def make_file(path: Path, n: int, turns: int | None) -> int:
    """N calls from a pool of distinct bodies, each line under its own id; returns bytes."""
    import msgspec

    from asyncvox.testing import synth_call

    pool = []
    for k in range(_POOL):
        body = msgspec.json.encode(synth_call(f"pool-{k}", seed=11, turns=turns, drift=k % 20 == 0))
        head = body.index(b'"customerCallId"')  # the id comes first: swap it per line
        pool.append(body[head - 1 :])
    size = 0
    with path.open("wb") as fh:
        for i in range(n):
            line = b'{"id":"bench-%07d"' % i + pool[i % _POOL] + b"\n"
            fh.write(line)
            size += len(line)
    return size


def child(mode: str, path: str, n: int) -> None:
    """One contender in this fresh process; prints its figures as JSON."""
    import msgspec

    import asyncvox
    from asyncvox import analysis

    analysis.schemas()  # import pyarrow now, so that it counts as imports, not as work
    if mode == "report":
        import matplotlib.figure  # noqa: F401

    rss_imports = _peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "decode":
            decode = msgspec.json.Decoder(asyncvox.Call).decode
            count = 0
            with open(path, "rb") as fh:
                for line in fh:
                    decode(line)
                    count += 1
        elif mode == "export":
            count = analysis.export_jsonl(path, Path(tmp) / "tables").calls
        else:
            count = analysis.write_report(path, Path(tmp) / "report.html").calls
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert count == n, (mode, count, n)
    print(
        json.dumps(
            {
                "mode": mode,
                "calls": n,
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mb": _peak_rss_mb(),
                "rss_imports_mb": rss_imports,
            }
        ),
        flush=True,
    )


def run_child(mode: str, path: Path, n: int) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, str(path), str(n)], stdout=subprocess.PIPE, text=True
    )
    pin(proc.pid, CLIENT_CPU)
    out, _ = proc.communicate(timeout=3600)
    if proc.returncode:
        raise SystemExit(f"{mode} on {n} calls failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="calls per file, comma-separated")
    parser.add_argument(
        "--turns", type=int, default=None, help="transcript length (default: typical ~26 KB bodies)"
    )
    parser.add_argument("--modes", default=",".join(MODES), help=f"which of {', '.join(MODES)}")
    parser.add_argument("--wait-quiet", type=float, default=60.0, help="seconds to wait for an idle machine")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path, n = args.child
        child(mode, path, int(n))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    runs: list[dict[str, Any]] = []
    files: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="asyncvox-bench-analysis-") as tmp:
        for n in sizes:
            path = Path(tmp) / f"calls-{n}.jsonl"
            files[n] = make_file(path, n, args.turns)
            for mode in modes:
                wait_quiet(args.wait_quiet)
                r = run_child(mode, path, n)
                runs.append(r)
                print(
                    f"{n:>8,} calls  {mode:<7} {r['wall_s']:7.2f} s  peak RSS {r['peak_rss_mb']:6.1f} MB",
                    flush=True,
                )
            path.unlink()
    data = {"runs": runs, "file_bytes": files, "turns": args.turns, "target": FLAT_TARGET}
    markdown, flat = render(data, sizes, modes)
    data["flat"] = flat
    argv = shlex.join(["python", "benchmarks/bench_analysis.py", *sys.argv[1:]])
    file_sizes = ", ".join(f"{n:,} calls = {files[n] / 1e6:,.0f} MB" for n in sizes)
    header = [
        "# Export to tables and the report",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{argv}`",
        "- workload: a JSONL file of synthetic calls ("
        + ("typical ~26 KB bodies" if args.turns is None else f"--turns {args.turns}")
        + f", 5% drifted, distinct ids), {file_sizes}; "
        "each contender in a fresh process, one run per size",
        machine_markdown(),
        "",
    ]
    path = write_report("analysis", "\n".join(header) + "\n" + markdown, data)
    print(f"\n{markdown}\nwritten to {path}")


def render(data: dict[str, Any], sizes: list[int], modes: list[str]) -> tuple[str, dict[str, Any] | None]:
    runs = {(r["calls"], r["mode"]): r for r in data["runs"]}
    lines = [
        "| calls | contender | seconds | µs per call | vs decode | peak RSS MB | RSS above imports MB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sizes:
        base = runs.get((n, "decode"))
        for mode in modes:
            r = runs[(n, mode)]
            ratio = f"{r['wall_s'] / base['wall_s']:.1f}x" if base else "-"
            lines.append(
                f"| {n:,} | {mode} | {r['wall_s']:.2f} | {1e6 * r['wall_s'] / n:.0f} | {ratio} | "
                f"{r['peak_rss_mb']:.1f} | {r['peak_rss_mb'] - r['rss_imports_mb']:.1f} |"
            )
    flat = None
    if len(sizes) >= 2 and "export" in modes:
        big, small = runs[(sizes[-1], "export")], runs[(sizes[-2], "export")]
        ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
        flat = {"ratio": ratio, "met": ratio <= FLAT_TARGET, "sizes": [sizes[-2], sizes[-1]]}
        lines += [
            "",
            "| flat memory | peak RSS ratio | target | met |",
            "| --- | ---: | ---: | :---: |",
            f"| export, {sizes[-1]:,} vs {sizes[-2]:,} calls | {ratio:.2f} | <= {FLAT_TARGET:g} | "
            f"{'yes' if flat['met'] else '**no**'} |",
        ]
        if "report" in modes:
            rb, rs = runs[(sizes[-1], "report")], runs[(sizes[-2], "report")]
            report_ratio = rb["peak_rss_mb"] / rs["peak_rss_mb"]
            what = f"report, {sizes[-1]:,} vs {sizes[-2]:,} calls"
            lines.append(f"| {what} | {report_ratio:.2f} | (info) | - |")
    lines += [
        "",
        "`decode` is the floor: any typed use of the file decodes every call. `export` writes all six "
        "tables (every message, evaluation result, latency block and interruption), so it also pays "
        "for building Arrow columns and writing compressed Parquet. The set of call ids seen (to skip "
        "duplicate lines) is the only thing that grows with the file (~100 bytes per call); the "
        "report keeps a few columns of `calls` and `evaluation_results` per call on top.",
        "",
    ]
    return "\n".join(lines), flat


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
