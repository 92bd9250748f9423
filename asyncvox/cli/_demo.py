"""``asyncvox demo``: a fetch from a built-in faulty server, and what its data says."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import click
import msgspec

import asyncvox

from ._common import EXIT_FAILED, EXIT_OK, fail, out_file, run
from ._data_summary import summarize_calls
from ._export import Export, ExportError
from ._job import export_ids
from ._progress import summary_lines


@click.command()
@click.option("--calls", "-n", type=click.IntRange(1, 1_000_000), default=2000, show_default=True)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False),
    callback=out_file,
    default=Path("asyncvox-demo.jsonl"),
    show_default=True,
)
@click.option("--concurrency", "-c", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json-summary", is_flag=True, help="Print the run's figures as JSON on stdout.")
def demo(calls: int, out: Path, concurrency: int, quiet: bool, json_summary: bool) -> None:
    """Fetch N calls from a built-in demo server with faults (no account, no network)."""
    from asyncvox.testing import DemoServer, FaultProfile

    profile = FaultProfile(
        rps_limit=600,
        rate_5xx=0.03,
        rate_drop=0.005,
        latency=(0.002, 0.02),
        missing_rate=0.02,
        drift_rate=0.05,
        seed=7,
    )
    server = DemoServer(api_key="demo-key", profile=profile, body_pool=256, seed=7)
    export = Export(out)
    try:
        export.open(resume=False, overwrite=True)
    except ExportError as exc:
        fail(str(exc))
    collected: list[asyncvox.Call] = []
    failures: Counter[str] = Counter()

    def keep(outcome: asyncvox.FetchOutcome) -> None:
        if outcome.call is not None:
            collected.append(outcome.call)
        elif outcome.error is not None:
            failures[type(outcome.error).__name__] += 1

    async def job() -> asyncvox.BatchStats:
        async with server:
            client = asyncvox.Client("demo-key", server.base_url, concurrency=concurrency)
            ids = (f"demo-{i:06d}" for i in range(calls))
            return await export_ids(
                client, ids, export, show_progress=not quiet, total=calls, on_outcome=keep
            )

    try:
        try:
            stats = run(job())
        finally:
            export.close()
    except ExportError as exc:
        fail(str(exc))
    if json_summary:
        click.echo(msgspec.json.encode(stats.summary()).decode())
    if quiet:
        raise SystemExit(EXIT_FAILED if stats.failed else EXIT_OK)
    echo: Callable[[str], None] = lambda line: click.echo(line, err=json_summary)  # noqa: E731
    echo(
        f"asyncvox demo: {calls} calls from a local demo server with injected faults "
        f"(600 requests/s limit, 3% 5xx, 0.5% dropped connections, 2% missing)"
    )
    for line in summary_lines(stats, export):
        echo("  " + line)
    for line in summarize_calls(collected, failures=failures):
        echo("  " + line)
    report = out.with_suffix(".html")
    echo(_write_report(out, report))
    echo(
        "next: `asyncvox serve-demo` keeps this server running for your own code; "
        "`asyncvox fetch --help` fetches from the real API"
    )
    raise SystemExit(EXIT_FAILED if stats.failed else EXIT_OK)


def _write_report(calls: Path, report: Path) -> str:
    """Write the demo batch's HTML report; the line that says where (or why not)."""
    from asyncvox import analysis

    try:
        # The demo serves a pool of bodies, so calls repeat: keep them all.
        analysis.write_report(calls, report, title="asyncvox demo batch", dedupe=False)
    except analysis.MissingDependencyError:
        return "report: skipped (pip install 'asyncvox[analysis]' for an HTML report of the calls)"
    except OSError as exc:
        return f"report: not written ({report}: {exc.strerror or exc})"
    return f"report -> {report} (open it in a browser: plots of latency, evaluations, scenarios)"
