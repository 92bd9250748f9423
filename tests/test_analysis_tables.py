"""Calls -> tables: every row the calls hold, exactly once, with the values the calls hold."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from _payloads import reference_call, server_call, variant
from conftest import API_KEY

import asyncvox
from asyncvox import analysis
from asyncvox.testing import DemoServer, FaultProfile

CHILDREN = {
    "messages": "messages",
    "evaluation_results": "evaluation_results",
    "latency_blocks": "latency_blocks",
    "interruptions": "interruptions",
    "errors": "errors",
}


def _rows(table: Any) -> list[dict[str, Any]]:
    return table.to_pylist()  # type: ignore[no-any-return]


def _by_key(table: Any) -> dict[tuple[str, int], dict[str, Any]]:
    rows = _rows(table)
    keyed = {(r["call_id"], r["position"]): r for r in rows}
    assert len(keyed) == len(rows), "(call_id, position) must be unique"
    return keyed


def _encode(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


def test_a_server_shaped_call_fills_every_table_with_its_names_and_units() -> None:
    payload = server_call("call-1")
    tables = analysis.to_tables([_encode(payload)])
    assert tables.bad_line_count == 0
    (call,) = _rows(tables.calls)
    assert call["call_id"] == "call-1" and call["customer_call_id"] is None and call["owner_id"] == "org_42"
    assert call["scenario_id"] == "scn-book-a-table" and call["scenario_name"] == "Book a table"
    assert call["test_agent_id"] == "ta_9" and call["test_agent_name"] == "Impatient Ian"
    # The server's rounded milliseconds land in _ms columns, seconds in _s columns, as sent.
    assert (call["latency_p50_ms"], call["latency_p90_ms"], call["latency_p95_ms"]) == (610, 900, 1180)
    assert call["time_to_first_word_ms"] == 1240 and call["duration_s"] == 11.0
    assert call["created_at"] == datetime(2026, 1, 1, 10, 0, 20, tzinfo=UTC)
    assert call["started_at"] == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert call["started_at_text"] == "2026-01-01T10:00:00.000Z"
    assert json.loads(call["metadata_json"]) == payload["metadata"]
    assert json.loads(call["eval_set_to_success_json"]) == {"set_main": True}
    assert (call["message_count"], call["evaluation_count"]) == (6, 3)
    assert (call["evaluations_passed"], call["evaluations_failed"]) == (2, 0)
    assert (call["latency_block_count"], call["interruption_count"]) == (2, 1)
    assert call["error_count"] is None, "the server does not load errors: absent, not zero"
    assert tables.errors.num_rows == 0

    results = _rows(tables.evaluation_results)
    assert [r["evaluation_name"] for r in results] == [
        "Greets the caller",
        "Calls the booking tool with the right slot",
        None,
    ]
    assert [r["evaluation_template_id"] for r in results] == ["tpl-greet", "tpl-book", "tpl-greet"]
    assert [r["is_critical"] for r in results] == [False, True, None]
    assert [r["type"] for r in results] == ["boolean", "number", "percentage"]
    assert [r["success"] for r in results] == [True, True, None]
    assert results[0]["seconds_from_start_s"] == 1.24 and results[1]["duration_s"] is None

    messages = _rows(tables.messages)
    assert [m["position"] for m in messages] == list(range(6))
    assert [m["role"] for m in messages] == ["system", "bot", "user", "tool_calls", "tool_call_result", "bot"]
    assert [m["role_kind"] for m in messages] == ["system", "agent", "user", "tool", "tool", "agent"]
    assert messages[1]["content"] == "Hi, this is Ava, how can I help?"
    assert messages[1]["time"] == datetime(2026, 1, 1, 10, 0, 1, 240000, tzinfo=UTC)  # epoch ms
    assert messages[1]["end_time"] == datetime(2026, 1, 1, 10, 0, 3, 900000, tzinfo=UTC)
    assert json.loads(messages[3]["tool_calls_json"]) == payload["messages"][3]["toolCalls"]
    assert (messages[4]["name"], messages[4]["result"]) == ("book", "booked")
    (cut,) = _rows(tables.interruptions)
    assert cut == {
        "call_id": "call-1",
        "position": 0,
        "id": "call-1-i0",
        "seconds_from_start_s": 5.2,
        "duration_s": 0.4,
        "text": "sorry",
    }
    assert [b["duration_s"] for b in _rows(tables.latency_blocks)] == [0.6, 1.18]


def test_a_reference_shaped_call_keeps_its_vocabulary_and_repairs_nothing_it_need_not() -> None:
    tables = analysis.to_tables([json.dumps(reference_call("r1"))])  # JSON text works too
    (call,) = _rows(tables.calls)
    assert call["status"] == "analyzing" and call["result"] == "failure"
    assert call["created_at"] == datetime(2026, 2, 3, 2, 5, 6, tzinfo=UTC)  # +02:00 -> UTC
    assert call["ended_at"] is None and call["ended_at_text"] == "not recorded"  # free text kept
    assert call["num_interruptions"] == 3  # 3.0 on the wire, an integer column
    assert call["scenario_name"] is None and call["test_agent_name"] is None
    messages = _rows(tables.messages)
    assert [m["role_kind"] for m in messages] == ["agent", "tool", "tool", "user"]
    assert messages[0]["time"] == datetime.fromtimestamp(1770084240.5, UTC)  # epoch seconds
    assert [r["type"] for r in _rows(tables.evaluation_results)] == ["manual", "auto"]
    assert [r["evaluation_template_id"] for r in _rows(tables.evaluation_results)] == [None, "tpl-y"]
    (error,) = _rows(tables.errors)
    assert (error["type"], error["description"], error["seconds_from_start_s"], error["duration_s"]) == (
        "tts_timeout", "TTS took 4 s", 12.0, 4.0,
    )  # fmt: skip
    assert call["error_count"] == 1


def _assert_tables_hold_exactly(tables: analysis.Tables, calls: dict[str, asyncvox.Call]) -> None:
    """Every table against the typed view of the same calls: counts, unique keys, values."""
    rows = {r["call_id"]: r for r in _rows(tables.calls)}
    assert len(rows) == tables.calls.num_rows == len(calls)
    assert set(rows) == set(calls)
    for key, call in calls.items():
        row = rows[key]
        assert row["status"] == call.status and row["result"] == call.result
        assert row["latency_p50_ms"] == call.latency_p50 and row["latency_p95_ms"] == call.latency_p95
        assert row["time_to_first_word_ms"] == call.time_to_first_word and row["duration_s"] == call.duration
        assert row["created_at"] == call.created_at and row["failure_reason"] == call.failure_reason
        assert row["scenario_id"] == call.scenario_id and row["test_agent_id"] == call.test_agent_id
    for table, attr in CHILDREN.items():
        keyed = _by_key(getattr(tables, table))
        expected = {
            (key, pos): item
            for key, call in calls.items()
            for pos, item in enumerate(getattr(call, attr) or [])
        }
        assert set(keyed) == set(expected), table
        for k, item in expected.items():
            row = keyed[k]
            assert row["id"] == item.id
            assert (
                row["seconds_from_start_s"] == item.seconds_from_start and row["duration_s"] == item.duration
            )
            if table == "messages":
                assert (row["role"], row["content"]) == (item.role, item.message)
            elif table == "evaluation_results":
                assert (row["success"], row["evaluation_id"], row["type"]) == (
                    item.success,
                    item.evaluation_id,
                    item.type,
                )
            elif table == "interruptions":
                assert row["text"] == item.text
            elif table == "errors":
                assert (row["type"], row["description"]) == (item.type, item.description)
    counts = Counter(r["call_id"] for r in _rows(tables.messages))
    assert all(rows[k]["message_count"] == counts[k] for k in calls if calls[k].messages is not None)


async def test_the_demo_servers_calls_round_trip_through_outcomes_and_typed_calls(server: DemoServer) -> None:
    server.profile = FaultProfile(drift_rate=0.3, seed=3)  # undocumented values, nulls, extra objects
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        outcomes = await client.fetch_calls([f"rt-{i}" for i in range(60)])
    found = [o for o in outcomes if o.call is not None]
    assert len(found) == 60
    typed = {o.call.id: o.call for o in found if o.call is not None and o.call.id}
    from_outcomes = analysis.to_tables(outcomes)
    _assert_tables_hold_exactly(from_outcomes, typed)
    # The typed Calls themselves (re-encoded) give the same rows for what they model.
    from_calls = analysis.to_tables(typed.values())
    _assert_tables_hold_exactly(from_calls, typed)
    for name in ("messages", "evaluation_results", "latency_blocks", "interruptions", "errors"):
        assert getattr(from_calls, name).equals(getattr(from_outcomes, name)), name


def test_real_shaped_payloads_round_trip_against_the_typed_view() -> None:
    payloads = [server_call(f"s{i}", scenario=f"Scenario {i % 3}", passed=i % 4 != 0) for i in range(12)]
    payloads += [reference_call(f"r{i}") for i in range(5)]
    raw = [_encode(p) for p in payloads]
    typed = {c.id: c for c in (msgspec.json.decode(r, type=asyncvox.Call) for r in raw) if c.id}
    tables = analysis.to_tables(raw)
    _assert_tables_hold_exactly(tables, typed)
    names = Counter(r["scenario_name"] for r in _rows(tables.calls))
    assert names == {"Scenario 0": 4, "Scenario 1": 4, "Scenario 2": 4, None: 5}


def test_wrong_typed_values_become_null_and_the_rest_is_kept() -> None:
    call = variant(
        server_call(),
        "drifty",
        latencyP50="fast",
        status=5,
        createdAt="yesterday",
        numInterruptions=2.5,
        duration=2**70,  # beyond int64: kept as a float
        scenario="not an object",
        testAgent={"id": "ta", "name": ["not", "a", "string"]},
        evaluationResults={"not": "a list"},
        metadata=None,
        extraTopLevel={"anything": [1, 2]},
    )
    call["messages"][0] = "not an object"
    call["messages"][1]["role"] = 3
    call["messages"][2]["message"] = "lone SURROGATE here"
    # Valid JSON that msgspec refuses: a number beyond float, a lone surrogate escape.
    raw = _encode(call).replace(b'"latencyP90":900', b'"latencyP90":1e400').replace(b"SURROGATE", b"\\ud800")
    tables = analysis.to_tables([raw])
    assert tables.bad_line_count == 0
    (row,) = _rows(tables.calls)
    assert row["latency_p50_ms"] is None and row["status"] is None and row["created_at"] is None
    assert math.isinf(row["latency_p90_ms"]) and row["latency_p95_ms"] == 1180
    assert row["num_interruptions"] is None, "2.5 is not a count"
    assert row["duration_s"] == float(2**70)
    assert row["scenario_name"] is None and row["scenario_id"] == "scn-book-a-table"
    assert row["test_agent_id"] == "ta_9" and row["test_agent_name"] is None
    assert row["evaluation_count"] is None and tables.evaluation_results.num_rows == 0
    assert row["metadata_json"] is None
    messages = _rows(tables.messages)
    assert [m["position"] for m in messages] == [1, 2, 3, 4, 5], (
        "the element that is not an object is skipped"
    )
    assert row["message_count"] == 5
    assert messages[0]["role"] is None and messages[0]["content"] == "Hi, this is Ava, how can I help?"
    assert messages[1]["content"] == "lone \\ud800 here"


def test_bad_lines_are_reported_by_number_and_skipped(tmp_path: Path) -> None:
    good = [server_call(f"g{i}") for i in range(3)]
    lines = [
        _encode(good[0]),
        b"this is not json",
        b"   ",  # blank: not a call, not an error
        b"[1, 2, 3]",
        _encode({"status": "completed"}),  # nothing to key it by
        _encode(good[1]),
        _encode(good[0]),  # the same call again
        _encode(good[2])[:-20],  # cut short
        _encode(variant(good[2], "")),  # an empty id, and no customerCallId
        _encode({"customerCallId": "cust-9", "id": None}),  # keyed by customerCallId
    ]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    tables = analysis.read_jsonl(path)
    reported = {bad.line: bad.reason for bad in tables.bad_lines}
    assert sorted(reported) == [2, 4, 5, 7, 8, 9]
    assert "not valid JSON" in reported[2] and "array" in reported[4]
    assert "no `id`" in reported[5] and "already read" in reported[7] and "not valid JSON" in reported[8]
    assert tables.bad_line_count == 6
    assert [r["call_id"] for r in _rows(tables.calls)] == ["g0", "g1", "cust-9"]
    assert tables.messages.num_rows == 12


def test_mixed_inputs_and_outcomes_without_a_call() -> None:
    found = asyncvox.FetchOutcome(
        "o1", call=asyncvox.Call(id="o1"), error=None, attempts=1, raw=_encode(server_call("o1"))
    )
    missing = asyncvox.FetchOutcome("o2", call=None, error=None, attempts=1)
    failed = asyncvox.FetchOutcome("o3", call=None, error=asyncvox.ServerError(500, "boom"), attempts=3)
    no_id = asyncvox.FetchOutcome("asked-for", call=asyncvox.Call(status="completed"), error=None, attempts=1)
    items: list[Any] = [
        found,
        missing,
        failed,
        no_id,
        server_call("d1"),
        42,
        bytearray(_encode(reference_call("b1"))),
    ]
    tables = analysis.to_tables(items)
    assert [r["call_id"] for r in _rows(tables.calls)] == ["o1", "asked-for", "d1", "b1"]
    assert tables.bad_lines == (analysis.BadLine(6, "not a call: a int"),)


def test_no_calls_give_empty_tables_with_their_columns() -> None:
    tables = analysis.to_tables([])
    for name, table in tables.as_dict().items():
        assert table.num_rows == 0
        assert table.schema.equals(analysis.schemas()[name])
    assert "latency_p50_ms" in tables.calls.schema.names
    assert str(tables.calls.schema.field("created_at").type) == "timestamp[us, tz=UTC]"


def test_batches_of_a_jsonl_file_add_up_to_the_whole(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"".join(_encode(server_call(f"c{i}")) + b"\n" for i in range(25)) + b"oops\n")
    batches = list(analysis.iter_jsonl_tables(path, batch_calls=10))
    assert [b.calls.num_rows for b in batches] == [10, 10, 5]
    assert sum(b.messages.num_rows for b in batches) == 25 * 6
    assert [b.bad_lines for b in batches][-1] == (
        analysis.BadLine(26, "not a call: not valid JSON (JSON is malformed: invalid character (byte 0))"),
    )
    whole = analysis.read_jsonl(path)
    import pyarrow as pa

    assert pa.concat_tables([b.messages for b in batches]).equals(whole.messages)


def test_a_byte_order_mark_and_crlf_line_ends_are_not_errors(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + _encode(server_call("a")) + b"\r\n" + _encode(server_call("b")) + b"\r\n"
    )
    tables = analysis.read_jsonl(path)
    assert tables.bad_lines == () and tables.calls.column("call_id").to_pylist() == ["a", "b"]


def test_only_the_tables_asked_for_are_built(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"".join(_encode(server_call(f"c{i}")) + b"\n" for i in range(3)))
    (batch,) = analysis.iter_jsonl_tables(path, tables=["calls", "evaluation_results"])
    assert (batch.calls.num_rows, batch.evaluation_results.num_rows, batch.messages.num_rows) == (3, 9, 0)
    assert batch.calls.column("message_count").to_pylist() == [6, 6, 6]  # counts come from the calls
