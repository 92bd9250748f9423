"""Turning response bodies into calls: decoders built once, a strict fast path, and a
lenient path that repairs drift instead of failing.

The fast path decodes the envelope with the call kept as :class:`msgspec.Raw` (so the
server's own bytes for the call survive untouched), then decodes those bytes into a
:class:`~asyncvox.models.Call`. The models already accept the drift we know of (unknown
enum values, extra fields, ``null`` anywhere, ``3.0`` for ``3``), so real traffic stays
on the fast path. Anything else that is well-formed JSON goes to :mod:`._repair`, which
fixes or drops just the offending values in one linear pass; the raw bytes keep the
original. Whatever goes wrong, only :class:`DecodeError` leaves this module.
"""

from __future__ import annotations

import codecs
from typing import Any, NamedTuple

import msgspec

from ._jsonscan import split
from ._repair import decode_leniently, has_lone_surrogate, is_utf8, without_lone_surrogates
from .errors import DecodeError
from .models import Call

#: The call object's bytes inside a body (a zero-copy view or ``msgspec.Raw``).
CallBytes = memoryview | msgspec.Raw


class _RawEnvelope(msgspec.Struct, gc=False):
    """The 200 envelope with the call left undecoded: ``{"success", "call", "url"}``."""

    success: Any = None
    #: ``Raw`` takes any JSON value: empty when the key is absent.
    call: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    url: Any = None


class _RawParts(msgspec.Struct, gc=False):
    """The envelope with every part left undecoded: for one whose ``success`` or ``url``
    the envelope decoder refused (a number out of range, ``1e400``)."""

    success: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    call: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    url: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _Envelope(NamedTuple):
    """The parts of an envelope that :func:`split_body` needs, however it was split."""

    success: Any
    #: The call's exact bytes; empty when the key is absent.
    call: CallBytes
    url: Any


_raw_envelope_decoder = msgspec.json.Decoder(_RawEnvelope)
_raw_parts_decoder = msgspec.json.Decoder(_RawParts)
_call_decoder = msgspec.json.Decoder(Call)
_any_decoder = msgspec.json.Decoder()

#: The server's canonical envelope (Express ``res.json({success, call, url})``).
_CANONICAL_HEAD = b'{"success":true,"call":'
_CANONICAL_URL = b',"url":"'
_HEAD_LEN = len(_CANONICAL_HEAD)
_URL_LEN = len(_CANONICAL_URL)
_OPEN, _CLOSE = ord("{"), ord("}")


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
    ``{"success":true,"call":{`` and ends with ``},"url":"<no quote, no escape>"}``, that
    url is the top-level key (inside the call it would be followed by at least the
    envelope's closing brace), so everything between is exactly the call object, which
    :func:`decode_call` then validates. Any other shape (whitespace around the call
    included) is split by msgspec (``Raw``), or, where msgspec cannot (nesting too deep,
    a lone surrogate escape), by the non-recursive scanner of :mod:`._jsonscan`.
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
            if body[_HEAD_LEN] == _OPEN and body[cut - 1] == _CLOSE:
                try:
                    link = body[tail:end].decode()
                except UnicodeDecodeError:
                    pass
                else:
                    return CallSlice(body, memoryview(body)[_HEAD_LEN:cut], link)
    if body.startswith(codecs.BOM_UTF8):
        # A UTF-8 byte order mark (added by some proxies and frameworks) is not part of the
        # JSON, which RFC 8259 lets a parser ignore, and msgspec refuses it. A body that
        # is not an envelope keeps every byte as received, the mark included.
        try:
            return split_body(body[len(codecs.BOM_UTF8) :], call_id)
        except DecodeError as exc:
            raise DecodeError(exc.reason, raw=body, call_id=call_id) from None
    env = _split_parsed(body, call_id)
    url = env.url if isinstance(env.url, str) else None
    size = len(env.call)
    if size == 0:
        if env.success is False:
            return None
        raise DecodeError("response has no `call` object", raw=body, call_id=call_id)
    if size == 4 and bytes(env.call) == b"null":
        return None
    return CallSlice(body, env.call, url)


def _split_parsed(body: bytes, call_id: str | None) -> _Envelope:
    """Split an envelope by parsing it: msgspec, or the scanner where msgspec cannot go."""
    try:
        env = _raw_envelope_decoder.decode(body)
    except msgspec.ValidationError as exc:
        # Not an object, or a ``success`` / ``url`` no Python value holds (``1e400``):
        # valid JSON, which must not hide the call; such a part reads as ``None``.
        try:
            parts = _raw_parts_decoder.decode(body)
        except msgspec.ValidationError:
            raise DecodeError(f"response is not a call envelope: {exc}", raw=body, call_id=call_id) from None
        except (msgspec.DecodeError, RecursionError) as later:
            return _split_unparsable(body, call_id, later)
        return _Envelope(_small_value(parts.success), parts.call, _small_value(parts.url))
    except (msgspec.DecodeError, RecursionError) as exc:
        return _split_unparsable(body, call_id, exc)
    return _Envelope(env.success, env.call, env.url)


def _split_unparsable(body: bytes, call_id: str | None, exc: Exception) -> _Envelope:
    """An envelope msgspec could not parse: split by the scanner, or a :class:`DecodeError`."""
    # Too deep for msgspec, or a lone surrogate escape (which msgspec refuses even in
    # a value it skips): valid JSON all the same, so find the call without msgspec.
    if isinstance(exc, msgspec.DecodeError) and not has_lone_surrogate(body):
        raise DecodeError(f"response is not a call envelope: {exc}", raw=body, call_id=call_id) from None
    scanned = _split_scanned(body)
    if scanned is None:
        reason = exc if isinstance(exc, msgspec.DecodeError) else "not valid JSON"
        raise DecodeError(f"response is not a call envelope: {reason}", raw=body, call_id=call_id) from None
    return scanned


def _split_scanned(body: bytes) -> _Envelope | None:
    view = memoryview(body)
    found = split(view)
    if found is None or found.kind != "object":
        return None
    success: Any = None
    call: CallBytes = view[0:0]
    url: Any = None
    for part in found.parts:  # in order: a repeated key's last value wins, as in msgspec
        value = view[part.start : part.end]
        if part.key == "call":
            call = value
        elif part.key == "success":
            success = _small_value(value)
        elif part.key == "url":
            url = _small_value(value)
    return _Envelope(success, call, url)


def _small_value(buf: CallBytes) -> Any:
    """An envelope's ``success`` or ``url``: its value, or ``None`` if it cannot be decoded."""
    try:
        return _any_decoder.decode(without_lone_surrogates(buf))
    except (msgspec.DecodeError, RecursionError):
        return None


def decode_found(found: CallSlice, call_id: str | None) -> Call:
    """Decode a call that :func:`split_body` found.

    A canonical slice that is not one JSON value (an unexpected key between ``call`` and
    ``url``) is split again by parsing, and ``found.call`` narrowed to the exact value.
    A failure raises :class:`DecodeError` keeping the whole body.
    """
    body, raw = found.body, found.call
    try:
        return _decode(raw, call_id, body)
    except DecodeError as exc:
        error = exc
    if isinstance(raw, memoryview):
        again = _split_parsed(body, call_id).call
        if len(again) and bytes(again) != bytes(raw):
            try:
                call = _decode(again, call_id, body)
            except DecodeError as exc:
                error = exc
            else:
                found.call = again
                return call
    raise DecodeError(
        f"the response's call is not decodable: {error.reason}", raw=body, call_id=call_id
    ) from None


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

    Raises :class:`DecodeError` (keeping ``raw``) only when the bytes are not UTF-8 JSON
    or not a JSON object.
    """
    return _decode(raw, call_id, None)


def _decode(raw: bytes | CallBytes, call_id: str | None, body: bytes | None) -> Call:
    """:func:`decode_call`; ``body`` is the whole response when ``raw`` is a part of it."""
    try:
        call: Call = _call_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return decode_leniently(raw, call_id)
    # msgspec checks the UTF-8 of what it decodes, not of an unknown field it skips; the
    # raw bytes are handed out as JSON, so they must be UTF-8 throughout. Checked after
    # the decode, while the bytes are still in the CPU cache (before it, the same check
    # costs about three times as much); an ASCII body, the usual case, is checked fastest.
    if not (body is not None and body.isascii()) and not is_utf8(raw):
        raise DecodeError("call is not valid UTF-8", raw=bytes(raw), call_id=call_id)
    return call
