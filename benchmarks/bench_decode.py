"""Decode only: µs per call and MB/s for the same realistic bodies through each decoder.

* ``asyncvox`` - ``asyncvox._decode.decode_body`` (typed Call + the raw bytes kept);
* ``msgspec Call`` - one-pass decode of the envelope into asyncvox's Call (no raw kept);
* ``pydantic v2`` - ``Envelope.model_validate_json`` with equally drift-tolerant models;
* ``orjson -> dicts`` and ``json -> dicts`` - untyped.

Bodies: 200 synthetic calls (~25 KB median, the same generator as the loopback server's),
5% of them drifted (so drift tolerance is part of the cost). Each decoder runs over all
bodies in interleaved rounds (the process pinned to CPU 0); µs per call is the median over
rounds, and "vs pydantic v2" the median of the per-round ratios (this machine's speed
drifts from second to second, a paired ratio does not). Target: asyncvox >= 3.5x
pydantic v2.
Written to ``benchmarks/results/decode.md`` (and ``.json``); a few seconds.

    python benchmarks/bench_decode.py [--rounds 25]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
import orjson
from _common import CLIENT_CPU, machine_info, machine_markdown, pin, write_report
from _pydantic_models import Envelope as PydanticEnvelope

from asyncvox._decode import decode_body
from asyncvox.models import Call
from asyncvox.testing import envelope, synth_call

#: asyncvox's decode over pydantic v2's, at least.
TARGET = 3.5
ASYNCVOX = "asyncvox (Call + raw)"
PYDANTIC = "pydantic v2 model_validate_json"


class _Envelope(msgspec.Struct):
    success: Any = None
    call: Call | None = None
    url: Any = None


def _bodies(n: int = 200) -> list[bytes]:
    return [envelope(synth_call(f"dec-{i}", drift=i % 20 == 0)) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds (default 25)")
    args = parser.parse_args()
    pin(os.getpid(), CLIENT_CPU)
    bodies = _bodies()
    total_bytes = sum(map(len, bodies))
    one_pass = msgspec.json.Decoder(_Envelope)
    decoders: dict[str, Callable[[bytes], object]] = {
        ASYNCVOX: lambda b: decode_body(b, None),
        "msgspec one pass (Call)": one_pass.decode,
        PYDANTIC: PydanticEnvelope.model_validate_json,
        "orjson -> dicts": orjson.loads,
        "json -> dicts": json.loads,
    }
    for decode in decoders.values():  # warm up, and check every decoder accepts every body
        for body in bodies:
            decode(body)
    times: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(args.rounds):
        for name, decode in decoders.items():
            t0 = time.perf_counter()
            for body in bodies:
                decode(body)
            times[name].append((time.perf_counter() - t0) / len(bodies))
    rows = []
    results = {}
    for name, samples in times.items():
        per_call = statistics.median(samples)
        mbs = total_bytes / len(bodies) / per_call / 1e6
        paired = statistics.median(b / t for b, t in zip(times[PYDANTIC], samples, strict=True))
        results[name] = {"us_per_call": per_call * 1e6, "mb_per_s": mbs, "vs_pydantic": paired}
        rows.append(f"| {name} | {per_call * 1e6:.1f} | {mbs:.0f} | {paired:.1f}x |")
    ratio = results[ASYNCVOX]["vs_pydantic"]
    sizes = sorted(map(len, bodies))
    table = "\n".join(
        [
            f"{len(bodies)} bodies, median {sizes[len(sizes) // 2] / 1024:.1f} KB, 5% drifted; "
            f"median of {args.rounds} rounds",
            "",
            "| decoder | µs per call | MB/s | speed vs pydantic v2 |",
            "| --- | ---: | ---: | ---: |",
            *rows,
            "",
            f"asyncvox decode / pydantic v2: **{ratio:.1f}x** (target >= {TARGET:g}: "
            f"{'met' if ratio >= TARGET else '**not met**'})",
        ]
    )
    print(table)
    command = shlex.join(["python", "benchmarks/bench_decode.py", *sys.argv[1:]])
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = f"# Decode only\n\n- date: {date}\n- command: `{command}`\n{machine_markdown()}\n\n{table}\n"
    data = {
        "date": date,
        "command": command,
        "machine": machine_info(),
        "bodies": len(bodies),
        "median_body_kb": sizes[len(sizes) // 2] / 1024,
        "decoders": results,
        "ratio": ratio,
        "target": TARGET,
        "met": ratio >= TARGET,
    }
    write_report("decode", report, data)


if __name__ == "__main__":
    main()
