"""Reading an ids file: one id per line, in bounded chunks, off the event loop.

Memory stays bounded whatever the file holds: it is read in 64 KiB chunks and of a line
only its first ``MAX_ID_BYTES + 1`` bytes are ever kept, so a 150 MB line (binary junk, a
JSON dump) costs no more than a short one; it is that line's error, and the rest goes on.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, NamedTuple

import click

from ._common import EXIT_USAGE
from ._journal import Fingerprint

#: The longest line (an id with any blanks around it, without its newline) ``fetch``
#: reads as an id; far above any real id (fixa's are UUIDs), low enough to bound memory.
MAX_ID_BYTES = 4096
_KEEP = MAX_ID_BYTES + 1  # enough to know a line is too long
_SHOWN = 64  # bytes of a too-long line quoted to identify it
_CHUNK = 1 << 16


class IdsFileError(click.ClickException):
    """The ids file cannot be read as ids (exit 2, naming the line)."""

    exit_code = EXIT_USAGE


class RejectedLine(NamedTuple):
    """A line too long to be an id: where it is, how long, and how it starts."""

    lineno: int
    length: int
    start: bytes


class IdsFile:
    """The ids input of a run: a path, or ``-`` for stdin."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = "stdin" if path == "-" else path

    def _regular_size(self) -> int | None:
        if self.path == "-":
            return None
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise IdsFileError(f"{self.name}: cannot read: {exc.strerror or exc}") from None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def fingerprint(self, size: int | None = None) -> Fingerprint | None:
        """Size and SHA-256 of the first ``size`` bytes (all of it if None or shorter);
        None for stdin or a pipe, which cannot be read twice.

        Matching an earlier fingerprint means the file is the same, or the same with whole
        lines appended.
        """
        total = self._regular_size()
        if total is None:
            return None
        want = total if size is None else min(size, total)
        digest = hashlib.sha256()
        got = 0
        block = b""
        try:
            with open(self.path, "rb") as fh:
                while got < want and (block := fh.read(min(1 << 20, want - got))):
                    digest.update(block)
                    got += len(block)
        except OSError as exc:
            raise IdsFileError(f"{self.name}: cannot read: {exc.strerror or exc}") from None
        if got < total and block and not block.endswith(b"\n"):
            # The first ``size`` bytes end inside a line that goes on: that line (an id)
            # changed, so this cannot match a fingerprint of exactly ``size`` bytes.
            got += 1
        return Fingerprint(size=got, sha256=digest.hexdigest())

    def count_lines(self) -> int | None:
        """Lines in the file (the progress bar's total), or None for stdin or a non-file."""
        if self._regular_size() is None:
            return None
        count = 0
        try:
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    count += block.count(b"\n")
        except OSError as exc:
            raise IdsFileError(f"{self.name}: cannot read: {exc.strerror or exc}") from None
        return count


class _Line(NamedTuple):
    lineno: int
    head: bytes  # the line without its newline, or its first _KEEP bytes
    length: int  # the whole line's length


def _grow(head: bytes, length: int, piece: bytes) -> tuple[bytes, int]:
    if len(head) < _KEEP:
        head += piece[: _KEEP - len(head)]
    return head, length + len(piece)


def _lines(fh: IO[bytes]) -> Iterator[list[_Line]]:
    """The file's lines, a chunk's worth at a time, each cut to its first ``_KEEP`` bytes."""
    # read1 returns what a pipe has now instead of waiting for a whole chunk.
    read: Callable[[int], bytes] = getattr(fh, "read1", fh.read)
    lineno = 0
    head, length = b"", 0  # the line being read, across chunks
    while chunk := read(_CHUNK):
        pieces = chunk.split(b"\n")
        batch = []
        for piece in pieces[:-1]:
            lineno += 1
            head, length = _grow(head, length, piece)
            batch.append(_Line(lineno, head, length))
            head, length = b"", 0
        head, length = _grow(head, length, pieces[-1])
        if batch:
            yield batch
    if length:
        yield [_Line(lineno + 1, head, length)]


async def read_ids(
    fh: IO[bytes],
    name: str,
    *,
    skip: set[str],
    on_rejected: Callable[[RejectedLine], None],
    unseen: set[str] | None = None,
) -> AsyncIterator[str]:
    """Ids one per line, read in chunks off the event loop; a million ids never sit in memory.

    A UTF-8 byte order mark starting the first line is dropped, whitespace around an id
    is trimmed and blank lines skipped; ids in ``skip`` are not
    yielded (and are discarded from ``unseen``, which so ends holding those never read).
    A line longer than :data:`MAX_ID_BYTES` goes to ``on_rejected``; text that is not
    UTF-8 or holds a NUL byte (a binary file) raises :class:`IdsFileError`.
    """
    chunks = _lines(fh)
    while True:
        try:
            batch = await asyncio.to_thread(next, chunks, None)
        except OSError as exc:
            raise IdsFileError(f"{name}: cannot read: {exc.strerror or exc}") from None
        if batch is None:
            return
        for line in batch:
            if line.length > MAX_ID_BYTES:
                on_rejected(RejectedLine(line.lineno, line.length, line.head[:_SHOWN]))
                continue
            head = line.head
            if line.lineno == 1 and head.startswith(codecs.BOM_UTF8):
                # Not whitespace to strip(): left in, it would be part of the first id,
                # which the API would then report not found.
                head = head[len(codecs.BOM_UTF8) :]
            try:
                call_id = head.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise IdsFileError(f"{name}, line {line.lineno}: not UTF-8 text") from None
            if "\x00" in call_id:
                raise IdsFileError(
                    f"{name}, line {line.lineno}: contains a NUL byte (is this a binary file?)"
                )
            if not call_id:
                continue
            if call_id in skip:
                if unseen is not None:
                    unseen.discard(call_id)
                continue
            yield call_id
