"""`asyncvox export` and `asyncvox report`, run as users run them: real processes."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
from _payloads import reference_call, server_call

from asyncvox import analysis


def _run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "asyncvox", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def _src(tmp_path: Path, bad: bytes = b"") -> Path:
    path = tmp_path / "calls.jsonl"
    lines = [msgspec.json.encode(c) for c in (server_call("c1"), reference_call("r1"), server_call("c2"))]
    path.write_bytes(b"\n".join(lines) + b"\n" + bad)
    return path


def test_export_writes_parquet_tables_and_says_where(tmp_path: Path) -> None:
    src, out = _src(tmp_path), tmp_path / "tables"
    proc = _run("export", str(src), "--to", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"3 calls from {src} -> {out} (parquet)" in proc.stdout
    assert f"messages                     16 rows  {out / 'messages'}" in proc.stdout
    assert "duckdb -c" in proc.stdout
    assert pq.read_table(out / "calls").column("call_id").to_pylist() == ["c1", "r1", "c2"]
    assert pq.read_table(out / "evaluation_results").num_rows == 8

    again = _run("export", str(src), "--to", str(out))
    assert again.returncode == 2 and "already holds tables: pass --force" in again.stderr
    assert "Traceback" not in again.stderr
    assert _run("export", str(src), "--to", str(out), "--force", "-q").returncode == 0


def test_export_csv_for_spreadsheets(tmp_path: Path) -> None:
    src, out = _src(tmp_path), tmp_path / "csv"
    proc = _run("export", str(src), "--to", str(out), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    with (out / "calls.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["call_id"] for r in rows] == ["c1", "r1", "c2"]
    assert rows[0]["test_agent_name"] == "Impatient Ian" and rows[1]["latency_p95_ms"] == "2400"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.csv" for t in analysis.TABLE_NAMES)


def test_bad_lines_are_listed_by_number_and_the_rest_exported(tmp_path: Path) -> None:
    src = _src(tmp_path, bad=b"{not json\n\n" + b"[]\n" * 25)
    out = tmp_path / "tables"
    proc = _run("export", str(src), "--to", str(out))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"skipped 26 lines of {src}:" in proc.stderr
    assert "  line 4: not a call: not valid JSON" in proc.stderr
    assert "  line 6: not a call: a JSON array, not an object" in proc.stderr  # line 5 is blank
    assert "  ... and 6 more" in proc.stderr
    assert pq.read_table(out / "calls").num_rows == 3


def test_report_writes_one_html_file(tmp_path: Path) -> None:
    src = _src(tmp_path)
    proc = _run("report", str(src), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"report of 3 calls -> {tmp_path / 'r.html'}")
    html = (tmp_path / "r.html").read_text()
    assert html.count("<svg") == 8 and "<script" not in html and "http" not in html.split("<svg", 1)[0]
    missing = _run("report", str(tmp_path), "-o", str(tmp_path / "x.html"))
    assert missing.returncode == 2 and "holds no Parquet tables" in missing.stderr
    nowhere = _run("report", str(src), "-o", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    assert nowhere.returncode == 2 and "cannot write the report to" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


_WITHOUT_PYARROW = """
import sys
sys.modules["pyarrow"] = None  # as if the analysis extra were not installed
from asyncvox.cli import main
main(sys.argv[1:])
"""


def test_without_the_extra_the_commands_name_it(tmp_path: Path) -> None:
    src = _src(tmp_path)
    for args in (["export", str(src), "--to", str(tmp_path / "t")], ["report", str(src)]):
        proc = _run(*args, code=_WITHOUT_PYARROW)
        assert proc.returncode == 2, proc.stderr
        assert "pip install 'asyncvox[analysis]'" in proc.stderr and "Traceback" not in proc.stderr


def test_the_library_raises_a_clear_error_without_the_extra() -> None:
    code = """
import sys
sys.modules["pyarrow"] = None
from asyncvox import analysis
try:
    analysis.to_tables([b'{"id": "x"}'])
except analysis.MissingDependencyError as exc:
    assert isinstance(exc, ImportError)
    print(exc)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "needs pyarrow, which is not installed: pip install 'asyncvox[analysis]'" in proc.stdout


def test_a_call_read_twice_is_skipped_unless_duplicates_are_kept(tmp_path: Path) -> None:
    # The demo server's body pool serves the same call for many ids: the same id twice.
    line = msgspec.json.encode(server_call("same"))
    src = tmp_path / "calls.jsonl"
    src.write_bytes(line + b"\n" + line + b"\n")
    skipped = _run("export", str(src), "--to", str(tmp_path / "a"))
    assert skipped.returncode == 1 and "line 2: call 'same' was already read" in skipped.stderr
    assert "--keep-duplicates keeps" in skipped.stderr
    kept = _run("export", str(src), "--to", str(tmp_path / "b"), "--keep-duplicates")
    assert kept.returncode == 0, kept.stderr
    assert pq.read_table(tmp_path / "b" / "calls").column("call_id").to_pylist() == ["same", "same"]
    report = _run("report", str(src), "-o", str(tmp_path / "r.html"), "--keep-duplicates")
    assert report.returncode == 0 and "report of 2 calls" in report.stdout
