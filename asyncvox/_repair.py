"""The lenient path: decode a call the strict decoder refused, repairing only what is wrong.

A call is repaired by walking its JSON against the models' structure, derived once from
the Structs themselves: each member of an object is decoded on its own (msgspec, on the
member's bytes), and only a member that fails is looked at more closely -- a list of
objects element by element, an object field by field, down to the one value that cannot
be held, which becomes ``None`` (a naive timestamp becomes UTC). An element of a list of
objects that is not an object is dropped. Every value is decoded a bounded number of
times, so the work is linear in the size of the call, however much of it has drifted.

What cannot be decoded by msgspec at all is handled here too:

* a value nested deeper than msgspec can go (``RecursionError``) is split by the
  non-recursive scanner in :mod:`._jsonscan`; only the too-deep value itself is lost
  (``None``), the raw bytes keep it;
* a lone UTF-16 surrogate escape (``"\\ud83d"``, what JavaScript's ``JSON.stringify``
  writes for a string cut inside an emoji) is read as U+FFFD;
* bytes that are not UTF-8 make the call a :class:`~asyncvox.errors.DecodeError` (JSON
  is UTF-8; raw bytes that are not could not be handed out as JSON).
"""

from __future__ import annotations

import functools
import logging
import re
import types
import typing
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from ._jsonscan import split
from .errors import DecodeError
from .models import Call

logger = logging.getLogger("asyncvox")

#: Anything msgspec decodes from: bytes, a slice of them, or a ``msgspec.Raw``.
Buffer = bytes | memoryview | msgspec.Raw

_members_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_elements_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_any_decoder = msgspec.json.Decoder()
_str_decoder = msgspec.json.Decoder(str)

#: An escaped backslash (skipped whole, so that ``\\\\ud83d`` is not read as an escape),
#: a high surrogate with or without its low half, or a low surrogate alone.
_SURROGATE_ESCAPE = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}(?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?|\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_LONE_LEN = len(b"\\ud83d")
_REPLACEMENT = b"\\ufffd"  # as long as the escape it replaces: offsets do not move


class _Repairs:
    """The fields the walk repaired, for one debug line (a set: bounded by the models)."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: set[str] = set()

    def add(self, label: str) -> None:
        self.fields.add(label)


#: Repairs a value its field's decoder refused: returns what the typed view holds instead.
_Repair = Callable[[Buffer, _Repairs], Any]


class _Field(NamedTuple):
    """How to decode one field of a model, and what to do when that fails."""

    name: str
    label: str
    decoder: msgspec.json.Decoder[Any]
    repair: _Repair


class _Model(NamedTuple):
    """A Struct, a lenient decoder for it, and its fields by wire name."""

    cls: type[msgspec.Struct]
    decoder: msgspec.json.Decoder[Any]
    fields: dict[str, _Field]


def decode_leniently(raw: Buffer, call_id: str | None) -> Call:
    """Decode a call's JSON the strict decoder refused, repairing what does not fit.

    Raises :class:`DecodeError` (keeping ``raw``) only when the bytes are not UTF-8 JSON
    or not a JSON object.
    """
    if not is_utf8(raw):
        raise DecodeError("call is not valid UTF-8", raw=bytes(raw), call_id=call_id)
    buf = without_lone_surrogates(raw)
    try:
        # Coercion alone (``"12.5"`` for a number) is the common drift: one C pass.
        call: Call = _call_model().decoder.decode(buf)
        return call
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        members: Iterable[tuple[str, Buffer]] = _members_decoder.decode(buf).items()
    except msgspec.ValidationError as exc:
        raise DecodeError(f"call is not a JSON object: {exc}", raw=bytes(raw), call_id=call_id) from None
    except msgspec.DecodeError as exc:
        raise DecodeError(f"call is not valid JSON: {exc}", raw=bytes(raw), call_id=call_id) from None
    except RecursionError:
        view = memoryview(buf)
        found = split(view)
        if found is None:
            raise DecodeError("call is not valid JSON", raw=bytes(raw), call_id=call_id) from None
        if found.kind != "object":
            raise DecodeError(
                f"call is a JSON {found.kind}, not an object", raw=bytes(raw), call_id=call_id
            ) from None
        members = [(p.key or "", view[p.start : p.end]) for p in found.parts]
    repairs = _Repairs()
    repaired = _build(_call_model(), members, repairs)
    assert isinstance(repaired, Call)
    if repairs.fields:
        logger.debug("call_id=%r decoded leniently; repaired %s", call_id, sorted(repairs.fields))
    return repaired


def is_utf8(data: Buffer) -> bool:
    """Whether ``data`` is valid UTF-8 (an ASCII check first: much the cheaper)."""
    if isinstance(data, bytes) and data.isascii():
        return True
    try:
        str(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def has_lone_surrogate(data: Buffer) -> bool:
    """Whether ``data`` holds a ``\\uXXXX`` escape of half a UTF-16 surrogate pair."""
    return any(len(m.group()) == _LONE_LEN for m in _SURROGATE_ESCAPE.finditer(data))


def without_lone_surrogates(data: Buffer) -> Buffer:
    """``data`` with each lone surrogate escape written as ``\\ufffd`` (same length).

    Returns ``data`` itself when there is none.
    """
    if not has_lone_surrogate(data):
        return data
    return _SURROGATE_ESCAPE.sub(_replace_lone, data)


def _replace_lone(match: re.Match[bytes]) -> bytes:
    text = match.group()
    return _REPLACEMENT if len(text) == _LONE_LEN else text


# -- the walk -------------------------------------------------------------------------


def _build(model: _Model, members: Iterable[tuple[str, Buffer]], repairs: _Repairs) -> msgspec.Struct:
    values: dict[str, Any] = {}
    fields = model.fields
    for key, value in members:
        field = fields.get(key)
        if field is None:
            continue  # unknown: ignored by the typed view, kept in the raw bytes
        try:
            values[field.name] = field.decoder.decode(value)
        except (msgspec.DecodeError, RecursionError):
            values[field.name] = field.repair(value, repairs)
            repairs.add(field.label)
    return model.cls(**values)


def _members(buf: Buffer) -> Iterable[tuple[str, Buffer]] | None:
    """An object's members, or ``None`` when ``buf`` is not an object."""
    try:
        return _members_decoder.decode(buf).items()
    except msgspec.DecodeError:
        return None
    except RecursionError:
        view = memoryview(buf)
        found = split(view)
        if found is None or found.kind != "object":
            return None
        return [(p.key or "", view[p.start : p.end]) for p in found.parts]


def _elements(buf: Buffer) -> list[Buffer] | None:
    """An array's elements, or ``None`` when ``buf`` is not an array."""
    try:
        return list(_elements_decoder.decode(buf))
    except msgspec.DecodeError:
        return None
    except RecursionError:
        view = memoryview(buf)
        found = split(view)
        if found is None or found.kind != "array":
            return None
        return [view[p.start : p.end] for p in found.parts]


def _none(buf: Buffer, repairs: _Repairs) -> None:
    """A value of the wrong type (or too deep to decode): the typed view holds ``None``."""


def _aware_datetime(buf: Buffer, repairs: _Repairs) -> datetime | None:
    """A naive ISO-8601 timestamp becomes UTC; anything else becomes ``None``."""
    try:
        text = _str_decoder.decode(buf)
        parsed = datetime.fromisoformat(text)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _struct_repair(model: _Model) -> _Repair:
    def repair(buf: Buffer, repairs: _Repairs) -> msgspec.Struct | None:
        members = _members(buf)
        return None if members is None else _build(model, members, repairs)

    return repair


def _struct_list_repair(model: _Model) -> _Repair:
    def repair(buf: Buffer, repairs: _Repairs) -> list[msgspec.Struct] | None:
        elements = _elements(buf)
        if elements is None:
            return None
        kept: list[msgspec.Struct] = []
        for element in elements:
            try:
                kept.append(model.decoder.decode(element))
                continue
            except (msgspec.DecodeError, RecursionError):
                pass
            members = _members(element)
            if members is None:
                repairs.add(f"{model.cls.__name__} (not an object, dropped)")
            else:
                kept.append(_build(model, members, repairs))
        return kept

    return repair


def _any_list_repair(buf: Buffer, repairs: _Repairs) -> list[Any] | None:
    """A list of arbitrary JSON: an element too deep to decode becomes ``None``."""
    elements = _elements(buf)
    if elements is None:
        return None
    kept: list[Any] = []
    for element in elements:
        try:
            kept.append(_any_decoder.decode(element))
        except (msgspec.DecodeError, RecursionError):
            kept.append(None)
    return kept


def _dict_repair(value_type: Any) -> _Repair:
    decoder = msgspec.json.Decoder(value_type, strict=False)

    def repair(buf: Buffer, repairs: _Repairs) -> dict[str, Any] | None:
        members = _members(buf)
        if members is None:
            return None
        kept: dict[str, Any] = {}
        for key, value in members:
            try:
                kept[key] = decoder.decode(value)
            except (msgspec.DecodeError, RecursionError):
                kept[key] = None
        return kept

    return repair


# -- the plan, derived from the models ------------------------------------------------


def _repair_for(annotation: Any) -> _Repair:
    """How to repair a value of this (field) type once its decoder has refused it."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) != 1:
            return _none  # e.g. ``int | float``: a scalar of the wrong type
        annotation = options[0]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
        origin = typing.get_origin(annotation)
    if annotation is datetime:
        return _aware_datetime
    if _is_struct(annotation):
        return _struct_repair(_model(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation)
        if _is_struct(item):
            return _struct_list_repair(_model(item))
        return _any_list_repair
    if origin is dict:
        return _dict_repair(typing.get_args(annotation)[1])
    return _none


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _model(cls: type[msgspec.Struct]) -> _Model:
    fields = {
        f.encode_name: _Field(
            f.name,
            f"{cls.__name__}.{f.name}",
            msgspec.json.Decoder(f.type, strict=False),
            _repair_for(f.type),
        )
        for f in msgspec.structs.fields(cls)
    }
    return _Model(cls, msgspec.json.Decoder(cls, strict=False), fields)


@functools.cache
def _call_model() -> _Model:
    """The plan for :class:`Call`, built on the first lenient decode (not at import)."""
    return _model(Call)
