"""From fetched calls to answers: normalised Arrow tables, Parquet/CSV files, an HTML report.

``pip install 'asyncvox[analysis]'`` (pyarrow, and matplotlib for the report). Importing
this module needs neither; the first function that does raises
:class:`MissingDependencyError` naming the extra when they are absent.

Six tables, each keyed by ``call_id`` (child tables also by ``position``, the element's
index in the call's list as sent): ``calls`` (one row per call: its figures, scenario
and test agent names, counts), ``messages``, ``evaluation_results`` (with the
evaluation's name, template id and critical flag), ``latency_blocks``,
``interruptions``, ``errors``. Units are in the column names (``latency_p50_ms``,
``duration_s``, ``seconds_from_start_s``); timestamps are ``timestamp[us, UTC]``.

They are built from each call's JSON as the server sent it, so they do not depend on
the typed models: drift never fails a call (a wrong-typed value becomes null, unknown
fields are ignored), and a line that is not a call is skipped and reported by number.

>>> from asyncvox import analysis
>>> tables = analysis.to_tables(outcomes)                           # doctest: +SKIP
>>> result = analysis.export_jsonl("calls.jsonl", "tables/")        # doctest: +SKIP
>>> analysis.write_report("calls.jsonl", "report.html")             # doctest: +SKIP
"""

from ._deps import MissingDependencyError
from ._export import (
    ExportResult,
    NoTablesError,
    export_jsonl,
    iter_jsonl_tables,
    read_jsonl,
    read_tables,
    to_tables,
)
from ._report import ReportResult, write_report
from ._tables import ROLE_KINDS, TABLE_NAMES, BadLine, InvalidCallError, Tables, schemas
from ._writer import JOURNAL, OutputExistsError, TableWriter

__all__ = [
    "JOURNAL",
    "ROLE_KINDS",
    "TABLE_NAMES",
    "BadLine",
    "ExportResult",
    "InvalidCallError",
    "MissingDependencyError",
    "NoTablesError",
    "OutputExistsError",
    "ReportResult",
    "TableWriter",
    "Tables",
    "export_jsonl",
    "iter_jsonl_tables",
    "read_jsonl",
    "read_tables",
    "schemas",
    "to_tables",
    "write_report",
]
