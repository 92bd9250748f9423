"""Reading an ids file: one id per line, in bounded chunks, off the event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import IO

import click

from ._common import EXIT_USAGE


class IdsFileError(click.ClickException):
    """The ids file cannot be read as ids (exit 2, naming the line)."""

    exit_code = EXIT_USAGE


def _read_chunks(fh: IO[bytes]) -> Iterator[list[bytes]]:
    while True:
        lines = fh.readlines(1 << 16)
        if not lines:
            return
        yield lines


async def ids_from(fh: IO[bytes], name: str, skip: set[str]) -> AsyncIterator[str]:
    """Ids one per line, read in chunks off the event loop; a million ids never sit in memory."""
    chunks = _read_chunks(fh)
    lineno = 0
    while True:
        lines = await asyncio.to_thread(next, chunks, None)
        if lines is None:
            return
        for line in lines:
            lineno += 1
            try:
                call_id = line.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise IdsFileError(f"{name}, line {lineno}: not UTF-8 text") from None
            if "\x00" in call_id:
                raise IdsFileError(f"{name}, line {lineno}: contains a NUL byte (is this a binary file?)")
            if call_id and call_id not in skip:
                yield call_id


def count_lines(path: str) -> int | None:
    """Lines in ``path`` (for the progress bar's total), or None for stdin or a non-file."""
    if path == "-" or not os.path.isfile(path):
        return None
    count = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            count += block.count(b"\n")
    return count
