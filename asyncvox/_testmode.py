"""The testing switch (after stamina's ``set_testing``): every wait asyncvox would make
(retry backoff, ``Retry-After``, the governor's pauses and pacing) becomes zero seconds,
while attempt counts and decisions stay exactly as in production.

It sits at the bottom of the package so that retry and limits read one flag.
"""

from __future__ import annotations

from types import TracebackType

__all__ = ["is_testing", "set_testing"]

_testing = False


class _Restore:
    """What :func:`set_testing` returns: usable as a context manager that restores the
    setting that was in force before the call."""

    __slots__ = ("_previous",)

    def __init__(self, previous: bool) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _testing
        _testing = self._previous


def set_testing(on: bool) -> _Restore:
    """Turn every asyncvox wait into zero seconds (``True``) or back to real (``False``).

    Call it once (e.g. in a ``conftest.py``), or use it as a context manager that restores
    the previous setting on exit::

        with asyncvox.set_testing(True):
            await client.get_call("id")   # retries happen, instantly
    """
    global _testing
    previous = _testing
    _testing = bool(on)
    return _Restore(previous)


def is_testing() -> bool:
    """Whether :func:`set_testing` is on."""
    return _testing
