"""redis-py 8 against kv's priority-queue pops, SORT and server commands (run by
tests/client_cache.rs). Checks, on the client's default RESP3 and on RESP2:
1. BZPOPMIN waits for a ZADD from another client and gets (key, member, score);
2. LMPOP/ZMPOP/BZMPOP parse as redis-py expects; a timeout is None;
3. SORT with BY/GET/STORE, OBJECT ENCODING, SLOWLOG, MEMORY USAGE;
4. shutdown() succeeds: the server closes the connection without a reply.
"""

import os
import sys
import threading
import time

import redis

HOST, PORT = "127.0.0.1", int(os.environ["INFRALAB_KV_PORT"])


def check(condition, message):
    if not condition:
        print("FAILED:", message)
        sys.exit(1)


def blocked_clients(client):
    return client.info("clients")["blocked_clients"]


def pops(protocol):
    r = redis.Redis(host=HOST, port=PORT, protocol=protocol, decode_responses=True)
    r.flushall()
    got = {}

    def waiter():
        w = redis.Redis(host=HOST, port=PORT, protocol=protocol, decode_responses=True)
        got["value"] = w.bzpopmin("jobs", timeout=0)

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.time() + 30
    while blocked_clients(r) < 1:
        check(time.time() < deadline, "the BZPOPMIN client never blocked")
        time.sleep(0.01)
    r.zadd("jobs", {"resize": 5, "email": 1})
    thread.join(30)
    value = got.get("value")
    check(value is not None and list(value)[:2] == ["jobs", "email"], f"BZPOPMIN: {value}")
    check(float(list(value)[2]) == 1.0, f"BZPOPMIN score: {value}")
    check(r.bzpopmax("nothing", timeout=0.05) is None, "BZPOPMAX timeout")
    r.rpush("q2", "a", "b", "c")
    check(r.lmpop(2, "q1", "q2", direction="LEFT", count=2) == ["q2", ["a", "b"]], "LMPOP")
    check(r.blmpop(0.05, 1, "q1", direction="LEFT") is None, "BLMPOP timeout")
    zm = r.zmpop(1, ["jobs"], max=True)
    check(zm[0] == "jobs" and zm[1][0][0] == "resize", f"ZMPOP: {zm}")
    check(r.zmpop(1, ["jobs"], min=True) is None, "ZMPOP on a missing key")


def sort_and_server(protocol):
    r = redis.Redis(host=HOST, port=PORT, protocol=protocol, decode_responses=True)
    r.flushall()
    r.rpush("ids", 1, 2, 3)
    r.mset({"w_1": 30, "w_2": 10, "w_3": 20})
    r.hset("user_1", "name", "ada")
    r.hset("user_2", "name", "bob")
    sorted_names = r.sort("ids", by="w_*", get=["#", "user_*->name"])
    check(sorted_names == ["2", "bob", "3", None, "1", "ada"], f"SORT: {sorted_names}")
    check(r.sort("ids", desc=True, start=0, num=2, store="top") == 2, "SORT STORE")
    check(r.lrange("top", 0, -1) == ["3", "2"], "SORT STORE's list")
    check(r.sort_ro("ids", alpha=True) == ["1", "2", "3"], "SORT_RO")
    check(r.object("encoding", "ids") == "listpack", "OBJECT ENCODING")
    check(r.memory_usage("ids") > 0, "MEMORY USAGE")
    r.config_set("slowlog-log-slower-than", 0)
    r.set("k", "v")
    entries = r.slowlog_get(1)
    check(entries and "k" in str(entries[0]["command"]), f"SLOWLOG GET: {entries}")
    r.config_set("slowlog-log-slower-than", 10000)
    check(r.move("k", 1) is True or r.move("k", 1) == 1, "MOVE")


def shutdown():
    r = redis.Redis(host=HOST, port=PORT)
    r.shutdown(nosave=True)


for protocol in (3, 2):
    pops(protocol)
    sort_and_server(protocol)
shutdown()
print("ok")
