"""A random search over the governor's constants, in the simulator: is there a better point?

Not a benchmark of the client. It answers "would other constants do better on one shape
without costing the others?", which one-at-a-time tries cannot (the constants interact):

1. ``--configs`` random points around today's constants (each moves 2-6 of them by a
   log-uniform factor within the bounds below), plus today's, on ``--target`` at
   ``--rps`` over ``--seeds`` seeds;
2. the ``--keep`` best there (median + worst / 2) and today's, on every shape at 30, 100
   and 300/s over 20 seeds: for each, every cell that is worse than today's (time by more
   than 0.02 median or 0.03 worst, refused by more than 0.25 points worst).

    python benchmarks/tune_sim.py [--target shared-3] [--configs 240] [--seeds 30] [--keep 12]

Writes ``benchmarks/results/tune-<target>.json`` (every point and its figures). Constants
are set on the modules for the run (``asyncvox._pacing``, ``asyncvox._tuning.UNTOLD``), in
worker processes, so nothing here changes the package.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR
from _shapes import SHAPES, Params, ideal, shape_named
from _sim import run

#: name: (bound below, bound above) as factors of today's value. ``UNTOLD.<field>`` is a
#: field of :data:`asyncvox._tuning.UNTOLD`; the rest are :mod:`asyncvox._pacing`'s.
SPACE: dict[str, tuple[float, float]] = {
    "PROBE_K": (0.5, 2.0),
    "PROBE_STARTS": (0.3, 2.0),
    "PROBE_CUBIC": (0.5, 2.0),
    "PROBE_DOUBLING": (0.25, 2.0),
    "RESTART_DOUBLING": (0.25, 2.0),
    "UNTOLD.k_max": (0.4, 2.0),
    "UNTOLD.emergency_floor": (0.5, 3.0),
    "MARGIN": (0.5, 3.0),
    "STEADY": (0.4, 2.0),
    "EMERGENCY_REACH": (0.6, 2.0),
    "FIRST_BACK": (0.5, 3.0),
    "SHORT_SPAN": (0.5, 2.0),
}
RATES = (30.0, 100.0, 300.0)
#: (median time / ideal, worst, median % refused, worst, ids lost)
Cell = tuple[float, float, float, float, int]


def today() -> dict[str, float]:
    """The constants as the package has them."""
    import asyncvox._pacing as pacing
    import asyncvox._tuning as tuning

    return {
        k: float(getattr(tuning.UNTOLD, k[7:]) if k.startswith("UNTOLD.") else getattr(pacing, k))
        for k in SPACE
    }


def _apply(config: dict[str, float]) -> None:
    import asyncvox._pacing as pacing
    import asyncvox._tuning as tuning

    for key, value in config.items():
        if key.startswith("UNTOLD."):
            untold = tuning.UNTOLD._replace(**{key[7:]: value})
            tuning.UNTOLD = pacing.UNTOLD = untold  # type: ignore[misc]
        else:
            setattr(pacing, key, value)


def _evaluate(job: tuple[dict[str, float], list[str], tuple[float, ...], int]) -> dict[str, Cell]:
    config, shapes, rates, seeds = job
    _apply(config)  # a worker process of its own: the package's module state is its own
    cells: dict[str, Cell] = {}
    for rate in rates:
        for name in shapes:
            shape, p = shape_named(name), Params(2000, rate, 64)
            times, refused, lost = [], [], 0
            for seed in range(seeds):
                result = run(shape, "asyncvox", p, seed)
                times.append(result.wall / ideal(shape, p))
                refused.append(100 * result.throttled / max(1, result.requests))
                lost += result.lost
            cells[f"{name}@{rate:g}"] = (
                statistics.median(times),
                max(times),
                statistics.median(refused),
                max(refused),
                lost,
            )
    return cells


def _worse(cells: dict[str, Cell], base: dict[str, Cell]) -> list[str]:
    out = []
    for key, (med, worst, ref, ref_worst, lost) in cells.items():
        b = base[key]
        if med > b[0] + 0.02 or worst > b[1] + 0.03 or ref_worst > b[3] + 0.25 or lost > b[4]:
            out.append(
                f"{key} {med:.2f}/{worst:.2f} {ref:.2f}/{ref_worst:.2f}% "
                f"(today {b[0]:.2f}/{b[1]:.2f} {b[2]:.2f}/{b[3]:.2f}%)"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="shared-3")
    parser.add_argument("--rps", type=float, default=100.0)
    parser.add_argument("--configs", type=int, default=240)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--keep", type=int, default=12)
    parser.add_argument("--rng", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.rng)
    base = today()
    configs = [base]
    for _ in range(args.configs):
        config = dict(base)
        for key in rng.sample(list(SPACE), rng.randint(2, 6)):
            lo, hi = SPACE[key]
            config[key] = base[key] * math.exp(rng.uniform(math.log(lo), math.log(hi)))
        configs.append(config)
    target = f"{args.target}@{args.rps:g}"
    all_shapes = [s.name for s in SHAPES]
    with multiprocessing.Pool() as pool:
        first = pool.map(
            _evaluate, [(c, [args.target], (args.rps,), args.seeds) for c in configs], chunksize=4
        )
        ranked = sorted(range(len(configs)), key=lambda i: first[i][target][0] + 0.5 * first[i][target][1])
        kept = [0, *[i for i in ranked[: args.keep] if i != 0]]
        second = pool.map(_evaluate, [(configs[i], all_shapes, RATES, 20) for i in kept])
    report: dict[str, Any] = {"target": target, "today": base, "points": []}
    for n, i in enumerate(kept):
        moved = {k: round(v, 4) for k, v in configs[i].items() if not math.isclose(v, base[k])}
        worse = _worse(second[n], second[0])
        cell = second[n][target]
        print(f"{moved or 'today'}: {target} {cell[0]:.2f}/{cell[1]:.2f} {cell[2]:.2f}/{cell[3]:.2f}%")
        print(f"    worse than today: {'; '.join(worse) if worse else 'nothing'}")
        report["points"].append({"moved": moved, "cells": second[n], "worse": worse})
    report["first_stage"] = [{"config": c, "target": f[target]} for c, f in zip(configs, first, strict=True)]
    out = RESULTS_DIR / f"tune-{args.target}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
