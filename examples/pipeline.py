"""asyncvox inside an async pipeline: ids from a queue -> iter_calls -> SQLite.

    python examples/pipeline.py --demo calls.db            # a loopback server, no account
    ASYNCVOX_API_KEY=... python examples/pipeline.py calls.db < ids.txt

Ids arrive on an ``asyncio.Queue`` (here a producer reading lines; in production a webhook
handler or a message-queue consumer puts them there; ``None`` ends the stream). They flow
into ``client.iter_calls`` as an async generator and the outcomes land in SQLite.

Back-pressure is end to end, so memory stays flat however many ids come: the sink awaits
each batch write; while it writes, nobody takes outcomes from the stream; iter_calls pulls
only a few times ``concurrency`` ids ahead of what was taken; so ids wait in the queue, and
a bounded queue in turn makes the producer wait.

Every write is an idempotent upsert keyed by the customer call id, in one transaction per
batch: re-running over the same ids (after a crash, or to refresh) updates, never duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncvox

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id       TEXT PRIMARY KEY,     -- the customer call id we asked for
    id            TEXT,                 -- the API's own id
    status        TEXT,
    result        TEXT,
    created_at    TEXT,
    duration      REAL,
    latency_p50   REAL,
    latency_p90   REAL,
    latency_p95   REAL,
    dashboard_url TEXT,
    raw_json      TEXT NOT NULL,        -- the server's own bytes: nothing it sent is lost
    fetched_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    call_id            TEXT NOT NULL REFERENCES calls (call_id),
    seq                INTEGER NOT NULL,     -- position in the transcript
    role               TEXT,
    message            TEXT,
    seconds_from_start REAL,
    duration           REAL,
    PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS evaluation_results (
    call_id       TEXT NOT NULL REFERENCES calls (call_id),
    seq           INTEGER NOT NULL,
    id            TEXT,
    evaluation_id TEXT,
    success       INTEGER,
    result        TEXT,
    details       TEXT,
    PRIMARY KEY (call_id, seq)
);
-- Ids whose latest fetch brought no call back: 'not_found', or 'failed' after retries.
CREATE TABLE IF NOT EXISTS fetch_problems (
    call_id    TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    error_type TEXT,
    message    TEXT,
    attempts   INTEGER,
    seen_at    TEXT NOT NULL
);
"""

UPSERT_CALL = """
INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (call_id) DO UPDATE SET
    id = excluded.id, status = excluded.status, result = excluded.result,
    created_at = excluded.created_at, duration = excluded.duration,
    latency_p50 = excluded.latency_p50, latency_p90 = excluded.latency_p90,
    latency_p95 = excluded.latency_p95, dashboard_url = excluded.dashboard_url,
    raw_json = excluded.raw_json, fetched_at = excluded.fetched_at
"""
UPSERT_PROBLEM = """
INSERT INTO fetch_problems VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (call_id) DO UPDATE SET
    kind = excluded.kind, error_type = excluded.error_type, message = excluded.message,
    attempts = excluded.attempts, seen_at = excluded.seen_at
"""


class SqliteSink:
    """Writes batches of outcomes to a SQLite file, off the event loop.

    sqlite3 blocks, so every database call runs in a worker thread (``asyncio.to_thread``);
    the one connection is used by one thread at a time because each write is awaited.
    """

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self.written = 0  # outcomes committed so far
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._conn = await asyncio.to_thread(self._connect)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")  # readers are not blocked while we write
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(SCHEMA)
        return conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    async def write(self, outcomes: list[asyncvox.FetchOutcome]) -> None:
        await asyncio.to_thread(self._write, outcomes)
        self.written += len(outcomes)

    def _write(self, outcomes: list[asyncvox.FetchOutcome]) -> None:
        assert self._conn is not None
        now = datetime.now(UTC).isoformat()
        with self._conn as db:  # one transaction per batch: all of it or none of it
            for o in outcomes:
                call = o.call
                if call is None:
                    # A failure never deletes a call we already have; it is only recorded.
                    kind = "not_found" if o.error is None else "failed"
                    error = (type(o.error).__name__, str(o.error)) if o.error is not None else (None, None)
                    db.execute(UPSERT_PROBLEM, (o.call_id, kind, *error, o.attempts, now))
                    continue
                assert o.raw is not None
                created = call.created_at.isoformat() if call.created_at else None
                figures = (call.duration, call.latency_p50, call.latency_p90, call.latency_p95)
                row = (o.call_id, call.id, call.status, call.result, created, *figures, o.dashboard_url)
                db.execute(UPSERT_CALL, (*row, o.raw.decode(), now))
                # Children are replaced, not upserted: a transcript that got shorter (or
                # reordered) upstream must not keep stale rows.
                db.execute("DELETE FROM messages WHERE call_id = ?", (o.call_id,))
                db.executemany(
                    "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (o.call_id, seq, m.role, m.message, m.seconds_from_start, m.duration)
                        for seq, m in enumerate(call.messages or [])
                    ],
                )
                db.execute("DELETE FROM evaluation_results WHERE call_id = ?", (o.call_id,))
                db.executemany(
                    "INSERT INTO evaluation_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (o.call_id, seq, e.id, e.evaluation_id, e.success, e.result, e.details)
                        for seq, e in enumerate(call.evaluation_results or [])
                    ],
                )
                db.execute("DELETE FROM fetch_problems WHERE call_id = ?", (o.call_id,))


async def ids_from(queue: asyncio.Queue[str | None]) -> AsyncIterator[str]:
    """The queue as an async iterable: iter_calls pulls from it only as fast as it can fetch."""
    while (call_id := await queue.get()) is not None:
        yield call_id


async def run_pipeline(
    ids_queue: asyncio.Queue[str | None],
    db_path: str | Path,
    client: asyncvox.Client,
    batch_size: int = 50,
    *,
    flush_after: float | None = 1.0,
    sink_factory: Callable[[Path], SqliteSink] = SqliteSink,
) -> dict[str, Any]:
    """Fetch every id that arrives on ``ids_queue`` (until ``None``) into ``db_path``.

    Outcomes are written ``batch_size`` at a time, or sooner when the stream has been idle
    for ``flush_after`` seconds (ids trickling in from a webhook should not sit in memory).
    Returns the batch's stats (``BatchStats.summary()``) plus ``written`` and ``batches``.
    A fatal error (a rejected api key) raises; batches already written stay committed, and
    a re-run is safe since every write is an upsert.
    """
    sink = sink_factory(Path(db_path))
    await sink.open()
    batch: list[asyncvox.FetchOutcome] = []
    batches = 0

    async def flush() -> None:
        nonlocal batch, batches
        if batch:
            await sink.write(batch)
            batch, batches = [], batches + 1

    try:
        async with client.iter_calls(ids_from(ids_queue)) as stream:
            while True:
                # Wait for the next outcome in a task, via asyncio.wait rather than a timeout
                # around anext(): cancelling a pending anext() would stop the whole stream.
                pending = asyncio.ensure_future(anext(stream, None))
                try:
                    while not pending.done():
                        await asyncio.wait({pending}, timeout=flush_after if batch else None)
                        if not pending.done():
                            await flush()  # idle: persist what we hold meanwhile
                finally:
                    if not pending.done():  # we are failing or being cancelled
                        pending.cancel()
                        await asyncio.wait({pending})
                outcome = pending.result()
                if outcome is None:
                    break
                batch.append(outcome)
                if len(batch) >= batch_size:
                    # Awaited before taking more outcomes: this is the back-pressure.
                    await flush()
            await flush()
            return {**stream.stats.summary(), "written": sink.written, "batches": batches}
    finally:
        await sink.close()


async def produce(lines: AsyncIterable[str], queue: asyncio.Queue[str | None]) -> None:
    """A stand-in for a webhook or message consumer: one id per line, then ``None``."""
    async for line in lines:
        if call_id := line.strip():
            await queue.put(call_id)  # waits while the queue is full: back-pressure
    await queue.put(None)


async def stdin_lines() -> AsyncIterator[str]:
    # Reading a pipe blocks: do it in a thread so the event loop keeps fetching meanwhile.
    while line := await asyncio.to_thread(sys.stdin.readline):
        yield line


async def demo_lines() -> AsyncIterator[str]:
    for i in range(1000):
        yield f"call-{i % 900}"  # some duplicates, as real event streams have
    yield "no-such-call"


async def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    demo = "--demo" in args
    paths = [a for a in args if a != "--demo"]
    if len(paths) != 1:
        raise SystemExit("usage: python examples/pipeline.py [--demo] DB_PATH  (ids on stdin)")
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)  # bounded: flat memory
    async with contextlib.AsyncExitStack() as stack:
        if demo:
            from asyncvox.testing import DemoServer

            server = await stack.enter_async_context(DemoServer(api_key="demo-key"))
            server.add_missing("no-such-call")
            client = asyncvox.Client("demo-key", server.base_url)
        else:
            client = asyncvox.Client()  # $ASYNCVOX_API_KEY, $ASYNCVOX_BASE_URL
        await stack.enter_async_context(client)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce(demo_lines() if demo else stdin_lines(), queue))
            stats = tg.create_task(run_pipeline(queue, paths[0], client))
    print(stats.result())


if __name__ == "__main__":
    asyncio.run(main())
