"""``asyncvox fetch``: ids file -> resumable JSONL export."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import NoReturn

import click
import msgspec

from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    api_key_option,
    base_url_option,
    fail,
    make_client,
    max_body_option,
    out_file,
    run,
)
from ._export import Export, ExportError, ExportExistsError, OutputError
from ._ids import MAX_ID_BYTES, IdsFile, RejectedLine, read_ids
from ._job import export_ids
from ._progress import summary_lines
from ._tables_out import check_tables, open_tables


@click.command()
@click.argument("ids_file", type=click.Path(exists=True, allow_dash=True, dir_okay=False), default="-")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False),
    callback=out_file,
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
@click.option(
    "--redis",
    "redis_url",
    envvar="ASYNCVOX_REDIS_URL",
    show_envvar=True,
    default=None,
    metavar="URL",
    help="Share the key's limits with other processes (shards of one job) through this Redis "
    "(needs asyncvox[redis]).",
)
@click.option("--max-retries", type=click.IntRange(0, 50), default=4, show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds per attempt.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Wait up to SECONDS per id for its analysis to finish; each call is written as it "
    "becomes ready, the rest go to --out's .not-ready.jsonl sidecar.",
)
@click.option(
    "--parquet",
    "parquet_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the calls as Parquet tables in this directory, as `asyncvox export` does "
    "(needs asyncvox[analysis]); resumable with --resume like the JSONL.",
)
@max_body_option
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
    redis_url: str | None,
    max_retries: int,
    timeout: float,
    wait: float | None,
    parquet_dir: Path | None,
    max_body_bytes: int,
    quiet: bool,
    json_summary: bool,
    api_key: str | None,
    base_url: str | None,
) -> None:
    """Fetch the calls whose ids are in IDS_FILE (one per line; - for stdin) into --out.

    Exit status: 0 every id fetched or reported not found, 1 some ids failed or were not
    ready in time (or a line was too long to be an id), 2 usage, configuration or file
    error (missing or rejected key, wrong base URL, an output that cannot be written, a
    journal that does not match its files), 130 interrupted.
    """
    client = make_client(
        api_key,
        base_url,
        concurrency=concurrency,
        rate_limit=rate_limit,
        max_retries=max_retries,
        timeout=timeout,
        fleet=redis_url or None,
        max_body_bytes=max_body_bytes,
    )
    source = IdsFile(ids_file)
    export = Export(out)
    _check_ids_not_an_output(source, export)
    if parquet_dir:
        check_tables(parquet_dir, resume=resume, overwrite=force)
    try:
        export.open(resume=resume, overwrite=force, ids=source)
    except ExportExistsError as exc:
        raise click.UsageError(str(exc)) from None
    except ExportError as exc:
        _export_failed(exc)
    # After the export's own checks and cuts: a refused resume leaves the tables alone, and
    # the tables catch up only with what the journal says is done.
    tables = open_tables(parquet_dir, out, resume=resume, overwrite=force) if parquet_dir else None
    # Ids journalled as done that this run's ids never mention: only tracked when the
    # journal's ids could not be checked up front (stdin), to say so at the end.
    unseen = None if export.ids_verified else set(export.done_before)
    rejected = 0

    def reject(line: RejectedLine) -> None:
        nonlocal rejected
        rejected += 1
        export.reject(
            line.start.decode("utf-8", "replace") + "...",
            "InvalidCallIdError",
            f"{source.name}, line {line.lineno}: {line.length} bytes, longer than the "
            f"{MAX_ID_BYTES}-byte limit of an id",
        )

    try:
        try:
            total = source.count_lines()
            with click.open_file(ids_file, "rb") as fh:
                ids = read_ids(fh, source.name, skip=export.done_before, on_rejected=reject, unseen=unseen)
                stats = run(
                    export_ids(
                        client,
                        ids,
                        export,
                        show_progress=not quiet,
                        total=total,
                        wait=wait,
                        on_outcome=tables.add if tables is not None else None,
                    )
                )
        finally:
            export.close()
        if tables is not None:
            tables.close()
    except BaseException as exc:
        if tables is not None:
            tables.close(quietly=True)  # what the JSONL holds, unless the disk refuses
        if isinstance(exc, ExportError):
            _export_failed(exc)
        raise
    if export.done_before and not quiet:
        click.echo(f"resumed: {len(export.done_before)} ids were already done", err=True)
    if not quiet:
        for line in summary_lines(stats, export, rejected=rejected):
            click.echo(line, err=True)
        if tables is not None:
            click.echo(tables.summary(), err=True)
    if json_summary:
        summary = {**stats.summary(), "rejected": rejected, "not_ready": export.not_ready}
        click.echo(msgspec.json.encode(summary).decode())
    if unseen:
        fail(
            f"{len(unseen)} ids {export.done_path} records as done are not in {source.name}: the "
            f"journal was started from other ids, so {out} holds calls of both"
        )
    raise SystemExit(EXIT_FAILED if stats.failed or rejected else EXIT_OK)


def _check_ids_not_an_output(source: IdsFile, export: Export) -> None:
    """Exit 2 if the ids file is one of the export's files (by any name): ``--force``
    would remove it before it is read, and a run would append to what it is reading."""
    if source.path == "-":
        return
    for path in (
        export.out,
        export.missing_path,
        export.failed_path,
        export.done_path,
        export.not_ready_path,
    ):
        with contextlib.suppress(OSError):  # no such file: it cannot be the ids file
            if os.path.samefile(source.path, path):
                fail(f"{source.name} is also {path}, a file of this export: use another --out")


def _export_failed(exc: ExportError) -> NoReturn:
    if isinstance(exc, OutputError) and exc.action == "write":
        fail(f"{exc} (what was finished is kept: fix this and re-run with --resume)")
    fail(str(exc))
