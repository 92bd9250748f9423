"""examples/pipeline.py: queue -> iter_calls -> SQLite, against a loopback server."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from _examples import load_example

import asyncvox
from asyncvox.testing import DemoServer

pipeline = load_example("pipeline")

GOOD = [f"c-{i}" for i in range(40)]
IDS = [*GOOD[:20], "c-3", "gone-1", "flaky", *GOOD[20:], "gone-2", "c-7", "broken"]


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def count(db: Path, table: str) -> int:
    return query(db, f"SELECT COUNT(*) FROM {table}")[0][0]  # type: ignore[no-any-return]


def queue_of(ids: Iterable[str]) -> asyncio.Queue[str | None]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    for call_id in ids:
        queue.put_nowait(call_id)
    queue.put_nowait(None)
    return queue


def prepare(server: DemoServer) -> None:
    server.add_missing("gone-1", "gone-2")
    server.script("flaky", [503, 200])  # a transient failure, then the call
    server.script("broken", [500] * 5)  # fails all 1 + 4 attempts of the first run only


async def test_outcomes_land_in_sqlite(server: DemoServer, client: asyncvox.Client, tmp_path: Path) -> None:
    prepare(server)
    db = tmp_path / "calls.db"

    stats = await pipeline.run_pipeline(queue_of(IDS), db, client, batch_size=7)

    assert (stats["found"], stats["missing"], stats["failed"], stats["duplicates"]) == (41, 2, 1, 2)
    assert stats["written"] == 44 and stats["batches"] == 7  # 6 full batches of 7, then 2
    assert count(db, "calls") == 41
    assert count(db, "messages") == 41 * 8  # the server's calls have 8 turns
    assert query(db, "SELECT call_id, kind, error_type, attempts FROM fetch_problems ORDER BY call_id") == [
        ("broken", "failed", "ServerError", 5),
        ("gone-1", "not_found", None, 1),
        ("gone-2", "not_found", None, 1),
    ]
    assert query(db, "SELECT status FROM calls WHERE call_id = 'flaky'") == [("completed",)]

    # One call, row by row, against what the API returns for it.
    outcome = await client.fetch("c-5")
    call = outcome.call
    assert call is not None and call.messages and call.evaluation_results and outcome.raw
    row = query(
        db,
        "SELECT id, status, result, duration, latency_p90, dashboard_url, raw_json FROM calls "
        "WHERE call_id = 'c-5'",
    )
    figures = (call.id, call.status, call.result, call.duration, call.latency_p90)
    assert row == [(*figures, outcome.dashboard_url, outcome.raw.decode())]  # the server's own bytes, as sent
    assert json.loads(row[0][-1])["customerCallId"] == "c-5"
    messages = query(
        db,
        "SELECT role, message, seconds_from_start, duration FROM messages WHERE call_id = 'c-5' ORDER BY seq",
    )
    assert messages == [(m.role, m.message, m.seconds_from_start, m.duration) for m in call.messages]
    evaluations = query(
        db,
        "SELECT id, evaluation_id, success, result FROM evaluation_results "
        "WHERE call_id = 'c-5' ORDER BY seq",
    )
    assert evaluations == [(e.id, e.evaluation_id, e.success, e.result) for e in call.evaluation_results]

    # Every found call's evaluations are there, and nothing else.
    calls = [o.call for o in await client.fetch_calls([*GOOD, "flaky"])]
    assert count(db, "evaluation_results") == sum(len(c.evaluation_results or []) for c in calls if c)


async def test_a_rerun_updates_and_never_duplicates(
    server: DemoServer, client: asyncvox.Client, tmp_path: Path
) -> None:
    prepare(server)
    db = tmp_path / "calls.db"
    await pipeline.run_pipeline(queue_of(IDS), db, client, batch_size=7)
    first_fetch = query(db, "SELECT fetched_at FROM calls WHERE call_id = 'c-1'")

    # Upstream changes before the second run: c-0 shrinks, "broken" recovers.
    short = [{"role": "assistant", "message": "Hello"}, {"role": "user", "message": "Hi"}]
    server.add_call({"id": "cl_0", "customerCallId": "c-0", "status": "in_progress", "messages": short})
    stats = await pipeline.run_pipeline(queue_of(IDS + IDS), db, client, batch_size=5)

    assert stats["written"] == 44 and stats["duplicates"] == len(IDS) + 2
    assert count(db, "calls") == 42
    assert count(db, "messages") == 41 * 8 + 2  # c-0's old 8 rows were replaced by its 2
    assert query(db, "SELECT status FROM calls WHERE call_id = 'c-0'") == [("in_progress",)]
    assert query(db, "SELECT role, message FROM messages WHERE call_id = 'c-0' ORDER BY seq") == [
        ("assistant", "Hello"),
        ("user", "Hi"),
    ]
    assert query(db, "SELECT COUNT(*) FROM evaluation_results WHERE call_id = 'c-0'") == [(0,)]
    assert query(db, "SELECT call_id FROM fetch_problems ORDER BY call_id") == [("gone-1",), ("gone-2",)]
    assert query(db, "SELECT COUNT(*) FROM calls WHERE call_id = 'broken'") == [(1,)]
    assert query(db, "SELECT fetched_at FROM calls WHERE call_id = 'c-1'") > first_fetch


async def test_a_slow_sink_holds_back_the_fetch(server: DemoServer, tmp_path: Path) -> None:
    concurrency, batch_size, total = 4, 5, 400
    gate: asyncio.Queue[None] = asyncio.Queue()  # one token lets one batch be written
    entered: asyncio.Queue[int] = asyncio.Queue()  # the sink is stuck with a batch of this size
    sinks: list[pipeline.SqliteSink] = []

    class GatedSink(pipeline.SqliteSink):  # type: ignore[name-defined,misc]
        async def write(self, outcomes: list[asyncvox.FetchOutcome]) -> None:
            entered.put_nowait(len(outcomes))
            await gate.get()
            await super().write(outcomes)

    def make_sink(path: Path) -> Any:
        sinks.append(GatedSink(path))
        return sinks[-1]

    lags: list[int] = []  # at each id taken from the queue: taken - written

    class CountingQueue(asyncio.Queue[str | None]):
        pulled = 0

        async def get(self) -> str | None:
            item = await super().get()
            if item is not None:
                self.pulled += 1
                lags.append(self.pulled - sinks[0].written)
            return item

    queue = CountingQueue()
    for i in range(total):
        queue.put_nowait(f"bp-{i}")
    queue.put_nowait(None)

    async with asyncvox.Client(server.api_key, server.base_url, concurrency=concurrency) as client:

        async def fetch_side_stalled() -> None:
            # The sink is stuck, so nothing takes outcomes: the fetch side can only finish
            # what it started and stop. Stopped = no request in flight and no new pull over
            # one full pass of the event loop (a worker woken earlier would have run by then).
            before = -1
            while not (client.governor.in_flight == 0 and queue.pulled == before):
                before = queue.pulled if client.governor.in_flight == 0 else -1
                await asyncio.sleep(0)  # yield one loop pass (not a timed wait)

        task = asyncio.create_task(
            pipeline.run_pipeline(
                queue, tmp_path / "bp.db", client, batch_size, flush_after=None, sink_factory=make_sink
            )
        )
        async with asyncio.timeout(10):  # a regression should fail, not hang
            for _ in range(total // batch_size):
                assert await entered.get() == batch_size
                await fetch_side_stalled()
                gate.put_nowait(None)
            stats = await task

    assert stats["written"] == total and count(tmp_path / "bp.db", "calls") == total
    # While the sink was stuck the fetch ran ahead (the sink really was the bottleneck)...
    assert max(lags) >= batch_size + concurrency
    # ...but never more than the batch in the sink plus a few x concurrency.
    assert max(lags) <= batch_size + 3 * concurrency
    assert server.stats.requests == total


async def test_trickling_ids_are_written_before_a_batch_fills(
    client: asyncvox.Client, tmp_path: Path
) -> None:
    wrote = asyncio.Event()
    sinks: list[pipeline.SqliteSink] = []

    class SignallingSink(pipeline.SqliteSink):  # type: ignore[name-defined,misc]
        async def write(self, outcomes: list[asyncvox.FetchOutcome]) -> None:
            await super().write(outcomes)
            wrote.set()

    def make_sink(path: Path) -> Any:
        sinks.append(SignallingSink(path))
        return sinks[-1]

    db = tmp_path / "trickle.db"
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    task = asyncio.create_task(
        pipeline.run_pipeline(queue, db, client, batch_size=50, flush_after=0.01, sink_factory=make_sink)
    )
    for call_id in ("t-1", "t-2", "t-3"):
        queue.put_nowait(call_id)
    async with asyncio.timeout(5):
        while not sinks or sinks[0].written < 3:
            wrote.clear()
            await wrote.wait()
    # The stream is still open (no None yet), and the three calls are already stored.
    assert not task.done()
    assert count(db, "calls") == 3
    queue.put_nowait(None)
    stats = await task
    assert stats["written"] == 3 and stats["found"] == 3
