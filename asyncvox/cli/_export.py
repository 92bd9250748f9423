"""A resumable JSONL export: calls, a not-found sidecar, a failures sidecar, a done journal.

Files, for ``--out calls.jsonl``:

* ``calls.jsonl`` -- one call per line, the server's own JSON bytes (never re-encoded);
* ``calls.jsonl.missing`` -- ids the API reported not found, one per line;
* ``calls.jsonl.failed.jsonl`` -- ids that failed in the latest run, with error type,
  status and message (they are retried by ``--resume``);
* ``calls.jsonl.done`` -- the journal: one line per finished id, written *after* that
  id's line is flushed, holding the byte lengths of the two data files at that point.

Resuming truncates the data files to the lengths in the last complete journal line: a
line written but not journalled (killed in between) and a partial last line (killed
mid-write) are dropped and that id is fetched again, so nothing is lost or duplicated.
Which ids are done comes only from the journal, never from what the server put in a call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import msgspec

from ..outcomes import FetchOutcome

__all__ = ["Export", "ExportExistsError"]


class ExportExistsError(Exception):
    """The output exists and neither resume nor overwrite was asked for."""


class _FailedLine(msgspec.Struct):
    id: str
    error: str
    status: int | None
    message: str
    attempts: int


_encode_failed = msgspec.json.Encoder().encode


def _truncate_to_last_newline(path: Path) -> None:
    """Drop a partial last line (a write cut short by a kill)."""
    if not path.exists():
        return
    with path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        block = min(size, 1 << 16)
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                fh.truncate(start + idx + 1)
                return
            pos = start
        fh.truncate(0)


class Export:
    """Writes outcomes to the files above; :meth:`open` prepares a fresh or resumed run."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.missing_path = out.with_name(out.name + ".missing")
        self.failed_path = out.with_name(out.name + ".failed.jsonl")
        self.done_path = out.with_name(out.name + ".done")
        #: Ids finished by earlier runs (filled by ``open(resume=True)``).
        self.done_before: set[str] = set()
        self.written = 0
        self.missing = 0
        self.failed = 0
        self._out: IO[bytes] | None = None
        self._missing: IO[bytes] | None = None
        self._failed: IO[bytes] | None = None
        self._done: IO[bytes] | None = None

    def open(self, *, resume: bool, overwrite: bool) -> None:
        """Open the files; on ``resume`` load the journal and cut the files back to it."""
        paths = (self.out, self.missing_path, self.failed_path, self.done_path)
        if resume:
            out_len, missing_len = self._load_journal()
            for path, length in ((self.out, out_len), (self.missing_path, missing_len)):
                if path.exists():
                    with path.open("rb+") as fh:
                        fh.truncate(length)
        elif not overwrite and any(p.exists() for p in paths):
            raise ExportExistsError(
                f"{self.out} (or its sidecar files) already exists: pass --resume to continue it "
                "or --force to start over"
            )
        else:
            for path in paths:
                path.unlink(missing_ok=True)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.out.open("ab")
        self._missing = self.missing_path.open("ab")
        self._failed = self.failed_path.open("wb")  # failures of this run only
        self._done = self.done_path.open("ab")

    def _load_journal(self) -> tuple[int, int]:
        _truncate_to_last_newline(self.done_path)
        out_len = missing_len = 0
        if not self.done_path.exists():
            return 0, 0
        with self.done_path.open("rb") as fh:
            for line in fh:
                out_s, missing_s, call_id = line.rstrip(b"\n").split(b"\t", 2)
                out_len, missing_len = int(out_s), int(missing_s)
                self.done_before.add(call_id.decode())
        return out_len, missing_len

    def write(self, outcome: FetchOutcome) -> None:
        """Record one outcome; a found or not-found id is journalled as done."""
        assert self._out is not None, "call open() first"
        assert self._missing is not None and self._failed is not None and self._done is not None
        if outcome.error is not None:
            err = outcome.error
            self._failed.write(
                _encode_failed(
                    _FailedLine(
                        id=outcome.call_id,
                        error=type(err).__name__,
                        status=getattr(err, "status", None),
                        message=str(getattr(err, "message", err)),
                        attempts=outcome.attempts,
                    )
                )
                + b"\n"
            )
            self._failed.flush()
            self.failed += 1
            return
        if outcome.raw is not None:
            raw = outcome.raw
            if b"\n" in raw or b"\r" in raw:
                # Pretty-printed by the server or a proxy: JSON strings cannot hold a raw
                # line break, so these are whitespace; drop it (tokens stay as sent).
                raw = msgspec.json.format(raw, indent=-1)
            self._out.write(raw)
            self._out.write(b"\n")
            self._out.flush()
            self.written += 1
        else:
            self._missing.write(outcome.call_id.encode() + b"\n")
            self._missing.flush()
            self.missing += 1
        self._done.write(b"%d\t%d\t%s\n" % (self._out.tell(), self._missing.tell(), outcome.call_id.encode()))
        self._done.flush()

    def close(self) -> None:
        for fh in (self._out, self._missing, self._failed, self._done):
            if fh is not None:
                fh.close()
