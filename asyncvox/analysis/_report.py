"""One self-contained HTML report of a set of calls: a summary table and eight plots.

The file needs nothing else to open (no script, no CDN, no font or image to fetch): the
plots are inline SVG drawn by matplotlib, the style is inline CSS. It reads only the
columns it shows, so a report of a 100,000-call JSONL file streams it once and keeps a
few columns of ``calls`` and ``evaluation_results``.
"""

from __future__ import annotations

import html
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from . import _plots
from ._deps import matplotlib_figure, pyarrow
from ._export import NoTablesError, iter_jsonl_tables, read_tables
from ._tables import BadLine, Tables, schemas
from ._writer import JOURNAL

__all__ = ["ReportResult", "write_report"]

_CALL_COLUMNS = (
    "call_id", "status", "result", "failure_reason", "created_at", "duration_s",
    "latency_p50_ms", "latency_p95_ms", "time_to_first_word_ms", "scenario_id", "scenario_name",
    "test_agent_id", "test_agent_name", "interruption_count", "error_count",
)  # fmt: skip
_EVAL_COLUMNS = ("evaluation_id", "evaluation_name", "success", "is_critical")
#: Above this, a call's p95 latency is called out in the reading (a common voice-agent budget).
LATENCY_BUDGET_MS = 2000.0
#: Above this, time to first word is called out.
FIRST_WORD_BUDGET_MS = 2000.0


class ReportResult(NamedTuple):
    """What :func:`write_report` wrote."""

    path: Path
    calls: int
    #: ``(plot key, drawn)`` for each plot; not drawn means there was no data for it.
    plots: tuple[tuple[str, bool], ...]
    bad_lines: tuple[BadLine, ...]
    bad_line_count: int


class _Data(NamedTuple):
    calls: Any
    evaluations: Any
    bad_lines: tuple[BadLine, ...]
    bad_line_count: int
    source: str


def _load(source: Tables | str | os.PathLike[str], dedupe: bool) -> _Data:
    pa = pyarrow()
    if isinstance(source, Tables):
        return _Data(
            source.calls.select(list(_CALL_COLUMNS)),
            source.evaluation_results.select(list(_EVAL_COLUMNS)),
            source.bad_lines,
            source.bad_line_count,
            "tables in memory",
        )
    path = Path(source)
    if path.is_dir():
        if not (path / JOURNAL).exists() and not (path / "calls").is_dir():
            raise NoTablesError(f"{path} holds no Parquet tables (write them with `asyncvox export`)")
        tables = read_tables(
            path,
            tables=("calls", "evaluation_results"),
            columns={"calls": _CALL_COLUMNS, "evaluation_results": _EVAL_COLUMNS},
        )
        return _Data(tables.calls, tables.evaluation_results, (), 0, str(path))
    calls: list[Any] = []
    evaluations: list[Any] = []
    bad: list[BadLine] = []
    count = 0
    # Few decoded calls held at once, and only the two tables the report reads are built.
    only = ("calls", "evaluation_results")
    for batch in iter_jsonl_tables(path, batch_calls=250, dedupe=dedupe, tables=only):
        calls.append(batch.calls.select(list(_CALL_COLUMNS)))
        evaluations.append(batch.evaluation_results.select(list(_EVAL_COLUMNS)))
        bad.extend(batch.bad_lines[: max(0, 1000 - len(bad))])
        count += batch.bad_line_count
    if not calls:  # an empty file
        sch = schemas()
        calls = [sch["calls"].empty_table().select(list(_CALL_COLUMNS))]
        evaluations = [sch["evaluation_results"].empty_table().select(list(_EVAL_COLUMNS))]
    return _Data(pa.concat_tables(calls), pa.concat_tables(evaluations), tuple(bad), count, str(path))


# The report works on Arrow columns (compute kernels, group-bys) and hands numpy arrays
# or a few aggregated rows to the plots: a 100,000-call report never makes Python
# objects of every value.


def _values(table: Any, column: str) -> Any:
    """The column's non-null values as a numpy array."""
    return table.column(column).drop_null().to_numpy()


def _is(pa: Any, column: Any, value: Any) -> Any:
    """``column == value`` as int64 0/1, null counting as 0."""
    pc = pa.compute
    return pc.fill_null(pc.equal(column, value), False).cast(pa.int64())


def _tally(pa: Any, key: Any, passed: Any, failed: Any, label: Any | None = None) -> list[_plots.Bar]:
    """Passed / failed / other counts per key (rows with a null key are left out)."""
    cols = {"key": key, "p": passed, "f": failed}
    aggs = [("p", "sum"), ("f", "sum"), ("p", "count")]
    if label is not None:
        cols["label"] = label
        aggs.append(("label", "min"))  # a name any row of the group gives (the same for all)
    bars = []
    for row in pa.table(cols).group_by("key").aggregate(aggs).to_pylist():
        if row["key"] is None:
            continue
        name = row.get("label_min") or row["key"]
        bars.append(
            _plots.Bar(name, row["p_sum"], row["f_sum"], row["p_count"] - row["p_sum"] - row["f_sum"])
        )
    return bars


def _group_bars(pa: Any, calls: Any, name_col: str, id_col: str) -> list[_plots.Bar]:
    """Call results per group, keyed by id (else name) and shown by name where a call has it."""
    result = calls.column("result")
    return _tally(
        pa,
        pa.compute.coalesce(calls.column(id_col), calls.column(name_col)),
        _is(pa, result, "success"),
        _is(pa, result, "failure"),
        calls.column(name_col),
    )


def _evaluation_bars(pa: Any, evaluations: Any) -> list[_plots.Bar]:
    """Verdicts per evaluation, by the name a person reads (else the evaluation's id)."""
    key = pa.compute.coalesce(
        evaluations.column("evaluation_name"), evaluations.column("evaluation_id"), pa.scalar("(unnamed)")
    )
    success = evaluations.column("success")
    return _tally(pa, key, _is(pa, success, True), _is(pa, success, False))


def _value_counts(column: Any) -> dict[Any, int]:
    """How often each value occurs, ``None`` included."""
    counts = column.value_counts().to_pylist() if len(column) else []
    return {c["values"]: c["counts"] for c in counts}


def _plots_for(data: _Data) -> list[_plots.Plot]:
    pa = pyarrow()
    pc = pa.compute
    calls = data.calls
    has_time = pc.is_valid(calls.column("created_at"))
    stamps = pc.cast(pc.filter(calls.column("created_at"), has_time), pa.int64()).to_numpy() / 1e6
    failed = pc.filter(_is(pa, calls.column("result"), "failure"), has_time).to_numpy() == 1
    reasons = {r: n for r, n in _value_counts(calls.column("failure_reason")).items() if r}
    return [
        _plots.distribution(
            "latency",
            "Response latency per call (ms)",
            [
                ("p50 latency", _values(calls, "latency_p50_ms")),
                ("p95 latency", _values(calls, "latency_p95_ms")),
            ],
            unit="ms",
            threshold=LATENCY_BUDGET_MS,
            empty="No call has latency percentiles.",
        ),
        _plots.distribution(
            "first-word",
            "Time to first word (ms)",
            [("time to first word", _values(calls, "time_to_first_word_ms"))],
            unit="ms",
            threshold=FIRST_WORD_BUDGET_MS,
            empty="No call has a time to first word.",
        ),
        _plots.timeline(
            "timeline",
            "Calls and failures over time",
            stamps,
            failed,
        ),
        _plots.pass_rates(
            "evaluations",
            "Evaluation pass rates by evaluation (worst first)",
            _evaluation_bars(pa, data.evaluations),
        ),
        _plots.counts(
            "failure-reasons", "Failure reasons", list(reasons.items()), total=sum(reasons.values())
        ),
        _plots.bars_by_group(
            "scenarios",
            "Results by scenario",
            _group_bars(pa, calls, "scenario_name", "scenario_id"),
            what="scenario",
        ),
        _plots.bars_by_group(
            "test-agents",
            "Results by test agent",
            _group_bars(pa, calls, "test_agent_name", "test_agent_id"),
            what="test agent",
        ),
        _plots.interruptions(
            "interruptions",
            "Interruptions per call",
            _values(calls, "interruption_count"),
        ),
    ]


def _median(values: Any) -> float | None:
    import numpy as np

    return float(np.median(values)) if len(values) else None


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:,.0f} {unit}" if abs(value) >= 10 else f"{value:,.2f} {unit}"


def _share(part: int, whole: int) -> str:
    return f"{part:,} ({100 * part / whole:.1f}%)" if whole else f"{part:,}"


def _minute(micros: int) -> str:
    """Epoch microseconds as ``YYYY-MM-DD HH:MM`` (UTC), or what it is if no date is."""
    try:
        return f"{datetime.fromtimestamp(micros / 1e6, UTC):%Y-%m-%d %H:%M}"
    except (OverflowError, ValueError, OSError):
        return "(a time out of the calendar's range)"


def _summary(data: _Data) -> list[tuple[str, str]]:
    pa = pyarrow()
    pc = pa.compute
    calls, evals = data.calls, data.evaluations
    n = calls.num_rows
    rows = [
        (
            "Calls",
            f"{n:,}" + (f" ({data.bad_line_count:,} input lines skipped)" if data.bad_line_count else ""),
        )
    ]
    # As integers: a time Python's datetime cannot hold (year 0 in UTC, which a server's
    # "0001-01-01T00:00:00+14:00" is) would raise converting the min or max.
    span = pc.min_max(pc.cast(calls.column("created_at"), pa.int64())).as_py()
    if span["min"] is not None:
        rows.append(("Created", f"{_minute(span['min'])} to {_minute(span['max'])} UTC"))
    statuses = sorted(_value_counts(calls.column("status")).items(), key=lambda kv: -kv[1])
    rows.append(("Status", " · ".join(f"{s or '(none)'} {c:,}" for s, c in statuses[:5]) or "-"))
    results = _value_counts(calls.column("result"))
    none = results.get(None, 0)
    rows.append(
        (
            "Result",
            f"success {_share(results.get('success', 0), n)} · failure {_share(results.get('failure', 0), n)}"
            + (f" · none {none:,}" if none else ""),
        )
    )
    success = evals.column("success")
    passed = pc.sum(_is(pa, success, True)).as_py() or 0
    verdicts = len(success) - success.null_count
    critical = pc.fill_null(evals.column("is_critical"), False).cast(pa.int64())
    critical_failed = pc.sum(pc.multiply(critical, _is(pa, success, False))).as_py() or 0
    rows.append(
        (
            "Evaluation results",
            f"{len(success):,}, passed {_share(passed, verdicts)}"
            f" · critical ones failed: {critical_failed:,}",
        )
    )
    interruptions = _values(calls, "interruption_count")
    errors = _values(calls, "error_count")
    rows += [
        ("Latency p50, median of calls", _fmt(_median(_values(calls, "latency_p50_ms")), "ms")),
        ("Latency p95, median of calls", _fmt(_median(_values(calls, "latency_p95_ms")), "ms")),
        ("Time to first word, median", _fmt(_median(_values(calls, "time_to_first_word_ms")), "ms")),
        ("Call duration, median", _fmt(_median(_values(calls, "duration_s")), "s")),
        (
            "Interruptions",
            f"{int(interruptions.sum()):,} in all, {interruptions.mean():.1f} per call"
            if len(interruptions)
            else "-",
        ),
        (
            "Errors",
            f"{int(errors.sum()):,} in {len(errors):,} calls that list them" if len(errors) else "not sent",
        ),
    ]
    return rows


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:#1f2328;margin:0;background:#f6f8fa}
main{max-width:920px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:17px;margin:0 0 4px}
.sub{color:#57606a;margin:0 0 16px}
table.summary{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de;
  margin-bottom:16px}
table.summary th,table.summary td{padding:5px 10px;border-bottom:1px solid #eaeef2;
  text-align:left;vertical-align:top}
table.summary th{width:34%;font-weight:600;color:#57606a}
nav{margin:0 0 16px;font-size:13px}
nav a{margin-right:12px;color:#0969da}
section.plot{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:14px 16px;
  margin-bottom:16px}
.reading{margin:0 0 8px;color:#24292f}
.figure svg{width:100%;height:auto;display:block}
.empty{padding:28px;text-align:center;color:#57606a;background:#f6f8fa;
  border:1px dashed #d0d7de;border-radius:4px}
footer{color:#57606a;font-size:12px}
"""


def _html(title: str, data: _Data, plots: list[_plots.Plot]) -> str:
    e = html.escape
    summary = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _summary(data))
    nav = "".join(f'<a href="#plot-{p.key}">{e(p.title)}</a>' for p in plots)
    sections = []
    for p in plots:
        body = (
            f'<div class="figure">{p.svg}</div>'
            if p.svg
            else f'<div class="empty">No data to plot. {e(p.reading)}</div>'
        )
        state = "drawn" if p.svg else "empty"
        sections.append(
            f'<section class="plot" id="plot-{p.key}" data-plot="{p.key}" data-state="{state}">'
            f'<h2>{e(p.title)}</h2><p class="reading">{e(p.reading)}</p>{body}</section>'
        )
    skipped = ""
    if data.bad_lines:
        items = "".join(f"<li>line {b.line}: {e(b.reason)}</li>" for b in data.bad_lines[:20])
        skipped = f'<section class="plot" id="skipped"><h2>Skipped input lines</h2><ul>{items}</ul></section>'
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{e(title)}</title><style>{_CSS}</style></head><body><main>'
        f'<h1>{e(title)}</h1><p class="sub">{e(data.source)} · generated {generated} by asyncvox</p>'
        f'<table class="summary">{summary}</table><nav>{nav}</nav>{"".join(sections)}{skipped}'
        "<footer>Latency, interruption and time-to-first-word figures are the server's rounded "
        "milliseconds; durations are seconds. Results: <code>success</code> / <code>failure</code> "
        "as the server sent them.</footer></main></body></html>\n"
    )


def write_report(
    source: Tables | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    dedupe: bool = True,
) -> ReportResult:
    """Write one self-contained HTML report of ``source`` to ``path``.

    ``source``: a JSONL file of calls (streamed; bad lines are skipped and listed in the
    report, and so are calls whose id was already read unless ``dedupe`` is off), a
    directory of Parquet tables from ``asyncvox export``, or :class:`Tables`.
    The file is written atomically (a temporary file renamed into place).
    """
    matplotlib_figure()  # fail before any work when the extra is missing
    data = _load(source, dedupe)
    plots = _plots_for(data)
    out = Path(path)
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_text(_html(title or "Calls report", data, plots), encoding="utf-8")
    os.replace(temp, out)
    return ReportResult(
        out,
        data.calls.num_rows,
        tuple((p.key, p.svg is not None) for p in plots),
        data.bad_lines,
        data.bad_line_count,
    )
