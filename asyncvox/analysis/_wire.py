"""The call as the tables need it: flat msgspec Structs, decoded strictly when the JSON
fits and leniently when it drifts.

These Structs are private to the analysis and independent of :mod:`asyncvox.models`: they
hold exactly what the tables keep, including the nested objects the server's own code
sends (``scenario``, ``testAgent``, ``evaluationResults[].evaluation.evaluationTemplate``)
and arbitrary JSON kept as its raw bytes (``metadata``, ``toolCalls``).

Drift never fails a call. The strict decode (C speed) takes every call whose values have
the expected JSON types; any other call goes through :func:`_clean`, which walks the
generic JSON once and keeps each value only if its type fits (a wrong-typed value becomes
``None``, a list element that is not an object is dropped and its position skipped). A
value valid for a field is kept identically by both paths, so the path taken never shows.
"""

from __future__ import annotations

import json
import types
import typing
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from .._jsonscan import Split, split

__all__ = ["WireCall", "decode_wire_call"]

Number = int | float
_NUM_TYPES = (int, float)


class _Wire(msgspec.Struct, kw_only=True, rename="camel", gc=False):
    """Base: camelCase on the wire, unknown fields ignored."""


class WireTemplate(_Wire, gc=False):
    id: str | None = None
    name: str | None = None
    content_type: str | None = None


class WireEvaluation(_Wire, gc=False):
    id: str | None = None
    is_critical: bool | None = None
    enabled: bool | None = None
    evaluation_template_id: str | None = None
    evaluation_template: WireTemplate | None = None


class WireEvaluationResult(_Wire, gc=False):
    id: str | None = None
    created_at: datetime | None = None
    evaluation_id: str | None = None
    evaluation_template_id: str | None = None
    result: str | None = None
    details: str | None = None
    success: bool | None = None
    type: str | None = None
    seconds_from_start: Number | None = None
    duration: Number | None = None
    evaluation: WireEvaluation | None = None


class WireMessage(_Wire, gc=False):
    id: str | None = None
    role: str | None = None
    message: str | None = None
    name: str | None = None
    result: str | None = None
    time: Number | None = None
    end_time: Number | None = None
    seconds_from_start: Number | None = None
    duration: Number | None = None
    tool_calls: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class WireSpan(_Wire, gc=False):
    """A latency block or an interruption (``text`` is only sent for interruptions)."""

    id: str | None = None
    seconds_from_start: Number | None = None
    duration: Number | None = None
    text: str | None = None


class WireError(_Wire, gc=False):
    id: str | None = None
    type: str | None = None
    description: str | None = None
    seconds_from_start: Number | None = None
    duration: Number | None = None


class WireNamed(_Wire, gc=False):
    """A scenario or a test agent: the tables keep its id and name."""

    id: str | None = None
    name: str | None = None


class WireCall(_Wire, gc=False):
    id: str | None = None
    customer_call_id: str | None = None
    owner_id: str | None = None
    created_at: datetime | None = None
    status: str | None = None
    result: str | None = None
    failure_reason: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration: Number | None = None
    time_to_first_word: Number | None = None
    latency_p50: Number | None = None
    latency_p90: Number | None = None
    latency_p95: Number | None = None
    interruption_p50: Number | None = None
    interruption_p90: Number | None = None
    interruption_p95: Number | None = None
    num_interruptions: Number | None = None
    agent_id: str | None = None
    scenario_id: str | None = None
    test_agent_id: str | None = None
    test_id: str | None = None
    region_id: str | None = None
    vapi_call_id: str | None = None
    of_one_device_id: str | None = None
    deleted: bool | None = None
    is_read: bool | None = None
    read_by: str | None = None
    notes: str | None = None
    stereo_recording_url: str | None = None
    mono_recording_url: str | None = None
    metadata: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    eval_set_to_success: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    scenario: WireNamed | None = None
    test_agent: WireNamed | None = None
    messages: list[WireMessage] | None = None
    evaluation_results: list[WireEvaluationResult] | None = None
    latency_blocks: list[WireSpan] | None = None
    interruptions: list[WireSpan] | None = None
    errors: list[WireError] | None = None


_strict = msgspec.json.Decoder(WireCall)
_generic = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


class NotACallError(ValueError):
    """The bytes are not JSON, or not a JSON object."""


def decode_wire_call(raw: bytes | memoryview | str) -> tuple[WireCall, bool]:
    """(the call, whether it drifted). Raises :class:`NotACallError` for non-JSON / non-objects.

    A drifted call's child lists may hold ``None`` where an element was not an object.
    """
    try:
        return _strict.decode(raw), False
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        pass
    try:
        obj = _generic.decode(raw)
    except RecursionError:
        obj = _shallow(_buffer(raw))
    except msgspec.DecodeError as exc:
        # msgspec refuses a few things that are valid JSON (1e400, a lone surrogate
        # escape such as JSON.stringify writes); the standard library takes them.
        try:
            obj = json.loads(bytes(raw) if isinstance(raw, memoryview) else raw)
        except RecursionError:
            obj = _shallow(_buffer(raw))
        except ValueError:
            raise NotACallError(f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise NotACallError(f"a JSON {_json_kind(obj)}, not an object")
    return _clean(obj, WireCall), True


def _buffer(raw: bytes | memoryview | str) -> bytes | memoryview:
    return raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw


def _shallow(buf: bytes | memoryview) -> Any:
    """The JSON value in ``buf``, split without recursion where msgspec (and the standard
    library) cannot go, along the tables' own structure (a call, its lists of messages
    and results, their members): a member nested too deep is read as ``None``, as the
    client reads it (a message's ``toolCalls`` or the call's ``metadata`` null whole),
    and the call keeps every other field and element. Raises :class:`NotACallError` if
    it is not JSON."""
    found = split(buf)
    if found is None:
        raise NotACallError("not valid JSON")
    return _rebuilt(memoryview(buf), found, WireCall)


def _rebuilt(view: memoryview, found: Split, cls: type[_Wire]) -> Any:
    """The container ``found`` split from ``view`` (an object of ``cls``, or an array of
    them), each member decoded, or split again where the structure goes on."""
    kinds = {wire: (kind, nested) for _, wire, kind, nested in _plan(cls)}
    values = []
    for part in found.parts:
        piece = view[part.start : part.end]
        try:
            value = _generic.decode(piece)
        except (msgspec.DecodeError, RecursionError):
            try:
                value = json.loads(bytes(piece))
            except RecursionError:
                if found.kind == "array":
                    kind, nested = "struct", cls
                else:
                    kind, nested = kinds.get(part.key or "", ("", None))
                inner = split(piece) if kind in ("struct", "list") else None
                value = _rebuilt(piece, inner, nested) if inner is not None and inner.parts else None
            except ValueError:
                value = None
        values.append((part.key, value))
    if found.kind == "object":
        return {key or "": value for key, value in values}
    return [value for _, value in values] if found.kind == "array" else None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


S = TypeVar("S", bound=_Wire)

# Per Struct: (attribute, wire name, kind, nested Struct or None), built once.
_Kind = str
_Plan = tuple[tuple[str, str, _Kind, Any], ...]
_PLANS: dict[type, _Plan] = {}


def _plan(cls: type[_Wire]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple((f.name, f.encode_name, *_kind_of(hints[f.name])) for f in msgspec.structs.fields(cls))
        _PLANS[cls] = plan
    return plan


def _kind_of(tp: Any) -> tuple[_Kind, Any]:
    if tp is msgspec.Raw:
        return "raw", None
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, types.UnionType) and set(args) == {int, float}:
        return "number", None
    (inner,) = args
    if inner in (str, bool):
        return inner.__name__, None
    if inner is datetime:
        return "datetime", None
    if typing.get_origin(inner) is list:
        return "list", typing.get_args(inner)[0]
    return "struct", inner


def _clean(obj: dict[str, Any], cls: type[S]) -> S:
    """Build ``cls`` from generic JSON, keeping each value only if its type fits."""
    kwargs: dict[str, Any] = {}
    for attr, wire, kind, nested in _plan(cls):
        if wire not in obj:
            continue
        value = obj[wire]
        if kind == "raw":
            try:
                kwargs[attr] = msgspec.Raw(_encode(value))
            except UnicodeEncodeError:  # a lone surrogate (from json.loads): kept escaped
                kwargs[attr] = msgspec.Raw(json.dumps(value).encode())
        elif kind == "str":
            kwargs[attr] = value if isinstance(value, str) else None
        elif kind == "bool":
            kwargs[attr] = value if isinstance(value, bool) else None
        elif kind == "number":
            ok = isinstance(value, _NUM_TYPES) and not isinstance(value, bool)
            kwargs[attr] = value if ok else None
        elif kind == "datetime":
            kwargs[attr] = parse_timestamp(value) if isinstance(value, str) else None
        elif kind == "struct":
            kwargs[attr] = _clean(value, nested) if isinstance(value, dict) else None
        elif isinstance(value, list):  # a list of Structs; a non-object element is kept as None
            kwargs[attr] = [_clean(v, nested) if isinstance(v, dict) else None for v in value]
        else:
            kwargs[attr] = None
    return cls(**kwargs)


def parse_timestamp(text: str | None) -> datetime | None:
    """An ISO-8601 timestamp (naive taken as UTC), or ``None`` when absent or not ISO-8601."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
