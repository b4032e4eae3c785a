-- Release the lock only if we still hold it (compare-and-delete): a client whose lock
-- expired must not delete the lock another client has taken since.
-- KEYS[1]: the lock; ARGV[1]: our token. Returns 1 if released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
