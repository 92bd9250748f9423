"""Tables on disk: Parquet parts written atomically and resumable, CSV for spreadsheets."""

from __future__ import annotations

import csv
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _payloads import reference_call, server_call

import asyncvox
from asyncvox import analysis
from asyncvox.testing import synth_call


def _jsonl(path: Path, calls: list[dict[str, object]], extra: bytes = b"") -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(c) + b"\n" for c in calls) + extra)
    return path


def _calls(n: int) -> list[dict[str, object]]:
    return [
        synth_call(f"w-{i}", turns=6, drift=i % 7 == 0) if i % 3 else server_call(f"s-{i}") for i in range(n)
    ]


def _parts(directory: Path, table: str) -> list[str]:
    return sorted(p.name for p in (directory / table).iterdir())


def test_parquet_export_is_parts_of_row_groups_holding_exactly_the_in_memory_tables(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "calls.jsonl", _calls(47), extra=b"{broken\n")
    out = tmp_path / "tables"
    result = analysis.export_jsonl(src, out, batch_calls=6, part_calls=20)
    expected = analysis.read_jsonl(src)
    assert result.calls == 47 and result.bad_line_count == 1 and result.bad_lines[0].line == 48
    assert result.rows == {name: t.num_rows for name, t in expected.as_dict().items()}
    for name in analysis.TABLE_NAMES:
        # 47 calls: parts of 20, 20 and 7 calls.
        assert _parts(out, name) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"], name
    assert pq.ParquetFile(out / "messages" / "part-00000.parquet").num_row_groups == 4  # 6 + 6 + 6 + 2 calls
    back = analysis.read_tables(out)
    for name, table in expected.as_dict().items():
        assert getattr(back, name).equals(table), name
    assert result.paths()["calls"] == out / "calls"


def test_an_interrupted_write_resumes_at_the_next_part_without_loss_or_duplicates(tmp_path: Path) -> None:
    calls = _calls(35)
    src = _jsonl(tmp_path / "calls.jsonl", calls)
    out = tmp_path / "tables"
    first = analysis.TableWriter(out, batch_calls=5, part_calls=10).open()
    lines = src.read_bytes().splitlines()
    for line in lines[:27]:
        first.add(line)
    first.abort()  # stopped: parts 0 and 1 are committed, part 2 was being written
    assert _parts(out, "calls") == ["part-00000.parquet", "part-00001.parquet"]
    # What a kill leaves: a temporary file, a part renamed but never journalled, and a
    # journal line cut short.
    (out / "messages" / ".part-00002.parquet.tmp").write_bytes(b"half a part")
    (out / "calls" / "part-00002.parquet").write_bytes(b"a part never journalled")
    with (out / analysis.JOURNAL).open("ab") as fh:
        fh.write(b'{"part": 2, "calls"')  # and a journal line cut short

    again = analysis.TableWriter(out, batch_calls=5, part_calls=10).open(resume=True)
    assert len(again.done_ids) == 20
    assert _parts(out, "calls") == ["part-00000.parquet", "part-00001.parquet"]
    assert again.add_jsonl(src) == 15  # catches up from the JSONL the fetch wrote, skipping what is done
    again.close()
    assert again.bad_line_count == 0
    back = analysis.read_tables(out)
    whole = analysis.read_jsonl(src)
    assert sorted(back.calls.column("call_id").to_pylist()) == sorted(
        whole.calls.column("call_id").to_pylist()
    )
    for name in analysis.TABLE_NAMES:
        got = getattr(back, name).sort_by(
            [("call_id", "ascending")] + ([("position", "ascending")] if name != "calls" else [])
        )
        want = getattr(whole, name).sort_by(
            [("call_id", "ascending")] + ([("position", "ascending")] if name != "calls" else [])
        )
        assert got.equals(want), name
    assert _parts(out, "messages") == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
        "part-00003.parquet",
    ]


def test_existing_tables_are_kept_unless_overwrite_and_only_ours_are_removed(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "calls.jsonl", _calls(3))
    out = tmp_path / "tables"
    analysis.export_jsonl(src, out)
    (out / "my-notes.txt").write_text("keep me")
    with pytest.raises(analysis.OutputExistsError, match="already holds tables"):
        analysis.export_jsonl(src, out)
    result = analysis.export_jsonl(src, out, format="csv", overwrite=True)
    assert (out / "my-notes.txt").read_text() == "keep me"
    assert not (out / "calls").exists() and not (out / analysis.JOURNAL).exists()
    assert result.paths()["calls"] == out / "calls.csv"


def test_csv_export_has_one_file_per_table_with_a_header_and_every_row(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "calls.jsonl", [server_call("c1"), reference_call("r1")])
    out = tmp_path / "csv"
    result = analysis.export_jsonl(src, out, format="csv", batch_calls=1)
    for name in analysis.TABLE_NAMES:
        with (out / f"{name}.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == result.rows[name], name
        assert list(rows[0]) if rows else True
    with (out / "calls.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == analysis.schemas()["calls"].names
        first = next(reader)
    assert (
        first["call_id"] == "c1"
        and first["scenario_name"] == "Book a table"
        and first["latency_p50_ms"] == "610"
    )
    with (out / "evaluation_results.csv").open(newline="") as fh:
        names = [r["evaluation_name"] for r in csv.DictReader(fh)]
    assert names[:2] == ["Greets the caller", "Calls the booking tool with the right slot"]
    with pytest.raises(ValueError, match="only Parquet"):
        analysis.TableWriter(out, format="csv").open(resume=True)


def test_no_calls_still_write_every_table_with_its_columns(tmp_path: Path) -> None:
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    out = tmp_path / "tables"
    result = analysis.export_jsonl(src, out)
    assert result.calls == 0
    back = analysis.read_tables(out)
    for name, table in back.as_dict().items():
        assert table.num_rows == 0 and table.schema.equals(analysis.schemas()[name])


def test_a_writer_driven_by_outcomes_as_fetch_would(tmp_path: Path) -> None:
    raw = msgspec.json.encode(server_call("f1"))
    outcomes = [
        asyncvox.FetchOutcome(
            "f1", call=msgspec.json.decode(raw, type=asyncvox.Call), error=None, attempts=1, raw=raw
        ),
        asyncvox.FetchOutcome("gone", call=None, error=None, attempts=1),
        asyncvox.FetchOutcome("f3", call=asyncvox.Call(status="completed"), error=None, attempts=2),
    ]
    with analysis.TableWriter(tmp_path / "t", batch_calls=2) as writer:
        keys = [writer.add_outcome(o) for o in outcomes]
        with pytest.raises(analysis.InvalidCallError, match="already read"):
            writer.add(raw)
    assert keys == ["f1", None, "f3"]
    assert writer.rows["calls"] == 2 and writer.rows["messages"] == 6
    back = analysis.read_tables(tmp_path / "t", tables=["calls"], columns={"calls": ["call_id", "status"]})
    assert back.calls.to_pylist() == [
        {"call_id": "f1", "status": "completed"},
        {"call_id": "f3", "status": "completed"},
    ]
    assert back.messages.num_rows == 0
    assert isinstance(back.calls, pa.Table)


def test_a_row_group_holds_batch_calls_calls_however_they_were_converted(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "calls.jsonl", [server_call(f"g{i}") for i in range(330)])
    analysis.export_jsonl(src, tmp_path / "t", batch_calls=250)
    meta = pq.ParquetFile(tmp_path / "t" / "calls" / "part-00000.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [250, 80]
    messages = pq.ParquetFile(tmp_path / "t" / "messages" / "part-00000.parquet").metadata
    assert [messages.row_group(i).num_rows for i in range(messages.num_row_groups)] == [1500, 480]
