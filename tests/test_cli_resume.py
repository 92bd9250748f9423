"""``fetch --resume`` checks what it relies on: a damaged journal, data files that do not
match it, or other ids are a clear error (exit 2) that leaves every file as it was, never
a traceback, and never ids silently lost, skipped or mixed in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import KEY, env, exported_ids, ids_file, missing_ids, one_error_line, run, snapshot

from asyncvox.testing import DemoServer

IDS = [f"call-{i:02d}" for i in range(12)] + ["gone-1", "gone-2"]


@pytest.fixture
def api() -> Iterator[DemoServer]:
    with DemoServer(api_key=KEY, turns=4).running_in_thread() as server:
        server.add_missing("gone-1", "gone-2")
        yield server


@pytest.fixture
def export(api: DemoServer, tmp_path: Path) -> Path:
    """A finished export of IDS (calls and not-found ids) from ``ids.txt``."""
    out = tmp_path / "calls.jsonl"
    proc = run(["fetch", str(ids_file(tmp_path, IDS)), "--out", str(out), "-q"], env(api))
    assert proc.returncode == 0, proc.stderr
    return out


def _resume(api: DemoServer, out: Path, ids: str = "ids.txt", stdin: str | None = None) -> tuple[int, str]:
    """Resume ``out``; returns the exit status and stderr (asserting no traceback)."""
    source = "-" if stdin is not None else str(out.parent / ids)
    proc = run(["fetch", source, "--out", str(out), "--resume", "-q"], env(api), stdin=stdin)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr


def _refused(api: DemoServer, out: Path, *expected: str) -> None:
    """Resuming is refused with one line holding ``expected``; no file changes, no request."""
    before, requests = snapshot(out), api.stats.requests
    proc = run(["fetch", str(out.parent / "ids.txt"), "--out", str(out), "--resume", "-q"], env(api))
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    for text in expected:
        assert text in line
    assert snapshot(out) == before
    assert api.stats.requests == requests


# -- a damaged journal (issue 10, item 13) ----------------------------------------------


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        # Inserted as line 4, after the header and two records:
        (b"garbage\n", "not a journal record"),
        (b"\n", "not a journal record"),
        (b"10\t0\t0000zz00\tcall-x\n", "checksum must be 8 hex digits"),
        (b"-5\t0\t00000000\tcall-x\n", "non-negative integers"),
        (b"1e3\t0\t00000000\tcall-x\n", "non-negative integers"),
        (b"10\t0\t00000000\tcall-\xff\xfe\n", "not UTF-8"),
        (b"\x00\x01\x02\x89PNG\r\n\x1a\n", "not a journal record"),
        (b'{"format":"asyncvox-fetch-journal","version":2,"ids":null}\n', "not a journal record"),
        # Appended without a newline, where a kill leaves a partial line:
        (b"\x00" * 200 + b"\xff" * 200, "damaged"),
        (bytes(b for b in range(256) if b != 10) * 400, "longer than any journal line"),
    ],
)
def test_a_damaged_journal_line_is_named_and_nothing_changes(
    api: DemoServer, export: Path, damage: bytes, what: str
) -> None:
    done = Path(f"{export}.done")
    lines = done.read_bytes().splitlines(keepends=True)
    if damage.endswith(b"\n"):
        done.write_bytes(b"".join([*lines[:3], damage, *lines[3:]]))
        line_no = 4
    else:
        done.write_bytes(b"".join([*lines, damage]))
        line_no = len(lines) + 1
    _refused(api, export, f"{done}, line {line_no}:", what)


def test_journal_lines_that_contradict_each_other_are_refused(api: DemoServer, export: Path) -> None:
    done = Path(f"{export}.done")
    original = done.read_bytes()
    lines = original.splitlines(keepends=True)
    last_out, last_missing, _, _ = lines[-1].split(b"\t")
    first_id = lines[1].split(b"\t")[3]
    # An id journalled twice (lengths that still grow, as a second run would write them).
    done.write_bytes(original + b"%d\t%s\t00000000\t%s" % (int(last_out) + 10, last_missing, first_id))
    _refused(api, export, f"{done}, line {len(lines) + 1}:", "journalled twice")
    done.write_bytes(b"".join([*lines[:2], b"0\t0\t00000000\tcall-zz\n", *lines[2:]]))  # nothing grew
    _refused(api, export, f"{done}, line 3:", "do not follow")


def test_a_journal_from_an_older_asyncvox_is_refused(api: DemoServer, export: Path) -> None:
    done = Path(f"{export}.done")
    done.write_bytes(b"24044\t0\tcall-00\n")
    _refused(api, export, f"{done}, line 1:", "not an asyncvox fetch journal")


def test_a_journal_line_cut_short_by_a_kill_is_dropped_and_its_id_fetched(
    api: DemoServer, export: Path
) -> None:
    done = Path(f"{export}.done")
    lines = done.read_bytes().splitlines(keepends=True)
    last_id = lines[-1].rstrip(b"\n").split(b"\t")[3].decode()
    # The kill came while writing the last id's journal line: its data line is whole.
    done.write_bytes(b"".join(lines[:-1]) + lines[-1][:9])
    status, err = _resume(api, export)
    assert status == 0, err
    assert sorted(exported_ids(export) + missing_ids(export)) == sorted(IDS)
    assert api.stats.requests_for(last_id) == 2
    assert done.read_bytes().count(b"\n") == len(lines)


# -- data files that do not match the journal (item 14) -----------------------------------


def test_a_calls_file_cut_short_is_refused_not_padded_with_nuls(api: DemoServer, export: Path) -> None:
    size = export.stat().st_size
    with export.open("rb+") as fh:
        fh.truncate(size - 1000)
    _refused(api, export, f"{export} has {size - 1000} bytes", f"records {size}")
    assert b"\x00" not in export.read_bytes()


def test_a_deleted_calls_file_is_refused(api: DemoServer, export: Path) -> None:
    export.unlink()
    _refused(api, export, f"{export} is missing", "records calls in it")
    assert not export.exists()


def test_a_deleted_missing_sidecar_is_refused(api: DemoServer, export: Path) -> None:
    missing = Path(f"{export}.missing")
    missing.unlink()
    _refused(api, export, f"{missing} is missing", "records not-found ids in it")


def test_a_replaced_calls_file_of_the_same_size_is_refused(api: DemoServer, export: Path) -> None:
    lines = export.read_bytes().splitlines(keepends=True)
    # The same calls in another order: every size matches, the bytes do not.
    export.write_bytes(b"".join([lines[-1], *lines[:-1]]))
    _refused(api, export, f"{export}, bytes", "changed or replaced")


def test_a_calls_file_with_lines_the_journal_never_wrote_is_refused(api: DemoServer, export: Path) -> None:
    with export.open("ab") as fh:
        fh.write(b'{"id":"a"}\n{"id":"b"}\n')
    _refused(api, export, "more than one line after", "not the file this journal describes")


def test_a_deleted_journal_with_calls_kept_is_refused_and_the_calls_kept(
    api: DemoServer, export: Path
) -> None:
    Path(f"{export}.done").unlink()
    _refused(api, export, f"{export} is not empty", "journal")
    assert sorted(exported_ids(export)) == sorted(IDS[:-2])


def test_one_unjournalled_line_and_a_partial_one_are_cut_and_fetched_again(
    api: DemoServer, tmp_path: Path
) -> None:
    ids = IDS[:-2]  # calls only, so the last journal line is a call's
    out = tmp_path / "calls.jsonl"
    proc = run(["fetch", str(ids_file(tmp_path, ids)), "--out", str(out), "-q"], env(api))
    assert proc.returncode == 0, proc.stderr
    done = Path(f"{out}.done")
    lines = done.read_bytes().splitlines(keepends=True)
    # Killed after the last call's line was written, before it was journalled; and a
    # half-written line after it.
    done.write_bytes(b"".join(lines[:-1]))
    dropped = lines[-1].rstrip(b"\n").split(b"\t")[3].decode()
    with out.open("ab") as fh:
        fh.write(b'{"id":"half')
    status, err = _resume(api, out)
    assert status == 0, err
    exported = exported_ids(out)
    assert len(exported) == len(set(exported)) and sorted(exported) == sorted(ids)
    assert api.stats.requests_for(dropped) == 2


# -- other ids (item 14) -----------------------------------------------------------------


def test_a_different_ids_file_is_refused_before_any_request(api: DemoServer, export: Path) -> None:
    ids_file(export.parent, [f"other-{i}" for i in range(12)])
    _refused(api, export, "started from a different ids file", "ids.txt")


def test_a_changed_line_in_the_ids_file_is_refused(api: DemoServer, export: Path) -> None:
    ids_file(export.parent, ["call-00-changed", *IDS[1:]])
    _refused(api, export, "started from a different ids file")


def test_ids_appended_to_the_ids_file_are_fetched_on_resume(api: DemoServer, export: Path) -> None:
    ids_file(export.parent, [*IDS, "new-1", "new-2"])
    status, err = _resume(api, export)
    assert status == 0, err
    assert sorted(exported_ids(export)) == sorted([*IDS[:-2], "new-1", "new-2"])
    assert api.stats.requests == len(IDS) + 2


def test_text_appended_to_a_last_line_without_a_newline_is_a_changed_id(
    api: DemoServer, tmp_path: Path
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("call-1\ncall-2")
    out = tmp_path / "calls.jsonl"
    assert run(["fetch", str(ids), "--out", str(out), "-q"], env(api)).returncode == 0
    ids.write_text("call-1\ncall-22\n")  # "call-2" became "call-22"
    _refused(api, out, "started from a different ids file")


def test_a_journal_with_nothing_done_yet_restarts_with_any_ids(api: DemoServer, export: Path) -> None:
    done = Path(f"{export}.done")
    done.write_bytes(done.read_bytes().splitlines(keepends=True)[0])  # killed before the first id
    export.write_bytes(export.read_bytes().splitlines(keepends=True)[0])  # ... was journalled
    Path(f"{export}.missing").write_bytes(b"")
    other = ids_file(export.parent, ["other-1", "other-2"])
    status, err = _resume(api, export)
    assert status == 0, err
    assert sorted(exported_ids(export)) == ["other-1", "other-2"]
    # The journal now belongs to the new ids: resuming with them again is a no-op.
    status, err = _resume(api, export, ids=other.name)
    assert status == 0, err
    assert api.stats.requests == len(IDS) + 2


def test_resume_from_stdin_with_the_same_ids_completes(api: DemoServer, tmp_path: Path) -> None:
    out = tmp_path / "calls.jsonl"
    proc = run(["fetch", "-", "--out", str(out), "-q"], env(api), stdin="".join(f"{i}\n" for i in IDS[:6]))
    assert proc.returncode == 0, proc.stderr
    status, err = _resume(api, out, stdin="".join(f"{i}\n" for i in IDS))
    assert status == 0, err
    assert sorted(exported_ids(out) + missing_ids(out)) == sorted(IDS)
    assert api.stats.requests == len(IDS)


def test_resume_from_stdin_with_other_ids_says_so_and_exits_2(api: DemoServer, export: Path) -> None:
    proc = run(
        ["fetch", "-", "--out", str(export), "--resume", "--json-summary", "-q"],
        env(api),
        stdin="call-00\ncall-01\nnew-1\n",
    )
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert f"{len(IDS) - 2} ids {export}.done records as done are not in stdin" in line
    assert json.loads(proc.stdout)["found"] == 1  # new-1, fetched and kept
