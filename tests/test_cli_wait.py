"""``asyncvox fetch --wait`` and ``asyncvox get --wait``: calls written as their analysis
finishes, the ones not ready in time in their own sidecar, resumable."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import KEY, env, exported_ids, ids_file, run

from asyncvox.testing import DemoServer


@pytest.fixture
def api() -> Iterator[DemoServer]:
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        yield server


def test_fetch_wait_writes_ready_calls_and_reports_the_rest(api: DemoServer, tmp_path: Path) -> None:
    api.script_analysis("later", visible_after=0.3, statuses=[("analyzing", 0.3), ("completed", 0.6)])
    api.script_analysis("never", visible_after=math.inf)
    ids = ids_file(tmp_path, ["now", "later", "never"])
    out = tmp_path / "calls.jsonl"
    proc = run(["fetch", str(ids), "--out", str(out), "--wait", "2.5", "--json-summary"], env(api))
    assert proc.returncode == 1, proc.stderr  # one id was not ready in time
    assert sorted(exported_ids(out)) == ["later", "now"]
    for line in out.read_bytes().splitlines():
        assert json.loads(line)["status"] == "completed"
    not_ready = [json.loads(x) for x in Path(f"{out}.not-ready.jsonl").read_text().splitlines()]
    assert [(r["id"], r["found"], r["last_status"]) for r in not_ready] == [("never", False, None)]
    assert not_ready[0]["polls"] >= 2
    summary = json.loads(proc.stdout)
    assert summary["not_ready"] == 1 and summary["found"] == 2
    assert "not ready when their wait ran out: 1" in proc.stderr
    # The summary line counts it once, as not ready (it said "failed 1" with no failures).
    assert "found 2, not found 0, failed 0, not ready 1 (" in proc.stderr

    # Once the call is there, --resume waits only for what was not ready, and clears the sidecar.
    api.script_analysis("never", visible_after=0.0)
    again = run(["fetch", str(ids), "--out", str(out), "--wait", "2.5", "--resume"], env(api))
    assert again.returncode == 0, again.stderr
    assert sorted(exported_ids(out)) == ["later", "never", "now"]
    assert not Path(f"{out}.not-ready.jsonl").exists()
    assert api.stats.requests_for("now") == 1  # done before: never asked again


def test_get_wait_prints_the_call_once_analysed(api: DemoServer) -> None:
    api.script_analysis("up-1", visible_after=0.3)
    proc = run(["get", "up-1", "--wait", "10"], env(api))
    assert proc.returncode == 0, proc.stderr
    assert "up-1" in proc.stdout and "ms" in proc.stdout  # latency in the server's milliseconds
    assert api.stats.requests_for("up-1") >= 2


def test_get_wait_that_runs_out_exits_1_with_the_reason(api: DemoServer) -> None:
    api.script_analysis("stuck", statuses=[("analyzing", 0)])
    proc = run(["get", "stuck", "--wait", "1.5"], env(api))
    assert proc.returncode == 1
    assert "not ready" in proc.stderr and "analyzing" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_demo_rejects_a_bad_analysis_delay() -> None:
    proc = run(["serve-demo", "--analysis-delay", "5:2"], env(None))
    assert proc.returncode == 2
    assert "MIN is more than MAX" in proc.stderr
