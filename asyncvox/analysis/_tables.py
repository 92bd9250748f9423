"""Calls -> six Arrow tables, a batch at a time.

:class:`TableBuilder` takes one call at a time (its JSON bytes) and keeps the decoded
Structs until :meth:`TableBuilder.take` turns the batch into Arrow tables column by column
and forgets it, so memory is bounded by the batch, never by the input.

Every table is keyed by ``call_id`` (the call's ``id``, else its ``customerCallId``, else
the id it was fetched by); the child tables add ``position``, the element's index in the
call's list as sent. Units are in the column names: ``_ms`` (the server's rounded
milliseconds: latency, interruption and time-to-first-word figures), ``_s`` (seconds:
durations and offsets). Timestamps are ``timestamp[us, UTC]``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from ..errors import AsyncvoxError
from ._deps import pyarrow
from ._wire import NotACallError, WireCall, decode_wire_call, parse_timestamp

__all__ = ["TABLE_NAMES", "BadLine", "InvalidCallError", "TableBuilder", "Tables", "schemas"]

#: The tables, in the order they are written.
TABLE_NAMES = ("calls", "messages", "evaluation_results", "latency_blocks", "interruptions", "errors")

#: Both role vocabularies (the reference page's and the server's schema) folded into four.
ROLE_KINDS = {
    "assistant": "agent",
    "bot": "agent",
    "user": "user",
    "system": "system",
    "function": "tool",
    "tool": "tool",
    "tool_calls": "tool",
    "tool_call_result": "tool",
}
_INT64 = 1 << 63
#: An epoch number at or above this is milliseconds (1e11 s would be the year 5138).
_EPOCH_MS_FROM = 1e11


class InvalidCallError(AsyncvoxError, ValueError):
    """A value that cannot become a row: not a JSON object, no id to key it, a duplicate."""


class BadLine(NamedTuple):
    """An input line that was skipped: its 1-based number and why."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Tables:
    """The six tables (``pyarrow.Table``) of a set of calls, and the input lines skipped."""

    calls: Any
    messages: Any
    evaluation_results: Any
    latency_blocks: Any
    interruptions: Any
    errors: Any
    #: Lines of a JSONL input that were skipped (the first ``bad_line_limit`` of them).
    bad_lines: tuple[BadLine, ...] = ()
    #: How many lines were skipped in all.
    bad_line_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        """``{table name: pyarrow.Table}`` in :data:`TABLE_NAMES` order."""
        return {name: getattr(self, name) for name in TABLE_NAMES}


@functools.cache
def schemas() -> dict[str, Any]:
    """The Arrow schema of each table, by name."""
    pa = pyarrow()
    s, f, i, b = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    ts = pa.timestamp("us", tz="UTC")
    key = [pa.field("call_id", s, nullable=False)]
    child = [*key, pa.field("position", i, nullable=False), ("id", s)]
    span = [("seconds_from_start_s", f), ("duration_s", f)]
    calls = [
        *key,
        *[(n, s) for n in ("customer_call_id", "owner_id", "status", "result", "failure_reason")],
        ("created_at", ts), ("started_at", ts), ("ended_at", ts),
        ("started_at_text", s), ("ended_at_text", s),
        ("duration_s", f), ("time_to_first_word_ms", f),
        ("latency_p50_ms", f), ("latency_p90_ms", f), ("latency_p95_ms", f),
        ("interruption_p50_ms", f), ("interruption_p90_ms", f), ("interruption_p95_ms", f),
        ("num_interruptions", i),
        *[(n, s) for n in ("agent_id", "scenario_id", "scenario_name", "test_agent_id", "test_agent_name")],
        *[(n, s) for n in ("test_id", "region_id", "vapi_call_id", "of_one_device_id")],
        ("deleted", b), ("is_read", b),
        *[(n, s) for n in ("read_by", "notes", "stereo_recording_url", "mono_recording_url")],
        ("metadata_json", s), ("eval_set_to_success_json", s),
        *[(n, i) for n in ("message_count", "evaluation_count", "evaluations_passed", "evaluations_failed")],
        *[(n, i) for n in ("latency_block_count", "interruption_count", "error_count")],
    ]  # fmt: skip
    tables = {
        "calls": calls,
        "messages": [
            *child, ("role", s), ("role_kind", s), ("content", s), ("name", s), ("result", s),
            ("time", ts), ("end_time", ts), *span, ("tool_calls_json", s),
        ],
        "evaluation_results": [
            *child, ("evaluation_id", s), ("evaluation_name", s), ("evaluation_template_id", s),
            ("is_critical", b), ("success", b), ("result", s), ("details", s), ("type", s),
            ("created_at", ts), *span,
        ],
        "latency_blocks": [*child, *span],
        "interruptions": [*child, *span, ("text", s)],
        "errors": [*child, ("type", s), ("description", s), *span],
    }  # fmt: skip
    return {name: pa.schema(cols) for name, cols in tables.items()}


class _Children(NamedTuple):
    call_ids: list[str]
    positions: list[int]
    items: list[Any]


def _children(size: int) -> list[_Children]:
    return [_Children([], [], []) for _ in range(size)]


@dataclass
class TableBuilder:
    """Collects calls and turns them into :class:`Tables` a batch at a time.

    ``dedupe`` (default on) skips a call whose key was seen before, in this batch or an
    earlier one (the set of keys is the only thing that grows with the input).
    ``tables`` names the tables to build; the others come back empty (``calls`` and its
    count columns are always built).
    """

    dedupe: bool = True
    tables: Sequence[str] = TABLE_NAMES
    seen: set[str] = field(default_factory=set)
    _calls: list[tuple[str, WireCall]] = field(default_factory=list)
    _kids: list[_Children] = field(default_factory=lambda: _children(5))

    def __len__(self) -> int:
        """Calls in the current batch."""
        return len(self._calls)

    def add(self, raw: bytes | memoryview | str, *, call_id: str | None = None) -> str:
        """Add one call from its JSON; returns its key. ``call_id`` keys a call that has no id.

        Raises :class:`InvalidCallError` (nothing is added) for bytes that are not a JSON
        object, a call with no id at all, or (with ``dedupe``) a key seen before.
        """
        try:
            call, drifted = decode_wire_call(raw)
        except NotACallError as exc:
            raise InvalidCallError(f"not a call: {exc}") from None
        key = call.id or call.customer_call_id or call_id
        if key and not key.isascii():
            key = str(_fit(key))  # a lone surrogate: the key as the call_id column holds it
        if not key:
            raise InvalidCallError("the call has no `id` or `customerCallId` to key its rows")
        if self.dedupe:
            if key in self.seen:
                raise InvalidCallError(f"call {key!r} was already read (duplicate skipped)")
            self.seen.add(key)
        self._calls.append((key, call))
        lists = (call.messages, call.evaluation_results, call.latency_blocks, call.interruptions, call.errors)
        for name, kids, items in zip(TABLE_NAMES[1:], self._kids, lists, strict=True):
            if not items or name not in self.tables:
                continue
            if drifted:
                kept = [(pos, item) for pos, item in enumerate(items) if item is not None]
                kids.positions.extend(pos for pos, _ in kept)
                kids.items.extend(item for _, item in kept)
                kids.call_ids.extend([key] * len(kept))
            else:
                kids.positions.extend(range(len(items)))
                kids.items.extend(items)
                kids.call_ids.extend([key] * len(items))
        return key

    def take(self, *, bad_lines: Iterable[BadLine] = (), bad_line_count: int = 0) -> Tables:
        """The current batch as :class:`Tables`; the batch is then emptied (``seen`` stays)."""
        pa = pyarrow()
        sch = schemas()
        calls, self._calls = self._calls, []
        kids, self._kids = self._kids, _children(5)
        built = {"calls": _table(pa, sch["calls"], _call_columns(calls))}
        for name, k, columns in zip(TABLE_NAMES[1:], kids, _CHILD_COLUMNS, strict=True):
            built[name] = _table(pa, sch[name], [k.call_ids, k.positions, *columns(k.items)])
        return Tables(**built, bad_lines=tuple(bad_lines), bad_line_count=bad_line_count)


def _table(pa: Any, schema: Any, columns: Sequence[list[Any] | _Epochs]) -> Any:
    arrays = [_array(pa, values, f.type) for values, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _array(pa: Any, values: list[Any] | _Epochs, type_: Any) -> Any:
    if isinstance(values, _Epochs):
        return _epoch_array(pa, values.values, type_)
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowException, OverflowError, UnicodeError):
        # A value JSON allows but the column cannot hold: an integer beyond 64 bits, a
        # lone surrogate. Rare, so only then is the column walked value by value.
        return pa.array([_fit(v) for v in values], type=type_)


def _fit(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        try:
            return float(value)
        except OverflowError:
            return None
    return value


def _int(value: Any) -> int | None:
    """A count: an integral number (``3.0`` included) within int64, else ``None``."""
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    return value if value is not None and -_INT64 <= value < _INT64 else None


class _Epochs(NamedTuple):
    """Epoch numbers (milliseconds or seconds) for a timestamp column, converted in Arrow."""

    values: list[Any]


def _epoch_array(pa: Any, values: list[Any], type_: Any) -> Any:
    """Epoch milliseconds or seconds (told apart by size, per value) as timestamps."""
    pc = pa.compute
    x = _array(pa, values, pa.float64())
    scale = pc.if_else(pc.greater_equal(pc.abs(x), _EPOCH_MS_FROM), 1e3, 1e6)
    us = pc.round(pc.multiply(x, scale))
    # Beyond int64 microseconds (or not finite) is no time at all: null.
    us = pc.if_else(pc.less(pc.abs(us), float(_INT64)), us, pa.scalar(None, pa.float64()))
    return pc.cast(us, pa.int64()).cast(type_)


def _raw_text(raw: msgspec.Raw) -> str | None:
    """Arbitrary JSON kept as its text; absent and ``null`` are both ``None``."""
    if not raw or bytes(raw) == b"null":
        return None
    return bytes(raw).decode("utf-8", "backslashreplace")


def _count(items: list[Any] | None) -> int | None:
    return None if items is None else len(items) - items.count(None)


def _passed(call: WireCall, verdict: bool) -> int | None:
    if call.evaluation_results is None:
        return None
    return sum(1 for r in call.evaluation_results if r is not None and r.success is verdict)


def _call_columns(rows: list[tuple[str, WireCall]]) -> list[list[Any]]:
    calls = [c for _, c in rows]

    def col(get: Callable[[WireCall], Any]) -> list[Any]:
        return [get(c) for c in calls]

    return [
        [key for key, _ in rows],
        col(lambda c: c.customer_call_id),
        col(lambda c: c.owner_id),
        col(lambda c: c.status),
        col(lambda c: c.result),
        col(lambda c: c.failure_reason),
        col(lambda c: c.created_at),
        col(lambda c: parse_timestamp(c.started_at)),
        col(lambda c: parse_timestamp(c.ended_at)),
        col(lambda c: c.started_at),
        col(lambda c: c.ended_at),
        col(lambda c: c.duration),
        col(lambda c: c.time_to_first_word),
        col(lambda c: c.latency_p50),
        col(lambda c: c.latency_p90),
        col(lambda c: c.latency_p95),
        col(lambda c: c.interruption_p50),
        col(lambda c: c.interruption_p90),
        col(lambda c: c.interruption_p95),
        col(lambda c: _int(c.num_interruptions)),
        col(lambda c: c.agent_id),
        col(lambda c: c.scenario_id or (c.scenario.id if c.scenario else None)),
        col(lambda c: c.scenario.name if c.scenario else None),
        col(lambda c: c.test_agent_id or (c.test_agent.id if c.test_agent else None)),
        col(lambda c: c.test_agent.name if c.test_agent else None),
        col(lambda c: c.test_id),
        col(lambda c: c.region_id),
        col(lambda c: c.vapi_call_id),
        col(lambda c: c.of_one_device_id),
        col(lambda c: c.deleted),
        col(lambda c: c.is_read),
        col(lambda c: c.read_by),
        col(lambda c: c.notes),
        col(lambda c: c.stereo_recording_url),
        col(lambda c: c.mono_recording_url),
        col(lambda c: _raw_text(c.metadata)),
        col(lambda c: _raw_text(c.eval_set_to_success)),
        col(lambda c: _count(c.messages)),
        col(lambda c: _count(c.evaluation_results)),
        col(lambda c: _passed(c, True)),
        col(lambda c: _passed(c, False)),
        col(lambda c: _count(c.latency_blocks)),
        col(lambda c: _count(c.interruptions)),
        col(lambda c: _count(c.errors)),
    ]


def _message_columns(ms: list[Any]) -> list[list[Any] | _Epochs]:
    return [
        [m.id for m in ms],
        [m.role for m in ms],
        [ROLE_KINDS.get(m.role) if m.role else None for m in ms],
        [m.message for m in ms],
        [m.name for m in ms],
        [m.result for m in ms],
        _Epochs([m.time for m in ms]),
        _Epochs([m.end_time for m in ms]),
        [m.seconds_from_start for m in ms],
        [m.duration for m in ms],
        [_raw_text(m.tool_calls) if m.tool_calls else None for m in ms],  # mostly absent
    ]


def _template_name(r: Any) -> str | None:
    ev = r.evaluation
    return ev.evaluation_template.name if ev is not None and ev.evaluation_template is not None else None


def _template_id(r: Any) -> str | None:
    if r.evaluation_template_id:
        return r.evaluation_template_id  # type: ignore[no-any-return]
    ev = r.evaluation
    if ev is None:
        return None
    if ev.evaluation_template_id:
        return ev.evaluation_template_id  # type: ignore[no-any-return]
    return ev.evaluation_template.id if ev.evaluation_template is not None else None


def _evaluation_columns(rs: list[Any]) -> list[list[Any]]:
    return [
        [r.id for r in rs],
        [r.evaluation_id or (r.evaluation.id if r.evaluation else None) for r in rs],
        [_template_name(r) for r in rs],
        [_template_id(r) for r in rs],
        [r.evaluation.is_critical if r.evaluation else None for r in rs],
        [r.success for r in rs],
        [r.result for r in rs],
        [r.details for r in rs],
        [r.type for r in rs],
        [r.created_at for r in rs],
        [r.seconds_from_start for r in rs],
        [r.duration for r in rs],
    ]


def _span_columns(bs: list[Any]) -> list[list[Any]]:
    return [[b.id for b in bs], [b.seconds_from_start for b in bs], [b.duration for b in bs]]


def _interruption_columns(bs: list[Any]) -> list[list[Any]]:
    return [*_span_columns(bs), [b.text for b in bs]]


def _error_columns(es: list[Any]) -> list[list[Any]]:
    return [
        [e.id for e in es],
        [e.type for e in es],
        [e.description for e in es],
        [e.seconds_from_start for e in es],
        [e.duration for e in es],
    ]


_CHILD_COLUMNS: tuple[Callable[[list[Any]], Sequence[list[Any] | _Epochs]], ...] = (
    _message_columns,
    _evaluation_columns,
    _span_columns,
    _interruption_columns,
    _error_columns,
)
