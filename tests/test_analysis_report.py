"""The HTML report, opened in a real headless Chromium: no console errors, every plot drawn,
nothing fetched, readings that match the data; and a report of no data that says so."""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
from _chromium import open_page
from _payloads import server_call
from conftest import API_KEY

import asyncvox
from asyncvox import analysis
from asyncvox.testing import DemoServer, FaultProfile

PLOTS = [
    "latency",
    "first-word",
    "timeline",
    "evaluations",
    "failure-reasons",
    "scenarios",
    "test-agents",
    "interruptions",
]

#: Everything the tests look at, gathered in the page by the browser itself.
PAGE_CHECK = """
(() => {
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  const refs = [...document.querySelectorAll('[clip-path]')].map(e => e.getAttribute('clip-path'));
  return {
    title: document.title,
    scripts: document.scripts.length,
    resources: performance.getEntriesByType('resource').map(e => e.name),
    duplicateIds: ids.length - new Set(ids).size,
    brokenClipRefs: refs.filter(r => !document.getElementById(r.match(/#([^)]+)/)[1])).length,
    summary: [...document.querySelectorAll('table.summary tr')].map(
      r => [r.querySelector('th').textContent, r.querySelector('td').textContent]),
    sections: [...document.querySelectorAll('section[data-plot]')].map(s => {
      const svg = s.querySelector('svg');
      const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
      return {
        key: s.dataset.plot,
        state: s.dataset.state,
        title: s.querySelector('h2').textContent,
        reading: s.querySelector('.reading').textContent,
        width: box.width,
        height: box.height,
        shapes: svg ? svg.querySelectorAll('path, rect, use').length : 0,
        texts: svg ? [...svg.querySelectorAll('text')].map(
          t => [t.textContent.trim(), t.getBoundingClientRect().top]) : [],
        empty: s.querySelector('.empty') ? s.querySelector('.empty').textContent : null,
      };
    }),
  };
})()
"""

_SCENARIOS = ["Book a table", "Cancel a booking", "Change the time"]
_AGENTS = ["Impatient Ian", "Calm Carla", "Mumbling Max", "Polite Priya"]
_REASONS = ["Booking tool was never called", "Caller hung up"]


def _varied_calls(n: int = 40) -> list[dict[str, Any]]:
    """Real-shaped calls whose figures, outcomes, groups and days vary."""
    calls = []
    for i in range(n):
        passed = i % 3 != 0
        call = server_call(f"rep-{i:03d}", scenario=_SCENARIOS[i % 3], passed=passed)
        call["createdAt"] = f"2026-01-{1 + i % 9:02d}T{10 + i % 8:02d}:00:00Z"
        call["latencyP50"], call["latencyP95"] = 400 + 37 * i, 900 + 91 * i
        call["timeToFirstWord"] = 800 + 45 * i
        call["testAgentId"] = call["testAgent"]["id"] = f"ta_{i % 4}"
        call["testAgent"]["name"] = _AGENTS[i % 4]
        call["interruptions"] = call["interruptions"] * (i % 4)
        if not passed:
            call["failureReason"] = _REASONS[i % 2]
        calls.append(call)
    return calls


def _write_jsonl(path: Path, calls: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(c) + b"\n" for c in calls))
    return path


def _assert_clean_page(run: Any) -> dict[str, Any]:
    assert run.console_errors == [], run.console_errors
    assert run.exceptions == [], run.exceptions
    page: dict[str, Any] = run.value
    assert page["scripts"] == 0 and page["resources"] == [], "the report must need nothing from outside"
    assert page["duplicateIds"] == 0 and page["brokenClipRefs"] == 0
    assert [s["key"] for s in page["sections"]] == PLOTS
    return page


def _assert_drawn(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections = {s["key"]: s for s in page["sections"]}
    for key, s in sections.items():
        assert s["state"] == "drawn", (key, s["reading"])
        assert s["width"] > 300 and s["height"] > 100, (key, s["width"], s["height"])
        assert s["shapes"] >= 5, key
        assert s["reading"] and s["empty"] is None, key
    return sections


def _ordered_labels(section: dict[str, Any], labels: list[str]) -> list[str]:
    """The given labels in the order they appear from top to bottom of the plot."""
    found = [(top, text) for text, top in section["texts"] if text in labels]
    return [text for _, text in sorted(found)]


async def test_the_report_opens_in_chromium_with_every_plot_drawn_and_true_readings(tmp_path: Path) -> None:
    calls = _varied_calls()
    src = _write_jsonl(tmp_path / "calls.jsonl", calls)
    with src.open("ab") as fh:
        fh.write(b"not a call\n")
    out = tmp_path / "report.html"
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "asyncvox", "report", str(src), "-o", str(out), "--title", "Q1 calls"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # written, but a line was skipped
    assert f"report of 40 calls -> {out}" in proc.stdout
    assert "line 41: not a call" in proc.stderr

    page = _assert_clean_page(await open_page(out, PAGE_CHECK))
    sections = _assert_drawn(page)
    assert page["title"] == "Q1 calls"
    summary = dict(page["summary"])
    assert summary["Calls"] == "40 (1 input lines skipped)"
    assert summary["Result"].startswith("success 26 (65.0%) · failure 14 (35.0%)")

    p95 = [c["latencyP95"] for c in calls]
    above = sum(v > 2000 for v in p95)
    assert sections["latency"]["reading"] == (
        f"p95 latency median is {statistics.median(p95):,.0f} ms; "
        f"{100 * above / 40:.0f}% of 40 calls above 2,000 ms"
    )
    ttfw = [c["timeToFirstWord"] for c in calls]
    assert sections["first-word"]["reading"].startswith(
        f"time to first word median is {statistics.median(ttfw):,.0f} ms"
    )
    assert sections["timeline"]["reading"].startswith(
        "40 calls from 2026-01-01 to 2026-01-09; 35% failed overall"
    )

    # Evaluations: worst pass rate first, by the name a person reads.
    names = ["Greets the caller", "Calls the booking tool with the right slot", "ev-greet"]
    assert _ordered_labels(sections["evaluations"], names)[:2] == [
        "Calls the booking tool with the right slot",  # fails on 14 of 40 calls
        "Greets the caller",  # always passes
    ]
    assert sections["evaluations"]["reading"].startswith(
        "worst: 'Calls the booking tool with the right slot' passes 65% of 40 results"
    )
    notes = [text for text, _ in sections["evaluations"]["texts"]]
    assert "65% of 40" in notes and "100% of 40" in notes  # each bar says its pass rate and count
    assert "100% failed of 14" in [text for text, _ in sections["scenarios"]["texts"]]
    assert sections["failure-reasons"]["reading"].startswith("'Booking tool was never called' accounts for")
    # Every third call fails, and they all fall in the first scenario.
    assert _ordered_labels(sections["scenarios"], _SCENARIOS)[0] == "Book a table"
    assert sections["scenarios"]["reading"].startswith("'Book a table' fails most: 100% of 14 calls")
    assert set(_ordered_labels(sections["test-agents"], _AGENTS)) == set(_AGENTS)
    assert sections["interruptions"]["reading"] == (
        "median 1.5 interruptions per call; 75% of 40 calls have at least one; the most is 3"
    )


async def test_a_report_of_no_calls_says_so_in_every_plot(tmp_path: Path) -> None:
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    result = analysis.write_report(src, tmp_path / "empty.html")
    assert result.calls == 0 and result.plots == tuple((key, False) for key in PLOTS)
    page = _assert_clean_page(await open_page(result.path, PAGE_CHECK))
    for s in page["sections"]:
        assert s["state"] == "empty" and s["width"] == 0, s["key"]
        assert s["empty"].startswith("No data to plot."), s["key"]
    assert dict(page["summary"])["Calls"] == "0"


async def test_the_demo_batch_report_from_tables_in_memory(server: DemoServer, tmp_path: Path) -> None:
    server.profile = FaultProfile(drift_rate=0.2, seed=5)
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        outcomes = await client.fetch_calls([f"demo-{i}" for i in range(120)])
    result = analysis.write_report(analysis.to_tables(outcomes), tmp_path / "demo.html")
    assert result.calls == 120
    page = _assert_clean_page(await open_page(result.path, PAGE_CHECK))
    _assert_drawn(page)


def test_the_same_tables_give_the_same_report_from_jsonl_and_from_parquet(tmp_path: Path) -> None:
    src = _write_jsonl(tmp_path / "calls.jsonl", _varied_calls(12))
    analysis.export_jsonl(src, tmp_path / "tables")
    a = analysis.write_report(src, tmp_path / "a.html").path.read_text()
    b = analysis.write_report(tmp_path / "tables", tmp_path / "b.html").path.read_text()

    def body(text: str) -> str:
        return re.sub(r'<p class="sub">.*?</p>', "", text)

    assert body(a) == body(b)
    assert a.count("<svg") == len(PLOTS)


async def test_the_browser_check_itself_sees_console_errors_exceptions_and_fetches(tmp_path: Path) -> None:
    """The checks above would pass vacuously if the harness heard nothing: prove it hears."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><head><title>bad</title></head><body>"
        '<img src="missing.png"><script>console.error("drawn wrong"); throw new Error("boom");</script>'
        "</body></html>"
    )
    run = await open_page(page, "document.title")
    assert run.value == "bad"
    assert any("drawn wrong" in e for e in run.console_errors)
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in run.console_errors), (
        run.console_errors
    )
    assert any("boom" in e for e in run.exceptions)
