"""redis-py 8 against infralab's RESP servers, as a new user would run it.

redis-py 8 speaks RESP3 by default (it sends `HELLO 3`), and its RESP3 reply handling
expects Redis 7's reply types: a map for HGETALL, [member, score] pairs of doubles for
WITHSCORES, a set for SMEMBERS, push frames for pub/sub. This file checks those, through
the client's ordinary API and, in RESP3, on the raw replies too (what the client's parser
saw, before any callback could paper over a wrong type).

Run by `tests/python_resp3.rs`, which starts the servers on port 0 and runs this file
twice: with the client's default protocol, and with `INFRALAB_RESP=2` (protocol=2).
Addresses come from the environment: INFRALAB_KV, INFRALAB_CACHE, INFRALAB_PUBSUB,
INFRALAB_BROKER, INFRALAB_ROUTER (host:port each).
"""

import os
import sys
import time
import unittest

try:
    import redis
except ImportError:
    sys.exit("redis-py is missing: run .ci/run (pip install 'redis>=8')")

if int(redis.__version__.split(".")[0]) < 8:
    sys.exit(f"redis-py {redis.__version__} is too old: run .ci/run (pip install 'redis>=8')")

# "default": whatever redis-py does out of the box (RESP3 in redis-py 8); "2": protocol=2.
PROTOCOL = os.environ.get("INFRALAB_RESP", "default")
RESP3 = PROTOCOL != "2"


def client(var):
    host, port = os.environ[var].rsplit(":", 1)
    options = {"host": host, "port": int(port), "socket_timeout": 10}
    if PROTOCOL == "2":
        options["protocol"] = 2
    return redis.Redis(**options)


def raw(r, *command):
    """A reply as the client's parser decoded it, with no command callback applied:
    in RESP3 its Python type is the RESP3 type the server sent (dict for `%`, set for
    `,`, list for `*`; a set `~` too comes out as a list)."""
    connection = r.connection_pool.get_connection()
    try:
        connection.send_command(*command)
        return connection.read_response()
    finally:
        r.connection_pool.release(connection)


class KeyValueChecks:
    """What any Redis-like server must answer right; run against kv and the router.
    Keys share a hash tag so that the router can serve multi-key commands."""

    var = None

    def setUp(self):
        self.r = client(self.var)
        self.r.flushall()

    def tearDown(self):
        self.r.close()

    def test_the_connection_speaks_the_protocol_asked_for(self):
        connection = self.r.connection_pool.get_connection()
        try:
            self.assertEqual(int(connection.protocol or 2), 3 if RESP3 else 2)
        finally:
            self.r.connection_pool.release(connection)

    def test_strings_and_nulls(self):
        self.assertTrue(self.r.set("{t}a", "1"))
        self.assertEqual(self.r.get("{t}a"), b"1")
        self.assertIsNone(self.r.get("{t}missing"))
        self.assertEqual(self.r.incrbyfloat("{t}f", 1.5), 1.5)
        self.assertEqual(self.r.mget("{t}a", "{t}missing"), [b"1", None])

    def test_hgetall_is_a_dict(self):
        self.r.hset("{t}h", mapping={"name": "ada", "lang": "rust"})
        self.assertEqual(self.r.hgetall("{t}h"), {b"name": b"ada", b"lang": b"rust"})
        self.assertEqual(self.r.hgetall("{t}nohash"), {})
        self.assertEqual(sorted(self.r.hkeys("{t}h")), [b"lang", b"name"])
        self.assertEqual(self.r.hmget("{t}h", "name", "nope"), [b"ada", None])
        self.assertTrue(self.r.hrandfield("{t}h", 2, withvalues=True))
        if RESP3:
            self.assertIsInstance(raw(self.r, "HGETALL", "{t}h"), dict)
            self.assertEqual(
                sorted(map(tuple, raw(self.r, "HRANDFIELD", "{t}h", "2", "WITHVALUES"))),
                [(b"lang", b"rust"), (b"name", b"ada")],
            )

    def test_sorted_sets_give_floats_and_pairs(self):
        self.assertEqual(self.r.zadd("{t}z", {"a": 1.5, "b": 2, "c": 0.1}), 3)
        self.assertEqual(self.r.zscore("{t}z", "a"), 1.5)
        self.assertIsInstance(self.r.zscore("{t}z", "a"), float)
        self.assertIsNone(self.r.zscore("{t}z", "nope"))
        self.assertEqual(
            self.r.zrange("{t}z", 0, -1, withscores=True),
            [(b"c", 0.1), (b"a", 1.5), (b"b", 2.0)],
        )
        self.assertEqual(
            self.r.zrevrangebyscore("{t}z", "+inf", 1, withscores=True),
            [(b"b", 2.0), (b"a", 1.5)],
        )
        self.assertEqual(self.r.zincrby("{t}z", 2.5, "a"), 4.0)
        self.assertEqual(self.r.zmscore("{t}z", ["a", "nope"]), [4.0, None])
        self.assertEqual(self.r.zadd("{t}z", {"b": 1}, incr=True), 3.0)
        self.assertEqual(self.r.zpopmin("{t}z", 1), [(b"c", 0.1)])
        self.assertEqual(self.r.zpopmax("{t}z"), [(b"a", 4.0)])
        self.assertTrue(self.r.zrandmember("{t}z", 1, withscores=True))
        if RESP3:
            self.assertEqual(raw(self.r, "ZSCORE", "{t}z", "b"), 3.0)
            self.assertEqual(raw(self.r, "ZRANGE", "{t}z", "0", "-1", "WITHSCORES"), [[b"b", 3.0]])

    def test_set_replies_are_sets(self):
        self.r.sadd("{t}s1", "a", "b", "c")
        self.r.sadd("{t}s2", "b", "c", "d")
        self.assertEqual(self.r.smembers("{t}s1"), {b"a", b"b", b"c"})
        self.assertEqual(self.r.sinter("{t}s1", "{t}s2"), {b"b", b"c"})
        self.assertEqual(self.r.sunion("{t}s1", "{t}s2"), {b"a", b"b", b"c", b"d"})
        self.assertEqual(self.r.sdiff("{t}s1", "{t}s2"), {b"a"})
        self.assertEqual(self.r.smembers("{t}nope"), set())
        self.assertEqual(self.r.smismember("{t}s1", ["a", "z"]), [1, 0])
        # (redis-py's parser turns a RESP3 set into a list before any callback, so the
        # `~` type itself is checked by kv's RESP3 differential test, not here.)

    def test_lists(self):
        self.assertEqual(self.r.rpush("{t}l", "a", "b", "c"), 3)
        self.assertEqual(self.r.lrange("{t}l", 0, -1), [b"a", b"b", b"c"])
        self.assertEqual(self.r.lpop("{t}l", 2), [b"a", b"b"])
        self.assertIsNone(self.r.lpop("{t}nolist", 2))
        if self.var == "INFRALAB_ROUTER":
            return  # the router refuses blocking commands (they would hold a backend link)
        self.assertEqual(list(self.r.blpop(["{t}l"], timeout=1)), [b"{t}l", b"c"])
        self.assertIsNone(self.r.blpop(["{t}l"], timeout=0.05))

    def test_server_replies(self):
        self.assertTrue(self.r.ping())
        self.assertIsInstance(self.r.info(), dict)
        self.assertIn("maxclients", self.r.config_get("maxclients"))
        self.assertIsInstance(self.r.client_info(), dict)
        self.assertIsInstance(self.r.dbsize(), int)
        if RESP3:
            self.assertIsInstance(raw(self.r, "CONFIG", "GET", "maxclients"), dict)
            self.assertIsInstance(raw(self.r, "HELLO"), dict)


class Kv(KeyValueChecks, unittest.TestCase):
    var = "INFRALAB_KV"


class Router(KeyValueChecks, unittest.TestCase):
    """The router in front of kv shards: forwarded replies keep their types, and merged
    ones (MGET, DEL, EXISTS, DBSIZE across shards) have Redis's."""

    var = "INFRALAB_ROUTER"

    def test_merged_replies_across_shards(self):
        keys = [f"k{i}" for i in range(20)]
        self.r.mset({k: k for k in keys})
        self.assertEqual(self.r.mget(keys + ["nope"]), [k.encode() for k in keys] + [None])
        self.assertEqual(self.r.exists(*keys), 20)
        self.assertEqual(self.r.dbsize(), 20)
        self.assertEqual(self.r.delete(*keys, "nope"), 20)
        self.assertEqual(self.r.dbsize(), 0)


class Cache(unittest.TestCase):
    def setUp(self):
        self.r = client("INFRALAB_CACHE")

    def tearDown(self):
        self.r.close()

    def test_strings_ttl_and_server_replies(self):
        self.assertTrue(self.r.set("c1", "v", ex=100))
        self.assertEqual(self.r.get("c1"), b"v")
        self.assertIsNone(self.r.get("nope"))
        self.assertEqual(self.r.mget("c1", "nope"), [b"v", None])
        self.assertGreater(self.r.ttl("c1"), 0)
        self.assertEqual(self.r.delete("c1", "nope"), 1)
        self.assertTrue(self.r.ping())
        self.assertIsInstance(self.r.info(), dict)
        self.assertIsInstance(self.r.config_get("*"), dict)
        if RESP3:
            self.assertIsInstance(raw(self.r, "CONFIG", "GET", "*"), dict)


class PubSub(unittest.TestCase):
    def setUp(self):
        self.r = client("INFRALAB_PUBSUB")

    def tearDown(self):
        self.r.close()

    def next_message(self, p):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = p.get_message(timeout=1)
            if message is not None:
                return message
        self.fail("no message within 10 s")

    def test_messages_arrive(self):
        p = self.r.pubsub()
        p.subscribe("news")
        self.assertEqual(self.next_message(p)["type"], "subscribe")
        p.psubscribe("n*")
        self.assertEqual(self.next_message(p)["type"], "psubscribe")
        self.assertEqual(self.r.pubsub_numsub("news"), [(b"news", 1)])
        self.assertEqual(self.r.publish("news", "hello"), 2)
        got = [self.next_message(p), self.next_message(p)]
        self.assertEqual(
            sorted((m["type"], m["channel"], m["data"]) for m in got),
            [("message", b"news", b"hello"), ("pmessage", b"news", b"hello")],
        )
        p.unsubscribe("news")
        self.assertEqual(self.next_message(p)["type"], "unsubscribe")
        p.close()


class Broker(unittest.TestCase):
    def setUp(self):
        self.r = client("INFRALAB_BROKER")

    def tearDown(self):
        self.r.close()

    def fields(self, reply):
        """A structured reply as a dict: a map in RESP3, flat pairs in RESP2."""
        if RESP3:
            self.assertIsInstance(reply, dict)
            return reply
        self.assertIsInstance(reply, list)
        return dict(zip(reply[::2], reply[1::2]))

    def test_replies_parse(self):
        queue = f"jobs-{PROTOCOL}"
        first = self.r.execute_command("QSEND", queue, "encode video")
        self.assertIsInstance(first, int)
        got = self.r.execute_command("QRECV", queue, "COUNT", "10")
        self.assertEqual(len(got), 1)
        delivery = self.fields(got[0])
        self.assertEqual(delivery[b"id"], first)
        self.assertEqual(delivery[b"body"], b"encode video")
        self.assertEqual(delivery[b"deliveries"], 1)
        self.assertIn(self.r.execute_command("QACK", queue, delivery[b"receipt"]), (b"OK", True, "OK"))
        stats = self.fields(self.r.execute_command("QSTATS", queue))
        self.assertEqual((stats[b"sent"], stats[b"acked"], stats[b"ready"]), (1, 1, 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
