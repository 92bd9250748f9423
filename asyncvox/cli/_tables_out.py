"""``fetch --parquet DIR``: the Parquet tables written beside the JSONL export, while fetching.

The JSONL export stays the record of what is done (its journal); the tables follow it.
On ``--resume`` the writer continues its own committed parts and first catches up with
the calls the JSONL already holds, so the two never disagree after a kill.
"""

from __future__ import annotations

from pathlib import Path

import asyncvox
from asyncvox import analysis

from ._common import fail


class TablesOut:
    """A :class:`asyncvox.analysis.TableWriter` fed from the fetch's outcomes."""

    def __init__(self, writer: analysis.TableWriter) -> None:
        self.writer = writer
        #: Calls not written as rows (a duplicate call id, or not a call object).
        self.skipped = 0

    def add(self, outcome: asyncvox.FetchOutcome) -> None:
        """Write one outcome's call (found ones only)."""
        try:
            self.writer.add_outcome(outcome)
        except analysis.InvalidCallError:
            self.skipped += 1

    def close(self) -> None:
        """Commit what is buffered."""
        self.writer.close()

    def summary(self) -> str:
        """One line: where the tables went and how many calls they hold."""
        skipped = f" ({self.skipped} skipped: duplicate id or not a call)" if self.skipped else ""
        return f"tables -> {self.writer.directory}/ ({self.writer.calls} calls this run){skipped}"


def open_tables(directory: Path, jsonl: Path, *, resume: bool, overwrite: bool) -> TablesOut:
    """Open the tables for a fetch into ``jsonl``; exit 2 with one line if that cannot be done."""
    try:
        writer = analysis.TableWriter(directory)
        writer.open(resume=resume, overwrite=overwrite)
        if resume and jsonl.exists():
            writer.add_jsonl(jsonl)  # calls already exported but not yet in a committed part
    except analysis.MissingDependencyError as exc:
        fail(str(exc))
    except analysis.OutputExistsError as exc:
        fail(f"{exc} (--resume continues it, --force starts over)")
    except OSError as exc:
        fail(f"cannot write the tables in {directory}: {exc.strerror or exc}")
    return TablesOut(writer)
