"""The command line, driven as users drive it: a real process against a real loopback server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _cli import KEY, kill_when_journalled
from _cli import env as _env
from _cli import exported_ids as _exported_ids
from _cli import ids_file as _ids_file
from _cli import run as _run

from asyncvox.testing import DemoServer, Fault, FaultProfile


@pytest.fixture
def api() -> Iterator[DemoServer]:
    """A threaded loopback server (the CLI runs in another process)."""
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        yield server


def test_fetch_writes_calls_missing_and_a_summary(api: DemoServer, tmp_path: Path) -> None:
    api.add_missing("gone-1", "gone-2")
    ids = [f"call-{i}" for i in range(40)]
    text = "\n".join(["  call-0  ", "", *ids, "gone-1", "gone-2", "call-3", "id with # hash"]) + "\n"
    (tmp_path / "ids.txt").write_text(text)
    out = tmp_path / "calls.jsonl"
    proc = _run(["fetch", str(tmp_path / "ids.txt"), "--out", str(out), "--json-summary"], _env(api))
    assert proc.returncode == 0, proc.stderr
    exported = _exported_ids(out)
    assert sorted(exported) == sorted([*ids, "id with # hash"])  # trimmed, blanks skipped, deduped
    assert sorted(Path(f"{out}.missing").read_text().split("\n")[:-1]) == ["gone-1", "gone-2"]
    summary = json.loads(proc.stdout)
    assert summary["found"] == 41 and summary["missing"] == 2 and summary["failed"] == 0
    assert "calls ->" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr


def test_fetch_writes_the_servers_own_bytes(api: DemoServer, tmp_path: Path) -> None:
    call = b'{"id":"c1","customerCallId":"raw-1","status":"weird" ,"x":[1, 2]}'
    body = b'{"success":true,"call":' + call + b',"url":"u"}'
    api.add_call(body, call_id="raw-1")
    out = tmp_path / "calls.jsonl"
    proc = _run(["fetch", "-", "--out", str(out), "-q"], _env(api), stdin="raw-1\n")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == call + b"\n"


def test_fetch_reports_failures_and_exits_1(api: DemoServer, tmp_path: Path) -> None:
    api.script("broken", [503] * 3)
    ids = _ids_file(tmp_path, ["ok-1", "broken", "ok-2"])
    out = tmp_path / "calls.jsonl"
    proc = _run(["fetch", str(ids), "--out", str(out), "--max-retries", "1"], _env(api))
    assert proc.returncode == 1, proc.stderr
    failed = [json.loads(line) for line in Path(f"{out}.failed.jsonl").read_text().splitlines()]
    assert failed == [
        {
            "id": "broken",
            "error": "ServerError",
            "status": 503,
            "message": "Service unavailable",
            "attempts": 2,
        }
    ]
    assert sorted(_exported_ids(out)) == ["ok-1", "ok-2"]
    # --resume retries only the failed id, and now it succeeds.
    proc = _run(["fetch", str(ids), "--out", str(out), "--resume"], _env(api))
    assert proc.returncode == 0, proc.stderr
    assert sorted(_exported_ids(out)) == ["broken", "ok-1", "ok-2"]
    assert api.stats.requests_for("ok-1") == 1


@pytest.mark.parametrize(
    ("env_change", "message"),
    [
        ({"ASYNCVOX_API_KEY": ""}, "ASYNCVOX_API_KEY"),
        ({"ASYNCVOX_API_KEY": "wrong-key"}, "401"),
        ({"ASYNCVOX_BASE_URL": "http://127.0.0.1:1/v1"}, "connection failed"),
    ],
)
def test_configuration_errors_exit_2_with_one_line(
    api: DemoServer, tmp_path: Path, env_change: dict[str, str], message: str
) -> None:
    ids = _ids_file(tmp_path, [f"c-{i}" for i in range(200)])
    env = _env(api)
    env.update(env_change)
    if not env["ASYNCVOX_API_KEY"]:
        del env["ASYNCVOX_API_KEY"]
    proc = _run(["fetch", str(ids), "--out", str(tmp_path / "o.jsonl"), "--max-retries", "0"], env)
    if "127.0.0.1:1" in env["ASYNCVOX_BASE_URL"]:
        # Nothing listens there: every id fails (a connection error is per id, not fatal).
        assert proc.returncode == 1
        assert message in Path(f"{tmp_path / 'o.jsonl'}.failed.jsonl").read_text()
        return
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert "wrong-key" not in proc.stderr


def test_wrong_base_url_exits_2(api: DemoServer, tmp_path: Path) -> None:
    ids = _ids_file(tmp_path, ["a", "b", "c"])
    env = _env(api, ASYNCVOX_BASE_URL=api.base_url.replace("/v1", "/not-the-api"))
    proc = _run(["fetch", str(ids), "--out", str(tmp_path / "o.jsonl")], env)
    assert proc.returncode == 2
    assert "base_url" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_malformed_ids_file_exits_2_naming_the_line(api: DemoServer, tmp_path: Path) -> None:
    path = tmp_path / "ids.bin"
    path.write_bytes(b"good-1\ngood-2\n\xff\xfe\x00garbage\n")
    proc = _run(["fetch", str(path), "--out", str(tmp_path / "o.jsonl")], _env(api))
    assert proc.returncode == 2
    assert "line 3" in proc.stderr


def test_existing_output_needs_resume_or_force(api: DemoServer, tmp_path: Path) -> None:
    ids = _ids_file(tmp_path, ["a"])
    out = tmp_path / "o.jsonl"
    out.write_text("precious\n")
    proc = _run(["fetch", str(ids), "--out", str(out)], _env(api))
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert out.read_text() == "precious\n"
    assert _run(["fetch", str(ids), "--out", str(out), "--force"], _env(api)).returncode == 0
    assert _exported_ids(out) == ["a"]


def test_resume_after_kill_at_a_random_point_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    ids = [f"call-{i:05d}" for i in range(1500)]
    profile = FaultProfile(latency=(0.001, 0.004), missing_rate=0.05, seed=seed)
    with DemoServer(api_key=KEY, turns=4, profile=profile).running_in_thread() as server:
        ids_path = _ids_file(tmp_path, ids)
        out = tmp_path / "calls.jsonl"
        args = ["fetch", str(ids_path), "--out", str(out), "-q", "--concurrency", "8"]
        status = kill_when_journalled(args, _env(server), Path(f"{out}.done"), rng.randrange(50, 700))
        assert status == -signal.SIGKILL, f"finished before the kill (seed {seed})"
        # Simulate the worst moment: a half-written line at the end of the output.
        with out.open("ab") as fh:
            fh.write(b'{"id":"half-written')
        again = _run([*args, "--resume"], _env(server))
        assert again.returncode == 0, again.stderr
    exported = _exported_ids(out)
    missing = Path(f"{out}.missing").read_text().split()
    assert len(exported) == len(set(exported)), f"duplicates (seed {seed})"
    assert len(missing) == len(set(missing)), f"duplicate missing ids (seed {seed})"
    assert sorted(exported + missing) == ids, f"lost ids (seed {seed})"
    assert missing, "the profile should make some ids missing"


def _interrupted_fetch(
    ids: Path, out: Path, env: dict[str, str], ready: Callable[[], bool]
) -> tuple[int, str]:
    """Run ``asyncvox fetch ids --out out -q``, send it SIGINT once ``ready()`` holds;
    its exit status and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncvox", "fetch", str(ids), "--out", str(out), "-q"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, "never got ready"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=10)[1]
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, err


def test_ctrl_c_mid_fetch_stops_promptly_with_130(tmp_path: Path) -> None:
    profile = FaultProfile(latency=(0.05, 0.1))
    with DemoServer(api_key=KEY, turns=4, profile=profile).running_in_thread() as server:
        ids = _ids_file(tmp_path, [f"c-{i}" for i in range(5000)])
        out = tmp_path / "o.jsonl"
        # A call written means the event loop is fetching.
        status, err = _interrupted_fetch(
            ids, out, _env(server), lambda: out.exists() and out.stat().st_size > 0
        )
    assert status == 130, err
    assert "interrupted" in err
    lines = out.read_bytes().splitlines(keepends=True)
    assert 0 < len(lines) < 5000
    assert all(line.endswith(b"\n") for line in lines)


def test_ctrl_c_before_the_fetch_starts_is_an_interruption_too(api: DemoServer, tmp_path: Path) -> None:
    # The ids come from a FIFO nobody writes to: the command has opened its export (the
    # journal's header is written) and blocks opening the ids, before its event loop runs.
    ids = tmp_path / "ids.fifo"
    os.mkfifo(ids)
    out = tmp_path / "o.jsonl"
    done = Path(f"{out}.done")
    status, err = _interrupted_fetch(ids, out, _env(api), lambda: done.exists() and done.stat().st_size > 0)
    assert status == 130, err
    assert err == "asyncvox: interrupted\n"  # not click's "Aborted!"


def test_get_prints_a_readable_summary_and_json(api: DemoServer) -> None:
    proc = _run(["get", "booking-7"], _env(api))
    assert proc.returncode == 0, proc.stderr
    assert "status completed" in proc.stdout
    assert "latency p50/p90/p95" in proc.stdout and "transcript" in proc.stdout
    raw = _run(["get", "booking-7", "--json"], _env(api))
    assert json.loads(raw.stdout)["customerCallId"] == "booking-7"
    api.add_missing("nope")
    missing = _run(["get", "nope"], _env(api))
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo.jsonl"
    proc = _run(["demo", "--calls", "300", "--out", str(out), "--json-summary"], _env(None))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["done"] == 300 and summary["failed"] == 0
    assert summary["found"] + summary["missing"] == 300
    assert len(out.read_bytes().splitlines()) == summary["found"]
    assert "what the data says" in proc.stderr and "evaluations passed" in proc.stderr


def test_serve_demo_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncvox", "serve-demo", "--port", "0"],
        env=_env(None),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "serving the demo call API at http://127.0.0.1:" in first
        base = first.split(" at ")[1].split(" ")[0]
        got = _run(
            ["get", "demo-1", "--json"], _env(None, ASYNCVOX_API_KEY="demo-key", ASYNCVOX_BASE_URL=base)
        )
        assert got.returncode == 0, got.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_scripted_fault_is_retried_by_the_cli(api: DemoServer, tmp_path: Path) -> None:
    api.script("flaky", [Fault.rate_limited("0"), 502])
    proc = _run(
        ["fetch", "-", "--out", str(tmp_path / "o.jsonl"), "--json-summary"], _env(api), stdin="flaky\n"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["retries_by_cause"] == {"429": 1, "502": 1}


def test_pretty_printed_calls_are_written_one_per_line(api: DemoServer, tmp_path: Path) -> None:
    call = {"id": "c1", "customerCallId": "pretty-1", "duration": 2.50, "note": "line\nbreak"}
    body = b'{\n  "success": true,\n  "call": ' + json.dumps(call, indent=2).encode() + b',\n  "url": "u"\n}'
    api.add_call(body, call_id="pretty-1")
    out = tmp_path / "calls.jsonl"
    proc = _run(["fetch", "-", "--out", str(out), "-q"], _env(api), stdin="pretty-1\nok-1\n")
    assert proc.returncode == 0, proc.stderr
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2
    assert {json.loads(line)["customerCallId"] for line in lines} == {"pretty-1", "ok-1"}
    assert b'"duration":2.5' in out.read_bytes() or b'"duration":2.50' in out.read_bytes()


def test_a_missing_ids_file_is_a_usage_error_and_touches_nothing(api: DemoServer, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text("precious\n")
    proc = _run(["fetch", str(tmp_path / "nope.txt"), "--out", str(out), "--force"], _env(api))
    assert proc.returncode == 2
    assert "nope.txt" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_text() == "precious\n"


def test_get_with_a_rejected_key_exits_2(api: DemoServer) -> None:
    proc = _run(["get", "x"], _env(api, ASYNCVOX_API_KEY="wrong-key"))
    assert proc.returncode == 2
    assert "401" in proc.stderr and "wrong-key" not in proc.stderr


def test_max_body_bytes_fails_the_ids_over_it_and_names_the_option(api: DemoServer, tmp_path: Path) -> None:
    small = b'{"success":true,"call":{"id":"c1","customerCallId":"small-1","status":"completed"},"url":"u"}'
    api.add_call(small, call_id="small-1")
    ids = _ids_file(tmp_path, ["small-1", "big-1"])
    out = tmp_path / "calls.jsonl"
    proc = _run(["fetch", str(ids), "--out", str(out), "--max-body-bytes", "1024"], _env(api))
    assert proc.returncode == 1, proc.stderr
    assert _exported_ids(out) == ["small-1"]
    failed = [json.loads(line) for line in Path(f"{out}.failed.jsonl").read_text().splitlines()]
    assert [(f["id"], f["error"], f["attempts"]) for f in failed] == [("big-1", "ResponseTooLargeError", 1)]
    assert "max_body_bytes=1,024" in failed[0]["message"] and "--max-body-bytes" in failed[0]["message"]
    # The same id under the default limit is fetched: the limit is the option's doing.
    proc = _run(["fetch", str(ids), "--out", str(out), "--resume"], _env(api))
    assert proc.returncode == 0, proc.stderr
    assert sorted(_exported_ids(out)) == ["big-1", "small-1"]
    proc = _run(["get", "big-1", "--max-body-bytes", "1024"], _env(api))
    assert proc.returncode == 1 and "larger than max_body_bytes=1,024" in proc.stderr


def test_max_body_bytes_below_the_floor_is_a_usage_error(api: DemoServer, tmp_path: Path) -> None:
    ids = _ids_file(tmp_path, ["call-1"])
    out = tmp_path / "calls.jsonl"
    proc = _run(["fetch", str(ids), "--out", str(out), "--max-body-bytes", "100"], _env(api))
    assert proc.returncode == 2 and "--max-body-bytes" in proc.stderr and "1024" in proc.stderr
    assert not out.exists() and api.stats.requests == 0
