"""Command-line options of the demo server, shared by ``python -m asyncvox.testing`` and
``asyncvox serve-demo``: parsers that turn an option's text into a value, with errors that
say what was wrong, and the argparse wiring of ``python -m asyncvox.testing``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from ._faults import FaultProfile
from .server import DemoServer

__all__ = ["SecondsRange", "add_server_arguments", "parse_seconds", "parse_seconds_range", "server_from_args"]

T = TypeVar("T")


class SecondsRange(NamedTuple):
    """A range of seconds, ``low <= high`` (a tuple, so it goes where ``(min, max)`` does)."""

    low: float
    high: float


def parse_seconds(text: str) -> float:
    """``"2.5"`` -> ``2.5``: finite seconds >= 0, else :class:`ValueError` saying why."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < math.inf:
        raise ValueError(f"{text!r}: seconds must be finite and >= 0")
    return value


def parse_seconds_range(text: str) -> SecondsRange:
    """``"MIN:MAX"`` (or ``"N"`` for exactly N) seconds -> :class:`SecondsRange`.

    >>> parse_seconds_range("2:30")
    SecondsRange(low=2.0, high=30.0)

    Raises :class:`ValueError` naming what is wrong (not a number, negative, MIN > MAX).
    """
    low_text, sep, high_text = text.strip().partition(":")
    if sep and ":" in high_text:
        raise ValueError(f"{text!r}: expected MIN:MAX seconds, e.g. 2:30")
    try:
        low = parse_seconds(low_text)
        high = parse_seconds(high_text) if sep else low
    except ValueError as exc:
        raise ValueError(f"{text!r}: expected MIN:MAX seconds, e.g. 2:30 ({exc})") from None
    if low > high:
        raise ValueError(f"{text!r}: MIN is more than MAX")
    return SecondsRange(low, high)


def _argparse(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` for argparse's ``type=``: its ValueError's text becomes the usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{text!r}: a share is between 0 and 1")
    return value


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo server's options (faults, slow answers, analysis) to ``parser``."""
    share = _argparse(_share)
    seconds = _argparse(parse_seconds)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--turns", type=int, default=None, help="transcript length (default: varied)")
    parser.add_argument("--body-pool", type=int, default=None, help="serve from N pre-encoded bodies")
    parser.add_argument("--latency", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None)
    parser.add_argument("--rps-limit", type=float, default=None)
    parser.add_argument("--rate-429", type=share, default=0.0)
    parser.add_argument("--rate-5xx", type=share, default=0.0)
    parser.add_argument("--rate-drop", type=share, default=0.0)
    parser.add_argument(
        "--rate-slow", type=share, default=0.0, help="share of answers sent after --slow-seconds"
    )
    parser.add_argument("--slow-seconds", type=seconds, default=2.0, help="delay of a slow answer (2)")
    parser.add_argument("--missing-rate", type=share, default=0.0)
    parser.add_argument("--drift-rate", type=share, default=0.0)
    parser.add_argument(
        "--analysis-delay",
        type=_argparse(parse_seconds_range),
        default=None,
        metavar="MIN:MAX",
        help="each call is found only MIN-MAX seconds after its first request (analysis)",
    )
    parser.add_argument(
        "--analysis-visible-early",
        type=share,
        default=0.5,
        metavar="SHARE",
        help="with --analysis-delay, share of calls visible before done, queued -> analyzing (0.5)",
    )
    parser.add_argument(
        "--analysis-retry-after",
        default=None,
        metavar="SECONDS",
        help="send this Retry-After on the 404s of calls still being analysed",
    )
    parser.add_argument("--no-count-ids", action="store_true", help="do not keep per-id counters")


def server_from_args(args: argparse.Namespace) -> DemoServer:
    """The :class:`DemoServer` that parsed :func:`add_server_arguments` options describe."""
    profile = FaultProfile(
        rate_429=args.rate_429,
        rate_5xx=args.rate_5xx,
        rate_drop=args.rate_drop,
        rate_slow=args.rate_slow,
        slow_seconds=args.slow_seconds,
        latency=tuple(args.latency) if args.latency else None,
        rps_limit=args.rps_limit,
        missing_rate=args.missing_rate,
        drift_rate=args.drift_rate,
        seed=args.seed,
    )
    return DemoServer(
        api_key=args.api_key,
        seed=args.seed,
        profile=profile,
        body_pool=args.body_pool,
        turns=args.turns,
        count_ids=not args.no_count_ids,
        host=args.host,
        port=args.port,
        analysis_delay=args.analysis_delay,
        analysis_visible_early=args.analysis_visible_early,
        analysis_retry_after=args.analysis_retry_after,
    )
