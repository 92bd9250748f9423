"""``asyncvox fetch --parquet DIR``: the tables written while fetching, resumable like the
JSONL export (a kill at a random point loses and duplicates nothing in either)."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _cli import FAULTY_DISK, KEY, env, exported_ids, ids_file, kill_when_journalled, one_error_line, run

from asyncvox.testing import DemoServer, FaultProfile


def _table_ids(directory: Path) -> list[str]:
    return pq.read_table(directory / "calls").column("call_id").to_pylist()


def _jsonl_keys(out: Path) -> list[str]:
    """The keys the tables use for the JSONL's calls (the call's own ``id``)."""
    return [json.loads(line)["id"] for line in out.read_bytes().splitlines()]


def test_fetch_parquet_writes_the_same_calls_as_the_jsonl(tmp_path: Path) -> None:
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        server.add_missing("gone")
        ids = ids_file(tmp_path, [f"p-{i}" for i in range(60)] + ["gone"])
        out, tables = tmp_path / "calls.jsonl", tmp_path / "tables"
        proc = run(["fetch", str(ids), "--out", str(out), "--parquet", str(tables)], env(server))
    assert proc.returncode == 0, proc.stderr
    assert f"tables -> {tables}/ (60 calls this run)" in proc.stderr
    assert sorted(exported_ids(out)) == sorted(f"p-{i}" for i in range(60))
    assert sorted(_table_ids(tables)) == sorted(_jsonl_keys(out))
    messages = pq.read_table(tables / "messages")
    assert messages.num_rows > 0 and set(messages.column("call_id").to_pylist()) <= set(_table_ids(tables))


def test_fetch_parquet_resumes_after_a_kill_with_nothing_lost_or_twice(tmp_path: Path) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    ids = [f"call-{i:05d}" for i in range(1200)]
    profile = FaultProfile(latency=(0.001, 0.004), missing_rate=0.05, seed=seed)
    with DemoServer(api_key=KEY, turns=4, profile=profile).running_in_thread() as server:
        ids_path = ids_file(tmp_path, ids)
        out, tables = tmp_path / "calls.jsonl", tmp_path / "tables"
        args = ["fetch", str(ids_path), "--out", str(out), "--parquet", str(tables), "-q", "-c", "8"]
        status = kill_when_journalled(args, env(server), Path(f"{out}.done"), rng.randrange(50, 600))
        assert status == -signal.SIGKILL, f"finished before the kill (seed {seed})"
        again = run([*args, "--resume"], env(server))
        assert again.returncode == 0, again.stderr
    in_tables = _table_ids(tables)
    assert len(in_tables) == len(set(in_tables)), f"duplicate rows (seed {seed})"
    assert sorted(in_tables) == sorted(_jsonl_keys(out)), f"tables and JSONL disagree (seed {seed})"
    missing = Path(f"{out}.missing").read_text().split()
    assert sorted(exported_ids(out) + missing) == ids, f"lost ids (seed {seed})"


def test_fetch_parquet_into_existing_tables_needs_resume_or_force(tmp_path: Path) -> None:
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        ids = ids_file(tmp_path, ["a", "b"])
        tables = tmp_path / "tables"
        first_out = tmp_path / "1.jsonl"
        first = run(["fetch", str(ids), "-o", str(first_out), "--parquet", str(tables)], env(server))
        assert first.returncode == 0, first.stderr
        second = run(
            ["fetch", str(ids), "-o", str(tmp_path / "2.jsonl"), "--parquet", str(tables)], env(server)
        )
    assert second.returncode == 2
    assert "already holds tables" in second.stderr and "Traceback" not in second.stderr
    assert sorted(_table_ids(tables)) == sorted(_jsonl_keys(first_out))


@pytest.mark.parametrize(
    ("fault", "count"),
    [("tables:1", 8), ("tables:13", 100), ("tables-once:7", 100)],
    ids=["full-at-the-last-commit", "full-mid-run", "one-failed-write-then-room"],
)
def test_a_full_disk_under_the_tables_is_one_line_and_resume_completes_both(
    tmp_path: Path, fault: str, count: int
) -> None:
    """pyarrow's OSError (no errno) from a row group or the commit: exit 2 with the export's
    one-line file error, never a traceback; ``--resume`` on a disk with room again brings
    the tables level with the JSONL, each call once. (The harness writes row groups of
    10 calls, five tables written per group here; 8 calls make one row group, written at
    the end; write 7 is the second group's messages. After one failed write and
    room again, the part it belonged to must not be committed: its ids would be journalled
    with rows missing, and the resume would skip them.)"""
    ids = ids_file(tmp_path, [f"t-{i:03d}" for i in range(count)])
    out, tables = tmp_path / "calls.jsonl", tmp_path / "tables"
    args = ["fetch", str(ids), "--out", str(out), "--parquet", str(tables), "-c", "2"]
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        proc = run(args, env(server, FAULTY_DISK=fault), via=FAULTY_DISK)
        assert proc.returncode == 2, proc.stderr
        line = one_error_line(proc)
        assert f"cannot write {tables}: " in line and "No space left on device" in line and "--resume" in line
        before = exported_ids(out)
        assert 0 < len(before) < count if count > 10 else len(before) == count
        again = run([*args, "--resume"], env(server))
    assert again.returncode == 0, again.stderr
    in_tables = _table_ids(tables)
    assert len(in_tables) == len(set(in_tables))
    assert sorted(in_tables) == sorted(_jsonl_keys(out))
    assert sorted(exported_ids(out)) == sorted(f"t-{i:03d}" for i in range(count))
    # The rows of every call are there, not just its key (each synthetic call has messages).
    assert set(pq.read_table(tables / "messages").column("call_id").to_pylist()) == set(in_tables)
