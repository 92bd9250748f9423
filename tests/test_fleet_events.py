"""The fleet's news format: what a listener acts on, and what it ignores."""

from __future__ import annotations

import pytest

from asyncvox._fleet_events import FleetNews, parse


def test_cuts_and_pauses_parse() -> None:
    assert parse(b"cut 1733100000000000 98000 95060") == FleetNews("cut", 1733100000000000, 98000, 95060)
    assert parse("pause 5 9 0") == FleetNews("pause", 5, 9, 0)


@pytest.mark.parametrize(
    "data",
    [b"", b"cut", b"cut 1 2", b"grow 1 2 3", b"cut 1 2 x", b"cut 1 2 3 4", b"\xff\xfe 1 2 3", 42, None],
)
def test_anything_else_is_ignored(data: object) -> None:
    assert parse(data) is None
