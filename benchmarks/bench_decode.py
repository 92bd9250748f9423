"""Decode only: µs per call and MB/s for the same realistic bodies through each decoder.

* ``asyncvox`` - ``asyncvox._decode.decode_body`` (typed Call + the raw bytes kept);
* ``msgspec Call`` - one-pass decode of the envelope into asyncvox's Call (no raw kept);
* ``pydantic v2`` - ``Envelope.model_validate_json`` with equally drift-tolerant models;
* ``orjson -> dicts`` and ``json -> dicts`` - untyped.

Bodies: 200 synthetic calls (~25 KB median), 5% of them drifted. Each decoder runs over
all bodies in interleaved rounds; medians are reported.

    python benchmarks/bench_decode.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
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
from _common import RESULTS_DIR, machine_info
from _pydantic_models import Envelope as PydanticEnvelope

from asyncvox._decode import decode_body
from asyncvox.models import Call
from asyncvox.testing import envelope, synth_call


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
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    bodies = _bodies()
    total_bytes = sum(map(len, bodies))
    one_pass = msgspec.json.Decoder(_Envelope)
    decoders: dict[str, Callable[[bytes], object]] = {
        "asyncvox (Call + raw)": lambda b: decode_body(b, None),
        "msgspec one pass (Call)": one_pass.decode,
        "pydantic v2 model_validate_json": PydanticEnvelope.model_validate_json,
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
    base = statistics.median(times["pydantic v2 model_validate_json"])
    rows = []
    for name, samples in times.items():
        per_call = statistics.median(samples)
        mbs = total_bytes / len(bodies) / per_call / 1e6
        rows.append(f"| {name} | {per_call * 1e6:.1f} | {mbs:.0f} | {base / per_call:.1f}x |")
    sizes = sorted(map(len, bodies))
    table = "\n".join(
        [
            f"{len(bodies)} bodies, median {sizes[len(sizes) // 2] / 1024:.1f} KB, 5% drifted; "
            f"median of {args.rounds} rounds",
            "",
            "| decoder | µs per call | MB/s | speed vs pydantic v2 |",
            "| --- | --- | --- | --- |",
            *rows,
        ]
    )
    print(table)
    info = machine_info()
    report = (
        f"# Decode only\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python benchmarks/bench_decode.py`\n\n"
        f"{table}\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n"
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "decode.md").write_text(report)


if __name__ == "__main__":
    main()
