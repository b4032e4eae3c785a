"""redis-py's Script objects (register_script: EVALSHA, falling back to EVAL on
NOSCRIPT) against kv and redis-server (run by tests/scripting.rs).

The course's rate limiter and lock (tests/data/lua/) run unchanged on both servers and
must give the same replies. Usage: scripts.py KV_PORT REDIS_PORT
"""

import os
import sys

import redis

LUA = os.path.join(os.path.dirname(__file__), "..", "data", "lua")


def load(name):
    with open(os.path.join(LUA, name)) as f:
        return f.read()


def session(port):
    r = redis.Redis(host="127.0.0.1", port=port)
    r.script_flush()
    limiter = r.register_script(load("rate_limiter.lua"))
    acquire = r.register_script(load("lock_acquire.lua"))
    release = r.register_script(load("lock_release.lua"))
    seen = []
    for i, now in enumerate([0, 100, 200, 300, 900, 1150]):
        seen.append(limiter(keys=["rate:py"], args=[10_000 + now, 1000, 3, f"r{i}"]))
    # The first call went through EVAL after NOSCRIPT: now the script is cached.
    seen.append(r.script_exists(limiter.sha))
    seen.append(acquire(keys=["lock:py"], args=["me", 10_000]))
    seen.append(acquire(keys=["lock:py"], args=["you", 10_000]))
    seen.append(release(keys=["lock:py"], args=["you"]))
    seen.append(release(keys=["lock:py"], args=["me"]))
    seen.append(r.get("lock:py"))
    try:
        r.eval("return redis.call('INCR', KEYS[1])", 1, "lock:py:missing:str")
        r.set("str", "x")
        r.eval("return redis.call('INCR', KEYS[1])", 1, "str")
    except redis.ResponseError as e:
        seen.append(str(e))
    return seen


kv, peer = session(int(sys.argv[1])), session(int(sys.argv[2]))
if kv != peer:
    print("kv:   ", kv)
    print("redis:", peer)
    sys.exit(1)
expected_limits = [[1, 1], [1, 2], [1, 3], [0, 3], [0, 3], [1, 2]]
if kv[:6] != expected_limits or kv[6:12] != [[True], b"OK", None, 0, 1, None]:
    print("unexpected:", kv)
    sys.exit(1)
print("ok", kv)
