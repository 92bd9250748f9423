"""The report's plots: matplotlib figures rendered to inline SVG, each with a one-line reading.

Every function takes plain data (already pulled out of the tables by ``_report``) and
returns a :class:`Plot`; with nothing to show it returns one without a figure, whose
reading says so, instead of drawing an empty axis.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ._deps import matplotlib_figure

__all__ = [
    "Bar",
    "Plot",
    "bars_by_group",
    "counts",
    "distribution",
    "interruptions",
    "pass_rates",
    "timeline",
]

_AGENT, _BAD, _GREY = "#3465a4", "#cc3d3d", "#b8bec6"
_ID_RE = re.compile(r'(\bid="|url\(#|href="#)')


class Plot(NamedTuple):
    """One section of the report."""

    key: str
    title: str
    #: The one-line reading (or, without data, why there is no figure).
    reading: str
    #: The figure as an ``<svg>`` element, or ``None`` when there was nothing to draw.
    svg: str | None


class Bar(NamedTuple):
    """One group's outcome counts (a scenario, a test agent, an evaluation name)."""

    label: str
    passed: int
    failed: int
    other: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.other

    @property
    def fail_share(self) -> float:
        return self.failed / self.total if self.total else 0.0


def _n(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or float(value).is_integer() else f"{value:,.3g}"


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%" if value >= 0.01 or value == 0 else f"{100 * value:.1f}%"


def _figure(height: float = 3.0) -> Any:
    return matplotlib_figure()(figsize=(8.2, height), layout="constrained")


def _svg(fig: Any, key: str) -> str:
    import matplotlib

    buf = io.StringIO()
    # Text stays text (the browser draws it, a reader can search it) and ids are fixed
    # for a given figure, so the file is the same for the same data.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"asyncvox-{key}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # Several SVGs share one HTML document: give each its own id space.
    return _ID_RE.sub(lambda m: f"{m.group(1)}{key}-", text)


def _style(ax: Any, grid: str = "y") -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=9)
    ax.grid(axis=grid, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def distribution(
    key: str,
    title: str,
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    unit: str,
    threshold: float,
    empty: str,
) -> Plot:
    """Histograms of one or more per-call figures sharing bins; the reading is about the last."""
    import numpy as np

    present = [(name, np.asarray(values, dtype=float)) for name, values in series if len(values)]
    if not present:
        return Plot(key, title, empty, None)
    name, main = present[-1]
    median = float(np.median(main))
    above = float(np.mean(main > threshold))
    reading = (
        f"{name} median is {_n(median)} {unit}; {_pct(above)} of {_n(len(main))} calls above "
        f"{_n(threshold)} {unit}"
    )
    everything = np.concatenate([v for _, v in present])
    hi = float(np.percentile(everything, 99.5))
    lo = float(min(0.0, everything.min()))
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 41)
    fig = _figure()
    ax = fig.add_subplot()
    colors = [_GREY, _AGENT] if len(present) == 2 else [_AGENT]
    for (label, values), color in zip(present, colors, strict=False):
        ax.hist(np.clip(values, lo, bins[-1]), bins=bins, color=color, alpha=0.85, label=label)
    if threshold <= bins[-1] * 1.25:  # a budget far beyond the data would squash it
        ax.axvline(threshold, color=_BAD, linestyle="--", linewidth=1, label=f"{_n(threshold)} {unit}")
    ax.set_xlabel(unit)
    ax.set_ylabel("calls")
    ax.legend(frameon=False, fontsize=9)
    _style(ax)
    return Plot(key, title, reading, _svg(fig, key))


_FIRST_SHOWN = datetime(1, 2, 1, tzinfo=UTC).timestamp()
_LAST_SHOWN = datetime(9999, 12, 1, tzinfo=UTC).timestamp()


def timeline(key: str, title: str, stamps: Sequence[float], failed: Sequence[bool]) -> Plot:
    """Calls and failed calls per hour, day or week (chosen by the span); ``stamps`` are
    epoch seconds, ``failed`` says for each whether it failed."""
    import numpy as np

    at = np.asarray(stamps, dtype=float)
    bad = np.asarray(failed, dtype=bool)
    # A time no calendar axis holds (year 0, from a server's "0001-01-01T00:00:00+14:00"):
    # left out, a month's margin kept for the bins' edges.
    shown = np.isfinite(at) & (at >= _FIRST_SHOWN) & (at <= _LAST_SHOWN)
    at, bad = at[shown], bad[shown]
    if not len(at):
        return Plot(key, title, "No call has a creation time.", None)
    span = at.max() - at.min()
    step, unit = (
        (3600, "hour")
        if span <= 2 * 86400
        else ((86400, "day") if span <= 120 * 86400 else (7 * 86400, "week"))
    )
    start = at.min() - at.min() % step
    edges = np.arange(start, at.max() + step, step)
    if len(edges) < 2:
        edges = np.array([start, start + step])
    counts, _ = np.histogram(at, bins=edges)
    fails, _ = np.histogram(at[bad], bins=edges)
    share = fails / np.maximum(counts, 1)
    worst = int(np.argmax(np.where(counts >= max(3, counts.max() * 0.1), share, -1)))
    first, last = (datetime.fromtimestamp(t, UTC) for t in (at.min(), at.max()))
    fmt = "%Y-%m-%d %H:%M" if unit == "hour" else "%Y-%m-%d"
    worst_start = datetime.fromtimestamp(edges[worst], UTC)
    reading = (
        f"{_n(len(at))} calls from {first:%Y-%m-%d} to {last:%Y-%m-%d}; {_pct(float(bad.mean()))} "
        f"failed overall, the most in the {unit} from {worst_start:{fmt}} "
        f"({_pct(float(share[worst]))} of {_n(counts[worst])})"
    )
    fig = _figure()
    ax = fig.add_subplot()
    x = [datetime.fromtimestamp(t, UTC) for t in edges[:-1]]
    width = step / 86400 * 0.9
    ax.bar(x, counts, width=width, align="edge", color=_GREY, label="calls")
    ax.bar(x, fails, width=width, align="edge", color=_BAD, label="failed")
    ax.set_ylabel(f"calls per {unit}")
    ax.legend(frameon=False, fontsize=9)
    fig.autofmt_xdate()
    _style(ax)
    return Plot(key, title, reading, _svg(fig, key))


def _hbar(bars: Sequence[Bar], *, labels: tuple[str, str, str], note: Callable[[Bar], str]) -> Any:
    """Stacked 100% bars, one per group, top to bottom in the order given; ``note`` labels each."""
    fig = _figure(max(1.8, 0.8 + 0.28 * len(bars)))
    ax = fig.add_subplot()
    y = list(range(len(bars)))[::-1]
    names = [b.label if len(b.label) <= 48 else b.label[:47] + "…" for b in bars]
    shares = [(b.passed / b.total, b.failed / b.total, b.other / b.total) for b in bars]
    left = [0.0] * len(bars)
    for i, (label, color) in enumerate(zip(labels, (_AGENT, _BAD, _GREY), strict=True)):
        widths = [s[i] * 100 for s in shares]
        if any(widths):
            ax.barh(y, widths, left=left, color=color, label=label, height=0.7)
        left = [a + w for a, w in zip(left, widths, strict=True)]
    for yi, b in zip(y, bars, strict=True):
        ax.text(101, yi, note(b), va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_xlim(0, 118)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("% of results")
    ax.legend(frameon=False, fontsize=8, ncols=3, loc="lower left", bbox_to_anchor=(0, 1))
    _style(ax, "x")
    return fig


def pass_rates(key: str, title: str, bars: Sequence[Bar], *, limit: int = 20) -> Plot:
    """Evaluation pass rates by name, worst first."""
    rated = [b for b in bars if b.passed + b.failed]
    if not rated:
        return Plot(key, title, "No evaluation result says whether it passed.", None)
    rated.sort(key=lambda b: (b.passed / (b.passed + b.failed), -b.total))
    worst, best = rated[0], rated[-1]
    rated_n = worst.passed + worst.failed
    reading = f"worst: {worst.label!r} passes {_pct(worst.passed / rated_n)} of {_n(rated_n)} results"
    if len(rated) > 1:
        reading += f"; best: {best.label!r} {_pct(best.passed / (best.passed + best.failed))}"
    shown = rated[:limit]
    if len(rated) > limit:
        reading += f" (the {limit} worst of {len(rated)} shown)"
    fig = _hbar(
        shown,
        labels=("passed", "failed", "no verdict"),
        note=lambda b: f"{_pct(b.passed / (b.passed + b.failed))} of {_n(b.passed + b.failed)}",
    )
    return Plot(key, title, reading, _svg(fig, key))


def bars_by_group(key: str, title: str, bars: Sequence[Bar], *, what: str, limit: int = 20) -> Plot:
    """Call results (success / failure / other) per group, the most failing first."""
    groups = [b for b in bars if b.total]
    if not groups:
        return Plot(key, title, f"No call names its {what}.", None)
    groups.sort(key=lambda b: (-b.fail_share, -b.total, b.label))
    top = groups[0]
    reading = f"{top.label!r} fails most: {_pct(top.fail_share)} of {_n(top.total)} calls"
    if len(groups) > 1:
        low = groups[-1]
        reading += f"; {low.label!r} least ({_pct(low.fail_share)})"
    if len(groups) > limit:
        reading += f" ({limit} of {len(groups)} {what}s shown)"
    fig = _hbar(
        groups[:limit],
        labels=("success", "failure", "no result"),
        note=lambda b: f"{_pct(b.fail_share)} failed of {_n(b.total)}",
    )
    return Plot(key, title, reading, _svg(fig, key))


def counts(key: str, title: str, items: Sequence[tuple[str, int]], *, total: int, limit: int = 12) -> Plot:
    """Horizontal bars of counted labels (failure reasons), the commonest first."""
    if not items:
        return Plot(key, title, "No call gives a failure reason.", None)
    ranked = sorted(items, key=lambda kv: (-kv[1], kv[0]))
    label, count = ranked[0]
    reading = f"{label!r} accounts for {_pct(count / total)} of {_n(total)} calls with a failure reason"
    if len(ranked) > 1:
        reading += f" ({len(ranked)} distinct reasons)"
    shown = ranked[:limit]
    fig = _figure(max(1.8, 0.8 + 0.28 * len(shown)))
    ax = fig.add_subplot()
    y = list(range(len(shown)))[::-1]
    ax.barh(y, [c for _, c in shown], color=_BAD, height=0.7)
    ax.set_yticks(y, [s if len(s) <= 48 else s[:47] + "…" for s, _ in shown])
    ax.set_xlabel("calls")
    _style(ax, "x")
    return Plot(key, title, reading, _svg(fig, key))


def interruptions(key: str, title: str, per_call: Sequence[int]) -> Plot:
    """How many interruptions calls have: a bar per count (the tail folded into one)."""
    import numpy as np

    if not len(per_call):
        return Plot(key, title, "No call lists its interruptions.", None)
    values = np.asarray(per_call, dtype=int)
    cap = int(max(1, min(values.max(), np.percentile(values, 99), 30)))
    folded = np.minimum(values, cap)
    heights = np.bincount(folded, minlength=cap + 1)
    reading = (
        f"median {np.median(values):g} interruptions per call; {_pct(float(np.mean(values > 0)))} of "
        f"{_n(len(values))} calls have at least one; the most is {_n(values.max())}"
    )
    fig = _figure()
    ax = fig.add_subplot()
    ax.bar(range(cap + 1), heights, color=_AGENT, width=0.8)
    ticks = sorted({*range(0, cap + 1, max(1, cap // 10)), cap})
    ax.set_xticks(ticks, [f"{t}+" if t == cap and values.max() > cap else str(t) for t in ticks])
    ax.set_xlabel("interruptions in the call")
    ax.set_ylabel("calls")
    _style(ax)
    return Plot(key, title, reading, _svg(fig, key))
