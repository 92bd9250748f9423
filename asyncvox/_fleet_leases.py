"""The start times one fleet process holds: leased from the shared GCRA, spent one per start.

Pure bookkeeping on the local monotonic clock, no I/O: :class:`asyncvox._fleet_link.FleetLink`
takes a lease from Redis (``k`` start times, ``step`` apart) and asks here when the next
start may go. What is held is the process's share of the fleet's pace for a short span
ahead, so the rules are about not turning held times into a burst: times missed are
dropped, and a cut of the pace thins what was taken at the old one.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

__all__ = ["Leases"]

#: A leased start time this far in the past is dropped, not used (it is too late to say
#: anything about the pace).
STALE: Final = 0.25
#: A start time further ahead than this is not trusted (a clock reply gone wrong).
HORIZON: Final = 60.0


class Leases:
    """Leased start times, oldest first."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def next_at(self, now: float) -> float | None:
        """When the next held start may go (at most ``now`` if it is due), or ``None``.

        Start times missed (a pause, a busy loop) are gone: of those past, only the last
        may still go, or a process back from a pause would start them all as one burst.
        """
        times = self._times
        while len(times) > 1 and times[1] <= now:
            times.popleft()
        if times and times[0] < now - STALE:
            times.popleft()
        return times[0] if times else None

    def take(self) -> None:
        """A start went on the first held time."""
        if self._times:
            self._times.popleft()

    def add(self, now: float, first: float, step: float, k: int) -> None:
        """Hold ``k`` start times from ``first``, ``step`` seconds apart."""
        horizon = now + HORIZON
        self._times.extend(min(first + i * step, horizon) for i in range(k))

    def thin(self, old_pace: float, new_pace: float) -> None:
        """The fleet's pace was cut from ``old_pace`` to ``new_pace``: keep the share of the
        held times that fits the span they cover at the new pace.

        Dropping them all would throw away what the fleet's GCRA has moved past
        (measured: a quarter of the limit on 8 processes); keeping them all is a burst
        into a fresh refusal.
        """
        if new_pace >= old_pace:
            return
        keep = math.ceil(len(self._times) * new_pace / old_pace)
        while len(self._times) > keep:
            self._times.pop()

    def clear(self) -> None:
        """Drop every held time (the fleet's pace stopped or the link failed)."""
        self._times.clear()
