package redisstate

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Key layout. Every key of one experiment, tracker or bandit carries the
// hash tag {LEN:NAME} (the name's length in decimal, then the name), so
// that its keys share a Redis Cluster slot (the scripts touch two at once)
// and no two names spell the same key:
//
//	PREFIX:{LEN:NAME}:tracker          aggregate of every replica's tracker
//	PREFIX:{LEN:NAME}:tracker:r:ID:INC this incarnation's contribution
//	PREFIX:{LEN:NAME}:bandit           aggregate of a bandit
//	PREFIX:{LEN:NAME}:bandit:r:ID:INC
//	PREFIX:{LEN:NAME}:stops            stop and resume decisions
//
// ID is Options.ReplicaID and INC a random id of the Sync (an incarnation:
// a restarted process is a new contributor, never a continuation).
func tag(prefix, name string) string {
	return prefix + ":{" + strconv.Itoa(len(name)) + ":" + name + "}"
}

// flushScript applies one incarnation's cumulative totals to an aggregate,
// idempotently. The caller reads the aggregate back with an HGETALL
// pipelined right after it (on the same connection, so it sees this
// script's writes).
//
// KEYS[1] is the aggregate hash, KEYS[2] the incarnation's record. The
// record holds what this incarnation last contributed (its cumulative
// values), so the script adds the difference between the new values and
// the recorded ones: sending the same values twice adds nothing, a reply
// lost after the script ran costs nothing, and a delayed older call is
// refused by its sequence number.
//
// ARGV: 1 the epoch the replica knows ("" if none), 2 a fresh epoch to
// use if the aggregate is new, 3 the call's sequence number, 4 the
// record's TTL in milliseconds (0: none), 5 "1" for a full resend, 6 "1"
// to rebuild (the replica found data this package did not write), 7 the
// number of counters, 8 the number of moments, then per counter NAME
// VALUE BASE and per moments NAME "N MEAN M2" BASE.
//
// The epoch names one life of the aggregate. When Redis lost it (a restart
// without persistence, an eviction) or it held data this package did not
// write, a new epoch starts and every replica sends its totals in full
// once (reply "resync"), so the aggregate is rebuilt from the live
// replicas. When only the record is gone (it expired while the replica
// could not reach Redis), the full resend carries BASE, what the replica
// knows it contributed, in place of the record. Arguments and the fields
// read are validated before anything is written.
//
// Replies: {"ok", epoch}; {"resync", epoch} or {"corrupt", epoch}: resend
// in full; {"stale", epoch}: a later call of this incarnation was applied
// already.
var flushScript = redis.NewScript(`
local agg, rec = KEYS[1], KEYS[2]
local known, cand, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])
local full, rebuild = ARGV[5] == '1', ARGV[6] == '1'
local nc, nm = tonumber(ARGV[7]), tonumber(ARGV[8])

local function counter(s)
  if not s then return 0 end
  if #s > 19 or not string.match(s, '^%d+$') then return nil end
  return tonumber(s)
end
local function moments(s)
  if not s then return {0, 0, 0} end
  local n, mean, m2 = string.match(s, '^(%d+) (%S+) (%S+)$')
  n, mean, m2 = tonumber(n), tonumber(mean), tonumber(m2)
  if not n or not mean or not m2 then return nil end
  if mean ~= mean or m2 ~= m2 or m2 < 0 or m2 == math.huge or mean == math.huge or mean == -math.huge then return nil end
  return {n, mean, m2}
end
local function merge(a, b)
  local n = a[1] + b[1]
  if a[1] == 0 then return b end
  if b[1] == 0 then return a end
  local d = b[2] - a[2]
  return {n, a[2] + d * b[1] / n, a[3] + b[3] + d * d * a[1] * b[1] / n}
end
local function remove(a, b)
  if b[1] >= a[1] then return {0, 0, 0} end
  if b[1] == 0 then return a end
  local n = a[1] - b[1]
  local mean = (a[1] * a[2] - b[1] * b[2]) / n
  local d = b[2] - mean
  local m2 = a[3] - b[3] - d * d * n * b[1] / a[1]
  if not (m2 > 0) then m2 = 0 end
  return {n, mean, m2}
end
-- call runs a command whose arguments are head followed by list, in
-- chunks small enough for unpack, and concatenates multi-bulk replies.
local function call(head, list)
  local out = {}
  for i = 1, #list, 500 do
    local args = {unpack(head)}
    for j = i, math.min(i + 499, #list) do args[#args + 1] = list[j] end
    local r = redis.call(unpack(args))
    if type(r) == 'table' then
      for _, v in ipairs(r) do out[#out + 1] = v end
    end
  end
  return out
end

-- arguments
local fields, isc, vals, bases, raws = {}, {}, {}, {}, {}
local i = 9
for k = 1, nc + nm do
  local c = k <= nc
  local v, b
  if c then v, b = counter(ARGV[i + 1]), counter(ARGV[i + 2]) else v, b = moments(ARGV[i + 1]), moments(ARGV[i + 2]) end
  if not v or not b then return redis.error_reply('ERR quiver: bad argument for ' .. ARGV[i]) end
  local p = 'm:'
  if c then p = 'c:' end
  fields[k], isc[k], vals[k], bases[k], raws[k] = p .. ARGV[i], c, v, b, ARGV[i + 1]
  i = i + 3
end

-- what the aggregate and the record hold of these fields
local a = call({'HMGET', agg}, fields)
local r = call({'HMGET', rec}, fields)
local rmeta = redis.call('HMGET', rec, '_epoch', '_seq')
local ok = not rebuild and counter(rmeta[2] or nil) ~= nil
for k = 1, #fields do
  local av, rv = a[k] or nil, r[k] or nil
  if isc[k] then
    ok = ok and counter(av) ~= nil and counter(rv) ~= nil
  else
    ok = ok and moments(av) ~= nil and moments(rv) ~= nil
  end
end
local epoch = redis.call('HGET', agg, '_epoch')
local recEpoch = rmeta[1]
if not ok then
  redis.call('DEL', agg, rec)
  epoch, recEpoch = false, false
  a, r = {}, {}
end
if not epoch then
  epoch = cand
  redis.call('HSET', agg, '_epoch', epoch)
end
if not ok and known ~= '' and not full then return {'corrupt', epoch} end
local useBase = false
if recEpoch ~= epoch then
  -- no record of this incarnation in this epoch
  if known ~= '' and not full then return {'resync', epoch} end
  if recEpoch then
    redis.call('DEL', rec)
    r = {}
  end
  useBase = known == epoch
elseif counter(rmeta[2] or nil) >= seq then
  return {'stale', epoch}
end

local aset, rset = {}, {}
for k = 1, #fields do
  local f, v, b = fields[k], vals[k], bases[k]
  local rv = r[k] or nil
  if isc[k] then
    local old = 0
    if rv then old = counter(rv) elseif useBase then old = b end
    local d = v - old
    if d ~= 0 then redis.call('HINCRBY', agg, f, string.format('%.0f', d)) end
  else
    local old = {0, 0, 0}
    if rv then old = moments(rv) elseif useBase then old = b end
    local cur = moments(a[k] or nil)
    if v[1] > old[1] or (v[1] == old[1] and v[2] == old[2] and v[3] == old[3]) then
      cur = merge(cur, remove(v, old))
    else
      cur = merge(remove(cur, old), v)
    end
    aset[#aset + 1] = f
    aset[#aset + 1] = string.format('%.0f %.17g %.17g', cur[1], cur[2], cur[3])
  end
  rset[#rset + 1] = f
  rset[#rset + 1] = raws[k]
end
call({'HSET', agg}, aset)
rset[#rset + 1] = '_epoch'
rset[#rset + 1] = epoch
rset[#rset + 1] = '_seq'
rset[#rset + 1] = ARGV[3]
call({'HSET', rec}, rset)
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', rec, ARGV[4]) end
return {'ok', epoch}
`)

// stopsScript records stop and resume decisions and returns every
// variant's latest. KEYS[1] is the stops hash; ARGV[1] a fresh epoch to
// use if the hash is new (or held data this package did not write); then
// per decision VARIANT STOPPED SECONDS NANOS REPLICA REASON. Each decision gets
// the next version ("_ver"), so replicas apply them in the order Redis
// took them.
var stopsScript = redis.NewScript(`
local key = KEYS[1]
local flat = redis.call('HGETALL', key)
local epoch, ok = nil, true
for i = 1, #flat, 2 do
  local f, v = flat[i], flat[i + 1]
  if f == '_epoch' then epoch = v
  elseif f == '_ver' then
    if #v > 19 or not string.match(v, '^%d+$') then ok = false end
  elseif string.sub(f, 1, 2) == 'v:' then
    if not string.match(v, '^%d+|[01]|%-?%d+|%d+|') then ok = false end
  else ok = false end
end
if not ok then
  redis.call('DEL', key)
  epoch = nil
end
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', key, '_epoch', epoch)
end
for i = 2, #ARGV, 6 do
  local ver = redis.call('HINCRBY', key, '_ver', 1)
  redis.call('HSET', key, 'v:' .. ARGV[i], ver .. '|' .. table.concat({ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]}, '|'))
end
return redis.call('HGETALL', key)
`)
