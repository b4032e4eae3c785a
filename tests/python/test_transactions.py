"""Redis transactions through redis-py 8, as an application uses them.

Run by tests/python_transactions.rs, which starts the servers on free ports and passes
them in INFRALAB_TX_TARGETS ("name=host:port,..."; a name starting with "router" is the
shard router over several kv shards). Every test runs against every target twice: with
redis-py's default protocol (RESP3) and with protocol=2.
"""

import os
import queue
import sys
import threading
import unittest

import redis

TARGETS = [
    (name, addr.rsplit(":", 1))
    for name, addr in (
        item.split("=", 1) for item in os.environ["INFRALAB_TX_TARGETS"].split(",")
    )
]
PROTOCOLS = [None, 2]  # None: redis-py's default, RESP3


class Transactions:
    """The checks, for one server and one protocol (see `make_case`)."""

    name = ""
    host = ""
    port = 0
    protocol = None

    def client(self):
        kwargs = {} if self.protocol is None else {"protocol": self.protocol}
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def setUp(self):
        self.r = self.client()
        # A prefix per test and protocol; one hash tag so every key shares a shard.
        self.tag = "{%s:%s:%s}" % (self.name, self.protocol, self._testMethodName)

    def tearDown(self):
        self.r.close()

    def is_router(self):
        return self.name.startswith("router")

    def shard_of(self, key):
        """The shard ROUTER SHARDOF names (a map: a dict in RESP3, flat in RESP2)."""
        reply = self.r.execute_command("ROUTER", "SHARDOF", key)
        if isinstance(reply, list):
            reply = dict(zip(reply[::2], reply[1::2]))
        return reply[b"shard"]

    def key(self, name):
        return self.tag + name

    def test_pipeline_runs_as_one_transaction(self):
        a, b, n = self.key("a"), self.key("b"), self.key("n")
        self.r.delete(a, b, n)
        with self.r.pipeline(transaction=True) as p:
            p.set(a, "1").incr(n).rpush(b, "x", "y").get(a).lrange(b, 0, -1).incr(n, 5)
            self.assertEqual(p.execute(), [True, 1, 2, b"1", [b"x", b"y"], 6])

    def test_other_clients_never_see_half_a_transaction(self):
        a, b = self.key("a"), self.key("b")
        self.r.mset({a: 0, b: 0})
        done = threading.Event()
        torn = []

        def reader():
            r = self.client()
            while not done.is_set():
                x, y = r.mget(a, b)
                if x != y:
                    torn.append((x, y))
            r.close()

        t = threading.Thread(target=reader)
        t.start()
        try:
            for i in range(1, 300):
                with self.r.pipeline(transaction=True) as p:
                    p.set(a, i).incr(self.key("spacer")).set(b, i)
                    p.execute()
        finally:
            done.set()
            t.join()
        self.assertEqual(torn, [])
        self.assertEqual(self.r.mget(a, b), [b"299", b"299"])

    def test_a_runtime_error_is_reported_and_nothing_is_rolled_back(self):
        s, t = self.key("s"), self.key("t")
        self.r.set(s, "text")
        self.r.delete(t)
        with self.r.pipeline(transaction=True) as p:
            p.set(t, "1").incr(s).set(t, "2")
            results = p.execute(raise_on_error=False)
        self.assertEqual(results[0], True)
        self.assertIsInstance(results[1], redis.ResponseError)
        self.assertEqual(results[2], True)
        self.assertEqual(self.r.get(t), b"2")
        with self.r.pipeline(transaction=True) as p:
            p.incr(s)
            with self.assertRaises(redis.ResponseError):
                p.execute()

    def test_a_queueing_error_discards_everything(self):
        k = self.key("never")
        self.r.delete(k)
        with self.r.pipeline(transaction=True) as p:
            p.set(k, "1")
            p.execute_command("NOSUCHCOMMAND", k)
            p.set(k, "2")
            with self.assertRaises(redis.ResponseError):
                p.execute()
        self.assertIsNone(self.r.get(k))

    def test_a_watched_key_changed_by_another_client_aborts(self):
        k = self.key("k")
        self.r.set(k, "1")
        other = self.client()
        with self.r.pipeline(transaction=True) as p:
            p.watch(k)
            self.assertEqual(p.get(k), b"1")
            other.set(k, "2")
            p.multi()
            p.set(k, "3")
            with self.assertRaises(redis.WatchError):
                p.execute()
        other.close()
        self.assertEqual(self.r.get(k), b"2")
        # Unchanged: the same transaction goes through.
        with self.r.pipeline(transaction=True) as p:
            p.watch(k)
            p.multi()
            p.set(k, "3")
            self.assertEqual(p.execute(), [True])
        self.assertEqual(self.r.get(k), b"3")

    def test_the_transaction_helper_retries_under_a_concurrent_writer(self):
        """Another client writes the watched key between a worker's read and its EXEC:
        EXEC must abort, the helper must retry, and no increment may be lost.

        The writer does a fixed number of writes, each one on a worker's request made
        right after that worker read the counter under WATCH, and the worker waits until
        the write is done before it queues its own. Every such write therefore lands
        inside a transaction's window and forces at least one retry, and the test's length
        does not depend on how fast the writer can loop (a free-running writer made the
        workers retry thousands of times)."""
        counter = self.key("counter")
        self.r.set(counter, 0)
        workers, each, writes, every = 4, 40, 20, 8
        requests = queue.Queue()
        lock = threading.Lock()
        attempts = [0]

        def writer():
            r = self.client()
            while (done := requests.get()) is not None:
                r.incrby(counter, 1000)
                done.set()
            r.close()

        def increment(pipe):
            value = int(pipe.get(counter))
            with lock:
                attempts[0] += 1
                ask = attempts[0] % every == 0 and attempts[0] // every <= writes
            if ask:
                done = threading.Event()
                requests.put(done)
                self.assertTrue(done.wait(timeout=60), "the writer never wrote")
            pipe.multi()
            pipe.set(counter, value + 1)

        def worker():
            r = self.client()
            for _ in range(each):
                r.transaction(increment, counter)
            r.close()

        w = threading.Thread(target=writer)
        w.start()
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        requests.put(None)
        w.join()
        # At least `workers * each` attempts were made, so every write was asked for.
        self.assertEqual(int(self.r.get(counter)), workers * each + 1000 * writes)
        # Every attempt beyond the first of each increment was a retry after a conflict;
        # each of the writer's writes caused one at least.
        retries = attempts[0] - workers * each
        self.assertGreaterEqual(retries, writes)
        print(
            f"{self.name} protocol={self.protocol}: {workers * each} increments, "
            f"{retries} retries, writer wrote {writes} times",
            file=sys.stderr,
        )

    def test_cross_shard_keys_are_refused_and_abort_the_transaction(self):
        if not self.is_router():
            self.skipTest("kv has one shard")
        mine = self.key("mine")
        # A key on another shard than the tag's: ROUTER SHARDOF tells.
        here = self.shard_of(mine)
        other = next(f"other{i}" for i in range(1000) if self.shard_of(f"other{i}") != here)
        self.r.delete(mine)
        with self.r.pipeline(transaction=True) as p:
            p.set(mine, "1")
            p.set(other, "1")
            with self.assertRaises(redis.ResponseError) as raised:
                p.execute()
        # redis-py takes the error code (CROSSSLOT) off the message.
        self.assertIn("map to different shards", str(raised.exception))
        self.assertIsNone(self.r.get(mine))
        self.assertIsNone(self.r.get(other))


def make_case(name, host, port, protocol):
    attrs = {"name": name, "host": host, "port": int(port), "protocol": protocol}
    title = f"Test_{name}_resp{protocol or 3}"
    return type(title, (Transactions, unittest.TestCase), attrs)


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    for name, (host, port) in TARGETS:
        for protocol in PROTOCOLS:
            suite.addTests(loader.loadTestsFromTestCase(make_case(name, host, port, protocol)))
    return suite


if __name__ == "__main__":
    print(f"redis-py {redis.__version__}", file=sys.stderr)
    unittest.main(verbosity=2)
