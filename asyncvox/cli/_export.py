"""A resumable JSONL export: calls, a not-found sidecar, a failures sidecar, a done journal.

Files, for ``--out calls.jsonl``:

* ``calls.jsonl`` -- one call per line, the server's own JSON bytes (never re-encoded);
* ``calls.jsonl.missing`` -- ids the API reported not found, one per line;
* ``calls.jsonl.failed.jsonl`` -- ids that failed in the latest run, with error type,
  status and message (they are retried by ``--resume``);
* ``calls.jsonl.not-ready.jsonl`` -- with ``--wait``: ids whose call was not ready when
  their wait ran out, with the last status seen (``null``: never found); like failures,
  not journalled, so ``--resume`` waits for them again. Written only when there is one;
* ``calls.jsonl.done`` -- the journal (see ``_journal``): one line per finished id,
  written *after* that id's line, holding the lengths of the two data files at that point
  and a CRC of the id's line.

Every line goes to the file in one unbuffered write, so what is on disk is what was
journalled, plus at most the one line written just before a kill or a failed write
(and a partial line). Resuming checks the journal and the data files against each other
before touching anything -- the ids file is the one the journal was started with, each
data file exists, is at least as long as journalled, holds the journalled bytes at its
first and last journalled line, and has at most one unjournalled line after them -- then
cuts the files back to the journal, so nothing is lost or duplicated. Anything else is a
:class:`~._journal.JournalError`: a file this export did not write is never truncated.
Which ids are done comes only from the journal, never from what the server put in a call.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path
from typing import Protocol

import msgspec

from ..errors import CallNotReadyError
from ..outcomes import FetchOutcome
from ._files import Appender, OutputError, file_size, os_errors
from ._journal import (
    ExportError,
    Fingerprint,
    Journal,
    JournalError,
    Span,
    header_line,
    read_journal,
    record_line,
)

__all__ = ["Export", "ExportError", "ExportExistsError", "IdsInput", "JournalError", "OutputError"]


class ExportExistsError(ExportError):
    """The output exists and neither resume nor overwrite was asked for."""


class IdsInput(Protocol):
    """What the export needs to know about the ids a run reads (see ``_ids.IdsFile``)."""

    @property
    def name(self) -> str:
        """The ids file's name for messages (``stdin`` for ``-``)."""
        ...

    def fingerprint(self, size: int | None = None) -> Fingerprint | None:
        """Size and SHA-256 of the first ``size`` bytes (all of it if None or shorter);
        None if the ids cannot be read twice (stdin, a pipe)."""
        ...


class _FailedLine(msgspec.Struct):
    id: str
    error: str
    status: int | None
    message: str
    attempts: int


class _NotReadyLine(msgspec.Struct):
    id: str
    last_status: str | None
    found: bool
    waited_s: float
    polls: int


_encode_failed = msgspec.json.Encoder().encode


class Export:
    """Writes outcomes to the files above; :meth:`open` prepares a fresh or resumed run."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.missing_path = out.with_name(out.name + ".missing")
        self.failed_path = out.with_name(out.name + ".failed.jsonl")
        self.done_path = out.with_name(out.name + ".done")
        self.not_ready_path = out.with_name(out.name + ".not-ready.jsonl")
        #: Ids finished by earlier runs (filled by ``open(resume=True)``).
        self.done_before: set[str] = set()
        #: False when a resume could not check up front that the ids are the journal's
        #: (stdin on either side): the caller checks ``done_before`` against what it reads.
        self.ids_verified = True
        self.written = 0
        self.missing = 0
        self.failed = 0
        self.not_ready = 0
        self._files: list[Appender] = []
        self._not_ready: Appender | None = None
        self._out: Appender
        self._missing: Appender
        self._failed: Appender
        self._done: Appender

    @property
    def _paths(self) -> tuple[Path, Path, Path, Path, Path]:
        return (self.out, self.missing_path, self.failed_path, self.done_path, self.not_ready_path)

    def open(self, *, resume: bool, overwrite: bool, ids: IdsInput | None = None) -> None:
        """Open the files; on ``resume`` check the journal and cut the files back to it.

        Raises :class:`ExportError` (one of its subclasses) naming the file and the problem.
        """
        journal: Journal | None = None
        if resume:
            journal = self._check_resume(ids)
        elif not overwrite and any(file_size(p) is not None for p in self._paths):
            raise ExportExistsError(
                f"{self.out} (or its sidecar files) already exists: pass --resume to continue it "
                "or --force to start over"
            )
        parent = self.out.parent
        with os_errors(parent, "create directory"), contextlib.suppress(FileExistsError):
            # A file where the directory should be: opening below says ENOTDIR.
            parent.mkdir(parents=True, exist_ok=True)
        if journal is None:
            for path in self._paths:
                if file_size(path) is not None:
                    with os_errors(path, "remove"):
                        path.unlink(missing_ok=True)
        else:
            self.done_before = journal.done
            for path, length in (
                (self.done_path, journal.complete_len),
                (self.out, journal.out_len),
                (self.missing_path, journal.missing_len),
            ):
                with os_errors(path, "truncate"):
                    if (file_size(path) or 0) > length:
                        os.truncate(path, length)
        try:
            self._out = self._add(self.out)
            self._missing = self._add(self.missing_path)
            self._failed = self._add(self.failed_path, truncate=True)  # failures of this run only
            self._done = self._add(self.done_path)
            if file_size(self.not_ready_path) is not None:  # an earlier run's: retried now
                with os_errors(self.not_ready_path, "remove"):
                    self.not_ready_path.unlink()
            if journal is None:
                self._done.append(header_line(ids.fingerprint() if ids is not None else None))
        except BaseException:
            with contextlib.suppress(OutputError):
                self.close()
            raise

    def _add(self, path: Path, *, truncate: bool = False) -> Appender:
        appender = Appender(path, truncate=truncate)
        self._files.append(appender)
        return appender

    def _check_resume(self, ids: IdsInput | None) -> Journal | None:
        """The journal if the files can be continued; None if there is nothing to continue."""
        with os_errors(self.done_path, "read"):
            journal = read_journal(self.done_path) if file_size(self.done_path) is not None else None
        if journal is None:
            for path in (self.out, self.missing_path):
                if file_size(path):
                    raise JournalError(
                        f"{path} is not empty but its journal {self.done_path} is missing or empty, "
                        "so which ids it holds is unknown: restore the journal, or start over "
                        "with --force (or another --out)"
                    )
            return None
        if journal.done:
            self._check_ids(journal, ids)
        self._check_data(self.out, journal.out_len, journal.out_spans, "calls")
        self._check_data(self.missing_path, journal.missing_len, journal.missing_spans, "not-found ids")
        # Nothing done yet (killed before the first id finished): start afresh, with a
        # header for this run's ids.
        return journal if journal.done else None

    def _check_ids(self, journal: Journal, ids: IdsInput | None) -> None:
        current = ids.fingerprint(journal.ids.size) if ids is not None and journal.ids else None
        if current is None:
            self.ids_verified = False
        elif current != journal.ids:
            assert ids is not None and journal.ids is not None
            raise JournalError(
                f"{self.done_path} was started from a different ids file: {ids.name} does not begin "
                f"with the {journal.ids.size} bytes the journal recorded (appending ids is fine, "
                "changing them is not): use the same ids file, or another --out, or --force"
            )

    def _check_data(self, path: Path, length: int, spans: tuple[Span, Span] | None, what: str) -> None:
        size = file_size(path)
        hint = "restore it, or start over with --force (or another --out)"
        if length and size is None:
            raise JournalError(f"{path} is missing, but {self.done_path} records {what} in it: {hint}")
        size = size or 0
        if size < length:
            raise JournalError(
                f"{path} has {size} bytes, but {self.done_path} records {length}: it was cut "
                f"short or replaced; {hint}"
            )
        with os_errors(path, "read"), path.open("rb") as fh:
            for span in spans or ():
                fh.seek(span.start)
                data = fh.read(span.end - span.start)
                if not data.endswith(b"\n") or zlib.crc32(data) != span.crc:
                    raise JournalError(
                        f"{path}, bytes {span.start}-{span.end}: not the line {self.done_path} "
                        f"records at line {span.journal_line}: the file was changed or replaced; {hint}"
                    )
            # A kill or a failed write leaves at most one unjournalled line (and a partial one).
            fh.seek(length)
            newlines = 0
            while newlines <= 1 and (block := fh.read(1 << 16)):
                newlines += block.count(b"\n")
            if newlines > 1:
                raise JournalError(
                    f"{path} has more than one line after the last one {self.done_path} records: "
                    f"it is not the file this journal describes; {hint}"
                )

    def write(self, outcome: FetchOutcome) -> None:
        """Record one outcome; a found or not-found id is journalled as done.

        Raises :class:`OutputError` if a file cannot be written; what was journalled
        before stays valid, so a later ``--resume`` continues from there.
        """
        if isinstance(outcome.error, CallNotReadyError):
            late = outcome.error
            if self._not_ready is None:
                self._not_ready = self._add(self.not_ready_path, truncate=True)
            self._not_ready.append(
                _encode_failed(
                    _NotReadyLine(
                        id=outcome.call_id,
                        last_status=late.last_status,
                        found=late.found,
                        waited_s=round(late.waited, 3),
                        polls=late.polls,
                    )
                )
                + b"\n"
            )
            self.not_ready += 1
            return
        if outcome.error is not None:
            err = outcome.error
            self.reject(
                outcome.call_id,
                type(err).__name__,
                str(getattr(err, "message", err)),
                status=getattr(err, "status", None),
                attempts=outcome.attempts,
            )
            return
        if outcome.raw is not None:
            raw = outcome.raw
            if b"\n" in raw or b"\r" in raw:
                # Pretty-printed by the server or a proxy: JSON strings cannot hold a raw
                # line break, so these are whitespace; drop it (tokens stay as sent).
                try:
                    raw = msgspec.json.format(raw, indent=-1)
                except (msgspec.DecodeError, RecursionError):
                    # msgspec cannot parse every call the client takes (a lone surrogate
                    # escape, nesting too deep): the line breaks go, nothing else changes.
                    raw = bytes(raw).translate(None, b"\r\n")
            line = raw + b"\n"
            self._out.append(line)
            self.written += 1
        else:
            line = outcome.call_id.encode() + b"\n"
            self._missing.append(line)
            self.missing += 1
        self._done.append(
            record_line(self._out.length, self._missing.length, zlib.crc32(line), outcome.call_id)
        )

    def reject(
        self, call_id: str, error: str, message: str, *, status: int | None = None, attempts: int = 0
    ) -> None:
        """Record a failure of ``call_id`` in the failures sidecar (not journalled: retried on resume)."""
        self._failed.append(
            _encode_failed(
                _FailedLine(id=call_id, error=error, status=status, message=message, attempts=attempts)
            )
            + b"\n"
        )
        self.failed += 1

    def close(self) -> None:
        """Close every file; raises :class:`OutputError` for the first that fails."""
        first: OutputError | None = None
        for appender in self._files:
            try:
                appender.close()
            except OutputError as exc:
                first = first or exc
        self._files.clear()
        if first is not None:
            raise first
