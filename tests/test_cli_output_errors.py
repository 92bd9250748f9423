"""``fetch`` when its files cannot be written: one line naming the path and the OS error,
exit 2, nothing already written lost, and a later ``--resume`` completes.

Tests run as root (a read-only directory does not stop root) and must not fill a real
disk, so ``_faulty_disk.py`` runs the CLI with files that fail as the kernel's do; the
``--out`` under a regular file case is real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import FAULTY_DISK, KEY, env, exported_ids, ids_file, missing_ids, one_error_line, run, snapshot

from asyncvox.testing import DemoServer

IDS = [f"call-{i:02d}" for i in range(30)] + ["gone-1", "gone-2", "gone-3", "flaky"]


@pytest.fixture
def api() -> Iterator[DemoServer]:
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        server.add_missing("gone-1", "gone-2", "gone-3")
        server.script("flaky", [503])  # fails the first run (no retries), then answers
        yield server


def _journalled(out: Path) -> list[tuple[int, str]]:
    """(calls file length, id) of each complete journal line."""
    lines = Path(f"{out}.done").read_bytes().splitlines(keepends=True)[1:]
    records = [line.rstrip(b"\n").split(b"\t", 3) for line in lines if line.endswith(b"\n")]
    return [(int(r[0]), r[3].decode()) for r in records]


def _fetch(out: Path, ids: Path, *extra: str) -> list[str | bytes]:
    return ["fetch", str(ids), "--out", str(out), "-q", "--max-retries", "0", "-c", "4", *extra]


@pytest.mark.parametrize(
    ("suffix", "nth"),
    [
        (".done", 1),  # the journal's header: nothing done yet
        (".done", 9),  # a journal line cut in half: that id is not done
        ("calls.jsonl", 6),  # a call's line cut in half, not journalled
        (".missing", 2),  # a not-found id's line cut in half
        (".failed.jsonl", 1),  # the failure report
    ],
)
def test_a_full_disk_is_one_line_exit_2_and_resume_completes(
    api: DemoServer, tmp_path: Path, suffix: str, nth: int
) -> None:
    ids = ids_file(tmp_path, IDS)
    out = tmp_path / "calls.jsonl"
    proc = run(_fetch(out, ids), env(api, FAULTY_DISK=f"full:{suffix}:{nth}"), via=FAULTY_DISK)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert f"cannot write {tmp_path}/" in line and "No space left on device (ENOSPC)" in line
    assert line.split(": No space")[0].endswith(suffix) and "--resume" in line
    journal = _journalled(out)
    done_before = {call_id for _, call_id in journal}
    kept = out.read_bytes()[: journal[-1][0] if journal else 0]

    # --resume on a disk with room again (a 503 left from the first run is retried).
    again = run([*_fetch(out, ids, "--resume", "--max-retries", "1"), "--json-summary"], env(api))
    assert again.returncode == 0, again.stderr
    assert out.read_bytes().startswith(kept)  # nothing already written was lost
    exported, missing = exported_ids(out), missing_ids(out)
    assert len(exported) == len(set(exported)) and len(missing) == len(set(missing))
    assert sorted(exported + missing) == sorted(IDS)
    assert sorted(missing) == ["gone-1", "gone-2", "gone-3"]
    assert json.loads(again.stdout)["done"] == len(IDS) - len(done_before)
    for call_id in done_before - {"flaky"}:
        assert api.stats.requests_for(call_id) == 1, call_id


@pytest.mark.parametrize(
    ("code", "text"), [("EROFS", "Read-only file system"), ("EACCES", "Permission denied")]
)
def test_a_read_only_output_directory_is_one_line_exit_2(
    api: DemoServer, tmp_path: Path, code: str, text: str
) -> None:
    ids = ids_file(tmp_path, IDS)
    out = tmp_path / "calls.jsonl"
    proc = run(_fetch(out, ids), env(api, FAULTY_DISK=f"readonly:{code}"), via=FAULTY_DISK)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot open {out}: {text} ({code})" in one_error_line(proc)
    assert api.stats.requests == 0


def test_a_read_only_directory_on_resume_keeps_every_byte(api: DemoServer, tmp_path: Path) -> None:
    ids = ids_file(tmp_path, IDS)
    out = tmp_path / "calls.jsonl"
    first = run(_fetch(out, ids), env(api))
    assert first.returncode == 1, first.stderr  # "flaky" failed
    before = snapshot(out)
    proc = run(_fetch(out, ids, "--resume"), env(api, FAULTY_DISK="readonly:EROFS"), via=FAULTY_DISK)
    assert proc.returncode == 2
    assert "Read-only file system (EROFS)" in one_error_line(proc)
    assert snapshot(out) == before
    again = run(_fetch(out, ids, "--resume"), env(api))
    assert again.returncode == 0, again.stderr
    assert sorted(exported_ids(out) + missing_ids(out)) == sorted(IDS)


@pytest.mark.parametrize("resume", [False, True])
def test_out_under_a_regular_file_is_one_line_exit_2(api: DemoServer, tmp_path: Path, resume: bool) -> None:
    ids = ids_file(tmp_path, IDS)
    blocker = tmp_path / "report"
    blocker.write_text("not a directory\n")
    out = blocker / "calls.jsonl"
    proc = run(_fetch(out, ids, *(["--resume"] if resume else [])), env(api))
    assert proc.returncode == 2
    assert f"cannot open {out}: Not a directory (ENOTDIR)" in one_error_line(proc)
    assert blocker.read_text() == "not a directory\n"
    assert api.stats.requests == 0


def test_a_sidecar_that_is_not_a_regular_file_is_refused(api: DemoServer, tmp_path: Path) -> None:
    ids = ids_file(tmp_path, IDS)
    out = tmp_path / "calls.jsonl"
    Path(f"{out}.done").mkdir()
    proc = run(_fetch(out, ids, "--force"), env(api))
    assert proc.returncode == 2
    assert f"{out}.done is not a regular file" in one_error_line(proc)
    assert Path(f"{out}.done").is_dir()


@pytest.mark.parametrize("which", ["out", "missing", "symlink"])
def test_an_ids_file_that_is_one_of_the_exports_files_is_refused(
    api: DemoServer, tmp_path: Path, which: str
) -> None:
    # --force removed the export's files before reading the ids: an ids file that is one of
    # them (``--out ids.txt``, the .missing sidecar fed back in, a link) was deleted, the
    # run read nothing and exited 0 -- the user's ids gone.
    out = tmp_path / "calls.jsonl"
    ids = ids_file(tmp_path, IDS)
    if which == "out":
        out = ids
    elif which == "missing":
        assert run(_fetch(out, ids), env(api)).returncode == 1  # "flaky" failed
        ids = Path(f"{out}.missing")
        assert missing_ids(out) == ["gone-1", "gone-2", "gone-3"]
    else:
        out.symlink_to(ids)
    before = ids.read_bytes()
    requests = api.stats.requests
    proc = run(_fetch(out, ids, "--force"), env(api))
    assert proc.returncode == 2, proc.stderr
    assert "is also" in one_error_line(proc)
    assert ids.read_bytes() == before
    assert api.stats.requests == requests


@pytest.mark.parametrize("name", ["", "{tmp}/sub/"])
def test_an_out_that_names_a_directory_is_a_usage_error(api: DemoServer, tmp_path: Path, name: str) -> None:
    # click's dir_okay=False only looks at a path that exists: "" was a traceback
    # (Path('.') has no name to put .missing after), and "sub/" wrote the calls to a
    # *file* named sub.
    out = name.format(tmp=tmp_path)
    proc = run(["fetch", str(ids_file(tmp_path, IDS)), "--out", out, "-q"], env(api))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "names a directory" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.txt"]
    assert api.stats.requests == 0
