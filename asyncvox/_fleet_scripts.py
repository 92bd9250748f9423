"""What a fleet keeps in Redis: the key names and the Lua scripts that change them.

Pure text and arithmetic, no I/O: :mod:`asyncvox._fleet_link` loads the scripts once
(``register_script``) and runs them. Every script reads the Redis server's clock
(``TIME``), so processes on different hosts agree on when a start may go, and every key
it writes gets a TTL, so a fleet that stops leaves nothing behind for long.

The shared rate follows the local pacer's model (:mod:`asyncvox._pacing`), on the
fleet's events: measured at an *onset* (a refusal after a stretch of admitted starts)
from what every process was admitted lately, starts paced a little below it, and the pace
climbing back concavely after each cut, past the estimate along a cubic, then doubling.
The pace is a function of the Redis clock (``cut_at``, ``pace0``, ``k``), so
every lease reads the same pace without anyone writing it. Where the fleet differs from
one process, it is for what only a fleet sees: the first guess is what the fleet was
admitted over the last second (eight processes' slow start sends several times a
window's limit, which one process's round trip does not), onsets count from each
process's window edge (its reports are made at other moments than the onset), and a
steady limit is climbed back to over up to :data:`FLEET_K_MAX`.

Keys, for one API (its base URL) and one api key (a keyed hash of it, never the key)::

    asyncvox:{<host/path>|<hash>}:rate    hash: rate (the estimate, req/s), pace0 (the
                                          pace at the last cut), cut_at, measured_at,
                                          first_at, refused_at, probe_at (the probe's
                                          clock, held back while the pace is idle) (µs,
                                          Redis clock), k (s: the probe's
                                          climb back), steady, emergency,
                                          confirmed (0/1: an onset measured it),
                                          procs (processes reporting when measured)
                                                                     TTL RATE_TTL
    asyncvox:{<host/path>|<hash>}:gcra    string: the next free start time (µs)   TTL GCRA_TTL
    asyncvox:{<host/path>|<hash>}:procs   hash: per process (a random token), what it
                                          was admitted and sent lately, admitted since
                                          its window's edge, and when it said so,
                                          "<req/s>:<req/s>:<req/s>:<µs>"  TTL PROCS_TTL
    asyncvox:{<host/path>|<hash>}:pause   string: when the fleet-wide pause ends (µs)
                                                                     TTL the pause
    asyncvox:{<host/path>|<hash>}:news    a pub/sub channel (stores nothing): cuts of
                                          the pace and pauses, as they happen

Values read back are clamped, never trusted: a rate outside [MIN_RATE, MAX_RATE], a
start time further ahead than ``max_ahead``, a time in the future or a pause longer than
MAX_PAUSE is dropped, and a state that does not add up is a fleet starting over.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import urlsplit

from ._pacing import (
    FIRST_BACK,
    PROBE_CUBIC,
    PROBE_DOUBLING,
    PROBE_K,
    PROBE_MAX,
    PROBE_STARTS,
    STEADY,
)

__all__ = ["LEASE", "SYNC", "FleetKeys", "fleet_keys"]

#: The fixed salt of the api key's keyed hash (HMAC-SHA256): the key never reaches Redis,
#: and the hash cannot be matched against a plain SHA-256 of a leaked key list.
SALT: Final = b"asyncvox fleet v1"
RATE_TTL: Final = 600  # s: a fleet that saw no refusal for 10 minutes starts unpaced again
GCRA_TTL: Final = 60  # s
PROCS_TTL: Final = 10  # s
MIN_RATE: Final = 0.1
MAX_RATE: Final = 1e6
MAX_PAUSE: Final = 300.0  # s
#: A process's report counts towards the fleet's admitted rate this long (µs).
FRESH_US: Final = 1_000_000
#: Refusals this soon after a cut (µs) are of starts before it: the old pace's doing
#: (a round trip, and the report's: a throttle is reported at once).
GUARD_US: Final = 250_000
#: Onsets closer than this (µs) to the last measurement are an emergency's business.
MEASURE_GAP_US: Final = 1_000_000
#: The longest climb back to a steady estimate (s). Longer than a lone process's
#: (``UNTOLD.k_max``): that one also probes for capacity other processes on the key left
#: when they finished, which in a fleet every member's report shows at once; here only a
#: limit that rose is looked for, and each crossing of a window's limit costs eight
#: processes 10-25 refusals.
FLEET_K_MAX: Final = 10.0
# The probe's shape is the local pacer's (:mod:`asyncvox._pacing`): one set of constants.

# Shared by both scripts: the server's clock in µs, a number read back and clamped, the
# fleet's pacer state (nil when the fleet is not paced) and its pace at a time.
_PRELUDE = f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- times are written as integers: a Lua number would be written with 14 digits
local NOW = string.format('%d', now)
local function num(v, lo, hi)
  local x = tonumber(v)
  if x == nil or x ~= x or x < lo or x > hi then return nil end
  return x
end
local function load(key)
  local v = redis.call('HMGET', key, 'rate', 'pace0', 'cut_at', 'k', 'measured_at', 'first_at',
    'steady', 'emergency', 'confirmed', 'probe_at', 'procs')
  local s = {{
    rate = num(v[1], {MIN_RATE}, {MAX_RATE}), pace0 = num(v[2], {MIN_RATE}, {MAX_RATE}),
    cut_at = num(v[3], 0, now), k = num(v[4], 0.01, {FLEET_K_MAX:g}),
    measured_at = num(v[5], 0, now) or 0, first_at = num(v[6], 0, now) or 0,
    steady = num(v[7], 0, 3) or 0, emergency = num(v[8], 0, 1) or 0,
    confirmed = num(v[9], 0, 1) or 0, probe_at = num(v[10], 0, now), procs = num(v[11], 0, 1e6),
  }}
  if s.rate == nil or s.pace0 == nil or s.cut_at == nil or s.k == nil
    or s.probe_at == nil then
    return nil
  end
  return s
end
local function factor(s, margin, at)
  local x = (at - s.probe_at) / 1000000 - s.k
  if x < 0 then
    local depth = math.max(margin, 1 - s.pace0 / s.rate)
    local y = -x / s.k
    return 1 - depth * y * y * y
  end
  if s.confirmed == 0 then
    -- no onset has measured the limit yet (the first guess may be far below it): past
    -- the estimate, double at once
    return 2 ^ (x / {PROBE_DOUBLING:g})
  end
  -- past the estimate, one time scale whatever the rate (as the local pacer's)
  local x1 = {PROBE_K * PROBE_CUBIC ** (1 / 3):.6f}
  if x < x1 then
    local y = x / {PROBE_K:g}
    return 1 + margin * y * y * y
  end
  return (1 + {PROBE_CUBIC:g} * margin) * 2 ^ ((x - x1) / {PROBE_DOUBLING:g})
end
local function pace_of(s, margin, at)
  return s.rate * math.min(factor(s, margin, at), {PROBE_MAX:g})
end
"""

#: KEYS: rate, procs, pause. ARGV: token, admitted (req/s, this process over the last two
#: seconds), sent (req/s, over the last quarter second), refused
#: (refusals since the last sync), pause_ms, margin, the news channel (a cut or a pause
#: is published there: :mod:`asyncvox._fleet_events`), admitted since the window's edge
#: (req/s, as admitted; what an onset measures by). Records the report; on refusals
#: measures the fleet's admitted rate (an onset) or slows down (refusals going on after
#: a cut); lets a probe that found nothing at twice the estimate start over there;
#: publishes a pause. Returns {now_us, rate * 1000 or -1, pace * 1000 or -1,
#: pause_until_us or 0, processes reporting lately}.
SYNC: Final = (
    _PRELUDE
    + f"""
local token = ARGV[1]
local admitted, sent = math.max(0, tonumber(ARGV[2]) or 0), math.max(0, tonumber(ARGV[3]) or 0)
local refused, pause_ms = tonumber(ARGV[4]) or 0, tonumber(ARGV[5]) or 0
local margin, channel = tonumber(ARGV[6]), ARGV[7]
local since_edge = math.max(0, tonumber(ARGV[8]) or admitted)
redis.call('HSET', KEYS[2], token, string.format('%.3f:%.3f:%.3f:%d', admitted, sent, since_edge, now))
redis.call('EXPIRE', KEYS[2], {PROCS_TTL})
-- what the fleet was admitted (and sent, and admitted since each one's window edge)
-- lately: the sums of the fresh reports, and how many processes made them
local function fleet_lately()
  local all = redis.call('HGETALL', KEYS[2])
  local got, went, edged, n = 0, 0, 0, 0
  for i = 1, #all, 2 do
    local a, w, e, at = string.match(all[i + 1], '^([^:]+):([^:]+):([^:]+):(%d+)$')
    if a == nil then
      -- a process of an earlier build (no rate since its edge) on the same key, as in a
      -- rolling deploy: its admitted rate stands for both
      a, w, at = string.match(all[i + 1], '^([^:]+):([^:]+):(%d+)$')
      e = a
    end
    a, w, e, at = num(a, 0, {MAX_RATE}), num(w, 0, {MAX_RATE}), num(e, 0, {MAX_RATE}), num(at, 0, now)
    if a == nil or w == nil or e == nil or at == nil or at < now - {PROCS_TTL * 1_000_000} then
      redis.call('HDEL', KEYS[2], all[i])
    elseif at >= now - {FRESH_US} then
      got, went, edged, n = got + a, went + w, edged + e, n + 1
    end
  end
  return got, went, edged, n
end
local got, went, edged, processes = fleet_lately()
-- pace at `pace` from now on, climbing back to the estimate `rate` concavely (a limit
-- measured again where it was, `steady` times in a row, is climbed back to more slowly)
local function cut(rate, pace, measured, steady, emergency, back)
  rate = math.max({MIN_RATE}, math.min({MAX_RATE}, rate))
  pace = math.max({MIN_RATE}, math.min(rate, pace))
  local k0 = math.min(math.max({PROBE_K:g}, {PROBE_STARTS} / rate), {FLEET_K_MAX:g})
  back = back or math.min(k0 * 2 ^ steady, {FLEET_K_MAX:g})
  local depth = math.max(margin, 1 - pace / rate)
  local k = math.min(back, (depth / margin) ^ (1 / 3) * back)
  redis.call('HSET', KEYS[1], 'rate', tostring(rate), 'pace0', tostring(pace), 'cut_at', NOW, 'probe_at', NOW,
    'k', tostring(k), 'steady', steady, 'emergency', emergency)
  -- `measured`: false, or 'confirmed' (an onset's measurement) or 'guess' (one an onset is
  -- still to confirm); either keeps when, and how many processes reported (see `grew`)
  if measured then
    redis.call('HSET', KEYS[1], 'measured_at', NOW, 'confirmed', measured == 'confirmed' and 1 or 0,
      'procs', processes)
  end
  redis.call('PUBLISH', channel, string.format('cut %s %d %d', NOW, rate * 1000, pace * 1000))
  return rate
end
local s = load(KEYS[1])
local rate = s and s.rate or nil
if refused > 0 then
  redis.call('HSET', KEYS[1], 'refused_at', NOW)
  redis.call('EXPIRE', KEYS[1], {RATE_TTL})
  if s == nil then
    -- the fleet's first refusal: guess what it was admitted over the last second (a
    -- window's limiter just exhausted granted that much; paced at half of it, the fleet
    -- climbs back within FIRST_BACK, and past by doubling, until an onset measures
    -- better). Admitted much less than it sent (a bucket's small burst, the fleet's
    -- first second): what it sent bounds the rate from above (slow start doubled in the
    -- last round trip). (The first refusals after this one are its overshoot's: the
    -- guard; then the emergency's or an onset's.) Guessed from what eight processes
    -- sent, a window's limiter was paced at twice its grant, refused all the way.
    local guess = got >= 0.25 * went and got or went
    if guess >= {MIN_RATE} then
      redis.call('HSET', KEYS[1], 'first_at', NOW)
      rate = cut(guess, 0.5 * guess, 'guess', 0, 0, {FIRST_BACK:g})
    end
  elseif now - s.cut_at >= {GUARD_US} then
    local pace = pace_of(s, margin, now)
    if now - s.measured_at >= {MEASURE_GAP_US} then
      -- (what the fleet was admitted since the window's edge: a span reaching back over
      -- the first window's lump would hold it on top of the next window's grant)
      local measured = edged
      -- an onset: the limiter is just exhausted, what it admitted lately is its rate;
      -- refused at a pace crossing slowly upward, the limit is not far below that pace
      -- (unless the last cut was an emergency's, or the fleet got clearly less than the
      -- pace: then the limit is below it, however the pace got there)
      local estimate = measured
      if s.emergency == 0 and measured >= (1 - 3 * margin) * pace then
        estimate = math.max(estimate, (1 - margin) * math.min(pace, (1 + 2 * margin) * s.rate))
      end
      -- Within two seconds of a guess (the first refusal's, or one raised to what the
      -- fleet was admitted), the reports, over the last two seconds, hold the climb from
      -- before it: halve at most, and an estimate that only this floor holds up is no
      -- measurement (it stays a guess: probed past by doubling, raised to what the fleet
      -- is admitted).
      local floored = false
      if now - s.first_at < 2 * {MEASURE_GAP_US} and estimate < 0.5 * s.rate then
        estimate, floored = 0.5 * s.rate, true
      end
      local steady = 0
      if math.abs(estimate - s.rate) <= {STEADY} * s.rate then steady = math.min(s.steady + 1, 3) end
      local kind = floored and 'guess' or 'confirmed'
      rate = cut(estimate, math.min(pace, (1 - margin) * estimate), kind, steady, 0)
    else
      -- refusals go on after the cut: the limit fell (or the estimate was high); slow
      -- down to what was admitted (at most to a quarter per step), and aim the probe at
      -- most at twice that
      local p = math.max(0.25 * pace, math.min(pace, (1 - margin) * got))
      rate = cut(math.min(s.rate, 2 * p), p, false, 0, 1)
    end
  end
elseif s ~= nil and pace_of(s, margin, now) >= {PROBE_MAX:g} * s.rate then
  -- twice the estimate and nothing refused: it was wrong; start over from there
  rate = cut({PROBE_MAX:g} * s.rate, (1 - margin) * {PROBE_MAX:g} * s.rate, false, 0, 0)
  redis.call('HSET', KEYS[1], 'confirmed', 0)
end
if pause_ms > 0 and s ~= nil and (now - s.cut_at >= {GUARD_US} or s.confirmed == 0) then
  -- a process found everything refused (a window's limiter is exhausted): what the fleet
  -- was admitted over a span reaching to the pause's end is what the limiter grants
  -- (at most to a quarter per pause: a burst of refusals says little about the limit
  -- after it)
  local span = {FRESH_US * 2 / 1e6:g}
  local estimate = math.max(0.25 * s.rate, got * span / (span + pause_ms / 1000))
  if estimate < s.rate then
    -- (never a faster pace than the one everything was refused at)
    rate = cut(estimate, math.min(pace_of(s, margin, now), (1 - margin) * estimate), false, 0, 1)
  end
end
-- Until an onset confirms it, the estimate is a guess, and no guess stands below what the
-- fleet is admitted now: a first refusal made while most processes had not reported yet
-- (a restarted Redis, processes rejoining one by one) would guess their few requests.
-- Nor does a confirmed estimate once more processes report than when it was set: one
-- measured while others ran on their own limits (not rejoined yet) is the members' share,
-- and a process that joins brings what it was admitted on its own.
-- (The state is read again: the cuts above may have changed it; read once more only if
-- this one does.) Not while everything is refused: then what the fleet was admitted is
-- the slow start that exhausted a window, and the pause's estimate is the better guess.
local s3 = load(KEYS[1])
-- the fleet-wide pause in force (read once: it decides the guess above and the reply)
local pause_until = num(redis.call('GET', KEYS[3]), now, now + {int(MAX_PAUSE * 1e6)}) or 0
local pausing = pause_ms > 0 or pause_until > now
-- (Nor while the pace is already above it: the probe is past the guess, and a cut to it
-- would pull the pace back, again at every sync, a crawl up instead of a doubling.)
local s3pace = s3 and pace_of(s3, margin, now) or 0
local grew = s3 ~= nil and processes > (s3.procs or processes)
-- (Admitted since each one's window edge: a young fleet's first window granted in a lump
-- is no rate.)
if s3 ~= nil and (s3.confirmed == 0 or grew) and edged > s3.rate and s3pace < edged
  and now - s3.cut_at >= {GUARD_US} and not pausing then
  rate = cut(edged, s3pace, false, 0, 0, {FIRST_BACK:g})
  redis.call('HSET', KEYS[1], 'procs', processes, 'first_at', NOW)
  s3 = load(KEYS[1])
end
local pace = -1
if rate ~= nil and s3 ~= nil then pace = math.floor(pace_of(s3, margin, now) * 1000) end
if pause_ms > 0 then
  local ms = math.min(pause_ms, {int(MAX_PAUSE * 1000)})
  local want = now + ms * 1000
  if pause_until < want then
    redis.call('SET', KEYS[3], string.format('%d', want), 'PX', math.max(1, math.ceil(ms)))
    redis.call('PUBLISH', channel, string.format('pause %s %d 0', NOW, want))
    pause_until = want
  end
end
return {{now, rate and math.floor(rate * 1000) or -1, pace, pause_until, processes}}
"""
)

#: KEYS: rate, gcra, pause. ARGV: k (starts wanted), margin, max_ahead_ms. GCRA on the
#: server's clock at the fleet's pace: hands out the next ``k`` start times. A fleet that
#: left its pace idle holds its probe back as long (no climb without evidence). Returns
#: {now_us, first_us, interval_us, rate * 1000, pace * 1000, pause_until_us}; interval 0
#: when the fleet is not paced, and then nothing is taken.
LEASE: Final = (
    _PRELUDE
    + f"""
local k, margin, max_ahead = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) * 1000
local pause_until = num(redis.call('GET', KEYS[3]), now, now + {int(MAX_PAUSE * 1e6)}) or 0
local s = load(KEYS[1])
if s == nil then return {{now, now, 0, -1, -1, pause_until}} end
local pace = pace_of(s, margin, now)
local interval = math.floor(1000000 / pace)
local tat = num(redis.call('GET', KEYS[2]), 0, now + max_ahead)
if tat ~= nil and now - tat > interval then
  local held = math.min(now - tat, now - s.probe_at)
  redis.call('HSET', KEYS[1], 'probe_at', string.format('%d', s.probe_at + held))
end
if tat == nil or tat < now then tat = now end
if tat < pause_until then tat = pause_until end
redis.call('SET', KEYS[2], string.format('%d', tat + k * interval), 'EX', {GCRA_TTL})
return {{now, tat, interval, math.floor(s.rate * 1000), math.floor(pace * 1000), pause_until}}
"""
)


class FleetKeys:
    """The Redis key names of one API and api key (see the module docstring)."""

    __slots__ = ("gcra", "news", "pause", "prefix", "procs", "rate")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.rate = prefix + ":rate"
        self.gcra = prefix + ":gcra"
        self.procs = prefix + ":procs"
        self.pause = prefix + ":pause"
        #: A pub/sub channel, not a key: nothing is stored under it.
        self.news = prefix + ":news"


def fleet_keys(base_url: str, api_key: str) -> FleetKeys:
    """Key names from the base URL (host and path only: no credentials, no query) and a
    keyed hash of the api key. The braces are a Redis Cluster hash tag: one slot, so a
    script may touch them all."""
    parts = urlsplit(base_url)
    where = (parts.hostname or "") + (f":{parts.port}" if parts.port else "") + parts.path.rstrip("/")
    digest = hmac.new(SALT, api_key.encode(), hashlib.sha256).hexdigest()[:32]
    return FleetKeys(f"asyncvox:{{{where}|{digest}}}")
