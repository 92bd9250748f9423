"""One api key's limit shared by many processes: the governor's slow path over Redis.

Opt-in (``pip install 'asyncvox[redis]'``; ``Client(fleet="redis://...")`` or
``$ASYNCVOX_REDIS_URL``). Every process keeps its own :class:`~asyncvox.limits.Governor`
and control logic; a link to the fleet (:mod:`asyncvox._fleet_link`) is what the
governor consults when the fleet is *paced*, never on its fast path:

* **Reports in batches.** A background task reports what the process was admitted
  lately (starts per second over the last two seconds, less its refusals) and its new
  refusals every ``sync_interval`` (one round trip; a throttle reports at once). A fleet
  that was never refused costs Redis nothing per request.
* **A shared rate.** On refusals the fleet's rate is measured in Redis from everyone's
  reports and probed upward the way the local pacer does (:mod:`asyncvox._fleet_scripts`);
  every process reads the pace at its next lease or sync, so a throttle seen by one slows
  all.
* **Paced starts, leased.** While the fleet is paced, starts come from one GCRA on the
  Redis server's clock, ``k`` start times per round trip (a lease covers ``lease_span``
  seconds of the pace), so N processes together start at the shared pace.
* **A fleet-wide pause** when one process's controller finds everything refused.
* **News, pushed.** A cut of the pace and a pause are published on a pub/sub channel
  (:mod:`asyncvox._fleet_events`), so every process hears within a millisecond, not at
  its next sync.
* **Faults lose nothing.** Any Redis error or a reply slower than ``socket_timeout``
  drops the process to its local governor (one WARNING per outage; see
  :attr:`~asyncvox.Governor.fleet_state`), and the link tries again every
  ``retry_interval``. Values read back are clamped; a flushed store is a fleet starting
  over.
"""

from __future__ import annotations

from typing import Final, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError

__all__ = ["REDIS_URL_ENV", "FleetState", "RedisFleet"]

#: The environment variable every :class:`~asyncvox.Client` without an explicit ``fleet``
#: joins.
REDIS_URL_ENV: Final = "ASYNCVOX_REDIS_URL"


class RedisFleet:
    """Where a fleet's shared limits live, and how the link to it behaves.

    Args:
        url: a ``redis://``, ``rediss://`` or ``unix://`` URL.
        socket_timeout: seconds a Redis reply may take before the process falls back to
            its own limits (also the connect timeout).
        retry_interval: seconds between attempts to rejoin after a fault.
        sync_interval: seconds between count reports (and reading the fleet's rate).
        lease_span: seconds of the fleet's pace the leases of all processes cover together
            (each takes its share).
        max_lease: most start times taken per round trip.
    """

    __slots__ = (
        "lease_span",
        "max_lease",
        "retry_interval",
        "socket_timeout",
        "sync_interval",
        "url",
    )

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float = 0.25,
        retry_interval: float = 2.0,
        sync_interval: float = 0.25,
        lease_span: float = 0.25,
        max_lease: int = 8,
    ) -> None:
        if not isinstance(url, str):
            raise ConfigurationError(f"fleet must be a redis:// URL, got {_redact(str(url))!r}")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - a port out of range raises here, not at the first sync
        except ValueError as exc:
            raise ConfigurationError(f"fleet URL {_redact(url)!r} is malformed: {exc}") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(f"fleet must be a redis:// URL, got {_redact(url)!r}")
        for name, value in (
            ("socket_timeout", socket_timeout),
            ("retry_interval", retry_interval),
            ("sync_interval", sync_interval),
            ("lease_span", lease_span),
        ):
            if not (isinstance(value, int | float) and value > 0):
                raise ConfigurationError(f"RedisFleet {name} must be > 0 seconds, got {value!r}")
        if not (isinstance(max_lease, int) and max_lease >= 1):
            raise ConfigurationError(f"RedisFleet max_lease must be an int >= 1, got {max_lease!r}")
        self.url = url
        self.socket_timeout = float(socket_timeout)
        self.retry_interval = float(retry_interval)
        self.sync_interval = float(sync_interval)
        self.lease_span = float(lease_span)
        self.max_lease = max_lease

    def __repr__(self) -> str:
        return f"RedisFleet({_redact(self.url)!r})"


def _redact(url: str) -> str:
    """The URL without its password (in the userinfo or redis-py's ``?password=``); never raises."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a malformed URL>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    items = parts.query.split("&") if parts.query else []
    query = "&".join("password=***" if i.split("=", 1)[0].lower() == "password" else i for i in items)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class FleetState(NamedTuple):
    """The link's state (:attr:`Governor.fleet_state`).

    Attributes:
        state: ``"connecting"`` (not reached yet), ``"fleet"`` (shared limits in force)
            or ``"local"`` (Redis failed: this process's own limits, retrying).
        paced: whether starts come from the fleet's shared pace now.
        rate: the fleet's estimate of the server's rate (requests/s) as last read;
            ``None`` while unpaced.
        pace: the fleet's start rate (requests/s) as last read; ``None`` while unpaced.
        paused_for: seconds left of a fleet-wide pause.
        round_trips: Redis round trips so far (syncs and leases).
        leases: leases of start times taken.
        fallbacks: times this process fell back to its own limits.
        last_error: the last Redis fault, e.g. ``"ConnectionError"``.
    """

    state: str
    paced: bool
    rate: float | None
    pace: float | None
    paused_for: float
    round_trips: int
    leases: int
    fallbacks: int
    last_error: str | None
