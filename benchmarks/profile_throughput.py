"""Where does asyncvox spend its time per request, beyond the hand-tuned loop?

Runs the contenders of ``bench_throughput.py`` once each against a fresh loopback server
(same pinning, same ids, the fast server unless ``--demo-server``), with cProfile on around
the timed section only, then prints per request: the profiled time by area (asyncvox,
aiohttp, asyncio, executor hops, msgspec decode, socket I/O ...), the difference between
the contenders, and the top functions. cProfile sees the event loop's thread only; the
CPU that helper threads burn (e.g. aiohttp's ``trust_env`` look-ups in the default
executor) is measured separately and shown as its own line. cProfile inflates pure-Python
code more than C code: read the figures as a breakdown, and ``bench_throughput.py`` for
the real cost.

Run::

    python benchmarks/profile_throughput.py                       # typical bodies, 5000 ids
    python benchmarks/profile_throughput.py --profile small --top 40
    python benchmarks/profile_throughput.py --tool pyinstrument   # pip install pyinstrument
    python benchmarks/profile_throughput.py --contenders asyncvox-uvloop,raw-uvloop \\
        --out benchmarks/results/profile-uvloop.md

The ``.prof`` / pyinstrument files are kept in ``--out-dir`` (default: a temp directory);
``--out FILE.md`` also writes the breakdown there (and, with cProfile, a ``.json`` summary
that ``run.py`` reads).
"""

import argparse
import datetime as dt
import json
import os
import pstats
import shlex
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import Server, run_contender
from bench_throughput import CONTENDERS, PROFILES

SCRIPT = str(Path(__file__).resolve().with_name("bench_throughput.py"))

#: (area, substrings of the cProfile key "file:line(function)"), first match wins.
AREAS: list[tuple[str, tuple[str, ...]]] = [
    (
        "executor hops (run_in_executor / to_thread)",
        (
            "concurrent/futures",
            "threading.py",
            "asyncio/threads.py",
            "run_in_executor",
            "_chain_future",
            "_copy_future_state",
            "_set_state",
            "wrap_future",
            "_call_set_state",
        ),
    ),
    ("msgspec decode (C)", ("method 'decode' of 'msgspec",)),
    ("socket send/recv (C)", ("method 'recv' of", "method 'send' of", "method 'recv_into'")),
    ("waiting in epoll (idle)", ("method 'poll' of 'select.epoll'",)),
    ("asyncvox", ("asyncvox/",)),
    ("benchmark loop", ("bench_throughput.py", "_common.py")),
    ("aiohttp / yarl / multidict", ("aiohttp/", "yarl/", "multidict/", "propcache/")),
    ("asyncio event loop", ("asyncio/",)),
]


def area_of(key: tuple[str, int, str]) -> str:
    text = f"{key[0]}:{key[1]}({key[2]})"
    for area, needles in AREAS:
        if any(n in text for n in needles):
            return area
    return "other (builtins, stdlib)"


def load(path: Path) -> dict[tuple[str, int, str], tuple[int, float]]:
    """``{function: (calls, tottime s)}`` from a cProfile dump."""
    stats: Any = pstats.Stats(str(path)).stats
    return {key: (value[1], value[2]) for key, value in stats.items()}


def by_area(funcs: dict[tuple[str, int, str], tuple[int, float]], n: int) -> dict[str, float]:
    areas: dict[str, float] = defaultdict(float)
    for key, (_calls, tottime) in funcs.items():
        areas[area_of(key)] += 1e6 * tottime / n
    return areas


def short(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":
        return func
    parts = Path(file).parts
    tail = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{tail}:{line}({func})"


def report(results: dict[str, dict[str, Any]], files: dict[str, Path], n: int, top: int) -> str:
    """The breakdown as plain text: by area for every contender, then each one's top functions."""
    funcs = {name: load(path) for name, path in files.items()}
    areas = {name: by_area(f, n) for name, f in funcs.items()}
    names = list(files)
    helper = {name: 1000 * results[name]["helper_threads_ms_per_call"] for name in names}
    width = max(len(a) for a, _ in AREAS) + 2
    col = max(12, *(len(name) + 2 for name in names))
    head = "".join(f"{name:>{col}}" for name in names)
    diff = len(names) > 1
    out = [
        f"profiled µs per request, by area (n={n})".ljust(width + 2)
        + head
        + ("  first-second" if diff else "")
    ]
    rows = sorted({a for ar in areas.values() for a in ar}, key=lambda a: -areas[names[0]].get(a, 0.0))
    for area in [*rows, "helper threads (CPU, not profiled)"]:
        if area in rows:
            values = [areas[name].get(area, 0.0) for name in names]
        else:
            values = [helper[name] for name in names]
        line = f"  {area:<{width}}" + "".join(f"{v:{col}.1f}" for v in values)
        out.append(line + (f"{values[0] - values[1]:+14.1f}" if diff else ""))
    out.append(
        "  profiled function calls per request: "
        + ", ".join(f"{name} {sum(c for c, _ in funcs[name].values()) / n:.0f}" for name in names)
    )
    for name in names:
        r = results[name]
        out += [
            "",
            f"{name}: {r['calls_per_s']:,.0f} calls/s under the profiler, "
            f"{r['cpu_ms_per_call'] * 1000:.0f} µs CPU/call; top {top} by own time "
            "(µs per request, calls per request)",
        ]
        ranked = sorted(funcs[name].items(), key=lambda kv: -kv[1][1])[:top]
        out += [
            f"  {1e6 * tottime / n:8.1f}  {calls / n:6.2f}  {short(key)}" for key, (calls, tottime) in ranked
        ]
    return "\n".join(out)


#: Code that asyncvox adds per request over a hand-written loop (for the summary).
OWN_CODE = ("asyncvox/", "asyncio/queues.py", "urllib/parse.py")


def summary(files: dict[str, Path], n: int, top: int = 8) -> dict[str, Any]:
    """Figures for ``run.py``: µs by area, profiled calls per request, top own-code functions."""
    funcs = {name: load(path) for name, path in files.items()}
    return {
        "n": n,
        "areas_us": {name: dict(by_area(f, n)) for name, f in funcs.items()},
        "calls_per_request": {name: sum(c for c, _ in f.values()) / n for name, f in funcs.items()},
        "own_code_calls_per_request": {
            name: {part: sum(c for k, (c, _) in f.items() if part in k[0]) / n for part in OWN_CODE}
            for name, f in funcs.items()
        },
        "own_code_top": {
            name: [
                [short(key), 1e6 * tottime / n, calls / n]
                for key, (calls, tottime) in sorted(f.items(), key=lambda kv: -kv[1][1])
                if any(part in key[0] for part in OWN_CODE)
            ][:top]
            for name, f in funcs.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--contenders", default="asyncvox,handtuned", help="comma-separated; first minus second"
    )
    parser.add_argument("--profile", choices=list(PROFILES), default="typical")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tool", choices=["cprofile", "pyinstrument"], default="cprofile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out-dir", type=Path, default=None, help="where the profiles go (default: temp)")
    parser.add_argument("--out", type=Path, default=None, help="also write the breakdown as markdown here")
    parser.add_argument(
        "--demo-server", action="store_true", help="profile against python -m asyncvox.testing instead"
    )
    args = parser.parse_args()
    names = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if any(name not in CONTENDERS for name in names):
        parser.error(f"contenders are {CONTENDERS}")
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="asyncvox-profile-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".prof" if args.tool == "cprofile" else ".txt"
    files: dict[str, Path] = {}
    results: dict[str, dict[str, Any]] = {}
    with Server(PROFILES[args.profile][1], fast=not args.demo_server) as server:
        print(f"server: {server.command}", file=sys.stderr)
        for name in names:
            files[name] = out_dir / f"{args.profile}-{name}{suffix}"
            os.environ["BENCH_PROFILE"] = str(files[name])
            argv = [SCRIPT, "--child", name, "--base", server.base_url, "--n", str(args.n)]
            results[name] = run_contender([*argv, "--concurrency", str(args.concurrency)], server=server)
    os.environ.pop("BENCH_PROFILE", None)
    if args.tool == "cprofile":
        text = report(results, files, args.n, args.top)
    else:
        text = "\n".join(f"===== {name}\n{path.read_text()}" for name, path in files.items())
    print("\n" + text)
    print(f"\nprofiles kept in {out_dir}")
    if args.out is not None:
        command = shlex.join(["python", "benchmarks/profile_throughput.py", *sys.argv[1:]])
        date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            f"# Profile: {' vs '.join(names)}, {PROFILES[args.profile][0]}\n\n"
            f"{date}, `{command}`; server: `{server.command}`\n\n```\n{text}\n```\n"
        )
        if args.tool == "cprofile":
            data = {"date": date, "command": command, "profile": args.profile, **summary(files, args.n)}
            args.out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
