"""What a run shows on stderr: the live progress bar and the closing summary lines."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import asyncvox

from ._export import Export


@contextlib.contextmanager
def progress(enabled: bool, total: int | None) -> Iterator[Callable[[asyncvox.BatchStats], None]]:
    """A live progress bar on stderr, only when it is a terminal and not ``--quiet``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda stats: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]fetching"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("fetch", total=total, detail="")

    def update(stats: asyncvox.BatchStats) -> None:
        bar.update(
            task,
            completed=stats.done,
            detail=(
                f"found {stats.found} missing {stats.missing} failed {stats.failed} "
                + (f"pending {stats.pending} " if stats.pending else "")
                + f"retries {stats.retries} in-flight {stats.in_flight}/{stats.limit}"
                + governor_note(stats.governor)
            ),
        )

    with bar:
        yield update


def governor_note(state: asyncvox.GovernorState | None) -> str:
    """`` pace 97/s (429: rate)`` once the server pushed back; empty before."""
    if state is None or (state.pace is None and not state.paused_for):
        return ""
    note = f" pace {state.pace:.0f}/s" if state.pace is not None else ""
    if state.paused_for:
        note += f" paused {state.paused_for:.1f}s"
    return note + (f" ({state.last_throttle_reason})" if state.last_throttle_reason else "")


def summary_lines(stats: asyncvox.BatchStats, export: Export, *, rejected: int = 0) -> list[str]:
    """The run's figures and where its files went, one line each."""
    s = stats.summary()
    causes = ", ".join(f"{k}: {v}" for k, v in sorted(s["retries_by_cause"].items())) or "none"
    # An id whose wait ran out is an error outcome (counted in ``failed``), but it has a
    # file and a line of its own: said once, in its own words.
    failed = f"failed {s['failed'] - export.not_ready}"
    if export.not_ready:
        failed += f", not ready {export.not_ready}"
    lines = [
        f"found {s['found']}, not found {s['missing']}, {failed} "
        f"({s['done']} ids in {s['elapsed_s']:.1f} s, {s['calls_per_s'] or 0:.0f} calls/s)",
        f"requests {s['requests']}, retries {s['retries']} ({causes})",
        *_governor_line(stats.governor),
        *([f"ids lines too long to be an id: {rejected} (in the failures file)"] if rejected else []),
        f"calls -> {export.out}",
    ]
    if export.missing:
        lines.append(f"not found ids -> {export.missing_path}")
    if export.failed:
        lines.append(f"failures -> {export.failed_path} (re-run with --resume to retry them)")
    if export.not_ready:
        lines.append(
            f"not ready when their wait ran out: {export.not_ready} -> {export.not_ready_path} "
            "(re-run with --resume to wait for them again)"
        )
    return lines


def _governor_line(state: asyncvox.GovernorState | None) -> list[str]:
    if state is None or not state.throttles:
        return []
    rate = f"{state.rate:.1f}/s" if state.rate is not None else "not measured"
    pace = f"{state.pace:.1f}/s" if state.pace is not None else "off"
    return [
        f"server pushed back {state.throttles} times: learned rate {rate}, pace {pace}, "
        f"in-flight cap {state.cap} (last: {state.last_throttle_reason})"
    ]
