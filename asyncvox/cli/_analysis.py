"""The ``export`` and ``report`` commands: a JSONL file of calls -> tables, and an HTML report.

Both need the ``analysis`` extra (pyarrow, matplotlib); without it they exit 2 with the
``pip install`` line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click

from asyncvox import analysis

from ._common import EXIT_FAILED, EXIT_OK, fail

__all__ = ["export", "report"]

#: Some input lines were skipped (the rest was written).
EXIT_SKIPPED = EXIT_FAILED
#: Bad lines printed one by one; the rest are counted.
_SHOWN_BAD_LINES = 20


_keep_duplicates = click.option(
    "--keep-duplicates",
    is_flag=True,
    help="Keep a call whose id was already read (call_id is then not unique).",
)


def _echo_bad_lines(name: str, lines: tuple[analysis.BadLine, ...], count: int) -> None:
    if not count:
        return
    click.echo(f"skipped {count:,} line{'s' if count != 1 else ''} of {name}:", err=True)
    for bad in lines[:_SHOWN_BAD_LINES]:
        click.echo(f"  line {bad.line}: {bad.reason}", err=True)
    if count > _SHOWN_BAD_LINES:
        click.echo(f"  ... and {count - _SHOWN_BAD_LINES:,} more", err=True)
    if any("already read" in bad.reason for bad in lines):
        click.echo("  (--keep-duplicates keeps calls whose id was already read)", err=True)


@click.command()
@click.argument("calls_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--to",
    "to",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the tables.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    default="parquet",
    show_default=True,
    help="parquet: a directory of parts per table; csv: one file per table (for spreadsheets).",
)
@click.option("--force", is_flag=True, help="Replace the tables already in the directory.")
@_keep_duplicates
@click.option("--quiet", "-q", is_flag=True, help="Print only skipped lines.")
def export(calls_file: Path, to: Path, fmt: str, force: bool, keep_duplicates: bool, quiet: bool) -> None:
    """Turn CALLS_FILE (JSONL from `asyncvox fetch`) into tables under --to.

    Tables: calls, messages, evaluation_results, latency_blocks, interruptions, errors,
    each keyed by call_id (and position). Lines that are not calls are skipped and listed.

    Exit status: 0 every line exported, 1 some lines skipped (the rest is written),
    2 usage error (the output exists without --force, the analysis extra is missing).
    """
    try:
        result = analysis.export_jsonl(
            calls_file,
            to,
            format="csv" if fmt == "csv" else "parquet",
            overwrite=force,
            dedupe=not keep_duplicates,
        )
    except analysis.MissingDependencyError as exc:
        fail(str(exc))
    except analysis.OutputExistsError:
        fail(f"{to} already holds tables: pass --force to replace them")
    except OSError as exc:  # unwritable directory, disk full, ...
        fail(f"cannot write the tables to {to}: {exc}")
    if not quiet:
        click.echo(f"{result.calls:,} calls from {calls_file} -> {to} ({fmt})")
        paths = result.paths()
        for name, rows in result.rows.items():
            click.echo(f"  {name:<19} {rows:>11,} rows  {paths[name]}")
        if fmt == "parquet":
            click.echo(
                '  query them, e.g.: duckdb -c "SELECT evaluation_name, avg(success::int) '
                f"FROM '{to}/evaluation_results/*.parquet' GROUP BY 1 ORDER BY 2\""
            )
    _echo_bad_lines(str(calls_file), result.bad_lines, result.bad_line_count)
    raise SystemExit(EXIT_SKIPPED if result.bad_line_count else EXIT_OK)


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option("--title", default=None, help="The report's title.")
@_keep_duplicates
def report(source: Path, out: Path, title: str | None, keep_duplicates: bool) -> None:
    """Write one self-contained HTML report of SOURCE: a JSONL file of calls, or a
    directory of tables from `asyncvox export`.

    A summary table, then latency and time-to-first-word distributions, calls and failures
    over time, evaluation pass rates, failure reasons, results by scenario and by test
    agent, and interruptions per call. It opens offline (no script, nothing fetched).

    Exit status: 0 written, 1 written but some input lines skipped, 2 usage error.
    """
    try:
        result = analysis.write_report(source, out, title=title, dedupe=not keep_duplicates)
    except analysis.MissingDependencyError as exc:
        fail(str(exc))
    except analysis.NoTablesError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the report to {out}: {exc}")
    empty = [key for key, drawn in result.plots if not drawn]
    click.echo(
        f"report of {result.calls:,} calls -> {result.path}"
        + (f" (no data for: {', '.join(empty)})" if empty else "")
    )
    _echo_bad_lines(str(source), result.bad_lines, result.bad_line_count)
    raise SystemExit(EXIT_SKIPPED if result.bad_line_count else EXIT_OK)
