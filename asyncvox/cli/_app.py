"""The click application: ``demo``, ``fetch``, ``get``, ``serve-demo``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import msgspec

import asyncvox

from ._export import Export, ExportExistsError

T = TypeVar("T")

#: Errors that no retry or other id can fix: exit 2 with one line.
_CONFIG_ERRORS = (
    asyncvox.ConfigurationError,
    asyncvox.AuthenticationError,
    asyncvox.PermissionDeniedError,
    asyncvox.EndpointNotFoundError,
    ExportExistsError,
)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when installed (``asyncvox[speed]``), mapping errors to exit codes."""
    try:
        try:
            import uvloop  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            return asyncio.run(coro)
        return uvloop.run(coro)  # type: ignore[no-any-return, unused-ignore]
    except KeyboardInterrupt:
        click.echo("asyncvox: interrupted", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except _CONFIG_ERRORS as exc:
        click.echo(f"asyncvox: error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None


def _client(api_key: str | None, base_url: str | None, **kwargs: Any) -> asyncvox.Client:
    try:
        return asyncvox.Client(api_key, base_url, **kwargs)
    except asyncvox.ConfigurationError as exc:
        click.echo(f"asyncvox: error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None


# -- reading ids -------------------------------------------------------------------


class IdsFileError(click.ClickException):
    exit_code = EXIT_USAGE


def _read_chunks(fh: IO[bytes]) -> Iterator[list[bytes]]:
    while True:
        lines = fh.readlines(1 << 16)
        if not lines:
            return
        yield lines


async def _ids_from(fh: IO[bytes], name: str, skip: set[str]) -> AsyncIterator[str]:
    """Ids one per line, read in chunks off the event loop; a million ids never sit in memory."""
    chunks = _read_chunks(fh)
    lineno = 0
    while True:
        lines = await asyncio.to_thread(next, chunks, None)
        if lines is None:
            return
        for line in lines:
            lineno += 1
            try:
                call_id = line.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise IdsFileError(f"{name}, line {lineno}: not UTF-8 text") from None
            if "\x00" in call_id:
                raise IdsFileError(f"{name}, line {lineno}: contains a NUL byte (is this a binary file?)")
            if call_id and call_id not in skip:
                yield call_id


def _count_lines(path: str) -> int | None:
    if path == "-" or not os.path.isfile(path):
        return None
    count = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


# -- progress ----------------------------------------------------------------------


@contextlib.contextmanager
def _progress(enabled: bool, total: int | None) -> Iterator[Callable[[asyncvox.BatchStats], None]]:
    """A live progress bar on stderr, only when it is a terminal and not ``--quiet``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda stats: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]fetching"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("fetch", total=total, detail="")

    def update(stats: asyncvox.BatchStats) -> None:
        progress.update(
            task,
            completed=stats.done,
            detail=(
                f"found {stats.found} missing {stats.missing} failed {stats.failed} "
                f"retries {stats.retries} in-flight {stats.in_flight}/{stats.limit}"
            ),
        )

    with progress:
        yield update


# -- the shared job: ids -> files --------------------------------------------------


async def _export(
    client: asyncvox.Client,
    ids: Any,
    export: Export,
    *,
    concurrency: int | None,
    show_progress: bool,
    total: int | None,
    on_outcome: Callable[[asyncvox.FetchOutcome], None] | None = None,
) -> asyncvox.BatchStats:
    async with client:
        stream = client.iter_calls(ids, concurrency=concurrency)
        with _progress(show_progress, total) as update:
            async with stream:
                async for outcome in stream:
                    export.write(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome)
                    if stream.stats.done % 64 == 0:
                        update(stream.stats)
                update(stream.stats)
        return stream.stats


def _summary_lines(stats: asyncvox.BatchStats, export: Export) -> list[str]:
    s = stats.summary()
    causes = ", ".join(f"{k}: {v}" for k, v in sorted(s["retries_by_cause"].items())) or "none"
    lines = [
        f"found {s['found']}, not found {s['missing']}, failed {s['failed']} "
        f"({s['done']} ids in {s['elapsed_s']:.1f} s, {s['calls_per_s'] or 0:.0f} calls/s)",
        f"requests {s['requests']}, retries {s['retries']} ({causes})",
        f"calls -> {export.out}",
    ]
    if export.missing:
        lines.append(f"not found ids -> {export.missing_path}")
    if export.failed:
        lines.append(f"failures -> {export.failed_path} (re-run with --resume to retry them)")
    return lines


# -- commands ----------------------------------------------------------------------

_api_key_option = click.option(
    "--api-key",
    envvar="ASYNCVOX_API_KEY",
    show_envvar=True,
    help="Bearer token (never printed).",
)
_base_url_option = click.option(
    "--base-url", envvar="ASYNCVOX_BASE_URL", show_envvar=True, help="API base URL."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(asyncvox.__version__, prog_name="asyncvox")
def cli() -> None:
    """asyncvox: fetch voice-agent calls fast, retrying what is worth retrying."""


@cli.command()
@click.argument("ids_file", type=click.Path(exists=True, allow_dash=True, dir_okay=False), default="-")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL file of calls (sidecars: .missing, .failed.jsonl, .done).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run; skip ids already done.")
@click.option("--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--concurrency", "-c", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Most requests started per second.",
)
@click.option("--max-retries", type=click.IntRange(0, 50), default=4, show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds per attempt.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress, no summary on stderr.")
@click.option("--json-summary", is_flag=True, help="Print the run's figures as JSON on stdout.")
@_api_key_option
@_base_url_option
def fetch(
    ids_file: str,
    out: Path,
    resume: bool,
    force: bool,
    concurrency: int,
    rate_limit: float | None,
    max_retries: int,
    timeout: float,
    quiet: bool,
    json_summary: bool,
    api_key: str | None,
    base_url: str | None,
) -> None:
    """Fetch the calls whose ids are in IDS_FILE (one per line; - for stdin) into --out.

    Exit status: 0 every id fetched or reported not found, 1 some ids failed, 2 usage or
    configuration error (missing or rejected key, wrong base URL), 130 interrupted.
    """
    client = _client(
        api_key,
        base_url,
        concurrency=concurrency,
        rate_limit=rate_limit,
        max_retries=max_retries,
        timeout=timeout,
    )
    export = Export(out)
    try:
        export.open(resume=resume, overwrite=force)
    except ExportExistsError as exc:
        raise click.UsageError(str(exc)) from None
    total = _count_lines(ids_file)
    try:
        with click.open_file(ids_file, "rb") as fh:
            ids = _ids_from(fh, "stdin" if ids_file == "-" else ids_file, export.done_before)
            stats = _run(_export(client, ids, export, concurrency=None, show_progress=not quiet, total=total))
    finally:
        export.close()
    if export.done_before and not quiet:
        click.echo(f"resumed: {len(export.done_before)} ids were already done", err=True)
    if not quiet:
        for line in _summary_lines(stats, export):
            click.echo(line, err=True)
    if json_summary:
        click.echo(msgspec.json.encode(stats.summary()).decode())
    raise SystemExit(EXIT_FAILED if stats.failed else EXIT_OK)


@cli.command()
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="Print the call's JSON as the server sent it.")
@_api_key_option
@_base_url_option
def get(call_id: str, as_json: bool, api_key: str | None, base_url: str | None) -> None:
    """Show one call: status, figures, evaluations and the transcript (or its JSON)."""
    client = _client(api_key, base_url)

    async def one() -> asyncvox.FetchOutcome:
        async with client:
            return await client.fetch(call_id)

    try:
        outcome = _run(one())
    except asyncvox.InvalidCallIdError as exc:
        raise click.UsageError(str(exc)) from None
    if outcome.error is not None:
        click.echo(f"asyncvox: {call_id}: {outcome.error}", err=True)
        raise SystemExit(EXIT_USAGE if isinstance(outcome.error, _CONFIG_ERRORS) else EXIT_FAILED)
    if outcome.call is None:
        click.echo(f"asyncvox: {call_id}: not found", err=True)
        raise SystemExit(EXIT_FAILED)
    if as_json:
        assert outcome.raw is not None
        sys.stdout.buffer.write(outcome.raw + b"\n")
        return
    click.echo(_describe(outcome.call, outcome.dashboard_url))


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}{unit}"
    return f"{value}{unit}"


def _describe(call: asyncvox.Call, url: str | None) -> str:
    lines = [
        f"call {call.customer_call_id or call.id}  ({call.id})",
        f"  status {_fmt(call.status)}   result {_fmt(call.result)}   duration {_fmt(call.duration, ' s')}",
        f"  latency p50/p90/p95  {_fmt(call.latency_p50)} / {_fmt(call.latency_p90)} / "
        f"{_fmt(call.latency_p95)} s   time to first word {_fmt(call.time_to_first_word, ' s')}",
        f"  interruptions {_fmt(call.num_interruptions)}   errors {len(call.errors or [])}",
    ]
    if call.failure_reason:
        lines.append(f"  failure reason: {call.failure_reason}")
    if url:
        lines.append(f"  dashboard: {url}")
    if call.evaluation_results:
        lines.append("evaluations")
        for ev in call.evaluation_results:
            mark = "pass" if ev.success else "FAIL"
            lines.append(f"  [{mark}] {ev.evaluation_id}: {ev.details or ev.result or ''}")
    if call.messages:
        lines.append("transcript")
        for msg in call.messages:
            at = f"{msg.seconds_from_start:7.1f}s" if msg.seconds_from_start is not None else "       -"
            lines.append(f"  {at}  {msg.role or '?':>9}: {msg.message or ''}")
    return "\n".join(lines)


@cli.command()
@click.option("--calls", "-n", type=click.IntRange(1, 1_000_000), default=2000, show_default=True)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
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
    export.open(resume=False, overwrite=True)
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
            return await _export(
                client, ids, export, concurrency=None, show_progress=not quiet, total=calls, on_outcome=keep
            )

    try:
        stats = _run(job())
    finally:
        export.close()
    if json_summary:
        click.echo(msgspec.json.encode(stats.summary()).decode())
    if quiet:
        raise SystemExit(EXIT_FAILED if stats.failed else EXIT_OK)
    echo: Callable[[str], None] = lambda line: click.echo(line, err=json_summary)  # noqa: E731
    echo(
        f"asyncvox demo: {calls} calls from a local demo server with injected faults "
        f"(600 requests/s limit, 3% 5xx, 0.5% dropped connections, 2% missing)"
    )
    for line in _summary_lines(stats, export):
        echo("  " + line)
    for line in _data_summary(collected, failures):
        echo("  " + line)
    echo(
        "next: `asyncvox serve-demo` keeps this server running for your own code; "
        "`asyncvox fetch --help` fetches from the real API"
    )
    raise SystemExit(EXIT_FAILED if stats.failed else EXIT_OK)


def _pcts(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"{q[49]:.2f} / {q[89]:.2f} / {q[94]:.2f} s"


def _data_summary(calls: list[asyncvox.Call], failures: Counter[str]) -> list[str]:
    p50 = [c.latency_p50 for c in calls if c.latency_p50 is not None]
    evals = [e.success for c in calls for e in c.evaluation_results or [] if e.success is not None]
    reasons = Counter(c.failure_reason for c in calls if c.failure_reason)
    lines = [
        "what the data says:",
        f"  per-call latency p50, across calls (p50/p90/p95): {_pcts([float(v) for v in p50])}",
        f"  evaluations passed: {sum(evals)}/{len(evals)}"
        + (f" ({100 * sum(evals) / len(evals):.1f}%)" if evals else ""),
    ]
    drift = sum(1 for c in calls if c.status not in {s.value for s in asyncvox.CallStatus})
    if drift:
        lines.append(f"  calls with an undocumented status (kept as sent): {drift}")
    for reason, count in reasons.most_common(3):
        lines.append(f"  failure reason: {reason!r} x{count}")
    for name, count in failures.most_common(3):
        lines.append(f"  fetch failed: {name} x{count}")
    return lines


@cli.command("serve-demo")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option("--api-key", default="demo-key", show_default=True, help="The key the server accepts.")
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests answered with a fault (429, 5xx, dropped connection).",
)
@click.option("--rps-limit", type=click.FloatRange(min=0, min_open=True), default=None)
def serve_demo(port: int, api_key: str, fault_rate: float, rps_limit: float | None) -> None:
    """Run the demo API server on 127.0.0.1 for other tools to use."""
    from asyncvox.testing import DemoServer, FaultProfile

    profile = FaultProfile(
        rate_429=fault_rate * 0.4,
        rate_5xx=fault_rate * 0.5,
        rate_drop=fault_rate * 0.1,
        rps_limit=rps_limit,
        missing_rate=0.02,
        drift_rate=0.05,
    )
    server = DemoServer(api_key=api_key, profile=profile, port=port, count_ids=False)

    async def serve() -> None:
        await server.start()
        click.echo(f"serving the demo call API at {server.base_url} (api key: {api_key}); Ctrl-C stops")
        click.echo(
            f"  try: ASYNCVOX_BASE_URL={server.base_url} ASYNCVOX_API_KEY={api_key} asyncvox get demo-1"
        )
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how this command ends
        asyncio.run(serve())
    click.echo("demo server stopped")
