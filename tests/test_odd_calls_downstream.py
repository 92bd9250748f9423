"""Calls the client accepts (too deep, lone surrogates, a year-0 time, pretty-printed) that
`fetch`, the tables, `export` and `report` must take too; and `fetch --parquet --resume`
against what the export's own resume cuts or refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _cli import KEY, env, ids_file, run

from asyncvox import analysis
from asyncvox.testing import DemoServer

DEEP = b'{"id":"deep-1","status":"completed","metadata":' + b"[" * 1000 + b"]" * 1000 + b"}"
SURROGATE_META = b'{"id":"sur-1","status":"completed","metadata":{"note":"\\ud83d"}}'
SURROGATE_ID = b'{"id":"sur-\\ud83d","status":"completed"}'
YEAR_ZERO = b'{"id":"y0","status":"completed","createdAt":"0001-01-01T00:00:00+14:00"}'


@pytest.mark.parametrize(
    "line", [DEEP, SURROGATE_META, SURROGATE_ID], ids=["deep", "surrogate-meta", "surrogate-id"]
)
def test_export_jsonl_never_fails_for_one_line(tmp_path: Path, line: bytes) -> None:
    src = tmp_path / "calls.jsonl"
    src.write_bytes(b'{"id":"ok-1","status":"completed"}\n' + line + b"\n")
    result = analysis.export_jsonl(src, tmp_path / "tables")
    # Each is a call the client reads: it is in the tables too (not a skipped line).
    assert result.calls == 2 and result.bad_line_count == 0
    assert len(pq.read_table(tmp_path / "tables" / "calls").column("call_id").to_pylist()) == 2


def test_a_call_nested_too_deep_keeps_its_other_fields_in_the_tables(tmp_path: Path) -> None:
    src = tmp_path / "calls.jsonl"
    deep = b'{"id":"d-1","status":"completed","messages":[{"role":"user","message":"hi"}],"metadata":'
    src.write_bytes(deep + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    tables = analysis.export_jsonl(src, tmp_path / "tables")
    assert tables.calls == 1 and tables.bad_line_count == 0
    calls = pq.read_table(tmp_path / "tables" / "calls").to_pylist()
    assert calls[0]["call_id"] == "d-1" and calls[0]["status"] == "completed"
    assert calls[0]["metadata_json"] in (None, "null")  # what was too deep, as the client reads it
    messages = pq.read_table(tmp_path / "tables" / "messages").to_pylist()
    assert [m["content"] for m in messages] == ["hi"]


def test_cli_export_of_a_deep_call_exports_it(tmp_path: Path) -> None:
    src = tmp_path / "calls.jsonl"
    src.write_bytes(b'{"id":"ok-1"}\n' + DEEP + b"\n")
    proc = run(["export", str(src), "--to", str(tmp_path / "t")], env(None))
    assert proc.returncode == 0, proc.stderr[-600:]
    assert "skipped" not in proc.stderr


def test_cli_report_of_a_year_zero_call_is_not_a_traceback(tmp_path: Path) -> None:
    src = tmp_path / "calls.jsonl"
    src.write_bytes(b'{"id":"ok-1","createdAt":"2026-01-01T00:00:00Z"}\n' + YEAR_ZERO + b"\n")
    proc = run(["report", str(src), "-o", str(tmp_path / "r.html")], env(None))
    assert proc.returncode == 0, proc.stderr[-600:]
    assert "out of the calendar" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("body", [DEEP, SURROGATE_META], ids=["deep", "surrogate-meta"])
def test_fetch_parquet_survives_a_call_the_client_accepts(tmp_path: Path, body: bytes) -> None:
    # The client reads these calls fine (README: too deep -> None, lone surrogate -> U+FFFD;
    # raw keeps the bytes), so `fetch` writes them; the tables must not end the run.
    with DemoServer(api_key=KEY, turns=2).running_in_thread() as server:
        server.add_call(b'{"success":true,"call":' + body + b"}", call_id="odd")
        ids = ids_file(tmp_path, ["odd", "p-1", "p-2"])
        out, tables = tmp_path / "calls.jsonl", tmp_path / "tables"
        proc = run(["fetch", str(ids), "--out", str(out), "--parquet", str(tables), "-q"], env(server))
    assert "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert proc.returncode == 0, proc.stderr[-800:]
    assert len(out.read_bytes().splitlines()) == 3


def test_fetch_parquet_resume_does_not_keep_the_line_the_export_cuts(tmp_path: Path) -> None:
    ids = ["r-0", "r-1", "r-2"]
    out, tables = tmp_path / "calls.jsonl", tmp_path / "tables"
    with DemoServer(api_key=KEY, turns=2).running_in_thread() as server:
        ids_path = ids_file(tmp_path, ids)
        args = ["fetch", str(ids_path), "--out", str(out), "--parquet", str(tables), "-q", "-c", "1"]
        first = run(args, env(server))
        assert first.returncode == 0, first.stderr
    # What a kill after the last call's line but before its journal line (and before the
    # tables' close) leaves: the JSONL one line past the journal, no committed part.
    done = Path(f"{out}.done")
    done.write_bytes(b"".join(done.read_bytes().splitlines(keepends=True)[:-1]))
    last = json.loads(out.read_bytes().splitlines()[-1])["customerCallId"]
    for path in [*tables.rglob("*.parquet"), tables / "_parts.jsonl"]:
        path.unlink()
    # Resumed, that id is fetched again; this time the API says it is not found.
    with DemoServer(api_key=KEY, turns=2).running_in_thread() as server:
        server.add_missing(last)
        again = run([*args, "--resume"], env(server))
    assert again.returncode == 0, again.stderr
    jsonl_keys = sorted(json.loads(line)["id"] for line in out.read_bytes().splitlines())
    table_keys = sorted(pq.read_table(tables / "calls").column("call_id").to_pylist())
    assert Path(f"{out}.missing").read_text().split() == [last]
    assert table_keys == jsonl_keys  # the tables follow the JSONL (CONTRIBUTING / _tables_out)


def test_fetch_parquet_refused_resume_leaves_the_tables_alone(tmp_path: Path) -> None:
    out, tables = tmp_path / "calls.jsonl", tmp_path / "tables"
    with DemoServer(api_key=KEY, turns=2).running_in_thread() as server:
        ids_path = ids_file(tmp_path, ["s-0", "s-1"])
        args = ["fetch", str(ids_path), "--out", str(out), "--parquet", str(tables), "-q"]
        assert run(args, env(server)).returncode == 0
        # calls.jsonl replaced by another file (README: the resume refuses, exit 2,
        # "every file left as it was")
        genuine = out.read_bytes()
        out.write_bytes(b"".join(b'{"id":"foreign-%d"}\n' % i for i in range(20_000)))
        before = {p: p.read_bytes() for p in tables.rglob("*") if p.is_file()}
        refused = run([*args, "--resume"], env(server))
        assert refused.returncode == 2, refused.stderr
        after = {p: p.read_bytes() for p in tables.rglob("*") if p.is_file()}
        assert sorted(map(str, after)) == sorted(map(str, before)), "the refused resume changed the tables"
        out.write_bytes(genuine)  # restored; the resume goes on
        assert run([*args, "--resume"], env(server)).returncode == 0
    table_keys = pq.read_table(tables / "calls").column("call_id").to_pylist()
    assert len(table_keys) == 2, len(table_keys)


@pytest.mark.parametrize(
    "call",
    [
        b'{\n  "id": "pp-1",\n  "status": "completed",\n'
        b'  "messages": [{"role": "user", "message": "\\ud83d"}]\n}',
        b'{\n  "id": "pp-2",\n  "status": "completed",\n  "metadata": ' + b"[" * 1000 + b"]" * 1000 + b"\n}",
    ],
    ids=["pretty-surrogate", "pretty-deep"],
)
def test_fetch_writes_a_pretty_printed_call_the_client_accepts(tmp_path: Path, call: bytes) -> None:
    with DemoServer(api_key=KEY, turns=2).running_in_thread() as server:
        server.add_call(b'{\n  "success": true,\n  "call": ' + call + b"\n}", call_id="pp")
        ids = ids_file(tmp_path, ["pp", "p-1"])
        out = tmp_path / "calls.jsonl"
        proc = run(["fetch", str(ids), "--out", str(out), "-q"], env(server))
    assert "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert proc.returncode == 0, proc.stderr[-800:]
    assert len(out.read_bytes().splitlines()) == 2


def test_the_tables_null_only_the_deep_value_as_the_client_does(tmp_path: Path) -> None:
    """A tool call's arguments nested too deep, in the second of two messages: the tables
    keep both messages whole but that one's tool calls (null, as the client's ``[None]``
    says nothing either), and the metadata is null as the client's is."""
    deep_args = b"[" * 100_000 + b"]" * 100_000
    line = (
        b'{"id":"d-2","status":"completed","messages":[{"role":"user","message":"hi"},'
        b'{"role":"assistant","message":"calling","toolCalls":[{"name":"lookup","arguments":'
        + deep_args
        + b'}]}],"metadata":{"team":"a","blob":'
        + deep_args
        + b"}}\n"
    )
    src = tmp_path / "calls.jsonl"
    src.write_bytes(line)
    assert analysis.export_jsonl(src, tmp_path / "tables").calls == 1
    messages = pq.read_table(tmp_path / "tables" / "messages").to_pylist()
    assert [m["content"] for m in messages] == ["hi", "calling"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["tool_calls_json"] in (None, "null")
    calls = pq.read_table(tmp_path / "tables" / "calls").to_pylist()
    assert calls[0]["call_id"] == "d-2" and calls[0]["metadata_json"] in (None, "null")
