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
from typing import Any

import msgspec

from .errors import DecodeError
from .models import Call

logger = logging.getLogger("asyncvox")


class _Envelope(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    """The 200 body, decoded in one pass: ``{"success": ..., "call": {...}, "url": ...}``.

    Unknown top-level keys are refused so that such a body takes the slow path: the
    canonical byte slice below is only exact for exactly these three keys.
    """

    success: Any = None
    call: Call | msgspec.UnsetType | None = msgspec.UNSET
    url: Any = None


class _RawEnvelope(msgspec.Struct, gc=False):
    """The same envelope with the call left undecoded, to recover its exact bytes."""

    success: Any = None
    #: ``Raw`` takes any JSON value: empty when the key is absent.
    call: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    url: Any = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_raw_envelope_decoder = msgspec.json.Decoder(_RawEnvelope)
_call_decoder = msgspec.json.Decoder(Call)
_any_decoder = msgspec.json.Decoder()

#: The server's canonical envelope (Express ``res.json({success, call, url})``).
_CANONICAL_HEAD = b'{"success":true,"call":'
_CANONICAL_URL = b',"url":"'

#: A well-formed call needs very few repairs; this bounds the work on a pathological one.
_MAX_REPAIRS = 256
_PATH_RE = re.compile(r" - at `\$(.*)`$")
_STEP_RE = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def decode_body(body: bytes, call_id: str | None) -> tuple[Call | None, bytes | None, str | None]:
    """Decode a 200 body into (call or ``None`` for not found, the call's raw bytes, url).

    Raises :class:`DecodeError` (keeping ``body``) when it is not a call envelope.
    """
    try:
        env = _envelope_decoder.decode(body)
    except msgspec.ValidationError:
        return _decode_body_slow(body, call_id)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"response is not JSON: {exc}", raw=body, call_id=call_id) from None
    call = env.call
    url = env.url if isinstance(env.url, str) else None
    if call is None:
        return None, None, url
    if call is msgspec.UNSET:
        if env.success is False:
            return None, None, url
        raise DecodeError("response has no `call` object", raw=body, call_id=call_id)
    raw = _canonical_call_bytes(body)
    if raw is None:
        raw = bytes(_raw_envelope_decoder.decode(body).call)
    return call, raw, url


def _canonical_call_bytes(body: bytes) -> bytes | None:
    """The call's bytes sliced straight out of a canonical envelope, or ``None``.

    Only called on a body that already decoded as an envelope. If it starts with the
    canonical head and ends with ``,"url":"<no quotes>"}``, that url is the top-level
    key (inside the call it would be followed by at least the envelope's closing brace),
    so everything between is exactly the call value. Any other shape takes the
    ``msgspec.Raw`` path, which scans the body a second time.
    """
    if not body.startswith(_CANONICAL_HEAD) or not body.endswith(b'"}'):
        return None
    cut = body.rfind(_CANONICAL_URL)
    if cut < 0 or body.find(b'"', cut + len(_CANONICAL_URL), len(body) - 2) >= 0:
        return None
    return body[len(_CANONICAL_HEAD) : cut]


def _decode_body_slow(body: bytes, call_id: str | None) -> tuple[Call | None, bytes | None, str | None]:
    """The envelope or the call drifted beyond the models: split, then decode leniently."""
    try:
        env = _raw_envelope_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"response is not a call envelope: {exc}", raw=body, call_id=call_id) from None
    url = env.url if isinstance(env.url, str) else None
    raw = env.call
    size = len(raw)
    if size == 0:
        if env.success is False:
            return None, None, url
        raise DecodeError("response has no `call` object", raw=body, call_id=call_id)
    raw_bytes = bytes(raw)
    if raw_bytes == b"null":
        return None, None, url
    try:
        call = decode_call(raw_bytes, call_id)
    except DecodeError as exc:
        raise DecodeError(f"the response's call is not decodable: {exc}", raw=body, call_id=call_id) from None
    return call, raw_bytes, url


def decode_call(raw: bytes | msgspec.Raw, call_id: str | None = None) -> Call:
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


def _decode_lenient(raw: bytes | msgspec.Raw, call_id: str | None) -> Call:
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
    for _ in range(_MAX_REPAIRS):
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
