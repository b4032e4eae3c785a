-- Sliding-window rate limiter: one sorted set per client, scored by request time.
-- KEYS[1]: the client's window; ARGV: now (ms), window (ms), limit, a unique request id.
-- Returns {1, count} when the request is admitted, {0, count} when it is refused.
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count >= limit then
  return {0, count}
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, window)
return {1, count + 1}
