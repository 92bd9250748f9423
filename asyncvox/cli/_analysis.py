"""The ``export`` and ``report`` commands: a JSONL file of calls -> tables, and an HTML report.

Both need the ``analysis`` extra (pyarrow, matplotlib); without it they exit 2 with the
``pip install`` line instead of a traceback. :func:`register` adds them to the group.
"""

from __future__ import annotations

from pathlib import Path

import click

from asyncvox import analysis

__all__ = ["register"]

EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2
#: Bad lines printed one by one; the rest are counted.
_SHOWN_BAD_LINES = 20


def register(group: click.Group) -> None:
    """Add ``export`` and ``report`` to ``group``."""
    group.add_command(export)
    group.add_command(report)


def _fail(message: str) -> None:
    click.echo(f"asyncvox: error: {message}", err=True)
    raise SystemExit(EXIT_USAGE)


def _echo_bad_lines(name: str, lines: tuple[analysis.BadLine, ...], count: int) -> None:
    if not count:
        return
    click.echo(f"skipped {count:,} line{'s' if count != 1 else ''} of {name}:", err=True)
    for bad in lines[:_SHOWN_BAD_LINES]:
        click.echo(f"  line {bad.line}: {bad.reason}", err=True)
    if count > _SHOWN_BAD_LINES:
        click.echo(f"  ... and {count - _SHOWN_BAD_LINES:,} more", err=True)


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
@click.option("--quiet", "-q", is_flag=True, help="Print only skipped lines.")
def export(calls_file: Path, to: Path, fmt: str, force: bool, quiet: bool) -> None:
    """Turn CALLS_FILE (JSONL from `asyncvox fetch`) into tables under --to.

    Tables: calls, messages, evaluation_results, latency_blocks, interruptions, errors,
    each keyed by call_id (and position). Lines that are not calls are skipped and listed.

    Exit status: 0 every line exported, 1 some lines skipped (the rest is written),
    2 usage error (the output exists without --force, the analysis extra is missing).
    """
    try:
        result = analysis.export_jsonl(
            calls_file, to, format="csv" if fmt == "csv" else "parquet", overwrite=force
        )
    except analysis.MissingDependencyError as exc:
        _fail(str(exc))
        return
    except analysis.OutputExistsError:
        _fail(f"{to} already holds tables: pass --force to replace them")
        return
    except OSError as exc:  # unwritable directory, disk full, ...
        _fail(f"cannot write the tables to {to}: {exc}")
        return
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
def report(source: Path, out: Path, title: str | None) -> None:
    """Write one self-contained HTML report of SOURCE: a JSONL file of calls, or a
    directory of tables from `asyncvox export`.

    A summary table, then latency and time-to-first-word distributions, calls and failures
    over time, evaluation pass rates, failure reasons, results by scenario and by test
    agent, and interruptions per call. It opens offline (no script, nothing fetched).

    Exit status: 0 written, 1 written but some input lines skipped, 2 usage error.
    """
    try:
        result = analysis.write_report(source, out, title=title)
    except analysis.MissingDependencyError as exc:
        _fail(str(exc))
        return
    except analysis.NoTablesError as exc:
        _fail(str(exc))
        return
    except OSError as exc:
        _fail(f"cannot write the report to {out}: {exc}")
        return
    empty = [key for key, drawn in result.plots if not drawn]
    click.echo(
        f"report of {result.calls:,} calls -> {result.path}"
        + (f" (no data for: {', '.join(empty)})" if empty else "")
    )
    _echo_bad_lines(str(source), result.bad_lines, result.bad_line_count)
    raise SystemExit(EXIT_SKIPPED if result.bad_line_count else EXIT_OK)
