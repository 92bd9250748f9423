"""Turning response bodies into calls: decoders built once, a strict fast path, and a
lenient path that repairs drift instead of failing.

The fast path decodes the envelope with the call kept as :class:`msgspec.Raw` (so the
server's own bytes for the call survive untouched), then decodes those bytes into a
:class:`~asyncvox.models.Call`. The models already accept the drift we know of (unknown
enum values, extra fields, ``null`` anywhere, ``3.0`` for ``3``), so real traffic stays
on the fast path. Anything else that is well-formed JSON goes through :func:`_repair`,
which fixes or drops just the offending value; the raw bytes keep the original.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from .errors import DecodeError
from .models import Call

logger = logging.getLogger("asyncvox")


class _RawEnvelope(msgspec.Struct, gc=False):
    """The 200 envelope with the call left undecoded: ``{"success", "call", "url"}``."""

    success: Any = None
    #: ``Raw`` takes any JSON value: empty when the key is absent.
    call: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    url: Any = None


_raw_envelope_decoder = msgspec.json.Decoder(_RawEnvelope)
_call_decoder = msgspec.json.Decoder(Call)
_any_decoder = msgspec.json.Decoder()

#: The server's canonical envelope (Express ``res.json({success, call, url})``).
_CANONICAL_HEAD = b'{"success":true,"call":'
_CANONICAL_URL = b',"url":"'
_HEAD_LEN = len(_CANONICAL_HEAD)
_URL_LEN = len(_CANONICAL_URL)

#: A well-formed call needs few repairs; this bounds the work on a pathological one (each
#: repair is one more pass over the call), scaled so that drift in every element of a
#: long list (one bad field per message, say) still decodes.
_MAX_REPAIRS = 256
_BYTES_PER_REPAIR = 16
_PATH_RE = re.compile(r" - at `\$(.*)`$")
_STEP_RE = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")

#: The call object's bytes inside a body (a zero-copy view or ``msgspec.Raw``).
CallBytes = memoryview | msgspec.Raw


class CallSlice(msgspec.Struct, gc=False):
    """Where the call is inside a 200 body, found without decoding it.

    Attributes:
        body: the whole response body (kept so that a failure can keep every byte).
        call: the call object's bytes inside ``body``; :func:`decode_found` narrows it to
            the exact value if the quick split was not exact.
        dashboard_url: the envelope's ``url`` (the call's dashboard link), if any.
    """

    body: bytes
    call: CallBytes
    dashboard_url: str | None = None


class DecodedBody(NamedTuple):
    """A whole 200 body decoded at once (:func:`decode_body`)."""

    call: Call | None
    raw: bytes | None
    dashboard_url: str | None


def split_body(body: bytes, call_id: str | None) -> CallSlice | None:
    """Find the call inside a 200 body, without decoding it.

    ``None`` means not found (``"call": null``, or ``success: false`` with no call).
    Raises :class:`DecodeError` (keeping ``body``) when the body is not a call envelope.

    The server's canonical shape is recognised without parsing: if the body starts with
    ``{"success":true,"call":`` and ends with ``,"url":"<no quote, no escape>"}``, that
    url is the top-level key (inside the call it would be followed by at least the
    envelope's closing brace), so everything between is exactly the call value, which
    :func:`decode_call` then validates. Any other shape is split by msgspec (``Raw``).
    Decoding is left to the caller so that, in bulk, it happens in the consumer's task
    right before the call is used: a freshly decoded call is cheap to use and to free,
    one that waits in a queue is not (measured: ~90 us per 25 KB call).
    """
    if body.startswith(_CANONICAL_HEAD) and body.endswith(b'"}'):
        cut = body.rfind(_CANONICAL_URL)
        tail = cut + _URL_LEN
        end = len(body) - 2
        if cut > 0 and body.find(b'"', tail, end) < 0 and body.find(b"\\", tail, end) < 0:
            if cut - _HEAD_LEN == 4 and body[_HEAD_LEN:cut] == b"null":
                return None
            try:
                link = body[tail:end].decode()
            except UnicodeDecodeError:
                pass
            else:
                return CallSlice(body, memoryview(body)[_HEAD_LEN:cut], link)
    try:
        env = _raw_envelope_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(f"response is not a call envelope: {exc}", raw=body, call_id=call_id) from None
    url = env.url if isinstance(env.url, str) else None
    raw = env.call
    size = len(raw)
    if size == 0:
        if env.success is False:
            return None
        raise DecodeError("response has no `call` object", raw=body, call_id=call_id)
    if size == 4 and bytes(raw) == b"null":
        return None
    return CallSlice(body, raw, url)


def decode_found(found: CallSlice, call_id: str | None) -> Call:
    """Decode a call that :func:`split_body` found.

    A canonical slice that is not one JSON value (an unexpected key between ``call`` and
    ``url``) is split again by msgspec, and ``found.call`` narrowed to the exact value.
    A failure raises :class:`DecodeError` keeping the whole body.
    """
    raw = found.call
    try:
        return decode_call(raw, call_id)
    except DecodeError as exc:
        if isinstance(raw, memoryview):
            env = _split_parsed(found.body, call_id)
            if env is not None:
                found.call = env
                return decode_found(found, call_id)
        raise DecodeError(
            f"the response's call is not decodable: {exc.reason}", raw=found.body, call_id=call_id
        ) from None


def _split_parsed(body: bytes, call_id: str | None) -> msgspec.Raw | None:
    try:
        raw = _raw_envelope_decoder.decode(body).call
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(f"response is not a call envelope: {exc}", raw=body, call_id=call_id) from None
    return raw if len(raw) else None


def decode_body(body: bytes, call_id: str | None) -> DecodedBody:
    """Decode a whole 200 body at once (a convenience for tools and tests; the request
    path splits and decodes in two steps, see :func:`split_body`).

    Raises :class:`DecodeError` (keeping ``body``) when it is not a call envelope or its
    call is not a JSON object.
    """
    found = split_body(body, call_id)
    if found is None:
        return DecodedBody(None, None, None)
    call = decode_found(found, call_id)
    return DecodedBody(call, bytes(found.call), found.dashboard_url)


def decode_call(raw: bytes | CallBytes, call_id: str | None = None) -> Call:
    """Decode one call object's JSON into a :class:`Call`, tolerating drift.

    Raises :class:`DecodeError` (keeping ``raw``) only when the bytes are not JSON or not
    a JSON object.
    """
    try:
        return _call_decoder.decode(raw)
    except msgspec.ValidationError:
        return _decode_lenient(raw, call_id)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"call is not valid JSON: {exc}", raw=bytes(raw), call_id=call_id) from None


def _decode_lenient(raw: bytes | CallBytes, call_id: str | None) -> Call:
    try:
        obj = _any_decoder.decode(raw)
    except msgspec.DecodeError as exc:  # pragma: no cover - the strict decoder saw valid JSON
        raise DecodeError(f"call is not valid JSON: {exc}", raw=bytes(raw), call_id=call_id) from None
    if not isinstance(obj, dict):
        raise DecodeError(
            f"call is a JSON {type(obj).__name__}, not an object", raw=bytes(raw), call_id=call_id
        )
    repaired: list[str] = []
    last_path: tuple[str | int, ...] | None = None
    for _ in range(max(_MAX_REPAIRS, len(raw) // _BYTES_PER_REPAIR)):
        try:
            call = msgspec.convert(obj, Call, strict=False)
        except msgspec.ValidationError as exc:
            path = _error_path(str(exc))
            if path is None or not path:
                break
            if path == last_path:
                # Setting the value to None did not help (e.g. a list of objects cannot
                # hold null): drop the value one level up instead.
                path = path[:-1]
                if not path:
                    break
            deleted = _repair(obj, path)
            # Deleting a list element always makes progress: the next error may sit at
            # the same index (the next element) without meaning the repair failed.
            last_path = None if deleted else path
            repaired.append(_format_path(path))
        else:
            if repaired:
                logger.debug("call_id=%r decoded leniently; repaired %s", call_id, repaired)
            return call
    raise DecodeError("call could not be decoded even leniently", raw=bytes(raw), call_id=call_id)


def _error_path(message: str) -> tuple[str | int, ...] | None:
    match = _PATH_RE.search(message)
    if match is None:
        return None
    steps: list[str | int] = []
    for name, index in _STEP_RE.findall(match.group(1)):
        if name:
            steps.append(name)
        elif index == "...":
            break  # a dict key msgspec does not name: repair the dict itself
        else:
            steps.append(int(index))
    return tuple(steps)


def _format_path(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _repair(obj: Any, path: tuple[str | int, ...]) -> bool:
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    if isinstance(parent, list):
        assert isinstance(key, int)
        del parent[key]
        return True
    value = parent.get(key) if isinstance(parent, dict) else None
    parent[key] = _as_aware_datetime(value)
    return False


def _as_aware_datetime(value: Any) -> datetime | None:
    """A naive ISO-8601 timestamp becomes UTC; anything else that failed becomes ``None``."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
