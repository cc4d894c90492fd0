-- tollgate-rls: check every counted descriptor of one request, then increment all or none.
-- Redis runs a script atomically, so concurrent requests can never both see room for one call.
--
-- KEYS[k]  one counter per distinct (domain, entries, unit, window)
-- ARGV[k]  for k = 1..#KEYS: how long KEYS[k] lives (ms: to the end of its window plus a
--          margin; relative, so Redis' clock need not agree with the service's)
-- then, per descriptor in request order, three values:
--          index of its key in KEYS (1-based), its limit, its addend
-- Returns {admitted, count_1, over_1, count_2, over_2, ...}: admitted and over are 1 or 0;
-- a count is the value after this request's increment when admitted, as it stood otherwise.

local nkeys = #KEYS
local ndesc = (#ARGV - nkeys) / 3

-- Several descriptors may share one key: each is checked against everything added to it.
local added = {}
local current = {}
for k = 1, nkeys do
  added[k] = 0
  current[k] = tonumber(redis.call('GET', KEYS[k]) or '0')
end
for d = 0, ndesc - 1 do
  local k = tonumber(ARGV[nkeys + 3 * d + 1])
  added[k] = added[k] + tonumber(ARGV[nkeys + 3 * d + 3])
end

local over = {}
local admitted = 1
for d = 0, ndesc - 1 do
  local k = tonumber(ARGV[nkeys + 3 * d + 1])
  local limit = tonumber(ARGV[nkeys + 3 * d + 2])
  -- A limit of 0 refuses everything, even a request that adds nothing.
  if limit == 0 or current[k] + added[k] > limit then
    over[d] = 1
    admitted = 0
  else
    over[d] = 0
  end
end

if admitted == 1 then
  for k = 1, nkeys do
    if added[k] > 0 then
      current[k] = redis.call('INCRBY', KEYS[k], added[k])
      redis.call('PEXPIRE', KEYS[k], ARGV[k])
    end
  end
end

local reply = {admitted}
for d = 0, ndesc - 1 do
  local k = tonumber(ARGV[nkeys + 3 * d + 1])
  reply[#reply + 1] = current[k]
  reply[#reply + 1] = over[d]
end
return reply
