"""A picture of the control logic's state over one simulated run: pace, estimate, refusals.

Runs the simulator (``_sim.py``) on one shape with the new control logic and draws, against
time, the server's limit, the learned rate, the pace of starts and every refusal (a tick
at the bottom); the in-flight cap in a strip below. Plain SVG, no plotting library:

    python benchmarks/plot_control.py [--shape quota-drop] [--n 3000] [--rps 100] [--seed 0]

Writes ``benchmarks/results/control-<shape>.svg``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR
from _shapes import Params, ideal, shape_named
from _sim import run

from asyncvox._control import Controller

W, H, STRIP, PAD = 900, 320, 70, 50


def _limit(shape_name: str, p: Params, t: float) -> float | None:
    """The server's limit at ``t`` (None where it has none in requests per second)."""
    if shape_name == "quota-drop":
        return p.rate if t < p.n / (2 * p.rate) else p.rate / 4
    if shape_name == "generous":
        return 10 * p.rate
    if shape_name in ("concurrency-cap", "queue", "overload"):
        return None
    return p.rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", default="quota-drop")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rps", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    p = Params(args.n, args.rps, args.concurrency)
    shape = shape_named(args.shape)
    starts: list[tuple[float, float, float, int]] = []  # time, pace, rate, cap
    refusals: list[float] = []

    class Traced(Controller):
        def on_start(self, now: float) -> int:
            ticket = super().on_start(now)
            starts.append((now, self.pace or 0.0, self.rate or 0.0, self.cap))
            return ticket

        def on_throttle(
            self, now: float, latency: float, ticket: int, retry_after: float | None, status: int
        ) -> None:
            refusals.append(now - latency)
            super().on_throttle(now, latency, ticket, retry_after, status)

    result = run(shape, "asyncvox", p, seed=args.seed, gate=lambda s, share: Traced(share.concurrency))
    t_end = result.wall
    # The axis reaches 1.6 x the limit (slow start's first guesses, far above, are clipped).
    top = _limit(shape.name, p, 0) or max(s[1] for s in starts) or 1.0
    y_max = 1.6 * top
    cap_max = max(s[3] for s in starts)

    def x(t: float) -> float:
        return PAD + (W - 2 * PAD) * t / t_end

    def y(v: float) -> float:
        return PAD + (H - 2 * PAD) * (1 - min(v, y_max) / y_max)

    def y_cap(c: int) -> float:
        return H + STRIP - 15 - (STRIP - 25) * c / cap_max

    step = max(1, len(starts) // 1500)
    thin = starts[::step]
    pace = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v, _, _ in thin if v)
    rate = " ".join(f"{x(t):.1f},{y(r):.1f}" for t, _, r, _ in thin if r)
    cap = " ".join(f"{x(t):.1f},{y_cap(c):.1f}" for t, _, _, c in thin)
    limit = " ".join(
        f"{x(t):.1f},{y(v):.1f}"
        for t in (i * t_end / 400 for i in range(401))
        if (v := _limit(shape.name, p, t)) is not None
    )
    ticks = "".join(
        f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{H - PAD}" y2="{H - PAD + 8}"/>' for t in refusals
    )
    grid = "".join(
        f'<text x="{x(t):.0f}" y="{H - PAD + 22}" text-anchor="middle">{t:.0f} s</text>'
        for t in range(0, int(t_end) + 1, max(1, int(t_end) // 10))
    )
    share = 100 * (result.throttled + result.failed) / result.requests
    title = (
        f"{shape.name}: {shape.description}. N = {p.n}, R = {p.rate:g}/s; finished in "
        f"{result.wall / ideal(shape, p):.2f}x ideal, {share:.1f}% refused, {result.lost} lost"
    )
    legend = (
        "requests/s: the server's limit (grey), the learned rate (blue), the pace of starts "
        "(orange); refusals (red ticks); the in-flight cap below (green)"
    )
    svg = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + STRIP}"
 font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{PAD}" y="20" font-size="13">{title}</text>
<text x="{PAD}" y="38" fill="#555">{legend}</text>
<line x1="{PAD}" x2="{W - PAD}" y1="{H - PAD}" y2="{H - PAD}" stroke="#999"/>
<text x="{PAD - 6}" y="{y(0) + 4:.0f}" text-anchor="end">0</text>
<text x="{PAD - 6}" y="{y(top) + 4:.0f}" text-anchor="end">{top:.0f}</text>
<g fill="#555">{grid}</g>
<polyline points="{limit}" fill="none" stroke="#bbb" stroke-width="6"/>
<polyline points="{rate}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>
<polyline points="{pace}" fill="none" stroke="#ff7f0e" stroke-width="1.2"/>
<g stroke="#d62728">{ticks}</g>
<text x="{PAD - 6}" y="{y_cap(cap_max) + 4:.0f}" text-anchor="end">{cap_max}</text>
<polyline points="{cap}" fill="none" stroke="#2ca02c" stroke-width="1.2"/>
</svg>
"""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"control-{shape.name}.svg"
    path.write_text(svg)
    print(f"{path}: {title}")


if __name__ == "__main__":
    main()
