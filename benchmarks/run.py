"""Run every benchmark, print the tables and write ``benchmarks/results/README.md``.

One command for the whole comparison (each step is one of the scripts beside this file,
run in its own process; see their docstrings for what they measure):

1. ``bench_decode.py``     -- decode only, asyncvox vs pydantic v2 / orjson / json;
2. ``bench_throughput.py`` -- end to end, asyncvox vs hand-tuned aiohttp + msgspec, raw
   aiohttp, naive aiohttp + ``resp.json()``, httpx + pydantic v2, and uvloop variants, on
   typical (~26 KB) and small (~4 KB) bodies;
3. ``bench_memory.py``     -- time per call and peak RSS at 1k, 10k, 100k ids (flat memory);
4. ``bench_ratelimit.py``  -- a rate-limited remote: time over N/R, 429s, ids lost;
   ``bench_analysis.py``   -- export to Parquet and the report vs decoding alone, flat memory;
5. ``profile_throughput.py`` -- where the time goes: asyncvox vs handtuned on small bodies
   (asyncvox's per-request overhead), and the pair of any headline target that was missed.

Then it writes ``benchmarks/results/README.md``: the headline ratios against their targets,
what each benchmark measures and how to run it, the analysis of any missed target, and
the latest tables (from ``benchmarks/results/*.md``) with machine details, command and
date. ``benchmarks/README.md`` is the curated page (the tables from here, and the analysis
of the governor and the fleet written by hand beside them): this script never writes it,
so a run cannot wipe that analysis; copy what changed over by hand.

    python benchmarks/run.py            # the full run, ~6 minutes on 2 cores
    python benchmarks/run.py --quick    # ~1 minute smoke run; results go to a temp dir
    python benchmarks/run.py --only throughput,decode   # some steps, README from the rest

Before each step it waits (up to ``--wait-quiet`` seconds) for the machine to be idle, and
the throughput and memory scripts do the same before each round or run: figures taken
while other processes compete for the CPUs are noise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_DIR, QUIET_LOAD, REPO_DIR, machine_markdown, wait_quiet

#: step name -> (script, full-run arguments, quick-run arguments)
STEPS: dict[str, tuple[str, list[str], list[str]]] = {
    "decode": ("bench_decode.py", ["--rounds", "25"], ["--rounds", "5"]),
    "throughput": (
        "bench_throughput.py",
        ["--n", "4000", "--slow-n", "1000", "--rounds", "9"],
        ["--n", "1500", "--slow-n", "300", "--rounds", "2"],
    ),
    "memory": (
        "bench_memory.py",
        ["--sizes", "1000,10000,100000"],
        ["--sizes", "1000,10000,30000", "--repeat", "1"],
    ),
    "ratelimit": ("bench_ratelimit.py", ["--n", "1000", "--rps", "100"], ["--n", "200", "--rps", "100"]),
    "analysis": (
        "bench_analysis.py",
        ["--sizes", "10000,100000"],
        ["--sizes", "2000,10000", "--turns", "20"],
    ),
}

#: What each script measures, for the README (script, what, run time with the defaults).
CATALOGUE = [
    (
        "bench_throughput.py",
        "End to end: the same ids at concurrency 32 through asyncvox (`iter_calls`, every safety "
        "feature on, `outcome.call` touched), a hand-tuned aiohttp + msgspec loop (the bar), raw "
        "aiohttp reading bytes (the ceiling), the naive aiohttp + `resp.json()` script, httpx + "
        "pydantic v2 (what generated SDKs do), and asyncvox / handtuned / raw on uvloop. Each run "
        "in a fresh process pinned to CPU 0, the server on CPU 1; interleaved rounds, paired "
        "ratios; calls/s, client CPU per call, peak RSS. Typical (~26 KB) and small (~4 KB) bodies.",
        "~3.5 min",
    ),
    (
        "bench_decode.py",
        "Decode only, on 200 realistic bodies (5% drifted): asyncvox's decoder vs msgspec in one "
        "pass vs pydantic v2 `model_validate_json` (equally drift-tolerant models) vs orjson and "
        "json into dicts; µs per call and MB/s.",
        "~5 s",
    ),
    (
        "bench_memory.py",
        "Scaling: time per call and peak RSS streaming 1k, 10k and 100k ids (from a generator, to "
        "a JSONL file) with `dedupe=False`, and with dedupe on beside it; the flat-memory ratio "
        "100k / 10k.",
        "~1 min",
    ),
    (
        "bench_ratelimit.py",
        "A rate-limited remote (R req/s, 50-150 ms latency, 429 + `Retry-After` beyond R): "
        "asyncvox learning R, asyncvox told R, and a generated-SDK-style gather + retries; time "
        "over the ideal N/R, share of 429s, ids lost.",
        "~30 s",
    ),
    (
        "bench_analysis.py",
        "Exporting a JSONL file of 10k and 100k calls to the six Parquet tables, and writing the "
        "HTML report, against decoding the same lines into `asyncvox.Call`; seconds, µs per call, "
        "peak RSS, and the flat-memory ratio 100k / 10k.",
        "~3 min",
    ),
    (
        "profile_throughput.py",
        "Where the time goes per request (cProfile or pyinstrument) for two contenders, by area "
        "(asyncvox, aiohttp, asyncio, msgspec, sockets ...) and by function.",
        "~10 s",
    ),
    (
        "count_instructions.py",
        "Not a step of this run: instructions per call of asyncvox and of the hand-tuned loop "
        "under callgrind (the client process; 1200 ids minus 200), a repeatable figure for the "
        "CPU bar where seconds drift.",
        "~3 min",
    ),
    (
        "tune_sim.py",
        "Not a step of this run: a random search over the governor's constants in the simulator "
        "(one shape first, then the best points on every shape at 30, 100 and 300/s), to tell "
        "whether other constants would do better without costing another shape.",
        "~8 min",
    ),
    (
        "run.py",
        "All of the above (the small-body profile, and a profile per missed target) and this README.",
        "~6 min; `--quick` ~1 min",
    ),
]


def run_step(script: str, args: list[str], env: dict[str, str]) -> float:
    """Run one script, its output streamed through; its wall time in seconds."""
    argv = [sys.executable, str(BENCH_DIR / script), *args]
    print(f"\n=== {shlex.join(['python', 'benchmarks/' + script, *args])}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=REPO_DIR, env=env, check=True)
    return time.perf_counter() - t0


def load_json(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def throughput_profile(data: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if data is None:
        return None
    return next((p for p in data["profiles"] if p["key"] == key), None)


def missed_targets(results: Path) -> list[dict[str, Any]]:
    """The throughput headline ratios that apply and were missed."""
    typical = throughput_profile(load_json(results, "throughput"), "typical")
    if typical is None:
        return []
    return [h for h in typical["headline"] if h["applies"] and not h["met"]]


def headline(results: Path) -> list[str]:
    """The headline table: every target, measured value, met or not."""
    lines = [
        "| what | measured | target | met | from |",
        "| --- | ---: | ---: | :---: | --- |",
    ]
    tp = load_json(results, "throughput")
    for key in ("typical", "small"):
        prof = throughput_profile(tp, key)
        if prof is None:
            continue
        for h in prof["headline"]:
            rng = f"{min(h['per_round']):.2f}-{max(h['per_round']):.2f}"
            if h["applies"]:
                target, met = f">= {h['minimum']:g}x", "yes" if h["met"] else "**no**"
            else:
                target, met = "(info)", "-"
            lines.append(
                f"| {h['what']}, calls/s, {key} bodies | **{h['ratio']:.2f}x** (rounds {rng}) | "
                f"{target} | {met} | throughput |"
            )
    dec = load_json(results, "decode")
    if dec is not None:
        met = "yes" if dec["met"] else "**no**"
        lines.append(
            "| asyncvox decode / pydantic v2 `model_validate_json`, drift included | "
            f"**{dec['ratio']:.1f}x** | >= {dec['target']:g}x | {met} | decode |"
        )
    mem = load_json(results, "memory")
    if mem is not None:
        for f in mem["flat"]:
            what = (
                f"peak RSS {f['large']:,} ids / {f['small']:,} ids, dedupe {'on' if f['dedupe'] else 'off'}"
            )
            if f["dedupe"]:
                lines.append(f"| {what} | {f['ratio']:.2f} | (info) | - | memory |")
            else:
                met = "yes" if f["met"] else "**no**"
                lines.append(f"| {what} | **{f['ratio']:.2f}** | <= {mem['target']:g} | {met} | memory |")
    an = load_json(results, "analysis")
    if an is not None and an.get("flat"):
        small, large = an["flat"]["sizes"]
        met = "yes" if an["flat"]["met"] else "**no**"
        what = f"export to Parquet, peak RSS {large:,} calls / {small:,} calls"
        lines.append(f"| {what} | **{an['flat']['ratio']:.2f}** | <= {an['target']:g} | {met} | analysis |")
        runs = {(r["calls"], r["mode"]): r for r in an["runs"]}
        if (large, "export") in runs and (large, "decode") in runs:
            ratio = runs[(large, "export")]["wall_s"] / runs[(large, "decode")]["wall_s"]
            what = f"export time / decode time, {large:,} calls"
            lines.append(f"| {what} | {ratio:.1f}x | (info) | - | analysis |")
    rl = load_json(results, "ratelimit")
    if rl is not None:
        for name, r in rl["results"].items():
            lines.append(
                f"| rate-limited remote, {name}: time / (N/R), ids lost | {r['time_over_ideal']:.2f}, "
                f"{r['lost']} lost | (info) | - | ratelimit |"
            )
    return lines


def _row(prof: dict[str, Any], name: str) -> dict[str, Any] | None:
    return prof["rows"].get(name)


def analysis(results: Path) -> list[str]:
    """What explains each missed target, from the measured figures, and what would be needed."""
    tp = load_json(results, "throughput")
    typical = throughput_profile(tp, "typical")
    small = throughput_profile(tp, "small")
    dec = load_json(results, "decode")
    missed = missed_targets(results)
    if typical is None:
        return ["No throughput results yet."]
    out: list[str] = [] if missed else ["Every headline target that applies was met in the latest run.", ""]
    decoder = dec["decoders"]["asyncvox (Call + raw)"] if dec else None
    decode_us = decoder["us_per_call"] if decoder else None
    decode_mbs = decoder["mb_per_s"] if decoder else float("nan")
    for h in missed:
        num, den = h["numerator"], h["denominator"]
        a, b = _row(typical, num), _row(typical, den)
        if a is None or b is None:
            continue
        a_us, b_us = 1000 * a["cpu_ms_per_call"], 1000 * b["cpu_ms_per_call"]
        out += [
            f"### {h['what']}: {h['ratio']:.2f}x, target {h['minimum']:g}x",
            "",
            (
                "Both contenders were client-bound, so calls/s follows client CPU per call"
                if a["bound"] == b["bound"] == "client"
                else f"Saturated: {num} {a['bound']}, {den} {b['bound']}; client CPU per call"
            )
            + f": {num} {a_us:.0f} µs, {den} {b_us:.0f} µs ({a_us - b_us:+.0f} µs).",
            "",
        ]
        if den.startswith("raw"):
            twin = "handtuned-uvloop" if den.endswith("uvloop") else "handtuned"
            ht = _row(typical, twin)
            budget = b_us / h["minimum"] - b_us
            out.append(
                f"- {den} reads the bytes and decodes nothing. Reaching {h['minimum']:g}x of it leaves "
                f"{budget:.0f} µs per call for everything {num} does on top: decoding a ~26 KB call "
                "into typed objects, outcomes, retries, the governor."
            )
            if decode_us is not None:
                ceiling = b_us / (b_us + decode_us)
                out.append(
                    f"- The decode alone costs {decode_us:.0f} µs per call (bench_decode, asyncvox's "
                    f"decoder, {decode_mbs:.0f} MB/s): a client with zero overhead beyond decoding "
                    f"would reach about {ceiling:.2f}x of {den}."
                )
            if ht is not None:
                ht_us = 1000 * ht["cpu_ms_per_call"]
                ht_ratio = median_ratio(tp, "typical", twin, den)
                av_ht = median_ratio(tp, "typical", num, twin)
                verdict = (
                    f"The gap to {den} is the decode, not asyncvox's machinery."
                    if av_ht >= 0.9
                    else f"asyncvox's machinery accounts for the {1 - av_ht:.0%} between them."
                )
                out.append(
                    f"- The hand-tuned loop on the same loop ({twin}: aiohttp + one reused msgspec "
                    f"decoder, nothing else) reaches {ht_ratio:.2f}x of {den} at {ht_us:.0f} µs per "
                    f"call; {num} reaches {av_ht:.2f}x of {twin}. {verdict}"
                )
            if small is not None and _row(small, num) is not None and _row(small, twin) is not None:
                extra = paired_cpu_us(small, num, twin)
                out.append(
                    f"- On small bodies (~4 KB, little to decode) {num} reaches "
                    f"{median_ratio(tp, 'small', num, den):.2f}x of {den} and {twin} "
                    f"{median_ratio(tp, 'small', twin, den):.2f}x; what separates {num} from {twin} "
                    f"there is asyncvox's per-request overhead, {extra:+.0f} µs of client CPU per call "
                    "(see below)."
                )
            out += [
                "",
                f"What would be needed: the typed decode of a 26 KB call in under {budget:.0f} µs "
                f"(~{26_000 / max(budget, 1):.0f} MB/s; asyncvox's decoder does {decode_mbs:.0f} MB/s), "
                "or decoding on another core than the event loop's (msgspec holds the GIL while "
                "decoding, so that takes a free-threaded interpreter and a decode thread; a second "
                "process only helps if the calls are used there, as shipping decoded objects back "
                "costs more than decoding them), or not "
                "decoding calls whose `call` is never read (a lazy `outcome.call`; this benchmark "
                "reads every one). A fairer bar for a typed client is the hand-tuned loop on the "
                "same event loop.",
                "",
            ]
        else:
            out += handtuned_miss(h, typical, results)
    out += overhead(tp)
    return out


def handtuned_miss(h: dict[str, Any], typical: dict[str, Any], results: Path) -> list[str]:
    """Why asyncvox missed its bar against the hand-tuned loop, and what closing the gap takes."""
    num, den, target = h["numerator"], h["denominator"], h["minimum"]
    rounds = h["per_round"]
    reached = sum(r >= target for r in rounds)
    diff = paired_cpu_us(typical, num, den)
    a_us = 1000 * typical["rows"][num]["cpu_ms_per_call"]
    need = a_us * (1 - h["ratio"] / target)
    out = [
        f"- The per-round ratios ranged {min(rounds):.2f}-{max(rounds):.2f}; {reached} of {len(rounds)} "
        f"rounds reached {target:g}x. The median of the per-round CPU differences is {diff:+.0f} µs per "
        f"call; the miss corresponds to about {need:.0f} µs per call ({need / a_us:.0%} of asyncvox's "
        f"{a_us:.0f} µs)"
        + (", within this machine's round-to-round noise." if min(rounds) < target < max(rounds) else "."),
    ]
    prof_path = results / f"profile-typical-{num}-vs-{den}.json"
    if prof_path.exists():
        prof = json.loads(prof_path.read_text())
        calls = prof["calls_per_request"]
        top = ", ".join(f"`{fn}` {us:.1f} µs ({c:.0f}x)" for fn, us, c in prof["own_code_top"][num][:6])
        out.append(
            f"- Per request asyncvox runs {calls[num]:.0f} profiled Python function calls against "
            f"{den}'s {calls[den]:.0f}; its own code with the most time (cProfile, own time per "
            f"request, calls per request): {top}."
        )
    queue_calls = ""
    if prof_path.exists():
        own = json.loads(prof_path.read_text())["own_code_calls_per_request"][num]
        queue_calls = (
            f" ({own['asyncio/queues.py']:.0f} Python calls per request in `asyncio/queues.py`, "
            f"{own['asyncvox/']:.0f} in asyncvox itself)"
        )
    out += [
        "",
        f"What would be needed: about {max(need, 0):.0f} µs less client CPU per call on the success path. "
        "Candidates the profiles point at: one coroutine instead of the `_fetch` -> `_attempt` pair "
        "(each is resumed twice per request), a deque plus one waiter instead of `asyncio.Queue` for "
        f"the hand-over to the consumer{queue_calls}, no `urllib.parse.quote` for ids that need no "
        "escaping (~0.4 µs measured alone), and one call instead of `split_body` -> `decode_found` -> "
        "`decode_call` -> `complete` on the fast path. Each should be worth about a microsecond; "
        "together they are of the size of the gap.",
        "",
    ]
    return out


def overhead(tp: dict[str, Any] | None) -> list[str]:
    """asyncvox's client CPU per call over the hand-tuned loop's, per body profile and event loop."""
    rows = []
    for key in ("typical", "small"):
        prof = throughput_profile(tp, key)
        if prof is None:
            continue
        for av, ht in (("asyncvox", "handtuned"), ("asyncvox-uvloop", "handtuned-uvloop")):
            a, h = _row(prof, av), _row(prof, ht)
            if a is None or h is None:
                continue
            a_us, h_us = 1000 * a["cpu_ms_per_call"], 1000 * h["cpu_ms_per_call"]
            diff = paired_cpu_us(prof, av, ht)
            rows.append(
                f"| {key} | {ht.removeprefix('handtuned').lstrip('-') or 'asyncio'} | {a_us:.0f} | "
                f"{h_us:.0f} | {diff:+.0f} | {median_ratio(tp, key, av, ht):.2f} |"
            )
    if not rows:
        return []
    return [
        "### asyncvox's own cost per request",
        "",
        "Client CPU per call (median over rounds) of asyncvox and of the hand-tuned loop on the same "
        "event loop, the median of their per-round differences, and asyncvox's calls/s over the "
        "hand-tuned loop's (median of per-round ratios):",
        "",
        "| bodies | loop | asyncvox µs | handtuned µs | difference | calls/s ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "On typical bodies asyncvox decodes only the call's slice of the body (the envelope is split "
        "without parsing, ~3 µs less msgspec time per call than the hand-tuned full-envelope decode "
        "in the profile below), which pays for part of its machinery. Small bodies have little to "
        "decode, so there the difference is the machinery itself: retries, outcomes, dedupe, the "
        "governor, the queue to the consumer, two coroutine layers per request. The small-body "
        "profile below counts the Python function calls it adds per request; the per-round spread "
        "of this machine is larger than the differences, so read them as a few µs either way.",
        "",
    ]


def median_ratio(tp: dict[str, Any] | None, key: str, num: str, den: str) -> float:
    """Median of the per-round calls/s ratios ``num / den`` in one body profile."""
    prof = throughput_profile(tp, key)
    if prof is None:
        return float("nan")
    rounds = prof.get("calls_per_s_by_round", {})
    if num not in rounds or den not in rounds:
        return float("nan")
    return statistics.median(a / b for a, b in zip(rounds[num], rounds[den], strict=True))


def paired_cpu_us(prof: dict[str, Any], num: str, den: str) -> float:
    """Median of the per-round differences in client CPU µs per call, ``num - den``."""
    cpu = prof.get("cpu_ms_per_call_by_round", {})
    if num not in cpu or den not in cpu:
        return float("nan")
    return 1000 * statistics.median(x - y for x, y in zip(cpu[num], cpu[den], strict=True))


def demote(markdown: str, levels: int = 2) -> str:
    """Push every heading of an included report ``levels`` deeper."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", markdown, flags=re.MULTILINE)


def write_readme(results: Path, meta: dict[str, Any], path: Path) -> None:
    sections = [
        ("Throughput", "throughput"),
        ("Decode only", "decode"),
        ("Scaling and flat memory", "memory"),
        ("Rate-limited remote", "ratelimit"),
        ("Export to tables and the report", "analysis"),
    ]
    profiles = sorted(results.glob("profile-*.md"))
    lines = [
        "# Benchmarks",
        "",
        "Speed is measured here, never asserted in tests. Every comparison runs its contenders side "
        "by side in one run, each in a fresh process, interleaved, against a loopback server in its "
        "own process (server pinned to CPU 1, clients to CPU 0), and reports ratios paired within "
        "each round: absolute figures on a shared machine are noise (this one's CPU speed drifts by "
        "tens of percent from one second to the next).",
        "",
        "This file is written by `python benchmarks/run.py`; the tables below are that run's. "
        "The curated page, with the analysis of the governor and the fleet, is "
        "`benchmarks/README.md` (never written by the script).",
        "",
        "## Headline",
        "",
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}` ({meta['elapsed']})",
        f"- machine load before the run: {meta['load']}",
        machine_markdown(),
        "",
        *headline(results),
        "",
        "Ratios are of calls/s, median of per-round ratios (range over rounds in brackets). Targets "
        "are set for the typical ~26 KB bodies; small bodies (~4 KB) show per-request overhead.",
        "",
        "## What each benchmark measures",
        "",
        "| script | measures | time |",
        "| --- | --- | --- |",
        *[f"| `{script}` | {what} | {took} |" for script, what, took in CATALOGUE],
        "",
        "Run everything (and rewrite this file) with `python benchmarks/run.py`, a smoke test with "
        "`python benchmarks/run.py --quick`; each script alone with `python benchmarks/<script>` "
        "(`--help` lists its options; each writes `benchmarks/results/<name>.md` and `.json`). The "
        "throughput server is `benchmarks/_fastserver.py`: the same bodies as "
        "`python -m asyncvox.testing --body-pool 64`, at a fraction of its cost per request, so it "
        "is never the bottleneck (the report says which process was saturated). uvloop, httpx, "
        "pydantic, orjson and pyinstrument must be installed for every contender "
        "(`pip install -e '.[bench]'`).",
        "",
        "## Analysis: targets missed, and asyncvox's own cost",
        "",
        *analysis(results),
    ]
    if profiles:
        lines += ["Profiles (cProfile, µs per request; it inflates Python code against C):", ""]
        for prof in profiles:
            lines += [demote(prof.read_text().strip(), 2), ""]
    lines += ["## Latest results", ""]
    for title, name in sections:
        md = results / f"{name}.md"
        if md.exists():
            lines += [demote(md.read_text().strip(), 2), ""]
        else:
            lines += [f"### {title}", "", "Not run yet.", ""]
    path.write_text("\n".join(lines).rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="~1 minute smoke run, results to a temp dir")
    parser.add_argument("--only", default="", help=f"comma-separated steps of {', '.join(STEPS)}")
    parser.add_argument("--no-profile", action="store_true", help="skip profiling missed targets")
    parser.add_argument(
        "--wait-quiet", type=float, default=300.0, help="seconds to wait for an idle machine (default 300)"
    )
    args = parser.parse_args()
    steps = [s.strip() for s in args.only.split(",") if s.strip()] or list(STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown step(s) {unknown}; choose from {list(STEPS)}")
    env = dict(os.environ)
    if args.quick:
        results = Path(tempfile.mkdtemp(prefix="asyncvox-bench-quick-"))
        env["BENCH_RESULTS_DIR"] = str(results)
    else:
        results = Path(env.get("BENCH_RESULTS_DIR") or BENCH_DIR / "results")
        results.mkdir(parents=True, exist_ok=True)
    load = wait_quiet(args.wait_quiet, sample=2.0)
    load_text = "unknown" if load is None else f"{load:.2f} CPUs busy"
    if load is not None and load > QUIET_LOAD:
        load_text += " (**not quiet**: the figures are noisier than usual)"
    t0 = time.perf_counter()
    took: dict[str, float] = {}
    for step in steps:
        script, full, quick = STEPS[step]
        wait_quiet(args.wait_quiet)
        took[step] = run_step(script, quick if args.quick else full, env)
    if "throughput" in steps and not args.quick and not args.no_profile:
        for old in [*results.glob("profile-*.md"), *results.glob("profile-*.json")]:
            old.unlink()
        pairs = [(h["numerator"], h["denominator"], "typical") for h in missed_targets(results)]
        pairs.append(("asyncvox", "handtuned", "small"))  # asyncvox's per-request overhead
        for num, den, body in pairs:
            out = results / f"profile-{body}-{num}-vs-{den}.md"
            shown = os.path.relpath(out, REPO_DIR) if out.is_relative_to(REPO_DIR) else str(out)
            argv = ["--profile", body, "--contenders", f"{num},{den}", "--top", "15", "--out", shown]
            took[f"profile {num}/{den} ({body})"] = run_step("profile_throughput.py", argv, env)
    elapsed = time.perf_counter() - t0
    command = shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]])
    steps_text = ", ".join(f"{name} {secs:.0f} s" for name, secs in took.items())
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "elapsed": f"took {elapsed / 60:.1f} min: {steps_text}",
        "load": load_text,
    }
    readme = results / "README.md"
    write_readme(results, meta, readme)
    print("\n" + "\n".join(headline(results)))
    print(f"\n{meta['elapsed']}\nREADME written to {readme}")
    if args.quick:
        print(f"(quick run: results in {results})")


if __name__ == "__main__":
    main()
