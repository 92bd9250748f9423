"""Where calls come from: a JSONL file (line by line, numbered) or objects in memory."""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import msgspec

from ..models import Call
from ..outcomes import FetchOutcome
from ._tables import BadLine

__all__ = ["CallSource", "Item", "iter_items", "iter_jsonl"]

#: What :func:`asyncvox.analysis.to_tables` accepts, one call each.
CallSource = Call | FetchOutcome | bytes | bytearray | memoryview | str | dict[str, Any]

_encode = msgspec.json.Encoder().encode


class Item(NamedTuple):
    """One call's JSON, its 1-based number in the input, and the id it was fetched by."""

    number: int
    raw: bytes | memoryview | str
    call_id: str | None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for every non-blank line, read as a stream (never the whole file)."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if lineno == 1:
                line = line.removeprefix(codecs.BOM_UTF8)  # a byte-order mark some editors add
            if line.strip():
                yield lineno, line


def iter_items(calls: Iterable[Any]) -> Iterator[Item | BadLine]:
    """Each call's JSON: a :class:`FetchOutcome`'s raw bytes, a :class:`Call` or a decoded
    JSON object re-encoded, or JSON text itself. Outcomes that are not found or failed hold
    no call and are skipped; anything else is a :class:`BadLine` numbered from 1.
    """
    for number, item in enumerate(calls, 1):
        if isinstance(item, FetchOutcome):
            if item.raw is not None:
                yield Item(number, item.raw, item.call_id)
            elif item.call is not None:
                yield Item(number, _encode(item.call), item.call_id)
        elif isinstance(item, Call):
            yield Item(number, _encode(item), None)
        elif isinstance(item, bytearray):
            yield Item(number, bytes(item), None)
        elif isinstance(item, bytes | memoryview | str):
            yield Item(number, item, None)
        elif isinstance(item, dict):
            try:
                yield Item(number, _encode(item), None)
            except (TypeError, ValueError, OverflowError) as exc:
                yield BadLine(number, f"not a call: a dict that is not JSON ({exc})")
        else:
            yield BadLine(number, f"not a call: a {type(item).__name__}")
