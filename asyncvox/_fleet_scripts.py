"""What a fleet keeps in Redis: the key names and the Lua scripts that change them.

Pure text and arithmetic, no I/O: :mod:`asyncvox.fleet` loads the scripts once
(``register_script``) and runs them. Every script reads the Redis server's clock
(``TIME``), so processes on different hosts agree on when a start may go, and every key
it writes gets a TTL, so a fleet that stops leaves nothing behind for long.

Keys, for one API (its base URL) and one api key (a keyed hash of it, never the key)::

    asyncvox:{<host/path>|<hash>}:rate    hash: rate (req/s the fleet may start), at
                                          (µs, last measured), refused_at (µs),
                                          grown_at (µs)               TTL RATE_TTL
    asyncvox:{<host/path>|<hash>}:gcra    string: the next free start time (µs)   TTL GCRA_TTL
    asyncvox:{<host/path>|<hash>}:counts  hash: starts / refusals per second, over
                                          the last SLOTS seconds, since (µs, first
                                          count)                     TTL COUNTS_TTL
    asyncvox:{<host/path>|<hash>}:pause   string: when the fleet-wide pause ends (µs)
                                                                     TTL the pause

Values read back are clamped, never trusted: a rate outside [MIN_RATE, MAX_RATE], a
start time further ahead than ``max_ahead`` or a pause longer than MAX_PAUSE is reset.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import urlsplit

__all__ = ["LEASE", "SYNC", "FleetKeys", "fleet_keys"]

#: The fixed salt of the api key's keyed hash (HMAC-SHA256): the key never reaches Redis,
#: and the hash cannot be matched against a plain SHA-256 of a leaked key list.
SALT: Final = b"asyncvox fleet v1"
RATE_TTL: Final = 600  # s: a fleet that saw no refusal for 10 minutes starts unpaced again
GCRA_TTL: Final = 60  # s
COUNTS_TTL: Final = 10  # s
SLOTS: Final = 4  # seconds of counts kept
MIN_RATE: Final = 0.1
MAX_RATE: Final = 1e6
MAX_PAUSE: Final = 300.0  # s

# Shared by both scripts: the server's clock in µs, and a number read back and clamped.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function num(v, lo, hi)
  local x = tonumber(v)
  if x == nil or x ~= x or x < lo or x > hi then return nil end
  return x
end
"""

#: KEYS: rate, counts, pause. ARGV: starts, refused, hint (a process's own estimate, or
#: 0), pause_ms, margin, growth (per second), probe_after (s). Adds this process's counts
#: to the current second; on refusals measures the fleet's admitted rate over the last
#: seconds; while nothing is refused, lets the rate grow (the probe); publishes a pause.
#: Returns {now_us, rate * 1000 or -1, pause_until_us or 0}.
SYNC: Final = (
    _PRELUDE
    + f"""
local starts, refused = tonumber(ARGV[1]), tonumber(ARGV[2])
local hint, pause_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local margin, growth, probe_after = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local sec = math.floor(now / 1000000)
local slot = sec % {SLOTS}
if num(redis.call('HGET', KEYS[2], 't' .. slot), 0, 1e12) ~= sec then
  redis.call('HSET', KEYS[2], 't' .. slot, sec, 'n' .. slot, 0, 'r' .. slot, 0)
end
if starts > 0 then redis.call('HINCRBY', KEYS[2], 'n' .. slot, starts) end
if refused > 0 then redis.call('HINCRBY', KEYS[2], 'r' .. slot, refused) end
redis.call('HSETNX', KEYS[2], 'since', now)
redis.call('EXPIRE', KEYS[2], {COUNTS_TTL})
local rate = num(redis.call('HGET', KEYS[1], 'rate'), {MIN_RATE}, {MAX_RATE})
if refused > 0 then
  local at = num(redis.call('HGET', KEYS[1], 'at'), 0, 1e18) or 0
  local admitted, oldest = 0, sec
  for i = 0, {SLOTS - 1} do
    local s = num(redis.call('HGET', KEYS[2], 't' .. i), 0, 1e12)
    if s ~= nil and s > sec - 2 then
      local n = num(redis.call('HGET', KEYS[2], 'n' .. i), 0, 1e12) or 0
      local r = num(redis.call('HGET', KEYS[2], 'r' .. i), 0, 1e12) or 0
      admitted = admitted + math.max(0, n - r)
      if s < oldest then oldest = s end
    end
  end
  -- from the first count reported, if later than the oldest second's start
  local since = num(redis.call('HGET', KEYS[2], 'since'), 0, now) or 0
  local span = (now - math.max(oldest * 1000000, since)) / 1000000
  local measured = nil
  if span >= 0.5 and admitted >= 8 then measured = admitted / span end
  if rate == nil then
    -- the fleet's first refusal: what it admitted lately, counted over at least a second
    -- (the common window: a burst at the start is not a rate), else the process's guess
    if admitted >= 1 then rate = admitted / math.max(span, 1.0) elseif hint > 0 then rate = hint end
    if rate ~= nil then redis.call('HSET', KEYS[1], 'at', now) end
  elseif measured ~= nil and now - at >= 500000 then
    -- refused at the fleet's pace: the limit is near it (a span with idle stretches
    -- undercounts what the limiter grants), so cut by at most two margins per step
    rate = math.max((1 - 2 * margin) * rate, math.min(rate, measured))
    redis.call('HSET', KEYS[1], 'at', now)
  end
  redis.call('HSET', KEYS[1], 'refused_at', now, 'grown_at', now)
elseif rate ~= nil then
  local refused_at = num(redis.call('HGET', KEYS[1], 'refused_at'), 0, 1e18) or 0
  local grown_at = num(redis.call('HGET', KEYS[1], 'grown_at'), 0, 1e18) or now
  if now - refused_at > probe_after * 1000000 and now > grown_at then
    -- nothing refused for a while: probe upward (a limit that rose is found)
    rate = rate * (1 + growth * math.min(1.0, (now - grown_at) / 1000000))
    redis.call('HSET', KEYS[1], 'grown_at', now)
  end
end
if rate ~= nil then
  rate = math.max({MIN_RATE}, math.min({MAX_RATE}, rate))
  redis.call('HSET', KEYS[1], 'rate', tostring(rate))
  if refused > 0 then redis.call('EXPIRE', KEYS[1], {RATE_TTL}) end
end
local pause_until = 0
if pause_ms > 0 then
  local ms = math.min(pause_ms, {int(MAX_PAUSE * 1000)})
  local want = now + ms * 1000
  local have = num(redis.call('GET', KEYS[3]), now, now + {int(MAX_PAUSE * 1e6)})
  if have == nil or have < want then
    redis.call('SET', KEYS[3], string.format('%d', want), 'PX', math.max(1, math.ceil(ms)))
  end
end
local p = num(redis.call('GET', KEYS[3]), now, now + {int(MAX_PAUSE * 1e6)})
if p ~= nil then pause_until = p end
return {{now, rate and math.floor(rate * 1000) or -1, pause_until}}
"""
)

#: KEYS: rate, gcra, pause. ARGV: k (starts wanted), margin, max_ahead_ms. GCRA on the
#: server's clock: hands out the next ``k`` start times of the fleet's pace. Returns
#: {now_us, first_us, interval_us, rate * 1000, pause_until_us}; interval 0 when the fleet
#: is not paced (no rate), and then nothing is taken.
LEASE: Final = (
    _PRELUDE
    + f"""
local k, margin, max_ahead = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) * 1000
local pause_until = num(redis.call('GET', KEYS[3]), now, now + {int(MAX_PAUSE * 1e6)}) or 0
local rate = num(redis.call('HGET', KEYS[1], 'rate'), {MIN_RATE}, {MAX_RATE})
if rate == nil then return {{now, now, 0, -1, pause_until}} end
local interval = math.floor(1000000 / (rate * (1 - margin)))
local tat = num(redis.call('GET', KEYS[2]), 0, now + max_ahead) or now
if tat < now then tat = now end
if tat < pause_until then tat = pause_until end
redis.call('SET', KEYS[2], string.format('%d', tat + k * interval), 'EX', {GCRA_TTL})
return {{now, tat, interval, math.floor(rate * 1000), pause_until}}
"""
)


class FleetKeys:
    """The Redis key names of one API and api key (see the module docstring)."""

    __slots__ = ("counts", "gcra", "pause", "prefix", "rate")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.rate = prefix + ":rate"
        self.gcra = prefix + ":gcra"
        self.counts = prefix + ":counts"
        self.pause = prefix + ":pause"


def fleet_keys(base_url: str, api_key: str) -> FleetKeys:
    """Key names from the base URL (host and path only: no credentials, no query) and a
    keyed hash of the api key. The braces are a Redis Cluster hash tag: one slot, so a
    script may touch them all."""
    parts = urlsplit(base_url)
    where = (parts.hostname or "") + (f":{parts.port}" if parts.port else "") + parts.path.rstrip("/")
    digest = hmac.new(SALT, api_key.encode(), hashlib.sha256).hexdigest()[:32]
    return FleetKeys(f"asyncvox:{{{where}|{digest}}}")
