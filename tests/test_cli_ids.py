"""Ids the CLI is given: a line too long to be an id is that line's error (memory stays
bounded, the rest goes on), and ``get`` with an argument that is not UTF-8 is a clean
usage error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import KEY, env, exported_ids, run

from asyncvox.cli._ids import MAX_ID_BYTES
from asyncvox.testing import DemoServer


@pytest.fixture
def api() -> Iterator[DemoServer]:
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        yield server


def _failed(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in Path(f"{out}.failed.jsonl").read_text().splitlines()]


def test_a_line_over_the_limit_is_that_lines_error_and_the_rest_goes_on(
    api: DemoServer, tmp_path: Path
) -> None:
    at_limit = "a" * MAX_ID_BYTES
    over = "b" * (MAX_ID_BYTES + 1)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"first\n{over}\n{at_limit}\nlast\n")
    out = tmp_path / "calls.jsonl"
    proc = run(["fetch", str(ids), "--out", str(out), "--json-summary"], env(api))
    assert proc.returncode == 1, proc.stderr  # some ids failed
    assert sorted(exported_ids(out)) == sorted(["first", at_limit, "last"])
    assert api.stats.requests == 3 and api.stats.requests_for(over) == 0
    [failure] = _failed(out)
    assert failure["error"] == "InvalidCallIdError" and failure["attempts"] == 0
    assert f"line 2: {MAX_ID_BYTES + 1} bytes, longer than the {MAX_ID_BYTES}-byte limit" in str(
        failure["message"]
    )
    assert str(failure["id"]).startswith("bbbb") and len(str(failure["id"])) < 100
    assert json.loads(proc.stdout)["rejected"] == 1
    assert "too long to be an id: 1" in proc.stderr
    # --resume reads the file again: the long line is reported again, nothing else is fetched.
    again = run(["fetch", str(ids), "--out", str(out), "--resume", "-q"], env(api))
    assert again.returncode == 1 and len(_failed(out)) == 1
    assert api.stats.requests == 3


def test_a_long_line_from_stdin_without_a_newline_is_rejected(api: DemoServer, tmp_path: Path) -> None:
    out = tmp_path / "calls.jsonl"
    proc = run(["fetch", "-", "--out", str(out), "-q"], env(api), stdin="ok-1\n" + "z" * 100_000)
    assert proc.returncode == 1, proc.stderr
    assert exported_ids(out) == ["ok-1"]
    [failure] = _failed(out)
    assert "stdin, line 2: 100000 bytes" in str(failure["message"])


def _peak_rss_mb(args: list[str], environ: dict[str, str]) -> tuple[int, float]:
    """Run the CLI to completion; its exit status and peak resident memory in MB."""
    proc = subprocess.Popen([sys.executable, "-m", "asyncvox", *args], env=environ, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return proc.returncode, usage.ru_maxrss * scale / 2**20


def test_a_huge_line_is_read_in_bounded_memory(api: DemoServer, tmp_path: Path) -> None:
    size_mb = 64
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as fh:
        fh.write(b"first\n")
        for _ in range(size_mb):
            fh.write(b"x" * 2**20)
        fh.write(b"\nlast\n")
    small = tmp_path / "small.txt"
    small.write_text("first\nlast\n")
    status, baseline = _peak_rss_mb(["fetch", str(small), "--out", str(tmp_path / "a.jsonl"), "-q"], env(api))
    assert status == 0
    status, peak = _peak_rss_mb(["fetch", str(huge), "--out", str(tmp_path / "b.jsonl"), "-q"], env(api))
    assert status == 1  # the huge line failed, first and last were fetched
    assert sorted(exported_ids(tmp_path / "b.jsonl")) == ["first", "last"]
    # Holding the line once would add 64 MB; the old reader took ~7x the line.
    assert peak < baseline + size_mb / 4, (baseline, peak)


def test_get_with_an_argument_that_is_not_utf8_is_a_usage_error(api: DemoServer) -> None:
    proc = run(["get", b"call-\xff\xfe"], env(api))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "Invalid value for CALL_ID: not UTF-8 text: b'call-\\xff\\xfe'" in proc.stderr
    assert api.stats.requests == 0


def test_a_utf8_bom_is_not_part_of_the_first_id(api: DemoServer, tmp_path: Path) -> None:
    # Windows editors (Notepad, Excel's "CSV UTF-8") start the file with a BOM; it is not
    # whitespace to str.strip(), so it became part of the first id, which the API does not
    # know: a call that exists reported not found, and journalled as done.
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"\xef\xbb\xbfcall-1\r\ncall-2\r\n")
    out = tmp_path / "calls.jsonl"
    proc = run(["fetch", str(ids), "--out", str(out), "-q"], env(api))
    assert proc.returncode == 0, proc.stderr
    assert sorted(exported_ids(out)) == ["call-1", "call-2"]
    assert api.stats.requests_for("call-1") == 1
    assert "\ufeff" not in Path(f"{out}.done").read_text(encoding="utf-8")
