"""redis-py 8's client-side cache against kv (run by tests/client_cache.rs).

The client keeps GET replies in its own memory and the server's invalidation pushes
(CLIENT TRACKING) keep them fresh. Checks:
1. repeated reads are served locally: the server sees no command for them;
2. a write from another client invalidates the cached key within one round trip;
3. BCAST with a prefix: every change under the prefix is pushed, others are not.
"""

import os
import sys

import redis
from redis.cache import CacheConfig

HOST, PORT = "127.0.0.1", int(os.environ["INFRALAB_KV_PORT"])


def commands_processed(client):
    return client.info("stats")["total_commands_processed"]


def check(condition, message):
    if not condition:
        print("FAILED:", message)
        sys.exit(1)


def cached_reads_and_invalidation():
    cached = redis.Redis(host=HOST, port=PORT, protocol=3, cache_config=CacheConfig())
    other = redis.Redis(host=HOST, port=PORT, protocol=3)
    other.set("user:1", "alice")
    check(cached.get("user:1") == b"alice", "first read fetches the value")
    before = commands_processed(other)
    for _ in range(100):
        check(cached.get("user:1") == b"alice", "cached read")
    after = commands_processed(other)
    # The one command between the two figures is the first INFO itself.
    check(after - before == 1, f"100 cached reads reached the server: {after - before - 1}")
    check(cached.get_cache().size >= 1, "the value is in the local cache")

    other.set("user:1", "bob")
    cached.ping()  # one round trip: the invalidation arrives before its reply
    check(cached.get("user:1") == b"bob", "the write from another client is seen")
    other.delete("user:1")
    cached.ping()
    check(cached.get("user:1") is None, "a delete is seen")


def bcast_with_prefix():
    client = redis.Redis(host=HOST, port=PORT, protocol=3)
    other = redis.Redis(host=HOST, port=PORT, protocol=3)
    conn = client.connection_pool.get_connection()
    received = []
    conn._parser.set_invalidation_push_handler(received.append)
    conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:")
    check(conn.read_response() in (b"OK", "OK", True), "CLIENT TRACKING ON BCAST")
    other.set("post:1", "not under the prefix")
    other.set("user:7", "carol")
    conn.send_command("PING")
    conn.read_response()
    check(received == [[b"invalidate", [b"user:7"]]], f"BCAST pushes: {received}")
    client.connection_pool.release(conn)


cached_reads_and_invalidation()
bcast_with_prefix()
print("ok")
