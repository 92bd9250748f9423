"""Run the CLI with the export's files failing like a broken disk: ``python _faulty_disk.py ARGS``.

Tests run as root, whom a read-only directory does not stop, and no test may fill a real
disk; so the export's file opener (``asyncvox.cli._files.open_file``, a documented seam)
is swapped for one whose files fail as the kernel's would. ``$FAULTY_DISK`` says how:

* ``full:SUFFIX:N`` -- the N-th write to the file whose name ends with SUFFIX writes only
  half its bytes, and every write after it (to any file) raises ENOSPC;
* ``readonly:ERRNO`` -- opening any file for writing raises that errno (EROFS, EACCES);
* ``tables:N`` -- ``fetch --parquet``'s tables (row groups of 10 calls here) fill the disk
  at the N-th ``write_table`` (counted over all six tables: a row group is up to six):
  pyarrow raises its OSError (no errno, as pyarrow's own) from then on, and every write
  to the export's files raises ENOSPC;
* ``tables-once:N`` -- the same N-th ``write_table`` fails, and only it: then there is
  room again (another process freed space).
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Any, BinaryIO

from asyncvox.cli import _files, main

mode, *spec = os.environ["FAULTY_DISK"].split(":")
state = {"full": False}


class _FullDiskFile(io.FileIO):
    def __init__(self, path: Path, how: str) -> None:
        super().__init__(path, how)
        self.writes = 0
        self.doomed = str(path).endswith(spec[0]) if mode == "full" else False

    def write(self, data: Any) -> int:
        enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if state["full"]:
            raise enospc
        self.writes += 1
        if self.doomed and self.writes == int(spec[1]):
            # The kernel's way: a short write, then ENOSPC on the next one.
            state["full"] = True
            view = memoryview(data)
            return super().write(view[: len(view) // 2]) or 0
        return super().write(data) or 0


def _open(path: Path, how: str) -> BinaryIO:
    if mode == "readonly":
        code = getattr(errno, spec[0])
        raise OSError(code, os.strerror(code), str(path))
    return _FullDiskFile(path, how)  # type: ignore[return-value]


class _FillingParquetWriter:
    """pyarrow's ParquetWriter, until the disk fills (see ``tables:N``)."""

    writes = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._real = _real_writer(*args, **kwargs)

    def _check(self) -> None:
        if state["full"]:
            raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

    def write_table(self, table: Any) -> None:
        _FillingParquetWriter.writes += 1
        if _FillingParquetWriter.writes == int(spec[0]) and mode == "tables-once":
            raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
        if _FillingParquetWriter.writes >= int(spec[0]) and mode == "tables":
            state["full"] = True
        self._check()
        self._real.write_table(table)

    def close(self) -> None:
        self._check()
        self._real.close()


if mode in ("tables", "tables-once"):
    import pyarrow.parquet

    from asyncvox.analysis import _writer

    _real_writer = pyarrow.parquet.ParquetWriter
    pyarrow.parquet.ParquetWriter = _FillingParquetWriter  # type: ignore[misc]
    _real_init = _writer.TableWriter.__init__

    def _small_row_groups(self: Any, *args: Any, **kwargs: Any) -> None:
        _real_init(self, *args, **{**kwargs, "batch_calls": 10})

    _writer.TableWriter.__init__ = _small_row_groups  # type: ignore[method-assign]

_files.open_file = _open
main()
