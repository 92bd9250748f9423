"""The export's files at the OS level: unbuffered appends, and OS errors that name the file."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from ._journal import ExportError

__all__ = ["Appender", "OutputError", "file_size", "open_file", "os_errors"]


class OutputError(ExportError):
    """An OS error on one of the export's files (a read-only directory, a full disk, ...)."""

    def __init__(self, path: Path, action: str, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno or 0, "")
        reason = exc.strerror or str(exc)
        super().__init__(f"cannot {action} {path}: {reason}" + (f" ({name})" if name else ""))
        self.path = path
        self.action = action
        self.errno = exc.errno


@contextlib.contextmanager
def os_errors(path: Path, action: str) -> Iterator[None]:
    """Turn an ``OSError`` on ``path`` into an :class:`OutputError` saying what failed."""
    try:
        yield
    except OSError as exc:
        raise OutputError(path, action, exc) from None


#: How the export opens its files: unbuffered, so one line is one write. Tests swap it
#: for a file that fails like a full or read-only disk (which root cannot otherwise get).
open_file: Callable[[Path, str], BinaryIO] = io.FileIO


class Appender:
    """An append-only file written with unbuffered writes, its length kept in step."""

    def __init__(self, path: Path, *, truncate: bool = False) -> None:
        self.path = path
        with os_errors(path, "open"):
            self._fh = open_file(path, "w" if truncate else "a")
            self.length = self._fh.seek(0, os.SEEK_END)

    def append(self, data: bytes) -> None:
        """Write all of ``data`` (a raw write may take only part of it)."""
        with os_errors(self.path, "write"):
            done = self._fh.write(data) or 0
            while done < len(data):  # a short write (a disk filling up): write the rest
                more = self._fh.write(memoryview(data)[done:])
                if not more:  # a regular file never does this; never spin on it
                    raise OSError(errno.EIO, "the write made no progress")
                done += more
        self.length += done

    def close(self) -> None:
        """Close the file (an error closing it is an :class:`OutputError`)."""
        with os_errors(self.path, "close"):
            self._fh.close()


def file_size(path: Path) -> int | None:
    """``path``'s size, or None if there is no such file (as ``Path.exists`` sees it)."""
    with os_errors(path, "read"):
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
    if not stat.S_ISREG(st.st_mode):
        # Never truncate, remove or read to its end a device, FIFO or directory.
        raise ExportError(f"{path} is not a regular file")
    return st.st_size
