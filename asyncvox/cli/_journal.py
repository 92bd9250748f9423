"""The ``.done`` journal of a fetch export: its format, and reading it back strictly.

The first line is a JSON header: the format's name and version, and the fingerprint
(size and SHA-256) of the ids file the export was started from (``null`` for stdin).
Every later line is one finished id::

    <calls bytes>\\t<missing bytes>\\t<crc32 of the id's line, 8 hex digits>\\t<id>\\n

holding the two data files' lengths *after* that id's line was written. Exactly one of
the two lengths grows on each line (a found call goes to the calls file, a not-found id
to ``.missing``), and the CRC is of the bytes between the previous length and this one,
so a resume can check that the data files still hold what the journal says.

Reading refuses anything this module would not have written (one bad line names the
file and line) rather than guess: guessing wrong loses or duplicates ids. The one
exception is a partial last line, which a kill mid-write leaves and which is dropped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import msgspec

__all__ = [
    "FORMAT",
    "VERSION",
    "ExportError",
    "Fingerprint",
    "Journal",
    "JournalError",
    "Span",
    "header_line",
    "read_journal",
    "record_line",
]

FORMAT = "asyncvox-fetch-journal"
VERSION = 2

_CRC = re.compile(rb"[0-9a-f]{8}")
#: What a record cut short by a kill can look like (the header's start is checked apart).
_PARTIAL_RECORD = re.compile(rb"[0-9]*(\t[0-9]*(\t[0-9a-f]{0,8}(\t[^\x00]*)?)?)?", re.DOTALL)
#: Far longer than any line written here (ids are at most 4096 bytes); bounds the memory
#: a damaged journal (binary junk without newlines) can take.
_LINE_LIMIT = 1 << 16


class ExportError(Exception):
    """The export's files cannot be used as asked; the message names the file and why."""


class JournalError(ExportError):
    """The journal (or the files it describes) is not what a resume can safely continue."""


class Fingerprint(msgspec.Struct, frozen=True):
    """The size and SHA-256 of (the start of) an ids file."""

    size: int
    sha256: str


class _Header(msgspec.Struct):
    format: str
    version: int
    ids: Fingerprint | None


class Span(NamedTuple):
    """One journalled line of a data file: its byte range and CRC, and the journal line."""

    start: int
    end: int
    crc: int
    journal_line: int


class Journal(NamedTuple):
    """What a journal says, read in full and checked line by line."""

    #: Fingerprint of the ids file the export was started from (None: stdin).
    ids: Fingerprint | None
    #: Every id journalled as done.
    done: set[str]
    #: Bytes of the journal up to its last complete line (a partial one is beyond).
    complete_len: int
    #: Journalled length of the calls file and of ``.missing``.
    out_len: int
    missing_len: int
    #: The first and last journalled line of each data file (None: it has none).
    out_spans: tuple[Span, Span] | None
    missing_spans: tuple[Span, Span] | None


def header_line(ids: Fingerprint | None) -> bytes:
    """The journal's first line for an export of the ids ``ids`` fingerprints."""
    return msgspec.json.encode(_Header(format=FORMAT, version=VERSION, ids=ids)) + b"\n"


def record_line(out_len: int, missing_len: int, crc: int, call_id: str) -> bytes:
    """The journal line for ``call_id``, whose line (CRC ``crc``) ends the data file it went to."""
    return b"%d\t%d\t%08x\t%s\n" % (out_len, missing_len, crc, call_id.encode())


def _parse_header(line: bytes, where: str) -> Fingerprint | None:
    try:
        header = msgspec.json.decode(line, type=_Header)
    except msgspec.DecodeError:
        header = None
    if header is None or header.format != FORMAT:
        raise JournalError(f"{where}: not an asyncvox fetch journal (or one written by an older asyncvox)")
    if header.version != VERSION:
        raise JournalError(f"{where}: journal version {header.version}, this asyncvox reads {VERSION}")
    return header.ids


def _parse_record(line: bytes, where: str) -> tuple[int, int, int, str]:
    parts = line.split(b"\t", 3)
    if len(parts) != 4:
        raise JournalError(f"{where}: not a journal record (expected 4 tab-separated fields)")
    out_s, missing_s, crc_s, id_b = parts
    if not (out_s.isdigit() and missing_s.isdigit()):
        raise JournalError(f"{where}: lengths must be non-negative integers")
    if not _CRC.fullmatch(crc_s):
        raise JournalError(f"{where}: the checksum must be 8 hex digits")
    try:
        call_id = id_b.decode("utf-8")
    except UnicodeDecodeError:
        raise JournalError(f"{where}: the id is not UTF-8 text") from None
    if not call_id or "\x00" in call_id or call_id != call_id.strip():
        raise JournalError(f"{where}: {call_id!r:.80} is not an id this export could have written")
    return int(out_s), int(missing_s), int(crc_s, 16), call_id


def read_journal(path: Path) -> Journal | None:
    """Read and check the journal at ``path``; None if it holds no complete line.

    Raises :class:`JournalError` naming the line for anything malformed, and ``OSError``
    if it cannot be read.
    """
    done: set[str] = set()
    out_len = missing_len = complete_len = 0
    ids: Fingerprint | None = None
    out_first: Span | None = None
    out_last: Span | None = None
    missing_first: Span | None = None
    missing_last: Span | None = None
    lineno = 0
    with path.open("rb") as fh:
        while line := fh.readline(_LINE_LIMIT):
            lineno += 1
            where = f"{path}, line {lineno}"
            if not line.endswith(b"\n"):
                if len(line) >= _LINE_LIMIT:
                    raise JournalError(f"{where}: longer than any journal line (binary junk?)")
                if not (line.startswith(b"{") if lineno == 1 else _PARTIAL_RECORD.fullmatch(line)):
                    raise JournalError(f"{where}: damaged (not a journal line cut short by a kill)")
                lineno -= 1
                break  # a partial last line: the kill came mid-write; that id is not done
            body = line[:-1]
            if lineno == 1:
                ids = _parse_header(body, where)
                complete_len += len(line)
                continue
            new_out, new_missing, crc, call_id = _parse_record(body, where)
            if new_out > out_len and new_missing == missing_len:
                span = Span(out_len, new_out, crc, lineno)
                out_first = out_first or span
                out_last = span
            elif new_missing > missing_len and new_out == out_len:
                span = Span(missing_len, new_missing, crc, lineno)
                missing_first = missing_first or span
                missing_last = span
            else:
                raise JournalError(
                    f"{where}: lengths {new_out}/{new_missing} do not follow the previous "
                    f"line's {out_len}/{missing_len} (exactly one must grow)"
                )
            if call_id in done:
                raise JournalError(f"{where}: {call_id!r:.80} is journalled twice")
            done.add(call_id)
            out_len, missing_len = new_out, new_missing
            complete_len += len(line)
    if lineno == 0:
        return None
    return Journal(
        ids=ids,
        done=done,
        complete_len=complete_len,
        out_len=out_len,
        missing_len=missing_len,
        out_spans=(out_first, out_last) if out_first and out_last else None,
        missing_spans=(missing_first, missing_last) if missing_first and missing_last else None,
    )
