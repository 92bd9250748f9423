"""What differs between learning a server's limit and pacing under a rate the user told.

The :class:`~asyncvox._pacing.Pacer` takes one of the two :class:`Tuning` values below:
:data:`UNTOLD` (no ``rate_limit``: the limit may be anywhere) or :data:`TOLD`.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["TOLD", "UNTOLD", "Tuning"]


class Tuning(NamedTuple):
    """What differs between learning a limit and pacing under a rate the user told.

    Under a told rate the limit is near it: the estimate falls below it only if the quota
    was cut, and there is no capacity of others' to find, so crossings are kept as rare in
    requests as can be and cuts after the first are shallow. Untold, the limit may be
    anywhere (slow start's first guess can be many times it) and may rise or be freed by
    another process.
    """

    #: The longest climb back to the estimate, seconds (a limit that rose, or capacity
    #: freed on a shared key, waits at most this long to be probed for).
    k_max: float
    #: An emergency slow-down cuts the pace at most to this share of it per step.
    emergency_floor: float
    #: Past the estimate the probe keeps the climb back's time scale (in starts) rather
    #: than one time scale (seconds) whatever the rate.
    above_in_starts: bool
    #: Slow start's first refusal climbs back within :data:`FIRST_BACK` (a guess that may
    #: be low is probed past quickly) rather than on the usual scale.
    first_back: bool
    #: The first refusal cuts the pace to this share of the rate starts went at. Untold it
    #: ends slow start, whose window doubled in the last round trip: half. Told, the pace
    #: was the told rate's, so the limit fell under it (a quota cut, or a key shared) by
    #: an unknown share: a quarter, which costs a blip a few requests' worth, and takes a
    #: quota cut to a quarter in one step instead of two (two refusals fewer).
    first_cut: float
    #: A measurement a little above the estimate keeps the estimate (else it rises
    #: halfway). Told, the estimate is under the told rate only since the quota fell,
    #: and such a rise is a bucket's burst, refilled while paced below the limit: taken
    #: for rate, it brings the next crossing within seconds. A quota restored shows as a
    #: measurement far above, which is taken as it is.
    hold_rise: bool


UNTOLD = Tuning(
    k_max=5.0, emergency_floor=0.25, above_in_starts=False, first_back=True, first_cut=0.5, hold_rise=False
)
TOLD = Tuning(
    k_max=10.0, emergency_floor=0.5, above_in_starts=True, first_back=False, first_cut=0.25, hold_rise=True
)
