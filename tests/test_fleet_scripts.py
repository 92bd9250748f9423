"""The fleet's Lua scripts on a real ``redis-server``, fed crafted reports: what the
shared estimate is measured from."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from _fleet import RedisServer

from asyncvox._fleet_scripts import FLEET_K_MAX, SYNC, fleet_keys
from asyncvox._pacing import MARGIN
from asyncvox._tuning import UNTOLD

KEYS = fleet_keys("http://127.0.0.1:1/v1", "k")


def _report(
    r: redis.Redis, script: Any, token: str, admitted: float, sent: float, refused: int, edged: float
) -> list[int]:
    args = [token, admitted, sent, refused, 0, MARGIN, KEYS.news, edged]
    return [int(v) for v in script(keys=[KEYS.rate, KEYS.procs, KEYS.pause], args=args)]


def test_the_first_refusal_guesses_what_the_fleet_was_admitted_not_what_it_sent(
    redis_server: RedisServer,
) -> None:
    # A window's limiter exhausted by eight processes' slow start: they were admitted a
    # window's grant over the last second (100/s together) while sending four times
    # that. Guessed from what they sent, the fleet paced at twice the limit and climbed
    # to four times it within a second, refused all the way.
    r = redis_server.client()
    script = r.register_script(SYNC)
    for i in range(7):
        _report(r, script, f"p{i}", admitted=12.5, sent=50.0, refused=0, edged=12.5)
    reply = _report(r, script, "p7", admitted=12.5, sent=50.0, refused=1, edged=12.5)
    assert reply[1] == 100_000  # the rate (x 1000)
    assert reply[2] == 50_000  # paced at half of it, climbing back
    r.delete(KEYS.rate, KEYS.procs)
    # Admitted far less than a quarter of what they sent (a token bucket's small burst,
    # the first refusal within the fleet's first second): what was sent bounds the rate.
    for i in range(7):
        _report(r, script, f"p{i}", admitted=2.0, sent=50.0, refused=0, edged=2.0)
    reply = _report(r, script, "p7", admitted=2.0, sent=50.0, refused=1, edged=2.0)
    assert reply[1] == 400_000
    r.close()


def test_an_onset_measures_what_was_admitted_since_the_window_edge(redis_server: RedisServer) -> None:
    # Two seconds after slow start exhausted the first window, what the fleet was
    # admitted over the last two seconds holds that window's lump on top of the next
    # window's grant (130/s); since each process's window edge, the grant (100/s).
    r = redis_server.client()
    script = r.register_script(SYNC)
    seconds, micros = r.time()
    now = seconds * 1_000_000 + micros
    ago = str(now - 3_000_000)
    r.hset(
        KEYS.rate,
        mapping={
            "rate": "120", "pace0": "110", "cut_at": ago, "probe_at": ago, "k": "2",
            "measured_at": ago, "first_at": str(now - 5_000_000), "steady": "0",
            "emergency": "1", "confirmed": "1", "procs": "2",
        },
    )
    _report(r, script, "a", admitted=65.0, sent=70.0, refused=0, edged=50.0)
    reply = _report(r, script, "b", admitted=65.0, sent=70.0, refused=1, edged=50.0)
    assert reply[1] == 100_000
    assert r.hget(KEYS.rate, "confirmed") == b"1"
    r.close()


def test_a_report_of_an_earlier_release_still_counts(redis_server: RedisServer) -> None:
    # A rolling deploy: a process of an earlier build wrote "<admitted>:<sent>:<µs>";
    # dropped as malformed, the fleet would measure without it.
    r = redis_server.client()
    script = r.register_script(SYNC)
    seconds, micros = r.time()
    r.hset(KEYS.procs, "old", f"60.000:240.000:{seconds * 1_000_000 + micros}")
    reply = _report(r, script, "new", admitted=40.0, sent=160.0, refused=1, edged=40.0)
    assert reply[4] == 2  # both processes counted
    assert reply[1] == 100_000  # the first guess: what both were admitted
    r.close()


def test_a_fleet_climbs_back_to_a_steady_limit_more_slowly_than_a_lone_process(
    redis_server: RedisServer,
) -> None:
    # Measured again where it was, three times in a row: each crossing of a window's
    # limit costs eight processes 10-25 refusals, and a fleet has no other process's
    # freed capacity to look for (every member reports it), so it crosses every 10 s,
    # not every 5 s as a lone process does.
    r = redis_server.client()
    script = r.register_script(SYNC)
    seconds, micros = r.time()
    now = seconds * 1_000_000 + micros
    ago = str(now - 30_000_000)
    back = str(now - 5_000_000)  # the climb back just reached the estimate
    r.hset(
        KEYS.rate,
        mapping={
            "rate": "100", "pace0": "97", "cut_at": ago, "probe_at": back, "k": "5",
            "measured_at": ago, "first_at": ago, "steady": "3",
            "emergency": "0", "confirmed": "1", "procs": "2",
        },
    )
    _report(r, script, "a", admitted=50.0, sent=50.0, refused=0, edged=50.0)
    reply = _report(r, script, "b", admitted=50.0, sent=50.0, refused=1, edged=50.0)
    assert reply[1] == 100_000  # steady: where it was
    assert float(r.hget(KEYS.rate, "k") or 0) == pytest.approx(FLEET_K_MAX)
    assert UNTOLD.k_max < FLEET_K_MAX
    r.close()
