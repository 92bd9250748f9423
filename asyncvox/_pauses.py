"""When the whole client stops: runs of refused starts, and chains of pauses.

Pure bookkeeping for :class:`asyncvox._control.Controller`, by start sequence number: a
client-wide pause only after a run of consecutive starts, spanning a while, all refused;
each pause half as long as everything has been refused so far (up to the
``Retry-After``); the chain of pauses over once a start after its last pause is admitted
(or enough starts in it were, let go by the pace before a later pause's probe).
"""

from __future__ import annotations

from typing import Final

__all__ = ["PauseChain"]

#: A client-wide pause needs at least this many consecutive refused starts ...
PAUSE_RUN: Final = 4
#: ... spanning at least this long (seconds; and at least two intervals of the pace).
PAUSE_SPAN: Final = 0.05
#: ... or this long once starts are paced (spaced out: not one moment's burst of refusals).
PACED_PAUSE_SPAN: Final = 0.02
#: A chain of pauses is over once this many starts in it were admitted, even if each
#: started before a pause that came after it (the pace let it go with the pause's probe).
CHAIN_ADMITTED: Final = 8
#: Each pause lasts this share of the time everything has been refused so far.
PAUSE_GROWTH: Final = 0.5
#: The longest pause after an all-refused run whose answers carried no ``Retry-After``.
DEFAULT_PAUSE: Final = 1.0


class PauseChain:
    """The run of refused starts going on, and the chain of pauses it led to."""

    __slots__ = ("_chain_admitted", "_chain_seq", "_run_len", "_run_seq", "_run_t0", "length", "seq")

    def __init__(self) -> None:
        self._run_seq = -1  # the run of consecutive refused starts: its last, first time, length
        self._run_t0 = 0.0
        self._run_len = 0
        #: The last start before the last pause (a refusal of one up to it is no news).
        self.seq = 0
        #: The last pause's length, until an admitted start ends the chain (0.0: none).
        self.length = 0.0
        self._chain_seq = 0  # the last start before the chain's first pause
        self._chain_admitted = 0  # starts admitted in the chain, each before a pause after it

    def all_refused(self, seq: int, started: float, pace: float | None) -> bool:
        """Count the refused start ``seq`` (at ``started``) into its run; true when the
        run is long enough to pause (always, while a chain goes on)."""
        if self.length:
            return True  # the first answer after a pause is refused too: pause again, longer
        if seq == self._run_seq + 1:
            self._run_len += 1
        elif seq > self._run_seq:
            self._run_len, self._run_t0 = 1, started
        else:
            return False  # answered out of order: already counted around it
        self._run_seq = seq
        span = PAUSE_SPAN if pace is None else max(PACED_PAUSE_SPAN, 2.0 / pace)
        return self._run_len >= PAUSE_RUN and started - self._run_t0 >= span

    def begin(self, now: float, retry_after: float | None, max_pause: float, seq: int) -> float:
        """A pause begins at ``now`` (``seq`` the last start before it): its length.

        Half as long as everything has been refused so far, at most the ``Retry-After``:
        the refusals' end is passed by at most a third of their length, for one probe (a
        refused start) per step, whose answer says whether the pause was long enough.
        """
        longest = min(DEFAULT_PAUSE if retry_after is None else retry_after, max_pause)
        wait = min(longest, max(PAUSE_GROWTH * (now - self._run_t0), PAUSE_SPAN))
        if not self.length:
            self._chain_seq = seq
            self._chain_admitted = 0
        self.length = wait
        self.seq = seq
        self._run_len = 0
        return wait

    def admitted(self, seq: int) -> bool | None:
        """The start ``seq`` was admitted: ``None`` if the chain (if any) goes on, else
        whether the span up to it measures the limit (``True``: it started after the last
        pause; ``False``: enough starts before it were admitted, the chain's end says
        nothing of the limit)."""
        if not self.length or seq <= self._chain_seq:
            return None
        if seq > self.seq:
            self.length = 0.0
            return True
        self._chain_admitted += 1
        if self._chain_admitted < CHAIN_ADMITTED:
            return None
        self.length = 0.0
        return False
