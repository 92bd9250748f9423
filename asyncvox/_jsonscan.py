"""A JSON scanner that needs no recursion: validate one value and split it one level deep.

msgspec recurses once per level of nesting and raises :class:`RecursionError` near
Python's recursion limit (about 1,000 levels), even when only skipping a value it does
not need. This scanner is the fallback for exactly those bodies: it walks the tokens with
an explicit stack, so any depth costs only memory, and reports where each member of the
outer object (or element of the outer array) starts and ends, so that the caller can hand
each part back to msgspec and give up only on the part that is itself too deep.

It runs at Python speed (a few MB/s), so it is used only after msgspec has failed.
"""

from __future__ import annotations

import functools
import json
import re
from typing import NamedTuple

#: One token after optional whitespace; the group that matched says which kind. The
#: string pattern is RFC 8259's (no raw control characters, only the defined escapes);
#: any ``\\uXXXX`` is accepted, lone surrogates included, as the grammar allows.
_TOKEN = (
    rb"[ \t\n\r]*(?:"
    rb'("[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*")'
    rb"|(\{)|(\[)|(\})|(\])|(:)|(,)"
    rb"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)"
    rb")"
)
_TRAILING_SPACE = re.compile(rb"[ \t\n\r]*")

# The token kinds, by the number of the group that matched.
_STRING, _OPEN_OBJECT, _OPEN_ARRAY, _CLOSE_OBJECT, _CLOSE_ARRAY, _COLON, _COMMA, _SCALAR = range(1, 9)
# What the next token may be.
_VALUE = 0  # a value (the start, after ':', after ',' in an array)
_VALUE_OR_CLOSE = 1  # a value or ']' (right after '[')
_KEY = 2  # a key (after ',' in an object)
_KEY_OR_CLOSE = 3  # a key or '}' (right after '{')
_COLON_NEXT = 4  # ':' after a key
_COMMA_OR_CLOSE = 5  # ',' or the closing bracket, after a value inside a container
_DONE = 6  # the outer value is complete: nothing but whitespace may follow
_OBJECT_MAY_CLOSE = (_KEY_OR_CLOSE, _COMMA_OR_CLOSE)
_ARRAY_MAY_CLOSE = (_VALUE_OR_CLOSE, _COMMA_OR_CLOSE)
_CONTAINERS = {_OPEN_OBJECT: "object", _OPEN_ARRAY: "array"}


class Part(NamedTuple):
    """One member of the outer object (``key`` set) or element of the outer array."""

    #: The member's key, decoded; ``None`` for an array element.
    key: str | None
    #: Where the value starts and ends in the scanned buffer (no whitespace around it).
    start: int
    end: int


class Split(NamedTuple):
    """A validated JSON value: what kind it is and, for a container, its parts."""

    #: ``"object"``, ``"array"``, ``"string"``, ``"number"``, ``"boolean"`` or ``"null"``.
    kind: str
    parts: list[Part]


def split(buf: bytes | memoryview) -> Split | None:
    """Validate that ``buf`` holds exactly one JSON value and split it one level deep.

    Returns ``None`` when it is not JSON. UTF-8 is not checked here (the caller does,
    once for the whole body).
    """
    in_object: list[bool] = []  # the open containers, innermost last
    parts: list[Part] = []
    state = _VALUE
    kind = ""
    key: str | None = None  # the key of the outer object's current member
    start = 0  # where the outer container's current member began
    pos = 0
    for token in _tokens().finditer(buf):
        if token.start() != pos:  # something that is no token was skipped
            return None
        pos = token.end()
        what = token.lastindex or 0  # always set: every alternative is a group
        if state <= _VALUE_OR_CLOSE and (what <= _OPEN_ARRAY or what == _SCALAR):  # a value
            depth = len(in_object)
            if what in (_STRING, _SCALAR):
                if depth == 1:
                    parts.append(Part(key, token.start(what), pos))
                elif depth == 0:
                    kind = "string" if what == _STRING else _scalar_kind(token.group(what))
                state = _COMMA_OR_CLOSE if depth else _DONE
            else:
                if depth == 1:
                    start = token.start(what)
                elif depth == 0:
                    kind = _CONTAINERS[what]
                in_object.append(what == _OPEN_OBJECT)
                state = _KEY_OR_CLOSE if what == _OPEN_OBJECT else _VALUE_OR_CLOSE
        elif state == _COMMA_OR_CLOSE and what == _COMMA:
            state = _KEY if in_object[-1] else _VALUE
        elif (what == _CLOSE_OBJECT and state in _OBJECT_MAY_CLOSE and in_object[-1]) or (
            what == _CLOSE_ARRAY and state in _ARRAY_MAY_CLOSE and not in_object[-1]
        ):
            in_object.pop()
            depth = len(in_object)
            if depth == 1:  # a member of the outer container just closed
                parts.append(Part(key, start, pos))
            state = _COMMA_OR_CLOSE if depth else _DONE
        elif what == _STRING and state in (_KEY, _KEY_OR_CLOSE):
            if len(in_object) == 1:
                key = _key(token.group(what))
            state = _COLON_NEXT
        elif what == _COLON and state == _COLON_NEXT:
            state = _VALUE
        else:
            return None
    rest = _TRAILING_SPACE.match(buf, pos)
    if state != _DONE or rest is None or rest.end() != len(buf):
        return None
    return Split(kind, parts)


@functools.cache
def _tokens() -> re.Pattern[bytes]:
    return re.compile(_TOKEN)  # on first use: the scanner is rarely needed


def _scalar_kind(text: bytes) -> str:
    if text in (b"true", b"false"):
        return "boolean"
    return "null" if text == b"null" else "number"


def _key(token: bytes) -> str:
    if b"\\" not in token:
        return token[1:-1].decode("utf-8", "replace")
    # json (unlike msgspec) decodes any escape, a lone surrogate included; such a key
    # matches no field and is ignored, as an unknown key is. Bytes that are not UTF-8 are
    # replaced, as above: UTF-8 is the caller's check (json.loads would raise
    # UnicodeDecodeError, which must not leave the decode path), and msgspec too skips an
    # envelope's unknown key without checking it.
    decoded: str = json.loads(token.decode("utf-8", "replace"))
    return decoded
