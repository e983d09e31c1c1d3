package ratelimit

import "github.com/redis/go-redis/v9"

// Every script reads the clock with TIME on the Redis server, so nodes with
// skewed clocks still agree. Times are microseconds (GCRA) and milliseconds
// (lease scores) since the Unix epoch; both fit exactly in a Lua double.
// Scripts touch only the keys passed in KEYS, and the two keys of a user
// share the hash tag {userID}, so they run unchanged on Redis Cluster.
// Effects replication (default since Redis 5) makes TIME safe in scripts.
const luaCommon = `
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- GCRA: the key holds the theoretical arrival time (TAT) of the next request.
-- A request is allowed when the new TAT is at most burst*interval ahead of
-- now. Returns allowed (0/1), remaining, and the wait in microseconds.
local function gcra(key, interval, burst, now)
  local tat = now
  local v = redis.call('GET', key)
  if v then
    tat = math.max(tonumber(v) or now, now)
  end
  local new_tat = tat + interval
  local window = interval * burst
  local over = new_tat - now - window
  if over > 0 then
    return 0, 0, math.ceil(over)
  end
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  return 1, math.floor((window - (new_tat - now)) / interval), 0
end

-- The subscription zset of a user: member "<nodeID>|<room>", score = lease
-- expiry in ms. The key expires with its longest lease.
local function set_expiry(key)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if top[2] then
    redis.call('PEXPIREAT', key, math.ceil(tonumber(top[2])))
  end
end
`

// scriptGCRA: KEYS[1] bucket; ARGV interval_us, burst.
// Returns {allowed, remaining, wait_us}.
var scriptGCRA = redis.NewScript(luaCommon + `
local a, r, w = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now_us())
return {a, r, w}
`)

// scriptAcquire optionally charges one event, then grants rooms in order while
// the user's distinct room count across live leases stays within max. A room
// some node already holds for the user is granted without using quota (it is
// counted once). Granting is idempotent: the member of this node is upserted.
// KEYS[1] event bucket, KEYS[2] subscription zset;
// ARGV interval_us (0 = do not charge an event), burst, node, max, lease_ms,
// cap_prefix, cap (-1 = none: rooms starting with cap_prefix count at most
// cap), rooms... Returns {event_allowed, event_remaining, wait_us, count,
// flags} where flags has '1' (granted), '0' (quota) or '2' (cap) per room.
var scriptAcquire = redis.NewScript(luaCommon + `
local now = now_us()
local interval = tonumber(ARGV[1])
local remaining = -1
if interval > 0 then
  local ok, rem, wait = gcra(KEYS[1], interval, tonumber(ARGV[2]), now)
  if ok == 0 then
    return {0, 0, wait, 0, ''}
  end
  remaining = rem
end
local key = KEYS[2]
local now_ms = math.floor(now / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
local prefix = ARGV[3] .. '|'
local max = tonumber(ARGV[4])
local expires = now_ms + tonumber(ARGV[5])
local cap_prefix, cap = ARGV[6], tonumber(ARGV[7])
local function capped(room)
  return cap >= 0 and string.sub(room, 1, #cap_prefix) == cap_prefix
end
local held, count, cap_count = {}, 0, 0
for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  local i = string.find(m, '|', 1, true)
  if i then
    local room = string.sub(m, i + 1)
    if not held[room] then
      held[room] = true
      count = count + 1
      if capped(room) then cap_count = cap_count + 1 end
    end
  end
end
local flags = {}
for j = 8, #ARGV do
  local room = ARGV[j]
  local grant = held[room]
  local flag = '0'
  if not grant and count < max then
    if capped(room) and cap_count >= cap then
      flag = '2'
    else
      grant = true
      held[room] = true
      count = count + 1
      if capped(room) then cap_count = cap_count + 1 end
    end
  end
  if grant then
    redis.call('ZADD', key, expires, prefix .. room)
    flag = '1'
  end
  flags[#flags + 1] = flag
end
set_expiry(key)
return {1, remaining, 0, count, table.concat(flags)}
`)

// scriptExtend is the heartbeat: it pushes the lease of this node's rooms
// forward without adding or removing any (so it cannot race with a
// concurrent acquire or release) and reports how many were missing (lost by
// a Redis restart or an expired lease), which triggers a resync.
// KEYS[1] subscription zset; ARGV node, lease_ms, rooms... Returns missing.
var scriptExtend = redis.NewScript(luaCommon + `
local key = KEYS[1]
local now_ms = math.floor(now_us() / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
local prefix = ARGV[1] .. '|'
local expires = now_ms + tonumber(ARGV[2])
local missing = 0
for j = 3, #ARGV do
  local m = prefix .. ARGV[j]
  if redis.call('ZSCORE', key, m) then
    redis.call('ZADD', key, expires, m)
  else
    missing = missing + 1
  end
end
set_expiry(key)
return missing
`)

// scriptSync makes this node's members of a user's zset exactly the given
// rooms (forced: this is what the node really holds, even if a split brain
// pushed the user above the limit). Used after Redis comes back and when a
// heartbeat finds missing members.
// KEYS[1] subscription zset; ARGV node, lease_ms, rooms... Returns the number
// of distinct rooms of the user.
var scriptSync = redis.NewScript(luaCommon + `
local key = KEYS[1]
local now_ms = math.floor(now_us() / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
local prefix = ARGV[1] .. '|'
local want = {}
for j = 3, #ARGV do
  want[prefix .. ARGV[j]] = true
end
for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix and not want[m] then
    redis.call('ZREM', key, m)
  end
end
local expires = now_ms + tonumber(ARGV[2])
for j = 3, #ARGV do
  redis.call('ZADD', key, expires, prefix .. ARGV[j])
end
set_expiry(key)
local rooms, count = {}, 0
for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  local i = string.find(m, '|', 1, true)
  if i and not rooms[string.sub(m, i + 1)] then
    rooms[string.sub(m, i + 1)] = true
    count = count + 1
  end
end
return count
`)
