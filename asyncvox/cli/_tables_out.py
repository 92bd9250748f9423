"""``fetch --parquet DIR``: the Parquet tables written beside the JSONL export, while fetching.

The JSONL export stays the record of what is done (its journal); the tables follow it.
On ``--resume`` the writer continues its own committed parts and first catches up with
the calls the JSONL already holds, so the two never disagree after a kill.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import asyncvox
from asyncvox import analysis

from ._common import fail
from ._files import OutputError, os_errors


class TablesOut:
    """A :class:`asyncvox.analysis.TableWriter` fed from the fetch's outcomes."""

    def __init__(self, writer: analysis.TableWriter) -> None:
        self.writer = writer
        #: Calls not written as rows (a duplicate call id, or not a call object).
        self.skipped = 0

    def add(self, outcome: asyncvox.FetchOutcome) -> None:
        """Write one outcome's call (found ones only); a full disk (pyarrow's OSError) is
        an :class:`OutputError`, as the export's own files' is."""
        with os_errors(self.writer.directory, "write"):
            try:
                self.writer.add_outcome(outcome)
            except analysis.InvalidCallError:
                self.skipped += 1

    def close(self, quietly: bool = False) -> None:
        """Commit what is buffered (:class:`OutputError` if the disk refuses). ``quietly``
        (another error is on its way out): if the disk refuses, drop it instead, as a
        kill would; ``--resume`` adds it again from the JSONL."""
        try:
            with os_errors(self.writer.directory, "write"):
                self.writer.close()
        except OutputError:
            if not quietly:
                raise
            with contextlib.suppress(OSError):
                self.writer.abort()

    def summary(self) -> str:
        """One line: where the tables went and how many calls they hold."""
        skipped = f" ({self.skipped} skipped: duplicate id or not a call)" if self.skipped else ""
        return f"tables -> {self.writer.directory}/ ({self.writer.calls} calls this run){skipped}"


@contextlib.contextmanager
def _or_exit(directory: Path) -> Iterator[None]:
    """Exit 2 with one line for what keeps the tables from being written."""
    try:
        yield
    except analysis.MissingDependencyError as exc:
        fail(str(exc))
    except analysis.OutputExistsError as exc:
        fail(f"{exc} (--resume continues it, --force starts over)")
    except OSError as exc:
        fail(f"cannot write the tables in {directory}: {exc.strerror or exc}")


def check_tables(directory: Path, *, resume: bool, overwrite: bool) -> None:
    """What opening the tables would refuse, checked before the export is touched (it
    changes nothing); exit 2 with one line."""
    with _or_exit(directory):
        analysis.TableWriter(directory).check(resume=resume, overwrite=overwrite)


def open_tables(directory: Path, jsonl: Path, *, resume: bool, overwrite: bool) -> TablesOut:
    """Open the tables for a fetch into ``jsonl``, once the export is open (on resume its
    JSONL is then cut back to its journal); exit 2 with one line if that cannot be done."""
    with _or_exit(directory):
        writer = analysis.TableWriter(directory)
        writer.open(resume=resume, overwrite=overwrite)
        if resume and jsonl.exists():
            writer.add_jsonl(jsonl)  # calls already exported but not yet in a committed part
    return TablesOut(writer)
