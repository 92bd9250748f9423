"""Instructions per call, asyncvox against the hand-tuned loop: the CPU bar without the noise.

Seconds on a shared 2-core machine drift by tens of percent from one round to the next, so
``bench_throughput.py``'s ratio needs many rounds and still moves by a few percent between
runs. Instructions do not: this runs each contender of ``bench_throughput.py`` (``--child``)
under ``valgrind --tool=callgrind`` against the fast loopback server (not under valgrind),
for ``--small`` and ``--large`` ids, and takes the difference, so start-up and imports
cancel out: instructions per call of the client process. Instructions are not time (the
decode's memory traffic, for one, costs more per instruction than the plumbing's), so
read the ratio as "how much more work per call", beside the throughput ratio.

    python benchmarks/count_instructions.py [--small 200] [--large 1200]   # ~3 minutes

Needs ``valgrind`` on PATH (Debian: ``apt-get install valgrind``). Writes
``benchmarks/results/instructions.md``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, Server

CONTENDERS = ("asyncvox", "handtuned")
PROFILES = {"typical (~26 KB)": [], "small (--turns 6)": ["--turns", "6"]}
THROUGHPUT = Path(__file__).with_name("bench_throughput.py")


def instructions(base: str, name: str, n: int, out_dir: Path) -> int:
    """Instructions the client process of ``name`` executed fetching ``n`` ids from ``base``."""
    out = out_dir / f"{name}-{n}.out"
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, str(THROUGHPUT),
        "--child", name, "--base", base, "--n", str(n), "--concurrency", "32",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"{name} under callgrind failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated")
    parser.add_argument("--typical-only", action="store_true", help="skip the small bodies")
    args = parser.parse_args()
    names = [n for n in args.contenders.split(",") if n]
    if shutil.which("valgrind") is None:
        raise SystemExit("count_instructions.py needs valgrind on PATH (apt-get install valgrind)")
    lines = [
        "# Instructions per call (callgrind)",
        "",
        f"- command: `python benchmarks/count_instructions.py --small {args.small} --large {args.large}`",
        "- the client process only (the fast server runs outside valgrind); per call = "
        f"(instructions at {args.large} ids - at {args.small}) / {args.large - args.small}",
        "",
        "| bodies | asyncvox | hand-tuned | hand-tuned / asyncvox |",
        "| --- | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory(prefix="asyncvox-callgrind-") as tmp:
        for label, server_args in PROFILES.items():
            if args.typical_only and server_args:
                continue
            per: dict[str, float] = {}
            with Server(server_args, fast=True) as server:
                for name in names:
                    low = instructions(server.base_url, name, args.small, Path(tmp))
                    high = instructions(server.base_url, name, args.large, Path(tmp))
                    per[name] = (high - low) / (args.large - args.small)
            if set(per) != set(CONTENDERS):
                print(f"{label}: " + ", ".join(f"{n} {v:,.0f}" for n, v in per.items()), flush=True)
                continue
            ratio = per["handtuned"] / per["asyncvox"]
            lines.append(f"| {label} | {per['asyncvox']:,.0f} | {per['handtuned']:,.0f} | {ratio:.3f} |")
            print(lines[-1], flush=True)
    if names == list(CONTENDERS) and not args.typical_only:
        out = RESULTS_DIR / "instructions.md"
        out.write_text("\n".join(lines) + "\n")
        print(f"-> {out}")


if __name__ == "__main__":
    main()
