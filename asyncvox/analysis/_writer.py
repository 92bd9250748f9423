"""Streaming the tables to disk: Parquet parts that a run can resume, or CSV files.

Parquet layout under the output directory (one dataset directory per table)::

    calls/part-00000.parquet   messages/part-00000.parquet   ...   errors/part-00000.parquet
    calls/part-00001.parquet   ...
    _parts.jsonl               the journal: one line per committed part

A part holds up to ``part_calls`` calls, written as row groups of ``batch_calls`` calls
(so memory is bounded by one row group). A part is first written to hidden temporary
files (``.part-00001.parquet.tmp``, which Parquet readers skip), then renamed into place
for all six tables, and only then journalled with the keys of the calls it holds. Resuming
(``open(resume=True)``) deletes whatever a crash left unjournalled, continues at the next
part number and knows the keys already written (:attr:`TableWriter.done_ids`); the calls
of the part that was being written when the run stopped must be added again (from the
JSONL file the same fetch wrote: :meth:`TableWriter.add_jsonl` skips the ones done).

CSV (``format="csv"``) writes one file per table, ``calls.csv`` ..., for spreadsheets;
each is renamed into place when the writer closes. CSV output is not resumable.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import msgspec

from ..errors import AsyncvoxError
from ..outcomes import FetchOutcome
from ._deps import pyarrow
from ._tables import TABLE_NAMES, BadLine, InvalidCallError, TableBuilder, Tables, schemas

__all__ = ["JOURNAL", "OutputExistsError", "TableWriter"]

Format = Literal["parquet", "csv"]
#: The journal of committed Parquet parts, in the output directory.
JOURNAL = "_parts.jsonl"
_PART_RE = re.compile(r"^part-(\d{5,})\.parquet$")
#: Decoded calls are turned into Arrow columns this many at a time (see ``_convert``).
_CONVERT_CALLS = 100
#: Bad lines kept with their reasons (all are counted).
BAD_LINE_LIMIT = 1000


class OutputExistsError(AsyncvoxError):
    """The output directory already holds tables and neither resume nor overwrite was asked."""


class _PartLine(msgspec.Struct):
    part: int
    calls: int
    rows: dict[str, int]
    ids: list[str]


_encode = msgspec.json.Encoder().encode
_decode_part = msgspec.json.Decoder(_PartLine).decode


def _part_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


def _is_temp_part(name: str) -> bool:
    """``.part-00003.parquet.tmp``: a part being written (or left by a kill)."""
    return name.startswith(".") and name.endswith(".tmp") and _PART_RE.match(name[1:-4]) is not None


class TableWriter:
    """Writes calls, one at a time, as the six tables under ``directory``.

    >>> with TableWriter("tables") as writer:     # doctest: +SKIP
    ...     for outcome in outcomes:
    ...         writer.add_outcome(outcome)

    ``open()`` / ``add()`` / ``close()`` (or ``with``); :attr:`rows` counts what was written.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        format: Format = "parquet",
        batch_calls: int = 1000,
        part_calls: int = 20_000,
        dedupe: bool = True,
    ) -> None:
        if format not in ("parquet", "csv"):
            raise ValueError(f"format must be 'parquet' or 'csv', not {format!r}")
        if batch_calls < 1 or part_calls < 1:
            raise ValueError("batch_calls and part_calls must be at least 1")
        self.directory = Path(directory)
        self.format: Format = format
        self.batch_calls = batch_calls
        self.part_calls = part_calls
        #: Keys of the calls in parts committed by earlier runs (filled by ``open(resume=True)``).
        self.done_ids: set[str] = set()
        #: Rows written per table by this writer (committed or not yet).
        self.rows: dict[str, int] = dict.fromkeys(TABLE_NAMES, 0)
        #: Calls added by this writer.
        self.calls = 0
        #: Input lines skipped by :meth:`add_jsonl` (the first :data:`BAD_LINE_LIMIT`).
        self.bad_lines: list[BadLine] = []
        self.bad_line_count = 0
        self._builder = TableBuilder(dedupe=dedupe)
        self._pending: list[Tables] = []
        self._pending_calls = 0
        self._part = 0
        self._part_ids: list[str] = []
        self._part_rows: dict[str, int] = dict.fromkeys(TABLE_NAMES, 0)
        self._writers: dict[str, Any] = {}
        self._opened = False
        self._closed = False
        #: A write that failed: the part it belonged to can no longer be committed.
        self._failed: BaseException | None = None

    # -- files ---------------------------------------------------------------------

    def _final(self, table: str, part: int | None = None) -> Path:
        if self.format == "csv":
            return self.directory / f"{table}.csv"
        return self.directory / table / _part_name(self._part if part is None else part)

    def _temp(self, table: str) -> Path:
        final = self._final(table)
        return final.with_name(f".{final.name}.tmp")

    def _ours(self) -> list[Path]:
        """Files of an earlier output in the directory (never anything else)."""
        found: list[Path] = []
        for table in TABLE_NAMES:
            found += [self.directory / f"{table}.csv", self.directory / f".{table}.csv.tmp"]
            sub = self.directory / table
            if sub.is_dir():
                found += [p for p in sub.iterdir() if _PART_RE.match(p.name) or _is_temp_part(p.name)]
        found.append(self.directory / JOURNAL)
        return [p for p in found if p.exists()]

    def check(self, *, resume: bool = False, overwrite: bool = False) -> list[Path]:
        """What :meth:`open` would refuse, found without touching anything: raises
        :class:`MissingDependencyError` (no pyarrow), :class:`OutputExistsError` (tables
        there, neither ``resume`` nor ``overwrite``) or ``ValueError`` (CSV resumed).
        Returns the earlier output's files. A caller with other files to open checks first.
        """
        if resume and self.format != "parquet":
            raise ValueError("only Parquet output can be resumed")
        pyarrow()
        existing = self._ours()
        if existing and not resume and not overwrite:
            raise OutputExistsError(f"{self.directory} already holds tables: resume the run or overwrite it")
        return existing

    def open(self, *, resume: bool = False, overwrite: bool = False) -> TableWriter:
        """Prepare the directory: a fresh output, or (``resume``) continue a Parquet one.

        Raises :class:`OutputExistsError` when tables are already there and neither
        ``resume`` nor ``overwrite`` is set.
        """
        if self._opened:
            raise RuntimeError("TableWriter.open() was already called")
        existing = self.check(resume=resume, overwrite=overwrite)
        if resume:
            self._load_journal()
        else:
            for path in existing:
                path.unlink()
            for table in TABLE_NAMES:  # an earlier Parquet output's directories, now empty
                sub = self.directory / table
                if self.format == "csv" and sub.is_dir() and not any(sub.iterdir()):
                    sub.rmdir()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.format == "parquet":
            for table in TABLE_NAMES:
                (self.directory / table).mkdir(exist_ok=True)
        self._builder.seen |= self.done_ids
        self._opened = True
        return self

    def _load_journal(self) -> None:
        journal = self.directory / JOURNAL
        committed: set[int] = set()
        if journal.exists():
            good = 0
            with journal.open("rb") as fh:
                for line in fh:
                    if not line.endswith(b"\n"):
                        break  # cut short by a kill: void (its part's calls come again)
                    try:
                        entry = _decode_part(line)
                    except (msgspec.ValidationError, msgspec.DecodeError):
                        break  # not ours, or damaged: it and anything after are void
                    committed.add(entry.part)
                    self.done_ids.update(entry.ids)
                    good += len(line)
            with journal.open("rb+") as fh:
                fh.truncate(good)
        for table in TABLE_NAMES:
            sub = self.directory / table
            if not sub.is_dir():
                continue
            for path in sub.iterdir():
                match = _PART_RE.match(path.name)
                if _is_temp_part(path.name):
                    path.unlink()  # a temporary file of a part that never committed
                elif match is not None and int(match.group(1)) not in committed:
                    path.unlink()  # renamed but not journalled: its calls will come again
        self._part = max(committed) + 1 if committed else 0

    # -- adding calls --------------------------------------------------------------

    def add(self, raw: bytes | memoryview | str, *, call_id: str | None = None) -> str:
        """Add one call from its JSON (e.g. ``FetchOutcome.raw``); returns its key.

        Raises :class:`InvalidCallError` for JSON that is not a call object, a call with no
        id, or a key already written (the writer is unchanged then).
        """
        if not self._opened or self._closed:
            raise RuntimeError("TableWriter: call open() first (and not after close())")
        if self._failed is not None:
            raise RuntimeError(f"TableWriter: a write failed ({self._failed}); abort() and resume")
        key = self._builder.add(raw, call_id=call_id)
        self._part_ids.append(key)
        self.calls += 1
        if len(self._builder) >= _CONVERT_CALLS:
            self._convert()
        if (
            len(self._builder) + self._pending_calls >= self.batch_calls
            or len(self._part_ids) >= self.part_calls
        ):
            self._guarded(self._flush)
        return key

    def add_outcome(self, outcome: FetchOutcome) -> str | None:
        """Add a found outcome's call (its raw bytes); ``None`` for not found or failed."""
        if outcome.raw is not None:
            return self.add(outcome.raw, call_id=outcome.call_id)
        if outcome.call is not None:
            return self.add(msgspec.json.encode(outcome.call), call_id=outcome.call_id)
        return None

    def add_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Add every call of a JSONL file not written yet; bad lines go to :attr:`bad_lines`.

        Returns how many calls were added. Calls already in :attr:`done_ids` (a resumed
        run) are skipped silently, so this is how a resumed fetch catches up.
        """
        from ._sources import iter_jsonl

        added = 0
        for lineno, line in iter_jsonl(path):
            try:
                self.add(line)
            except InvalidCallError as exc:
                if self._already_done(line):
                    continue
                self.record_bad_line(lineno, str(exc))
            else:
                added += 1
        return added

    def _already_done(self, line: bytes) -> bool:
        if not self.done_ids:
            return False
        from ._wire import NotACallError, decode_wire_call

        try:
            call, _ = decode_wire_call(line)
        except NotACallError:
            return False
        return (call.id or call.customer_call_id) in self.done_ids

    def record_bad_line(self, line: int, reason: str) -> None:
        """Note an input line that was skipped (kept up to :data:`BAD_LINE_LIMIT`)."""
        self.bad_line_count += 1
        if len(self.bad_lines) < BAD_LINE_LIMIT:
            self.bad_lines.append(BadLine(line, reason))

    # -- writing -------------------------------------------------------------------

    def _convert(self) -> None:
        """Turn the decoded calls into Arrow columns now: a decoded call takes about three
        times the memory of its columns, so few are held while a row group fills up."""
        self._pending_calls += len(self._builder)
        self._pending.append(self._builder.take())

    def _flush(self) -> None:
        """Write the buffered calls as one row group per table (and commit a full part)."""
        if len(self._builder):
            self._convert()
        if not self._pending:
            return
        pending, self._pending, self._pending_calls = self._pending, [], 0
        self._write(pending)
        if self.format == "parquet" and len(self._part_ids) >= self.part_calls:
            self._commit()

    def _write(self, batches: list[Tables]) -> None:
        pa = pyarrow()
        for name in TABLE_NAMES:
            table = pa.concat_tables([getattr(batch, name) for batch in batches])
            writer = self._writers.get(name)
            if writer is None:
                writer = self._writers[name] = self._new_writer(pa, name)
            if table.num_rows:
                writer.write_table(table)
            self.rows[name] += table.num_rows
            self._part_rows[name] += table.num_rows

    def _new_writer(self, pa: Any, name: str) -> Any:
        temp = self._temp(name)
        if self.format == "parquet":
            return pa.parquet.ParquetWriter(temp, schemas()[name], compression="zstd")
        return pa.csv.CSVWriter(temp, schemas()[name])

    def _commit(self) -> None:
        """Close the part's files, rename them into place, then journal the part."""
        pa = pyarrow()
        for name in TABLE_NAMES:
            if name not in self._writers:  # a table with no rows still gets its (empty) file
                self._writers[name] = self._new_writer(pa, name)
        for name in TABLE_NAMES:
            self._writers.pop(name).close()
            os.replace(self._temp(name), self._final(name))
        if self.format == "parquet":
            entry = _PartLine(self._part, len(self._part_ids), self._part_rows, self._part_ids)
            with (self.directory / JOURNAL).open("ab") as fh:
                fh.write(_encode(entry) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        self._part += 1
        self._part_ids = []
        self._part_rows = dict.fromkeys(TABLE_NAMES, 0)

    def close(self) -> None:
        """Write what is buffered and commit it. Idempotent.

        A Parquet output that received no call at all still gets one empty part per
        table, so that readers find every table with its columns. After a write that
        failed (a full disk), the part it belonged to is dropped instead, as a crash
        would drop it (a resume adds its calls again), and that error is raised again:
        committing it would journal calls whose rows were never written.
        """
        if self._closed or not self._opened:
            self._closed = True
            return
        if self._failed is not None:
            self.abort()
            raise self._failed
        self._closed = True
        self._guarded(self._flush)
        if self._writers or self._part_ids or self._part == 0:
            self._guarded(self._commit)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except BaseException as exc:
            self._failed = exc
            raise

    def abort(self) -> None:
        """Stop without committing what is buffered (as a crash would; resume redoes it)."""
        self._closed = True
        for name, writer in list(self._writers.items()):
            writer.close()
            with contextlib.suppress(FileNotFoundError):
                self._temp(name).unlink()
        self._writers.clear()

    def __enter__(self) -> TableWriter:
        if not self._opened:
            self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
