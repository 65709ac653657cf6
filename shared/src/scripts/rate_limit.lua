-- Rate limit: one or more policies of one caller, checked together, all or nothing.
-- Each policy is fixed_window, sliding_window, token_bucket or gcra; the request weighs
-- `cost` units in every one. First every policy is read and asked whether `cost` fits;
-- only if all fit (and mode is 'check') is the cost counted, in all of them. A refused
-- request therefore counts against none (a fixed window checked alone counts at once and
-- takes the units back on a refusal: the same outcome, as no one sees inside a script).
-- Time comes from Redis (TIME), never the caller.
-- KEYS[1]    the caller's index: sorted set of the caller's limiter keys, scored by the
--            millisecond each expires (DELETE /rate-limit/{user_id} reads it)
-- KEYS[2..]  one limiter key per policy (all share the caller's hash tag)
-- ARGV[1]    'check' (count if all fit) or 'status' (read only: run with flags=no-writes)
-- ARGV[2]    nonce: a random token, the sliding-window log member(s) of this request (empty
--            when no policy is a sliding window: nothing else reads it)
-- ARGV[3]    cost: units this request weighs (1..=each policy's limit)
-- ARGV[4..]  per policy, three values: algorithm, limit, window in milliseconds
-- Returns    {allowed (1|0), then per policy: fits (1|0), current_count, remaining,
--            reset_ms, retry_ms}; retry_ms is 0 for a policy that fits
--
-- Work per call: O(log n) per policy plus constants (TRIM), and O(cost) for the sliding
-- window's log (one member per unit). Every key written gets a TTL here.
local TRIM = 100
local counting = ARGV[1] == 'check'
local nonce = ARGV[2]
local cost = tonumber(ARGV[3])
-- Whole microseconds (exact in Lua's doubles until 2^53 µs, the year 2255), always printed
-- with %d: Lua's own number-to-string keeps 14 digits, 100 µs here. Read once, and only
-- when a step needs it (clock()): a fixed-window check that creates no key never does.
local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return now
end
local function fmt(n) return string.format('%d', n) end

local policies = {}
for i = 2, #KEYS do
  local base = 4 + (i - 2) * 3
  policies[#policies + 1] = {
    key = KEYS[i], algorithm = ARGV[base], limit = tonumber(ARGV[base + 1]),
    window_ms = tonumber(ARGV[base + 2]),
  }
end

-- Only the algorithms this call uses get their functions defined: a script's body runs on
-- every call, and defining all four algorithms' functions cost Redis about 1 µs a call.
-- (Tables cost Redis about 0.1 µs each per call, so the unused algorithms get none either;
-- loops are numeric, as ipairs costs a function call per step.)
local used = {}
for i = 1, #policies do used[policies[i].algorithm] = true end
local algorithms = {}

-- Fixed window: a counter with a TTL (INCRBY + PEXPIRE). Redis expires a key once its
-- clock is past the deadline, so the counter gets window - 1 ms: it then lives exactly
-- `window`, and PTTL + 1 ms is when the next window opens. A check of this one policy counts
-- first and takes the units back if it refuses (in one script nobody sees the difference):
-- two commands for the common answer instead of three. With several policies every one is
-- read before any is written, and the counting is `count`, run before other writes (see the
-- main loop: Redis does not undo a failed script's writes). The key's deadline is set when
-- it is born, and its index entry then covers its whole life: later calls only make sure
-- the entry is there (the ZSCORE every policy reads, no TIME), in case the index was lost
-- (deleted, or evicted under a volatile-* maxmemory policy).
if used.fixed_window then
  local fixed = {}
  algorithms.fixed_window = fixed
  function fixed.peek(p)
    if counting and #policies == 1 then
      p.counted = true
      p.count = redis.call('INCRBY', p.key, cost)
      p.pttl = redis.call('PTTL', p.key)
      p.fits = p.count <= p.limit
    else
      p.count = tonumber(redis.call('GET', p.key) or '0')
      p.pttl = redis.call('PTTL', p.key)
      p.fits = p.count + cost <= p.limit
    end
  end
  -- A counter without a TTL (born in this call, or PERSISTed by hand): never leave it immortal.
  local function expire(p)
    if p.pttl == -1 then
      p.pttl = p.window_ms - 1
      p.born = true
      redis.call('PEXPIRE', p.key, p.pttl)
    end
  end
  -- Counts a policy checked among others, before any other policy is written (see below):
  -- the error of an INCRBY that fails, or nil.
  function fixed.count(p)
    local n = redis.pcall('INCRBY', p.key, cost)
    if type(n) == 'table' then return n end
    p.count, p.counted = n, true
    if p.pttl == -2 then p.pttl = -1 end -- born now, without a TTL yet
  end
  fixed.commit = expire
  function fixed.repair(p)
    if p.counted then
      p.count = p.count - cost
      if p.count <= 0 and p.pttl == -1 then
        -- Born in this call (or a zero kept by hand): nothing to keep.
        redis.call('DEL', p.key)
        p.count, p.pttl = 0, -2
        return
      end
      redis.call('DECRBY', p.key, cost)
    end
    expire(p)
  end
  function fixed.listed(p) return p.born or not p.entry end
  function fixed.answer(p)
    local reset = p.window_ms
    if p.pttl >= 0 then reset = p.pttl + 1 end
    local retry = 0
    if not p.fits then retry = reset end
    -- After the limit was lowered the count can exceed it: remaining stays at 0.
    return p.count, math.max(p.limit - p.count, 0), reset, retry
  end
end

-- Sliding-window log: a sorted set of admitted units scored by their time; exact (at most
-- `limit` units in any window-long interval), memory O(limit). Members are the caller's
-- nonce (plus the unit's number): a count or a time can repeat after a removal, and ZADD
-- then moves a member instead of adding one. An entry is live while its score > now -
-- window; live entries are ZCARD minus a ZCOUNT of the expired ones (O(log n)), and at most
-- TRIM + cost expired ones, the oldest, are deleted per call (a limit of 1,000,000 can leave that
-- many, which one ZREMRANGEBYSCORE would delete in one go, blocking Redis).
if used.sliding_window then
  local sliding = {}
  algorithms.sliding_window = sliding
  function sliding.peek(p)
    clock()
    p.window_us = p.window_ms * 1000
    p.expired = redis.call('ZCOUNT', p.key, '-inf', fmt(now - p.window_us))
    if counting and p.expired > 0 then
      -- TRIM plus the units this call may add: otherwise a caller of cost > TRIM who keeps
      -- calling within the window grows the log by cost - TRIM per call, without end.
      local trim = math.min(p.expired, TRIM + cost)
      redis.call('ZREMRANGEBYRANK', p.key, 0, trim - 1)
      p.expired = p.expired - trim
    end
    p.count = redis.call('ZCARD', p.key) - p.expired
    p.fits = p.count + cost <= p.limit
  end
  function sliding.commit(p)
    local members = {}
    for unit = 1, cost do
      members[#members + 1] = fmt(now)
      members[#members + 1] = nonce .. ':' .. unit
      -- ZADD in slices: unpack of a million arguments would overflow Lua's stack.
      if #members >= 1000 or unit == cost then
        redis.call('ZADD', p.key, unpack(members))
        members = {}
      end
    end
    p.count = p.count + cost
    -- The key outlives its newest entry: deadline rounded up to the millisecond.
    redis.call('PEXPIREAT', p.key, fmt(math.ceil((now + p.window_us) / 1000)))
  end
  function sliding.repair(p)
    if redis.call('PTTL', p.key) == -1 then redis.call('PEXPIRE', p.key, p.window_ms) end
  end
  function sliding.answer(p)
    -- `cost` more fit when the live entry of rank count + cost - limit - 1 has slid out (the
    -- oldest for cost 1, unless the limit was lowered meanwhile); for a request that fits,
    -- reset is when the next slot frees. An entry slides out at score + window, rounded up
    -- to the millisecond: never early.
    local rank = p.expired + math.max(p.count - p.limit, 0)
    if not p.fits then rank = p.expired + p.count + cost - p.limit - 1 end
    local entry = redis.call('ZRANGE', p.key, rank, rank, 'WITHSCORES')
    local reset = p.window_ms
    if entry[2] then reset = math.ceil((tonumber(entry[2]) + p.window_us - now) / 1000) end
    local retry = 0
    if not p.fits then retry = reset end
    return p.count, math.max(p.limit - p.count, 0), reset, retry
  end
end

-- Token bucket: capacity = limit, refilled continuously at limit tokens per window. A hash
-- {tokens, ts}, written with every digit (%.17g, %d). If Redis's clock went back (a
-- failover, an NTP step) nothing is refilled and the later time is kept.
if used.token_bucket then
  local bucket = {}
  algorithms.token_bucket = bucket
  function bucket.peek(p)
    clock()
    local state = redis.call('HMGET', p.key, 'tokens', 'ts')
    p.exists = state[2] ~= false
    p.tokens = tonumber(state[1]) or p.limit
    p.ts = tonumber(state[2]) or now
    p.rate = p.limit / (p.window_ms * 1000)
    if now > p.ts then
      p.tokens = p.tokens + (now - p.ts) * p.rate
      p.ts = now
    end
    -- Clamped on every call: the limit may have been lowered since the bucket was filled.
    p.tokens = math.min(math.max(p.tokens, 0), p.limit)
    p.fits = p.tokens >= cost
  end
  -- Whole microseconds until the bucket holds `target` tokens, computed as the next call will
  -- compute its refill (same numbers, same operations), so that waiting this long is enough.
  local function wait_us(p, target)
    local us = math.max(math.ceil((target - p.tokens) / p.rate), 0)
    while p.tokens + us * p.rate < target do us = us + 1 end
    return us
  end
  local function bucket_store(p)
    redis.call('HSET', p.key, 'tokens', string.format('%.17g', p.tokens), 'ts', fmt(p.ts))
    -- Once full again the bucket holds no information: let it expire then.
    redis.call('PEXPIREAT', p.key, fmt(math.ceil((now + wait_us(p, p.limit)) / 1000)))
  end
  function bucket.commit(p)
    p.tokens = p.tokens - cost
    bucket_store(p)
  end
  function bucket.repair(p)
    -- The refill is stored (it counts nothing) so that the next call starts from the numbers
    -- this answer's waits were computed from. No bucket is a full one: nothing to store.
    if p.exists then bucket_store(p) end
  end
  function bucket.answer(p)
    local remaining = math.floor(p.tokens)
    local retry = 0
    if not p.fits then retry = math.ceil(wait_us(p, cost) / 1000) end
    -- reset: when the next whole token arrives (0 when the bucket is full).
    local reset = 0
    if p.tokens < p.limit then reset = math.ceil(wait_us(p, remaining + 1) / 1000) end
    return p.limit - remaining, remaining, reset, retry
  end
end

-- GCRA (generic cell rate algorithm, as redis-cell): one string, the theoretical arrival
-- time (TAT, whole µs). Each unit moves the TAT an emission interval T = window/limit
-- further; a request fits while the new TAT is at most limit * T ahead of now: bursts up
-- to `limit`, then one unit per T. T is rounded UP to the microsecond, so every number
-- is an exact integer (no drift) and the rate errs on the slow side by under 1 µs per
-- unit, while a cold start still admits exactly `limit` (limit * T <= limit * T).
if used.gcra then
  local gcra = {}
  algorithms.gcra = gcra
  function gcra.peek(p)
    clock()
    p.t = math.ceil(p.window_ms * 1000 / p.limit)
    p.burst = p.limit * p.t
    p.tat = math.max(tonumber(redis.call('GET', p.key) or '0'), now)
    p.new_tat = p.tat + cost * p.t
    p.fits = p.new_tat - now <= p.burst
  end
  function gcra.commit(p)
    p.tat = p.new_tat
    -- Once now reaches the TAT the key means what no key means: let it expire then.
    redis.call('SET', p.key, fmt(p.tat), 'PXAT', fmt(math.ceil(p.tat / 1000)))
  end
  function gcra.repair(p)
    if redis.call('PTTL', p.key) == -1 then
      redis.call('PEXPIREAT', p.key, fmt(math.ceil(p.tat / 1000)))
    end
  end
  function gcra.answer(p)
    local ahead = p.tat - now
    local remaining = math.min(math.max(math.floor((p.burst - ahead) / p.t), 0), p.limit)
    local retry = 0
    -- Fits once now >= new_tat - burst; rounded up to the millisecond, never early.
    if not p.fits then retry = math.ceil((p.new_tat - p.burst - now) / 1000) end
    -- reset: when the whole burst is available again.
    return p.limit - remaining, remaining, math.ceil(ahead / 1000), retry
  end
end

-- Redis does not undo a failed script's writes, so everything that can fail on what a key
-- holds (another client's text or type in a limiter key or the index) is read first: each
-- policy's index entry, then its state.
local allowed = 1
for i = 1, #policies do
  local p = policies[i]
  p.impl = algorithms[p.algorithm]
  if not p.impl then return redis.error_reply('unknown algorithm ' .. tostring(p.algorithm)) end
  if counting then p.entry = tonumber(redis.call('ZSCORE', KEYS[1], p.key)) end
  p.impl.peek(p)
  if not p.fits then allowed = 0 end
end
if counting then
  -- A refusal changed nothing: inside the idempotency envelope it is not recorded, so a keyed
  -- retry asks again (and may be admitted); an admission is recorded and replayed.
  if allowed == 0 then idem_record = false end
  -- The one write that can still fail on a key's content is a fixed window's INCRBY ('1.5'
  -- reads as a number in Lua; a count past 2^63): those go first, and one that fails takes
  -- back what the others counted before anything else is written.
  if allowed == 1 then
    for i = 1, #policies do
      local p = policies[i]
      local failed = p.impl.count and not p.counted and p.impl.count(p)
      if failed then
        for j = 1, i - 1 do
          if policies[j].counted then policies[j].impl.repair(policies[j]) end
        end
        return failed
      end
    end
  end
  for i = 1, #policies do
    local p = policies[i]
    if allowed == 1 then p.impl.commit(p) else p.impl.repair(p) end
  end
  -- Keep every limiter key listed in the caller's index, scored no earlier than the key
  -- can expire, so that a reset finds them all. After this call no key outlives
  -- now + window + 1 ms (GCRA: + limit µs, its emission interval rounded up), so that bound
  -- is what the entry must cover. Use keeps pushing expiries forward; an entry is written
  -- with one window of headroom, so it is rewritten about once a window, not on every call
  -- (one ZSCORE a policy instead of a write). Only then are expired entries trimmed (at most
  -- TRIM) and the index's own life extended to its latest entry.
  -- A fixed-window key is listed when born (its deadline never moves) or missing from the
  -- index, the others when their entry falls short of the bound.
  local function bound(p)
    return math.floor(clock() / 1000) + p.window_ms + 1 + math.ceil(p.limit / 1000)
  end
  local listed = false
  for i = 1, #policies do
    local p = policies[i]
    local list
    if p.impl.listed then
      list = p.impl.listed(p)
    else
      list = not p.entry or p.entry < bound(p)
    end
    if list then
      redis.call('ZADD', KEYS[1], fmt(bound(p) + p.window_ms), p.key)
      listed = true
    end
  end
  if listed then
    local now_ms = math.floor(clock() / 1000)
    local stale = redis.call('ZCOUNT', KEYS[1], '-inf', fmt(now_ms))
    if stale > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, math.min(stale, TRIM) - 1) end
    local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[1], last[2])
  end
end
local out = {allowed}
for i = 1, #policies do
  local p = policies[i]
  local current, remaining, reset, retry = p.impl.answer(p)
  local fits = 0
  if p.fits then fits = 1 end
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = fits, current, remaining, reset, retry
end
return out
