"""The entry points: calls in memory -> :class:`Tables`, a JSONL file -> tables on disk, and back."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import AsyncvoxError
from ._deps import pyarrow
from ._sources import CallSource, iter_items, iter_jsonl
from ._tables import TABLE_NAMES, BadLine, InvalidCallError, TableBuilder, Tables, schemas
from ._writer import BAD_LINE_LIMIT, JOURNAL, Format, TableWriter

__all__ = [
    "ExportResult",
    "NoTablesError",
    "export_jsonl",
    "iter_jsonl_tables",
    "read_jsonl",
    "read_tables",
    "to_tables",
]


class NoTablesError(AsyncvoxError, FileNotFoundError):
    """A directory that holds no tables written by asyncvox."""


class ExportResult(NamedTuple):
    """What :func:`export_jsonl` wrote, and the input lines it skipped."""

    directory: Path
    format: Format
    #: Calls written (one row each in ``calls``).
    calls: int
    #: Rows written per table.
    rows: dict[str, int]
    #: Skipped lines with their reasons (the first 1,000).
    bad_lines: tuple[BadLine, ...]
    #: Skipped lines in all.
    bad_line_count: int

    def paths(self) -> dict[str, Path]:
        """Where each table is: a directory of Parquet parts, or a CSV file."""
        if self.format == "csv":
            return {name: self.directory / f"{name}.csv" for name in TABLE_NAMES}
        return {name: self.directory / name for name in TABLE_NAMES}


class _Bad:
    """Counts bad lines, keeping the first few with their reasons."""

    def __init__(self) -> None:
        self.lines: list[BadLine] = []
        self.count = 0

    def add(self, line: int, reason: str) -> None:
        self.count += 1
        if len(self.lines) < BAD_LINE_LIMIT:
            self.lines.append(BadLine(line, reason))

    def drain(self) -> tuple[tuple[BadLine, ...], int]:
        lines, count = tuple(self.lines), self.count
        self.lines, self.count = [], 0
        return lines, count


def to_tables(calls: Iterable[CallSource], *, dedupe: bool = True) -> Tables:
    """The tables of calls held in memory: :class:`~asyncvox.Call` objects,
    :class:`~asyncvox.FetchOutcome` objects (their raw bytes; not-found and failed ones
    hold no call), call JSON as bytes or text, or decoded JSON objects.

    Nothing raises for one bad item: it is skipped and listed in ``Tables.bad_lines``
    under its 1-based position in ``calls``.
    """
    builder = TableBuilder(dedupe=dedupe)
    bad = _Bad()
    for item in iter_items(calls):
        if isinstance(item, BadLine):
            bad.add(*item)
            continue
        try:
            builder.add(item.raw, call_id=item.call_id)
        except InvalidCallError as exc:
            bad.add(item.number, str(exc))
    lines, count = bad.drain()
    return builder.take(bad_lines=lines, bad_line_count=count)


def iter_jsonl_tables(
    path: str | os.PathLike[str],
    *,
    batch_calls: int = 1000,
    dedupe: bool = True,
    tables: Sequence[str] = TABLE_NAMES,
) -> Iterator[Tables]:
    """A JSONL file's tables, ``batch_calls`` calls at a time (bounded memory).

    Each batch lists the lines skipped since the previous one (with their line numbers).
    Only ``tables`` are built (the others are empty; ``calls`` always is).
    """
    builder = TableBuilder(dedupe=dedupe, tables=tables)
    bad = _Bad()
    for lineno, line in iter_jsonl(path):
        try:
            builder.add(line)
        except InvalidCallError as exc:
            bad.add(lineno, str(exc))
        if len(builder) >= batch_calls:
            lines, count = bad.drain()
            yield builder.take(bad_lines=lines, bad_line_count=count)
    if len(builder) or bad.count:
        lines, count = bad.drain()
        yield builder.take(bad_lines=lines, bad_line_count=count)


def read_jsonl(path: str | os.PathLike[str], *, dedupe: bool = True) -> Tables:
    """A JSONL file's tables, all in memory (for a large file, :func:`export_jsonl` streams)."""
    batches = list(iter_jsonl_tables(path, batch_calls=1 << 62, dedupe=dedupe))
    if not batches:
        return TableBuilder().take()
    return batches[0]


def export_jsonl(
    path: str | os.PathLike[str],
    to: str | os.PathLike[str],
    *,
    format: Format = "parquet",
    overwrite: bool = False,
    batch_calls: int = 1000,
    part_calls: int = 20_000,
    dedupe: bool = True,
) -> ExportResult:
    """Write a JSONL file's tables under the directory ``to``, streaming.

    Parquet: ``to/<table>/part-NNNNN.parquet`` (read a table with DuckDB's
    ``'to/calls/*.parquet'``, ``pyarrow.parquet.read_table('to/calls')`` or polars'
    ``pl.read_parquet('to/calls/*.parquet')``). CSV: ``to/<table>.csv``.
    Bad lines are skipped and reported in the result with their line numbers; so is a
    call whose id was already read, unless ``dedupe`` is off (``call_id`` is then not
    unique). Raises :class:`OutputExistsError` when ``to`` holds tables and ``overwrite``
    is off.
    """
    writer = TableWriter(to, format=format, batch_calls=batch_calls, part_calls=part_calls, dedupe=dedupe)
    writer.open(overwrite=overwrite)
    try:
        writer.add_jsonl(path)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return ExportResult(
        writer.directory,
        format,
        writer.calls,
        dict(writer.rows),
        tuple(writer.bad_lines),
        writer.bad_line_count,
    )


def read_tables(
    directory: str | os.PathLike[str],
    *,
    tables: Sequence[str] = TABLE_NAMES,
    columns: Mapping[str, Sequence[str]] | None = None,
) -> Tables:
    """Read Parquet tables written by :func:`export_jsonl` or a :class:`TableWriter`.

    Only ``tables`` are read (the others come back empty, with their columns), and of
    those only ``columns[table]`` when given: the report reads a fraction of the data.
    """
    pa = pyarrow()
    root = Path(directory)
    if not (root / JOURNAL).exists() and not (root / "calls").is_dir():
        raise NoTablesError(f"{root} holds no Parquet tables (no {JOURNAL}, no calls/)")
    sch = schemas()
    out: dict[str, Any] = {}
    for name in TABLE_NAMES:
        wanted = list(columns[name]) if columns and name in columns else None
        if name not in tables:
            schema = sch[name] if wanted is None else pa.schema([sch[name].field(c) for c in wanted])
            out[name] = schema.empty_table()
            continue
        out[name] = pa.parquet.read_table(root / name, columns=wanted, schema=sch[name])
    return Tables(**out)
