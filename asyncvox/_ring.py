"""The starts the governor remembers: when each went, and which the server refused.

Pure bookkeeping for :mod:`asyncvox._pacing`: start times are kept in a ring by sequence
number (written by the controller on every start, one list store), refused starts'
numbers in a deque, so the starts admitted over any recent span can be counted by
bisection without a pass over every start.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

__all__ = ["RING", "Counted", "StartRing"]

#: How many starts the ring remembers (a power of two).
RING = 4096
_MASK = RING - 1
#: Fewer starts than this in a span are too few to call a rate.
_FEW = 8


class Counted(NamedTuple):
    """The starts over a span: how many the server admitted, in how long."""

    admitted: int
    seconds: float

    @property
    def rate(self) -> float:
        """Admitted starts per second (at least one over the span: never zero)."""
        return max(1, self.admitted) / self.seconds


class StartRing:
    """Start times by sequence number, and which starts were refused."""

    __slots__ = ("refused", "times")

    def __init__(self) -> None:
        #: Start times by sequence number (``seq & (RING - 1)``).
        self.times = [0.0] * RING
        #: Refused starts' sequence numbers, oldest first.
        self.refused: deque[int] = deque(maxlen=RING)

    def at(self, seq: int) -> float:
        """When start ``seq`` went."""
        return self.times[seq & _MASK]

    def oldest(self, seq: int) -> float:
        """When the oldest start still remembered (as of start ``seq``) went."""
        return self.times[max(1, seq - _MASK) & _MASK]

    def first_after(self, since: float, seq: int) -> int:
        """The sequence number of the first start after ``since`` (up to ``seq``), by bisection."""
        times = self.times
        low, high = max(1, seq - _MASK), seq
        while low < high:
            mid = (low + high) // 2
            if times[mid & _MASK] <= since:
                low = mid + 1
            else:
                high = mid
        return low

    def counted(self, since: float, end: float, seq: int, min_span: float) -> Counted | None:
        """The starts admitted after ``since`` up to start ``seq`` (at ``end``).

        ``None`` if the span is shorter than ``min_span`` or holds too few starts to say.
        """
        since = max(since, self.oldest(seq))
        if since >= self.at(seq) or end - since < min_span:
            return None
        low = self.first_after(since, seq)
        if seq - low < _FEW:
            return None
        return Counted(seq - low + 1 - self._refused_from(low, seq), end - since)

    def lately(
        self, now: float, seq: int, span: float, count_refused: bool, least: float, since: float = -math.inf
    ) -> float:
        """Starts per second over the last ``span`` seconds up to start ``seq`` (admitted
        only, unless ``count_refused``), or since the first start or ``since`` if later,
        but over at least ``least`` seconds (a process's first burst is not a rate)."""
        if seq < 1:
            return 0.0
        oldest = self.oldest(seq)
        since = max(now - span, since)
        low = self.first_after(since, seq)  # the oldest remembered, if all are later
        if self.at(low) <= since:
            return 0.0  # nothing started in the span
        refused = 0 if count_refused else self._refused_from(low, seq)
        width = max(now - max(since, oldest), least)
        return max(0, seq - low + 1 - refused) / width

    def _refused_from(self, low: int, seq: int) -> int:
        """How many starts numbered ``low`` to ``seq`` were refused."""
        refused = 0
        for s in reversed(self.refused):
            if s < low:
                break
            if s <= seq:
                refused += 1
        return refused
