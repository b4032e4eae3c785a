-- Take the lock only if it is free, with the caller's token and a TTL.
-- KEYS[1]: the lock; ARGV: token, TTL (ms). Returns OK, or nil if someone holds it.
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
