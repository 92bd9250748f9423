"""``asyncvox fetch``: ids file -> resumable JSONL export."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from ._common import EXIT_FAILED, EXIT_OK, api_key_option, base_url_option, make_client, run
from ._export import Export, ExportExistsError
from ._ids import count_lines, ids_from
from ._job import export_ids
from ._progress import summary_lines


@click.command()
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
@api_key_option
@base_url_option
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
    client = make_client(
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
    total = count_lines(ids_file)
    try:
        with click.open_file(ids_file, "rb") as fh:
            ids = ids_from(fh, "stdin" if ids_file == "-" else ids_file, export.done_before)
            stats = run(export_ids(client, ids, export, show_progress=not quiet, total=total))
    finally:
        export.close()
    if export.done_before and not quiet:
        click.echo(f"resumed: {len(export.done_before)} ids were already done", err=True)
    if not quiet:
        for line in summary_lines(stats, export):
            click.echo(line, err=True)
    if json_summary:
        click.echo(msgspec.json.encode(stats.summary()).decode())
    raise SystemExit(EXIT_FAILED if stats.failed else EXIT_OK)
